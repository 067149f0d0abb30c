"""Helpers shared by the sub-commands: data folders, pipelines, output."""

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

__all__ = [
    "CLIError",
    "add_model_arguments",
    "add_model_file_argument",
    "add_progress_argument",
    "atomic_write_text",
    "check_image_size",
    "check_out",
    "find_splits",
    "load_folder",
    "load_model",
    "load_model_from_args",
    "make_pipeline",
    "network_names",
    "operating_point",
    "positive_label",
    "save_pipeline",
    "set_callbacks",
    "status",
    "suggest_check",
]

#: The image side used by ``cxrlearn train`` and ``tune`` unless told.
DEFAULT_IMAGE_SIZE = 176

#: PneumoniaCNN's defaults, shown in ``--help`` (``cxrlearn --help`` does not
#: import the estimator; tests/test_cli.py checks that they agree).
CNN_DEFAULTS = {"epochs": 10, "batch_size": 32, "learning_rate": 1e-3,
                "lr_schedule": "cosine", "activation": "relu", "dropout": 0.5,
                "conv_filters": (32, 64, 64, 128, 128), "dense_units": (256,),
                "balanced_batches": True, "precision": "auto"}


class CLIError(Exception):
    """An input problem reported as a one-line error."""


def status(message):
    """Print a progress line to standard error."""
    print(message, file=sys.stderr, flush=True)


def precision_status(precision):
    """The line saying what precision a fit computes in, or None.

    Training time depends on it more than on anything else the user does
    not choose: bfloat16 trained 2.35-2.4x as many images per CPU-second as
    float32 on the AVX512-BF16 development CPUs, and emulated bfloat16 about
    8x fewer than float32 on an AVX2-only one (docs/recipe.rst, "Mixed
    bfloat16"), where the default took 20 minutes on Kermany-224 and three
    networks of the 28 px recipe alone ("A 28 px network, alone and beside
    the 176 px ones") train in a third of that (6.5 minutes). Said
    when ``"auto"`` is resolved, and as a warning when bfloat16 is asked
    for where it would be emulated; nothing for float32 asked for by name.
    """
    from ..networks import resolve_precision

    if precision == "float32":
        return None
    if resolve_precision("auto") == "bfloat16":
        return "precision: bfloat16, which this machine computes natively"
    why = "no avx512_bf16 or amx_bf16 CPU flag, nor a GPU of compute capability 8.0+"
    if precision == "auto":
        return (f"precision: float32, as this machine computes no bfloat16 natively ({why}); "
                "where it does, training takes well under half the time; without it, the "
                "28 px networks alone (--image-size 28 --companion-size 0 ..., docs/cli.rst) "
                "train in a third of the default's time (docs/recipe.rst, 'A 28 px network')")
    return (f"warning: --precision bfloat16 is emulated on this machine ({why}) and trains "
            "several times slower than float32 (8x on an AVX2-only CPU); "
            "--precision auto uses float32 here")


