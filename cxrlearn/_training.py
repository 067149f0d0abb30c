"""Keras-side plumbing of :class:`cxrlearn.PneumoniaCNN`.

Everything here imports Keras (lazily, through :func:`import_keras`), so the
estimator module itself stays importable without TensorFlow. The estimator
decides *what* to train; this module knows *how* to feed Keras.
"""

import contextlib
import contextvars
import functools
import io
import json
import logging
import os
import tempfile
import zipfile

import numpy as np

from .utils import import_keras
from .utils._threads import limit_tf_threads_to_worker_share, tf_threads_cap

__all__ = [
    "balanced_order",
    "compile_like",
    "compile_model",
    "fitting_quietly",
    "inference_function",
    "is_lazy",
    "load_model_bytes",
    "logits_model",
    "make_callbacks",
    "make_training_data",
    "mix_batch",
    "mixup_draw",
    "model_to_bytes",
    "predict_logits",
    "shrunk_inputs",
    "split_shrinking_inputs",
]


#: Whether ``tf.data`` runs its autotuning model on the training pipelines.
#: Off: in TensorFlow 2.21 an iterator with the model's thread waits, when it
#: is deleted at the end of ``fit``, until that thread's next wake-up, up to
#: a minute later (it wakes 10 ms, 20 ms, 40 ms ... after the iterator starts,
#: then every 60 s): fits of the default's networks returned 28-38 s after
#: their last epoch (docs/recipe.rst, "Throughput"). Without the model, TensorFlow's
#: fixed choices for ``AUTOTUNE`` apply; the batches are the same, and
#: ``benchmarks/companion.py`` measures the speed.
_AUTOTUNE_MODEL = False


