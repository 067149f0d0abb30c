"""Keras network builders, independent of the scikit-learn estimator.

The functions here return plain, uncompiled :class:`keras.Model` objects made
of built-in Keras layers -- and, with ``equalize=True`` only, cxrlearn's
per-image histogram equalisation layer, which Keras has no equivalent of --
so a model saved in the native ``.keras`` format loads anywhere Keras and
cxrlearn are installed, without code from the file. They are used by
:class:`cxrlearn.PneumoniaCNN` and work as the ``model=`` of a scikeras
``KerasClassifier``.
"""

import numbers

from .utils import import_keras

__all__ = [
    "AUGMENTATION_PRESETS",
    "HistogramEqualization",
    "add_companion",
    "average_networks",
    "build_pneumonia_cnn",
    "companion_network",
    "default_conv_strides",
    "member_networks",
    "minimum_input_size",
    "resolve_precision",
]

#: Precisions a network can be trained in (see :func:`resolve_precision`).
PRECISIONS = ("float32", "bfloat16", "auto")

#: The Keras dtype policy of each resolved precision.
DTYPE_POLICIES = {"float32": None, "bfloat16": "mixed_bfloat16"}

#: Named augmentation recipes. Factors follow the Keras preprocessing layers:
#: ``rotation`` is a fraction of a full turn, ``zoom``/``translation`` are
#: fractions of the image size, ``contrast``/``brightness`` are factors.
#: Horizontal flips are off: chest anatomy is not left-right symmetric.
AUGMENTATION_PRESETS = {
    "light": {
        "rotation": 0.02,
        "zoom": 0.05,
        "translation": 0.03,
        "contrast": 0.1,
        "brightness": 0.05,
        "horizontal_flip": False,
    },
    "standard": {
        "rotation": 0.04,
        "zoom": 0.1,
        "translation": 0.06,
        "contrast": 0.2,
        "brightness": 0.1,
        "horizontal_flip": False,
    },
}

_AUGMENTATION_KEYS = frozenset(AUGMENTATION_PRESETS["standard"])


def __getattr__(name):
    # HistogramEqualization subclasses a Keras layer: imported (with Keras) on first use
    if name == "HistogramEqualization":
        from ._layers import HistogramEqualization

        return HistogramEqualization
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_conv_strides(n_blocks):
    """Return the study's convolution strides for ``n_blocks`` blocks.

    The first two blocks convolve with stride 1, every later block with
    stride 2 (the study's five blocks: ``(1, 1, 2, 2, 2)``).

    Parameters
    ----------
    n_blocks : int
        Number of convolution blocks.

    Returns
    -------
    strides : tuple of int
        One stride per block.

    Examples
    --------
    >>> from cxrlearn.networks import default_conv_strides
    >>> default_conv_strides(5)
    (1, 1, 2, 2, 2)
    """
    return tuple(1 if i < 2 else 2 for i in range(n_blocks))


