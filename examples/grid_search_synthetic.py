"""Tune the study's knobs with GridSearchCV on file paths, then pick an operating point.

Runs on the built-in SYNTHETIC X-rays (written to a temporary folder as PNG
files), so it needs no data set:

1. a ``[ImageLoader, PneumoniaCNN]`` pipeline on file paths;
2. ``GridSearchCV`` over activation x dropout x class weight, ROC-AUC
   scoring, folds split by patient, decoded images cached once;
3. a threshold for 95% sensitivity chosen on held-out validation images;
4. a ROC plot with the operating points, saved as ``roc_operating_points.png``.

Usage::

    python examples/grid_search_synthetic.py [--n-images 240] [--epochs 4] [--out DIR]
"""

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=240)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", default=".")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.pipeline import Pipeline

    from cxrlearn import ImageLoader, PneumoniaCNN, threshold_for_sensitivity
    from cxrlearn.datasets import patient_ids, write_synthetic_xray_directory
    from cxrlearn.metrics import clinical_report, format_report, plot_operating_points

    with tempfile.TemporaryDirectory() as tmp:
        paths, labels = write_synthetic_xray_directory(Path(tmp) / "train", args.n_images,
                                                       64, random_state=0)
        val_paths, val_labels = write_synthetic_xray_directory(
            Path(tmp) / "val", args.n_images // 2, 64, random_state=1)
        paths, labels = np.asarray(paths, dtype=object), np.asarray(labels)

        pipe = Pipeline([
            ("loader", ImageLoader(image_size=64, color_mode="grayscale",
                                   memory=Path(tmp) / "cache")),
            # a small network for 64 px synthetic images; the study's default
            # network needs images of at least 172 px
            ("cnn", PneumoniaCNN(conv_filters=(16, 32, 64), dense_units=(64,),
                                 epochs=args.epochs, random_state=0)),
        ])
        grid = GridSearchCV(
            pipe,
            {
                "cnn__activation": ["relu", "swish"],
                "cnn__dropout": [0.2, 0.5],
                "cnn__class_weight": [None, "balanced"],
            },
            scoring="roc_auc",
            cv=StratifiedGroupKFold(3),
        )
        grid.fit(paths, labels, groups=patient_ids(paths))
        order = np.argsort(grid.cv_results_["rank_test_score"])
        print("rank  mean ROC-AUC  params")
        for i in order:
            print(f"{grid.cv_results_['rank_test_score'][i]:>4}  "
                  f"{grid.cv_results_['mean_test_score'][i]:>12.4f}  "
                  f"{grid.cv_results_['params'][i]}")

        score = grid.predict_proba(np.asarray(val_paths, dtype=object))[:, 1]
        thr = threshold_for_sensitivity(val_labels, score, 0.95, pos_label="PNEUMONIA")
        print(f"\nvalidation, threshold {thr:.3f} chosen for sensitivity >= 0.95:")
        print(format_report(clinical_report(val_labels, score, pos_label="PNEUMONIA",
                                            threshold=thr)))
        ax = plot_operating_points(val_labels, score, pos_label="PNEUMONIA",
                                   thresholds={"0.5": 0.5, "sensitivity 0.95": thr})
        out = Path(args.out) / "roc_operating_points.png"
        ax.figure.savefig(out, dpi=120, bbox_inches="tight")
        print(f"saved {out}")


if __name__ == "__main__":
    main()
