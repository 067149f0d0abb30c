"""Timing helpers shared by the benchmark scripts (run from this folder)."""

import time


def epoch_timer(keras):
    """A Keras callback recording the wall-clock seconds of each epoch.

    After a fit, ``callback.durations`` lists one duration per epoch; the
    first includes graph tracing, so throughput is measured on the others.
    """

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.durations = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.durations.append(time.perf_counter() - self._t0)

    return EpochTimer()
