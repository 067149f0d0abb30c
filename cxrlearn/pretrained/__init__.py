"""A ready-trained model: apply it to X-rays without training first.

:func:`load` returns the study's network trained by cxrlearn's default
recipe on all of Kermany-224, as a fitted pipeline from image paths to
labels; :func:`model_card` says what it was trained on, how well it does
under patient-grouped cross-validation, and where it must not be used. The
file ships inside the package, in the code-free model format, with its
SHA-256 pinned (:data:`MODEL_SHA256`). ``benchmarks/train_pretrained.py``
rebuilds it from the data.
"""

from ._model import MODEL_SHA256, load, model_card

__all__ = ["MODEL_SHA256", "load", "model_card"]
