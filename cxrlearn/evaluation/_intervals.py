"""Confidence intervals for a classifier's metrics, and paired comparisons.

Two methods, each where it is the standard:

* **DeLong** for ROC-AUC: the variance of the Mann-Whitney statistic from
  its structural components (DeLong, DeLong & Clarke-Pearson 1988),
  computed with the O(n log n) algorithm of Sun & Xu (2014) on
  :func:`scipy.stats.rankdata` midranks. It gives the interval of one AUC
  and the paired test of two AUCs measured on the same images.
* **Stratified bootstrap** for everything else (average precision, and
  sensitivity, specificity, accuracy, PPV and NPV at the operating point),
  and for ROC-AUC too. The resamples keep the number of positive and
  negative units fixed (stratified), and the unit is the *patient* when
  ``groups`` are given: all the images of a drawn patient come together,
  so that a patient's correlated images do not pass for independent
  evidence.

Why the resampling is written here: :func:`scipy.stats.bootstrap` resamples
observations independently; it has no stratification and no cluster
(patient) resampling. A resample is represented by the number of times each
image is drawn, and the metrics are computed for many resamples at once from
these counts used as sample weights; the tests check every metric against
:mod:`sklearn.metrics` called with the same weights.
"""

import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from scipy import stats
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import check_consistent_length, column_or_1d

__all__ = [
    "BootstrapResult",
    "DeLongResult",
    "DeLongTestResult",
    "MetricInterval",
    "bootstrap_metrics",
    "delong_roc_auc",
    "delong_roc_test",
    "paired_bootstrap",
]

#: The metrics of :func:`bootstrap_metrics`, in report order.
METRICS = (
    "roc_auc",
    "average_precision",
    "sensitivity",
    "specificity",
    "accuracy",
    "ppv",
    "npv",
)

_LABEL = [Real, str, "boolean"]
_LEVEL = [Interval(Real, 0, 1, closed="neither")]
# Resamples processed together: bounds the memory of the (chunk, n) weights.
_CHUNK_CELLS = 4_000_000


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _binary_target(y_true, pos_label, *, what="y_true"):
    """Boolean "is positive" array, with clear errors for non-binary input."""
    y_true = column_or_1d(y_true)
    labels = [_plain(v) for v in np.unique(y_true)]
    if len(labels) > 2:
        raise ValueError(
            f"{what} must hold two classes, got {len(labels)}: {labels}. For more "
            f"classes, compute one-vs-rest intervals on (y_true == label)."
        )
    if pos_label not in labels:
        raise ValueError(
            f"pos_label={pos_label!r} is not one of the labels of {what}: {labels}. "
            f"Pass the label of the disease class, e.g. pos_label={labels[-1]!r}."
        )
    is_pos = y_true == pos_label
    if is_pos.all() or not is_pos.any():
        raise ValueError(f"{what} must hold both classes; it holds only {labels}.")
    return is_pos


def _scores(y_score, n, what="y_score"):
    score = column_or_1d(y_score).astype(float)
    if len(score) != n:
        raise ValueError(f"{what} has {len(score)} values but y_true has {n}.")
    if not np.isfinite(score).all():
        raise ValueError(f"{what} holds NaN or infinite values.")
    return score


# --------------------------------------------------------------------- DeLong


