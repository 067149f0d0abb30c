"""How a fitted classifier turns scores into labels, read from its attributes."""

import numpy as np

__all__ = ["operating_point"]


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _positive_label(classes):
    """The disease label of a binary problem: PNEUMONIA, else the second class."""
    classes = list(classes)
    for c in classes:
        if str(c).upper() == "PNEUMONIA":
            return c
    return classes[-1]


def operating_point(model):
    """How a fitted binary classifier turns scores into labels.

    Read from the estimator's own attributes, never guessed: cxrlearn's
    :class:`~cxrlearn.OperatingPointClassifier` (``threshold_`` on the
    probability of ``pos_label_``), scikit-learn's
    ``TunedThresholdClassifierCV`` / ``FixedThresholdClassifier`` (their
    threshold on the response they use, which may be ``decision_function``),
    or a plain classifier (the most probable class). The labels themselves
    always come from ``model.predict``.

    Parameters
    ----------
    model : classifier
        A fitted binary classifier with ``classes_``.

    Returns
    -------
    dict
        ``pos_label``, ``threshold`` (float or None for argmax),
        ``applies_to`` (e.g. ``"predict_proba[:, PNEUMONIA]"``) and
        ``chosen_by``, a sentence on how the threshold was chosen, from
        what the estimator records (e.g. the target sensitivity of an
        :class:`~cxrlearn.OperatingPointClassifier` and the rates it
        reached on its held-out predictions).

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import FixedThresholdClassifier
    >>> from cxrlearn.evaluation import operating_point
    >>> X, y = make_classification(random_state=0)
    >>> clf = FixedThresholdClassifier(LogisticRegression(), threshold=0.3).fit(X, y)
    >>> point = operating_point(clf)
    >>> point["pos_label"], point["threshold"], point["applies_to"]
    (1, 0.3, 'predict_proba[:, 1]')
    >>> operating_point(LogisticRegression().fit(X, y))["threshold"] is None
    True
    """
    from sklearn.model_selection._classification_threshold import BaseThresholdClassifier

    classes = list(model.classes_)
    if hasattr(model, "threshold_") and hasattr(model, "pos_label_"):
        pos = model.pos_label_
        return {"pos_label": _plain(pos), "threshold": float(model.threshold_),
                "applies_to": f"predict_proba[:, {pos}]",
                "chosen_by": _chosen_by_target(model)}
    if isinstance(model, BaseThresholdClassifier):
        inner = getattr(model, "estimator_", model.estimator)
        methods = model._get_response_method()
        methods = [methods] if isinstance(methods, str) else methods
        method = next(m for m in methods if hasattr(inner, m))
        if hasattr(model, "_curve_scorer"):  # TunedThresholdClassifierCV
            pos, threshold = model._curve_scorer._get_pos_label(), model.best_threshold_
            scoring = model.scoring if isinstance(model.scoring, str) else \
                type(model.scoring).__name__
            chosen_by = (f"TunedThresholdClassifierCV: the threshold maximising "
                         f"{scoring} over cv={model.cv!r} (best score "
                         f"{float(model.best_score_):.4g})")
        else:  # FixedThresholdClassifier
            pos, threshold = model.pos_label, model.threshold
            if threshold == "auto":
                threshold = 0.5 if method == "predict_proba" else 0.0
            chosen_by = "FixedThresholdClassifier: set by hand"
        pos = classes[-1] if pos is None else pos
        where = f"predict_proba[:, {pos}]" if method == "predict_proba" else \
            f"decision_function (score of {pos})"
        return {"pos_label": _plain(pos), "threshold": float(threshold), "applies_to": where,
                "chosen_by": chosen_by}
    return {"pos_label": _plain(_positive_label(classes)), "threshold": None,
            "applies_to": "most probable class (argmax of predict_proba)",
            "chosen_by": "none: the most probable class (probability >= 0.5 for two "
                         "classes)"}


def _chosen_by_target(model):
    kind = target = None
    for name in ("sensitivity", "specificity"):
        value = getattr(model, f"target_{name}", None)
        if value is not None:
            kind, target = name, value
    if kind is None:
        return f"{type(model).__name__}: threshold_"
    from sklearn.frozen import FrozenEstimator

    text = f"{type(model).__name__}: target {kind} {target:g}"
    if isinstance(getattr(model, "estimator", None), FrozenEstimator):
        text += ", chosen on the data given to fit (a fitted model, frozen)"
    elif hasattr(model, "cv"):
        text += f", chosen on out-of-fold predictions (cv={model.cv!r})"
    sens = getattr(model, "validation_sensitivity_", None)
    spec = getattr(model, "validation_specificity_", None)
    if sens is not None and spec is not None:
        text += (f"; there it reached sensitivity {sens:.3f}, "
                 f"specificity {spec:.3f}")
    return text
