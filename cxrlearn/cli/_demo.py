"""``cxrlearn demo``: train and evaluate on the built-in synthetic data set."""

import time
from pathlib import Path

from ._common import (
    add_model_arguments,
    add_progress_argument,
    atomic_write_text,
    check_out,
    dumps_json,
    find_splits,
    load_folder,
    make_pipeline,
    save_pipeline,
    status,
)
from ._progress import Display
from . import _train  # its functions looked up at call time (tests replace them)


def add_parser(sub):
    parser = sub.add_parser(
        "demo",
        help="train on the built-in synthetic X-rays (or --data DIR) and print metrics",
        description="Train the study's CNN on the built-in SYNTHETIC chest X-ray set "
        "(or on a real folder with --data), print ROC-AUC, accuracy, precision, "
        "recall and specificity on held-out images, and save the fitted pipeline.",
    )
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="a folder of DIR/<LABEL>/* images (or DIR/train, DIR/val) "
                        "instead of the synthetic set")
    parser.add_argument("--n-samples", type=int, default=480,
                        help="synthetic training images (default: %(default)s)")
    parser.add_argument("--class-sep", type=float, default=3.0,
                        help="strength of the synthetic infiltrates; higher is easier "
                        "(default: %(default)s; 1.0 is subtle)")
    parser.add_argument("--out", default="demo-output/pneumonia_pipeline.skops",
                        help="where to save the fitted pipeline: .skops (safe format) or "
                        ".joblib (a pickle) (default: %(default)s)")
    add_model_arguments(parser, epochs=8)
    add_progress_argument(parser)
    parser.set_defaults(run=run)
    return parser


def _synthetic_folders(out_dir, n_samples, image_size, random_state, class_sep):
    from ..datasets import write_synthetic_xray_directory

    if n_samples < 20:
        raise ValueError(f"--n-samples must be at least 20, got {n_samples}")
    root = Path(out_dir) / "synthetic-data"
    n_val = max(n_samples // 4, 20)
    status(f"writing {n_samples} + {n_val} SYNTHETIC X-rays to {root}")
    write_synthetic_xray_directory(root / "train", n_samples, image_size,
                                   class_sep=class_sep, random_state=random_state)
    write_synthetic_xray_directory(root / "val", n_val, image_size,
                                   class_sep=class_sep, random_state=random_state + 1)
    return root / "train", root / "val"


def run(args):
    display = Display.from_args(args)
    out = check_out(args.out)
    if args.data is None:
        train_dir, val_dir = _synthetic_folders(out.parent, args.n_samples, args.image_size,
                                                args.random_state, args.class_sep)
    else:
        train_dir, val_dir = find_splits(args.data)
    train_paths, train_labels = load_folder(train_dir)
    if val_dir is None:
        from sklearn.model_selection import GroupShuffleSplit

        from ._data import file_name_groups

        groups = file_name_groups(train_paths, command="demo", source=str(train_dir),
                                  advice="use cxrlearn train --val-fraction with "
                                  "--patient-pattern or --groups instead")
        split = GroupShuffleSplit(1, test_size=0.2, random_state=args.random_state)
        tr, va = next(split.split(train_paths, train_labels, groups))
        val_paths, val_labels = train_paths[va], train_labels[va]
        train_paths, train_labels = train_paths[tr], train_labels[tr]
        status(f"held out {len(va)} images of other patients for validation")
    else:
        val_paths, val_labels = load_folder(val_dir)

    pipe = make_pipeline(args)
    status(f"training {pipe.named_steps['cnn']!r}")
    t0 = time.perf_counter()
    _train.fit_pipeline(pipe, train_paths, train_labels, display, source=str(train_dir))
    status(f"trained in {time.perf_counter() - t0:.1f} s")
    report = _train.validation_report(pipe, val_paths, val_labels, display, source=str(val_dir or
                                                                                train_dir))
    print(f"validation ({len(val_paths)} images):")
    from ..metrics import format_report

    print(format_report(report))
    kind = save_pipeline(pipe, out)
    metrics = atomic_write_text(dumps_json(report) + "\n", out.with_suffix(".metrics.json"))
    print(f"saved pipeline to {out} ({kind}) and its validation metrics to {metrics}")
    return 0
