"""Reproduce the study's comparisons on real Kermany X-rays.

One factor at a time around a base recipe, as in the study's tuning
history: ReLU vs Swish, dropout on vs off, one vs two dense layers,
augmentation on vs off, and class weights (none, normal x1.2, normal x2,
balanced). The base recipe is the library's defaults with ``--epochs``
epochs, except that, like the study, it weights the classes ("balanced")
instead of balancing the batches (``balanced_batches=False``), so that the
class-weight variants act; variants equal to it share one training run.
Each variant trains on ``kermany224/train`` and is measured on
``kermany224/val`` (split by patient); nothing is chosen on any other data.
Prints a Markdown table (ROC-AUC, accuracy, sensitivity, specificity at
0.5, training time) and writes it with ``--out``.

Usage::

    python examples/study_comparisons.py [--data ../shared/data] [--epochs 3]
        [--limit 1200] [--image-size 176] [--only activation,dropout]
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]

VARIANTS = {
    "activation": [{"activation": "relu"}, {"activation": "swish"}],
    "dropout": [{"dropout": 0.5}, {"dropout": 0.0}],
    "dense layers": [{"dense_units": (256,)}, {"dense_units": (256, 8)}],
    "augmentation": [{"augmentation": None}, {"augmentation": "light"}],
    "class weight": [
        {"class_weight": None},
        {"class_weight": {"NORMAL": 1.2}},
        {"class_weight": {"NORMAL": 2.0}},
        {"class_weight": "balanced"},
    ],
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("CXRLEARN_DATA",
                                                         REPO.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None,
                        help="train on a random subset of N images")
    parser.add_argument("--image-size", type=int, default=176)
    parser.add_argument("--only", default=None, help="comma-separated factors")
    parser.add_argument("--out", default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)

    import numpy as np
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    from cxrlearn import ImageLoader, PneumoniaCNN
    from cxrlearn.datasets import load_image_directory
    from cxrlearn.metrics import clinical_report

    root = Path(args.data) / "kermany224"
    if not (root / "train").is_dir():
        raise SystemExit(f"real data not found at {root}; set --data or CXRLEARN_DATA")
    paths, labels = load_image_directory(root / "train")
    val_paths, val_labels = load_image_directory(root / "val")
    if args.limit:
        keep = np.sort(np.random.default_rng(0).permutation(len(paths))[: args.limit])
        paths, labels = paths[keep], labels[keep]
    base = Pipeline([
        ("loader", ImageLoader(image_size=args.image_size, color_mode="grayscale",
                               intensity="equalize", n_jobs=2,
                               memory=REPO / ".cxrlearn-cache")),
        ("cnn", PneumoniaCNN(epochs=args.epochs, balanced_batches=False,
                             class_weight="balanced", random_state=0)),
    ])
    factors = args.only.split(",") if args.only else list(VARIANTS)
    rows = ["| factor | variant | ROC-AUC | accuracy | sensitivity | specificity | train s |",
            "|---|---|---|---|---|---|---|"]
    base_params = base.named_steps["cnn"].get_params()
    base_result = None  # variants equal to the base recipe share one training run
    for factor in factors:
        for variant in VARIANTS[factor]:
            is_base = all(base_params[k] == v for k, v in variant.items())
            if is_base and base_result is not None:
                r, seconds = base_result
            else:
                pipe = clone(base).set_params(**{f"cnn__{k}": v for k, v in variant.items()})
                t0 = time.perf_counter()
                pipe.fit(paths, labels)
                seconds = time.perf_counter() - t0
                pos = list(pipe.classes_).index("PNEUMONIA")
                score = pipe.predict_proba(val_paths)[:, pos]
                r = clinical_report(val_labels, score, pos_label="PNEUMONIA")
                if is_base:
                    base_result = (r, seconds)
            text = ", ".join(f"{k}={v}" for k, v in variant.items())
            text += " (base)" if is_base else ""
            rows.append(f"| {factor} | {text} | {r['roc_auc']:.4f} | {r['accuracy']:.4f} | "
                        f"{r['sensitivity']:.4f} | {r['specificity']:.4f} | {seconds:.0f} |")
            print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(f"\ntrain {len(paths)} images, val {len(val_paths)}, {args.epochs} epochs, "
          f"{args.image_size}px grayscale, equalised\n")
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
