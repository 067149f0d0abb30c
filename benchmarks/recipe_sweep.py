"""Repeat the Kermany-224 recipe over seeds and variants: mean, spread, hit rate.

One training run is one draw: on Kermany-224 the val ROC-AUC of the same
recipe moves by about 0.003 between seeds, more than most of the differences
the study's comparisons look for. This script trains each named variant with
several seeds and prints, per variant, the mean / min / max val ROC-AUC, how
many seeds reach a target, and the mean accuracy at 0.5 and at the
balanced-accuracy threshold chosen on val.

Every run uses cxrlearn's own parts -- :class:`cxrlearn.ImageLoader` (equalised,
grayscale), :func:`cxrlearn.networks.build_pneumonia_cnn` and the compile step
of :class:`cxrlearn.PneumoniaCNN` (Adam, cosine decay to 1% over the run,
balanced class weights) -- but calls ``keras.Model.fit`` itself, on
in-memory arrays, so that it runs on any Keras backend (the
``balanced_batches*`` variants feed it PneumoniaCNN's ``tf.data`` source of
class-balanced batches, which every backend reads):
``KERAS_BACKEND=jax`` on a GPU machine trains a 5-epoch run in about
3 s, which is how the recipe's defaults were chosen (see the recipe page of
the documentation). On the 2-core CPU machine one run takes 6-10 minutes; use
``benchmarks/real_data.py`` there to measure the estimator itself.

Usage::

    python benchmarks/recipe_sweep.py --variants default two_dense --seeds 0 1 2 \
        --out sweep.jsonl
    python benchmarks/recipe_sweep.py --summarize sweep.jsonl   # table only
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: Variants, as changes to the recipe the GPU sweep started from:
#: PneumoniaCNN's defaults (one 256-unit dense layer, 7 epochs) with balanced
#: class weights instead of class-balanced batches (see ``_defaults``). The
#: recipe page of the documentation tabulates them.
_TWO = {"dense_units": (256, 8)}  # the study's two-layer head
_BB = {"balanced_batches": True, "class_weight": None}  # PneumoniaCNN's default
VARIANTS = {
    "default": {},
    "balanced_batches": {**_BB},
    "balanced_batches_ep5": {**_BB, "epochs": 5},
    "balanced_batches_ep8": {**_BB, "epochs": 8},
    "ep5": {"epochs": 5},
    "ep6": {"epochs": 6},
    "ep8": {"epochs": 8},
    "dense128_ep5": {"dense_units": (128,), "epochs": 5},
    "dense512_ep5": {"dense_units": (512,), "epochs": 5},
    "ema_ep5": {"ema_momentum": 0.99, "epochs": 5},
    "bs64_lr2e-3_ep5": {"batch_size": 64, "learning_rate": 2e-3, "epochs": 5},
    "two_dense": {**_TWO},
    "two_dense_ep5": {**_TWO, "epochs": 5},
    "two_dense_ep8": {**_TWO, "epochs": 8},
    "two_dense_ema_ep5": {**_TWO, "ema_momentum": 0.99, "epochs": 5},
    "two_dense_ema_ep8": {**_TWO, "ema_momentum": 0.99, "epochs": 8},
    "two_dense_lr2e-3_ep5": {**_TWO, "learning_rate": 2e-3, "epochs": 5},
    "two_dense_bs64_lr2e-3_ep5": {**_TWO, "batch_size": 64, "learning_rate": 2e-3,
                                  "epochs": 5},
    "two_dense_adamw_ep5": {**_TWO, "weight_decay": 1e-4, "epochs": 5},
    "two_dense_no_class_weight_ep5": {**_TWO, "class_weight": None, "epochs": 5},
    "two_dense_stretch_ep5": {**_TWO, "intensity": "stretch", "epochs": 5},
    "two_dense_224px_ep5": {**_TWO, "image_size": 224, "epochs": 5},
    "two_dense_aug_light": {**_TWO, "augmentation": "light"},
    "swish_ep5": {"activation": "swish", "epochs": 5},
}


def _defaults():
    from cxrlearn import PneumoniaCNN
    from cxrlearn.cli._common import DEFAULT_IMAGE_SIZE

    params = PneumoniaCNN().get_params()
    # the recorded runs weighted the classes; the balanced_batches variants do not
    params.update(balanced_batches=False, class_weight="balanced")
    params.update(image_size=DEFAULT_IMAGE_SIZE, intensity="equalize", ema_momentum=None,
                  weight_decay=None)
    return params


def load_split(root, split, size, intensity, limit):
    """Decoded ``(X, y)`` of ``root/split`` with the recipe's loader."""
    from cxrlearn import ImageLoader
    from cxrlearn.datasets import load_image_directory

    paths, labels = load_image_directory(Path(root) / split)
    paths, labels = np.asarray(paths, dtype=object), np.asarray(labels)
    if limit:
        keep = np.sort(np.random.default_rng(0).permutation(len(paths))[:limit])
        paths, labels = paths[keep], labels[keep]
    loader = ImageLoader(image_size=(size, size), color_mode="grayscale",
                         intensity=intensity, n_jobs=os.cpu_count())
    return loader.fit_transform(paths), (labels == "PNEUMONIA").astype("float32")


