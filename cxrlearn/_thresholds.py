"""Operating points: decision thresholds chosen for a target sensitivity.

A screening classifier is deployed at the threshold that gives the
sensitivity (or specificity) the clinicians ask for, not at 0.5. This module
finds that threshold on held-out data, exactly, from
:func:`sklearn.metrics.roc_curve`, and wraps a classifier so that `predict`
uses it.

The threshold must be chosen on validation data (or out-of-fold predictions),
never on the test set: a threshold tuned on the data it is evaluated on
reports a sensitivity that new patients will not get.
"""

from numbers import Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    _fit_context,
    clone,
)
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import make_scorer, roc_curve
from sklearn.model_selection import StratifiedShuffleSplit, check_cv
from sklearn.utils import Bunch, _safe_indexing, get_tags
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    RealNotInt,
    validate_params,
)
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _raise_for_params,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_method_params,
    assert_all_finite,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    indexable,
)

from .metrics import sensitivity_score, specificity_score

__all__ = [
    "OperatingPointClassifier",
    "make_operating_point_scorer",
    "threshold_for_balanced_accuracy",
    "threshold_for_sensitivity",
    "threshold_for_specificity",
]

# Rates are ratios of counts; allow for the rounding of e.g. 1 - 0.1.
_RATE_TOL = 1e-12


_TARGET = Interval(Real, 0, 1, closed="right")
_LABEL = [Real, str, "boolean"]
_THRESHOLD_SEARCH_CONSTRAINTS = {
    "y_true": ["array-like"],
    "y_score": ["array-like"],
    "pos_label": _LABEL,
}


def _binary_roc(y_true, y_score, pos_label):
    """Validate binary inputs and return the un-thinned ROC curve."""
    y_true = column_or_1d(y_true)
    y_score = column_or_1d(y_score).astype(float)
    check_consistent_length(y_true, y_score)
    assert_all_finite(y_score, input_name="y_score")
    labels = np.unique(y_true).tolist()
    if len(labels) != 2:
        raise ValueError(
            f"Choosing a threshold needs both classes in y_true; it holds "
            f"{labels}. Use a validation set with positive and negative cases."
        )
    if pos_label not in labels:
        raise ValueError(f"pos_label={pos_label!r} is not one of the labels {labels}.")
    # drop_intermediate=False keeps every distinct score as a candidate: the
    # exact threshold may lie on a segment that the thinned curve drops.
    return roc_curve(y_true == pos_label, y_score, drop_intermediate=False)


@validate_params(
    {**_THRESHOLD_SEARCH_CONSTRAINTS, "target": [_TARGET]},
    prefer_skip_nested_validation=True,
)
def threshold_for_sensitivity(y_true, y_score, target, *, pos_label=1):
    """Largest threshold whose sensitivity on the given data is >= `target`.

    Predicting positive when ``y_score >= threshold``, the returned threshold
    meets the sensitivity target with the highest specificity possible: any
    higher threshold (the next distinct score up) misses the target.

    Choose the threshold on validation data or out-of-fold predictions,
    never on the test set, and report the test-set sensitivity it gives.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels of the validation samples; both classes must be present.
    y_score : array-like of shape (n_samples,)
        Probability (or score) of `pos_label`.
    target : float in (0, 1]
        The sensitivity to reach, e.g. ``0.95``.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class.

    Returns
    -------
    float
        One of the values of `y_score`.

    Raises
    ------
    ValueError
        If `target` is not in (0, 1], or `y_true` does not hold exactly two
        classes including `pos_label`.

    See Also
    --------
    threshold_for_specificity : The symmetric search.
    OperatingPointClassifier : A classifier that applies such a threshold.

    Examples
    --------
    >>> from cxrlearn import threshold_for_sensitivity
    >>> y_val = [0, 0, 0, 1, 0, 1, 1, 1]
    >>> score = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    >>> threshold_for_sensitivity(y_val, score, 0.75)
    0.6
    >>> threshold_for_sensitivity(y_val, score, 1.0)
    0.4
    """
    _, tpr, thresholds = _binary_roc(y_true, y_score, pos_label)
    # tpr is non-decreasing as the threshold decreases: take the first hit.
    index = np.flatnonzero(tpr >= target - _RATE_TOL)[0]
    return float(thresholds[index])


