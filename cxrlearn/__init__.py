"""cxrlearn: a chest X-ray pneumonia CNN as a scikit-learn citizen.

Importing :mod:`cxrlearn` does not import TensorFlow; Keras is loaded on
first use (fitting, predicting, building a network).
"""

from ._classifier import PneumoniaCNN
from ._decoders import ImageLoadError
from ._loading import ImageLoader, LazyImages
from ._thresholds import (
    OperatingPointClassifier,
    make_operating_point_scorer,
    threshold_for_sensitivity,
    threshold_for_specificity,
)

__version__ = "0.1.0"

__all__ = [
    "ImageLoadError",
    "ImageLoader",
    "LazyImages",
    "OperatingPointClassifier",
    "PneumoniaCNN",
    "__version__",
    "make_operating_point_scorer",
    "threshold_for_sensitivity",
    "threshold_for_specificity",
]
