"""Lazy access to Keras so that ``import cxrlearn`` stays fast."""

import os

__all__ = ["import_keras"]


def import_keras():
    """Import and return the :mod:`keras` module on first use.

    TensorFlow's C++ start-up chatter is silenced unless the user already
    chose a log level through ``TF_CPP_MIN_LOG_LEVEL``.

    Returns
    -------
    keras : module
        The Keras 3 module.

    Examples
    --------
    >>> from cxrlearn.utils import import_keras
    >>> keras = import_keras()
    >>> int(keras.__version__.split(".")[0]) >= 3
    True
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras
