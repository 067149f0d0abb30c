"""``cxrlearn train`` and ``cxrlearn tune``: fit pipelines on image folders."""

import argparse
import ast
import contextlib
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from ._common import (
    CLIError,
    add_model_arguments,
    add_progress_argument,
    check_image_size,
    check_out,
    load_folder,
    make_pipeline,
    network_names,
    precision_status,
    save_pipeline,
    set_callbacks,
    status,
    suggest_check,
)
from ._cluster import add_cluster_arguments, dask_client, import_distributed, refit_on_worker
from ._data import add_data_arguments, load_training_data, patient_groups
from ._progress import (
    Display,
    EventScorer,
    FinishedFits,
    ScoreRecorder,
    decode_images,
    fit_progress,
    prime_decode_cache,
)


#: Networks ``cxrlearn train`` averages unless told (``--networks``), and the
#: image side of the small networks it adds (``--companion-size``): one
#: 176 px network with three 28 px ones ranked patients nobody tuned on at
#: least as well as two 176 px networks (a seed ensemble, which in turn beat
#: one) and misread fewer films, in two thirds of the time where bfloat16 is
#: not native (docs/recipe.rst, "Two scales in one model").
TRAIN_NETWORKS = 1
TRAIN_COMPANION_SIZE = 28
#: Label smoothing of ``cxrlearn train`` and ``tune`` on two classes unless
#: told (``--label-smoothing``): in grouped cross-validation 0.1 raised ROC-AUC
#: and accuracy beyond the noise of the patients, and 0.2 ranked better than
#: 0.1 with both seeds tried, as accurately (docs/recipe.rst, "Label
#: smoothing"). ``PneumoniaCNN()`` itself trains without.
TRAIN_LABEL_SMOOTHING = 0.2


def add_train_parser(sub):
    parser = sub.add_parser(
        "train",
        help="train a pipeline on a folder of labelled X-rays",
        description="Train an [ImageLoader, PneumoniaCNN] pipeline on DATA_DIR (or the "
        "images of --manifest) and save it (skops format unless MODEL ends in .joblib). "
        "With DATA_DIR/train and DATA_DIR/val, the final fit uses both (every image "
        "teaches the model; estimate its quality by patient-grouped cross-validation, "
        "e.g. cxrlearn tune); --no-train-on-val keeps val out of training and reports "
        "metrics on it, and --val-fraction holds out patients for that report when there "
        "is no val folder.",
    )
    add_data_arguments(parser)
    parser.add_argument("--train-on-val", action=argparse.BooleanOptionalAction, default=True,
                        help="with a DATA_DIR/val folder: train on train and val together "
                        "(default) or, with --no-train-on-val, on train alone, reporting "
                        "metrics on val")
    parser.add_argument("--val-fraction", type=float, default=None, metavar="F",
                        help="without a val folder: hold out this fraction of the images, "
                        "whole patients at a time, for the validation report (the model "
                        "is trained on the rest)")
    add_model_arguments(parser, networks=TRAIN_NETWORKS,
                        label_smoothing=TRAIN_LABEL_SMOOTHING,
                        companion_size=TRAIN_COMPANION_SIZE)
    add_progress_argument(parser)
    parser.set_defaults(run=run_train)


def fit_pipeline(pipe, paths, labels, display, *, source=None):
    """Fit ``[loader, cnn]`` on image files with progress: decoding, then epochs.

    The steps are fitted one after the other, as ``Pipeline.fit`` does, so
    that decoding has its own bar; the progress callback is removed from
    the network afterwards (it is never saved).
    """
    loader, cnn = pipe[0], pipe[-1]
    with suggest_check(source):
        loader.fit(paths, labels)
        images = decode_images(loader, paths, display)
    height, width = loader._output_size()
    names = network_names(cnn, height if height == width else None)
    set_callbacks(cnn, [fit_progress(display, networks=names)])  # (imports TF)
    line = precision_status(cnn.precision)
    if line:
        status(line)
    try:
        cnn.fit(images, labels)
    finally:
        set_callbacks(cnn, None)
    return pipe


