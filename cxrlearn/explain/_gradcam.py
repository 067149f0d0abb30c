"""Grad-CAM heatmaps of a fitted :class:`cxrlearn.PneumoniaCNN`.

Everything Keras/TensorFlow is imported inside the functions (through
:func:`cxrlearn.utils.import_keras`), so importing this module stays cheap.
Only public names of the layers below are used: the estimator's ``model_``,
``classes_``, ``input_shape_`` and ``predict``, and the network contract of
:func:`cxrlearn.networks.build_pneumonia_cnn` (a linear layer named
``"logits"`` before the sigmoid/softmax).

Why hand-written: Grad-CAM itself is a few lines of ``tf.GradientTape``;
what surrounds it here is cxrlearn's own -- walking scikit-learn pipelines
and meta-estimators down to the network, explaining the label the model
predicts at its own operating point, the network's ``"logits"`` layer -- so
an explanation library would add a dependency and save none of it.
"""

import dataclasses
from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import check_is_fitted

__all__ = ["grad_cam"]


@dataclasses.dataclass
class _Plan:
    """How a model reaches its PneumoniaCNN.

    ``stages`` lists, from the outside in, ``("transform", step)`` for each
    step before the network (``X`` goes through their ``transform``) and
    ``("decide", meta)`` for each meta-estimator whose ``predict`` may
    differ from the network's own (e.g. a tuned threshold).
    """

    cnn: object
    stages: list

    def has_transforms(self):
        return any(kind == "transform" for kind, _ in self.stages)

    def run(self, X):
        """``(X for the network, (decider, its input) or None)``."""
        decider = None
        for kind, obj in self.stages:
            if kind == "transform":
                X = obj.transform(X)
            elif decider is None:  # the outermost one decides the labels
                decider = (obj, X)
        return X, decider


def _plan(model):
    """Walk from ``model`` to its :class:`~cxrlearn.PneumoniaCNN`, without data.

    Follows Pipelines (the final step; earlier steps transform ``X``),
    fitted meta-estimators (``estimator_``, e.g.
    :class:`~cxrlearn.OperatingPointClassifier`,
    ``TunedThresholdClassifierCV``, ``FixedThresholdClassifier``) and
    ``FrozenEstimator``.
    """
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    from .. import PneumoniaCNN

    stages, current = [], model
    for _ in range(100):  # a guard against cycles
        if isinstance(current, PneumoniaCNN):
            check_is_fitted(current)
            return _Plan(current, stages)
        if isinstance(current, Pipeline):
            *steps, (_, final) = current.steps
            for _, step in steps:
                if step is not None and step != "passthrough":
                    stages.append(("transform", step))
            current = final
        elif isinstance(current, FrozenEstimator):
            current = current.estimator  # predicts as its estimator does
        elif hasattr(current, "estimator_"):
            stages.append(("decide", current))
            current = current.estimator_
        elif hasattr(current, "estimator") and hasattr(current, "fit"):
            check_is_fitted(current)  # an unfitted meta-estimator
            break  # fitted without estimator_: not one we know
        else:
            break
    raise TypeError(
        "Grad-CAM needs a fitted PneumoniaCNN, or a Pipeline or meta-estimator "
        f"(estimator_) ending in one; got {type(current).__name__} inside "
        f"{type(model).__name__}."
    )


def _cam_model(cnn, layer):
    """A Keras view of the network: (feature maps of ``layer``, logits).

    For an ensemble (``n_networks > 1``) the view outputs the maps of
    ``layer`` in every member, then the ensemble's (averaged) logits. With a
    companion (``PneumoniaCNN(companion=...)``) the maps are those of the
    estimator's own networks and the logits the model's, the companion's
    share included.
    """
    from ..networks import companion_network, member_networks
    from ..utils import import_keras

    keras = import_keras()
    net = cnn.model_
    members = member_networks(net)
    companion = companion_network(net)
    if len(members) == 1 and companion is None:
        return keras.Model(net.inputs, [_target_layer(keras, net, layer).output,
                                        net.get_layer("logits").output])
    inputs = keras.Input(shape=net.inputs[0].shape[1:], name="image")
    maps, logits = [], []
    for member in members:
        view = keras.Model(member.inputs,
                           [_target_layer(keras, member, layer).output, member.output])
        m, z = view(inputs)
        maps.append(m)
        logits.append(z)
    mean = logits[0] if len(logits) == 1 else keras.layers.Average(dtype="float32")(logits)
    if companion is not None:  # the model's own weighting of the two recipes
        mean = keras.layers.Add(dtype="float32")([
            net.get_layer("network_share")(mean),
            net.get_layer("companion_share")(companion(inputs)),
        ])
    return keras.Model(inputs, [*maps, mean])


