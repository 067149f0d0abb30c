"""Internal utilities: lazy Keras import, TensorFlow's thread share, validation helpers."""

from ._keras import import_keras
from ._threads import limit_tf_threads

__all__ = ["import_keras", "limit_tf_threads"]