def validation_report(pipe, paths, labels, display, *, source=None):
    """The clinical report of a fitted ``[loader, cnn]`` on image files."""
    from ._evaluate import evaluate_model

    with suggest_check(source):
        images = decode_images(pipe[0], paths, display, desc="decoding validation images")
    return evaluate_model(pipe[-1], images, labels)


def _holdout(args, data):
    """Split off ``--val-fraction`` of the patients; returns train and val parts."""
    from sklearn.model_selection import GroupShuffleSplit

    if not 0 < args.val_fraction < 1:
        raise CLIError(f"--val-fraction must be between 0 and 1, got {args.val_fraction}")
    if data.val_dir is not None:
        raise CLIError(f"{args.data} has a val folder already; drop --val-fraction")
    groups = patient_groups(args, data)
    split = GroupShuffleSplit(1, test_size=args.val_fraction, random_state=args.random_state)
    train, val = next(split.split(data.paths, data.labels, groups))
    status(f"held out {len(val)} images of {len(set(groups[val]))} other patients "
           "for validation")
    return (data.paths[train], data.labels[train]), (data.paths[val], data.labels[val])


def run_train(args):
    from ..metrics import format_report

    display = Display.from_args(args)
    check_out(args.out)
    data = load_training_data(args)
    source = args.data or str(Path(args.manifest).parent)
    (paths, labels), val = (data.paths, data.labels), None
    if args.val_fraction:
        (paths, labels), val = _holdout(args, data)
    elif args.groups or args.patient_pattern:
        raise CLIError("--groups and --patient-pattern choose the patients held out by "
                       "--val-fraction (train uses no patients otherwise); add --val-fraction")
    elif data.val_dir is not None:
        mode = "three_class" if args.three_class else "folder"
        val = load_folder(data.val_dir, label_mode=mode)
        if args.train_on_val:
            paths, labels = np.concatenate([paths, val[0]]), np.concatenate([labels, val[1]])
            val = None
            status(f"training on train and val together: {len(paths)} images, none held "
                   "out (--no-train-on-val keeps val for a validation report)")
    pipe = make_pipeline(args, n_classes=len(np.unique(labels)))
    check_image_size(args.image_size, pipe.named_steps["cnn"].conv_filters)
    t0 = time.perf_counter()
    fit_pipeline(pipe, paths, labels, display, source=source)
    status(f"trained in {time.perf_counter() - t0:.1f} s")
    kind = save_pipeline(pipe, args.out)
    print(f"saved pipeline to {args.out} ({kind})")
    if val is not None:
        val_paths, val_labels = val
        report = validation_report(pipe, val_paths, val_labels, display, source=source)
        print(f"validation ({len(val_paths)} images):")
        print(format_report(report))
    return 0


