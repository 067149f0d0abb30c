"""Rebuild cxrlearn's ready-trained model from the Kermany-224 data, reproducibly.

    python benchmarks/train_pretrained.py [--data ../shared/data/kermany224] [--work DIR]

1. Patient-grouped cross-validation of the default recipe (exactly what
   ``cxrlearn train`` fits, seed 0) on train + val: out-of-fold
   probabilities and the model's own labels for every image, saved per fold
   (a re-run resumes).
2. The model card's figures from those held-out predictions: metrics with
   95% intervals (bootstrap over patients, DeLong for ROC-AUC).
3. The final fit on all of train + val with seed 0, saved network-only
   (no optimizer state) with :func:`cxrlearn.io.save_model`, and its card as
   JSON, written into the package (``cxrlearn/pretrained/``). The SHA-256 to
   pin in ``cxrlearn/pretrained/_model.py`` is printed.

Training is deterministic on a given CPU: a re-run gives the same weights.
"""

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "kermany224"


def default_pipeline(data, random_state=0):
    """The pipeline ``cxrlearn train DATA`` builds with its defaults."""
    from cxrlearn.cli import build_parser
    from cxrlearn.cli._common import make_pipeline

    args = build_parser().parse_args(
        ["train", str(data), "--out", "unused.skops", "--random-state", str(random_state)]
    )
    pipe = make_pipeline(args)
    pipe.set_params(cnn__verbose=2)
    return pipe


def load_all(data):
    from cxrlearn.datasets import load_image_directory, patient_ids

    paths, labels = [], []
    for split in ("train", "val"):
        p, y = load_image_directory(Path(data) / split)
        paths += list(p)
        labels += list(y)
    paths, labels = np.asarray(paths, dtype=object), np.asarray(labels)
    return paths, labels, np.asarray(patient_ids(paths))


