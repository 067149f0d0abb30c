"""Serve a saved model over HTTP: a JSON API and a review page (research use).

:func:`create_app` builds the ASGI application (FastAPI, the ``serve``
extra: ``pip install 'cxrlearn[serve]'``) that ``cxrlearn serve`` runs with
uvicorn: ``POST /predict`` (image files in, the model's own labels,
probabilities and threshold out, optionally Grad-CAM overlays), ``GET /``
(a page to drop files on), ``GET /health``, ``GET /model`` and
``GET /openapi.json``. :class:`ServedModel` and :func:`decode_upload` are
the framework-free part: uploads decoded in memory exactly as the model's
:class:`~cxrlearn.ImageLoader` decodes files, and predictions from the
model itself.

Importing this package imports neither TensorFlow nor the web framework
(``create_app`` imports FastAPI when first used).
"""

import importlib

from ._model import (
    InferenceWorker,
    ServedModel,
    UploadError,
    decode_upload,
    model_file_version,
)

__all__ = ["InferenceWorker", "ServedModel", "UploadError", "create_app", "decode_upload",
           "model_file_version"]


def __getattr__(name):
    if name == "create_app":
        value = importlib.import_module("._app", __name__).create_app
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cxrlearn.serve' has no attribute {name!r}")