@validate_params(
    {**_THRESHOLD_SEARCH_CONSTRAINTS, "target": [_TARGET]},
    prefer_skip_nested_validation=True,
)
def threshold_for_specificity(y_true, y_score, target, *, pos_label=1):
    """Smallest threshold whose specificity on the given data is >= `target`.

    Predicting positive when ``y_score >= threshold``, the returned threshold
    meets the specificity target with the highest sensitivity possible: any
    lower threshold (the next distinct score down) misses the target. When
    even flagging only the top-scored sample breaks the target, the result
    is ``inf`` (nothing is predicted positive).

    Choose the threshold on validation data or out-of-fold predictions,
    never on the test set.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels of the validation samples; both classes must be present.
    y_score : array-like of shape (n_samples,)
        Probability (or score) of `pos_label`.
    target : float in (0, 1]
        The specificity to keep, e.g. ``0.9``.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class.

    Returns
    -------
    float
        One of the values of `y_score`, or ``inf``.

    Raises
    ------
    ValueError
        If `target` is not in (0, 1], or `y_true` does not hold exactly two
        classes including `pos_label`.

    See Also
    --------
    threshold_for_sensitivity : The symmetric search.

    Examples
    --------
    >>> from cxrlearn import threshold_for_specificity
    >>> y_val = ["NORMAL", "NORMAL", "NORMAL", "PNEUMONIA", "NORMAL", "PNEUMONIA"]
    >>> score = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    >>> threshold_for_specificity(y_val, score, 0.75, pos_label="PNEUMONIA")
    0.4
    """
    fpr, _, thresholds = _binary_roc(y_true, y_score, pos_label)
    # specificity is non-increasing as the threshold decreases: take the last hit.
    index = np.flatnonzero(1.0 - fpr >= target - _RATE_TOL)[-1]
    return float(thresholds[index])


@validate_params(_THRESHOLD_SEARCH_CONSTRAINTS, prefer_skip_nested_validation=True)
def threshold_for_balanced_accuracy(y_true, y_score, *, pos_label=1):
    """Threshold with the best balanced accuracy on the given data.

    Balanced accuracy is the mean of sensitivity and specificity, so this
    is the threshold that maximises Youden's J statistic
    (``sensitivity + specificity - 1``): the point of the ROC curve farthest
    above the diagonal. Unlike plain accuracy it does not depend on the
    class mix of the validation set, so the threshold carries over to
    patients with another prevalence of pneumonia. The search is exact
    over every distinct score (:func:`sklearn.metrics.roc_curve`); among
    equally good thresholds the highest (the most specific) is returned.

    Choose the threshold on validation data or out-of-fold predictions,
    never on the test set: the balanced accuracy it reaches on the data it
    was chosen on is optimistic.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels of the validation samples; both classes must be present.
    y_score : array-like of shape (n_samples,)
        Probability (or score) of `pos_label`.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class.

    Returns
    -------
    float
        One of the values of `y_score`.

    Raises
    ------
    ValueError
        If `y_true` does not hold exactly two classes including `pos_label`.

    See Also
    --------
    threshold_for_sensitivity : The threshold for a clinical sensitivity.
    sklearn.model_selection.TunedThresholdClassifierCV : Grid search of a
        threshold for any scorer (``scoring="balanced_accuracy"``).

    Examples
    --------
    >>> from cxrlearn import threshold_for_balanced_accuracy
    >>> y_val = [0, 0, 0, 1, 0, 1, 1, 1]
    >>> score = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    >>> threshold_for_balanced_accuracy(y_val, score)
    0.6
    """
    fpr, tpr, thresholds = _binary_roc(y_true, y_score, pos_label)
    # thresholds decrease along the curve: argmax keeps the highest of ties
    index = int(np.argmax(tpr - fpr))
    return float(thresholds[index])


def _check_targets(target_sensitivity, target_specificity):
    """The one target set: what `validate_params` cannot express."""
    if (target_sensitivity is None) == (target_specificity is None):
        raise ValueError(
            "Set exactly one of target_sensitivity and target_specificity; got "
            f"target_sensitivity={target_sensitivity!r}, "
            f"target_specificity={target_specificity!r}."
        )
    if target_sensitivity is not None:
        return "sensitivity", float(target_sensitivity)
    return "specificity", float(target_specificity)


