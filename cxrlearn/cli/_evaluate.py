"""``cxrlearn evaluate`` and ``cxrlearn predict``: use a saved pipeline."""

import numpy as np

from ._common import CLIError, dumps_json, find_splits, load_folder, load_model, positive_label


def _threshold(model):
    """The decision threshold of a thresholded meta-estimator, else 0.5."""
    for name in ("threshold_", "best_threshold_", "threshold"):
        value = getattr(model, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    return 0.5


def evaluate_model(model, paths, labels):
    """Clinical (binary) or multiclass report of ``model`` on images."""
    from ..metrics import clinical_report, multiclass_report

    proba = model.predict_proba(paths)
    classes = list(model.classes_)
    unknown = sorted(set(np.unique(labels).tolist()) - set(classes))
    if unknown:
        raise CLIError(f"labels {unknown} were not seen in training (classes: {classes})")
    if len(classes) == 2:
        pos = positive_label(classes)
        return clinical_report(labels, proba[:, classes.index(pos)], pos_label=pos,
                               threshold=_threshold(model))
    return multiclass_report(labels, proba, classes=classes)


def add_evaluate_parser(sub):
    parser = sub.add_parser(
        "evaluate",
        help="score a saved pipeline on a labelled folder",
        description="Print ROC-AUC, accuracy, precision, recall/sensitivity, "
        "specificity and the confusion matrix of MODEL on DATA_DIR/<LABEL>/* "
        "(or DATA_DIR/val when DATA_DIR has train/val folders).",
    )
    parser.add_argument("model", help="a .joblib pipeline from cxrlearn train/tune/demo")
    parser.add_argument("data", metavar="DATA_DIR")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args):
    model = load_model(args.model)
    train_dir, val_dir = find_splits(args.data)
    paths, labels = load_folder(val_dir or train_dir,
                                label_mode="three_class" if len(model.classes_) == 3
                                else "folder")
    report = evaluate_model(model, paths, labels)
    if args.json:
        print(dumps_json(report))
    else:
        from ..metrics import format_report

        print(format_report(report))
    return 0


def add_predict_parser(sub):
    parser = sub.add_parser(
        "predict",
        help="label new X-ray files with a saved pipeline",
        description="Print the predicted label and the probability of each class "
        "for each FILE.",
    )
    parser.add_argument("model", help="a .joblib pipeline from cxrlearn train/tune/demo")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.set_defaults(run=run_predict)


def run_predict(args):
    import json

    model = load_model(args.model)
    paths = np.asarray(args.files, dtype=object)
    proba = model.predict_proba(paths)
    classes = list(model.classes_)
    threshold = _threshold(model)
    if len(classes) == 2:
        pos = classes.index(positive_label(classes))
        pred = [classes[pos] if p >= threshold else classes[1 - pos] for p in proba[:, pos]]
    else:
        pred = [classes[i] for i in np.argmax(proba, axis=1)]
    for path, label, row in zip(args.files, pred, proba):
        probs = {str(c): round(float(p), 6) for c, p in zip(classes, row)}
        if args.json:
            print(json.dumps({"file": path, "label": str(label), "probabilities": probs}))
        else:
            shown = "  ".join(f"{c}={p:.4f}" for c, p in probs.items())
            print(f"{path}\t{label}\t{shown}")
    return 0
