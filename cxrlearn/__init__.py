"""cxrlearn: a chest X-ray pneumonia CNN as a scikit-learn citizen.

Importing :mod:`cxrlearn` does not import TensorFlow; Keras is loaded on
first use (fitting, predicting, building a network).
"""

from ._classifier import PneumoniaCNN

__version__ = "0.1.0"

__all__ = [
    "PneumoniaCNN",
    "__version__",
]
