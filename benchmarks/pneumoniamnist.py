"""PneumoniaMNIST (28x28): train on its train split, choose on its val split.

The official test split is not in ``../shared/data``; its images come from
other patients and a shifted class mix (37.5% normal against 25.8% in
train). So this script reports val figures and a *prior-shift check*: the
val accuracy re-weighted to the test split's class mix, at a threshold
chosen on val for balanced accuracy (which does not depend on the class
mix) and at 0.5 with balanced class weights.

PneumoniaMNIST's own val split shares patients with its train split, so its
val figures flatter. ``--grouped-cv K`` estimates the recipe instead by
K-fold cross-validation over train + val split by patient, with the patient
of each image found by ``benchmarks/pneumoniamnist_patients.py`` (run it
first): the folds score the images whose patient is known, each by a model
trained on the other folds' images and on the images whose patient is not
known (never scored); figures come with 95% intervals from a bootstrap over
patients, and the balanced-accuracy threshold of each fold is chosen on the
other folds' held-out predictions (cross-fitted), so no figure is chosen on
the images it is measured on.

Variants of the 28 px pipeline: ``--intensity equalize`` (or ``stretch``)
normalises each image's grey levels as ``ImageLoader(intensity=...)`` does
for files, and ``--image-size`` upsamples the images (bicubic) before the
network (42 and 56 px gained nothing reproducible over 28 px in grouped
cross-validation, so the default keeps them as they are); ``--augmentation``
chooses the training augmentation (none by default: it ranked and decided
better than the former geometric augmentation with two seeds; or a preset
with contrast and brightness) and ``--width`` multiplies the convolution
filters.
With ``--grouped-cv``, ``--save NAME`` keeps the held-out
predictions (``benchmarks/results/pneumoniamnist-cv/NAME.npz``, not
versioned) and ``--compare NAME`` adds the paired differences against a
saved run over the same folds (:func:`cxrlearn.evaluation.paired_bootstrap`,
resampling patients).

The official test split is for whoever holds it (the full MedMNIST
``pneumoniamnist.npz``, with ``test_images`` / ``test_labels``):
``--final-fit MODEL`` trains the recipe on train + val (every image here;
nothing is chosen on them, the recipe and its decision at 0.5 were chosen
by the grouped cross-validation) and saves it with
:func:`cxrlearn.io.save_model`, the grey-level and size settings beside it
in ``MODEL.json``; ``--test NPZ`` scores that file's test split with the
model just trained or with ``--model MODEL``, at the model's own decision
(``predict``: 0.5), with 95% intervals from a bootstrap over images (the
test split names no patients). The test split is only ever scored, never
used to choose.

Usage::

    python benchmarks/pneumoniamnist.py [--data ../shared/data] [--epochs 30] [--networks 1]
        [--intensity raw] [--image-size 28] [--augmentation none] [--width 1]
        [--dropout 0.3] [--label-smoothing 0] [--grouped-cv 5 [--save NAME] [--compare OTHER]]
    python benchmarks/pneumoniamnist.py --final-fit MODEL [--test pneumoniamnist.npz]
    python benchmarks/pneumoniamnist.py --model MODEL --test pneumoniamnist.npz
"""

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "benchmarks" / "results" / "pneumoniamnist-cv"
TEST_NORMAL_FRACTION = 234 / 624  # MedMNIST v2 PneumoniaMNIST test split
#: --augmentation: none (the default), the geometric augmentation the recipe had
#: before, or the presets of cxrlearn.networks.AUGMENTATION_PRESETS (these add
#: contrast and brightness)
AUGMENTATIONS = {
    "geometric": {"rotation": 0.03, "zoom": 0.08, "translation": 0.06},
    "none": None,
    "light": "light",
    "standard": "standard",
}


def prepare(X, intensity, image_size):
    """The images as the network sees them: grey levels normalised, resized."""
    from PIL import Image

    from cxrlearn._decoders import _normalize_intensity  # ImageLoader's, for arrays

    out = []
    for image in X[..., 0]:
        if image_size != image.shape[0]:
            image = np.asarray(Image.fromarray(image).resize((image_size, image_size),
                                                             Image.Resampling.BICUBIC))
        out.append(_normalize_intensity(np.clip(image, 0.0, 1.0), intensity))
    return np.stack(out)[..., np.newaxis].astype(np.float32)


