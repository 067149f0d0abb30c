"""TensorFlow's CPU thread pools sized to the share a joblib / Dask worker gets.

A grid search runs one fit per worker. Left alone, TensorFlow sizes its two
thread pools (intra-op: threads that split one operation; inter-op: threads
that run independent operations) to every core of the machine in every
worker process, so ``GridSearchCV(n_jobs=2)`` on 2 cores runs 2 x 2
compute threads, and 64 Dask workers on a 64-core node run 64 x 64. The
engines already say how many threads a worker may use -- joblib's loky
backend through the ``OMP_NUM_THREADS``-style variables it sets in each
worker (``cpu_count() // n_jobs``, or ``inner_max_num_threads``), Dask
through the worker's ``nthreads`` -- but TensorFlow reads neither. This
module passes that share on (:func:`limit_tf_threads`); nothing in joblib,
Dask or TensorFlow does it.

TensorFlow fixes the size of its pools when its runtime starts (its first
operation), once per process; they cannot be resized afterwards.
"""

import numbers
import os
import sys
import threading
import warnings

__all__ = ["limit_tf_threads"]

#: The thread-limit variables joblib's loky backend sets in its workers
#: (``joblib._parallel_backends.ParallelBackendBase.MAX_NUM_THREADS_VARS``,
#: in its order).
_THREAD_LIMIT_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

_lock = threading.Lock()
#: Thread count this process's TensorFlow pools were capped at (or None).
_applied = None
#: Whether this process already warned that the cap came too late.
_warned = False


def _available_cpus():
    """CPUs this process may run on: TensorFlow's default pool size."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def limit_tf_threads(n_threads):
    """Cap TensorFlow's CPU thread pools in this process at ``n_threads``.

    Sets TensorFlow's intra-op pool (the threads that split one
    operation, e.g. a convolution) to ``n_threads`` and its inter-op pool
    (the threads that run independent operations side by side) to one, so
    that training uses about ``n_threads`` cores. TensorFlow allows this
    only before its runtime starts, i.e. before the process runs its first
    TensorFlow operation; call it first thing in a worker process.

    You rarely need to call it yourself: :class:`cxrlearn.PneumoniaCNN`
    calls it at its first fit or prediction in a joblib (loky) or Dask
    worker process with the share that worker is given -- the
    ``OMP_NUM_THREADS``-style limit loky sets in its workers
    (``cpu_count() // n_jobs``, or ``inner_max_num_threads`` of
    :func:`joblib.parallel_config`), or the ``nthreads`` of the Dask
    worker(s) running in the process. Outside such workers TensorFlow keeps
    its defaults unless you call this function.

    When TensorFlow already runs with pools larger than ``n_threads`` they
    stay as they are: a :class:`RuntimeWarning` says so, once per process,
    and the function returns False. Pools already at most ``n_threads``
    (including TensorFlow's default on a machine with at most ``n_threads``
    CPUs) count as capped.

    Parameters
    ----------
    n_threads : int
        Threads TensorFlow's operations may use in this process, at least 1.

    Returns
    -------
    capped : bool
        Whether TensorFlow's pools are now at most ``n_threads`` threads
        each: set as described above, or already that small.

    Warns
    -----
    RuntimeWarning
        When TensorFlow already started with larger pools.

    Examples
    --------
    Capping at every CPU of the machine changes nothing but shows the call;
    in a worker process of your own, call it before any TensorFlow work:

    >>> import os
    >>> from cxrlearn.utils import limit_tf_threads
    >>> limit_tf_threads(os.cpu_count())
    True
    """
    global _applied, _warned
    if (isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral)
            or n_threads < 1):
        raise ValueError(f"n_threads must be an int >= 1, got {n_threads!r}")
    n_threads = int(n_threads)
    with _lock:
        if _applied is not None and _applied <= n_threads:
            return True
        from ._keras import import_keras

        import_keras()  # TensorFlow's start-up, with its noise filtered
        import tensorflow as tf

        threading_config = tf.config.threading
        try:
            threading_config.set_intra_op_parallelism_threads(n_threads)
            threading_config.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # the runtime has started: the pools are fixed
            intra = threading_config.get_intra_op_parallelism_threads() or _available_cpus()
            inter = threading_config.get_inter_op_parallelism_threads() or _available_cpus()
            if intra <= n_threads and inter <= n_threads:
                _applied = intra
                return True
            if not _warned:
                _warned = True
                warnings.warn(
                    f"cxrlearn could not cap TensorFlow at {n_threads} thread(s) in this "
                    f"process (pid {os.getpid()}): TensorFlow had already started, with "
                    f"{intra} intra-op and {inter} inter-op threads, and its thread pools "
                    "cannot be resized once it has run an operation. Fits in this process "
                    "may use more cores than their share. Call "
                    "cxrlearn.utils.limit_tf_threads() before any TensorFlow work, or run "
                    "the fits in fresh worker processes.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return False
        _applied = n_threads
        return True


def _env_thread_limit():
    """The first valid thread-limit variable of :data:`_THREAD_LIMIT_VARS`, or None."""
    for name in _THREAD_LIMIT_VARS:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return None


def _in_loky_worker():
    """Whether this process is a worker process started by joblib's loky.

    loky records the nesting depth of its worker processes
    (``_CURRENT_DEPTH``, 0 in a process it did not start).
    """
    executor = sys.modules.get("joblib.externals.loky.process_executor")
    return executor is not None and getattr(executor, "_CURRENT_DEPTH", 0) >= 1


def _loky_worker_share():
    """Threads a joblib loky worker process may use; None outside one.

    joblib puts the worker's share in its environment
    (:data:`_THREAD_LIMIT_VARS`).
    """
    return _env_thread_limit() if _in_loky_worker() else None


#: The name Dask's nanny gives the worker processes it starts
#: (``distributed.nanny``): ``LocalCluster(processes=True)``, ``dask worker``.
_NANNY_PROCESS_NAME = "Dask Worker process (from Nanny)"


def _running(workers):
    return [w for w in workers if getattr(w.status, "name", "") == "running"]


def _dask_workers():
    """The Dask worker(s) the calling code runs for, or ``[]``.

    In a task's own thread, its worker (a context variable). Elsewhere in a
    worker process started by a nanny -- e.g. the event-loop thread where
    Dask unpickles a task's arguments, or threads a task started -- the
    worker of that process. Threads of any other process (a client hosting
    threaded workers, ``LocalCluster(processes=False)``) run for no worker.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:  # no Dask here: nothing to ask
        return []
    try:
        return [distributed.get_worker()]
    except ValueError:
        pass
    import multiprocessing

    if multiprocessing.current_process().name != _NANNY_PROCESS_NAME:
        return []
    return _running(getattr(distributed.Worker, "_instances", ()))


