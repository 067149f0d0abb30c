"""The ready-trained model shipped inside the package."""

import hashlib
import json
from pathlib import Path

__all__ = ["MODEL_SHA256", "load", "model_card"]

_HERE = Path(__file__).resolve().parent
#: The packaged model file (code-free skops format, network only).
MODEL_PATH = _HERE / "kermany224_default.skops"
#: Its model card (figures written by ``benchmarks/train_pretrained.py``).
CARD_PATH = _HERE / "kermany224_default.card.json"
#: SHA-256 of :data:`MODEL_PATH`, pinned: a modified file is refused.
MODEL_SHA256 = "5a059c445ee5e39331c601199ca2a2f677457a6479a5e254a28b959054600698"


def _verified_bytes(path, expected):
    from ..io import ModelFileError

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelFileError(path, f"the packaged model is missing ({exc.strerror})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ModelFileError(
            path,
            f"its SHA-256 {digest} is not the pinned {expected}: the packaged model was "
            "modified or damaged; reinstall cxrlearn",
        )
    return data


def load():
    """The ready-trained pneumonia model: a fitted pipeline from file paths to labels.

    One of the study's networks at 176 px and three small networks that
    shrink the same images to 28 px, their log-odds averaged: cxrlearn's
    default recipe (``cxrlearn train``), trained on all of Kermany-224
    (train and val: 1,074 normal and 3,233 pneumonia paediatric AP chest
    X-rays). The file ships inside the package;
    its SHA-256 is checked against :data:`MODEL_SHA256` before it is opened,
    and it is opened with :func:`cxrlearn.io.load_model` (no code runs from
    it). Read :func:`model_card` before using it: it is a research model for
    paediatric AP films, not a medical device.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        ``Pipeline([("loader", ImageLoader(...)), ("cnn", PneumoniaCNN(...))])``,
        fitted: ``predict`` / ``predict_proba`` take image paths (PNG, JPEG,
        DICOM). Its classes are ``["NORMAL", "PNEUMONIA"]``.

    Raises
    ------
    cxrlearn.io.ModelFileError
        If the packaged file is missing, modified or damaged.

    See Also
    --------
    model_card : Training data, recipe, cross-validated performance, limits.

    Examples
    --------
    >>> from cxrlearn import pretrained
    >>> model = pretrained.load()  # doctest: +SKIP
    >>> model.predict(["chest_xray.jpeg"])  # doctest: +SKIP
    array(['PNEUMONIA'], dtype=object)
    """
    from ..io._persistence import _load_bytes

    # What was checked is what is opened: the verified bytes, not the path again.
    return _load_bytes(MODEL_PATH, _verified_bytes(MODEL_PATH, MODEL_SHA256))


def model_card():
    """The model card of :func:`load`'s model, as a dict.

    Keys: ``training_data`` (source, licence, images per class, patients),
    ``recipe``, ``cross_validation`` (scheme and figures with 95% intervals,
    from patient-grouped cross-validation: no image is scored by a model
    that trained on its patient), ``threshold`` (value, what it applies to,
    how it was chosen), ``intended_use``, ``limitations``, ``attribution``,
    ``versions``, ``sha256`` and ``size_bytes``.

    Returns
    -------
    card : dict

    Examples
    --------
    >>> from cxrlearn import pretrained
    >>> card = pretrained.model_card()
    >>> card["training_data"]["images_per_class"]
    {'NORMAL': 1074, 'PNEUMONIA': 3233}
    >>> card["sha256"] == pretrained.MODEL_SHA256
    True
    """
    card = json.loads(CARD_PATH.read_text())
    card.update(_FIXED_CARD)
    return card


_FIXED_CARD = {
    "intended_use": (
        "Research and teaching: scoring paediatric (ages 1-5) anterior-posterior chest "
        "X-rays for pneumonia versus normal, and a starting point for evaluating on a "
        "hospital's own films with `cxrlearn report`. Not a medical device; not for "
        "diagnosis or triage."
    ),
    "limitations": [
        "Trained on children aged 1 to 5 from one centre (Guangzhou Women and Children's "
        "Medical Center): adults and other age groups are out of distribution.",
        "Anterior-posterior films only: lateral views are out of distribution.",
        "One hospital's equipment and export pipeline (8-bit JPEG, resized to 224 px): "
        "other hospitals' equipment, DICOM windowing and post-processing may shift scores; "
        "evaluate on local data (with intervals) before relying on any figure.",
        "Two classes: COVID-19 and other findings were absent from training; the model "
        "will call them NORMAL or PNEUMONIA anyway.",
        "Labels are the data set's (bacterial and viral pneumonia merged); Kermany holds a "
        "few duplicate images under different names.",
        "The threshold is the argmax (0.5), not tuned for a clinical sensitivity target: "
        "choose an operating point on local validation data.",
    ],
    "attribution": (
        "Kermany D.S., Goldbaum M., Cai W. et al., Identifying Medical Diagnoses and "
        "Treatable Diseases by Image-Based Deep Learning, Cell 172(5):1122-1131, 2018; data: "
        "Kermany, Zhang, Goldbaum, Labeled Optical Coherence Tomography (OCT) and Chest "
        "X-Ray Images for Classification, Mendeley Data v2, doi:10.17632/rscbjbr9sj.2, "
        "licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). The model is "
        "derived from these images."
    ),
}