def _delong(is_pos, scores):
    """AUCs and their DeLong covariance for k score vectors (fast algorithm).

    Sun & Xu (2014): with midranks ``tz`` in the pooled sample and ``tx``,
    ``ty`` within the positives and the negatives, the structural
    components are ``v10 = (tz[pos] - tx) / n`` and
    ``v01 = 1 - (tz[neg] - ty) / m``.
    """
    scores = np.atleast_2d(scores)
    pos, neg = scores[:, is_pos], scores[:, ~is_pos]
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        raise ValueError(
            f"DeLong's variance needs at least two positive and two negative "
            f"samples; got {m} positive and {n} negative."
        )
    tx = stats.rankdata(pos, axis=1)
    ty = stats.rankdata(neg, axis=1)
    tz = stats.rankdata(np.hstack([pos, neg]), axis=1)
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1) / (2 * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1 - (tz[:, m:] - ty) / m
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def _z(confidence_level):
    return float(stats.norm.ppf(0.5 + confidence_level / 2))


@dataclass(frozen=True)
class DeLongResult:
    """ROC-AUC with its DeLong variance and confidence interval.

    Attributes
    ----------
    auc : float
        The ROC-AUC (the Mann-Whitney statistic, ties counted one half).
    variance : float
        DeLong's estimate of its variance.
    low, high : float
        The confidence interval ``auc -/+ z * sqrt(variance)``, clipped to
        [0, 1].
    confidence_level : float
        Coverage of the interval, e.g. 0.95.
    n_positive, n_negative : int
        Number of positive and negative samples.
    """

    auc: float
    variance: float
    low: float
    high: float
    confidence_level: float
    n_positive: int
    n_negative: int

    @property
    def standard_error(self):
        """The square root of `variance`."""
        return math.sqrt(self.variance)

    def to_dict(self):
        """The fields as a JSON-serialisable dictionary."""
        return {**self.__dict__, "standard_error": self.standard_error}


@dataclass(frozen=True)
class DeLongTestResult:
    """Paired DeLong comparison of two ROC-AUCs measured on the same samples.

    Attributes
    ----------
    auc_a, auc_b : float
        The two ROC-AUCs.
    difference : float
        ``auc_a - auc_b``.
    variance : float
        DeLong's variance of the difference (the covariance of the two AUCs
        included).
    low, high : float
        Confidence interval of the difference.
    statistic : float
        ``difference / sqrt(variance)``, standard normal under the null
        hypothesis of equal AUCs.
    pvalue : float
        Two-sided p-value.
    confidence_level : float
        Coverage of the interval.
    """

    auc_a: float
    auc_b: float
    difference: float
    variance: float
    low: float
    high: float
    statistic: float
    pvalue: float
    confidence_level: float

    def to_dict(self):
        """The fields as a JSON-serialisable dictionary."""
        return dict(self.__dict__)


@validate_params(
    {
        "y_true": ["array-like"],
        "y_score": ["array-like"],
        "pos_label": _LABEL,
        "confidence_level": _LEVEL,
    },
    prefer_skip_nested_validation=True,
)
def delong_roc_auc(y_true, y_score, *, pos_label=1, confidence_level=0.95):
    """ROC-AUC with DeLong's variance and a normal confidence interval.

    The variance is DeLong, DeLong & Clarke-Pearson's (1988) nonparametric
    estimate from the structural components of the Mann-Whitney statistic,
    computed in O(n log n) with the algorithm of Sun & Xu (2014); the
    interval is ``auc -/+ z * sqrt(variance)``, clipped to [0, 1] (as in the
    R package pROC).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, two classes.
    y_score : array-like of shape (n_samples,)
        Score of `pos_label` (a probability or any monotone score), e.g.
        ``clf.predict_proba(X)[:, 1]``.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class, e.g. ``"PNEUMONIA"``.
    confidence_level : float in (0, 1), default=0.95
        Coverage of the interval.

    Returns
    -------
    result : DeLongResult
        ``auc``, ``variance``, ``low``, ``high`` (and ``standard_error``,
        ``to_dict()``).

    Raises
    ------
    ValueError
        If `y_true` does not hold two classes with two samples each at
        least, or `pos_label` is not one of them.

    See Also
    --------
    delong_roc_test : Paired comparison of two AUCs.
    bootstrap_metrics : Bootstrap intervals, by patient when images are
        grouped.

    Notes
    -----
    DeLong's variance treats the samples as independent. When a patient
    contributes several images, read the patient-level bootstrap interval
    (:func:`bootstrap_metrics` with ``groups``) instead.

    References
    ----------
    E. R. DeLong, D. M. DeLong and D. L. Clarke-Pearson, "Comparing the
    areas under two or more correlated receiver operating characteristic
    curves: a nonparametric approach", Biometrics 44(3), 837-845, 1988.

    X. Sun and W. Xu, "Fast implementation of DeLong's algorithm for
    comparing the areas under correlated receiver operating characteristic
    curves", IEEE Signal Processing Letters 21(11), 1389-1393, 2014.

    Examples
    --------
    >>> from cxrlearn.evaluation import delong_roc_auc
    >>> y_true = [0, 0, 0, 0, 1, 1, 1, 1]
    >>> y_score = [0.1, 0.3, 0.4, 0.8, 0.35, 0.6, 0.7, 0.9]
    >>> result = delong_roc_auc(y_true, y_score)
    >>> round(result.auc, 4), round(result.standard_error, 4)
    (0.75, 0.2041)
    >>> round(result.low, 3), round(result.high, 3)
    (0.35, 1.0)
    """
    is_pos = _binary_target(y_true, pos_label)
    score = _scores(y_score, len(is_pos))
    aucs, cov = _delong(is_pos, score)
    auc, var = float(aucs[0]), float(cov[0, 0])
    half = _z(confidence_level) * math.sqrt(var)
    return DeLongResult(
        auc=auc,
        variance=var,
        low=max(0.0, auc - half),
        high=min(1.0, auc + half),
        confidence_level=float(confidence_level),
        n_positive=int(is_pos.sum()),
        n_negative=int((~is_pos).sum()),
    )


@validate_params(
    {
        "y_true": ["array-like"],
        "score_a": ["array-like"],
        "score_b": ["array-like"],
        "pos_label": _LABEL,
        "confidence_level": _LEVEL,
    },
    prefer_skip_nested_validation=True,
)
def delong_roc_test(y_true, score_a, score_b, *, pos_label=1, confidence_level=0.95):
    """Paired DeLong test: do two models have the same ROC-AUC on these images?

    For "is the new recipe really better": both models score the *same*
    images, so their AUCs are correlated; DeLong's covariance accounts for
    it, which makes the paired test much more powerful than comparing two
    separate intervals.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, two classes.
    score_a, score_b : array-like of shape (n_samples,)
        The two models' scores of `pos_label` on the same samples, in the
        same order.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class.
    confidence_level : float in (0, 1), default=0.95
        Coverage of the interval of the difference.

    Returns
    -------
    result : DeLongTestResult
        ``auc_a``, ``auc_b``, ``difference`` (a - b), its ``variance`` and
        interval ``low``, ``high``, the z ``statistic`` and the two-sided
        ``pvalue``. Identical scores give ``statistic=0`` and ``pvalue=1``.

    See Also
    --------
    delong_roc_auc : The interval of one AUC.
    paired_bootstrap : Paired comparison of the other metrics.

    Examples
    --------
    >>> import numpy as np
    >>> from cxrlearn.evaluation import delong_roc_test
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 100)
    >>> signal = y + rng.normal(size=200)
    >>> new = signal + 0.3 * rng.normal(size=200)   # the better model
    >>> old = signal + 1.5 * rng.normal(size=200)
    >>> test = delong_roc_test(y, new, old)
    >>> bool(test.difference > 0), bool(test.pvalue < 0.05)
    (True, True)
    """
    is_pos = _binary_target(y_true, pos_label)
    a = _scores(score_a, len(is_pos), "score_a")
    b = _scores(score_b, len(is_pos), "score_b")
    aucs, cov = _delong(is_pos, np.vstack([a, b]))
    diff = float(aucs[0] - aucs[1])
    var = float(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0))
    if var > 0:
        statistic = diff / math.sqrt(var)
        pvalue = float(2 * stats.norm.sf(abs(statistic)))
    else:  # the same ranking twice: no evidence of a difference
        statistic = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        pvalue = 1.0 if diff == 0 else 0.0
    half = _z(confidence_level) * math.sqrt(var)
    return DeLongTestResult(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        difference=diff,
        variance=var,
        low=diff - half,
        high=diff + half,
        statistic=float(statistic),
        pvalue=pvalue,
        confidence_level=float(confidence_level),
    )


