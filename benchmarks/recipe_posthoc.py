"""Predict-time levers on finished grouped-CV runs, without training again.

    python benchmarks/recipe_posthoc.py ensemble NAME NAME [...] [--weights W W ...]
        [--combine probabilities|logits]
    python benchmarks/recipe_posthoc.py tta NAME [--shift 6] [--zoom 0.06]
    python benchmarks/recipe_posthoc.py folds NAME
    python benchmarks/recipe_posthoc.py errors NAME NAME [...] [--data DIR]
    python benchmarks/recipe_posthoc.py members NAME [--data DIR]

The runs are those of ``benchmarks/recipe_cv.py`` (same patient-grouped
folds, so every comparison is paired image by image):

``ensemble``
    Averages the held-out probabilities of several finished runs (e.g. the
    same recipe with seeds 0 and 1: a seed ensemble, what averaging the
    members' ``predict_proba`` gives) and scores the average at 0.5, against
    the first run (paired bootstrap over patients). ``--weights`` weights
    the runs (e.g. ``3 1 1 1``: one recipe's run and three seeds of another,
    each recipe half the average); ``--combine logits`` averages log-odds,
    as :func:`cxrlearn.networks.average_networks` does inside one network.
``tta``
    Test-time augmentation: loads each fold's saved pipeline
    (``fold{k}.skops``), decodes its held-out images once, and averages the
    probabilities of the image and of slightly shifted and zoomed copies
    (no flips: chest anatomy is not left-right symmetric). Scored against the
    plain predictions of the same models.
``folds``
    The ROC-AUC of each fold's model on its own held-out patients, beside the
    pooled figure (pooling mixes three models' calibrations, so it is the
    more conservative of the two).
``errors``
    Which films several finished runs misclassify at their own decision:
    how many films every run gets wrong, how many some and how many none,
    the averaged probability of the films every run gets wrong, the pooled
    ROC-AUC of the averaged runs with and without them, and those films by
    name (read from ``--data`` in the order ``recipe_cv`` loaded them).

``members``
    Splits a finished run of a seed ensemble (``n_networks > 1``), or of a
    model with a ``companion``, into its networks: loads each fold's saved
    pipeline, predicts the held-out images with each member network alone
    (and with the companion's networks together) and saves the results as
    runs of their own, ``NAME.member0``, ``NAME.member1``, ... (the first
    member is what ``n_networks=1`` trains with the same seed) and
    ``NAME.companion``, checking first that the parts' log-odds, averaged
    and weighted as in the model, give the run's own probabilities. So a
    smaller ensemble, or one network beside another recipe, is scored
    without training again.

Each prints JSON: figures with 95% intervals (bootstrap over patients) and
the paired differences with p-values.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_cv import WORK  # noqa: E402
from train_pretrained import DEFAULT_DATA, card_figures, load_all  # noqa: E402

from cxrlearn.io import load_model  # noqa: E402

POS = "PNEUMONIA"


def _load_run(name):
    f = np.load(WORK / name / "oof.npz", allow_pickle=False)
    return {k: f[k] for k in f.files}


def _same_images(run, labels, groups):
    """Whether ``run`` was made on images of these labels and patients, in this order."""
    return (np.array_equal(run["labels"], np.asarray(labels, dtype=str))
            and np.array_equal(run["groups"], np.asarray(groups, dtype=str)))


def _load_runs(names):
    """Finished runs made on the same images in the same order (else exit)."""
    runs = [_load_run(n) for n in names]
    for name, r in zip(names[1:], runs[1:]):
        if not _same_images(r, runs[0]["labels"], runs[0]["groups"]):
            raise SystemExit(f"the runs {names[0]!r} and {name!r} were not made on the same images")
    return runs


def _paired(labels, groups, proba_a, pred_a, proba_b, pred_b):
    from cxrlearn.evaluation import paired_bootstrap

    y = labels == POS
    diff = paired_bootstrap(y, proba_a, proba_b, y_pred_a=pred_a, y_pred_b=pred_b,
                            pos_label=True, groups=groups, n_resamples=2000, random_state=0)
    return {name: {"estimate": round(float(i.estimate), 5), "low": round(float(i.low), 5),
                   "high": round(float(i.high), 5), "p_value": round(float(diff.pvalues[name]), 4)}
            for name, i in diff.intervals.items()
            if name in ("roc_auc", "accuracy", "sensitivity", "specificity")}


def _short(figures):
    return {k: [round(v["estimate"], 5), round(v["low"], 5), round(v["high"], 5)]
            for k, v in figures.items()
            if k in ("roc_auc", "accuracy", "sensitivity", "specificity", "roc_auc_delong")}


def ensemble(names, weights=None, combine="probabilities"):
    """The runs' held-out predictions averaged, scored against the first run.

    ``weights`` (one per run, default equal) weight the average; ``combine``
    averages the probabilities or the log-odds (what
    :func:`cxrlearn.networks.average_networks` does inside one network).
    """
    runs = _load_runs(names)
    labels, groups = runs[0]["labels"], runs[0]["groups"]
    if weights is None:
        weights = [1.0] * len(runs)
    if len(weights) != len(runs) or min(weights) < 0 or sum(weights) <= 0:
        raise SystemExit(f"--weights needs one non-negative weight per run ({len(runs)}), "
                         f"not all zero; got {list(weights)}")
    weights = np.asarray(weights, dtype=float) / np.sum(weights)
    stacked = np.array([r["proba"] for r in runs], dtype=float)
    if combine == "logits":
        clipped = np.clip(stacked, 1e-7, 1 - 1e-7)
        proba = 1 / (1 + np.exp(-weights @ np.log(clipped / (1 - clipped))))
    elif combine == "probabilities":
        proba = weights @ stacked
    else:
        raise SystemExit(f"combine must be 'probabilities' or 'logits', got {combine!r}")
    pred = np.where(proba >= 0.5, POS, "NORMAL")
    first_pred = runs[0]["pred"] == POS
    return {
        "ensemble": names,
        "weights": [round(float(w), 4) for w in weights],
        "combine": combine,
        "figures": _short(card_figures(labels, proba, pred, groups)),
        "errors": int(np.sum(pred != labels)),
        "members": {n: _short(card_figures(labels, r["proba"], r["pred"], groups))
                    for n, r in zip(names, runs)},
        "difference_to_first": _paired(labels, groups, proba, pred == POS,
                                       runs[0]["proba"], first_pred),
    }


def _fold_tests(name):
    """The held-out rows of each fold of a finished run, as ``recipe_cv`` saved them.

    Read from its ``fold{k}.npz`` files rather than split again, so a run
    with any number of folds is scored on the folds it was trained on.
    """
    tests, k = [], 0
    while (WORK / name / f"fold{k}.npz").exists():
        tests.append(np.load(WORK / name / f"fold{k}.npz", allow_pickle=False)["test"])
        k += 1
    if not tests:
        raise SystemExit(f"no folds saved for run {name!r} under {WORK / name}")
    return tests


def _views(X, shift, zoom):
    """The image and its shifted / zoomed copies (no flips)."""
    import tensorflow as tf

    views = [X]
    h, w = X.shape[1:3]
    for dy, dx in ((shift, 0), (-shift, 0), (0, shift), (0, -shift)):
        views.append(np.asarray(tf.roll(X, shift=(dy, dx), axis=(1, 2))))
    if zoom:
        size = (round(h * (1 + zoom)), round(w * (1 + zoom)))
        big = tf.image.resize(X.astype("float32"), size, method="bilinear")
        views.append(np.asarray(tf.image.resize_with_crop_or_pad(big, h, w)).astype(X.dtype))
    return views


def tta(name, data, shift, zoom):

    run = _load_run(name)
    labels, groups = run["labels"], run["groups"]
    paths, labels_again, _ = load_all(data)
    assert np.array_equal(labels_again.astype(str), labels)
    plain = np.full(len(labels), np.nan)
    aug = np.full(len(labels), np.nan)
    for k, test in enumerate(_fold_tests(name)):
        pipe = load_model(WORK / name / f"fold{k}.skops")
        pipe.set_params(loader__memory=str(WORK / "decode-cache"))
        X = pipe[:-1].transform(paths[test])
        cnn = pipe[-1]
        views = _views(X, shift, zoom)
        probas = [cnn.predict_proba(v)[:, 1] for v in views]
        plain[test] = probas[0]
        aug[test] = np.mean(probas, axis=0)
        print(f"[{name}] fold {k}: {len(test)} images x {len(views)} views", flush=True)
    assert np.allclose(plain, run["proba"], atol=1e-5), "saved models do not match the run"
    pred_aug = aug >= 0.5
    return {
        "tta": name, "shift": shift, "zoom": zoom,
        "figures": _short(card_figures(labels, aug, np.where(pred_aug, POS, "NORMAL"), groups)),
        "plain": _short(card_figures(labels, plain, run["pred"], groups)),
        "difference_to_plain": _paired(labels, groups, aug, pred_aug, plain, run["pred"] == POS),
    }


def members(name, data):
    from cxrlearn.networks import companion_network, member_networks

    run = _load_run(name)
    labels, groups = run["labels"], run["groups"]
    paths, labels_again, _ = load_all(data)
    assert np.array_equal(labels_again.astype(str), labels)
    tests = _fold_tests(name)
    logits, n_members, companion, weight = None, None, None, None
    for k, test in enumerate(tests):
        pipe = load_model(WORK / name / f"fold{k}.skops")
        pipe.set_params(loader__memory=str(WORK / "decode-cache"))
        X = pipe[:-1].transform(paths[test])
        cnn = pipe[-1]
        nets = member_networks(cnn.model_)
        small = companion_network(cnn.model_)
        if n_members is None:
            n_members = len(nets)
            logits = np.full((n_members, len(labels)), np.nan)
            if small is not None:
                companion, weight = np.full(len(labels), np.nan), cnn.companion_weight
        if len(nets) != n_members or (small is None) != (companion is None):
            raise SystemExit(f"run {name!r}: fold {k} has {len(nets)} networks and "
                             f"{'a' if small is not None else 'no'} companion, unlike fold 0")
        if n_members < 2 and small is None:
            raise SystemExit(f"run {name!r} has one network and no companion: nothing to split")
        for i, net in enumerate(nets):
            logits[i, test] = _member_logits(net, X, cnn.batch_size)
        if small is not None:
            companion[test] = _member_logits(small, X, cnn.batch_size)
        print(f"[{name}] fold {k}: {len(test)} images x {n_members} networks"
              f"{' and the companion' if small is not None else ''}", flush=True)
    combined = logits.mean(axis=0)
    if companion is not None:
        combined = (1 - weight) * combined + weight * companion
    mean = 1 / (1 + np.exp(-combined))
    assert np.allclose(mean, run["proba"], atol=1e-4), "the members do not average to the run"
    parts = {f"{name}.member{i}": logits[i] for i in range(n_members)}
    if companion is not None:
        parts[f"{name}.companion"] = companion
    out = {"run": name, "members": {}}
    for folder_name, z in parts.items():
        proba = 1 / (1 + np.exp(-z))
        pred = np.where(proba >= 0.5, POS, "NORMAL")
        folder = WORK / folder_name
        folder.mkdir(exist_ok=True)
        for k, test in enumerate(tests):
            np.savez(folder / f"fold{k}.npz", test=test, proba=proba[test], pred=pred[test])
        np.savez(folder / "oof.npz", proba=proba, pred=pred, labels=labels, groups=groups)
        out["members"][folder.name] = _short(card_figures(labels, proba, pred, groups))
    return out


def _member_logits(net, X, batch_size):
    """The log-odds of one member network (two classes) on images ``X``.

    Members of an ensemble output their logits (``member_networks``).
    """
    from cxrlearn import _training

    return _training.predict_logits(net, X, batch_size=batch_size)[:, 0]


def folds(name):
    from sklearn.metrics import roc_auc_score

    run = _load_run(name)
    labels, groups = run["labels"], run["groups"]
    y = labels == POS
    per_fold = [round(float(roc_auc_score(y[test], run["proba"][test])), 5)
                for test in _fold_tests(name)]
    return {"run": name, "pooled_roc_auc": round(float(roc_auc_score(y, run["proba"])), 5),
            "per_fold_roc_auc": per_fold, "mean_of_folds": round(float(np.mean(per_fold)), 5)}


def errors(names, data):
    from sklearn.metrics import roc_auc_score

    runs = _load_runs(names)
    labels = runs[0]["labels"]
    paths, data_labels, data_groups = load_all(data)
    if not _same_images(runs[0], data_labels, data_groups):
        raise SystemExit(f"{data} does not hold the images of these runs, in their order")
    y = labels == POS
    wrong = np.array([(r["pred"] == POS) != y for r in runs])
    n_wrong = wrong.sum(axis=0)
    always = n_wrong == len(runs)
    proba = np.mean([r["proba"] for r in runs], axis=0)

    def span(mask):
        return [round(float(proba[mask].min()), 3), round(float(proba[mask].max()), 3)] \
            if mask.any() else None

    root = Path(data)
    return {
        "runs": names,
        "errors_per_run": {n: int(w.sum()) for n, w in zip(names, wrong)},
        "wrong_in_every_run": {"films": int(always.sum()), "normal": int((always & ~y).sum()),
                               "pneumonia": int((always & y).sum()),
                               "mean_probability_normal": span(always & ~y),
                               "mean_probability_pneumonia": span(always & y)},
        "wrong_in_some_runs": int(((n_wrong > 0) & ~always).sum()),
        "wrong_in_no_run": int((n_wrong == 0).sum()),
        "roc_auc_of_mean": round(float(roc_auc_score(y, proba)), 5),
        "roc_auc_of_mean_without_them": round(float(roc_auc_score(y[~always], proba[~always])), 5),
        "films": [str(Path(paths[i]).relative_to(root)) if Path(paths[i]).is_relative_to(root)
                  else str(paths[i]) for i in np.flatnonzero(always)],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    e = sub.add_parser("ensemble")
    e.add_argument("names", nargs="+")
    e.add_argument("--weights", type=float, nargs="+", default=None,
                   help="one per run (default: equal), e.g. 3 1 1 1 for a run of one "
                   "recipe and three seeds of another, each recipe half the average")
    e.add_argument("--combine", choices=["probabilities", "logits"], default="probabilities")
    t = sub.add_parser("tta")
    t.add_argument("name")
    t.add_argument("--shift", type=int, default=6, help="pixels, each of 4 directions")
    t.add_argument("--zoom", type=float, default=0.06, help="0 for none")
    t.add_argument("--data", default=str(DEFAULT_DATA))
    f = sub.add_parser("folds")
    f.add_argument("name")
    r = sub.add_parser("errors")
    r.add_argument("names", nargs="+")
    r.add_argument("--data", default=str(DEFAULT_DATA))
    m = sub.add_parser("members")
    m.add_argument("name")
    m.add_argument("--data", default=str(DEFAULT_DATA))
    args = parser.parse_args(argv)
    if args.what == "ensemble":
        out = ensemble(args.names, args.weights, args.combine)
    elif args.what == "errors":
        out = errors(args.names, args.data)
    elif args.what == "members":
        out = members(args.name, args.data)
    elif args.what == "tta":
        out = tta(args.name, args.data, args.shift, args.zoom)
    else:
        out = folds(args.name)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
