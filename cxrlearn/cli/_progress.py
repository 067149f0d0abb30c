"""Progress of the long steps of the command line: decoding, training, searching.

On a terminal, :mod:`tqdm` draws the bars (count, rate and time left) on
standard error; in a log file or a pipe -- and with ``--json`` or
``--no-progress`` -- there are no bars, only a plain line per epoch of
``train`` and per finished fit of ``tune``. Without tqdm (the ``progress``
extra) the plain lines are shown on a terminal too.

Training progress comes from a Keras callback given to the network through
``PneumoniaCNN(callbacks=...)``: it is the same object in every clone a
grid search makes (``__sklearn_clone__``), so it counts the fits and knows
the candidate and fold of each; the search's scorer is wrapped to record
each fold's score. Both are removed before a model is saved.

On a Dask cluster (``tune --workers`` / ``--scheduler``) the fits run in
other processes, where that callback and a display cannot follow them.
There the scorer is :class:`EventScorer`, which works out the candidate
(from the fitted pipeline's parameters) and the fold (from the first test
file) of each fit it scores and logs them, with the score, as a Dask event
(``distributed.get_worker().log_event``); the command subscribes to the
events (``Client.subscribe_topic``) and :class:`FinishedFits` shows one
line per finished fit, in the order they finish, with the best mean score
so far.
"""

import functools
import os
import sys
import threading
import time

import numpy as np

__all__ = [
    "Display",
    "EventScorer",
    "FinishedFits",
    "ScoreRecorder",
    "decode_images",
    "fit_progress",
    "prime_decode_cache",
]

#: Files per call of the loader while a bar is shown (each call decodes in
#: parallel with the loader's ``n_jobs``).
CHUNK = 64


def _tqdm():
    try:
        from tqdm import tqdm
    except ImportError:  # the "progress" extra is not installed
        return None
    return tqdm


def _isatty(stream):
    """Whether ``stream`` is a terminal that can show a bar.

    A terminal that reports 0 columns -- a pseudo-terminal nobody sized, as
    ``script`` or a container runtime may open without a terminal of their
    own -- shows nothing of tqdm's bars: it gets the plain lines instead.
    """
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, ValueError, OSError):  # no file descriptor: trust isatty
        return True


class Display:
    """Where progress goes: tqdm bars on a terminal, plain lines otherwise.

    Parameters
    ----------
    bars : bool or None, default=None
        Draw bars; None draws them when standard error is a terminal.
    file : file object or None, default=None
        Standard error by default.
    """

    def __init__(self, bars=None, *, file=None):
        self.file = file if file is not None else sys.stderr
        wanted = _isatty(self.file) if bars is None else bool(bars)
        self.tqdm = _tqdm() if wanted else None

    @classmethod
    def from_args(cls, args):
        """The display an ``argparse`` namespace asks for (``--progress``, ``--json``)."""
        bars = getattr(args, "progress", None)
        if bars is None and getattr(args, "json", False):
            bars = False
        return cls(bars)

    @property
    def bars(self):
        """Whether bars are drawn."""
        return self.tqdm is not None

    def bar(self, total, desc, unit):
        """A tqdm bar, or None when there are no bars."""
        if self.tqdm is None:
            return None
        return self.tqdm(total=total, desc=desc, unit=unit, file=self.file,
                         dynamic_ncols=True, leave=False)

    def line(self, text):
        """A plain line, printed above any bar."""
        if self.tqdm is not None:
            self.tqdm.write(text, file=self.file)
        else:
            print(text, file=self.file, flush=True)


def decode_images(loader, paths, display, *, desc="decoding"):
    """``loader.transform(paths)``, in chunks under a bar when bars are shown.

    A lazy loader (``--stream``) decodes while training: nothing happens here.
    """
    if getattr(loader, "lazy", False) or not display.bars or len(paths) <= CHUNK:
        return loader.transform(paths)
    bar = display.bar(len(paths), desc, "img")
    try:
        out = None
        for start in range(0, len(paths), CHUNK):
            block = loader.transform(paths[start : start + CHUNK])
            if out is None:
                out = np.empty((len(paths), *block.shape[1:]), dtype=block.dtype)
            out[start : start + len(block)] = block
            bar.update(len(block))
    finally:
        bar.close()
    return out