def add_tune_parser(sub):
    parser = sub.add_parser(
        "tune",
        help="grid-search pipeline parameters with patient-grouped cross-validation",
        description="GridSearchCV over the given --param grids, scored by ROC-AUC "
        "(one-vs-rest for three classes) with folds split by patient; prints the "
        "ranked table and saves the best pipeline refitted on all of DATA_DIR's "
        "training images. Decoded images are cached once for all folds. With --workers "
        "or --scheduler the fits run in parallel on a Dask cluster.",
    )
    add_data_arguments(parser)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2",
                        help="a grid, e.g. cnn__activation=relu,swish (repeatable)")
    parser.add_argument("--cv", type=int, default=3, help="folds (default: %(default)s)")
    add_model_arguments(parser, label_smoothing=TRAIN_LABEL_SMOOTHING)
    add_cluster_arguments(parser)
    add_progress_argument(parser)
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
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

    grid = parse_grid(args.param)
    if not grid:
        raise CLIError("give at least one --param NAME=V1,V2 grid")
    cluster = {"workers": getattr(args, "workers", None),
               "scheduler": getattr(args, "scheduler", None)}
    if any(value is not None for value in cluster.values()):
        import_distributed()  # before any work: a missing install is said first
    display = Display.from_args(args)
    check_out(args.out)
    data = load_training_data(args)
    source = args.data or str(Path(args.manifest).parent)
    paths, labels = data.paths, data.labels
    groups = patient_groups(args, data)
    pipe = make_pipeline(args, n_classes=len(np.unique(labels)))
    valid = pipe.get_params()
    unknown = [name for name in grid if name not in valid]
    if unknown:
        raise CLIError(f"unknown parameters {unknown}; e.g. cnn__activation, cnn__dropout, "
                       "cnn__class_weight, cnn__balanced_batches, loader__image_size")
    if "cnn__n_networks" in grid or "cnn__companion__n_networks" in grid:
        raise CLIError("the ensemble size is not a grid parameter: give --networks N "
                       "(--companion-networks N), and compare sizes by tuning each in its "
                       "own run")
    if "loader__intensity" in grid and (valid["cnn__equalize"] or "cnn__equalize" in grid):
        # a network that equalises the loader's output again sees the same images
        # whatever the loader did: candidates that differ in name only, ranked by noise
        raise CLIError("the network equalises its input itself (cnn__equalize, which "
                       "--intensity equalize, the default, sets): a grid over "
                       "loader__intensity would compare the same inputs; give --intensity "
                       "raw, and leave cnn__equalize out of the grid, to tune "
                       "loader__intensity")
    scoring = "roc_auc" if len(np.unique(labels)) == 2 else "roc_auc_ovr"
    n_candidates = int(np.prod([len(values) for values in grid.values()]))
    status(f"grid search: {n_candidates} candidates x {args.cv} folds = "
           f"{n_candidates * args.cv} fits, then the best refitted on all "
           f"{len(paths)} images")
    if cluster["workers"] is not None or cluster["scheduler"] is not None:
        try:
            with suggest_check(source):
                search, best = _tune_on_cluster(args, pipe, grid, scoring, paths, labels,
                                                groups, display, **cluster)
        except CLIError as exc:
            from .. import ImageLoadError

            if cluster["scheduler"] is None or not isinstance(exc.__cause__, ImageLoadError):
                raise
            raise CLIError(f"{exc}; on a cluster, every worker must see the images (and "
                           "--cache) at the same paths as this machine") from exc.__cause__
    else:
        with tempfile.TemporaryDirectory(prefix="cxrlearn-cache-") as cache:
            if args.cache is None:
                pipe.set_params(loader__memory=cache)
            with suggest_check(source):
                prime_decode_cache(pipe[0], paths, display)
            callback = fit_progress(display, n_candidates=n_candidates, n_folds=args.cv,
                                    networks=network_names(pipe[-1], args.image_size))
            # this machine's precision (a cluster's workers may differ: said only here)
            for precision in dict.fromkeys(grid.get("cnn__precision", [pipe[-1].precision])):
                line = precision_status(precision)
                if line:
                    status(line)
            scorer = ScoreRecorder(get_scorer(scoring), scoring, callback)
            callback.best = scorer.best_text
            set_callbacks(pipe[-1], [callback])
            search = GridSearchCV(
                pipe, grid, scoring=scorer, cv=StratifiedGroupKFold(args.cv),
                refit=True, error_score="raise",
            )
            t0 = time.perf_counter()
            search.fit(paths, labels, groups=groups)  # error_score="raise": the cause, first
            best = search.best_estimator_
            set_callbacks(best[-1], None)
            if args.cache is None:  # the temporary folder is gone after this block
                best.set_params(loader__memory=None)
        status(f"searched in {time.perf_counter() - t0:.1f} s")
    print(format_cv_table(search.cv_results_, scoring))
    kind = save_pipeline(best, args.out)
    print(f"best {scoring} {search.best_score_:.4f} with {search.best_params_}")
    print(f"saved best pipeline to {args.out} ({kind})")
    return 0


