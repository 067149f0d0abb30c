"""``cxrlearn threshold``: choose a saved model's operating point on validation images.

The model is not trained again: it is wrapped, frozen, in an
:class:`~cxrlearn.OperatingPointClassifier` (``FrozenEstimator``), which
takes the threshold that meets the target exactly on the validation
images. ``evaluate`` and ``predict`` then decide at that threshold (they
read it from the model, see :func:`~cxrlearn.cli._common.operating_point`).
"""

import contextlib
import tempfile

import numpy as np

from ._common import (
    CLIError,
    add_model_file_argument,
    add_progress_argument,
    check_out,
    dumps_json,
    find_splits,
    load_folder,
    load_model_from_args,
    positive_label,
    save_pipeline,
    status,
    suggest_check,
)
from ._progress import Display, prime_decode_cache


def add_parser(sub):
    parser = sub.add_parser(
        "threshold",
        help="set a saved model's decision threshold for a target sensitivity or "
        "specificity",
        description="Choose the threshold on the probability of the disease class that "
        "reaches --sensitivity (or --specificity) on the labelled images of VAL_DIR "
        "(VAL_DIR/<LABEL>/*, or VAL_DIR/val), and save MODEL with that threshold as "
        "--out. The network is not retrained. Choose it on validation images, never on "
        "the test images you report.",
    )
    add_model_file_argument(parser)
    parser.add_argument("data", metavar="VAL_DIR",
                        help="validation images: VAL_DIR/<LABEL>/*, or VAL_DIR/val")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--sensitivity", type=float, metavar="T",
                        help="flag at least this fraction of the disease cases (e.g. 0.95); "
                        "the specificity is as high as that allows")
    target.add_argument("--specificity", type=float, metavar="T",
                        help="clear at least this fraction of the normal cases; the "
                        "sensitivity is as high as that allows")
    parser.add_argument("--pos-label", default=None, metavar="LABEL",
                        help="the disease class (default: PNEUMONIA, else the last class)")
    parser.add_argument("--out", required=True, metavar="MODEL",
                        help="where to save the model with its threshold (.skops, or "
                        ".joblib for a pickle)")
    parser.add_argument("--allow-trained-images", action="store_true",
                        help="choose the threshold even on images the model was trained "
                        "on (refused otherwise: the threshold would be too confident)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_progress_argument(parser)
    parser.set_defaults(run=run)
    return parser


def _frozen_inner(model):
    """The model inside a frozen threshold wrapper (to choose a new threshold), or None."""
    from sklearn.frozen import FrozenEstimator

    inner = getattr(model, "estimator_", None)
    if isinstance(inner, FrozenEstimator):
        return inner.estimator
    return None


def _loader(model):
    """The ImageLoader at the front of a pipeline, or None."""
    from .. import ImageLoader

    steps = getattr(model, "steps", None)
    if steps and isinstance(steps[0][1], ImageLoader):
        return steps[0][1]
    return None


@contextlib.contextmanager
def _decoded_once(model, paths, display, source):
    """Decode ``paths`` once, with progress, into a temporary cache for the block.

    For a pipeline that starts with an :class:`~cxrlearn.ImageLoader`; the
    loader's own ``memory`` is put back afterwards.
    """
    loader = _loader(model)
    if loader is None or loader.lazy:
        yield
        return
    memory = loader.memory
    with tempfile.TemporaryDirectory(prefix="cxrlearn-cache-") as cache:
        loader.set_params(memory=cache)
        loader.fit(paths)  # a loader read from a file uses a cache once fitted here
        try:
            with suggest_check(source):
                prime_decode_cache(loader, paths, display)
            yield
        finally:
            loader.set_params(memory=memory)


def _refuse_training_images(model, paths, folder, model_name):
    """A threshold chosen on the model's own training images is too confident."""
    from ..evaluation import trained_on

    seen = trained_on(model, paths)
    if seen is not None and seen.any():
        raise CLIError(
            f"{int(seen.sum())} of the {len(paths)} images of {folder} were used to train "
            f"{model_name} (as they are, or the same films at another size or encoding): "
            "a threshold chosen on them is too confident for new patients. "
            "Choose it on images the model was not trained on (cxrlearn train "
            "--no-train-on-val keeps a val folder out of training), or pass "
            "--allow-trained-images")


def run(args):
    from sklearn.frozen import FrozenEstimator

    from .. import OperatingPointClassifier

    display = Display.from_args(args)
    target = args.sensitivity if args.sensitivity is not None else args.specificity
    kind = "sensitivity" if args.sensitivity is not None else "specificity"
    if not 0 < target <= 1:
        raise CLIError(f"--{kind} must be in (0, 1], got {target}")
    check_out(args.out)
    model = load_model_from_args(args)
    classes = list(model.classes_)
    if len(classes) != 2:
        raise CLIError(f"a threshold needs a two-class model; {args.model} has classes "
                       f"{classes}")
    inner = _frozen_inner(model)
    if inner is not None:
        status(f"{args.model} already has a threshold "
               f"({getattr(model, 'threshold_', '?')}); choosing a new one for the model "
               "inside it")
        model = inner
    pos = positive_label(classes)
    if args.pos_label is not None:
        matches = [c for c in classes if str(c) == args.pos_label]
        if not matches:
            raise CLIError(f"--pos-label {args.pos_label!r} is not one of the classes "
                           f"{[str(c) for c in classes]}")
        pos = matches[0]
    train_dir, val_dir = find_splits(args.data)
    folder = val_dir or train_dir
    paths, labels = load_folder(folder)
    unknown = sorted(set(labels.tolist()) - {str(c) for c in classes})
    if unknown:
        raise CLIError(f"labels {unknown} of {folder} are not classes of the model {classes}")
    if len(np.unique(labels)) != 2:
        raise CLIError(f"{folder} needs images of both classes to choose a threshold")
    with _decoded_once(model, paths, display, str(folder)):
        with suggest_check(str(folder)):
            if not args.allow_trained_images:
                _refuse_training_images(model, paths, folder, args.model)
            chosen = OperatingPointClassifier(
                FrozenEstimator(model), pos_label=pos,
                target_sensitivity=args.sensitivity, target_specificity=args.specificity,
            ).fit(paths, labels)
    saved = save_pipeline(chosen, args.out)
    is_pos = labels == pos
    n_pos, n_neg = int(is_pos.sum()), int((~is_pos).sum())
    sens, spec = chosen.validation_sensitivity_, chosen.validation_specificity_
    result = {
        "threshold": float(chosen.threshold_),
        "pos_label": pos,
        "threshold_applies_to": f"predict_proba[:, {pos}]",
        "target": {kind: target},
        "validation_sensitivity": float(sens),
        "validation_specificity": float(spec),
        "n_positive": n_pos,
        "n_negative": n_neg,
        "validation_data": str(folder),
        "model": str(args.out),
    }
    if args.json:
        print(dumps_json(result))
        return 0
    print(f"threshold {chosen.threshold_:.4f} on the probability of {pos} "
          f"({kind} >= {target:g} on {len(paths)} images of {folder})")
    print(f"  validation sensitivity {sens:.4f} ({round(sens * n_pos)}/{n_pos} {pos} flagged)")
    print(f"  validation specificity {spec:.4f} ({round(spec * n_neg)}/{n_neg} others cleared)")
    print(f"saved model with this threshold to {args.out} ({saved}); evaluate and predict "
          "use it")
    return 0