def _layer_name(cnn, layer):
    """The name of the layer Grad-CAM weighs in ``cnn`` (``layer``, or the last
    convolution), checked to exist."""
    from ..networks import member_networks
    from ..utils import import_keras

    return _target_layer(import_keras(), member_networks(cnn.model_)[0], layer).name


def _target_layer(keras, net, layer):
    """The layer of ``net`` whose feature maps Grad-CAM weighs."""
    convs = [lyr for lyr in net.layers if isinstance(lyr, keras.layers.Conv2D)]
    if layer is None:
        if not convs:
            raise ValueError(
                "the network has no convolution layer (conv_filters=()); Grad-CAM "
                "needs one."
            )
        return convs[-1]
    try:
        target_layer = net.get_layer(layer)
    except ValueError:
        raise ValueError(
            f"no layer named {layer!r} in the network; its convolution layers "
            f"are {[lyr.name for lyr in convs]}."
        ) from None
    if len(target_layer.output.shape) != 4:
        raise ValueError(
            f"layer {layer!r} outputs shape {tuple(target_layer.output.shape)}; "
            "Grad-CAM needs a layer with (batch, height, width, channels) "
            f"feature maps, e.g. one of {[lyr.name for lyr in convs]}."
        )
    return target_layer


def _class_indices(cnn, labels):
    """Positions of ``labels`` in ``cnn.classes_`` (ValueError if absent)."""
    classes = cnn.classes_.tolist()
    position = {c: i for i, c in enumerate(classes)}
    idx = np.empty(len(labels), dtype=np.intp)
    for i, label in enumerate(labels):
        label = label.item() if isinstance(label, np.generic) else label
        try:
            idx[i] = position[label]
        except (KeyError, TypeError):  # TypeError: an unhashable label
            raise ValueError(
                f"{label!r} is not one of the network's classes {classes}."
            ) from None
    return idx


def _as_seen(cnn, images):
    """Network-ready ``images`` as the network's convolutions see them, to show.

    A network with ``equalize=True`` (the 176 px network of ``cxrlearn
    train``) equalises each image itself, in its first layer: the figures
    that say they show the image "as the network sees it" show that, not
    the loader's raw grey levels. The values are exactly the layer's (the
    loader's ``intensity="equalize"``); the images keep their shape, so a
    Grad-CAM map stays aligned with them. Other networks see ``images``
    unchanged.
    """
    if not getattr(cnn, "equalize", False):
        return images
    from .._decoders import _normalize_intensity

    images = np.asarray(images, dtype=np.float32)
    return np.stack([_normalize_intensity(x, "equalize") for x in images])