def _dask_worker_share():
    """Threads of the Dask worker(s) of this process; None outside Dask workers.

    A worker process started by a nanny holds one worker. Threaded workers
    (``LocalCluster(processes=False)``) share their process, and with it
    TensorFlow's pools: their threads are added up.
    """
    workers = _dask_workers()
    if not workers:
        return None
    siblings = _running(getattr(type(workers[0]), "_instances", ()))
    siblings += [w for w in workers if w not in siblings]
    return sum(int(getattr(w, "state", w).nthreads) for w in siblings)


def _worker_thread_share():
    """Threads the joblib / Dask worker running this code may use, or None.

    A Dask worker's ``nthreads`` first, then the limit joblib's loky backend
    sets in its workers; None in any other process (the main process keeps
    TensorFlow's defaults).
    """
    share = _dask_worker_share()
    if share is None:
        share = _loky_worker_share()
    return share


def tf_threads_cap():
    """The cap :func:`limit_tf_threads` applied in this process, or None."""
    return _applied


def limit_tf_threads_to_worker_share():
    """Cap TensorFlow at the current worker's share; a no-op outside workers.

    Called at the start of each fit and when a network is loaded, before
    TensorFlow runs anything, so that the cap can still apply.
    """
    share = _worker_thread_share()
    if share is not None:
        limit_tf_threads(share)


def worker_description():
    """Where this code runs, for error messages: a Dask or joblib worker, or None.

    Returns, e.g., ``"Dask worker tcp://10.0.0.5:40123 (host node5, pid
    812)"`` or ``"joblib worker process (host node5, pid 813)"``; None in a
    process that is neither (an error there is the caller's own). Threads
    that a task starts in a threaded worker (``processes=False``), such as
    an ``ImageLoader``'s decoding threads, are not attributed here (see
    :func:`_dask_workers`) but by the loader, which names the worker of the
    thread that called it.
    """
    import socket

    where = f"host {socket.gethostname()}, pid {os.getpid()}"
    workers = _dask_workers()
    if workers:
        return f"Dask worker {', '.join(str(w.address) for w in workers)} ({where})"
    if _in_loky_worker():
        return f"joblib worker process ({where})"
    return None