# ------------------------------------------------------------------ bootstrap


def _strata(y_codes, groups):
    """Resampling units, the stratum of each unit, and each sample's unit.

    Without groups every sample is a unit, stratified by its class. With
    groups a unit is a group (patient), stratified by the set of classes
    among its samples: for two classes, patients with only negative images,
    only positive images, or both.
    """
    if groups is None:
        return np.arange(len(y_codes)), y_codes
    groups = column_or_1d(groups)
    check_consistent_length(y_codes, groups)
    _, unit = np.unique(groups.astype(str) if groups.dtype == object else groups,
                        return_inverse=True)
    n_units = unit.max() + 1
    present = np.zeros((n_units, y_codes.max() + 1), dtype=bool)
    present[unit, y_codes] = True
    _, unit_stratum = np.unique(present, axis=0, return_inverse=True)
    return unit, unit_stratum.ravel()


def _resample_weights(sample_unit, unit_stratum, n_resamples, rng):
    """Yield (chunk, n_samples) arrays: how often each sample is drawn.

    Within each stratum, as many units are drawn with replacement as the
    stratum holds; a sample's weight is the count of its unit.
    """
    n_units = len(unit_stratum)
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // max(len(sample_unit), n_units)))
    members = [np.flatnonzero(unit_stratum == s) for s in np.unique(unit_stratum)]
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        counts = np.zeros((b, n_units))
        for units in members:  # draws with replacement = uniform multinomial counts
            k = len(units)
            counts[:, units] = rng.multinomial(k, np.full(k, 1.0 / k), size=b)
        done += b
        yield counts[:, sample_unit]


