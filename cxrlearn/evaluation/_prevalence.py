"""What a decision's figures become at another prevalence of disease.

Sensitivity and specificity are measured within each class, so they carry
over to a hospital whose patients hold another share of pneumonia -- as
long as the films within each class are alike (a *prior shift*).
Accuracy, PPV and NPV mix the two classes and do not: a data set three
quarters pneumonia, such as Kermany's, flatters the PPV a clinic with 10%
pneumonia will see. Bayes' rule gives them at any prevalence, and the
bootstrap's resampled sensitivities and specificities give their intervals.
"""

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import validate_params

from ._intervals import BootstrapResult, MetricInterval, _percentile_interval

__all__ = ["at_prevalence", "bootstrap_at_prevalence"]


@validate_params(
    {"sensitivity": ["array-like", Real], "specificity": ["array-like", Real],
     "prevalence": ["array-like", Real]},
    prefer_skip_nested_validation=True,
)
def at_prevalence(sensitivity, specificity, prevalence):
    """Accuracy, PPV and NPV of a decision at another prevalence of disease.

    With sensitivity :math:`s`, specificity :math:`c` and prevalence
    :math:`p`: accuracy :math:`= s p + c (1 - p)`, PPV :math:`= s p / (s p +
    (1 - c)(1 - p))`, NPV :math:`= c (1 - p) / (c (1 - p) + (1 - s) p)`.
    This assumes that only the mix of the classes changes, not the films
    within each class (a prior shift): sensitivity and specificity carry
    over, accuracy, PPV and NPV do not.

    Parameters
    ----------
    sensitivity, specificity : float or array-like
        Of the decision, each in [0, 1].
    prevalence : float or array-like
        Share of positive (diseased) patients, in (0, 1). The three
        arguments broadcast against each other.

    Returns
    -------
    figures : dict of str to float or ndarray
        ``accuracy``, ``ppv`` and ``npv`` (NaN where undefined: the PPV of
        a decision that calls no one positive).

    Raises
    ------
    ValueError
        If a rate is outside [0, 1] or a prevalence outside (0, 1).

    See Also
    --------
    bootstrap_at_prevalence : The same, with confidence intervals.

    Examples
    --------
    >>> from cxrlearn.evaluation import at_prevalence
    >>> figures = at_prevalence(0.98, 0.95, [0.75, 0.1])
    >>> figures["ppv"].round(3).tolist()  # 75% pneumonia, then 10%
    [0.983, 0.685]
    >>> figures["npv"].round(3).tolist(), figures["accuracy"].round(4).tolist()
    ([0.941, 0.998], [0.9725, 0.953])
    """
    s, c, p = (np.asarray(v, dtype=float) for v in (sensitivity, specificity, prevalence))
    for name, rate in (("sensitivity", s), ("specificity", c)):
        finite = rate[~np.isnan(rate)]
        if np.any((finite < 0) | (finite > 1)):
            raise ValueError(f"{name} must be in [0, 1]; got {rate.ravel().tolist()}")
    _check_prevalences(p, "prevalence")
    true_pos, false_pos = s * p, (1 - c) * (1 - p)
    true_neg, false_neg = c * (1 - p), (1 - s) * p
    with np.errstate(invalid="ignore", divide="ignore"):
        figures = {"accuracy": true_pos + true_neg,
                   "ppv": true_pos / (true_pos + false_pos),
                   "npv": true_neg / (true_neg + false_neg)}
    if np.ndim(figures["accuracy"]) == 0:
        return {k: float(v) for k, v in figures.items()}
    return figures


def _check_prevalences(values, name):
    """``values`` as a float array; ValueError naming ``name`` unless all are in (0, 1)."""
    values = np.asarray(values, dtype=float)
    if np.any(~((values > 0) & (values < 1))):
        raise ValueError(f"{name} must be in (0, 1); got {values.ravel().tolist()}")
    return values


def bootstrap_at_prevalence(result, prevalences):
    """Intervals of accuracy, PPV and NPV at other prevalences.

    Each resample of :func:`bootstrap_metrics` gives a sensitivity and a
    specificity; :func:`at_prevalence` turns the pair into accuracy, PPV and
    NPV at each prevalence, and the percentiles of those give the
    intervals. The estimates are those of the figures on the data as given.

    Parameters
    ----------
    result : BootstrapResult
        From :func:`bootstrap_metrics` with the operating point's labels
        (not a :func:`paired_bootstrap` of differences).
    prevalences : array-like of float
        Shares of positive patients, each in (0, 1).

    Returns
    -------
    figures : list of dict
        One per prevalence, in the order given: ``{"prevalence": p,
        "accuracy": MetricInterval, "ppv": MetricInterval, "npv":
        MetricInterval}``.

    Raises
    ------
    ValueError
        If `result` holds differences or lacks sensitivity and
        specificity, or a prevalence is outside (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from cxrlearn.evaluation import bootstrap_at_prevalence, bootstrap_metrics
    >>> rng = np.random.default_rng(0)
    >>> y = np.r_[np.zeros(100, int), np.ones(300, int)]  # 75% pneumonia
    >>> score = np.clip(y * 0.5 + rng.normal(0.25, 0.15, 400), 0, 1)
    >>> result = bootstrap_metrics(y, score, n_resamples=500, random_state=0)
    >>> here, clinic = bootstrap_at_prevalence(result, [0.75, 0.1])
    >>> round(here["ppv"].estimate, 3) == round(result["ppv"].estimate, 3)
    True
    >>> bool(clinic["ppv"].high < here["ppv"].low)  # 10% pneumonia: a lower PPV
    True
    """
    if not isinstance(result, BootstrapResult) or result.pvalues is not None:
        raise ValueError("result must be a BootstrapResult of bootstrap_metrics, not of "
                         "paired_bootstrap's differences")
    missing = {"sensitivity", "specificity"} - set(result.samples)
    if missing:
        raise ValueError(f"result has no {' and '.join(sorted(missing))}")
    prevalences = np.asarray(prevalences, dtype=float).ravel()
    s, c = result["sensitivity"].estimate, result["specificity"].estimate
    rows = []
    for p in prevalences:
        estimates = at_prevalence(s, c, float(p))
        resampled = at_prevalence(result.samples["sensitivity"],
                                  result.samples["specificity"], float(p))
        row = {"prevalence": float(p)}
        for name, samples in resampled.items():
            low, high = _percentile_interval(samples, result.confidence_level)
            row[name] = MetricInterval(estimates[name], low, high)
        rows.append(row)
    return rows
