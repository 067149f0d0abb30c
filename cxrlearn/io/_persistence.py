"""Model files that run no code when they are opened.

A ``.joblib`` (pickle) file can run any command when it is loaded. The
format here is :mod:`skops.io`: a zip of JSON and arrays from which only
types on an allow-list are rebuilt, and the Keras network inside travels as
native ``.keras`` bytes restored with ``safe_mode=True``. cxrlearn trusts
exactly its own estimator classes and scikit-learn's, never a type because
the file asks for it.
"""

import importlib
import inspect
import io
import zipfile
from contextlib import contextmanager
from pathlib import Path

from ._files import atomic_write

__all__ = [
    "ModelFileError",
    "UntrustedModelError",
    "is_trusted_type",
    "load_model",
    "save_model",
]

#: Packages whose own classes and functions a model file may name.
TRUSTED_PACKAGES = ("cxrlearn", "sklearn")

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_HINT = (
    "pickle (joblib) files can run any code when they are opened, so "
    "cxrlearn.io.load_model never opens them; if you trust whoever made the "
    "file, load it with joblib.load and re-save it with cxrlearn.io.save_model"
)


class ModelFileError(ValueError):
    """A model file that cannot be loaded: the message names it and the cause.

    Parameters
    ----------
    path : str or os.PathLike
        The model file.
    reason : str
        Why it cannot be loaded.

    Attributes
    ----------
    path : str
        The model file.
    reason : str
        Why it cannot be loaded.

    Examples
    --------
    >>> from cxrlearn.io import ModelFileError
    >>> print(ModelFileError("m.skops", "truncated"))
    cannot load model file 'm.skops': truncated
    """

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load model file '{self.path}': {reason}")

    def __reduce__(self):
        return type(self), (self.path, self.reason)


class UntrustedModelError(ModelFileError):
    """A model file that names types outside the allow-list.

    Nothing from the file has been built when this is raised.

    Parameters
    ----------
    path : str or os.PathLike
        The model file.
    types : list of str
        The untrusted type names, as the file spells them.

    Attributes
    ----------
    types : list of str
        The untrusted type names.
    """

    def __init__(self, path, types):
        self.types = list(types)
        super().__init__(
            path,
            f"it names types that are neither cxrlearn's nor scikit-learn's: "
            f"{', '.join(self.types)}; nothing was loaded. If you have read the "
            f"code of these types and trust it, pass them in trusted=[...]",
        )

    def __reduce__(self):
        return type(self), (self.path, self.types)


def is_trusted_type(name):
    """Whether a type name from a model file is cxrlearn's or scikit-learn's own.

    The name must be ``module.qualname`` of a class or function *defined* in
    :mod:`cxrlearn` or :mod:`sklearn` (a name they merely re-export from
    another package does not count). Only modules of those two packages are
    ever imported to check.

    Parameters
    ----------
    name : str
        A type name as :func:`skops.io.get_untrusted_types` lists it.

    Returns
    -------
    trusted : bool

    Examples
    --------
    >>> from cxrlearn.io import is_trusted_type
    >>> is_trusted_type("cxrlearn._classifier.PneumoniaCNN")
    True
    >>> is_trusted_type("sklearn.pipeline.Pipeline")
    True
    >>> is_trusted_type("os.system"), is_trusted_type("sklearn.utils.fixes.os.system")
    (False, False)
    """
    module_name, _, qualname = name.rpartition(".")
    top = module_name.split(".")[0]
    if top not in TRUSTED_PACKAGES or not qualname:
        return False
    try:
        obj = importlib.import_module(module_name)
    except ImportError:
        return False
    obj = getattr(obj, qualname, None)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return False
    return f"{obj.__module__}.{obj.__qualname__}" == name


def _iter_estimators(obj, seen=None):
    """``obj`` and every estimator held in its attributes, recursively."""
    from sklearn.base import BaseEstimator

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, BaseEstimator):
        yield obj
        children = vars(obj).values()
    elif isinstance(obj, (list, tuple)):
        children = obj
    elif isinstance(obj, dict):
        children = obj.values()
    else:
        return
    for child in children:
        yield from _iter_estimators(child, seen)


@contextmanager
def _without_decode_caches(estimator):
    """Switch off every ``ImageLoader(memory=...)`` while the model is saved.

    The decode cache is a training-time convenience: a model file must not
    make the application that loads it write decoded patient images.
    """
    from .._loading import ImageLoader

    loaders = [
        e for e in _iter_estimators(estimator)
        if isinstance(e, ImageLoader) and e.memory is not None
    ]
    saved = [loader.memory for loader in loaders]
    try:
        for loader in loaders:
            loader.memory = None
        yield
    finally:
        for loader, memory in zip(loaders, saved):
            loader.memory = memory


