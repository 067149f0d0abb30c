"""cxrlearn: a chest X-ray pneumonia CNN as a scikit-learn citizen.

Importing :mod:`cxrlearn` is nearly free: the public names below are loaded
on first access (PEP 562), scikit-learn when an estimator is first used, and
TensorFlow/Keras only when a network is built, fitted or loaded. This keeps
``cxrlearn --help`` and the loaders fast.
"""

import importlib

__version__ = "0.1.0"

# public name -> private module that defines it
_LAZY = {
    "PneumoniaCNN": "._classifier",
    "ImageLoader": "._loading",
    "LazyImages": "._loading",
    "ImageLoadError": "._decoders",
    "OperatingPointClassifier": "._thresholds",
    "make_operating_point_scorer": "._thresholds",
    "threshold_for_balanced_accuracy": "._thresholds",
    "threshold_for_sensitivity": "._thresholds",
    "threshold_for_specificity": "._thresholds",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'cxrlearn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
