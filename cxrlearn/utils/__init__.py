"""Utilities: lazy Keras import, TensorFlow's thread share, image fingerprints."""

from ._fingerprints import image_fingerprints
from ._keras import import_keras
from ._threads import limit_tf_threads

__all__ = ["image_fingerprints", "import_keras", "limit_tf_threads"]