def save_model(estimator, path, *, include_optimizer=True):
    """Save a (fitted) estimator or pipeline to a file that runs no code.

    The file is a :mod:`skops.io` archive; the Keras network of each
    :class:`~cxrlearn.PneumoniaCNN` is stored as native ``.keras`` bytes.
    ``ImageLoader(memory=...)`` decode caches are not saved (the loaded
    model caches nothing). The file is written to a temporary name beside
    ``path`` and renamed, so an interrupted save leaves any previous file
    intact; it gets the permissions of the user's umask.

    Parameters
    ----------
    estimator : estimator
        Typically a fitted ``Pipeline([ImageLoader, PneumoniaCNN])``, maybe
        wrapped in :class:`~cxrlearn.OperatingPointClassifier` or a
        scikit-learn meta-estimator.
    path : str or os.PathLike
        Destination, conventionally ending in ``.skops``.
    include_optimizer : bool, default=True
        Keep each network's optimizer state (what ``warm_start`` continues
        from). ``False`` saves the networks alone, about a third of the size:
        the loaded model predicts exactly the same but cannot continue
        training where it stopped.

    Returns
    -------
    path : pathlib.Path
        The written file.

    See Also
    --------
    load_model : Load it back, trusting only cxrlearn's and scikit-learn's types.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from cxrlearn.io import load_model, save_model
    >>> X, y = np.arange(8.0).reshape(-1, 1), np.array([0, 0, 0, 1, 0, 1, 1, 1])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.skops")
    >>> clf = LogisticRegression().fit(X, y)
    >>> _ = save_model(clf, path)
    >>> np.array_equal(load_model(path).predict_proba(X), clf.predict_proba(X))
    True
    """
    import skops.io as sio

    from .._training import INCLUDE_OPTIMIZER

    token = INCLUDE_OPTIMIZER.set(bool(include_optimizer))
    try:
        with _without_decode_caches(estimator):
            data = sio.dumps(estimator, compression=zipfile.ZIP_DEFLATED)
    finally:
        INCLUDE_OPTIMIZER.reset(token)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def _read(path):
    path = Path(path)
    if not path.exists():
        raise ModelFileError(path, "file not found")
    if not path.is_file():
        raise ModelFileError(path, "not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(path, f"cannot read it ({exc.strerror or exc})") from exc
    if not data:
        raise ModelFileError(path, "empty file (0 bytes)")
    return data


def _check_archive(path, data):
    """A readable zip whose every member passes its CRC check."""
    if not data.startswith(_ZIP_MAGIC):
        if data[:1] == b"\x80" or path.suffix in (".joblib", ".pkl", ".pickle"):
            raise ModelFileError(path, f"it looks like a pickle file; {_PICKLE_HINT}")
        raise ModelFileError(path, "not a cxrlearn model file (not a skops zip archive)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise ModelFileError(
            path, f"truncated or corrupted archive ({type(exc).__name__}: {exc})"
        ) from exc
    except Exception as exc:  # zlib errors and the like from a damaged member
        raise ModelFileError(
            path, f"corrupted archive ({type(exc).__name__}: {exc})"
        ) from exc
    if bad is not None:
        raise ModelFileError(path, f"corrupted archive: member {bad!r} fails its CRC check")
    if "schema.json" not in names:
        raise ModelFileError(path, "not a skops model file (no schema.json)")


def load_model(path, *, trusted=None):
    """Load a model saved by :func:`save_model`, running no code from the file.

    Before anything is built, every type the file names is checked: those
    defined in cxrlearn or scikit-learn (and the plain containers and numpy
    types :mod:`skops.io` always accepts) are rebuilt; any other type stops
    the load with :class:`UntrustedModelError`. Keras networks are restored
    with ``safe_mode=True`` (no Lambda-layer code) and only from Keras's own
    layer modules. Pickle / joblib files are refused, never opened.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.skops`` file from :func:`save_model`, ``cxrlearn train``,
        ``tune`` or ``demo``.
    trusted : list of str, default=None
        Further type names (``module.qualname``) to accept, for pipelines
        with steps from other libraries. Only list types whose code you
        have read: trusting a type lets the file construct it.

    Returns
    -------
    estimator : estimator
        The saved estimator, fitted as it was saved.

    Raises
    ------
    UntrustedModelError
        If the file names a type outside the allow-list; nothing was built.
    ModelFileError
        If the file is missing, empty, a pickle, truncated, corrupted, or
        cannot be rebuilt; the message names the file and the cause.

    Examples
    --------
    >>> import os, tempfile
    >>> from cxrlearn.io import ModelFileError, load_model
    >>> path = os.path.join(tempfile.mkdtemp(), "model.joblib")
    >>> with open(path, "wb") as fh:
    ...     _ = fh.write(b"\\x80\\x04 not really a pickle")
    >>> try:
    ...     load_model(path)
    ... except ModelFileError as exc:
    ...     print(exc.reason[:28])
    it looks like a pickle file;
    """
    path = Path(path)
    return _load_bytes(path, _read(path), trusted)


def _load_bytes(path, data, trusted=None):
    """:func:`load_model` on bytes already read (``path`` names them in errors)."""
    import skops.io as sio

    _check_archive(path, data)
    extra = set(trusted or ())
    try:
        names = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise ModelFileError(path, f"unreadable schema ({type(exc).__name__}: {exc})") from exc
    untrusted = [n for n in names if n not in extra and not is_trusted_type(n)]
    if untrusted:
        raise UntrustedModelError(path, untrusted)
    try:
        return sio.loads(data, trusted=list(names))
    except ModelFileError:
        raise
    except Exception as exc:
        raise ModelFileError(
            path, f"cannot rebuild the model ({type(exc).__name__}: {exc})"
        ) from exc
