"""Where the network looked: Grad-CAM heatmaps and overlays.

:func:`grad_cam` computes class activation heatmaps of a fitted
:class:`~cxrlearn.PneumoniaCNN` (bare, in a Pipeline or in a meta-estimator
such as :class:`~cxrlearn.OperatingPointClassifier`), aligned with the
images the network sees; :func:`overlay` blends one with its image and
:func:`explain_files` writes an annotated PNG per image file (the
``cxrlearn explain`` command). Importing this module imports neither
TensorFlow nor matplotlib.
"""

from ._gradcam import grad_cam
from ._overlay import explain_files, overlay

__all__ = ["explain_files", "grad_cam", "overlay"]