def run_one(data, params, seed):
    """Train one seed of one variant; return val scores, ROC-AUC trace, seconds."""
    import keras
    from _timing import val_tracer  # benchmarks/_timing.py
    from sklearn.utils.class_weight import compute_class_weight

    from cxrlearn._training import compile_model, make_training_data
    from cxrlearn.networks import build_pneumonia_cnn

    X, y, Xv, yv = data
    keras.utils.set_random_seed(seed)  # the order of fit's shuffles
    model = build_pneumonia_cnn(
        X.shape[1:], 2, dense_units=params["dense_units"], dropout=params["dropout"],
        activation=params["activation"], conv_filters=params["conv_filters"],
        batch_norm=params["batch_norm"], augmentation=params["augmentation"], seed=seed,
    )
    steps = params["epochs"] * -(-len(X) // params["batch_size"])
    optimizer = "adam"
    if params["ema_momentum"] or params["weight_decay"]:
        # compile_model uses an optimizer instance as given, schedule included
        options = {}
        if params["ema_momentum"]:
            options.update(use_ema=True, ema_momentum=params["ema_momentum"])
        if params["weight_decay"]:
            options["weight_decay"] = params["weight_decay"]
        schedule = keras.optimizers.schedules.CosineDecay(
            params["learning_rate"], decay_steps=steps, alpha=0.01)
        cls = keras.optimizers.AdamW if params["weight_decay"] else keras.optimizers.Adam
        optimizer = cls(schedule, **options)
    compile_model(model, n_classes=2, optimizer=optimizer,
                  learning_rate=params["learning_rate"], lr_schedule=params["lr_schedule"],
                  decay_steps=steps)
    class_weight = None
    if params["class_weight"] == "balanced" and not params["balanced_batches"]:
        w = compute_class_weight("balanced", classes=np.array([0.0, 1.0]), y=y)
        class_weight = {0: float(w[0]), 1: float(w[1])}
    tracer = val_tracer(keras, Xv, yv == 1, verbose=False)
    start = time.perf_counter()
    if params["balanced_batches"]:  # PneumoniaCNN's batch source for arrays (tf.data)
        batches = make_training_data(X, y, None, batch_size=params["batch_size"], seed=seed,
                                     balanced=True)
        model.fit(batches, epochs=params["epochs"], class_weight=class_weight,
                  callbacks=[tracer], verbose=0)
    else:
        model.fit(X, y, batch_size=params["batch_size"], epochs=params["epochs"],
                  shuffle=True, class_weight=class_weight, callbacks=[tracer], verbose=0)
    seconds = time.perf_counter() - start  # with the per-epoch val predictions
    trace = [epoch["val_roc_auc"] for epoch in tracer.trace]
    return model.predict(Xv, batch_size=256, verbose=0).ravel(), trace, seconds


def score(y, s):
    """ROC-AUC, misranked pairs, accuracy at 0.5 and at the val-chosen threshold."""
    from sklearn.metrics import roc_auc_score

    from cxrlearn import threshold_for_balanced_accuracy

    auc = roc_auc_score(y, s)
    thr = threshold_for_balanced_accuracy(y, s)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    return {
        "auc": round(float(auc), 5),
        "misranked_pairs": int(round((1 - auc) * n_pos * n_neg)),
        "acc_at_0.5": round(float(np.mean((s >= 0.5) == (y == 1))), 4),
        "threshold": round(float(thr), 4),
        "acc_at_threshold": round(float(np.mean((s >= thr) == (y == 1))), 4),
    }


def summarize(records, target=0.997):
    """Print one line per variant over its seeds."""
    by_name = {}
    for rec in records:
        by_name.setdefault(rec["variant"], []).append(rec)
    width = max(len("variant"), *(len(name) for name in by_name))
    print(f"{'variant':{width}s} {'runs':>4s} {'mean AUC':>9s} {'min':>7s} {'max':>7s} "
          f"{'>=' + str(target):>7s} {'acc@0.5':>8s} {'acc@thr':>8s}")
    rows = sorted(by_name.items(), key=lambda kv: -np.mean([r["auc"] for r in kv[1]]))
    for name, recs in rows:
        auc = np.array([r["auc"] for r in recs])
        print(f"{name:{width}s} {len(recs):4d} {auc.mean():9.5f} {auc.min():7.4f} {auc.max():7.4f} "
              f"{int((auc >= target).sum()):7d} "
              f"{np.mean([r['acc_at_0.5'] for r in recs]):8.4f} "
              f"{np.mean([r['acc_at_threshold'] for r in recs]):8.4f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("CXRLEARN_DATA",
                                                         REPO.parent / "shared" / "data"))
    parser.add_argument("--variants", nargs="+", default=["default", "two_dense"],
                        choices=sorted(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default=None, help="append one JSON line per run here")
    parser.add_argument("--limit", type=int, default=None,
                        help="only N images of each split (smoke runs)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no new run after this many seconds")
    parser.add_argument("--summarize", nargs="+", default=None, metavar="JSONL",
                        help="only print the table of earlier --out files")
    args = parser.parse_args(argv)

    if args.summarize:
        summarize([json.loads(line) for f in args.summarize for line in open(f)])
        return
    root = Path(args.data) / "kermany224"
    if not (root / "train").is_dir():
        sys.exit(f"real data not found at {root}; set --data or CXRLEARN_DATA")
    import keras

    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}", flush=True)
    start, cache, records = time.perf_counter(), {}, []
    for seed in args.seeds:
        for name in args.variants:
            if args.budget_s and time.perf_counter() - start > args.budget_s:
                print("budget spent; no further runs")
                break
            params = {**_defaults(), **VARIANTS[name]}
            key = (params["image_size"], params["intensity"])
            if key not in cache:
                cache[key] = (*load_split(root, "train", *key, args.limit),
                              *load_split(root, "val", *key, args.limit))
            s, trace, seconds = run_one(cache[key], params, seed)
            rec = {"variant": name, "seed": seed, "fit_s": round(seconds, 1),
                   "trace": trace, **score(cache[key][3], s)}
            print(json.dumps(rec), flush=True)
            records.append(rec)
            if args.out:
                with open(args.out, "a") as fh:
                    fh.write(json.dumps({**rec, "scores": np.round(s, 6).tolist()}) + "\n")
    summarize(records)


if __name__ == "__main__":
    main()
