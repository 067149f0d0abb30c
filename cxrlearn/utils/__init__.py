"""Utilities: lazy Keras import, TensorFlow's thread share, image fingerprints
and perceptual hashes."""

from ._fingerprints import (
    HASH_BITS,
    NEAR_DUPLICATE_BITS,
    hash_distances,
    image_fingerprints,
    perceptual_hashes,
)
from ._keras import import_keras
from ._threads import limit_tf_threads

__all__ = [
    "HASH_BITS",
    "NEAR_DUPLICATE_BITS",
    "hash_distances",
    "image_fingerprints",
    "import_keras",
    "limit_tf_threads",
    "perceptual_hashes",
]
