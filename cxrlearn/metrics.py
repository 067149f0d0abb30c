"""Clinical metrics for pneumonia classifiers, built on :mod:`sklearn.metrics`.

Sensitivity and specificity are what clinicians read; ROC-AUC and average
precision are what model developers compare. This module gives both, for
binary (normal / pneumonia) and multiclass (normal / bacterial / viral)
tasks, as plain JSON-serialisable dictionaries that the command line prints
with :func:`format_report`.

Everything here delegates the arithmetic to :mod:`sklearn.metrics`; nothing
imports TensorFlow, and matplotlib is imported only by
:func:`plot_operating_points`.
"""

import numbers
import warnings
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    RocCurveDisplay,
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.utils._param_validation import (
    Interval,
    Options,
    StrOptions,
    validate_params,
)
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_consistent_length, column_or_1d

__all__ = [
    "clinical_report",
    "format_report",
    "multiclass_report",
    "plot_operating_points",
    "sensitivity_score",
    "specificity_score",
]


def _to_python(value):
    """Turn a numpy scalar (label or number) into the matching Python object."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_binary_labels(y_true, y_pred, pos_label):
    """Raise when the labels are not binary or `pos_label` is not one of them."""
    labels = unique_labels(y_true, y_pred)
    if len(labels) > 2:
        raise ValueError(
            f"Sensitivity and specificity are binary metrics but the labels are "
            f"{labels.tolist()}; use cxrlearn.metrics.multiclass_report for "
            f"more than two classes."
        )
    if len(labels) == 2 and pos_label not in labels.tolist():
        raise ValueError(
            f"pos_label={pos_label!r} is not a valid label; the labels are "
            f"{labels.tolist()}. Pass the label of the disease class, e.g. "
            f"pos_label={_to_python(labels[1])!r}."
        )


# The labels cxrlearn accepts as a positive class, as in sklearn.metrics.
_LABEL = [Real, str, "boolean"]
# zero_division as in sklearn.metrics.recall_score.
_ZERO_DIVISION = [Options(Real, {0.0, 1.0}), "nan", StrOptions({"warn"})]
_BINARY_RATE_CONSTRAINTS = {
    "y_true": ["array-like"],
    "y_pred": ["array-like"],
    "pos_label": _LABEL,
    "sample_weight": ["array-like", None],
    "zero_division": _ZERO_DIVISION,
}


@validate_params(_BINARY_RATE_CONSTRAINTS, prefer_skip_nested_validation=True)
def sensitivity_score(
    y_true, y_pred, *, pos_label=1, sample_weight=None, zero_division="warn"
):
    """Sensitivity (true positive rate, recall of the positive class).

    The fraction of diseased patients that the classifier flags:
    ``tp / (tp + fn)``. It is :func:`sklearn.metrics.recall_score` with
    ``average="binary"``, under its clinical name.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels (ints or strings, two classes at most).
    y_pred : array-like of shape (n_samples,)
        Predicted labels.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class, e.g. ``"PNEUMONIA"``.
    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights.
    zero_division : {"warn", 0.0, 1.0, np.nan}, default="warn"
        Value returned when there is no positive sample, as in
        :func:`sklearn.metrics.recall_score`.

    Returns
    -------
    float
        The sensitivity, in [0, 1].

    See Also
    --------
    specificity_score : The true negative rate.
    sklearn.metrics.recall_score : The function this one calls.

    Notes
    -----
    imbalanced-learn's ``sensitivity_score`` and ``specificity_score`` are
    not used: in imbalanced-learn 0.14 they have no `zero_division`, return
    0 for both rates when only the negative label is present, and weight
    the specificity wrongly (true negatives are counted as samples, not
    weights; imbalanced-learn issue #1180).

    Examples
    --------
    >>> from cxrlearn.metrics import sensitivity_score
    >>> y_true = ["PNEUMONIA", "PNEUMONIA", "PNEUMONIA", "NORMAL"]
    >>> y_pred = ["PNEUMONIA", "NORMAL", "PNEUMONIA", "PNEUMONIA"]
    >>> round(sensitivity_score(y_true, y_pred, pos_label="PNEUMONIA"), 4)
    0.6667

    It works as a scorer for model selection:

    >>> from sklearn.metrics import make_scorer
    >>> scorer = make_scorer(sensitivity_score, pos_label=1)
    """
    _check_binary_labels(y_true, y_pred, pos_label)
    kwargs = dict(sample_weight=sample_weight, zero_division=zero_division)
    return float(recall_score(y_true, y_pred, pos_label=pos_label, **kwargs))


@validate_params(_BINARY_RATE_CONSTRAINTS, prefer_skip_nested_validation=True)
def specificity_score(
    y_true, y_pred, *, pos_label=1, sample_weight=None, zero_division="warn"
):
    """Specificity (true negative rate, recall of the negative class).

    The fraction of healthy patients that the classifier leaves alone:
    ``tn / (tn + fp)``. Computed with :func:`sklearn.metrics.recall_score` on
    the "is not `pos_label`" indicator, so it only needs the positive label.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels (ints or strings, two classes at most).
    y_pred : array-like of shape (n_samples,)
        Predicted labels.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class; every other label is
        negative.
    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights.
    zero_division : {"warn", 0.0, 1.0, np.nan}, default="warn"
        Value returned when there is no negative sample, as in
        :func:`sklearn.metrics.recall_score`.

    Returns
    -------
    float
        The specificity, in [0, 1].

    See Also
    --------
    sensitivity_score : The true positive rate.

    Examples
    --------
    >>> from cxrlearn.metrics import specificity_score
    >>> y_true = ["NORMAL", "NORMAL", "NORMAL", "NORMAL", "PNEUMONIA"]
    >>> y_pred = ["NORMAL", "PNEUMONIA", "NORMAL", "NORMAL", "PNEUMONIA"]
    >>> specificity_score(y_true, y_pred, pos_label="PNEUMONIA")
    0.75

    >>> from sklearn.metrics import make_scorer
    >>> scorer = make_scorer(specificity_score, pos_label="PNEUMONIA")
    """
    _check_binary_labels(y_true, y_pred, pos_label)
    is_neg_true = column_or_1d(y_true) != pos_label
    is_neg_pred = column_or_1d(y_pred) != pos_label
    kwargs = dict(sample_weight=sample_weight, zero_division=zero_division)
    return float(recall_score(is_neg_true, is_neg_pred, pos_label=True, **kwargs))


def _negative_label(labels, pos_label, neg_label):
    """Work out the negative label from the labels present in `y_true`."""
    others = [label for label in labels if label != pos_label]
    if neg_label is not None:
        if others and others != [neg_label]:
            raise ValueError(f"neg_label={neg_label!r} but y_true holds {labels}.")
        return neg_label
    if others:
        return others[0]
    if isinstance(pos_label, (bool, np.bool_)):
        return not pos_label
    if isinstance(pos_label, numbers.Integral) and pos_label == 1:
        return 0
    raise ValueError(
        f"y_true only holds the positive class {pos_label!r}, so the negative "
        f"label cannot be inferred; pass neg_label=."
    )


@validate_params(
    {
        "y_true": ["array-like"],
        "y_score": ["array-like"],
        "pos_label": _LABEL,
        "threshold": [Real, None],
        "neg_label": _LABEL + [None],
        "y_pred": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def clinical_report(
    y_true, y_score, *, pos_label=1, threshold=0.5, neg_label=None, y_pred=None
):
    """Clinical summary of a binary classifier at one operating point.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, two classes at most (ints or strings).
    y_score : array-like of shape (n_samples,)
        Probability (or any score) of `pos_label`, e.g.
        ``clf.predict_proba(X)[:, 1]``.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class, e.g. ``"PNEUMONIA"``.
    threshold : float or None, default=0.5
        Samples with ``y_score >= threshold`` are predicted positive (the
        convention of :func:`sklearn.metrics.roc_curve` and
        :class:`sklearn.model_selection.FixedThresholdClassifier`). Choose it
        on validation data, e.g. with
        :func:`cxrlearn.threshold_for_sensitivity`. With `y_pred` given it is
        only reported (None: the classifier has no threshold, e.g. argmax).
    neg_label : int, str or bool, default=None
        The negative label. Inferred from `y_true` (the label that is not
        `pos_label`); only needed when `y_true` holds the positive class
        alone and `pos_label` is neither ``1`` nor a bool.
    y_pred : array-like of shape (n_samples,), default=None
        The labels the classifier itself predicted, e.g. ``clf.predict(X)``.
        When given, the confusion matrix and every rate come from these
        labels, not from thresholding `y_score`: a model's own decision
        (whatever its threshold means, e.g. a ``decision_function`` cut-off)
        is reported as it is made. `y_score` still gives ROC-AUC and
        average precision.

    Returns
    -------
    dict
        JSON-serialisable (plain floats, ints, strings and lists) with keys
        ``roc_auc``, ``average_precision``, ``accuracy``,
        ``balanced_accuracy``, ``precision``, ``recall``, ``sensitivity``
        (equal to ``recall``), ``specificity``, ``f1``, ``threshold``,
        ``n_samples``, ``prevalence`` (fraction of positives),
        ``confusion_matrix`` (``[[tn, fp], [fn, tp]]``) and ``labels``
        (``[neg_label, pos_label]``, the row and column order of the
        confusion matrix). Ratios whose denominator is zero (e.g. precision
        when nothing is predicted positive) are NaN. When `y_true` holds a
        single class, ``roc_auc`` and ``average_precision`` are NaN and an
        :class:`~sklearn.exceptions.UndefinedMetricWarning` is raised.

    Raises
    ------
    ValueError
        If `y_true` holds more than two classes (use
        :func:`multiclass_report`), if `pos_label` is not one of its labels,
        or if `y_score` is not 1-D.

    See Also
    --------
    multiclass_report : The same for three or more classes.
    format_report : Text rendering for the command line.

    Examples
    --------
    >>> from cxrlearn.metrics import clinical_report
    >>> y_true = ["NORMAL", "NORMAL", "PNEUMONIA", "PNEUMONIA", "PNEUMONIA"]
    >>> y_score = [0.1, 0.6, 0.4, 0.8, 0.9]
    >>> report = clinical_report(y_true, y_score, pos_label="PNEUMONIA")
    >>> report["labels"], report["confusion_matrix"]
    (['NORMAL', 'PNEUMONIA'], [[1, 1], [1, 2]])
    >>> round(report["sensitivity"], 4), report["specificity"]
    (0.6667, 0.5)
    >>> round(report["roc_auc"], 4)
    0.8333
    """
    y_true = column_or_1d(y_true)
    y_score = np.asarray(y_score)
    if y_score.ndim != 1:
        raise ValueError(
            f"y_score must be 1-D, the probability of pos_label (e.g. "
            f"predict_proba(X)[:, 1]); got shape {y_score.shape}. Use "
            f"multiclass_report for a (n_samples, n_classes) probability array."
        )
    y_score = y_score.astype(float)
    check_consistent_length(y_true, y_score)
    labels = [_to_python(label) for label in np.unique(y_true)]
    if len(labels) > 2:
        raise ValueError(
            f"clinical_report is for two classes but y_true holds {labels}; "
            f"use cxrlearn.metrics.multiclass_report for the multiclass task."
        )
    if len(labels) == 2 and pos_label not in labels:
        raise ValueError(f"pos_label={pos_label!r} is not one of the labels {labels}.")
    neg = _negative_label(labels, pos_label, neg_label)
    pos = _to_python(pos_label)
    if y_pred is None:
        if threshold is None:
            raise ValueError("threshold=None needs the classifier's own labels in y_pred.")
        y_pred = np.where(y_score >= threshold, pos, neg)
    else:
        y_pred = column_or_1d(y_pred)
        check_consistent_length(y_true, y_pred)
        unexpected = np.setdiff1d(y_pred, [neg, pos])
        if unexpected.size:
            raise ValueError(
                f"y_pred holds labels {unexpected.tolist()} besides {[neg, pos]}."
            )
    is_pos = y_true == pos_label

    if len(labels) == 2:
        roc_auc = float(roc_auc_score(is_pos, y_score))
        average_precision = float(average_precision_score(is_pos, y_score))
    else:
        warnings.warn(
            f"y_true holds a single class ({labels[0]!r}); roc_auc and "
            f"average_precision are undefined and reported as NaN.",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        roc_auc = average_precision = float("nan")

    binary = dict(pos_label=pos, zero_division=np.nan)
    with warnings.catch_warnings():
        # balanced_accuracy warns when y_pred holds a class absent from y_true;
        # the single-class case has been warned about above.
        warnings.simplefilter("ignore", UserWarning)
        balanced_accuracy = float(balanced_accuracy_score(y_true, y_pred))
    cm = confusion_matrix(y_true, y_pred, labels=[neg, pos]).astype(int)
    sensitivity = sensitivity_score(y_true, y_pred, pos_label=pos, zero_division=np.nan)
    return {
        "roc_auc": roc_auc,
        "average_precision": average_precision,
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": balanced_accuracy,
        "precision": float(precision_score(y_true, y_pred, **binary)),
        "recall": sensitivity,
        "sensitivity": sensitivity,
        "specificity": specificity_score(y_true, y_pred, **binary),
        "f1": float(f1_score(y_true, y_pred, **binary)),
        "threshold": None if threshold is None else float(threshold),
        "n_samples": int(len(y_true)),
        "prevalence": float(np.mean(is_pos)),
        "confusion_matrix": cm.tolist(),
        "labels": [neg, pos],
    }


@validate_params(
    {
        "y_true": ["array-like"],
        "proba": ["array-like"],
        "classes": ["array-like"],
        "y_pred": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def multiclass_report(y_true, proba, *, classes, y_pred=None):
    """Clinical summary of a multiclass classifier (e.g. normal/bacterial/viral).

    The predicted class is the column of `proba` with the highest
    probability, unless the classifier's own labels are given as `y_pred`.
    Per-class sensitivity, specificity and ROC-AUC treat that
    class as positive and every other class as negative (one-vs-rest).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    proba : array-like of shape (n_samples, n_classes)
        Class probabilities, rows summing to 1, e.g. ``clf.predict_proba(X)``.
    classes : array-like of shape (n_classes,)
        The label of each column of `proba`, e.g. ``clf.classes_``.
    y_pred : array-like of shape (n_samples,), default=None
        The labels the classifier predicted (``clf.predict(X)``); by default
        the most probable class of each row.

    Returns
    -------
    dict
        JSON-serialisable, with keys ``roc_auc_ovr`` (macro one-vs-rest
        ROC-AUC, :func:`sklearn.metrics.roc_auc_score` with
        ``multi_class="ovr"``), ``accuracy``, ``balanced_accuracy``,
        ``sensitivity``, ``specificity`` and ``roc_auc`` (dicts keyed by
        ``str(label)``), ``support`` (samples per class, same keys),
        ``n_samples``, ``confusion_matrix`` (rows: true, columns:
        predicted) and ``labels`` (their order). When a class is absent from
        `y_true` its sensitivity and ROC-AUC, and ``roc_auc_ovr``, are NaN
        (with an :class:`~sklearn.exceptions.UndefinedMetricWarning`).

    See Also
    --------
    clinical_report : The binary report, with a decision threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from cxrlearn.metrics import multiclass_report
    >>> classes = ["bacterial", "normal", "viral"]
    >>> y_true = ["normal", "bacterial", "viral", "viral"]
    >>> proba = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1],
    ...                   [0.5, 0.1, 0.4], [0.2, 0.1, 0.7]])
    >>> report = multiclass_report(y_true, proba, classes=classes)
    >>> report["confusion_matrix"]
    [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    >>> report["sensitivity"]
    {'bacterial': 1.0, 'normal': 1.0, 'viral': 0.5}
    >>> round(report["roc_auc_ovr"], 4)
    1.0
    """
    y_true = column_or_1d(y_true)
    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(classes)
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ValueError(
            f"proba must have shape (n_samples, {len(classes)}) to match "
            f"classes={classes.tolist()}; got shape {proba.shape}."
        )
    check_consistent_length(y_true, proba)
    unknown = np.setdiff1d(y_true, classes)
    if unknown.size:
        raise ValueError(
            f"y_true holds labels {unknown.tolist()} that are not in "
            f"classes={classes.tolist()}."
        )
    if y_pred is None:
        y_pred = classes[np.argmax(proba, axis=1)]
    else:
        y_pred = column_or_1d(y_pred)
        check_consistent_length(y_true, y_pred)
        if np.setdiff1d(y_pred, classes).size:
            raise ValueError(
                f"y_pred holds labels {np.setdiff1d(y_pred, classes).tolist()} that are "
                f"not in classes={classes.tolist()}."
            )
    keys = [str(label) for label in classes]
    present = np.isin(classes, y_true)

    per_class_auc = {}
    for key, label, column in zip(keys, classes, proba.T):
        is_label = y_true == label
        if is_label.all() or not is_label.any():
            per_class_auc[key] = float("nan")
        else:
            per_class_auc[key] = float(roc_auc_score(is_label, column))
    if present.all():
        roc_auc_ovr = float(
            roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
        )
    else:
        warnings.warn(
            f"Classes {classes[~present].tolist()} are absent from y_true; "
            f"their sensitivity and ROC-AUC, and roc_auc_ovr, are NaN.",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        roc_auc_ovr = float("nan")

    # One 2x2 matrix [[tn, fp], [fn, tp]] per class, one-vs-rest.
    mcm = multilabel_confusion_matrix(y_true, y_pred, labels=classes)
    tn, fp, fn, tp = mcm.reshape(-1, 4).T
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = tp / (tp + fn)
        specificity = tn / (tn + fp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        balanced_accuracy = float(balanced_accuracy_score(y_true, y_pred))
    cm = confusion_matrix(y_true, y_pred, labels=classes).astype(int)
    return {
        "roc_auc_ovr": roc_auc_ovr,
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": balanced_accuracy,
        "sensitivity": dict(zip(keys, map(float, sensitivity))),
        "specificity": dict(zip(keys, map(float, specificity))),
        "roc_auc": per_class_auc,
        "support": dict(zip(keys, map(int, tp + fn))),
        "n_samples": int(len(y_true)),
        "confusion_matrix": cm.tolist(),
        "labels": [_to_python(label) for label in classes],
    }


def _format_value(value, decimals):
    if value is None:  # e.g. the threshold of an argmax decision
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{value:.{decimals}f}"
    return str(value)


def _format_matrix(matrix, labels):
    names = [str(label) for label in labels]
    corner = "true \\ predicted"
    width = max(len(name) for name in names + [str(v) for row in matrix for v in row])
    first = max(len(corner), *(len(name) for name in names))
    lines = [corner.ljust(first) + "".join(f"  {name:>{width}}" for name in names)]
    for name, row in zip(names, matrix):
        lines.append(name.ljust(first) + "".join(f"  {v:>{width}}" for v in row))
    return lines


@validate_params(
    {"report": [Mapping], "decimals": [Interval(Integral, 0, None, closed="left")]},
    prefer_skip_nested_validation=True,
)
def format_report(report, *, decimals=4):
    """Render a report from :func:`clinical_report` or :func:`multiclass_report`.

    Parameters
    ----------
    report : dict
        The report to render.
    decimals : int, default=4
        Number of decimals for the metrics.

    Returns
    -------
    str
        A fixed-width, multi-line table: one metric per line, a per-class
        table for the multiclass report, then the confusion matrix with its
        labels (rows: true class, columns: predicted class).

    Examples
    --------
    >>> from cxrlearn.metrics import clinical_report, format_report
    >>> report = clinical_report([0, 0, 1, 1], [0.2, 0.7, 0.6, 0.9])
    >>> print(format_report(report))  # doctest: +NORMALIZE_WHITESPACE
    roc_auc              0.7500
    average_precision    0.8333
    accuracy             0.7500
    balanced_accuracy    0.7500
    precision            0.6667
    recall               1.0000
    sensitivity          1.0000
    specificity          0.5000
    f1                   0.8000
    threshold            0.5000
    n_samples            4
    prevalence           0.5000
    confusion_matrix (labels: [0, 1]; rows: true, columns: predicted)
    true \\ predicted  0  1
    0                 1  1
    1                 0  2
    """
    scalars = {
        key: value
        for key, value in report.items()
        if key not in ("confusion_matrix", "labels") and not isinstance(value, Mapping)
    }
    tables = {k: v for k, v in report.items() if isinstance(v, Mapping)}
    width = max(len(key) for key in report) + 2
    lines = [f"{k:<{width}} {_format_value(v, decimals)}" for k, v in scalars.items()]
    if tables:
        columns = list(tables)
        rows = list(next(iter(tables.values())))
        first = max(len("class"), *(len(str(row)) for row in rows)) + 2
        col = max(decimals + 4, *(len(name) for name in columns)) + 2
        lines.append("")
        lines.append("class".ljust(first) + "".join(f"{c:>{col}}" for c in columns))
        for row in rows:
            cells = "".join(
                f"{_format_value(tables[c].get(row, float('nan')), decimals):>{col}}"
                for c in columns
            )
            lines.append(str(row).ljust(first) + cells)
    if "confusion_matrix" in report:
        labels = report.get("labels", list(range(len(report["confusion_matrix"]))))
        if tables:
            lines.append("")
        lines.append(
            f"confusion_matrix (labels: {labels}; rows: true, columns: predicted)"
        )
        lines.extend(_format_matrix(report["confusion_matrix"], labels))
    return "\n".join(lines)


@validate_params(
    {
        "y_true": ["array-like"],
        "y_score": ["array-like"],
        "pos_label": _LABEL,
        "thresholds": [Mapping, "array-like", Real],
        "ax": "no_validation",
        "name": [str, None],
    },
    prefer_skip_nested_validation=True,
)
def plot_operating_points(
    y_true, y_score, *, pos_label=1, thresholds=(0.5,), ax=None, name=None
):
    """Plot the ROC curve with chosen operating points marked.

    The curve is drawn by :class:`sklearn.metrics.RocCurveDisplay`; each
    threshold adds one marker at its (1 - specificity, sensitivity) point.
    Requires matplotlib (imported here, not when :mod:`cxrlearn.metrics`
    is imported).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, two classes.
    y_score : array-like of shape (n_samples,)
        Probability (or score) of `pos_label`.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class.
    thresholds : sequence of float or mapping of str to float, default=(0.5,)
        The operating points to mark. A mapping names them in the legend,
        e.g. ``{"95% sensitivity": t95, "default": 0.5}``.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created when None.
    name : str, default=None
        Name of the classifier in the legend.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes with the ROC curve (first line) followed by one line per
        operating point.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from cxrlearn.metrics import plot_operating_points
    >>> ax = plot_operating_points(
    ...     [0, 0, 1, 1, 1], [0.1, 0.6, 0.4, 0.8, 0.9], thresholds=[0.5, 0.3]
    ... )
    >>> len(ax.lines)
    3
    """
    import matplotlib.pyplot as plt

    y_true = column_or_1d(y_true)
    y_score = column_or_1d(y_score).astype(float)
    if ax is None:
        _, ax = plt.subplots()
    display = RocCurveDisplay.from_predictions(
        y_true, y_score, pos_label=pos_label, ax=ax, name=name
    )
    if isinstance(thresholds, Mapping):
        points = list(thresholds.items())
    else:
        points = [(f"threshold {float(t):.3g}", t) for t in np.atleast_1d(thresholds)]
    is_pos = y_true == pos_label
    for label, threshold in points:
        predicted = y_score >= threshold
        sensitivity = sensitivity_score(is_pos, predicted, pos_label=True)
        specificity = specificity_score(is_pos, predicted, pos_label=True)
        display.ax_.plot(
            1 - specificity,
            sensitivity,
            marker="o",
            linestyle="none",
            label=f"{label} (sens {sensitivity:.2f}, spec {specificity:.2f})",
        )
    display.ax_.legend(loc="lower right")
    return display.ax_
