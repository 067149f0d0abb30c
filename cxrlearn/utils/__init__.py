"""Internal utilities: lazy Keras import, seeding and validation helpers."""

from ._keras import import_keras

__all__ = ["import_keras"]
