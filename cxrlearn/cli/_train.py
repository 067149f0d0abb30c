"""``cxrlearn train`` and ``cxrlearn tune``: fit pipelines on image folders."""

import ast
import tempfile
import time

import numpy as np

from ._common import (
    CLIError,
    add_model_arguments,
    check_out,
    find_splits,
    load_folder,
    make_pipeline,
    save_pipeline,
    status,
)


def _add_data_arguments(parser):
    parser.add_argument("data", metavar="DATA_DIR",
                        help="DATA_DIR/<LABEL>/* images, or DATA_DIR/train (+ DATA_DIR/val)")
    parser.add_argument("--out", required=True, metavar="MODEL",
                        help="where to save the fitted pipeline: MODEL.skops (safe format, runs "
                        "no code when opened) or MODEL.joblib (a pickle)")
    parser.add_argument("--three-class", action="store_true",
                        help="NORMAL / BACTERIA / VIRUS from Kermany file names")


def add_train_parser(sub):
    parser = sub.add_parser(
        "train",
        help="train a pipeline on a folder of labelled X-rays",
        description="Train an [ImageLoader, PneumoniaCNN] pipeline on DATA_DIR and save "
        "it (skops format unless MODEL ends in .joblib). With DATA_DIR/train and DATA_DIR/val, trains on train and "
        "reports metrics on val.",
    )
    _add_data_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(run=run_train)


def run_train(args):
    from ..metrics import format_report
    from ._evaluate import evaluate_model

    train_dir, val_dir = find_splits(args.data)
    check_out(args.out)
    mode = "three_class" if args.three_class else "folder"
    paths, labels = load_folder(train_dir, label_mode=mode)
    pipe = make_pipeline(args)
    t0 = time.perf_counter()
    pipe.fit(paths, labels)
    status(f"trained in {time.perf_counter() - t0:.1f} s")
    kind = save_pipeline(pipe, args.out)
    print(f"saved pipeline to {args.out} ({kind})")
    if val_dir is not None:
        val_paths, val_labels = load_folder(val_dir, label_mode=mode)
        print(f"validation ({len(val_paths)} images):")
        print(format_report(evaluate_model(pipe, val_paths, val_labels)))
    return 0


def add_tune_parser(sub):
    parser = sub.add_parser(
        "tune",
        help="grid-search pipeline parameters with patient-grouped cross-validation",
        description="GridSearchCV over the given --param grids, scored by ROC-AUC "
        "(one-vs-rest for three classes) with folds split by patient; prints the "
        "ranked table and saves the best pipeline refitted on all of DATA_DIR's "
        "training images. Decoded images are cached once for all folds.",
    )
    _add_data_arguments(parser)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2",
                        help="a grid, e.g. cnn__activation=relu,swish (repeatable)")
    parser.add_argument("--cv", type=int, default=3, help="folds (default: %(default)s)")
    add_model_arguments(parser)
    parser.set_defaults(run=run_tune)


def _parse_value(text):
    text = text.strip()
    if text.lower() == "none":
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_grid(items):
    """``["cnn__dropout=0.2,0.5"]`` -> ``{"cnn__dropout": [0.2, 0.5]}``.

    Examples
    --------
    >>> from cxrlearn.cli._train import parse_grid
    >>> parse_grid(["cnn__activation=relu,swish", "cnn__class_weight=None,balanced"])
    {'cnn__activation': ['relu', 'swish'], 'cnn__class_weight': [None, 'balanced']}
    """
    grid = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise CLIError(f"--param expects NAME=V1,V2,..., got {item!r}")
        grid[name.strip()] = [_parse_value(v) for v in values.split(",")]
    return grid


def run_tune(args):
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

    from ..datasets import patient_ids

    grid = parse_grid(args.param)
    if not grid:
        raise CLIError("give at least one --param NAME=V1,V2 grid")
    train_dir, _ = find_splits(args.data)
    check_out(args.out)
    mode = "three_class" if args.three_class else "folder"
    paths, labels = load_folder(train_dir, label_mode=mode)
    groups = patient_ids(paths)
    pipe = make_pipeline(args)
    valid = pipe.get_params()
    unknown = [name for name in grid if name not in valid]
    if unknown:
        raise CLIError(f"unknown parameters {unknown}; e.g. cnn__activation, cnn__dropout, "
                       "cnn__class_weight, cnn__balanced_batches, loader__image_size")
    scoring = "roc_auc" if len(np.unique(labels)) == 2 else "roc_auc_ovr"
    with tempfile.TemporaryDirectory(prefix="cxrlearn-cache-") as cache:
        if args.cache is None:
            pipe.set_params(loader__memory=cache)
        search = GridSearchCV(
            pipe, grid, scoring=scoring, cv=StratifiedGroupKFold(args.cv),
            refit=True, verbose=1, error_score="raise",
        )
        search.fit(paths, labels, groups=groups)
        best = search.best_estimator_
        if args.cache is None:  # the temporary folder is gone after this block
            best.set_params(loader__memory=None)
    print(format_cv_table(search.cv_results_, scoring))
    kind = save_pipeline(best, args.out)
    print(f"best {scoring} {search.best_score_:.4f} with {search.best_params_}")
    print(f"saved best pipeline to {args.out} ({kind})")
    return 0


def format_cv_table(cv_results, scoring):
    """Ranked table of a search's ``cv_results_``."""
    order = np.argsort(cv_results["rank_test_score"], kind="stable")
    lines = [f"{'rank':>4}  {'mean ' + scoring:>14}  {'std':>7}  params"]
    for i in order:
        lines.append(
            f"{cv_results['rank_test_score'][i]:>4}  {cv_results['mean_test_score'][i]:>14.4f}"
            f"  {cv_results['std_test_score'][i]:>7.4f}  {cv_results['params'][i]}"
        )
    return "\n".join(lines)