def _with_options(ds):
    """``ds`` with the options of every training pipeline.

    No autotuning model (:data:`_AUTOTUNE_MODEL`), and its ``tf.data``
    thread pool sized to the capped share, if any: ``tf.data`` runs its
    pipelines on a pool of its own, one thread per CPU, which the limits
    of TensorFlow's operation pools do not cover.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = _AUTOTUNE_MODEL
    share = tf_threads_cap()
    if share is not None:
        options.threading.private_threadpool_size = share
    return ds.with_options(options)


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


def mixup_draw(seed, draw, batch, n, alpha):
    """The mixing weights and partners of one training batch (mixup).

    Each of the ``n`` rows is mixed with the row ``partner[i]`` of the same
    batch (a random permutation) in the proportion ``lam[i] : 1 - lam[i]``,
    ``lam[i]`` drawn from ``Beta(alpha, alpha)``. The draw depends only on
    ``(seed, draw, batch)`` -- the training seed, the count of epoch orders
    drawn so far and the batch's index -- so batches decoded out of order,
    by several threads, are mixed the same way as batches gathered in
    order.

    Parameters
    ----------
    seed : int
        The training source's seed.
    draw : int
        How many epoch orders the source has drawn, this epoch's included.
    batch : int
        Index of the batch within the epoch.
    n : int
        Rows in the batch.
    alpha : float
        Parameter of the symmetric Beta distribution; small values mix
        little (most weights near 0 or 1).

    Returns
    -------
    lam : ndarray of shape (n,), float32
    partner : ndarray of shape (n,), int64

    Examples
    --------
    >>> lam, partner = mixup_draw(0, 1, 0, 4, alpha=0.2)
    >>> lam.shape, sorted(partner.tolist())
    ((4,), [0, 1, 2, 3])
    >>> bool(((lam >= 0) & (lam <= 1)).all())
    True
    """
    rng = np.random.default_rng([int(seed), int(draw), int(batch)])
    lam = rng.beta(alpha, alpha, size=n).astype(np.float32)
    return lam, rng.permutation(n)


def mix_batch(batch, lam, partner):
    """Mix every array of a ``(x, y[, sample_weight])`` batch with its partner rows.

    Every array becomes float32; targets and weights are mixed in the same
    proportions as the images (so the loss of a mixed image is the mixed
    loss). TensorFlow operations: the same code mixes streamed batches
    eagerly and in-memory ones inside the ``tf.data`` graph.

    Examples
    --------
    >>> x = np.array([[0.0], [1.0]]); y = np.array([0.0, 1.0])
    >>> mx, my = mix_batch((x, y), np.float32([0.75, 0.75]), np.array([1, 0]))
    >>> np.asarray(mx).ravel().tolist(), np.asarray(my).tolist()
    ([0.25, 0.75], [0.25, 0.75])
    """
    import tensorflow as tf

    mixed = []
    for array in batch:
        a = tf.cast(array, tf.float32)
        w = tf.reshape(lam, [-1] + [1] * (a.shape.rank - 1))
        mixed.append(w * a + (1 - w) * tf.gather(a, partner))
    return tuple(mixed)


@functools.cache
def _lazy_batches_class():
    keras = import_keras()

    class LazyBatches(keras.utils.PyDataset):
        """Batches decoded on demand from a lazy image source.

        ``workers`` threads decode the next batches while the current one
        trains (Keras prefetches ``max_queue_size`` batches). With
        ``balanced=True`` each epoch's order comes from :func:`balanced_order`;
        with ``mixup_alpha`` each batch is mixed (:func:`mix_batch`).
        """

        def __init__(self, images, y, sample_weight, batch_size, seed, shuffle, workers,
                     balanced=False, mixup_alpha=None):
            super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=4)
            self.images = images
            self.y = y
            self.sample_weight = sample_weight
            self.batch_size = batch_size
            self.shuffle = shuffle
            self.balanced = balanced
            self.mixup_alpha = mixup_alpha
            self._seed = int(seed)
            self._rng = np.random.default_rng(seed)
            self._order = np.arange(len(images))
            self._draws = 0
            self._reorder()

        def _reorder(self):
            self._draws += 1
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
            batch = (x, self.y[rows])
            if self.sample_weight is not None:
                batch += (self.sample_weight[rows],)
            if self.mixup_alpha:
                lam, partner = mixup_draw(self._seed, self._draws, index, len(rows),
                                          self.mixup_alpha)
                batch = mix_batch(batch, lam, partner)
            return batch

        def on_epoch_end(self):
            self._reorder()

    return LazyBatches


def make_training_data(X, y, sample_weight, *, batch_size, seed, shuffle=True, workers=1,
                       balanced=False, mixup_alpha=None, repeat=None):
    """Return a Keras-ready training source for in-memory or lazy images.

    In-memory arrays become a ``tf.data`` pipeline, reproducible through an
    explicit seed without touching global seeds: shuffled by ``tf.data``, or,
    with ``balanced=True``, gathered batch by batch in a new
    :func:`balanced_order` every epoch. Lazy image sources become a
    prefetching :class:`keras.utils.PyDataset` (``workers`` decoding
    threads). For the same ``seed``, both kinds of source train on the same
    sequence of epoch orders.

    With ``repeat=N`` a ``tf.data`` pipeline runs its ``N`` epochs one after
    the other -- the same epochs, each with its own order and its last,
    shorter batch -- and ``fit`` must be given ``steps_per_epoch``.
    One iterator then serves the whole fit: Keras makes a new iterator for
    every epoch of a finite dataset, and on the 2-vCPU AVX512-BF16 machine a
    fresh iterator left a third of the epochs of the study's network
    running on 1.4 cores instead of 1.9 (docs/recipe.rst, "Throughput").
    Lazy sources ignore it.
    """
    if is_lazy(X):
        return _lazy_batches_class()(
            X, y, sample_weight, batch_size, seed, shuffle, workers, balanced=balanced,
            mixup_alpha=mixup_alpha,
        )
    import tensorflow as tf

    tensors = (X, y) if sample_weight is None else (X, y, sample_weight)
    if balanced or (mixup_alpha and shuffle):
        return _with_options(_ordered_tf_data(
            tensors, y, batch_size=batch_size, seed=seed, balanced=balanced,
            mixup_alpha=mixup_alpha, repeat=repeat,
        ))
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        ds = ds.shuffle(len(X), seed=int(seed), reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if repeat:
        ds = ds.repeat(repeat)
    return _with_options(ds.prefetch(tf.data.AUTOTUNE))


def _ordered_tf_data(tensors, y, *, batch_size, seed, balanced, mixup_alpha, repeat=None):
    """``tf.data`` batches of in-memory ``tensors`` in epoch orders drawn here.

    A Python generator draws each epoch's order -- :func:`balanced_order`,
    or a plain permutation -- and yields one small index array per batch
    (with its :func:`mixup_draw` when ``mixup_alpha`` is set); the images
    are gathered, and mixed, inside the ``tf.data`` graph and prefetched,
    so training does not wait on Python. With ``repeat=N``, ``N`` epochs
    follow one another, the generator called again for each, and nothing
    is prefetched past the last (an endless repeat went on gathering the
    next epoch's batches after training, beside whatever ran next).
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    n_batches = -(-len(y) // batch_size)

    def draw_order():
        return balanced_order(y, rng) if balanced else rng.permutation(len(y))

    # Draw the order LazyBatches draws when it is made (Keras only peeks at
    # its first batches and has it re-ordered before epoch 1), so that arrays
    # and streamed images see the same orders (and mixtures) for the same seed.
    draw_order()
    draws = 1

    def batch_rows():
        nonlocal draws
        order = draw_order()  # a new order each time an epoch starts
        draws += 1
        for index, start in enumerate(range(0, len(order), batch_size)):
            rows = order[start : start + batch_size]
            if not mixup_alpha:
                yield rows
                continue
            lam, partner = mixup_draw(seed, draws, index, len(rows), mixup_alpha)
            yield rows, lam, partner

    data = tuple(tf.convert_to_tensor(t) for t in tensors)
    index_spec = tf.TensorSpec(shape=(None,), dtype=tf.int64)
    if mixup_alpha:
        signature = (index_spec, tf.TensorSpec(shape=(None,), dtype=tf.float32), index_spec)
    else:
        signature = index_spec
    rows = tf.data.Dataset.from_generator(batch_rows, output_signature=signature).apply(
        tf.data.experimental.assert_cardinality(n_batches)
    )
    if repeat:
        rows = rows.repeat(repeat)

    def gather(r):
        return tuple(tf.gather(t, r) for t in data)

    def gather_mixed(r, lam, partner):
        return mix_batch(gather(r), lam, partner)

    ds = rows.map(
        gather_mixed if mixup_alpha else gather,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


class _Inference:
    """The inference pass of one network, as a callable for ``tf.function``.

    A callable object rather than a closure: TensorFlow counts the traces
    of a ``tf.function`` per Python function (per code object for
    functions), so the traces of the networks of a grid search would add up
    to its "triggered tf.function retracing" warning; an object is counted
    on its own.
    """

    def __init__(self, model):
        self.model = model

    def __call__(self, images):
        return self.model(images, training=False)


def inference_function(model):
    """A graph function of ``model``'s inference pass, traced once.

    Its input signature leaves the batch dimension open, so every batch
    size -- a prediction of any length, its short last batch -- runs the
    same trace. ``keras.Model.predict`` traces its function again for each
    new network and for a new last-batch shape, which in a grid search
    cost a trace per fold and logged TensorFlow's retracing warning.
    Returns None when Keras does not run on TensorFlow (``model.predict``
    is used then).
    """
    keras = import_keras()
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    (spec,) = model.inputs
    signature = tf.TensorSpec((None, *spec.shape[1:]), dtype=spec.dtype)
    return tf.function(_Inference(model), input_signature=[signature])


def logits_model(model):
    """A view of ``model`` that outputs its ``"logits"`` layer (shared weights)."""
    keras = import_keras()
    return keras.Model(model.inputs[0], model.get_layer("logits").output)


def _batches(X, batch_size):
    """Batches of ``X`` as arrays; a lazy source decodes the next one meanwhile."""
    n = len(X)
    starts = range(0, n, batch_size)
    if not is_lazy(X):
        for start in starts:
            yield X[start : start + batch_size]
        return
    from concurrent.futures import ThreadPoolExecutor

    def load(start):
        return X.load(np.arange(start, min(start + batch_size, n)))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cxrlearn-decode") as pool:
        pending = pool.submit(load, 0)
        for start in starts:
            batch = pending.result()
            if start + batch_size < n:
                pending = pool.submit(load, start + batch_size)
            yield batch


def predict_logits(logits_model, X, *, batch_size, inference=None):
    """Pre-activation outputs of a :func:`logits_model` view, as float64.

    Parameters
    ----------
    logits_model : keras.Model
        The network's logits view.
    X : ndarray or lazy image source
        Images; a lazy source is decoded batch by batch, the next batch
        while the network runs on the current one.
    batch_size : int
        Images per forward pass.
    inference : callable or None, default=None
        :func:`inference_function` of ``logits_model`` (build it once and
        keep it: that is what avoids retracing); built here when None.

    Returns
    -------
    logits : ndarray of shape (n_samples, n_outputs)
    """
    if inference is None:
        inference = inference_function(logits_model)
    n_out = int(logits_model.outputs[0].shape[-1])
    return _outputs(logits_model, X, batch_size=batch_size, inference=inference,
                    dtype=np.float64).reshape(-1, n_out)


def _outputs(model, X, *, batch_size, inference, dtype=None):
    """``model``'s outputs for the images ``X``, batch by batch, as one array.

    ``inference`` is :func:`inference_function` of ``model`` (None on another
    Keras backend: ``model.predict``); ``dtype`` converts each batch's
    outputs (None keeps the model's).
    """
    if inference is None:  # another Keras backend
        data = X.load() if is_lazy(X) else X
        return np.asarray(model.predict(data, batch_size=batch_size, verbose=0), dtype=dtype)
    in_dtype = np.dtype(model.inputs[0].dtype)
    parts = [np.asarray(inference(np.asarray(batch, dtype=in_dtype)), dtype=dtype)
             for batch in _batches(X, batch_size)]
    if not parts:
        output = model.outputs[0]
        return np.empty((0, *output.shape[1:]), dtype=dtype or np.dtype(output.dtype))
    return np.concatenate(parts)


def compile_model(model, *, n_classes, optimizer, learning_rate, lr_schedule="constant",
                  decay_steps=None, label_smoothing=0.0, ema_momentum=None,
                  weight_decay=None):
    """Compile ``model`` with the loss that matches its output layer.

    ``lr_schedule="cosine"`` decays the rate to 1% over ``decay_steps``;
    ``label_smoothing`` (two classes only) is Keras's binary cross-entropy
    option of that name; ``ema_momentum`` turns on the named optimizer's
    moving average of the weights, which ``Model.fit`` copies into the
    network when it ends; ``weight_decay`` (not None) sets the named
    optimizer's decoupled weight decay.
    """
    keras = import_keras()
    if lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(int(decay_steps), 1), alpha=0.01
        )
    if isinstance(optimizer, str):
        config = {"learning_rate": learning_rate}
        if ema_momentum is not None:
            config.update(use_ema=True, ema_momentum=float(ema_momentum))
        if weight_decay is not None:
            config["weight_decay"] = float(weight_decay)
        opt = keras.optimizers.get({"class_name": optimizer, "config": config})
    else:  # a Keras optimizer instance: use a fresh copy of its configuration
        opt = optimizer.__class__.from_config(optimizer.get_config())
    if n_classes == 2:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
    elif label_smoothing:
        raise ValueError("label smoothing needs two classes")
    else:
        loss = "sparse_categorical_crossentropy"
    model.compile(optimizer=opt, loss=loss, weighted_metrics=[])
    # The optimizer's state (Adam's two moments per weight) is made here, eagerly.
    # Made lazily inside the first traced training step instead, each slot's
    # initialisation becomes a tf.cond whose two branch functions TensorFlow keeps
    # in the process's function library for good: 56 functions per fit of the
    # study's network, never freed in a worker that runs fit after fit.
    opt.build(model.trainable_variables)
    return model


def compile_like(model, network):
    """Compile ``model`` with ``network``'s loss and its optimizer instance.

    For a part of ``network`` (:func:`split_shrinking_inputs`): sharing the
    optimizer shares its state too -- Adam's moments of the shared weights
    and the step count that drives the learning-rate schedule -- so
    training the part is training the network.
    """
    model.compile(optimizer=network.optimizer, loss=network.loss, weighted_metrics=[])
    return model


#: The layers that may open a network built by
#: :func:`cxrlearn.networks.build_pneumonia_cnn` with no weights and the same
#: output at every step (its ``equalize`` and ``resize``; augmentation,
#: random at every step, comes after them).
_FIXED_INPUT_LAYERS = ("equalize", "resize")


def split_shrinking_inputs(network):
    """Split ``network`` after the weightless layers that shrink its images.

    A network with ``resize`` (e.g. the 28 px companion that takes 176 px
    films) shrinks every training image again at every step of every epoch,
    though its opening layers -- the shrink, and an equalisation before it
    -- have no weights and give the same values every time. Trained from
    their outputs, computed once (:func:`shrunk_inputs`), the rest of the
    network sees the same inputs and takes the same steps for less work.

    Parameters
    ----------
    network : keras.Model
        A network of :func:`cxrlearn.networks.build_pneumonia_cnn`.

    Returns
    -------
    None or (opening, rest) : tuple of keras.Model
        ``opening`` maps the network's images to the output of its last
        fixed opening layer; ``rest`` maps that to the network's output,
        with the network's own layers (its weights are the network's).
        None when the network does not open with layers that shrink its
        images (nothing to gain: an equalisation alone would only copy
        the images).

    Examples
    --------
    >>> from cxrlearn._training import split_shrinking_inputs
    >>> from cxrlearn.networks import build_pneumonia_cnn
    >>> network = build_pneumonia_cnn((176, 176, 1), conv_filters=(32, 64, 128),
    ...                               resize=28, equalize=True)
    >>> opening, rest = split_shrinking_inputs(network)
    >>> [layer.name for layer in opening.layers[1:]], rest.input_shape
    (['equalize', 'resize'], (None, 28, 28, 1))
    >>> split_shrinking_inputs(build_pneumonia_cnn((176, 176, 1), equalize=True)) is None
    True
    """
    keras = import_keras()
    fixed = []
    for layer in network.layers[1:]:
        if layer.name not in _FIXED_INPUT_LAYERS:
            break
        fixed.append(layer)
    if not fixed:
        return None
    (image,) = network.inputs
    opened = fixed[-1].output
    if np.prod(opened.shape[1:]) >= np.prod(image.shape[1:]):
        return None
    opening = keras.Model(image, opened, name=f"{network.name}_opening")
    rest = keras.Model(opened, network.output, name=network.name)
    return opening, rest


def shrunk_inputs(opening, X, *, batch_size=256):
    """``opening``'s outputs for the images ``X`` (an array), as one array.

    The same graph computation as inside the network, batch by batch
    (:func:`inference_function`; the layers compute image by image, so the
    batching changes no value).
    """
    return _outputs(opening, X, batch_size=batch_size, inference=inference_function(opening))


class _NewNetworkTraces(logging.Filter):
    """Drop TensorFlow's retracing warning about Keras's own step functions.

    Keras makes a new ``tf.function`` for the training step of every new
    network, and TensorFlow counts the traces of all of them together (per
    code object), so the folds of a grid search on a small data set -- a new
    network each, a few steps each -- read to it as one function retraced
    over and over. Each network is traced once; nothing is retraced.
    """

    def filter(self, record):
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message
                    and "TensorFlowTrainer" in message)


@contextlib.contextmanager
def fitting_quietly():
    """While a network trains, hold back :class:`_NewNetworkTraces` warnings.

    The filter sits on the ``tensorflow`` logger only for the duration of
    the block; every other record passes.
    """
    logger = logging.getLogger("tensorflow")
    quiet = _NewNetworkTraces()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


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


#: Whether :func:`model_to_bytes` keeps the optimizer's state; set by
#: ``cxrlearn.io.save_model(..., include_optimizer=False)`` for the duration
#: of one save (a context variable: other threads' saves are not affected).
INCLUDE_OPTIMIZER = contextvars.ContextVar("cxrlearn_include_optimizer", default=True)


def model_to_bytes(model):
    """Serialise ``model`` to the bytes of a native ``.keras`` file.

    Without the optimizer (see :data:`INCLUDE_OPTIMIZER`) an uncompiled copy
    with the same weights is saved: the network alone, a third of the size.
    """
    if not INCLUDE_OPTIMIZER.get() and getattr(model, "optimizer", None) is not None:
        keras = import_keras()
        bare = keras.Model.from_config(model.get_config())  # uncompiled
        bare.set_weights(model.get_weights())
        model = bare
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as fh:
            return fh.read()


def _check_keras_modules(data):
    """Refuse a ``.keras`` archive whose config names a module outside Keras.

    Keras rebuilds each object of ``config.json`` from the module it names;
    cxrlearn's networks use Keras's own, and cxrlearn's layers of
    :data:`cxrlearn._layers.LAYER_CLASSES` by module and class name, so
    anything else (a custom layer from a crafted file) is refused before
    Keras imports it. ``safe_mode=True`` separately refuses Lambda-layer
    bytecode.
    """
    from ._layers import LAYER_CLASSES

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        config = json.loads(archive.read("config.json"))
    stack, foreign = [config], set()
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            module = item.get("module")
            if (isinstance(module, str) and module != "keras" and not module.startswith("keras.")
                    and (module, item.get("class_name")) not in LAYER_CLASSES):
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
    Keras's ``safe_mode=True``; cxrlearn's own layers come from cxrlearn's
    code (their module is imported here, which registers them with Keras).
    """
    limit_tf_threads_to_worker_share()  # e.g. a fitted pipeline unpickled in a fresh worker
    keras = import_keras()
    _check_keras_modules(data)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as fh:
            fh.write(data)
        return keras.saving.load_model(path, safe_mode=True)