def _as_images(cnn, X):
    """Network-ready images: a float32 array or a lazy source, shape-checked."""
    shape = tuple(cnn.input_shape_)
    if len(shape) != 3:
        raise ValueError(
            f"the network takes flat inputs of shape {shape}; Grad-CAM needs images."
        )
    if hasattr(X, "load") and hasattr(X, "paths"):  # LazyImages: decoded per batch
        found = tuple(X.shape[1:])
    else:
        try:
            X = np.asarray(X, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(
                "the network takes arrays of images in [0, 1]; to explain image "
                "files, pass a Pipeline that loads them (e.g. ImageLoader, "
                "PneumoniaCNN)."
            ) from None
        if X.ndim == 3 and shape[2] == 1:
            X = X[..., np.newaxis]
        found = X.shape[1:] if X.ndim == 4 else X.shape
        if X.ndim == 4 and not np.all(np.isfinite(X)):
            raise ValueError("the images contain NaN or infinite values.")
    if found != shape:
        raise ValueError(
            f"images of shape {found} do not match the network's input {shape} "
            "(height, width, channels)."
        )
    return X


def _heatmaps(cam_model, X, class_index, *, binary, batch_size):
    """Grad-CAM of each image of ``X`` for ``class_index`` (None: predicted).

    Returns the heatmaps, shape (n, height, width), float32 in [0, 1].
    """
    from ..utils import import_keras

    import_keras()  # TensorFlow's process settings, before it starts
    import tensorflow as tf

    lazy = hasattr(X, "load") and hasattr(X, "paths")
    n = len(X)
    height, width = cam_model.inputs[0].shape[1:3]
    out = np.zeros((n, height, width), dtype=np.float32)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        xb = X.load(slice(start, stop)) if lazy else X[start:stop]
        xb = tf.convert_to_tensor(np.asarray(xb, dtype=np.float32))
        with tf.GradientTape() as tape:
            # one network: (maps, logits); an ensemble: each member's maps, then
            # the averaged logits, whose gradient weighs every member's maps
            *maps, logits = cam_model(xb, training=False)
            if class_index is None:  # the network's own prediction
                if binary:
                    idx = tf.cast(logits[:, 0] > 0, tf.int32)
                else:
                    idx = tf.argmax(logits, axis=1, output_type=tf.int32)
            else:
                idx = tf.constant(class_index[start:stop], dtype=tf.int32)
            if binary:  # the sigmoid's logit speaks for class 1, its negative for 0
                score = tf.where(idx == 1, logits[:, 0], -logits[:, 0])
            else:
                score = tf.gather(logits, idx, axis=1, batch_dims=1)
        # Images are independent (inference mode), so the gradient of the
        # sum is each image's own gradient.
        grads = tape.gradient(score, maps)
        cam = 0.0
        for member_maps, member_grads in zip(maps, grads):
            alpha = tf.reduce_mean(member_grads, axis=(1, 2))  # (b, k)
            cam += tf.nn.relu(tf.einsum("bhwk,bk->bhw", member_maps, alpha))
        cam = tf.image.resize(cam[..., tf.newaxis], (height, width), method="bilinear")
        out[start:stop] = cam.numpy()[..., 0]
    peak = out.max(axis=(1, 2), keepdims=True)
    np.divide(out, peak, out=out, where=peak > 0)  # an all-zero map stays zero
    return out


@validate_params(
    {
        "model": "no_validation",
        "X": "no_validation",
        "target": "no_validation",
        "layer": [None, str],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def grad_cam(model, X, *, target=None, layer=None, batch_size=32):
    """Grad-CAM heatmaps: where a fitted network looked to score a class.

    Gradient-weighted class activation mapping (Selvaraju et al. 2017): the
    feature maps ``A_k`` of a convolution layer are weighted by the spatial
    mean ``alpha_k`` of the gradient of the class's logit (pre-activation
    score) with respect to them; the heatmap is ``ReLU(sum_k alpha_k A_k)``,
    upsampled to the image size by bilinear interpolation
    (:func:`tf.image.resize`) and divided by its maximum, per image. It runs
    the network in inference mode (no dropout, no augmentation), in
    batches, and is deterministic.

    Parameters
    ----------
    model : PneumoniaCNN, Pipeline or meta-estimator
        A fitted :class:`~cxrlearn.PneumoniaCNN`, or a fitted Pipeline whose
        final step is one (its earlier steps, e.g.
        :class:`~cxrlearn.ImageLoader`, transform ``X``), or a fitted
        meta-estimator around one (``estimator_``:
        :class:`~cxrlearn.OperatingPointClassifier`, scikit-learn's
        ``TunedThresholdClassifierCV`` or ``FixedThresholdClassifier``; a
        ``FrozenEstimator``), nested in any order.
    X : array-like or LazyImages
        What ``model.predict`` takes: images of shape ``(n, height, width[,
        channels])`` in [0, 1] for a bare network, file paths for a
        pipeline that loads them.
    target : class label or None, default=None
        The class to explain, one of ``classes_``, for every image. ``None``
        explains the label ``model.predict`` gives each image (a
        meta-estimator's own label, at its threshold; for a bare network or
        a Pipeline, the most probable class). With two classes the network
        has one logit, the log-odds of ``classes_[1]``: it is explained for
        ``classes_[1]`` and its negative for ``classes_[0]``.
    layer : str or None, default=None
        Name of the Keras layer whose feature maps are weighted (e.g.
        ``"conv2"``; any layer with ``(height, width, channels)`` outputs).
        ``None`` takes the last ``Conv2D`` layer. With ``batch_norm=True``
        that layer's output precedes the normalisation and activation;
        ``layer="actN"`` takes the activated maps.
        For a seed ensemble (``PneumoniaCNN(n_networks=2)`` ...) the layer of
        that name in every network is weighted by the gradient of the
        ensemble's averaged logit, and the members' maps are summed before
        the division by the maximum. With a companion
        (``PneumoniaCNN(companion=...)``) the maps are those of the
        estimator's own networks, weighted by the gradient of the model's
        logit (the companion's share included).
    batch_size : int, default=32
        Images per forward and backward pass. The maps do not depend on it
        beyond float rounding (TensorFlow's kernels may sum in another
        order for another batch shape); the same call gives the same maps.

    Returns
    -------
    heatmaps : ndarray of shape (n_samples, height, width), dtype=float32
        One map per image in [0, 1], pixel-aligned with the images the
        network sees (after the pipeline's loading and resizing); each map
        reaches 1 at its maximum, and a map with no positive evidence is
        all zero.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``model`` is not fitted.
    ValueError
        If ``layer`` is not a layer with feature maps of the network, the
        network has no convolution, ``target`` is not a class, or the
        images do not match the network's input shape.
    TypeError
        If ``model`` holds no :class:`~cxrlearn.PneumoniaCNN`.

    See Also
    --------
    overlay : Blend a heatmap with its image.
    explain_files : One annotated PNG per image file.

    Notes
    -----
    A heatmap has the resolution of the layer's feature maps, upsampled.
    The study's five-block network (the default ``conv_filters``) has
    strided last blocks: at 176x176 pixels its last convolution,
    ``"conv5"``, has 2x2 maps (3x3 at 300 px), a very coarse picture;
    ``layer="conv4"`` (6x6 at 176 px) or ``"conv3"`` (22x22) show more
    detail, from less abstract features. Small networks such as
    ``conv_filters=(8, 16)`` keep half the image side.

    Sanity checks in cxrlearn's tests (a two-block network on 64x64
    synthetic X-rays, whose infiltrates cover 8% of the image): the
    heatmap's maximum falls inside the infiltrate for 83% of the correctly
    classified pneumonia images (76% to 84% over training seeds), against
    6% to 22% for the same network with re-initialised weights -- the
    model randomisation test of Adebayo et al. (2018). By rank
    correlation, re-initialised maps differ less clearly (mean absolute
    Spearman correlation with the trained maps 0.26 to 0.55 over seeds,
    against 0.93 or more for the trained network on noisy copies of the
    images): Grad-CAM of a shallow network follows the image's structure.
    The checks are no guarantee: with three blocks (8x8 maps) on the same
    images, two of three randomly initialised networks peak in the
    infiltrates as often as the trained one (about half the time), bright
    opacities dominating random features. Read a heatmap as a hint of where the evidence lies,
    not as a segmentation.

    Examples
    --------
    >>> import numpy as np
    >>> from cxrlearn import PneumoniaCNN
    >>> from cxrlearn.datasets import make_synthetic_xrays
    >>> from cxrlearn.explain import grad_cam
    >>> X, y = make_synthetic_xrays(40, image_size=32, random_state=0)
    >>> clf = PneumoniaCNN(conv_filters=(4, 8), dense_units=(8,), epochs=1,
    ...                    random_state=0).fit(X, y)
    >>> maps = grad_cam(clf, X[:5])
    >>> maps.shape, maps.dtype
    ((5, 32, 32), dtype('float32'))
    >>> bool(maps.min() >= 0 and maps.max() <= 1)
    True
    >>> np.array_equal(maps, grad_cam(clf, X[:5]))  # deterministic
    True
    >>> np.allclose(maps, grad_cam(clf, X[:5], batch_size=2), atol=1e-5)
    True
    >>> grad_cam(clf, X[:2], target="PNEUMONIA", layer="conv1").shape
    (2, 32, 32)
    """
    plan = _plan(model)
    cnn = plan.cnn
    cam_model = _cam_model(cnn, layer)
    if target is not None:
        target_index = _class_indices(cnn, [target])[0]
    images, decider = plan.run(X)
    images = _as_images(cnn, images)
    if target is not None:
        class_index = np.full(len(images), target_index)
    elif decider is not None:
        estimator, data = decider
        class_index = _class_indices(cnn, estimator.predict(data))
    else:
        class_index = None
    return _heatmaps(cam_model, images, class_index,
                     binary=len(cnn.classes_) == 2, batch_size=batch_size)