class _Ranking:
    """Score levels of one binary problem, for weighted AUC and AP in bulk."""

    def __init__(self, is_pos, score):
        order = np.argsort(-score, kind="stable")
        level_of_sorted = np.unique(-score[order], return_inverse=True)[1].ravel()
        self.order = order
        self.starts = np.flatnonzero(np.r_[True, np.diff(level_of_sorted) != 0])
        self.pos_sorted = is_pos[order]
        self.levels = score[order][self.starts]  # distinct scores, descending

    def cumulative(self, w):
        """Weighted true and false positives at each score level, descending.

        Returns ``(tp, fp, p_lev, n_lev)`` of shape (b, n_levels): ``tp[:, k]``
        is the weight of the positives scoring ``>= levels[k]``.
        """
        ws = w[:, self.order]
        p_lev = np.add.reduceat(ws * self.pos_sorted, self.starts, axis=1)
        n_lev = np.add.reduceat(ws * ~self.pos_sorted, self.starts, axis=1)
        return np.cumsum(p_lev, axis=1), np.cumsum(n_lev, axis=1), p_lev, n_lev

    def auc_ap(self, w):
        """ROC-AUC and average precision for each row of weights ``w``.

        Equal to :func:`sklearn.metrics.roc_auc_score` and
        :func:`~sklearn.metrics.average_precision_score` with
        ``sample_weight=w`` (ties between scores counted one half in the
        AUC, a step per distinct score in the precision-recall curve).
        """
        tp, fp, p_lev, n_lev = self.cumulative(w)
        p_tot, n_tot = tp[:, -1], fp[:, -1]
        tp_above = tp - p_lev
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (n_lev * (tp_above + 0.5 * p_lev)).sum(axis=1) / (p_tot * n_tot)
            precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
            ap = (p_lev * precision).sum(axis=1) / p_tot
        return auc, ap


def _rates(w, is_pos, flagged):
    """Sensitivity, specificity, accuracy, PPV and NPV for each row of ``w``."""
    tp = w @ (is_pos & flagged).astype(float)
    fn = w @ (is_pos & ~flagged).astype(float)
    fp = w @ (~is_pos & flagged).astype(float)
    tn = w @ (~is_pos & ~flagged).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "accuracy": (tp + tn) / (tp + tn + fp + fn),
            "ppv": tp / (tp + fp),
            "npv": tn / (tn + fn),
        }


def _binary_metrics(w, ranking, is_pos, flagged):
    """All of METRICS for each row of weights ``w`` (shape (b, n))."""
    auc, ap = ranking.auc_ap(w)
    return {"roc_auc": auc, "average_precision": ap, **_rates(w, is_pos, flagged)}


class MetricInterval(NamedTuple):
    """A point estimate and its confidence interval."""

    estimate: float
    low: float
    high: float