def _operating_point_score(
    y_true, y_pred, *, target_sensitivity=None, target_specificity=None, pos_label=1
):
    """Objective for a constrained operating point, higher is better.

    With a sensitivity target: the specificity when the target is met, in
    [0, 1]; otherwise ``sensitivity - target - 1``, in [-2, -1). Any
    threshold that meets the target therefore outranks every one that does
    not, and among those that miss it, closer is better. Symmetric with a
    specificity target.
    """
    kind, target = _check_targets(target_sensitivity, target_specificity)
    metrics = {"sensitivity": sensitivity_score, "specificity": specificity_score}
    other = "specificity" if kind == "sensitivity" else "sensitivity"
    kwargs = dict(pos_label=pos_label, zero_division=0.0)
    constrained = metrics[kind](y_true, y_pred, **kwargs)
    if constrained >= target - _RATE_TOL:
        return metrics[other](y_true, y_pred, **kwargs)
    return constrained - target - 1.0


@validate_params(
    {
        "target_sensitivity": [_TARGET, None],
        "target_specificity": [_TARGET, None],
        "pos_label": _LABEL,
    },
    prefer_skip_nested_validation=True,
)
def make_operating_point_scorer(
    *, target_sensitivity=None, target_specificity=None, pos_label=1
):
    """Scorer: best specificity subject to a sensitivity target (or vice versa).

    Meant as the `scoring` of
    :class:`sklearn.model_selection.TunedThresholdClassifierCV`, the
    scikit-learn-native way to tune a threshold. The score is the
    specificity when the sensitivity target is met, and
    ``sensitivity - target - 1`` (below -1) when it is not, so that any
    threshold meeting the target wins. Set exactly one target.

    ``TunedThresholdClassifierCV`` evaluates a grid of thresholds
    (`thresholds=100` by default) and, with several folds, averages the
    interpolated per-fold curves, so the target holds approximately on the
    tuning data; :class:`OperatingPointClassifier` pools the held-out
    predictions and picks the exact threshold instead.

    Parameters
    ----------
    target_sensitivity : float in (0, 1], default=None
        Sensitivity to reach; specificity is maximised.
    target_specificity : float in (0, 1], default=None
        Specificity to keep; sensitivity is maximised.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class.

    Returns
    -------
    scorer : callable
        A scorer made by :func:`sklearn.metrics.make_scorer`.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import TunedThresholdClassifierCV
    >>> from cxrlearn import make_operating_point_scorer
    >>> from cxrlearn.metrics import sensitivity_score
    >>> X, y = make_classification(n_samples=600, random_state=0)
    >>> fitted = LogisticRegression().fit(X[:300], y[:300])
    >>> tuned = TunedThresholdClassifierCV(
    ...     FrozenEstimator(fitted),
    ...     scoring=make_operating_point_scorer(target_sensitivity=0.9),
    ...     cv=2,
    ... ).fit(X[300:], y[300:])
    >>> sensitivity_score(y[300:], tuned.predict(X[300:])) >= 0.9
    True
    """
    _check_targets(target_sensitivity, target_specificity)
    return make_scorer(
        _operating_point_score,
        target_sensitivity=target_sensitivity,
        target_specificity=target_specificity,
        pos_label=pos_label,
    )


def _estimator_has(attr):
    def check(self):
        getattr(getattr(self, "estimator_", self.estimator), attr)
        return True

    return check


def _positive_proba(model, X, pos_label):
    classes = np.asarray(model.classes_)
    columns = np.flatnonzero(classes == pos_label)
    if columns.size == 0:
        raise ValueError(
            f"pos_label={pos_label!r} is not among the classes {classes.tolist()} "
            f"of the fitted estimator."
        )
    return model.predict_proba(X)[:, columns[0]]


class OperatingPointClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Binary classifier that predicts at a target sensitivity or specificity.

    `fit` trains `estimator` with cross-validation, pools the held-out
    probabilities of the positive class, picks the threshold that meets the
    target exactly on them (:func:`threshold_for_sensitivity` or
    :func:`threshold_for_specificity`) and, by default, refits `estimator`
    on all the data. `predict` returns `pos_label` when
    ``predict_proba(X)[:, pos] >= threshold_``; `predict_proba` is the
    estimator's, unchanged.

    For an already-trained model (e.g. a CNN trained once), wrap it in
    :class:`sklearn.frozen.FrozenEstimator`: it is then never refit, `cv`
    and `refit` are ignored, and all the data passed to `fit` (a validation
    set, disjoint from the training set) is used to choose the threshold.

    Unlike :class:`sklearn.model_selection.TunedThresholdClassifierCV`
    (which it resembles, see :func:`make_operating_point_scorer`), the
    threshold is not taken from a grid nor from averaged per-fold curves:
    it is the exact optimum on the pooled held-out predictions, so the
    reported ``validation_sensitivity_`` really is >= the target.

    Metadata is routed as in scikit-learn's meta-estimators: ``groups``
    passed to `fit` goes to the `cv` splitter; with metadata routing
    enabled (``sklearn.set_config(enable_metadata_routing=True)``),
    ``sample_weight`` and other metadata go to the `fit` of `estimator`
    when it requests them (``estimator.set_fit_request(sample_weight=True)``),
    see :meth:`get_metadata_routing`.

    Parameters
    ----------
    estimator : estimator object
        A classifier with `fit` and `predict_proba`, or a
        :class:`~sklearn.frozen.FrozenEstimator` wrapping a fitted one.
    target_sensitivity : float in (0, 1], default=None
        Sensitivity to reach on held-out data; specificity is maximised.
    target_specificity : float in (0, 1], default=None
        Specificity to keep on held-out data; sensitivity is maximised. Set
        exactly one of the two targets.
    pos_label : int, str or bool, default=None
        The positive (disease) class; None means the greater label,
        ``classes_[1]`` (e.g. ``1`` or ``"PNEUMONIA"``).
    cv : int, float, cross-validation generator or iterable, default=None
        How the held-out predictions are made: None for 5-fold, an int for
        that many :class:`~sklearn.model_selection.StratifiedKFold` folds, a
        float in (0, 1) for one stratified split holding out that fraction,
        or a splitter (e.g. ``GroupKFold`` with ``groups=`` patient ids in
        `fit`, so that no patient is in both parts). Ignored for a
        :class:`~sklearn.frozen.FrozenEstimator`.
    refit : bool, default=True
        Whether to refit `estimator` on all the data once the threshold is
        chosen. ``False`` keeps the model trained on the training part of a
        single split (it needs a `cv` with one split).
    random_state : int, RandomState instance or None, default=None
        Seeds the split when `cv` is a float.

    Attributes
    ----------
    estimator_ : estimator object
        The fitted classifier used by `predict` and `predict_proba`.
    threshold_ : float
        The decision threshold on the probability of `pos_label_`.
    pos_label_ : int, str or bool
        The positive class.
    classes_ : ndarray of shape (2,)
        The class labels.
    validation_sensitivity_ : float
        Sensitivity at `threshold_` on the held-out predictions.
    validation_specificity_ : float
        Specificity at `threshold_` on the held-out predictions.
    n_features_in_ : int
        Number of features seen by `estimator_`, when it records it.

    See Also
    --------
    threshold_for_sensitivity : The threshold search on given scores.
    sklearn.model_selection.TunedThresholdClassifierCV : Grid-based tuning
        of a threshold for any scorer.
    sklearn.model_selection.FixedThresholdClassifier : A given threshold.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from cxrlearn import OperatingPointClassifier
    >>> X, y = make_classification(n_samples=500, random_state=0)
    >>> clf = OperatingPointClassifier(
    ...     LogisticRegression(), target_sensitivity=0.95, cv=5
    ... ).fit(X, y)
    >>> clf.validation_sensitivity_ >= 0.95
    True
    >>> bool(clf.threshold_ < 0.5)
    True

    An already-trained model, threshold chosen on a validation set:

    >>> from sklearn.frozen import FrozenEstimator
    >>> fitted = LogisticRegression().fit(X[:250], y[:250])
    >>> clf = OperatingPointClassifier(
    ...     FrozenEstimator(fitted), target_sensitivity=0.95
    ... ).fit(X[250:], y[250:])
    >>> clf.estimator_.estimator is fitted
    True
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict_proba"])],
        "target_sensitivity": [Interval(Real, 0, 1, closed="right"), None],
        "target_specificity": [Interval(Real, 0, 1, closed="right"), None],
        "pos_label": [Real, str, "boolean", None],
        "cv": ["cv_object", Interval(RealNotInt, 0.0, 1.0, closed="neither")],
        "refit": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator,
        *,
        target_sensitivity=None,
        target_specificity=None,
        pos_label=None,
        cv=None,
        refit=True,
        random_state=None,
    ):
        self.estimator = estimator
        self.target_sensitivity = target_sensitivity
        self.target_specificity = target_specificity
        self.pos_label = pos_label
        self.cv = cv
        self.refit = refit
        self.random_state = random_state

    def _check_cv(self, y):
        if isinstance(self.cv, Real) and 0 < self.cv < 1:
            return StratifiedShuffleSplit(
                n_splits=1, test_size=self.cv, random_state=self.random_state
            )
        return check_cv(self.cv, y, classifier=True)

    def _route_fit_params(self, params):
        """Metadata of `fit` per consumer, like scikit-learn's meta-estimators.

        With metadata routing enabled, scikit-learn's ``process_routing``
        sends each item where `get_metadata_routing` says.
        Without it, only ``groups`` is accepted (it goes to the splitter, as
        in :class:`~sklearn.model_selection.GridSearchCV`); anything else
        raises, as in
        :class:`~sklearn.model_selection.TunedThresholdClassifierCV`.
        """
        if _routing_enabled():
            return process_routing(self, "fit", **params)
        params = dict(params)
        groups = params.pop("groups", None)
        _raise_for_params(params, self, "fit")
        return Bunch(
            estimator=Bunch(fit={}), splitter=Bunch(split={"groups": groups})
        )

    def _held_out_scores(self, X, y, routed_params):
        """Fit `estimator_` and return (y, score of the positive class) held out.

        The folds are fitted here rather than by
        :func:`sklearn.model_selection.cross_val_predict`: with
        ``method="predict_proba"`` that function fits each fold on
        label-encoded targets (0, 1, ...), which breaks estimators whose
        parameters name the classes (e.g. a `class_weight` dict keyed by
        ``"PNEUMONIA"``); it also refuses the single split of a float `cv`
        and does not return the fold model that ``refit=False`` keeps. The
        loop follows :class:`~sklearn.model_selection.TunedThresholdClassifierCV`
        (metadata sliced per fold by ``_check_method_params``).
        """
        fit_params = routed_params.estimator.fit
        if isinstance(self.estimator, FrozenEstimator):
            self.estimator_ = self.estimator.fit(X, y, **fit_params)
            return y, _positive_proba(self.estimator_, X, self.pos_label_)
        cv = self._check_cv(y)
        splits = list(cv.split(X, y, **routed_params.splitter.split))
        if not self.refit and len(splits) != 1:
            raise ValueError(
                f"refit=False needs a cv with a single split (e.g. cv=0.2); "
                f"this cv gives {len(splits)} splits."
            )
        held_out_y, held_out_score = [], []
        for train, val in splits:
            model = clone(self.estimator).fit(
                _safe_indexing(X, train),
                y[train],
                **_check_method_params(X, fit_params, indices=train),
            )
            held_out_y.append(y[val])
            held_out_score.append(
                _positive_proba(model, _safe_indexing(X, val), self.pos_label_)
            )
        if self.refit:
            self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        else:
            self.estimator_ = model
        return np.concatenate(held_out_y), np.concatenate(held_out_score)

    @_fit_context(
        # the estimator is validated when it is fitted
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y, **params):
        """Fit the estimator and choose the threshold on held-out predictions.

        Parameters
        ----------
        X : array-like or list
            Training samples, in any form `estimator` accepts (e.g. image
            paths or an image array); only indexed here, never converted.
        y : array-like of shape (n_samples,)
            Binary labels.
        **params : dict
            Metadata, as in scikit-learn's meta-estimators:

            - ``groups`` : array-like of shape (n_samples,), group labels
              (e.g. patient ids) for a group-aware `cv` splitter such as
              :class:`~sklearn.model_selection.GroupKFold`. Without metadata
              routing it always goes to the splitter (a splitter that takes
              no groups ignores it); with routing it goes where it is
              requested (``GroupKFold`` requests it by default).
            - anything else, e.g. ``sample_weight``, needs metadata routing
              (``sklearn.set_config(enable_metadata_routing=True)``) and is
              passed to the `fit` of `estimator` that requests it (e.g.
              ``estimator.set_fit_request(sample_weight=True)``), on every
              fold and on the refit, sliced to the samples of each fit.
              Without routing it raises, as in
              :class:`~sklearn.model_selection.TunedThresholdClassifierCV`.

            The threshold itself is chosen on unweighted held-out
            predictions.

        Returns
        -------
        self : OperatingPointClassifier
            The fitted classifier.

        Raises
        ------
        ValueError
            If `y` does not hold two classes, `pos_label` is not one of them,
            not exactly one target is set, or metadata other than ``groups``
            is passed without metadata routing.
        """
        kind, target = _check_targets(
            self.target_sensitivity, self.target_specificity
        )
        check_classification_targets(y)
        # Lists, arrays and data frames are kept as they are (only indexed).
        X, y = indexable(X, column_or_1d(y, warn=True))
        routed_params = self._route_fit_params(params)
        classes = np.unique(y)
        if len(classes) != 2:
            raise ValueError(
                f"Only binary classification is supported: y must hold two "
                f"classes but holds {len(classes)} "
                f"({'one class' if len(classes) == 1 else 'classes'} "
                f"{classes.tolist()})."
            )
        if self.pos_label is None:
            self.pos_label_ = classes.tolist()[1]
        elif self.pos_label in classes.tolist():
            self.pos_label_ = self.pos_label
        else:
            raise ValueError(
                f"pos_label={self.pos_label!r} is not one of the classes "
                f"{classes.tolist()}."
            )
        y_val, score = self._held_out_scores(X, y, routed_params)
        self.classes_ = np.asarray(self.estimator_.classes_)
        if not np.isin(classes, self.classes_).all():
            raise ValueError(
                f"y holds classes {classes.tolist()} but the estimator knows "
                f"{self.classes_.tolist()}."
            )
        search = {
            "sensitivity": threshold_for_sensitivity,
            "specificity": threshold_for_specificity,
        }[kind]
        self.threshold_ = search(y_val, score, target, pos_label=self.pos_label_)
        is_pos, flagged = y_val == self.pos_label_, score >= self.threshold_
        self.validation_sensitivity_ = sensitivity_score(is_pos, flagged)
        self.validation_specificity_ = specificity_score(is_pos, flagged)
        return self

    def get_metadata_routing(self):
        """Get metadata routing of this object.

        `fit` routes metadata to the `fit` of `estimator` and to the `split`
        of `cv`, as :class:`~sklearn.model_selection.TunedThresholdClassifierCV`
        does; see the metadata routing page of the scikit-learn User Guide
        (https://scikit-learn.org/stable/metadata_routing.html).

        Returns
        -------
        routing : MetadataRouter
            A :class:`~sklearn.utils.metadata_routing.MetadataRouter`
            encapsulating routing information.
        """
        return (
            MetadataRouter(owner=self)
            .add(
                estimator=self.estimator,
                method_mapping=MethodMapping().add(caller="fit", callee="fit"),
            )
            .add(
                splitter=self.cv,
                method_mapping=MethodMapping().add(caller="fit", callee="split"),
            )
        )

    def predict(self, X):
        """Predict `pos_label_` where its probability is >= `threshold_`.

        Parameters
        ----------
        X : array-like or list
            Samples, in any form `estimator_` accepts.

        Returns
        -------
        ndarray of shape (n_samples,)
            Predicted labels.
        """
        check_is_fitted(self)
        score = _positive_proba(self.estimator_, X, self.pos_label_)
        positive = score >= self.threshold_
        pos_index = np.flatnonzero(self.classes_ == self.pos_label_)[0]
        return self.classes_[np.where(positive, pos_index, 1 - pos_index)]

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of `estimator_`, unchanged by the threshold.

        Parameters
        ----------
        X : array-like or list
            Samples, in any form `estimator_` accepts.

        Returns
        -------
        ndarray of shape (n_samples, 2)
            Probabilities, columns in the order of `classes_`.
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log of the class probabilities of `estimator_`.

        Parameters
        ----------
        X : array-like or list
            Samples, in any form `estimator_` accepts.

        Returns
        -------
        ndarray of shape (n_samples, 2)
            Log-probabilities, columns in the order of `classes_`.
        """
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    def _fitted_estimator_attribute(self, name):
        try:
            check_is_fitted(self)
        except NotFittedError as exc:
            raise AttributeError(
                f"{type(self).__name__} object has no attribute {name!r}."
            ) from exc
        return getattr(self.estimator_, name)

    @property
    def n_features_in_(self):
        """Number of features seen by `estimator_` during fit."""
        return self._fitted_estimator_attribute("n_features_in_")

    @property
    def feature_names_in_(self):
        """Feature names seen by `estimator_` during fit, when it has any."""
        return self._fitted_estimator_attribute("feature_names_in_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        estimator_tags = get_tags(self.estimator)
        tags.classifier_tags.multi_class = False
        tags.input_tags = estimator_tags.input_tags
        return tags
