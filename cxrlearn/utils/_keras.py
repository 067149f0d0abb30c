"""Lazy access to Keras so that ``import cxrlearn`` stays fast."""

import os

__all__ = ["import_keras"]


def import_keras():
    """Import and return the :mod:`keras` module on first use.

    TensorFlow's C++ start-up chatter is silenced unless the user already
    chose a log level through ``TF_CPP_MIN_LOG_LEVEL``.

    TensorFlow's pooling CPU allocator is switched on
    (``TF_CPU_ALLOCATOR_USE_BFC=true``) unless the variable is already set.
    By default TensorFlow takes every large CPU tensor from ``malloc``,
    which maps fresh pages from the kernel for each one; the study's
    network allocates a few hundred megabytes of activations per batch, so
    training spent about a quarter of its time in page faults. With the
    pooling allocator the buffers are reused: on the 2-core development
    machine the kernel time of a training run fell from 22 s to 1.5 s and
    the total CPU time by about a fifth; the wall-clock gain varied between
    measurements on that shared machine (``benchmarks/allocator.py`` and
    the recipe page of the documentation). TensorFlow reads the
    variable once, when it allocates its first CPU tensor, so it has no
    effect in a process where TensorFlow already ran an operation; set it
    to ``false`` to keep TensorFlow's default.

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
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    import keras

    return keras
