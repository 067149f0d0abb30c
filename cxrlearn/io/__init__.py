"""Files in and out: model files that run no code, written atomically.

:func:`save_model` / :func:`load_model` use :mod:`skops.io` with an
allow-list of cxrlearn's and scikit-learn's own types, so a model file
received from someone else cannot run code when it is opened (a ``.joblib``
pickle can). :func:`atomic_write` and :func:`check_writable` are the file
helpers the command line uses for its outputs.
"""

from ._files import atomic_write, check_writable
from ._persistence import (
    ModelFileError,
    UntrustedModelError,
    is_trusted_type,
    load_model,
    save_model,
)

__all__ = [
    "ModelFileError",
    "UntrustedModelError",
    "atomic_write",
    "check_writable",
    "is_trusted_type",
    "load_model",
    "save_model",
]