@dataclass
class BootstrapResult:
    """Bootstrap confidence intervals of several metrics.

    Index it by metric name: ``result["sensitivity"]`` is a
    :class:`MetricInterval` ``(estimate, low, high)``.

    Attributes
    ----------
    intervals : dict of str to MetricInterval
        Estimate on the data as given and percentile interval, per metric.
        For :func:`paired_bootstrap`, of the difference ``a - b``.
    samples : dict of str to ndarray of shape (n_resamples,)
        The metric on every resample (NaN where undefined, e.g. the PPV of
        a resample in which nothing is predicted positive).
    confidence_level : float
        Coverage of the intervals.
    n_resamples : int
        Number of bootstrap resamples.
    unit : {"image", "group"}
        What was resampled: samples, or groups (patients) with all their
        samples.
    n_units : int
        Number of samples or groups.
    pvalues : dict of str to float or None
        :func:`paired_bootstrap` only: two-sided p-values of "no
        difference": twice the smaller fraction of resampled differences
        on either side of 0 (counted as ``(k + 1) / (n_resamples + 1)``, so
        never 0).
    """

    intervals: dict
    samples: dict
    confidence_level: float
    n_resamples: int
    unit: str
    n_units: int
    pvalues: dict = field(default=None)

    def __getitem__(self, metric):
        return self.intervals[metric]

    def __iter__(self):
        return iter(self.intervals)

    def to_dict(self):
        """JSON-serialisable summary (without the resampled values).

        Returns
        -------
        dict
            ``{"metrics": {name: {"estimate", "low", "high"[, "pvalue"]}},
            "confidence_level", "n_resamples", "unit", "n_units",
            "method": "percentile bootstrap, stratified"}``.
        """
        metrics = {}
        for name, iv in self.intervals.items():
            metrics[name] = {k: _json_float(v) for k, v in iv._asdict().items()}
            if self.pvalues is not None:
                metrics[name]["pvalue"] = _json_float(self.pvalues[name])
        return {
            "metrics": metrics,
            "confidence_level": self.confidence_level,
            "n_resamples": self.n_resamples,
            "unit": self.unit,
            "n_units": self.n_units,
            "method": "percentile bootstrap, stratified by class",
        }


def _json_float(value):
    value = float(value)
    return None if math.isnan(value) else value