#: Seconds to wait, after the search, for the events of its last fits.
EVENT_GRACE = 2


def _tune_on_cluster(args, pipe, grid, scoring, paths, labels, groups, display, *,
                     workers, scheduler):
    """The grid search on a Dask cluster; returns the search and the refitted best.

    The search is the same ``GridSearchCV`` on the same folds, with
    ``refit=False``: the best candidate is refitted afterwards as
    ``GridSearchCV`` would, here with ``--workers`` (the whole machine is
    free again) and on a worker with ``--scheduler`` (where the search ran:
    the command may run on a login node). Progress comes back as Dask
    events (:class:`~._progress.EventScorer`, :class:`~._progress.FinishedFits`).
    """
    from sklearn.base import clone
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedGroupKFold

    # workers run elsewhere: relative paths would be relative to their folders
    paths = np.asarray([os.path.abspath(p) for p in paths], dtype=object)
    if args.cache is not None:
        pipe.set_params(loader__memory=os.path.abspath(args.cache))
    splits = list(StratifiedGroupKFold(args.cv).split(paths, labels, groups))
    candidates = list(ParameterGrid(grid))
    n_fits = len(candidates) * len(splits)
    topic = f"cxrlearn-tune-{uuid.uuid4().hex}"
    scorer = EventScorer(get_scorer(scoring), topic, candidates,
                         [str(paths[test[0]]) for _, test in splits])
    with contextlib.ExitStack() as stack:
        if workers is not None and args.cache is None:
            # the local workers read the decode cache that this process fills (removed
            # after the cluster is closed)
            cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="cxrlearn-cache-"))
            pipe.set_params(loader__memory=cache)
        client = stack.enter_context(dask_client(workers=workers, scheduler=scheduler))
        if pipe[0].memory is not None:
            prime_decode_cache(pipe[0], paths, display)
        # else (--scheduler without --cache): each worker decodes its folds' files
        fits = FinishedFits(display, len(candidates), len(splits), scoring)
        client.subscribe_topic(topic, fits)
        stack.callback(fits.close)
        search = GridSearchCV(pipe, grid, scoring=scorer, cv=splits, refit=False,
                              error_score="raise")
        t0 = time.perf_counter()
        search.fit(paths, labels)  # error_score="raise": the cause, first
        if not fits.wait(n_fits, EVENT_GRACE):  # a late event: read the scheduler's log
            for event in client.get_events(topic):
                if event[1].get("kind") == "fit" and event[1].get("fold") is not None:
                    fits(event)
        fits.close()  # the bar of the fits, before any other line
        status(f"searched in {time.perf_counter() - t0:.1f} s")
        best = clone(pipe).set_params(**search.best_params_)
        epochs = best[-1].epochs
        t0 = time.perf_counter()
        if scheduler is not None:
            display.line(f"refitting the best candidate on all images on a worker "
                         f"({epochs} epochs)")
            best = client.submit(refit_on_worker, best, paths, labels, topic,
                                 pure=False).result()
            fits.close()  # the refit's bar
        else:
            callback = fit_progress(display, n_candidates=len(candidates),
                                    n_folds=len(splits),
                                    networks=network_names(best[-1], args.image_size))
            # the next network fit is the refit's first
            callback.counter.index = n_fits * callback.counter.networks - 1
            callback.best = fits.best_text
            set_callbacks(best[-1], [callback])
            try:
                best.fit(paths, labels)
            finally:
                set_callbacks(best[-1], None)
        status(f"refitted in {time.perf_counter() - t0:.1f} s")
        client.unsubscribe_topic(topic)
    best.set_params(loader__memory=args.cache)  # not the temporary folder, now gone
    return search, best


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
