"""``cxrlearn report``: one self-contained HTML evaluation report of a model.

Nothing is decided here: :func:`cxrlearn.evaluation.evaluation_report`
takes the labels from the model's own ``predict`` and its threshold from
its own attributes.
"""

from ._common import (
    CLIError,
    add_model_file_argument,
    atomic_write_text,
    check_out,
    check_prevalences,
    dumps_json,
    find_splits,
    load_folder,
    load_model_from_args,
    status,
    trained_on_warning,
)


def add_parser(sub):
    parser = sub.add_parser(
        "report",
        help="write an HTML evaluation report (intervals, curves, errors) of a model",
        description="Evaluate MODEL on the labelled images of DATA_DIR/<LABEL>/* (or "
        "DATA_DIR/val when DATA_DIR has train/val folders) and write one "
        "self-contained HTML file that opens without a network: metrics with "
        "confidence intervals, ROC and precision-recall curves with bands and the "
        "operating point, confusion matrix, calibration, score distributions, the "
        "most confident errors with Grad-CAM overlays, and the data and model "
        "behind them. Unreadable images are skipped and listed. Labels are MODEL's "
        "own predictions, at its own operating point.",
    )
    add_model_file_argument(parser)
    parser.add_argument("data", metavar="DATA_DIR")
    parser.add_argument("--out", required=True, metavar="FILE.html",
                        help="the HTML report to write")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the report's content as JSON")
    parser.add_argument("--groups", choices=["patient-id", "none"], default="patient-id",
                        help="resampling unit of the intervals: 'patient-id' resamples "
                             "patients, whose ids are read from Kermany-style file "
                             "names (cxrlearn.datasets.patient_ids; a file whose name "
                             "has no id is its own patient); 'none' resamples images "
                             "(default: %(default)s)")
    parser.add_argument("--n-resamples", type=int, default=2000, metavar="N",
                        help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--confidence-level", type=float, default=0.95,
                        help="coverage of the intervals (default: %(default)s)")
    parser.add_argument("--n-errors", type=int, default=8, metavar="K",
                        help="most confident errors shown with Grad-CAM "
                             "(default: %(default)s)")
    parser.add_argument("--prevalence", type=float, action="append", default=None,
                        metavar="P",
                        help="share of the positive class at which accuracy, PPV and NPV "
                             "are also given, e.g. your hospital's; repeat for several "
                             "(default: 0.1 0.2 0.3 0.5)")
    parser.add_argument("--threshold-info", default=None, metavar="TEXT",
                        help="how the threshold was chosen, in your words, for the "
                             "model section")
    parser.add_argument("--title", default=None)
    parser.add_argument("--n-jobs", type=int, default=2, help="threads checking the files")
    parser.add_argument("--random-state", type=int, default=0,
                        help="seed of the bootstrap (default: %(default)s)")
    parser.set_defaults(run=run)


def run(args):
    out = check_out(args.out)
    if args.json is not None:
        try:
            check_out(args.json)
        except CLIError as exc:
            raise CLIError(str(exc).replace("--out", "--json", 1)) from exc
    if args.n_resamples < 1:
        raise CLIError(f"--n-resamples must be positive, got {args.n_resamples}")
    if not 0 < args.confidence_level < 1:
        raise CLIError(f"--confidence-level must be in (0, 1), got {args.confidence_level}")
    if args.n_errors < 0:
        raise CLIError(f"--n-errors must be >= 0, got {args.n_errors}")
    check_prevalences(args.prevalence)
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError("the report's figures need matplotlib: pip install 'cxrlearn[plot]'")

    from ..datasets import patient_ids
    from ..evaluation import evaluation_report, write_html_report

    model = load_model_from_args(args)
    train_dir, val_dir = find_splits(args.data)
    folder = val_dir or train_dir
    paths, labels = load_folder(folder, label_mode="three_class"
                                if len(model.classes_) == 3 else "folder")
    if not len(paths):
        raise CLIError(f"no images found under {folder}")
    groups = patient_ids(paths) if args.groups == "patient-id" else None
    status(f"evaluating {args.model} on {len(paths)} images, "
           f"{args.n_resamples} bootstrap resamples of "
           f"{'patients' if groups is not None else 'images'}")
    report = evaluation_report(
        model, paths, labels, groups=groups, n_resamples=args.n_resamples,
        confidence_level=args.confidence_level, n_errors=args.n_errors,
        threshold_info=args.threshold_info, data_name=str(folder), title=args.title,
        n_jobs=args.n_jobs, random_state=args.random_state,
        **({} if args.prevalence is None else {"prevalences": args.prevalence}),
    )
    skipped = report["data"]["skipped"]
    if skipped:
        status(f"skipped {len(skipped)} unreadable file(s): "
               + ", ".join(s["path"] for s in skipped[:5])
               + (", ..." if len(skipped) > 5 else ""))
    n_seen = report["data"]["n_trained_on"]
    if n_seen:
        status(trained_on_warning(n_seen, report["data"]["n_images"], folder, args.model))
    write_html_report(report, out)
    if args.json is not None:
        atomic_write_text(dumps_json(report), args.json)
    _print_summary(report)
    status(f"report written to {out}" + (f" and {args.json}" if args.json else ""))
    return 0


def _print_summary(report):
    level = f"{report['confidence_level']:.0%}"
    for name, m in report["metrics"].items():
        low, high = m["low"], m["high"]
        interval = "n/a" if low is None else f"{low:.3f}-{high:.3f}"
        value = "n/a" if m["estimate"] is None else f"{m['estimate']:.4f}"
        print(f"{name:<18} {value}  ({level} CI {interval})")
    if "roc_auc_delong" in report:
        d = report["roc_auc_delong"]
        print(f"{'roc_auc (DeLong)':<18} {d['estimate']:.4f}  "
              f"({level} CI {d['low']:.3f}-{d['high']:.3f})")
    for row in report.get("at_prevalence", ()):
        print(f"at prevalence {row['prevalence']:.2f}: " + ", ".join(
            f"{name} {_estimate(row[name])}" for name in ("accuracy", "ppv", "npv")))


def _estimate(entry):
    if entry["estimate"] is None:
        return "n/a"
    low, high = entry["low"], entry["high"]
    return f"{entry['estimate']:.3f}" + ("" if low is None else f" ({low:.3f}-{high:.3f})")