def prime_decode_cache(loader, paths, display, *, desc="decoding"):
    """Decode every file once into ``loader``'s cache (``memory=``), under a bar.

    What follows -- the folds and candidates of a search, a threshold
    classifier's predictions -- then reads the decoded images from the
    cache. The loader must be fitted in this process (see
    :class:`~cxrlearn.ImageLoader`'s ``memory``).
    """
    from sklearn.base import clone

    eager = clone(loader).set_params(lazy=False).fit(paths)
    t0 = time.perf_counter()
    bar = display.bar(len(paths), desc, "img")
    try:
        for start in range(0, len(paths), CHUNK):
            chunk = paths[start : start + CHUNK]
            eager.transform(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    if bar is None:
        display.line(f"decoded {len(paths)} images in {time.perf_counter() - t0:.1f} s")


class _FitCounter:
    """Names each fit of a run: ``training``, or candidate and fold of a search.

    Counts Keras fits: an estimator with ``n_networks`` networks (a seed
    ensemble) makes ``networks`` of them, one per network. ``networks`` may
    also be the list of their names (``_common.network_names``: a companion's
    networks are told apart by their size).
    """

    def __init__(self, n_candidates=None, n_folds=None, networks=1):
        self.n_candidates = n_candidates
        self.n_folds = n_folds
        if isinstance(networks, int):
            networks = ([f"network {i + 1}/{networks}" for i in range(networks)]
                        if networks > 1 else [""])
        self.names = list(networks)
        self.networks = len(self.names)
        self.index = -1

    def start(self):
        self.index += 1

    @property
    def in_search(self):
        return self.n_candidates is not None

    @property
    def candidate_fold(self):
        """(candidate, fold), 0-based; fold None for the final refit."""
        fit = self.index // self.networks
        if fit >= self.n_candidates * self.n_folds:
            return None, None
        return divmod(fit, self.n_folds)

    def label(self):
        network = self.names[self.index % self.networks]
        if not self.in_search:
            return network
        candidate, fold = self.candidate_fold
        if candidate is None:
            text = "refit on all images"
        else:
            text = f"candidate {candidate + 1}/{self.n_candidates} fold {fold + 1}/{self.n_folds}"
        return f"{text} {network}" if network else text


@functools.cache
def _fit_progress_class():
    from ..utils import import_keras

    keras = import_keras()

    class FitProgress(keras.callbacks.Callback):
        """Steps and epochs of every fit, on a bar or as plain lines."""

        def __init__(self, display, counter, *, epoch_lines=True, best=None):
            super().__init__()
            self.display = display
            self.counter = counter
            self.epoch_lines = epoch_lines
            self.best = best  # a callable giving the "best so far" text, or None
            self._bar = None

        def __sklearn_clone__(self):
            return self  # one display shared by the clones of a grid search

        def _desc(self, epoch):
            label = self.counter.label()
            text = f"epoch {epoch + 1}/{self.params.get('epochs')}"
            return f"{label} {text}" if label else text

        def on_train_begin(self, logs=None):
            self.counter.start()
            self.fit_started = time.perf_counter()
            steps = self.params.get("steps")
            epochs = self.params.get("epochs") or 1
            total = steps * epochs if steps else None
            self._bar = self.display.bar(total, self._desc(0), "step")
            if self._bar is not None and self.best is not None and self.best():
                self._bar.set_postfix_str(self.best())
            if self._bar is None and self.counter.in_search \
                    and self.counter.candidate_fold[0] is None:
                self.display.line(f"refitting the best candidate on all images ({epochs} "
                                  "epochs)")

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch_started = time.perf_counter()
            if self._bar is not None:
                self._bar.set_description_str(self._desc(epoch))

        def on_train_batch_end(self, batch, logs=None):
            if self._bar is None:
                return
            postfix = []
            if logs and "loss" in logs:
                postfix.append(f"loss={float(logs['loss']):.4f}")
            if self.best is not None and self.best():
                postfix.append(self.best())
            self._bar.set_postfix_str(", ".join(postfix), refresh=False)
            self._bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            if self._bar is not None or not self.epoch_lines:
                return
            logs = logs or {}
            shown = ", ".join(f"{k} {float(v):.4f}" for k, v in logs.items()
                              if k in ("loss", "val_loss"))
            seconds = time.perf_counter() - self._epoch_started
            self.display.line(f"{self._desc(epoch)}: {shown} ({seconds:.1f} s)")

        def on_train_end(self, logs=None):
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    return FitProgress


def fit_progress(display, *, n_candidates=None, n_folds=None, best=None, networks=1):
    """The Keras callback that shows a run's training progress.

    Parameters
    ----------
    display : Display
        Where progress goes.
    n_candidates, n_folds : int or None
        For a grid search (fits counted candidate by candidate, fold by
        fold, then the refit); None for a single training run.
    best : callable or None
        Returns the "best so far" text shown on the bar.
    networks : int or list of str, default=1
        Networks per fit (``PneumoniaCNN(n_networks=...)``), or their names
        (``_common.network_names``, for a companion's): each is named on its
        bar or lines.

    Returns
    -------
    callback : keras.callbacks.Callback
        Also has ``counter``, the fit counter it shares with
        :class:`ScoreRecorder`. Without bars, a single run prints one line
        per epoch and a search none (its scorer prints one per fit).
    """
    counter = _FitCounter(n_candidates, n_folds, networks)
    return _fit_progress_class()(display, counter, epoch_lines=not counter.in_search,
                                 best=best)


class ScoreRecorder:
    """A grid-search scorer that reports each fold's score as it comes.

    Wraps a scikit-learn scorer; prints one line per finished fit (its
    candidate, fold, score and time) and keeps the best mean score so far.

    Parameters
    ----------
    scorer : callable
        ``scorer(estimator, X, y)``, e.g. ``sklearn.metrics.get_scorer("roc_auc")``.
    name : str
        The score's name in the lines.
    callback : keras.callbacks.Callback
        The :func:`fit_progress` callback of the search (its fit counter
        tells the candidate and fold).
    """

    def __init__(self, scorer, name, callback):
        self.scorer = scorer
        self.name = name
        self.callback = callback
        self.scores = {}

    def __call__(self, estimator, X, y, **kwargs):
        score = self.scorer(estimator, X, y, **kwargs)
        counter = self.callback.counter
        candidate, fold = counter.candidate_fold
        if candidate is not None:
            self.scores.setdefault(candidate, []).append(float(score))
            seconds = time.perf_counter() - self.callback.fit_started
            self.callback.display.line(
                f"{counter.label()}: {self.name} {score:.4f} ({seconds:.0f} s)"
                + (f"; {self.best_text()}" if self.best_text() else "")
            )
        return score

    def best_text(self):
        """``best so far roc_auc 0.9712`` (mean over the folds scored), or ''."""
        return _best_text(self.scores, self.name)


def _best_text(scores, name):
    if not scores:
        return ""
    best = max(float(np.mean(s)) for s in scores.values())
    return f"best so far {name} {best:.4f}"


def _event_logger():
    """Where this code logs Dask events: its worker, else its client, else None.

    A fit runs on a worker, except when joblib runs the search in the
    calling process (a cluster of one thread: joblib runs one-job work
    sequentially); there the client logs the event. Without Dask imported
    (no cluster in this process) there is nothing to log to.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        return distributed.get_worker()
    except ValueError:  # not in a worker task
        pass
    try:
        return distributed.get_client()
    except ValueError:  # no client either
        return None


def _same(a, b):
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. arrays, whose == is elementwise
        return a is b


class EventScorer:
    """A grid-search scorer that logs each fit it scores as a Dask event.

    Runs where the fit runs (a Dask worker). The event says which
    candidate and fold the fit was -- the candidate found by comparing the
    fitted pipeline's parameters with the grid's, the fold by the first
    file of the test fold -- and its score. In the process of the search's
    client (where joblib runs a search on one thread) the client logs it;
    without Dask it only scores. Pickles small: the scorer, the grid's
    candidates and one file name per fold.

    Parameters
    ----------
    scorer : callable
        ``scorer(estimator, X, y)``, e.g. ``sklearn.metrics.get_scorer("roc_auc")``.
    topic : str
        The Dask event topic the command subscribed to.
    candidates : list of dict
        ``list(sklearn.model_selection.ParameterGrid(grid))``, in the
        search's order.
    first_test_files : list of str
        The first file of each test fold, in the order of the folds.
    """

    def __init__(self, scorer, topic, candidates, first_test_files):
        self.scorer = scorer
        self.topic = topic
        self.candidates = candidates
        self.first_test_files = first_test_files

    def __call__(self, estimator, X, y):
        score = self.scorer(estimator, X, y)
        logger = _event_logger()
        if logger is not None:
            logger.log_event(self.topic, {
                "kind": "fit", "candidate": self._candidate(estimator),
                "fold": self._fold(X), "score": float(score),
            })
        return score

    def _candidate(self, estimator):
        params = estimator.get_params()
        for i, candidate in enumerate(self.candidates):
            if all(name in params and _same(params[name], value)
                   for name, value in candidate.items()):
                return i
        return None

    def _fold(self, X):
        first = str(np.asarray(X, dtype=object).ravel()[0]) if len(X) else None
        try:
            return self.first_test_files.index(first)
        except ValueError:
            return None


class FinishedFits:
    """Shows the fits of a search on a Dask cluster as their events arrive.

    The handler of ``Client.subscribe_topic``: called, in the client's
    thread, with ``(timestamp, message)`` for each fit scored by an
    :class:`EventScorer` (one line each, e.g. ``fit 3/6 done (candidate 2/3
    fold 1/2): roc_auc 0.9375 at 41 s; best so far roc_auc 0.9400``, and a
    bar of the fits on a terminal) and for each epoch of a refit on a
    worker.

    Parameters
    ----------
    display : Display
        Where progress goes.
    n_candidates, n_folds : int
        The size of the search.
    name : str
        The score's name in the lines.
    """

    def __init__(self, display, n_candidates, n_folds, name):
        self.display = display
        self.n_candidates = n_candidates
        self.n_folds = n_folds
        self.name = name
        self.scores = {}
        self.done = 0
        self.started = time.perf_counter()
        self._seen = set()
        self._changed = threading.Condition()
        self._bar = display.bar(n_candidates * n_folds, "grid search", "fit")
        self._refit_bar = None

    def __call__(self, event):
        _, message = event
        with self._changed:
            if message.get("kind") == "epoch":
                self._epoch(message)
            else:
                self._fit(message)
            self._changed.notify_all()

    def _fit(self, message):
        candidate, fold = message.get("candidate"), message.get("fold")
        if candidate is not None and fold is not None:
            if (candidate, fold) in self._seen:  # also read back by get_events
                return
            self._seen.add((candidate, fold))
        self.done += 1
        label = ""
        if candidate is not None:
            self.scores.setdefault(candidate, []).append(float(message["score"]))
            label = f" (candidate {candidate + 1}/{self.n_candidates}" + (
                f" fold {fold + 1}/{self.n_folds})" if fold is not None else ")")
        best = self.best_text()
        self.display.line(
            f"fit {self.done}/{self.n_candidates * self.n_folds} done{label}: "
            f"{self.name} {message['score']:.4f} at {time.perf_counter() - self.started:.0f} s"
            + (f"; {best}" if best else ""))
        if self._bar is not None:
            self._bar.set_postfix_str(best, refresh=False)
            self._bar.update(1)
            self._bar.refresh()  # fits can end together, within tqdm's redraw interval

    def _epoch(self, message):
        epoch, epochs = message["epoch"], message.get("epochs")
        if self.display.bars:
            if self._refit_bar is None:
                self.close()  # the search's bar
                self._refit_bar = self.display.bar(epochs, "refit on all images", "epoch")
            if message.get("loss") is not None:
                self._refit_bar.set_postfix_str(f"loss={message['loss']:.4f}", refresh=False)
            self._refit_bar.update(1)
            if epochs is not None and epoch >= epochs:
                self.close()
            return
        loss = "" if message.get("loss") is None else f"loss {message['loss']:.4f} "
        self.display.line(f"refit on all images epoch {epoch}/{epochs}: {loss}"
                          f"({message['seconds']:.1f} s)")

    def best_text(self):
        """``best so far roc_auc 0.9712`` (mean over the folds scored), or ''."""
        return _best_text(self.scores, self.name)

    def wait(self, n_fits, timeout):
        """Wait until ``n_fits`` fits were shown, at most ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self.done >= n_fits, timeout)

    def close(self):
        """Close the bars."""
        with self._changed:
            for bar in (self._bar, self._refit_bar):
                if bar is not None:
                    bar.close()
            self._bar = self._refit_bar = None