def cross_validate(paths, labels, groups, data, work, n_splits, *, params=None,
                   random_state=0, cache=None, save_models=False):
    """Out-of-fold predictions of the default recipe by patient-grouped CV.

    ``StratifiedGroupKFold(n_splits, shuffle=True, random_state=0)``: the same
    folds for every recipe and seed, so runs are paired image by image. Each
    fold's probabilities, labels and fit seconds are saved in ``work`` as
    ``fold{k}.npz``; a re-run resumes from them. ``params`` are pipeline
    parameters set on top of :func:`default_pipeline`; with a ``cache``
    folder the images are decoded into it first, so the fit time is
    training only. With ``save_models`` each fold's fitted pipeline is also
    saved, network only, as ``fold{k}.skops`` (for predict-time analyses such
    as test-time augmentation without training again). Returns the probabilities of PNEUMONIA, the labels, the
    fold of each image and each fold's fit seconds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    cv = StratifiedGroupKFold(n_splits, shuffle=True, random_state=0)
    proba = np.full(len(paths), np.nan)
    pred = np.empty(len(paths), dtype=object)
    fold_of = np.full(len(paths), -1)
    seconds = []
    for k, (train, test) in enumerate(cv.split(paths, labels, groups)):
        fold_of[test] = k
        saved = work / f"fold{k}.npz"
        if saved.exists():
            f = np.load(saved, allow_pickle=False)
            assert np.array_equal(f["test"], test), "folds changed: remove the work folder"
            proba[test], pred[test] = f["proba"], f["pred"].astype(object)
            seconds.append(float(f["seconds"]))
            continue
        pipe = default_pipeline(data, random_state=random_state)
        pipe.set_params(**(params or {}))
        if cache is not None:
            pipe.set_params(loader__memory=str(cache))
            pipe[0].transform(paths)  # decode once into the cache, not timed as training
        t0 = time.perf_counter()
        pipe.fit(paths[train], labels[train])
        fit_s = time.perf_counter() - t0
        proba[test] = pipe.predict_proba(paths[test])[:, 1]
        pred[test] = pipe.predict(paths[test])
        np.savez(saved, test=test, proba=proba[test], pred=pred[test].astype(str),
                 seconds=fit_s)
        if save_models:
            from cxrlearn.io import save_model

            save_model(pipe, work / f"fold{k}.skops", include_optimizer=False)
        seconds.append(fit_s)
        print(f"[{work.name}] fold {k}: {len(train)} train / {len(test)} held out, "
              f"fit {fit_s:.0f} s", flush=True)
    return proba, pred, fold_of, seconds


def card_figures(labels, proba, pred, groups, pos="PNEUMONIA"):
    from cxrlearn.evaluation import bootstrap_metrics, delong_roc_auc

    y = labels == pos
    boot = bootstrap_metrics(y, proba, y_pred=pred == pos, pos_label=True, groups=groups,
                             n_resamples=2000, random_state=0)
    delong = delong_roc_auc(y, proba, pos_label=True)
    figures = {name: {"estimate": float(i.estimate), "low": float(i.low), "high": float(i.high)}
               for name, i in boot.intervals.items()}
    figures["roc_auc_delong"] = {"estimate": float(delong.auc), "low": float(delong.low),
                                 "high": float(delong.high)}
    return figures


def _px(size):
    """``176`` or ``(176, 176)`` as ``"176 px"``; ``(h, w)`` as ``"HxW px"``."""
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return f"{height} px" if height == width else f"{height}x{width} px"


def recipe_text(pipe):
    """The model card's one-line description of a fitted default ``[loader, cnn]``.

    Read from the fitted pipeline's own settings, so the card cannot say
    other than what the file holds.
    """
    loader, cnn = pipe[0], pipe[-1]

    def networks(est, size):
        n = est.n_networks
        batches = "class-balanced batches" if est.balanced_batches else "class weights, batches"
        seen = "equalised inside the model" if est.equalize else "as loaded"
        return (f"{n} network{'s' if n > 1 else ''} at {_px(size)}, images {seen} (convolutions "
                f"{'-'.join(map(str, est.conv_filters))}, dense "
                f"{'-'.join(map(str, est.dense_units))}"
                f"{', batch normalisation' if est.batch_norm else ''}, dropout {est.dropout}, "
                f"{batches} of {est.batch_size}, {est.epochs} epochs, cosine learning rate, "
                f"label_smoothing={est.label_smoothing})")

    text = (f"cxrlearn train defaults: ImageLoader({_px(loader.image_size)}, "
            f"{loader.color_mode}, intensity={loader.intensity!r}), "
            f"PneumoniaCNN: {networks(cnn, loader.image_size)}")
    small = getattr(cnn, "companion_", None)
    if small is not None:
        text += (f", and a companion of {networks(small, small.resize)} that shrink the same "
                 f"images inside the model; log-odds averaged (companion_weight="
                 f"{cnn.companion_weight})")
    return (text + f"; precision={cnn.precision!r}, here {cnn.precision_!r}; "
            f"random_state={cnn.random_state}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--work", default=str(REPO / "benchmarks" / "results" / "pretrained-work"))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--out-dir", default=str(REPO / "cxrlearn" / "pretrained"))
    args = parser.parse_args(argv)
    if not Path(args.data, "train").is_dir():
        sys.exit(f"Kermany-224 not found at {args.data} (--data)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    paths, labels, groups = load_all(args.data)
    classes, counts = np.unique(labels, return_counts=True)
    print(f"{len(paths)} images, {len(np.unique(groups))} patients: "
          f"{dict(zip(classes.tolist(), counts.tolist()))}", flush=True)

    proba, pred, fold_of, _ = cross_validate(paths, labels, groups, args.data, work,
                                             args.folds)
    figures = card_figures(labels, proba, pred, groups)
    print(json.dumps(figures, indent=1), flush=True)

    final = work / "final_full.skops"
    from cxrlearn.io import load_model, save_model

    if final.exists():
        pipe = load_model(final)
    else:
        t0 = time.perf_counter()
        pipe = default_pipeline(args.data).fit(paths, labels)
        print(f"final fit on {len(paths)} images: {time.perf_counter() - t0:.0f} s", flush=True)
        save_model(pipe, final)

    import keras
    import sklearn

    import cxrlearn

    out_dir = Path(args.out_dir)
    model_file = out_dir / "kermany224_default.skops"
    save_model(pipe, model_file, include_optimizer=False)
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    card = {
        "name": "kermany224_default",
        "training_data": {
            "source": "Kermany et al. 2018, Mendeley Data doi:10.17632/rscbjbr9sj, CC BY 4.0 "
                      "(Kermany-224: 224 px copies of the Kaggle 'Chest X-Ray Images "
                      "(Pneumonia)' train split)",
            "folders": ["kermany224/train", "kermany224/val"],
            "images_per_class": dict(zip(classes.tolist(), counts.tolist())),
            "n_patients": int(len(np.unique(groups))),
        },
        "recipe": recipe_text(pipe),
        "cross_validation": {
            "scheme": f"StratifiedGroupKFold({args.folds}, shuffle=True, random_state=0) "
                      "by patient on train + val; each fold's model trained with the same "
                      "recipe on the other folds; figures on the pooled held-out predictions, "
                      "95% intervals by bootstrap over patients (2000 resamples) and DeLong",
            "figures": figures,
        },
        "threshold": {"value": 0.5, "applies_to": "predict_proba[:, PNEUMONIA]",
                      "how_chosen": "not tuned: the most probable class (argmax)"},
        "versions": {"cxrlearn": cxrlearn.__version__, "keras": keras.__version__,
                     "scikit-learn": sklearn.__version__, "python": platform.python_version()},
        "sha256": digest,
        "size_bytes": model_file.stat().st_size,
    }
    (out_dir / "kermany224_default.card.json").write_text(json.dumps(card, indent=1) + "\n")
    np.savez(work / "oof.npz", paths=paths.astype(str), labels=labels.astype(str),
             proba=proba, pred=pred.astype(str), fold=fold_of, groups=groups.astype(str))
    print(f"wrote {model_file} ({model_file.stat().st_size} bytes), sha256 {digest}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