def shifted_accuracy(y_true, y_pred, normal_fraction):
    """Accuracy re-weighted to a class mix with ``normal_fraction`` normals."""
    from cxrlearn.evaluation import at_prevalence

    spec = np.mean(y_pred[y_true == 0] == 0)
    sens = np.mean(y_pred[y_true == 1] == 1)
    return at_prevalence(sens, spec, 1 - normal_fraction)["accuracy"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("CXRLEARN_DATA",
                                                         REPO.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--networks", type=int, default=1,
                        help="PneumoniaCNN(n_networks=...): a seed ensemble")
    parser.add_argument("--grouped-cv", type=int, default=0, metavar="K",
                        help="K folds split by patient over train + val instead of the val split")
    parser.add_argument("--intensity", choices=["raw", "stretch", "equalize"], default="raw",
                        help="per-image grey-level normalisation (default: raw)")
    # 42 and 56 px gained nothing reproducible in grouped CV (docs/recipe.rst, PneumoniaMNIST)
    parser.add_argument("--image-size", type=int, default=28,
                        help="upsample the 28 px images to this size first (default: 28)")
    # none ranked and decided better than geometric with seeds 0 and 1 in grouped CV
    # (docs/recipe.rst, PneumoniaMNIST)
    parser.add_argument("--augmentation", choices=list(AUGMENTATIONS), default="none",
                        help="training augmentation (default: none; geometric was the "
                             "recipe's before)")
    parser.add_argument("--width", type=int, default=1,
                        help="multiply the convolution filters (32-64-128) by this")
    parser.add_argument("--dropout", type=float, default=0.3,
                        help="PneumoniaCNN(dropout=...) (default: 0.3)")
    parser.add_argument("--label-smoothing", type=float, default=0.0,
                        help="PneumoniaCNN(label_smoothing=...) (default: 0)")
    parser.add_argument("--save", metavar="NAME",
                        help="with --grouped-cv: keep the held-out predictions as NAME")
    parser.add_argument("--compare", metavar="NAME",
                        help="with --grouped-cv: paired differences against saved run NAME")
    parser.add_argument("--final-fit", metavar="MODEL",
                        help="train on train + val and save the model to MODEL")
    parser.add_argument("--model", metavar="MODEL",
                        help="with --test: a model saved by --final-fit")
    parser.add_argument("--test", metavar="NPZ",
                        help="score the test split of this MedMNIST file (with --final-fit "
                             "or --model)")
    args = parser.parse_args(argv)
    if (args.save or args.compare) and not args.grouped_cv:
        parser.error("--save and --compare need --grouped-cv")
    if args.grouped_cv and (args.final_fit or args.model or args.test):
        parser.error("--grouped-cv estimates the recipe; --final-fit, --model and --test "
                     "train or score the final model: run them separately")
    if args.final_fit and args.model:
        parser.error("--final-fit trains a model, --model loads one: give one of them")
    if args.model and not args.test:
        parser.error("--model needs --test")
    if args.test and not (args.final_fit or args.model):
        parser.error("--test needs --final-fit or --model")
    if args.test and not Path(args.test).is_file():
        parser.error(f"no file {args.test}")
    if args.model:
        score_test(*load_final(args.model), args.test)
        return
    if args.compare and not (RUNS / f"{args.compare}.npz").is_file():
        parser.error(f"no saved run {args.compare!r} in {RUNS}")
    npz = Path(args.data) / "pneumoniamnist" / "pneumoniamnist_trainval.npz"
    if not npz.is_file():
        raise SystemExit(f"PneumoniaMNIST not found at {npz}; set --data or CXRLEARN_DATA")
    if args.grouped_cv:
        grouped_cv(npz, args)
    elif args.final_fit:
        clf, settings = final_fit(npz, args)
        if args.test:
            score_test(clf, settings, args.test)
    else:
        on_val(npz, args)


def make_classifier(args):
    """The 28 px recipe."""
    from cxrlearn import PneumoniaCNN

    return PneumoniaCNN(
        conv_filters=tuple(args.width * f for f in (32, 64, 128)),
        dense_units=(256, 8),
        batch_norm=True,
        dropout=args.dropout,
        augmentation=AUGMENTATIONS[args.augmentation],
        label_smoothing=args.label_smoothing,
        class_weight="balanced",
        balanced_batches=False,  # the configuration its figures were measured with
        epochs=args.epochs,
        n_networks=args.networks,
        batch_size=64,
        random_state=args.random_state,
    )


def train_and_val(npz, args):
    """PneumoniaMNIST train + val, prepared as the network sees them, and their labels."""
    from cxrlearn.datasets import load_medmnist

    X, y = load_medmnist(npz, "train")
    Xv, yv = load_medmnist(npz, "val")
    return prepare(np.concatenate([X, Xv]), args.intensity, args.image_size), np.r_[y, yv]


def format_figures(boot):
    """ROC-AUC, accuracy, sensitivity and specificity of a bootstrap, with intervals."""
    i = boot.intervals
    return "; ".join(f"{m} {i[m].estimate:.4f} ({i[m].low:.4f}-{i[m].high:.4f})"
                     for m in ("roc_auc", "accuracy", "sensitivity", "specificity") if m in i)


def youden_threshold(y, p):
    """The threshold of the best balanced accuracy (sensitivity + specificity)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, p)
    return float(thr[np.argmax(tpr - fpr)])


def on_val(npz, args):
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from cxrlearn.datasets import load_medmnist

    X, y = load_medmnist(npz, "train")
    Xv, yv = load_medmnist(npz, "val")
    X, Xv = prepare(X, args.intensity, args.image_size), prepare(Xv, args.intensity,
                                                                 args.image_size)
    clf = make_classifier(args)
    t0 = time.perf_counter()
    clf.fit(X, y)
    seconds = time.perf_counter() - t0
    p = clf.predict_proba(Xv)[:, 1]
    auc = roc_auc_score(yv, p)
    chosen = youden_threshold(yv, p)  # max balanced accuracy, prior-free
    print(f"train {len(y)} / val {len(yv)} images 28x28; {args.networks} network(s) x "
          f"{args.epochs} epochs in {seconds:.0f} s")
    print(f"val ROC-AUC {auc:.4f}")
    for name, t in (("0.5", 0.5), (f"{chosen:.3f} (val, max balanced acc.)", chosen)):
        pred = (p >= t).astype(int)
        print(f"threshold {name}: val accuracy {np.mean(pred == yv):.4f}, balanced "
              f"accuracy {balanced_accuracy_score(yv, pred):.4f}, accuracy at the test "
              f"class mix {shifted_accuracy(yv, pred, TEST_NORMAL_FRACTION):.4f}")


def grouped_cv(npz, args):
    from sklearn.model_selection import StratifiedGroupKFold

    from cxrlearn.evaluation import bootstrap_metrics

    groups_file = REPO / "benchmarks" / "results" / "pneumoniamnist-patients.npz"
    if not groups_file.is_file():
        raise SystemExit(f"{groups_file} is missing: run benchmarks/pneumoniamnist_patients.py")
    X, y = train_and_val(npz, args)
    with np.load(groups_file) as g:
        patient = g["patient"]
        if not np.array_equal(g["label"], y):
            raise SystemExit(f"{groups_file} was made from another PneumoniaMNIST file")
    known = np.flatnonzero(patient != "")
    unknown = np.flatnonzero(patient == "")
    folds = StratifiedGroupKFold(args.grouped_cv, shuffle=True, random_state=0)
    proba = np.full(len(y), np.nan)
    fold_of = np.full(len(y), -1)
    seconds = []
    for k, (tr, te) in enumerate(folds.split(known, y[known], patient[known])):
        train = np.concatenate([known[tr], unknown])
        clf = make_classifier(args)
        t0 = time.perf_counter()
        clf.fit(X[train], y[train])
        seconds.append(time.perf_counter() - t0)
        proba[known[te]] = clf.predict_proba(X[known[te]])[:, 1]
        fold_of[known[te]] = k
        print(f"fold {k}: trained on {len(train)}, scored {len(te)} in {seconds[-1]:.0f} s",
              flush=True)
    yk, pk, fk, gk = y[known], proba[known], fold_of[known], patient[known]
    # each fold's threshold is chosen on the other folds' held-out predictions
    cross_fitted = np.empty(len(yk), dtype=int)
    thresholds = []
    for k in range(args.grouped_cv):
        t = youden_threshold(yk[fk != k], pk[fk != k])
        thresholds.append(t)
        cross_fitted[fk == k] = pk[fk == k] >= t
    print(f"{args.grouped_cv}-fold CV by patient over {len(known)} images of "
          f"{len(np.unique(gk))} patients ({len(unknown)} more, of no known patient, only "
          f"trained on); {args.networks} network(s) x {args.epochs} epochs, "
          f"{args.image_size} px, intensity {args.intensity}, augmentation "
          f"{args.augmentation}, width x{args.width}, dropout {args.dropout}, label "
          f"smoothing {args.label_smoothing}; fits "
          f"{min(seconds):.0f}-{max(seconds):.0f} s")
    decisions = {"0.5": (pk >= 0.5).astype(int), "cross-fitted": cross_fitted}
    for name, pred in (("0.5", decisions["0.5"]),
                       ("cross-fitted balanced-accuracy threshold "
                        f"({min(thresholds):.3f}-{max(thresholds):.3f})", cross_fitted)):
        boot = bootstrap_metrics(yk, pk, y_pred=pred, pos_label=1, groups=gk,
                                 n_resamples=2000, random_state=0)
        print(f"at {name}: {format_figures(boot)}; accuracy at the test class mix "
              f"{shifted_accuracy(yk, pred, TEST_NORMAL_FRACTION):.4f}")
    if args.compare:
        compare(args.compare, yk, pk, decisions, gk)
    if args.save:
        RUNS.mkdir(parents=True, exist_ok=True)
        np.savez(RUNS / f"{args.save}.npz", index=known, label=yk, proba=pk, fold=fk,
                 patient=gk, pred_05=decisions["0.5"], pred_cross_fitted=cross_fitted,
                 seconds=np.array(seconds), settings=np.array(repr(vars(args))))
        print(f"held-out predictions saved to {RUNS / args.save}.npz")


def final_fit(npz, args):
    """Train the recipe on train + val; save it and its settings; return both."""
    from cxrlearn.io import save_model

    X, y = train_and_val(npz, args)
    clf = make_classifier(args)
    t0 = time.perf_counter()
    clf.fit(X, y)
    seconds = time.perf_counter() - t0
    save_model(clf, args.final_fit)
    settings = {
        "intensity": args.intensity, "image_size": args.image_size,
        "recipe": {key: getattr(args, key) for key in
                   ("epochs", "random_state", "networks", "augmentation", "width",
                    "dropout", "label_smoothing")},
        "trained_on": f"{npz.name}: train + val, {len(y)} images "
                      f"({int(np.sum(y == 0))} normal)",
        "fit_seconds": round(seconds, 1),
        "model_sha256": _sha256(args.final_fit),
    }
    Path(f"{args.final_fit}.json").write_text(json.dumps(settings, indent=2) + "\n")
    print(f"trained on {len(y)} images (train + val) in {seconds:.0f} s; saved to "
          f"{args.final_fit}, settings in {args.final_fit}.json")
    return clf, settings


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_final(path):
    """A model saved by ``--final-fit`` and its settings, checked to belong together."""
    from cxrlearn.io import load_model

    card = Path(f"{path}.json")
    if not card.is_file():
        raise SystemExit(f"{card} is missing: the model's grey-level and size settings are "
                         "in it; without them its input could be prepared wrongly")
    settings = json.loads(card.read_text())
    if settings.get("model_sha256") != _sha256(path):
        raise SystemExit(f"{path} is not the model {card} describes (its SHA-256 differs): "
                         "the two files were separated or one was changed")
    return load_model(path), settings


def score_test(clf, settings, test_npz):
    """ROC-AUC and the model's own decisions on a MedMNIST file's test split."""
    from cxrlearn.datasets import load_medmnist
    from cxrlearn.evaluation import bootstrap_metrics

    X, y = load_medmnist(test_npz, "test")
    X = prepare(X, settings["intensity"], settings["image_size"])
    seen = clf.trained_on(X)  # a model of --final-fit always knows its training images
    if seen.any():  # the same films scored as test would flatter
        print(f"WARNING: {int(seen.sum())} of the {len(y)} test images (as they are, or the "
              "same films at another size or encoding) were used to train this model")
    proba = clf.predict_proba(X)[:, 1]
    pred = clf.predict(X)
    boot = bootstrap_metrics(y, proba, y_pred=pred, pos_label=1, n_resamples=2000,
                             random_state=0)
    figures = format_figures(boot)
    print(f"test split of {Path(test_npz).name}: {len(y)} images "
          f"({int(np.sum(y == 0))} normal), {settings['image_size']} px, intensity "
          f"{settings['intensity']}, {int(seen.sum())} of them trained on; at the model's own "
          f"decision (0.5): {figures}")
    return boot


def compare(name, y, proba, decisions, patient):
    """Paired differences (this run - run ``name``) over the same folds."""
    from cxrlearn.evaluation import paired_bootstrap

    with np.load(RUNS / f"{name}.npz", allow_pickle=False) as other:
        if not (np.array_equal(other["label"], y) and np.array_equal(other["patient"], patient)):
            raise SystemExit(f"run {name!r} scored other images or patients: not comparable")
        other = {key: other[key] for key in ("proba", "pred_05", "pred_cross_fitted")}
    for decision, key in (("0.5", "pred_05"), ("cross-fitted", "pred_cross_fitted")):
        diff = paired_bootstrap(y, proba, other["proba"], y_pred_a=decisions[decision],
                                y_pred_b=other[key], pos_label=1, groups=patient,
                                n_resamples=2000, random_state=0)
        text = "; ".join(
            f"{m} {i.estimate:+.4f} ({i.low:+.4f}, {i.high:+.4f}) p={diff.pvalues[m]:.3f}"
            for m, i in diff.intervals.items()
            if m in ("roc_auc", "accuracy", "sensitivity", "specificity"))
        print(f"this - {name}, at {decision}: {text}")


if __name__ == "__main__":
    main()
