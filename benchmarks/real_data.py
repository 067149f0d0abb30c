"""Train on real Kermany X-rays and report validation metrics and time.

Trains the library's default recipe (the pipeline that ``cxrlearn train``
builds) on ``<data>/kermany224/train`` and measures it on
``<data>/kermany224/val`` (split from train by patient). Hyper-parameters
and the decision threshold are chosen on ``val`` only; there is no test
split here. Prints ROC-AUC, accuracy, sensitivity, specificity (at 0.5 and
at the threshold chosen on val for a target sensitivity), precision and
training time, and writes them as JSON with ``--json-out``.

Usage::

    python benchmarks/real_data.py [--data ../shared/data] [--image-size 176]
        [--epochs N] [--stream] [--three-class] [--json-out results.json]

The data folder defaults to ``$CXRLEARN_DATA`` or ``../shared/data``; the
script exits with a message when it is absent.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _timing import val_tracer  # noqa: E402  (benchmarks/_timing.py)

REPO = Path(__file__).resolve().parents[1]


def _cross_fitted_threshold_report(paths, labels, score, pos, n_splits=5):
    """Accuracy of the val-chosen balanced-accuracy threshold on unseen patients.

    Splits val by patient into ``n_splits`` folds; each fold is predicted at
    the threshold chosen on the other folds. The pooled predictions estimate
    what choosing the threshold on val gives on new patients, where the
    report at the threshold chosen on all of val is optimistic.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    from cxrlearn import threshold_for_balanced_accuracy
    from cxrlearn.datasets import patient_ids
    from cxrlearn.metrics import clinical_report

    labels = np.asarray(labels)
    groups = patient_ids(paths)
    predicted = np.empty(len(labels), dtype=bool)
    thresholds = []
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=0)
    for fit_idx, apply_idx in splitter.split(score, labels, groups):
        t = threshold_for_balanced_accuracy(labels[fit_idx], score[fit_idx], pos_label=pos)
        thresholds.append(t)
        predicted[apply_idx] = score[apply_idx] >= t
    report = clinical_report(labels == pos, predicted.astype(float), pos_label=True,
                             threshold=0.5)
    for key in ("roc_auc", "average_precision", "threshold"):
        report.pop(key)  # hard 0/1 predictions: no ranking, no single threshold
    report["fold_thresholds"] = [round(t, 4) for t in thresholds]
    return report


def main(argv=None):
    from cxrlearn.cli._common import DEFAULT_IMAGE_SIZE, add_model_arguments, make_pipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("CXRLEARN_DATA",
                                                         REPO.parent / "shared" / "data"))
    parser.add_argument("--three-class", action="store_true",
                        help="NORMAL / BACTERIA / VIRUS from the file names")
    parser.add_argument("--target-sensitivity", type=float, default=0.95)
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--trace-val", action="store_true",
                        help="print val ROC-AUC after every epoch (its time is not counted)")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training images (smoke runs)")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    if args.trace_val and args.three_class:
        parser.error("--trace-val traces the binary ROC-AUC; drop --three-class")
    args.cache = args.cache or str(REPO / ".cxrlearn-cache")

    root = Path(args.data) / "kermany224"
    if not (root / "train").is_dir():
        sys.exit(f"real data not found at {root}; set --data or CXRLEARN_DATA")

    from cxrlearn import threshold_for_balanced_accuracy, threshold_for_sensitivity
    from cxrlearn.datasets import load_image_directory
    from cxrlearn.metrics import clinical_report, format_report, multiclass_report
    from cxrlearn.utils import import_keras

    mode = "three_class" if args.three_class else "folder"
    train_paths, train_labels = load_image_directory(root / "train", label_mode=mode)
    val_paths, val_labels = load_image_directory(root / "val", label_mode=mode)
    if args.limit:
        rng = np.random.default_rng(0)
        keep = np.sort(rng.permutation(len(train_paths))[: args.limit])
        train_paths, train_labels = train_paths[keep], train_labels[keep]
    pipe = make_pipeline(args)
    print(f"train {len(train_paths)} images, val {len(val_paths)} images, "
          f"image size {args.image_size} (default {DEFAULT_IMAGE_SIZE})", flush=True)
    print(pipe.named_steps["cnn"], flush=True)

    result = {}
    t0 = time.perf_counter()
    pipe.named_steps["loader"].transform(train_paths)  # decode once into the cache
    decode_s = time.perf_counter() - t0
    tracer = None
    if args.trace_val:
        tracer = val_tracer(import_keras(), pipe.named_steps["loader"].transform(val_paths),
                            np.asarray(val_labels) == "PNEUMONIA")
        cnn = pipe.named_steps["cnn"]
        cnn.set_params(callbacks=[*(cnn.callbacks or []), tracer])
    t0 = time.perf_counter()
    pipe.fit(train_paths, train_labels)
    train_s = time.perf_counter() - t0
    if tracer is not None:
        train_s -= tracer.seconds  # validation tracing is not training time
        result["val_trace"] = tracer.trace
    proba = pipe.predict_proba(val_paths)
    classes = list(pipe.classes_)
    result.update({
        "image_size": args.image_size,
        "n_train": int(len(train_paths)),
        "n_val": int(len(val_paths)),
        "decode_seconds": round(decode_s, 1),
        "train_seconds": round(train_s, 1),
        "epochs_run": len(pipe.named_steps["cnn"].history_["loss"]),
        "params": {k: repr(v) for k, v in pipe.named_steps["cnn"].get_params().items()
                   if k not in ("callbacks",)},
    })
    if len(classes) == 2:
        pos = "PNEUMONIA"
        score = proba[:, classes.index(pos)]
        at_half = clinical_report(val_labels, score, pos_label=pos, threshold=0.5)
        thr = threshold_for_sensitivity(val_labels, score, args.target_sensitivity,
                                        pos_label=pos)
        at_thr = clinical_report(val_labels, score, pos_label=pos, threshold=thr)
        bal_thr = threshold_for_balanced_accuracy(val_labels, score, pos_label=pos)
        at_bal = clinical_report(val_labels, score, pos_label=pos, threshold=bal_thr)
        crossfit = _cross_fitted_threshold_report(val_paths, val_labels, score, pos)
        result.update(at_0_5=at_half, at_val_threshold=at_thr,
                      at_balanced_accuracy_threshold=at_bal,
                      balanced_accuracy_threshold_cross_fitted=crossfit)
        result["val_scores"] = {Path(p).name: round(float(v), 6)
                                for p, v in zip(val_paths, score)}
        print("\n== val, threshold 0.5 ==")
        print(format_report(at_half))
        print(f"\n== val, threshold {thr:.4f} chosen on val for sensitivity >= "
              f"{args.target_sensitivity} ==")
        print(format_report(at_thr))
        print(f"\n== val, threshold {bal_thr:.4f} chosen on val for the best balanced "
              "accuracy (optimistic: chosen and measured on the same images) ==")
        print(format_report(at_bal))
        print("\n== val, balanced-accuracy threshold cross-fitted: chosen on 4/5 of the "
              "val patients, applied to the other 1/5, pooled ==")
        print(format_report(crossfit))
    else:
        report = multiclass_report(val_labels, proba, classes=classes)
        result.update(multiclass=report)
        print(format_report(report))
    print(f"\ndecode (once, cached): {decode_s:.1f} s; training: {train_s:.1f} s "
          f"({train_s / 60:.1f} min) for {result['epochs_run']} epochs")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
