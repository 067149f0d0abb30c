"""Accuracy, PPV and NPV at another prevalence, and their intervals."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_score

from cxrlearn.evaluation import (
    at_prevalence,
    bootstrap_at_prevalence,
    bootstrap_metrics,
    paired_bootstrap,
)


def _scored(n_neg, n_pos, seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_neg, int), np.ones(n_pos, int)]
    score = np.clip(y * 0.45 + rng.normal(0.28, 0.14, len(y)), 0, 1)
    return y, score


def test_at_the_datas_own_prevalence_it_gives_the_datas_figures():
    y, score = _scored(120, 360)
    pred = (score >= 0.5).astype(int)
    sens = np.mean(pred[y == 1] == 1)
    spec = np.mean(pred[y == 0] == 0)
    figures = at_prevalence(sens, spec, np.mean(y))
    assert figures["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert figures["ppv"] == pytest.approx(precision_score(y, pred))
    assert figures["npv"] == pytest.approx(precision_score(1 - y, 1 - pred))


def test_figures_at_another_prevalence_are_those_of_a_resampled_mix():
    """Subsample the positives to 10%: the counted PPV is the predicted one."""
    y, score = _scored(2000, 2000, seed=1)
    pred = (score >= 0.5).astype(int)
    sens, spec = np.mean(pred[y == 1] == 1), np.mean(pred[y == 0] == 0)
    # 2000 negatives and 222 positives (10% of 2222), every positive film kept in
    # proportion: the positives are a class-stratified subsample
    rng = np.random.default_rng(0)
    pos = rng.permutation(np.flatnonzero(y == 1))
    keep = np.r_[np.flatnonzero(y == 0), pos[:222]]
    predicted = at_prevalence(sens, spec, 222 / 2222)
    assert predicted["ppv"] == pytest.approx(precision_score(y[keep], pred[keep]), abs=0.03)
    assert predicted["accuracy"] == pytest.approx(accuracy_score(y[keep], pred[keep]),
                                                  abs=0.01)
    assert predicted["ppv"] < precision_score(y, pred) - 0.1  # it did move


def test_vectorised_and_undefined():
    figures = at_prevalence([1.0, 0.0], [0.9, 1.0], 0.2)
    assert figures["ppv"][0] == pytest.approx(0.2 / (0.2 + 0.08))
    assert np.isnan(figures["ppv"][1])  # calls no one positive: no PPV
    assert figures["npv"][1] == pytest.approx(0.8)
    assert isinstance(at_prevalence(0.9, 0.9, 0.5)["accuracy"], float)


@pytest.mark.parametrize("kwargs, match", [
    ({"prevalence": 0.0}, "prevalence must be in"),
    ({"prevalence": 1.0}, "prevalence must be in"),
    ({"sensitivity": 1.2}, "sensitivity must be in"),
    ({"specificity": -0.1}, "specificity must be in"),
])
def test_refuses_what_is_not_a_rate(kwargs, match):
    args = {"sensitivity": 0.9, "specificity": 0.9, "prevalence": 0.3, **kwargs}
    with pytest.raises(ValueError, match=match):
        at_prevalence(**args)


def test_bootstrap_intervals_follow_the_resamples():
    y, score = _scored(100, 300)
    result = bootstrap_metrics(y, score, n_resamples=400, random_state=0)
    here, clinic, half = bootstrap_at_prevalence(result, [0.75, 0.1, 0.5])
    for name in ("accuracy", "ppv", "npv"):
        # at the data's own prevalence: the bootstrap's own figure and interval
        assert here[name].estimate == pytest.approx(result[name].estimate)
        assert here[name].low == pytest.approx(result[name].low, abs=1e-9)  # stratified
        assert here[name].high == pytest.approx(result[name].high, abs=1e-9)
        for row in (clinic, half):
            assert row[name].low <= row[name].estimate <= row[name].high
    assert clinic["ppv"].high < here["ppv"].low  # fewer positives: a lower PPV
    assert clinic["npv"].low > here["npv"].high
    assert half["accuracy"].estimate == pytest.approx(
        (result["sensitivity"].estimate + result["specificity"].estimate) / 2)


def test_bootstrap_refuses_differences():
    y, score = _scored(50, 50)
    diff = paired_bootstrap(y, score, score[::-1], n_resamples=50, random_state=0)
    with pytest.raises(ValueError, match="paired_bootstrap"):
        bootstrap_at_prevalence(diff, [0.1])
    result = bootstrap_metrics(y, score, n_resamples=50, random_state=0)
    with pytest.raises(ValueError, match="prevalence must be in"):
        bootstrap_at_prevalence(result, [0.1, 1.5])