def _block_output(size, stride):
    # "same" convolution with ``stride`` then a 2x2 "valid" max-pooling.
    size = -(-size // stride)
    return size // 2


def minimum_input_size(conv_filters=(32, 64, 64, 128, 128), conv_strides=None):
    """Smallest image side that the convolution stack accepts.

    Each block is a ``"same"`` convolution with its stride followed by a 2x2
    max-pooling, so every block divides the side by 2 (stride 1) or 4
    (stride 2).

    Parameters
    ----------
    conv_filters : tuple of int, default=(32, 64, 64, 128, 128)
        Filters of each convolution block.
    conv_strides : tuple of int or None, default=None
        Stride of each block; ``None`` uses :func:`default_conv_strides`.

    Returns
    -------
    size : int
        The minimum height and width, in pixels.

    Examples
    --------
    >>> from cxrlearn.networks import minimum_input_size
    >>> minimum_input_size()
    172
    >>> minimum_input_size((8, 16))
    4
    """
    strides = _check_strides(conv_filters, conv_strides)
    size = 1
    while True:
        out = size
        for stride in strides:
            out = _block_output(out, stride)
        if out >= 1:
            return size
        size += 1


def _check_resize(resize, input_shape):
    """``resize`` as ``(height, width)``, or None; only for images."""
    if resize is None:
        return None
    if isinstance(resize, numbers.Integral):
        resize = (resize, resize)
    resize = tuple(resize)
    if len(resize) != 2 or not all(isinstance(s, numbers.Integral) and s >= 1 for s in resize):
        raise ValueError(f"resize must be a positive int or (height, width), got {resize!r}.")
    if len(input_shape) != 3:
        raise ValueError(f"resize needs image inputs (height, width, channels), got "
                         f"input_shape={input_shape}.")
    return tuple(int(s) for s in resize)


def _check_strides(conv_filters, conv_strides):
    if conv_strides is None:
        return default_conv_strides(len(conv_filters))
    conv_strides = tuple(conv_strides)
    if len(conv_strides) != len(conv_filters):
        raise ValueError(
            f"conv_strides has {len(conv_strides)} entries but conv_filters has "
            f"{len(conv_filters)}; give one stride per convolution block."
        )
    return conv_strides


def _resolve_augmentation(augmentation):
    if augmentation is None:
        return None
    if isinstance(augmentation, str):
        if augmentation not in AUGMENTATION_PRESETS:
            raise ValueError(
                f"Unknown augmentation preset {augmentation!r}; use one of "
                f"{sorted(AUGMENTATION_PRESETS)}, a dict, or None."
            )
        return dict(AUGMENTATION_PRESETS[augmentation])
    if isinstance(augmentation, dict):
        unknown = set(augmentation) - _AUGMENTATION_KEYS
        if unknown:
            raise ValueError(
                f"Unknown augmentation keys {sorted(unknown)}; allowed keys are "
                f"{sorted(_AUGMENTATION_KEYS)}."
            )
        for key, value in augmentation.items():
            if key == "horizontal_flip":
                continue
            if not isinstance(value, numbers.Real) or not 0 <= value < 1:
                raise ValueError(
                    f"augmentation[{key!r}] must be a number in [0, 1), got {value!r}."
                )
        return {"horizontal_flip": False, **augmentation}
    raise TypeError(
        f"augmentation must be None, a preset name or a dict, got {augmentation!r}."
    )


def _cpu_flags():
    """The CPU feature flags the Linux kernel reports (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def _gpu_bfloat16():
    """None without a visible GPU, else whether every GPU computes bfloat16."""
    import_keras()  # TensorFlow's start-up through cxrlearn's (quiet, pooled allocator)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    for gpu in gpus:
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if not capability or tuple(capability) < (8, 0):
            return False
    return True


def resolve_precision(precision="auto"):
    """The precision a network will compute in: ``"float32"`` or ``"bfloat16"``.

    ``"bfloat16"`` trains in mixed precision: variables, the loss and the
    output layer stay float32, convolutions and dense layers compute in
    bfloat16 (Keras's ``"mixed_bfloat16"`` policy). Where the hardware
    computes bfloat16 natively this is faster; elsewhere it is emulated and
    slower. ``"auto"`` picks ``"bfloat16"`` only where it is native: on a
    GPU of compute capability 8.0 or more (all visible GPUs), or, without a
    GPU, on a CPU whose flags list ``avx512_bf16`` or ``amx_bf16`` (Linux);
    ``"float32"`` everywhere else.

    Parameters
    ----------
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        The requested precision.

    Returns
    -------
    precision : {"float32", "bfloat16"}
        The precision to use on this machine.

    Examples
    --------
    >>> from cxrlearn.networks import resolve_precision
    >>> resolve_precision("float32")
    'float32'
    >>> resolve_precision("auto") in ("float32", "bfloat16")
    True
    >>> resolve_precision("float16")
    Traceback (most recent call last):
    ...
    ValueError: precision must be one of ('float32', 'bfloat16', 'auto'), got 'float16'.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision != "auto":
        return precision
    gpu = _gpu_bfloat16()
    if gpu is not None:
        return "bfloat16" if gpu else "float32"
    native = {"avx512_bf16", "amx_bf16"} & _cpu_flags()
    return "bfloat16" if native else "float32"


def _augmentation_layers(keras, augmentation, seed):
    layers = keras.layers
    out = []
    if augmentation.get("horizontal_flip"):
        out.append(layers.RandomFlip("horizontal", seed=seed))
    if augmentation.get("rotation"):
        out.append(
            layers.RandomRotation(augmentation["rotation"], fill_mode="constant", seed=seed + 1)
        )
    if augmentation.get("zoom"):
        z = augmentation["zoom"]
        out.append(layers.RandomZoom((-z, z), fill_mode="constant", seed=seed + 2))
    if augmentation.get("translation"):
        t = augmentation["translation"]
        out.append(layers.RandomTranslation(t, t, fill_mode="constant", seed=seed + 3))
    if augmentation.get("contrast"):
        out.append(
            layers.RandomContrast(augmentation["contrast"], value_range=(0, 1), seed=seed + 4)
        )
    if augmentation.get("brightness"):
        out.append(
            layers.RandomBrightness(augmentation["brightness"], value_range=(0, 1), seed=seed + 5)
        )
    return out


def build_pneumonia_cnn(
    input_shape=(300, 300, 3),
    n_classes=2,
    *,
    conv_filters=(32, 64, 64, 128, 128),
    conv_strides=None,
    kernel_size=3,
    dense_units=(256,),
    dropout=0.5,
    activation="relu",
    batch_norm=False,
    augmentation=None,
    center_inputs=True,
    resize=None,
    equalize=False,
    dtype=None,
    seed=None,
):
    """Build the study's pneumonia CNN as an uncompiled Keras model.

    Architecture: an optional per-image histogram equalisation
    (``equalize``), an optional antialiased shrink of the images (``resize``),
    optional augmentation layers (active only in training), a
    rescaling of the [0, 1] inputs to [-1, 1],
    then one block per entry of ``conv_filters`` -- a ``"same"`` convolution
    (stride 1 for the first two blocks, 2 afterwards) with ``activation``,
    optional batch normalisation and a 2x2 max-pooling -- then ``Flatten``
    and, for each entry of ``dense_units``, a dense layer followed by
    dropout. The head is a linear layer named ``"logits"`` followed by a
    sigmoid (two classes, one unit) or softmax (three or more classes)
    layer named ``"probabilities"``.

    With the defaults and a 300x300x3 input this is the study's final
    network with one hidden dense layer: 311,041 parameters, the study's
    "about 311k". The study describes a second dense layer with its own
    dropout; no second hidden layer fits its parameter count (256 + 8 units
    give 312,849), and on Kermany-224 the one-layer head reached a higher
    val ROC-AUC with every one of 8 seeds, so it is the default;
    ``dense_units=(256, 8)`` builds the two-layer head.

    Parameters
    ----------
    input_shape : tuple of int, default=(300, 300, 3)
        ``(height, width, channels)`` of one image, or ``(n_features,)`` for
        flat inputs (then ``conv_filters`` must be empty).
    n_classes : int, default=2
        Number of classes; 2 gives a single sigmoid unit.
    conv_filters : tuple of int, default=(32, 64, 64, 128, 128)
        Filters of each convolution block; ``()`` gives a pure dense network.
    conv_strides : tuple of int or None, default=None
        Stride of each block; ``None`` uses the study's
        :func:`default_conv_strides`.
    kernel_size : int, default=3
        Convolution kernel side.
    dense_units : tuple of int, default=(256,)
        Units of each hidden dense layer, each followed by dropout.
    dropout : float, default=0.5
        Dropout rate after each hidden dense layer; 0 disables dropout.
    activation : str, default="relu"
        Any Keras activation name, e.g. ``"relu"`` or ``"swish"``.
    batch_norm : bool, default=False
        Add batch normalisation after each convolution.
    augmentation : None, str or dict, default=None
        ``None`` for none, a key of :data:`AUGMENTATION_PRESETS`, or a dict
        with any of the keys ``rotation``, ``zoom``, ``translation``,
        ``contrast``, ``brightness`` and ``horizontal_flip``.
    center_inputs : bool, default=True
        Map inputs from [0, 1] to [-1, 1] with a ``Rescaling`` layer (no
        parameters). On Kermany-224 this took the validation ROC-AUC after
        three epochs on 800 images from 0.917 to 0.981; ``False`` feeds the
        inputs unchanged, as the study did.
    resize : int, tuple of (int, int) or None, default=None
        ``(height, width)`` (or one side for both) to which the network
        resizes its input images first, with an antialiased bilinear
        :class:`keras.layers.Resizing` layer (no parameters): the network
        then sees, and its convolution blocks are sized for, the smaller
        images, while it takes the pipeline's images as they are. This is
        how a 28 px network joins 176 px ones in one model
        (:class:`cxrlearn.PneumoniaCNN` ``companion``). ``None`` keeps the
        input size.
    equalize : bool, default=False
        Equalise each image's histogram first, inside the network (a
        ``HistogramEqualization`` layer named ``"equalize"``: exactly what
        ``ImageLoader(intensity="equalize")`` computes, on the network's
        input). This is how one model holds a network that sees equalised
        films beside a companion that sees the films' own grey levels.
    seed : int or None, default=None
        Seed for weight initialisation, dropout and augmentation; an int
        makes the network reproducible.
    dtype : None or str, default=None
        Keras dtype policy of the convolution and hidden dense layers, e.g.
        ``"mixed_bfloat16"``: variables stay float32, the layers compute in
        bfloat16 (see :func:`resolve_precision`). Augmentation, the
        ``"logits"`` layer and the output layer always compute in float32,
        so probabilities keep full precision. ``None`` uses Keras's global
        policy (float32 unless changed).

    Returns
    -------
    model : keras.Model
        The uncompiled network.

    Raises
    ------
    ValueError
        If the image is smaller than :func:`minimum_input_size`, or a
        parameter is out of range.

    Examples
    --------
    >>> from cxrlearn.networks import build_pneumonia_cnn
    >>> model = build_pneumonia_cnn((300, 300, 3), seed=0)
    >>> model.count_params()
    311041
    >>> build_pneumonia_cnn((300, 300, 3), dense_units=(256, 8)).count_params()
    312849
    >>> model.output_shape
    (None, 1)
    >>> build_pneumonia_cnn((64, 64, 1))
    Traceback (most recent call last):
    ...
    ValueError: Input images of 64x64 pixels are too small for 5 convolution blocks ...

    A 28 px network that takes 176 px images:

    >>> small = build_pneumonia_cnn((176, 176, 1), conv_filters=(32, 64, 128), resize=28)
    >>> small.input_shape, small.get_layer("resize").output.shape
    ((None, 176, 176, 1), (None, 28, 28, 1))

    A network that equalises its input images itself:

    >>> build_pneumonia_cnn((176, 176, 1), equalize=True).layers[1].name
    'equalize'
    """
    keras = import_keras()
    layers = keras.layers
    input_shape = tuple(int(s) for s in input_shape)
    conv_filters = tuple(conv_filters)
    dense_units = tuple(dense_units)
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}.")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    strides = _check_strides(conv_filters, conv_strides)
    augmentation = _resolve_augmentation(augmentation)
    if len(input_shape) == 1 and (conv_filters or augmentation or equalize):
        raise ValueError(
            "Flat (2-D) inputs need conv_filters=(), augmentation=None and equalize=False; "
            "pass images as an array of shape (n_samples, height, width, channels)."
        )
    if len(input_shape) not in (1, 3):
        raise ValueError(
            f"input_shape must be (height, width, channels) or (n_features,), "
            f"got {input_shape}."
        )
    resize = _check_resize(resize, input_shape)
    if conv_filters:
        min_size = minimum_input_size(conv_filters, strides)
        height, width = resize or input_shape[:2]
        if min(height, width) < min_size:
            raise ValueError(
                f"Input images of {height}x{width} pixels are too small for "
                f"{len(conv_filters)} convolution blocks with strides {strides}: "
                f"the minimum size is {min_size}x{min_size}. "
                + ("Give a larger resize" if resize else
                   "Resize the images (ImageLoader(image_size=...))")
                + " or use fewer conv_filters."
            )
    base_seed = 0 if seed is None else int(seed)

    def init(offset):
        return keras.initializers.GlorotUniform(
            seed=None if seed is None else base_seed + 101 * offset
        )

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if equalize:
        from ._layers import HistogramEqualization

        # before the shrink: the loader equalises the images it outputs, too
        x = HistogramEqualization(name="equalize", dtype="float32")(x)
    if resize:
        # in float32 whatever ``dtype`` says: the averaging keeps the inputs' precision
        x = layers.Resizing(*resize, interpolation="bilinear", antialias=True,
                            name="resize", dtype="float32")(x)
    if augmentation:
        # in the [0, 1] input space: constant fill is black, contrast and
        # brightness ranges are those of the loader's output
        for layer in _augmentation_layers(keras, augmentation, base_seed + 7919):
            x = layer(x)
    if center_inputs:
        # [0, 1] -> [-1, 1]: zero-centred inputs let the study's network start
        # learning in the first epoch instead of the third or later.
        x = layers.Rescaling(2.0, offset=-1.0, name="center", dtype=dtype)(x)
    for i, (filters, stride) in enumerate(zip(conv_filters, strides)):
        x = layers.Conv2D(
            filters,
            kernel_size,
            strides=stride,
            padding="same",
            activation=None if batch_norm else activation,
            kernel_initializer=init(i),
            name=f"conv{i + 1}",
            dtype=dtype,
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"bn{i + 1}", dtype=dtype)(x)
            x = layers.Activation(activation, name=f"act{i + 1}", dtype=dtype)(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}", dtype=dtype)(x)
    if len(input_shape) > 1:
        x = layers.Flatten(name="flatten", dtype=dtype)(x)
    for j, units in enumerate(dense_units):
        x = layers.Dense(
            units,
            activation=activation,
            kernel_initializer=init(50 + j),
            name=f"dense{j + 1}",
            dtype=dtype,
        )(x)
        if dropout > 0:
            x = layers.Dropout(
                dropout, seed=None if seed is None else base_seed + 31 + j,
                name=f"dropout{j + 1}", dtype=dtype,
            )(x)
    n_out = 1 if n_classes == 2 else n_classes
    # the head in float32 whatever ``dtype`` says: logits and probabilities
    # keep full precision (bfloat16 has 8 bits of mantissa)
    logits = layers.Dense(
        n_out, kernel_initializer=init(99), name="logits", dtype="float32"
    )(x)
    outputs = layers.Activation(
        "sigmoid" if n_out == 1 else "softmax", name="probabilities", dtype="float32"
    )(logits)
    return keras.Model(inputs, outputs, name="pneumonia_cnn")


def average_networks(networks):
    """One network whose logits are the mean of several networks' logits.

    A seed ensemble as a single :class:`keras.Model`: each member keeps its
    own weights (nested as ``"network0"``, ``"network1"``, ...), all read the
    same input, and their ``"logits"`` layers are averaged by a layer of the
    same name, followed by the members' output activation. Averaging log-odds
    ranks images as averaging probabilities does to within noise (the
    grouped cross-validation of ``docs/recipe.rst``), and the result is again
    a network with a ``"logits"`` layer, so everything that reads one
    (prediction, Grad-CAM, saving) works unchanged.

    Parameters
    ----------
    networks : list of keras.Model
        At least two networks from :func:`build_pneumonia_cnn` with the same
        input shape and number of classes (trained or not). Their layers are
        shared, not copied.

    Returns
    -------
    model : keras.Model
        Uncompiled; named ``"pneumonia_cnn_ensemble"``.

    Examples
    --------
    >>> from cxrlearn.networks import average_networks, build_pneumonia_cnn
    >>> nets = [build_pneumonia_cnn((16, 16, 1), 2, conv_filters=(4,), dense_units=(8,),
    ...                             seed=s) for s in (0, 1)]
    >>> model = average_networks(nets)
    >>> [layer.name for layer in model.layers]
    ['image', 'network0', 'network1', 'logits', 'probabilities']
    """
    keras = import_keras()
    layers = keras.layers
    networks = list(networks)
    if len(networks) < 2:
        raise ValueError(f"average_networks needs at least two networks, got {len(networks)}.")
    shapes = {tuple(net.inputs[0].shape[1:]) for net in networks}
    outs = {int(net.get_layer("logits").output.shape[-1]) for net in networks}
    if len(shapes) > 1 or len(outs) > 1:
        raise ValueError(
            f"the networks differ in input shape {sorted(shapes)} or number of "
            f"logits {sorted(outs)}; an ensemble needs them equal."
        )
    (n_out,) = outs
    inputs = keras.Input(shape=next(iter(shapes)), name="image")
    logits = [
        keras.Model(net.inputs, net.get_layer("logits").output, name=f"network{i}")(inputs)
        for i, net in enumerate(networks)
    ]
    mean = layers.Average(name="logits", dtype="float32")(logits)
    outputs = layers.Activation(
        "sigmoid" if n_out == 1 else "softmax", name="probabilities", dtype="float32"
    )(mean)
    return keras.Model(inputs, outputs, name="pneumonia_cnn_ensemble")


def add_companion(model, companion, weight=0.5):
    """One network whose logits average those of ``model`` and of ``companion``.

    Two recipes as one :class:`keras.Model`, e.g. 176 px networks and a
    28 px network that shrinks the same images itself
    (:func:`build_pneumonia_cnn` ``resize``): their log-odds are averaged,
    ``(1 - weight) * model + weight * companion``. The networks of
    ``model`` are nested as ``"network0"``, ``"network1"``, ... (so
    :func:`member_networks` and Grad-CAM find them, as in an
    :func:`average_networks` ensemble) and ``companion`` as one model named
    ``"companion"``; the result again has a ``"logits"`` layer, so
    prediction and saving work unchanged. Only built-in layers are used.

    Parameters
    ----------
    model : keras.Model
        A network from :func:`build_pneumonia_cnn` or an ensemble from
        :func:`average_networks`.
    companion : keras.Model
        Another such network or ensemble, with the same input shape and
        number of classes (its own architecture and input ``resize``).
    weight : float, default=0.5
        The companion's share of the averaged log-odds, in (0, 1).

    Returns
    -------
    model : keras.Model
        Uncompiled; named ``"pneumonia_cnn_with_companion"``. The layers
        are shared with ``model`` and ``companion``, not copied.

    Examples
    --------
    >>> from cxrlearn.networks import add_companion, build_pneumonia_cnn, member_networks
    >>> big = build_pneumonia_cnn((32, 32, 1), conv_filters=(4, 8), dense_units=(8,), seed=0)
    >>> small = build_pneumonia_cnn((32, 32, 1), conv_filters=(4,), dense_units=(8,),
    ...                             resize=8, seed=1)
    >>> both = add_companion(big, small)
    >>> [layer.name for layer in both.layers]  # doctest: +NORMALIZE_WHITESPACE
    ['image', 'network0', 'companion', 'network_share', 'companion_share', 'logits',
     'probabilities']
    >>> [m.name for m in member_networks(both)], companion_network(both).name
    (['network0'], 'companion')
    """
    keras = import_keras()
    layers = keras.layers
    if not 0 < weight < 1:
        raise ValueError(f"weight must be in (0, 1), got {weight!r}.")
    shapes = [tuple(net.inputs[0].shape[1:]) for net in (model, companion)]
    outs = [int(net.get_layer("logits").output.shape[-1]) for net in (model, companion)]
    if shapes[0] != shapes[1] or outs[0] != outs[1]:
        raise ValueError(
            f"the networks differ in input shape {shapes} or number of logits {outs}; "
            "a companion needs them equal."
        )
    if companion_network(model) is not None or companion_network(companion) is not None:
        raise ValueError("a network with a companion cannot take or be another companion.")
    inputs = keras.Input(shape=shapes[0], name="image")
    members = member_networks(model)
    if members == [model]:
        members = [keras.Model(model.inputs, model.get_layer("logits").output, name="network0")]
    logits = [member(inputs) for member in members]
    own = logits[0] if len(logits) == 1 else layers.Average(
        name="network_logits", dtype="float32")(logits)
    other = keras.Model(companion.inputs, companion.get_layer("logits").output,
                        name="companion")(inputs)
    mean = layers.Add(name="logits", dtype="float32")([
        layers.Rescaling(1.0 - weight, name="network_share", dtype="float32")(own),
        layers.Rescaling(weight, name="companion_share", dtype="float32")(other),
    ])
    outputs = layers.Activation(
        "sigmoid" if outs[0] == 1 else "softmax", name="probabilities", dtype="float32"
    )(mean)
    return keras.Model(inputs, outputs, name="pneumonia_cnn_with_companion")


def companion_network(model):
    """The ``"companion"`` of an :func:`add_companion` model, or None.

    Parameters
    ----------
    model : keras.Model
        Any network of this module.

    Returns
    -------
    companion : keras.Model or None
        The nested model from the image to the companion's logits, or
        None when ``model`` has no companion.

    Examples
    --------
    >>> from cxrlearn.networks import build_pneumonia_cnn, companion_network
    >>> companion_network(build_pneumonia_cnn((16, 16, 1), conv_filters=(4,))) is None
    True
    """
    for layer in model.layers:
        if layer.name == "companion" and hasattr(layer, "layers"):
            return layer
    return None


def member_networks(model):
    """The members of an :func:`average_networks` model, or ``[model]``.

    Members are models from the image to their own ``"logits"``; a single
    network is returned as it is.

    Examples
    --------
    >>> from cxrlearn.networks import average_networks, build_pneumonia_cnn, member_networks
    >>> nets = [build_pneumonia_cnn((16, 16, 1), 2, conv_filters=(4,), dense_units=(8,),
    ...                             seed=s) for s in (0, 1)]
    >>> [m.name for m in member_networks(average_networks(nets))]
    ['network0', 'network1']
    >>> member_networks(nets[0]) == [nets[0]]
    True
    """
    members = [layer for layer in model.layers if layer.name.startswith("network")
               and hasattr(layer, "layers")]
    # (the companion of an :func:`add_companion` model is not one of them)
    return members or [model]


#: Layer settings that do not shape what a network computes: its names, its
#: arithmetic (``warm_start`` keeps the first fit's precision) and the seeds
#: and initialisers of weights that exist already.
_NOT_ARCHITECTURE = frozenset({"name", "dtype", "seed", "trainable", "kernel_initializer",
                               "bias_initializer", "build_config", "compile_config"})


def _layer_signature(layer):
    import json

    config = {k: v for k, v in layer.get_config().items() if k not in _NOT_ARCHITECTURE}
    # as a saved model's config reads back (tuples as lists)
    return type(layer).__name__, json.loads(json.dumps(config, default=repr))


def _architecture_difference(fitted, wanted):
    """The first layer where two networks differ in kind or settings, or None.

    Compares the layers in order, by class and configuration (units, filters,
    strides, rates, activations, resizing, equalisation...), ignoring names,
    dtype policies and initialisers. Returns a sentence for an error message.

    Examples
    --------
    >>> from cxrlearn.networks import _architecture_difference, build_pneumonia_cnn
    >>> net = build_pneumonia_cnn((16, 16, 1), 2, conv_filters=(4,), dense_units=(8,), seed=0)
    >>> again = build_pneumonia_cnn((16, 16, 1), 2, conv_filters=(4,), dense_units=(8,),
    ...                             seed=1, dtype="mixed_bfloat16")
    >>> _architecture_difference(net, again) is None
    True
    >>> print(_architecture_difference(
    ...     net, build_pneumonia_cnn((16, 16, 1), 2, conv_filters=(6,), dense_units=(8,))))
    layer 3 of the fitted network is Conv2D 'conv1' with filters=4; the parameters build a Conv2D 'conv1' with filters=6
    """
    old, new = list(fitted.layers), list(wanted.layers)
    for i, (a, b) in enumerate(zip(old, new), start=1):
        (kind_a, config_a), (kind_b, config_b) = _layer_signature(a), _layer_signature(b)
        if kind_a != kind_b:
            return (f"layer {i} of the fitted network is {kind_a} {a.name!r}; the "
                    f"parameters build a {kind_b} {b.name!r} there")
        changed = sorted(k for k in set(config_a) | set(config_b)
                         if config_a.get(k) != config_b.get(k))
        if changed:
            key = changed[0]
            return (f"layer {i} of the fitted network is {kind_a} {a.name!r} with "
                    f"{key}={config_a.get(key)!r}; the parameters build a {kind_b} "
                    f"{b.name!r} with {key}={config_b.get(key)!r}")
    if len(old) != len(new):
        return (f"the fitted network has {len(old)} layers; the parameters build "
                f"{len(new)}")
    return None
