"""cxrlearn's own Keras layers.

Importing this module imports Keras (it subclasses ``keras.layers.Layer``),
so cxrlearn imports it lazily, where a network is built or loaded. Each
layer is registered with Keras under the ``"cxrlearn>"`` prefix, and
:func:`cxrlearn._training.load_model_bytes` lets a model file name these
classes -- and no other class outside Keras -- so a network that holds one
loads without code from the file.
"""

from ._decoders import EQUALIZE_LEVELS
from .utils import import_keras

__all__ = ["HistogramEqualization", "LAYER_CLASSES"]

keras = import_keras()


@keras.saving.register_keras_serializable(package="cxrlearn", name="HistogramEqualization")
class HistogramEqualization(keras.layers.Layer):
    """Per-image histogram equalisation, the same as the loader's, inside a network.

    Each image of the batch on its own, over all its channels together:
    pixels on [0, 1] fall into ``levels`` grey levels and each goes to the
    fraction of the image's pixels at or below its level, less those at the
    darkest level present (``0`` for the darkest, ``1`` for the brightest),
    in float64 and then rounded to float32 -- exactly what
    ``ImageLoader(intensity="equalize")`` computes in NumPy, so a network
    fed raw images and equalising them here sees the values the loader
    would have given it. A constant image becomes zeros. Inputs outside
    [0, 1] count in the nearest end level. No weights, no gradient (the
    grey levels are counted): it sits before everything that learns.

    Keras's own :class:`keras.layers.Equalization` is not this: it counts
    the histogram over the whole batch, so an image's values depend on the
    other images predicted with it, and it returns its input unchanged
    outside training.

    Parameters
    ----------
    levels : int, default=256
        Grey levels of the histogram (the loader's
        :data:`cxrlearn._decoders.EQUALIZE_LEVELS`).
    name : str or None, default=None
        Layer name.
    dtype : str, dict or None, default=None
        Keras dtype policy; the computation is float32 (counts in integers,
        the mapping in float64) whatever it says.
    trainable : bool, default=True
        Keras's flag; the layer has no weights either way.

    See Also
    --------
    cxrlearn.ImageLoader : ``intensity="equalize"`` does the same when loading.
    cxrlearn.networks.build_pneumonia_cnn : ``equalize=True`` puts it first.

    Examples
    --------
    >>> import numpy as np
    >>> from cxrlearn.networks import HistogramEqualization
    >>> image = np.array([[0.1, 0.2], [0.2, 0.9]], dtype=np.float32).reshape(1, 2, 2, 1)
    >>> np.asarray(HistogramEqualization()(image))[0, :, :, 0].round(3).tolist()
    [[0.0, 0.667], [0.667, 1.0]]
    """

    def __init__(self, levels=EQUALIZE_LEVELS, *, name=None, dtype=None, trainable=True):
        super().__init__(name=name, dtype=dtype, trainable=trainable)
        self.levels = int(levels)
        if self.levels < 2:
            raise ValueError(f"levels must be at least 2, got {levels!r}.")

    def call(self, inputs):
        ops = keras.ops
        x = ops.cast(inputs, "float32")
        shape = ops.shape(x)
        n = shape[0]
        flat = ops.reshape(x, (n, -1))
        # floor(x * levels) for x >= 0, as NumPy's astype(intp); out of range clipped
        index = ops.clip(ops.cast(flat * float(self.levels), "int32"), 0, self.levels - 1)
        # one histogram per image: offset each image's levels into its own range
        offsets = ops.expand_dims(ops.arange(n, dtype="int32") * self.levels, 1)
        counts = ops.bincount(ops.reshape(index + offsets, (-1,)), minlength=n * self.levels)
        hist = ops.reshape(counts, (n, self.levels))
        cdf = ops.cast(ops.cumsum(hist, axis=1), "float64")
        first = ops.argmax(ops.cast(hist > 0, "int32"), axis=1)
        darkest = ops.take_along_axis(cdf, ops.expand_dims(first, 1), axis=1)
        span = cdf[:, -1:] - darkest
        lut = ops.where(span > 0, (cdf - darkest) / ops.maximum(span, 1.0), 0.0)
        lut = ops.cast(ops.clip(lut, 0.0, 1.0), "float32")
        return ops.reshape(ops.take_along_axis(lut, index, axis=1), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["levels"] = self.levels
        return config


#: cxrlearn's layer classes that a model file may name (module, class name).
LAYER_CLASSES = {
    (cls.__module__, cls.__name__): cls for cls in (HistogramEqualization,)
}
