"""``cxrlearn tune`` on a Dask cluster: ``--workers N`` or ``--scheduler ADDRESS``.

The search is scikit-learn's own :class:`~sklearn.model_selection.GridSearchCV`
run under joblib's Dask backend (``joblib.parallel_backend("dask")``) with a
:class:`distributed.Client`: the fits (a candidate on a fold) run as tasks
on the workers. Nothing here schedules anything; this module only starts or
connects to the cluster, and carries the progress of the fits back to the
command (see :class:`~cxrlearn.cli._progress.EventScorer`).

Dask is an optional dependency (``pip install 'cxrlearn[dask]'``), imported
only when a command asks for a cluster, so that ``cxrlearn --help`` stays
fast.
"""

import argparse
import contextlib
import logging
import time

from ._common import CLIError, status

__all__ = [
    "CONNECT_TIMEOUT",
    "WORKER_WAIT",
    "add_cluster_arguments",
    "dask_client",
    "import_distributed",
    "refit_on_worker",
]

#: Seconds to wait for an existing scheduler (``--scheduler``) to answer.
CONNECT_TIMEOUT = 10

#: Seconds joblib waits for a first worker when the scheduler has none.
WORKER_WAIT = 60

#: How to install what ``--workers`` and ``--scheduler`` need.
INSTALL_HINT = "pip install 'cxrlearn[dask]'"


def _n_workers(text):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 2:
        raise argparse.ArgumentTypeError(
            f"expected 2 or more workers, got {text!r} (joblib runs a search on a single "
            "one-thread worker in this process: leave --workers out)")
    return value


def add_cluster_arguments(parser):
    """``--workers N`` or ``--scheduler ADDRESS`` (one of them, or neither)."""
    group = parser.add_argument_group(
        "scaling out",
        "Run the fits of the search as tasks on a Dask cluster (needs "
        f"`{INSTALL_HINT}`); the scores are those of a search on one machine. The image "
        "paths must be readable at the same place on every worker.")
    choice = group.add_mutually_exclusive_group()
    choice.add_argument("--workers", type=_n_workers, default=None, metavar="N",
                        help="start a local Dask cluster of N (2 or more) worker processes of "
                        "one thread each for the search, and close it afterwards; the "
                        "workers share the decode cache and the best candidate is refitted "
                        "here")
    choice.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run the fits on the workers of an existing Dask scheduler, e.g. "
                        "tcp://host:8786; the workers decode the images themselves (a "
                        "temporary cache here would not be visible to them) unless --cache "
                        "DIR names a folder on storage that every worker sees at the same "
                        "path; the best candidate is refitted on a worker")
    return parser


def import_distributed():
    """``distributed``, or a :class:`CLIError` saying how to install it."""
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError as exc:
        raise CLIError(f"--workers and --scheduler need Dask's distributed scheduler, "
                       f"which is not installed ({exc}); install it with "
                       f"`{INSTALL_HINT}`") from exc
    return distributed


def _connect(distributed, address):
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=True)
    except (OSError, ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise CLIError(f"cannot reach the Dask scheduler at {address} ({detail}); start one "
                       "with `dask scheduler` and give the address it prints, e.g. "
                       "--scheduler tcp://host:8786") from exc


def _describe(client):
    nthreads = client.nthreads()
    workers = len(nthreads)
    threads = sum(nthreads.values())
    return (f"{workers} worker{'s' if workers != 1 else ''}, "
            f"{threads} thread{'s' if threads != 1 else ''}")


@contextlib.contextmanager
def dask_client(*, workers=None, scheduler=None):
    """A Dask client, with joblib's Dask backend active, for the block.

    Parameters
    ----------
    workers : int or None
        Start a :class:`distributed.LocalCluster` of this many one-thread
        worker processes; it is closed when the block ends.
    scheduler : str or None
        Or the address of an existing scheduler (``tcp://host:8786``),
        waited for at most :data:`CONNECT_TIMEOUT` seconds.

    Yields
    ------
    client : distributed.Client
        The client: joblib's ``Parallel`` (and so scikit-learn's searches)
        sends its tasks to it inside the block.
    """
    import joblib

    distributed = import_distributed()
    with contextlib.ExitStack() as stack:
        if workers is not None:
            t0 = time.perf_counter()
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR))
            client = stack.enter_context(distributed.Client(cluster, set_as_default=True))
            status(f"started a local Dask cluster ({_describe(client)}) in "
                   f"{time.perf_counter() - t0:.1f} s")
        else:
            client = stack.enter_context(_connect(distributed, scheduler))
            status(f"connected to the Dask scheduler at {scheduler} ({_describe(client)})"
                   + (f"; waiting up to {WORKER_WAIT} s for a worker to join"
                      if not client.nthreads() else ""))
        if sum(client.nthreads().values()) == 1:
            status("note: joblib runs the fits of a cluster with a single thread in this "
                   "process, one after the other; give the workers two threads or more")
        with joblib.parallel_backend("dask", client=client,
                                     wait_for_workers_timeout=WORKER_WAIT):
            yield client


def refit_on_worker(pipe, X, y, topic):
    """Fit ``pipe`` on a Dask worker, logging each epoch to the event ``topic``.

    Submitted by ``cxrlearn tune --scheduler`` for the final refit, so that
    the largest fit runs on the cluster rather than where the command runs;
    the command shows the epochs as they end
    (:class:`~cxrlearn.cli._progress.FinishedFits`).

    Parameters
    ----------
    pipe : Pipeline
        The ``[loader, cnn]`` pipeline with the best candidate's parameters.
    X, y : array-like
        Image paths and labels.
    topic : str
        The Dask event topic of the command.

    Returns
    -------
    pipe : Pipeline
        Fitted, without the callback.
    """
    from distributed import get_worker

    from ..utils import import_keras

    keras = import_keras()
    worker = get_worker()

    class EpochEvents(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            worker.log_event(topic, {
                "kind": "epoch", "epoch": epoch + 1, "epochs": self.params.get("epochs"),
                "loss": None if loss is None else float(loss),
                "seconds": time.perf_counter() - self.started, "worker": str(worker.name),
            })

    from ._common import set_callbacks

    set_callbacks(pipe[-1], [EpochEvents()])
    try:
        pipe.fit(X, y)
    finally:
        set_callbacks(pipe[-1], None)
    return pipe