def add_progress_argument(parser):
    """``--progress`` / ``--no-progress``: bars on standard error."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars (decoding, training steps, grid search) on "
                        "standard error; default: on when it is a terminal (and not "
                        "with --json); without bars, long runs print plain lines")


@contextlib.contextmanager
def suggest_check(folder):
    """Add "run ``cxrlearn check``" to the error of an unreadable image."""
    from .. import ImageLoadError

    try:
        yield
    except ImageLoadError as exc:
        where = f" {folder}" if folder else " DATA_DIR"
        raise CLIError(f"{exc} -- run `cxrlearn check{where}` to list every unreadable "
                       "image at once") from exc


def find_splits(root):
    """Return ``(train_dir, val_dir or None)`` for a data folder.

    A folder with a ``train`` sub-folder (the Kermany/Kaggle layout) trains
    on it and validates on ``val`` when present; any other folder is used
    whole for training.
    """
    root = Path(root)
    if not root.is_dir():
        raise CLIError(f"data folder not found: {root}")
    if (root / "train").is_dir():
        val = root / "val"
        return root / "train", (val if val.is_dir() else None)
    return root, None


def load_folder(root, *, label_mode="folder"):
    """``(paths, labels)`` of a ``root/<LABEL>/*`` folder, with a status line."""
    from ..datasets import load_image_directory

    paths, labels = load_image_directory(root, label_mode=label_mode)
    counts = ", ".join(f"{c}: {n}" for c, n in zip(*np.unique(labels, return_counts=True)))
    status(f"{root}: {len(paths)} images ({counts})")
    return np.asarray(paths, dtype=object), np.asarray(labels)


#: The recipe of the small networks ``--companion-size`` adds (besides the
#: size, their number and the precision and label smoothing of the main
#: networks): the 28 px recipe of docs/recipe.rst ("A 28 px network, alone
#: and beside the 176 px ones"), chosen by patient-grouped cross-validation;
#: they see the loader's grey levels, not equalised ones ("Two scales in
#: one model").
COMPANION_RECIPE = {"conv_filters": (32, 64, 128), "dense_units": (256, 8),
                    "batch_norm": True, "dropout": 0.3, "epochs": 30, "batch_size": 64,
                    "balanced_batches": False, "class_weight": "balanced",
                    "equalize": False}


def add_model_arguments(parser, *, epochs=None, networks=1, label_smoothing=0.0,
                        companion_size=0):
    """Options that configure the loader and the network.

    ``epochs`` is the command's default for ``--epochs`` (None: PneumoniaCNN's),
    ``networks`` its default for ``--networks``, ``label_smoothing`` its
    default for ``--label-smoothing`` on two classes (three train without),
    ``companion_size`` its default for ``--companion-size`` (0: none).
    """
    group = parser.add_argument_group("model")
    d = CNN_DEFAULTS
    group.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                       help="square image side in pixels (default: %(default)s)")
    group.add_argument("--color-mode", choices=["grayscale", "rgb"], default="grayscale",
                       help="channels fed to the network (default: %(default)s)")
    group.add_argument("--intensity", choices=["raw", "stretch", "equalize"], default="equalize",
                       help="per-image intensity normalisation of the main networks' input: "
                       "equalize is done inside those networks, so that the loader passes "
                       "the films' own grey levels, which the --companion-size networks "
                       "see; stretch is done by the loader, for all (default: %(default)s)")
    group.add_argument("--epochs", type=int, default=epochs,
                       help=f"training epochs (default: {epochs or d['epochs']})")
    group.add_argument("--networks", type=int, default=networks, metavar="N",
                       help="train N networks from different seeds and average them (a "
                       "seed ensemble: N times the training and prediction time; "
                       "default: %(default)s)")
    group.add_argument("--companion-size", type=int, default=companion_size, metavar="PX",
                       help="average the networks with --companion-networks small networks "
                       "that shrink the same images to PXxPX inside the model (three "
                       "convolution blocks 32,64,128, dense 256,8, batch normalisation, "
                       "dropout 0.3, 30 epochs of 64 images, class-weighted; 0: none; "
                       "default: %(default)s)")
    group.add_argument("--companion-networks", type=int, default=3, metavar="N",
                       help="small networks of --companion-size (default: %(default)s)")
    group.add_argument("--label-smoothing", type=float, default=None, metavar="S",
                       help="train towards S/2 and 1-S/2 instead of 0 and 1 (two classes "
                       f"only; default: {label_smoothing:g} for two classes, 0 for three)")
    parser.set_defaults(two_class_label_smoothing=label_smoothing)
    group.add_argument("--mixup", type=float, default=None, metavar="ALPHA",
                       help="train on blends of pairs of images and of their labels, the "
                       "proportions drawn from Beta(ALPHA, ALPHA) (mixup; e.g. 0.2; two "
                       "classes only; default: no mixing)")
    group.add_argument("--ema-momentum", type=float, default=None, metavar="M",
                       help="end training with a moving average of the weights, updated "
                       "with momentum M after every step (e.g. 0.99; default: the last "
                       "step's weights)")
    group.add_argument("--weight-decay", type=float, default=None, metavar="D",
                       help="shrink every weight by D times the learning rate after each "
                       "step (decoupled weight decay; e.g. 0.5; default: none)")
    group.add_argument("--batch-size", type=int, default=None,
                       help=f"images per step (default: {d['batch_size']})")
    group.add_argument("--learning-rate", type=float, default=None,
                       help=f"(default: {d['learning_rate']:g})")
    group.add_argument("--lr-schedule", choices=["constant", "cosine"], default=None,
                       help=f"(default: {d['lr_schedule']})")
    group.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default=None,
                       help="arithmetic of the network: bfloat16 trains about twice as fast "
                       "where the CPU (AVX512-BF16, AMX) or GPU computes it natively; auto "
                       f"uses it only there (default: {d['precision']})")
    group.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                       help="batch normalisation after each convolution")
    group.add_argument("--activation", default=None,
                       help=f"e.g. relu or swish (default: {d['activation']})")
    group.add_argument("--dropout", type=float, default=None,
                       help=f"(default: {d['dropout']})")
    group.add_argument("--conv-filters", type=parse_conv_filters, default=None, metavar="N,N,...",
                       help="filters of each convolution block, e.g. 32,64,128 for three "
                       "blocks (default: the study's "
                       f"{','.join(map(str, d['conv_filters']))}; the image must be at "
                       "least as large as the blocks need)")
    group.add_argument("--dense-units", type=parse_dense_units, default=None, metavar="N[,N]",
                       help="hidden dense layers, e.g. 256 or 256,8 (default: "
                       f"{','.join(map(str, d['dense_units']))})")
    group.add_argument("--class-weight", default=None,
                       help="'balanced', 'none', or LABEL=W[,LABEL=W] e.g. NORMAL=1.2 "
                       "(default: balanced)")
    group.add_argument("--balanced-batches", action=argparse.BooleanOptionalAction,
                       default=None,
                       help="balance the classes by resampling every epoch's batches, or "
                            "(--no-) by weighting the loss with --class-weight "
                            "(default: --balanced-batches)")
    group.add_argument("--augmentation", default=None,
                       help="'none', 'light' or 'standard' (default: none)")
    group.add_argument("--stream", action="store_true",
                       help="decode batches from disk while training (bounded memory)")
    group.add_argument("--cache", default=None, metavar="DIR",
                       help="cache decoded images in DIR (joblib.Memory)")
    group.add_argument("--n-jobs", type=int, default=2,
                       help="decoding threads (default: %(default)s)")
    group.add_argument("--random-state", type=int, default=0)
    return parser


def _positive_ints(text, *, example, what):
    """Comma-separated positive integers, e.g. ``"256,8"`` -> ``(256, 8)``."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as {example}, got {text!r}"
        ) from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{what} must be positive, got {text!r}")
    return values


def parse_conv_filters(text):
    """Parse ``--conv-filters``: one or more comma-separated positive ints.

    Examples
    --------
    >>> from cxrlearn.cli._common import parse_conv_filters
    >>> parse_conv_filters("32,64,128")
    (32, 64, 128)
    """
    return _positive_ints(text, example="32,64,128", what="filters")


def parse_dense_units(text):
    """Parse ``--dense-units``: comma-separated positive ints, or ``none``."""
    if text.strip().lower() == "none":
        return ()
    return _positive_ints(text, example="256 or 256,8", what="dense units")


def parse_class_weight(text):
    """Parse ``--class-weight``: balanced, none, or ``LABEL=W,...``."""
    if text is None:
        return None
    if text.lower() in ("none", ""):
        return None
    if text == "balanced":
        return "balanced"
    weights = {}
    for item in text.split(","):
        label, sep, value = item.partition("=")
        try:
            weights[label.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not label.strip():
            raise CLIError(
                f"--class-weight expects 'balanced', 'none' or LABEL=WEIGHT pairs, got {text!r}"
            )
    return weights


def make_pipeline(args, *, n_classes=2):
    """The ``[ImageLoader, PneumoniaCNN]`` pipeline that the options describe.

    ``n_classes`` is the number of classes of the training labels: label
    smoothing is the command's default for two, none for more.
    """
    from sklearn.pipeline import Pipeline

    from .. import ImageLoader, PneumoniaCNN

    if args.image_size < 1:
        raise CLIError(f"--image-size must be positive, got {args.image_size}")
    if args.networks < 1:
        raise CLIError(f"--networks must be at least 1, got {args.networks}")
    # equalisation inside the main networks (PneumoniaCNN(equalize=True)), the
    # same values as the loader's: the companion then sees raw grey levels
    # (docs/recipe.rst, "Two scales in one model")
    equalize = args.intensity == "equalize"
    loader = ImageLoader(
        image_size=(args.image_size, args.image_size),
        color_mode=args.color_mode,
        intensity="raw" if equalize else args.intensity,
        n_jobs=args.n_jobs,
        memory=args.cache,
        lazy=args.stream,
    )
    # progress comes from the command's own callback (see _progress.py)
    cnn = PneumoniaCNN(random_state=args.random_state, verbose=0, equalize=equalize,
                       n_jobs=args.n_jobs if args.stream else None)
    overrides = {
        "epochs": args.epochs,
        "n_networks": args.networks,
        "batch_size": args.batch_size,
        "activation": args.activation,
        "dropout": args.dropout,
        "conv_filters": args.conv_filters,
        "dense_units": args.dense_units,
        "learning_rate": args.learning_rate,
        "lr_schedule": args.lr_schedule,
        "batch_norm": args.batch_norm,
        "balanced_batches": args.balanced_batches,
        "precision": args.precision,
        "ema_momentum": args.ema_momentum,
        "mixup_alpha": args.mixup,
        "weight_decay": args.weight_decay,
    }
    if args.mixup is not None and not args.mixup > 0:
        raise CLIError(f"--mixup must be > 0, got {args.mixup}")
    if args.ema_momentum is not None and not 0 < args.ema_momentum < 1:
        raise CLIError(f"--ema-momentum must be in (0, 1), got {args.ema_momentum}")
    if args.weight_decay is not None and not args.weight_decay >= 0:
        raise CLIError(f"--weight-decay must be >= 0, got {args.weight_decay}")
    cnn.set_params(**{k: v for k, v in overrides.items() if v is not None})
    cnn.set_params(label_smoothing=_label_smoothing(args, n_classes))
    if args.class_weight is not None:
        cnn.set_params(class_weight=parse_class_weight(args.class_weight))
    if args.augmentation is not None:
        aug = None if args.augmentation.lower() == "none" else args.augmentation
        cnn.set_params(augmentation=aug)
    if args.companion_size:
        cnn.set_params(companion=_companion(args, cnn))
    return Pipeline([("loader", loader), ("cnn", cnn)])


def _companion(args, cnn):
    """The small networks of ``--companion-size`` (docs/recipe.rst, "Two scales")."""
    from .. import PneumoniaCNN

    if args.companion_size < 0:
        raise CLIError(f"--companion-size must be positive (0: none), got {args.companion_size}")
    if args.companion_networks < 1:
        raise CLIError(f"--companion-networks must be at least 1, got "
                       f"{args.companion_networks}")
    if args.companion_size > args.image_size:
        raise CLIError(f"--companion-size {args.companion_size} is larger than --image-size "
                       f"{args.image_size}: the companion shrinks the images")
    check_image_size(args.companion_size, COMPANION_RECIPE["conv_filters"],
                     option="--companion-size")
    return PneumoniaCNN(
        resize=args.companion_size, n_networks=args.companion_networks,
        label_smoothing=cnn.label_smoothing, precision=cnn.precision, n_jobs=cnn.n_jobs,
        verbose=0, **COMPANION_RECIPE,
    )


def set_callbacks(cnn, callbacks):
    """Give ``callbacks`` to the network's fit and to its companion's (None: remove).

    Also the fitted companion's (``companion_``, a clone that kept them): a
    progress callback must not be saved with the model.
    """
    cnn.set_params(callbacks=callbacks)
    for companion in (cnn.companion, getattr(cnn, "companion_", None)):
        if companion is not None:
            companion.set_params(callbacks=callbacks)
    return cnn


def network_names(cnn, image_size=None):
    """What a fit's progress calls each network it trains, in order.

    ``["network 1/2", "network 2/2"]`` for a seed ensemble; with a companion
    the sizes tell the two recipes apart (``"176 px network 1/1"``, ``"28 px
    network 1/3"`` ...; ``image_size`` is the main networks' image side, if
    known). One network alone has no name.

    Examples
    --------
    >>> from cxrlearn import PneumoniaCNN
    >>> from cxrlearn.cli._common import network_names
    >>> network_names(PneumoniaCNN(n_networks=2))
    ['network 1/2', 'network 2/2']
    >>> network_names(PneumoniaCNN(companion=PneumoniaCNN(resize=28, n_networks=2)), 176)
    ['176 px network 1/1', '28 px network 1/2', '28 px network 2/2']
    """
    def names(n, prefix=""):
        return [f"{prefix}network {i + 1}/{n}" for i in range(n)]

    if cnn.companion is None:
        return names(cnn.n_networks) if cnn.n_networks > 1 else [""]
    size = cnn.companion.resize
    small = f"{size if isinstance(size, int) else 'x'.join(map(str, size))} px "
    main = f"{image_size} px " if image_size else "main "
    return names(cnn.n_networks, main) + names(cnn.companion.n_networks,
                                                  small if size else "companion ")


def check_image_size(image_size, conv_filters, *, option="--image-size"):
    """Refuse, before any image is decoded, a size the convolution blocks cannot take."""
    from ..networks import minimum_input_size

    need = minimum_input_size(conv_filters)
    if image_size < need:
        remedy = ("give a larger --image-size or fewer --conv-filters"
                  if option == "--image-size" else f"give a larger {option}")
        raise CLIError(
            f"{option} {image_size} is too small for {len(conv_filters)} convolution "
            f"blocks ({','.join(map(str, conv_filters))}): they need at least {need} px; "
            f"{remedy}"
        )


def _label_smoothing(args, n_classes):
    smoothing = args.label_smoothing
    if smoothing is None:
        return args.two_class_label_smoothing if n_classes == 2 else 0.0
    if not 0 <= smoothing < 1:
        raise CLIError(f"--label-smoothing must be in [0, 1), got {smoothing}")
    if smoothing and n_classes != 2:
        raise CLIError(f"--label-smoothing needs two classes; the labels have {n_classes}")
    return smoothing


def positive_label(classes):
    """The disease label of a binary problem: PNEUMONIA, else the second class."""
    classes = list(classes)
    for c in classes:
        if str(c).upper() == "PNEUMONIA":
            return c
    return classes[-1]


#: ``--out`` suffixes written as joblib pickles; every other name gets the safe format.
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def is_pickle_path(path):
    """Whether ``--out`` asks for a joblib pickle (by its suffix)."""
    return Path(path).suffix.lower() in PICKLE_SUFFIXES


def check_prevalences(values):
    """Refuse a ``--prevalence`` that is not a share, before anything is loaded."""
    bad = [p for p in values or () if not 0 < p < 1]
    if bad:
        raise CLIError(f"--prevalence must be in (0, 1), got {bad[0]}")


def check_out(path):
    """Check before any decoding or training that ``--out`` can be written."""
    from ..io import check_writable

    try:
        return check_writable(path)
    except OSError as exc:
        raise CLIError(f"--out: {exc.strerror if exc.filename else exc}") from exc


def save_pipeline(model, path):
    """Save ``model`` to ``path``: code-free skops unless the name ends in .joblib.

    Both are written to a temporary file and renamed into place (an
    interrupted save leaves any previous file intact) and neither carries
    the decode cache. Returns a short description of the format.
    """
    from ..io import atomic_write, save_model
    from ..io._persistence import _without_decode_caches

    if not is_pickle_path(path):
        save_model(model, path)
        return "safe skops format"
    import joblib

    with _without_decode_caches(model):
        atomic_write(path, lambda tmp: joblib.dump(model, tmp))
    return "joblib pickle: only load it where its source is trusted"


def atomic_write_text(text, path):
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    from ..io import atomic_write

    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def dumps_json(obj):
    """JSON with NaN written as null (strict JSON readers reject NaN)."""

    def clean(value):
        if isinstance(value, float) and value != value:
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return clean(value.item())
        return value

    return json.dumps(clean(obj), indent=2)


def add_model_file_argument(parser):
    """The MODEL positional argument, ``--pretrained`` and ``--allow-pickle``."""
    parser.add_argument("model", metavar="MODEL", nargs="?",
                        help="a model file from cxrlearn train/tune/demo (.skops)")
    parser.add_argument("--pretrained", action="store_true",
                        help="use cxrlearn's ready-trained model instead of a MODEL file "
                             "(its model card: cxrlearn.pretrained.model_card() and the docs)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="also open a .joblib/pickle MODEL; pickles can run any code "
                             "when opened, so only for files whose source you trust")


def load_model_from_args(args):
    """The model a command names: its MODEL file, or ``--pretrained``.

    With ``--pretrained`` the first positional word, if any, was a FILE
    (argparse cannot tell), so it goes back to the files; ``args.model`` is
    set to the packaged model's path for messages.
    """
    if args.pretrained:
        from .. import pretrained
        from ..io import ModelFileError

        if args.model is not None:
            if not isinstance(getattr(args, "files", None), list):
                raise CLIError("give either a MODEL file or --pretrained, not both")
            args.files.insert(0, args.model)
        args.model = str(pretrained._model.MODEL_PATH)
        try:
            return pretrained.load()
        except ModelFileError as exc:
            raise CLIError(str(exc)) from exc
    if args.model is None:
        raise CLIError("give a MODEL file (from cxrlearn train/tune/demo), or --pretrained "
                       "for cxrlearn's ready-trained model")
    return load_model(args.model, allow_pickle=args.allow_pickle)


def load_model(path, *, allow_pickle=False):
    """Load a pipeline saved by ``cxrlearn train`` / ``tune`` / ``demo``.

    The safe skops format is read with :func:`cxrlearn.io.load_model`
    (nothing from the file runs); a joblib pickle is opened only with
    ``allow_pickle=True``, since opening it can run any code.
    """
    from ..io import ModelFileError
    from ..io import load_model as load_safe

    path = Path(path)
    try:
        model = load_safe(path)
    except ModelFileError as exc:
        if not (allow_pickle and "pickle" in exc.reason):
            hint = " (pass --allow-pickle if you trust its source)" if "pickle" in exc.reason \
                else ""
            raise CLIError(f"{exc}{hint}") from exc
        model = _load_pickle(path)
    if not (hasattr(model, "predict") and hasattr(model, "predict_proba")
            and hasattr(model, "classes_")):
        raise CLIError(f"{path} does not hold a fitted classifier with predict_proba")
    return model


def _load_pickle(path):
    import pickle
    import zlib

    import joblib

    try:
        return joblib.load(path)
    except (EOFError, pickle.UnpicklingError, ValueError, OSError, zlib.error) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise CLIError(
            f"cannot load model file '{path}': truncated or corrupted pickle ({detail})"
        ) from exc
    except Exception as exc:  # unpickling errors come in many types
        raise CLIError(
            f"cannot load model file '{path}': {type(exc).__name__}: {exc}"
        ) from exc


def warn_trained_on(model, paths, folder, *, model_name):
    """Warn on stderr when ``model`` was trained on some of ``paths``; their count.

    None when the model cannot tell (:func:`cxrlearn.evaluation.trained_on`).
    """
    from ..evaluation import trained_on

    seen = trained_on(model, paths)
    if seen is None:
        return None
    n = int(seen.sum())
    if n:
        status(trained_on_warning(n, len(paths), folder, model_name))
    return n


def trained_on_warning(n, total, folder, model_name):
    """The warning of ``evaluate`` and ``report`` about ``n`` training images."""
    return (f"WARNING: {n} of the {total} images of {folder} were used to train "
            f"{model_name} (as they are, or the same films at another size or "
            "encoding): its scores on them flatter it. Evaluate on patients it was "
            "not trained on (cxrlearn train --no-train-on-val keeps a val folder out of "
            "training).")


def operating_point(model):
    """How a fitted binary classifier turns scores into labels.

    Moved to :func:`cxrlearn.evaluation.operating_point` (public); kept here
    for the commands and code that import it from this module. Imported on
    call, so that ``cxrlearn --help`` stays fast.
    """
    from ..evaluation import operating_point as _operating_point

    return _operating_point(model)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
