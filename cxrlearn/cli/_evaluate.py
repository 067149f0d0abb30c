"""``cxrlearn evaluate`` and ``cxrlearn predict``: use a saved pipeline.

Nothing is decided here: labels come from the model's own ``predict`` and
the reported threshold from its own attributes (see
:func:`~cxrlearn.cli._common.operating_point`).
"""

import numpy as np

from ._common import (
    CLIError,
    add_model_file_argument,
    check_prevalences,
    dumps_json,
    find_splits,
    load_folder,
    load_model_from_args,
    operating_point,
    status,
    warn_trained_on,
)


def evaluate_model(model, paths, labels):
    """Clinical (binary) or multiclass report of ``model`` on images.

    The predicted labels are ``model.predict(paths)``; the probabilities
    (for ROC-AUC and average precision) ``model.predict_proba(paths)``.
    """
    from ..metrics import clinical_report, multiclass_report

    classes = list(model.classes_)
    unknown = sorted(set(np.unique(labels).tolist()) - set(classes))
    if unknown:
        raise CLIError(f"labels {unknown} were not seen in training (classes: {classes})")
    proba = model.predict_proba(paths)
    pred = model.predict(paths)
    if len(classes) != 2:
        return multiclass_report(labels, proba, classes=classes, y_pred=pred)
    point = operating_point(model)
    pos = point["pos_label"]
    report = clinical_report(labels, proba[:, classes.index(pos)], pos_label=pos,
                             threshold=point["threshold"], y_pred=pred)
    report["threshold_applies_to"] = point["applies_to"]
    return report


def add_evaluate_parser(sub):
    parser = sub.add_parser(
        "evaluate",
        help="score a saved pipeline on a labelled folder",
        description="Print ROC-AUC, accuracy, precision, recall/sensitivity, "
        "specificity and the confusion matrix of MODEL on DATA_DIR/<LABEL>/* "
        "(or DATA_DIR/val when DATA_DIR has train/val folders). Labels are "
        "MODEL's own predictions, at its own operating point.",
    )
    add_model_file_argument(parser)
    parser.add_argument("data", metavar="DATA_DIR")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--prevalence", type=float, action="append", default=None,
                        metavar="P",
                        help="also give accuracy, PPV and NPV at this share of the positive "
                             "class (e.g. your hospital's), from the sensitivity and "
                             "specificity measured here; repeat for several")
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args):
    check_prevalences(args.prevalence)
    model = load_model_from_args(args)
    if args.prevalence and len(model.classes_) != 2:
        raise CLIError("--prevalence needs a model of two classes")
    train_dir, val_dir = find_splits(args.data)
    paths, labels = load_folder(val_dir or train_dir,
                                label_mode="three_class" if len(model.classes_) == 3
                                else "folder")
    report = evaluate_model(model, paths, labels)
    if args.prevalence:
        from ..evaluation import at_prevalence

        report["at_prevalence"] = [
            {"prevalence": p, **at_prevalence(report["sensitivity"],
                                              report["specificity"], p)}
            for p in args.prevalence]
    n_seen = warn_trained_on(model, paths, val_dir or train_dir, model_name=args.model)
    if n_seen is not None:
        report["n_trained_on"] = n_seen
    if args.json:
        print(dumps_json(report))
    else:
        from ..metrics import format_report

        rows = report.pop("at_prevalence", [])
        print(format_report(report))
        for row in rows:
            print(f"at prevalence {row['prevalence']:.2f}: " + "  ".join(
                f"{name} {row[name]:.4f}" for name in ("accuracy", "ppv", "npv")))
    return 0


def add_predict_parser(sub):
    parser = sub.add_parser(
        "predict",
        help="label new X-ray files with a saved pipeline",
        description="Print the label MODEL predicts (at its own operating point) "
        "and the probability of each class for each FILE, and warn about the "
        "FILEs MODEL was trained on (as they are, or the same films at another "
        "size or encoding).",
    )
    add_model_file_argument(parser)
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.set_defaults(run=run_predict)


def run_predict(args):
    import json

    from ..evaluation import trained_on

    model = load_model_from_args(args)
    paths = np.asarray(args.files, dtype=object)
    proba = model.predict_proba(paths)
    pred = model.predict(paths)
    seen = trained_on(model, paths)  # None: the model cannot tell
    classes = list(model.classes_)
    point = operating_point(model) if len(classes) == 2 else None
    for i, (path, label, row) in enumerate(zip(args.files, pred, proba)):
        probs = {str(c): round(float(p), 6) for c, p in zip(classes, row)}
        if args.json:
            record = {"file": path, "label": str(label), "probabilities": probs,
                      "trained_on": None if seen is None else bool(seen[i])}
            if point is not None:
                record["threshold"] = point["threshold"]
                record["threshold_applies_to"] = point["applies_to"]
            print(json.dumps(record))
        else:
            shown = "  ".join(f"{c}={p:.4f}" for c, p in probs.items())
            print(f"{path}\t{label}\t{shown}")
    if seen is not None and seen.any():
        status(f"WARNING: {int(seen.sum())} of the {len(paths)} files were used to train "
               f"{args.model} (as they are, or the same films at another size or "
               "encoding): " + ", ".join(str(p) for p in paths[seen][:5])
               + (", ..." if seen.sum() > 5 else "")
               + ". Its predictions for them are no evidence of how it reads new films.")
    return 0
