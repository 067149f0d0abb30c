"""Keras-side plumbing of :class:`cxrlearn.PneumoniaCNN`.

Everything here imports Keras (lazily, through :func:`import_keras`), so the
estimator module itself stays importable without TensorFlow. The estimator
decides *what* to train; this module knows *how* to feed Keras.
"""

import functools
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from .utils import import_keras

__all__ = [
    "balanced_order",
    "compile_model",
    "is_lazy",
    "load_model_bytes",
    "logits_model",
    "make_callbacks",
    "make_prediction_data",
    "make_training_data",
    "model_to_bytes",
    "predict_logits",
]


def is_lazy(X):
    """Whether ``X`` is a lazy image source (``cxrlearn.LazyImages`` or alike).

    Duck-typed so that this module need not import the loader: anything
    with ``load`` and ``paths`` is decoded batch by batch.
    """
    return hasattr(X, "load") and hasattr(X, "paths")


def balanced_order(y, rng):
    """One epoch's order of training rows in which the classes alternate.

    Each class fills ``ceil(n / n_classes)`` slots, taken from fresh random
    permutations of its rows, one after the other: a majority class is
    subsampled (a different subset each epoch), a minority class repeated as
    evenly as possible. The slots are interleaved class by class and the
    order is cut to ``n = len(y)`` rows, so any run of consecutive rows --
    in particular every batch -- holds each class equally often, up to one
    row, and an epoch keeps its usual number of steps.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class of each row.
    rng : numpy.random.Generator
        Source of the permutations.

    Returns
    -------
    order : ndarray of shape (n_samples,)
        Row indices.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0] * 9 + [1])
    >>> order = balanced_order(y, np.random.default_rng(0))
    >>> y[order].tolist()
    [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    """
    y = np.asarray(y)
    classes = np.unique(y)
    n = len(y)
    per_class = -(-n // len(classes))
    slots = []
    for c in classes:
        rows = np.flatnonzero(y == c)
        passes = -(-per_class // len(rows))
        slots.append(np.concatenate([rng.permutation(rows) for _ in range(passes)])[:per_class])
    return np.stack(slots, axis=1).ravel()[:n]


@functools.cache
def _lazy_batches_class():
    keras = import_keras()

    class LazyBatches(keras.utils.PyDataset):
        """Batches decoded on demand from a lazy image source.

        ``workers`` threads decode the next batches while the current one
        trains (Keras prefetches ``max_queue_size`` batches). With
        ``balanced=True`` each epoch's order comes from :func:`balanced_order`.
        """

        def __init__(self, images, y, sample_weight, batch_size, seed, shuffle, workers,
                     balanced=False):
            super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=4)
            self.images = images
            self.y = y
            self.sample_weight = sample_weight
            self.batch_size = batch_size
            self.shuffle = shuffle
            self.balanced = balanced
            self._rng = np.random.default_rng(seed)
            self._order = np.arange(len(images))
            self._reorder()

        def _reorder(self):
            if self.balanced:
                self._order = balanced_order(self.y, self._rng)
            elif self.shuffle:
                self._order = self._rng.permutation(len(self.images))

        def __len__(self):
            return -(-len(self.images) // self.batch_size)

        def __getitem__(self, index):
            rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
            x = self.images.load(rows)
            if self.y is None:
                return (x,)
            if self.sample_weight is None:
                return x, self.y[rows]
            return x, self.y[rows], self.sample_weight[rows]

        def on_epoch_end(self):
            self._reorder()

    return LazyBatches


def make_training_data(X, y, sample_weight, *, batch_size, seed, shuffle=True, workers=1,
                       balanced=False):
    """Return a Keras-ready training source for in-memory or lazy images.

    In-memory arrays become a ``tf.data`` pipeline, reproducible through an
    explicit seed without touching global seeds: shuffled by ``tf.data``, or,
    with ``balanced=True``, gathered batch by batch in a new
    :func:`balanced_order` every epoch. Lazy image sources become a
    prefetching :class:`keras.utils.PyDataset` (``workers`` decoding
    threads). For the same ``seed``, both kinds of source train on the same
    sequence of epoch orders.
    """
    if is_lazy(X):
        return _lazy_batches_class()(
            X, y, sample_weight, batch_size, seed, shuffle, workers, balanced=balanced
        )
    import tensorflow as tf

    tensors = (X, y) if sample_weight is None else (X, y, sample_weight)
    if balanced:
        return _balanced_tf_data(tensors, y, batch_size=batch_size, seed=seed)
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        ds = ds.shuffle(len(X), seed=int(seed), reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _balanced_tf_data(tensors, y, *, batch_size, seed):
    """``tf.data`` batches of in-memory ``tensors`` in balanced epoch orders.

    A Python generator draws each epoch's :func:`balanced_order` (one small
    index array per batch); the images are gathered inside the ``tf.data``
    graph and prefetched, so training does not wait on Python.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    n_batches = -(-len(y) // batch_size)

    # Draw the order LazyBatches draws when it is made (Keras only peeks at
    # its first batches and has it re-ordered before epoch 1), so that arrays
    # and streamed images see the same orders for the same seed.
    balanced_order(y, rng)

    def batch_rows():
        order = balanced_order(y, rng)  # a new order each time an epoch starts
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]

    data = tuple(tf.convert_to_tensor(t) for t in tensors)
    rows = tf.data.Dataset.from_generator(
        batch_rows, output_signature=tf.TensorSpec(shape=(None,), dtype=tf.int64)
    ).apply(tf.data.experimental.assert_cardinality(n_batches))
    ds = rows.map(
        lambda r: tuple(tf.gather(t, r) for t in data),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def make_prediction_data(X, *, batch_size, workers=1):
    """Return what ``model.predict`` consumes for ``X`` (array or lazy)."""
    if is_lazy(X):
        return _lazy_batches_class()(X, None, None, batch_size, 0, False, workers)
    return X


def logits_model(model):
    """A view of ``model`` that outputs its ``"logits"`` layer (shared weights)."""
    keras = import_keras()
    return keras.Model(model.inputs, model.get_layer("logits").output)


def predict_logits(logits_model, X, *, batch_size, workers=1):
    """Pre-activation outputs of a :func:`logits_model` view, as float64."""
    data = make_prediction_data(X, batch_size=batch_size, workers=workers)
    if is_lazy(X):
        out = logits_model.predict(data, verbose=0)
    else:
        out = logits_model.predict(data, batch_size=batch_size, verbose=0)
    return np.asarray(out, dtype=np.float64)


def compile_model(model, *, n_classes, optimizer, learning_rate, lr_schedule="constant",
                  decay_steps=None):
    """Compile ``model`` with the loss that matches its output layer.

    ``lr_schedule="cosine"`` decays the rate to 1% over ``decay_steps``.
    """
    keras = import_keras()
    if lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(int(decay_steps), 1), alpha=0.01
        )
    if isinstance(optimizer, str):
        opt = keras.optimizers.get(
            {"class_name": optimizer, "config": {"learning_rate": learning_rate}}
        )
    else:  # a Keras optimizer instance: use a fresh copy of its configuration
        opt = optimizer.__class__.from_config(optimizer.get_config())
    loss = "binary_crossentropy" if n_classes == 2 else "sparse_categorical_crossentropy"
    model.compile(optimizer=opt, loss=loss, weighted_metrics=[])
    return model


def make_callbacks(
    user_callbacks, *, monitor, early_stopping, reduce_lr_on_plateau, checkpoint_dir
):
    """Assemble the Keras callbacks of one fit."""
    keras = import_keras()
    callbacks = list(user_callbacks or [])
    if early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=int(early_stopping), restore_best_weights=True
            )
        )
    if reduce_lr_on_plateau:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, patience=int(reduce_lr_on_plateau), factor=0.3, min_lr=1e-6
            )
        )
    if checkpoint_dir is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(os.fspath(checkpoint_dir)))
    return callbacks


def model_to_bytes(model):
    """Serialise ``model`` to the bytes of a native ``.keras`` file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as fh:
            return fh.read()


def _check_keras_modules(data):
    """Refuse a ``.keras`` archive whose config names a non-Keras module.

    Keras rebuilds each object of ``config.json`` from the module it names;
    cxrlearn's networks only ever use Keras's own, so anything else (a
    custom layer from a crafted file) is refused before Keras imports it.
    ``safe_mode=True`` separately refuses Lambda-layer bytecode.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        config = json.loads(archive.read("config.json"))
    stack, foreign = [config], set()
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            module = item.get("module")
            if isinstance(module, str) and module != "keras" and not module.startswith("keras."):
                foreign.add(f"{module}.{item.get('class_name')}")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    if foreign:
        raise ValueError(
            f"the Keras network names modules outside Keras: {sorted(foreign)}; "
            "cxrlearn refuses to import them"
        )


def load_model_bytes(data):
    """Inverse of :func:`model_to_bytes`, loading no code from the bytes.

    The network is checked by :func:`_check_keras_modules` and loaded with
    Keras's ``safe_mode=True``.
    """
    keras = import_keras()
    _check_keras_modules(data)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as fh:
            fh.write(data)
        return keras.saving.load_model(path, safe_mode=True)
