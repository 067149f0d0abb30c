"""Timing helpers shared by the benchmark scripts (run from this folder)."""

import time

import numpy as np


def epoch_timer(keras):
    """A Keras callback recording the wall-clock and CPU seconds of each epoch.

    After a fit, ``callback.durations`` lists one wall-clock duration per
    epoch and ``callback.cpu_durations`` the CPU seconds the process used in
    it (all threads; time stolen by other virtual machines is not counted);
    the first epoch includes graph tracing, so throughput is measured on the
    others.
    """

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.durations = []
            self.cpu_durations = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()
            self._c0 = time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.durations.append(time.perf_counter() - self._t0)
            self.cpu_durations.append(time.process_time() - self._c0)

    return EpochTimer()


def val_tracer(keras, X_val, positive, *, verbose=True):
    """A Keras callback measuring val ROC-AUC and log-loss after each epoch.

    ``positive`` marks the positive validation images (booleans). The
    callback times its own predictions: ``callback.seconds`` is what they
    took, to subtract from the fit's time, and ``callback.trace`` lists one
    dict per epoch (``val_roc_auc``, ``val_log_loss``, ``train_seconds``
    without the tracing, ``train_loss``). ``verbose`` prints a line per epoch.
    """
    from sklearn.metrics import log_loss, roc_auc_score

    y01 = np.asarray(positive, dtype=bool)

    class ValTrace(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = 0.0
            self.trace = []

        def on_train_begin(self, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            t0 = time.perf_counter()
            p = self.model.predict(X_val, batch_size=64, verbose=0)
            score = p[:, -1] if p.shape[1] > 1 else p[:, 0]
            auc = roc_auc_score(y01, score)
            loss = log_loss(y01, np.clip(score, 1e-7, 1 - 1e-7), labels=[False, True])
            self.seconds += time.perf_counter() - t0
            elapsed = time.perf_counter() - self._start - self.seconds
            self.trace.append({"epoch": epoch + 1, "train_seconds": round(elapsed, 1),
                               "val_roc_auc": round(float(auc), 5),
                               "val_log_loss": round(float(loss), 5),
                               "train_loss": round(float((logs or {}).get("loss", np.nan)), 5)})
            if verbose:
                print(f"  epoch {epoch + 1}: val ROC-AUC {auc:.4f}, val log-loss {loss:.4f} "
                      f"after {elapsed:.0f} s of training", flush=True)

    return ValTrace()
