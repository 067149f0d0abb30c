"""Lazy access to Keras so that ``import cxrlearn`` stays fast."""

import contextlib
import importlib
import os
import re
import sys
import tempfile
import threading

__all__ = ["import_keras"]

#: Lines that TensorFlow's C++ start-up writes to the process's standard
#: error whatever ``TF_CPP_MIN_LOG_LEVEL`` says (TensorFlow 2.21 logs them
#: through Abseil before Abseil's log levels are set up): Abseil's notice,
#: its INFO (I...) and WARNING (W...) records -- oneDNN, "Could not find cuda
#: drivers", CPU features -- and the ERROR record of a machine without a GPU
#: (``failed call to cuInit``) or of duplicate CUDA plugin registrations.
_STARTUP_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "
    r"|.*failed call to cuInit"
    r"|.*Unable to register cu(?:DNN|FFT|BLAS) factory"
    r"|.*computation placer already registered"
    r"|To enable the following instructions: .* rebuild TensorFlow with"
)

_started = False
_start_lock = threading.Lock()  # one thread at a time redirects descriptor 2


def _wants_native_logs():
    """Whether the user asked for TensorFlow's INFO / WARNING lines."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2").strip()
    try:
        return int(level) < 2
    except ValueError:
        return False


def _keep(line):
    return not _STARTUP_NOISE.match(line.decode("utf-8", "replace"))


@contextlib.contextmanager
def _filtered_native_stderr():
    """Hold back TensorFlow's start-up lines written to file descriptor 2.

    The descriptor is pointed at a temporary file while the block runs; on
    leaving, every line that is not start-up noise (:data:`_STARTUP_NOISE`)
    is written to the real standard error, in order. Python-level writes to
    ``sys.stderr`` in the meantime are delayed, not lost.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 2
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = b"".join(line for line in held if _keep(line))
            if kept:
                os.write(2, kept)


def _start_keras():
    """Import Keras (and TensorFlow) and let TensorFlow probe its devices."""
    importlib.import_module("keras")
    tf = sys.modules.get("tensorflow")
    if tf is not None:  # CUDA is probed (cuInit) when devices are first listed
        tf.config.list_physical_devices()


def import_keras():
    """Import and return the :mod:`keras` module on first use.

    TensorFlow's C++ start-up chatter is silenced unless the user already
    chose a log level through ``TF_CPP_MIN_LOG_LEVEL``: the variable is set
    to 2 (errors only) if unset, and -- since TensorFlow 2.21 writes some
    start-up lines (Abseil's ``All log messages before absl::InitializeLog()``
    notice, the oneDNN and "Could not find cuda drivers" notes, and on a
    machine without a GPU ``E0000 ... failed call to cuInit: ... CUDA
    error``) before any log level applies -- the first call imports
    TensorFlow and lists its devices (which is when CUDA is probed) with the
    process's standard error (file descriptor 2) held in a temporary file,
    then writes back every line except those. Other output of that moment,
    from any thread, is delayed by the import (a few seconds), not lost.
    With ``TF_CPP_MIN_LOG_LEVEL`` set to 0 or 1 everything is shown.

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
    global _started
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    if not _started:
        with _start_lock:
            if not (_started or "keras" in sys.modules or _wants_native_logs()):
                with _filtered_native_stderr():
                    _start_keras()
            _started = True
    import keras

    return keras