def _percentile_interval(samples, confidence_level):
    alpha = 1 - confidence_level
    finite = samples[~np.isnan(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def _flags(y_pred, score, threshold, pos_label, n, what="y_pred"):
    if y_pred is None:
        return score >= threshold
    y_pred = column_or_1d(y_pred)
    if len(y_pred) != n:
        raise ValueError(f"{what} has {len(y_pred)} values but y_true has {n}.")
    return y_pred == pos_label


def _run_bootstrap(y_codes, groups, n_resamples, random_state, compute):
    """Call ``compute(weights)`` on chunks of resamples; concatenate the dicts."""
    sample_unit, unit_stratum = _strata(y_codes, groups)
    rng = np.random.default_rng(check_random_state(random_state).randint(2**31 - 1))
    parts = [compute(w) for w in _resample_weights(sample_unit, unit_stratum,
                                                   n_resamples, rng)]
    samples = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    unit = "image" if groups is None else "group"
    return samples, unit, len(unit_stratum)


_BOOTSTRAP_CONSTRAINTS = {
    "y_true": ["array-like"],
    "pos_label": _LABEL,
    "threshold": [Real],
    "groups": ["array-like", None],
    "n_resamples": [Interval(Integral, 1, None, closed="left")],
    "confidence_level": _LEVEL,
    "random_state": ["random_state"],
}


@validate_params(
    {**_BOOTSTRAP_CONSTRAINTS, "y_score": ["array-like"], "y_pred": ["array-like", None]},
    prefer_skip_nested_validation=True,
)
def bootstrap_metrics(
    y_true,
    y_score,
    *,
    y_pred=None,
    threshold=0.5,
    pos_label=1,
    groups=None,
    n_resamples=2000,
    confidence_level=0.95,
    random_state=None,
):
    """Stratified bootstrap intervals of a binary classifier's metrics.

    ROC-AUC and average precision (from `y_score`), and sensitivity,
    specificity, accuracy, PPV and NPV at the operating point (the
    classifier's own labels `y_pred`, or ``y_score >= threshold``).

    Each resample draws, with replacement, as many positive and as many
    negative units as the data holds (stratified: the prevalence is
    fixed, as in a study that recruited that many patients of each
    class). With `groups` (patient ids) the units are patients: a drawn
    patient brings all their images, and patients are stratified by the
    classes among their images (only negative, only positive, or both).
    The interval is the percentile interval of the resampled metric.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, two classes.
    y_score : array-like of shape (n_samples,)
        Score of `pos_label`, e.g. ``clf.predict_proba(X)[:, 1]``.
    y_pred : array-like of shape (n_samples,), default=None
        The classifier's own labels (``clf.predict(X)``); when given,
        `threshold` is ignored.
    threshold : float, default=0.5
        Without `y_pred`, samples with ``y_score >= threshold`` are
        predicted positive.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class, e.g. ``"PNEUMONIA"``.
    groups : array-like of shape (n_samples,), default=None
        Patient ids (e.g. :func:`cxrlearn.datasets.patient_ids`): resample
        patients, not images.
    n_resamples : int, default=2000
        Number of bootstrap resamples.
    confidence_level : float in (0, 1), default=0.95
        Coverage of the intervals.
    random_state : int, RandomState instance or None, default=None
        Seeds the resampling; an int makes the intervals reproducible.

    Returns
    -------
    result : BootstrapResult
        ``result["roc_auc"]`` etc. are ``(estimate, low, high)``; metric
        names are ``roc_auc``, ``average_precision``, ``sensitivity``,
        ``specificity``, ``accuracy``, ``ppv`` and ``npv``.
        ``result.to_dict()`` is JSON-serialisable.

    See Also
    --------
    delong_roc_auc : The analytic interval of ROC-AUC.
    paired_bootstrap : Differences between two models on the same images.

    Notes
    -----
    The metrics on each resample equal :mod:`sklearn.metrics` with the
    resample's draw counts as ``sample_weight``; they are computed for many
    resamples at once. :func:`scipy.stats.bootstrap` is not used because it
    cannot stratify nor resample clusters (patients). PPV and NPV are
    undefined on a resample without positive (negative) predictions; such
    resamples are left out of that metric's interval.

    Examples
    --------
    >>> from cxrlearn.evaluation import bootstrap_metrics
    >>> y_true = ["NORMAL"] * 6 + ["PNEUMONIA"] * 6
    >>> y_score = [.1, .2, .3, .35, .6, .2, .4, .7, .8, .9, .65, .95]
    >>> result = bootstrap_metrics(y_true, y_score, pos_label="PNEUMONIA",
    ...                            n_resamples=500, random_state=0)
    >>> result["sensitivity"].estimate, result["specificity"].estimate
    (0.8333333333333334, 0.8333333333333334)
    >>> low, high = result["sensitivity"][1:]
    >>> bool(low < 0.8333 < high <= 1)
    True
    """
    is_pos = _binary_target(y_true, pos_label)
    n = len(is_pos)
    score = _scores(y_score, n)
    flagged = _flags(y_pred, score, threshold, pos_label, n)
    ranking = _Ranking(is_pos, score)

    def compute(w):
        return _binary_metrics(w, ranking, is_pos, flagged)

    estimate = {k: float(v[0]) for k, v in compute(np.ones((1, n))).items()}
    samples, unit, n_units = _run_bootstrap(
        is_pos.astype(int), groups, n_resamples, random_state, compute
    )
    intervals = {
        k: MetricInterval(estimate[k], *_percentile_interval(samples[k], confidence_level))
        for k in METRICS
    }
    return BootstrapResult(intervals, samples, float(confidence_level), n_resamples,
                           unit, n_units)


@validate_params(
    {
        **_BOOTSTRAP_CONSTRAINTS,
        "score_a": ["array-like"],
        "score_b": ["array-like"],
        "y_pred_a": ["array-like", None],
        "y_pred_b": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def paired_bootstrap(
    y_true,
    score_a,
    score_b,
    *,
    y_pred_a=None,
    y_pred_b=None,
    threshold=0.5,
    pos_label=1,
    groups=None,
    n_resamples=2000,
    confidence_level=0.95,
    random_state=None,
):
    """Paired bootstrap of the differences between two models (a - b).

    Both models are scored on the same resamples of the same images (or
    patients, with `groups`), so the interval of each difference accounts
    for their correlation. Resampling is stratified as in
    :func:`bootstrap_metrics`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, two classes.
    score_a, score_b : array-like of shape (n_samples,)
        Scores of `pos_label` of the two models, same samples, same order.
    y_pred_a, y_pred_b : array-like of shape (n_samples,), default=None
        The models' own labels; where None, ``score >= threshold``.
    threshold : float, default=0.5
        Threshold applied to a score whose labels are not given.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class.
    groups : array-like of shape (n_samples,), default=None
        Patient ids: resample patients, not images.
    n_resamples : int, default=2000
        Number of bootstrap resamples.
    confidence_level : float in (0, 1), default=0.95
        Coverage of the intervals.
    random_state : int, RandomState instance or None, default=None
        Seeds the resampling.

    Returns
    -------
    result : BootstrapResult
        ``result["sensitivity"]`` is the difference (estimate, low, high);
        ``result.pvalues`` the two-sided bootstrap p-values of "no
        difference".

    See Also
    --------
    delong_roc_test : The analytic paired test of ROC-AUC.

    Examples
    --------
    >>> import numpy as np
    >>> from cxrlearn.evaluation import paired_bootstrap
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 150)
    >>> signal = y + rng.normal(size=300)
    >>> new = 1 / (1 + np.exp(-(signal + 0.3 * rng.normal(size=300))))
    >>> old = 1 / (1 + np.exp(-(signal + 1.5 * rng.normal(size=300))))
    >>> result = paired_bootstrap(y, new, old, n_resamples=500, random_state=0)
    >>> bool(result["roc_auc"].low > 0), bool(result.pvalues["roc_auc"] < 0.05)
    (True, True)
    """
    is_pos = _binary_target(y_true, pos_label)
    n = len(is_pos)
    a = _scores(score_a, n, "score_a")
    b = _scores(score_b, n, "score_b")
    flags_a = _flags(y_pred_a, a, threshold, pos_label, n, "y_pred_a")
    flags_b = _flags(y_pred_b, b, threshold, pos_label, n, "y_pred_b")
    rank_a, rank_b = _Ranking(is_pos, a), _Ranking(is_pos, b)

    def compute(w):
        ma = _binary_metrics(w, rank_a, is_pos, flags_a)
        mb = _binary_metrics(w, rank_b, is_pos, flags_b)
        return {k: ma[k] - mb[k] for k in METRICS}

    estimate = {k: float(v[0]) for k, v in compute(np.ones((1, n))).items()}
    samples, unit, n_units = _run_bootstrap(
        is_pos.astype(int), groups, n_resamples, random_state, compute
    )
    intervals, pvalues = {}, {}
    for k in METRICS:
        intervals[k] = MetricInterval(
            estimate[k], *_percentile_interval(samples[k], confidence_level)
        )
        d = samples[k][~np.isnan(samples[k])]
        tail = min(np.sum(d <= 0), np.sum(d >= 0))
        pvalues[k] = float(min(1.0, 2 * (tail + 1) / (d.size + 1))) if d.size else math.nan
    return BootstrapResult(intervals, samples, float(confidence_level), n_resamples,
                           unit, n_units, pvalues)


# ------------------------------------------- curves and operating points


def _rates_by_level(ranking, w):
    """TPR, FPR and precision at each score level (descending), per row of w."""
    tp, fp, _, _ = ranking.cumulative(w)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tp / tp[:, -1:]
        fpr = fp / fp[:, -1:]
        precision = tp / (tp + fp)  # NaN above the first drawn sample
    return tpr, fpr, precision


def _curve_bands(is_pos, score, *, groups, n_resamples, confidence_level, random_state,
                 n_points=101):
    """Pointwise bootstrap bands of the ROC and precision-recall curves.

    Uses the resamples of :func:`bootstrap_metrics` with the same arguments.
    ROC: the true positive rate at each false positive rate of a grid (the
    highest reached at or below it). Precision-recall: the precision at the
    highest threshold reaching each recall of a grid.

    Returns
    -------
    dict
        ``grid`` and ``roc_low``, ``roc_high``, ``pr_low``, ``pr_high`` on it.
    """
    ranking = _Ranking(is_pos, score)
    grid = np.linspace(0.0, 1.0, n_points)

    def compute(w):
        tpr, fpr, precision = _rates_by_level(ranking, w)
        roc = np.empty((len(w), n_points))
        pr = np.empty((len(w), n_points))
        last = tpr.shape[1] - 1
        for row in range(len(w)):
            at = np.searchsorted(fpr[row], grid, side="right") - 1
            roc[row] = np.where(at >= 0, tpr[row][np.maximum(at, 0)], 0.0)
            first = np.minimum(np.searchsorted(tpr[row], grid, side="left"), last)
            pr[row] = precision[row][first]
        return {"roc": roc, "pr": pr}

    samples, _, _ = _run_bootstrap(is_pos.astype(int), groups, n_resamples,
                                   random_state, compute)
    alpha = 100 * (1 - confidence_level) / 2
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            roc = np.nanpercentile(samples["roc"], [alpha, 100 - alpha], axis=0)
            pr = np.nanpercentile(samples["pr"], [alpha, 100 - alpha], axis=0)
    return {"grid": grid, "roc_low": roc[0], "roc_high": roc[1],
            "pr_low": pr[0], "pr_high": pr[1]}


@validate_params(
    {
        "y_true": ["array-like"],
        "y_score": ["array-like"],
        "targets": ["array-like"],
        "pos_label": _LABEL,
        "groups": ["array-like", None],
        "n_resamples": [Interval(Integral, 1, None, closed="left")],
        "confidence_level": _LEVEL,
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def bootstrap_operating_points(
    y_true,
    y_score,
    targets=(0.9, 0.95, 0.98),
    *,
    pos_label=1,
    groups=None,
    n_resamples=2000,
    confidence_level=0.95,
    random_state=None,
):
    """Thresholds for target sensitivities, with their bootstrap intervals.

    For each target, the threshold is chosen as
    :func:`cxrlearn.threshold_for_sensitivity` chooses it (the largest
    threshold whose sensitivity is >= the target), on the data and again
    on every bootstrap resample (stratified, by patient with `groups`, as
    in :func:`bootstrap_metrics`). The intervals therefore include the
    uncertainty of choosing the threshold: how much the threshold moves,
    and the specificity that a target sensitivity costs.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, two classes.
    y_score : array-like of shape (n_samples,)
        Score of `pos_label`, e.g. ``clf.predict_proba(X)[:, 1]``.
    targets : array-like of float in (0, 1], default=(0.9, 0.95, 0.98)
        Sensitivities to reach.
    pos_label : int, str or bool, default=1
        The label of the positive (disease) class.
    groups : array-like of shape (n_samples,), default=None
        Patient ids: resample patients, not images.
    n_resamples : int, default=2000
        Number of bootstrap resamples.
    confidence_level : float in (0, 1), default=0.95
        Coverage of the intervals.
    random_state : int, RandomState instance or None, default=None
        Seeds the resampling.

    Returns
    -------
    points : list of dict
        One per target: ``target_sensitivity`` and, each as ``{"estimate",
        "low", "high"}``, the ``threshold``, the ``sensitivity`` reached
        (>= the target; above it when scores are tied) and the
        ``specificity`` there.

    See Also
    --------
    cxrlearn.threshold_for_sensitivity : The threshold on given scores.
    cxrlearn.OperatingPointClassifier : A classifier that applies it.

    Notes
    -----
    Choose the threshold on validation data and report the test data's
    sensitivity with :func:`bootstrap_metrics`: the specificity interval
    here describes the trade-off on these images, not a new patient's
    guarantee.

    Examples
    --------
    >>> import numpy as np
    >>> from cxrlearn.evaluation import bootstrap_operating_points
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 200)
    >>> score = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(size=400))))
    >>> [point] = bootstrap_operating_points(y, score, [0.95], n_resamples=500,
    ...                                      random_state=0)
    >>> point["sensitivity"]["estimate"] >= 0.95
    True
    >>> t = point["threshold"]
    >>> bool(t["low"] <= t["estimate"] <= t["high"])
    True
    """
    is_pos = _binary_target(y_true, pos_label)
    score = _scores(y_score, len(is_pos))
    targets = np.asarray(targets, dtype=float).ravel()
    if targets.size == 0 or ((targets <= 0) | (targets > 1)).any():
        raise ValueError(f"targets must be sensitivities in (0, 1], got {targets.tolist()}.")
    ranking = _Ranking(is_pos, score)

    def compute(w):
        tpr, fpr, _ = _rates_by_level(ranking, w)
        out = {}
        rows = np.arange(len(w))
        for i, target in enumerate(targets):
            # tpr is non-decreasing as the threshold decreases: first hit
            at = np.argmax(tpr >= target - 1e-12, axis=1)
            out[f"threshold{i}"] = ranking.levels[at]
            out[f"sensitivity{i}"] = tpr[rows, at]
            out[f"specificity{i}"] = 1.0 - fpr[rows, at]
        return out

    estimate = {k: float(v[0]) for k, v in compute(np.ones((1, len(score)))).items()}
    samples, _, _ = _run_bootstrap(is_pos.astype(int), groups, n_resamples,
                                   random_state, compute)
    points = []
    for i, target in enumerate(targets):
        point = {"target_sensitivity": float(target)}
        for name in ("threshold", "sensitivity", "specificity"):
            key = f"{name}{i}"
            low, high = _percentile_interval(samples[key], confidence_level)
            point[name] = {"estimate": estimate[key], "low": low, "high": high}
        points.append(point)
    return points
