"""Confidence intervals: DeLong and the stratified bootstrap, checked against
references (pROC's published values, an independent O(n^2) DeLong, scikit-
learn's weighted metrics) and by simulated coverage, never against themselves.
"""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from cxrlearn.evaluation import (
    bootstrap_metrics,
    delong_roc_auc,
    delong_roc_test,
    paired_bootstrap,
)
from cxrlearn.evaluation._intervals import (
    METRICS,
    _binary_metrics,
    _Ranking,
    _resample_weights,
    _strata,
)

# The aSAH data of the R package pROC (Turck et al., Intensive Care Medicine
# 36:107, 2010): 113 patients with a subarachnoid haemorrhage, outcome
# (1 = poor) and three prognostic markers. pROC's test suite (tests/testthat,
# test-var.R, test-roc.test.R, test-ci.auc.R) publishes DeLong's results on it.
ASAH_POOR = (
    "00001101001011001011101000000000100110110000000001100010001010011101101111"
    "000110100000010000000000001111110001000"
)
ASAH_WFNS = """
1 1 1 1 3 2 5 4 1 2 5 2 5 5 1 2 5 2 2 5 2 1 1 1 1 2 1 2 1 1 3 4 2 1 4 5 4 1 4 2 5 5 1
1 2 4 1 1 2 5 5 2 1 2 5 1 2 2 2 1 5 1 1 2 5 2 1 4 5 2 4 4 1 4 1 2 1 4 2 1 2 3 2 4 2 1
4 5 1 1 5 4 2 2 1 1 1 3 1 2 5 2 2 5 5 5 2 4 4 5 1 1 1
"""
ASAH_S100B = """
0.13 0.14 0.1 0.04 0.13 0.1 0.47 0.16 0.18 0.1 0.12 0.1 0.44 0.71 0.04 0.08 0.49 0.04
0.07 0.33 0.09 0.09 0.07 0.11 0.07 0.17 0.07 0.11 0.13 0.19 0.05 0.16 0.41 0.14 0.34
0.35 0.48 0.09 0.96 0.25 0.5 0.46 0.16 0.07 0.43 0.45 0.11 0.08 0.09 0.86 0.52 0.08
0.06 0.13 2.07 0.1 0.14 0.15 0.07 0.06 0.77 0.05 0.09 0.3 0.03 0.09 0.04 0.23 0.7 0.09
0.27 0.71 0.08 0.26 0.08 0.16 0.09 0.13 0.1 0.08 0.11 0.33 0.11 0.28 0.07 0.1 0.32
0.22 0.07 0.05 0.24 0.38 0.1 0.15 0.08 0.14 0.1 0.07 0.04 0.19 0.56 0.14 0.58 0.32
0.82 0.74 0.15 0.47 0.17 0.44 0.15 0.5 0.48
"""
ASAH_NDKA = """
3.01 8.54 8.09 10.42 17.4 12.75 6.0 13.2 15.54 6.01 15.96 17.86 5.18 8.9 13.41 20.75
11.6 16.11 32.37 54.82 32.41 49.94 40.34 9.47 6.29 12.53 6.54 6.3 80.3 12.8 9.8 9.81
9.85 18.21 5.03 14.04 21.93 8.02 7.42 8.38 6.59 9.63 13.12 7.96 14.34 41.43 7.63 7.06
12.59 13.56 3.87 9.44 7.66 12.98 419.19 27.19 22.27 9.95 21.22 11.73 10.4 58.83 6.39
11.09 12.22 13.67 17.21 22.63 12.9 9.7 21.57 8.23 72.57 15.54 10.51 10.6 14.57 5.19
9.63 4.61 21.48 17.3 12.71 9.44 11.07 19.46 10.83 5.37 11.97 7.75 9.83 10.55 28.49
8.53 12.57 12.9 46.83 11.68 12.67 9.01 9.57 34.06 11.72 14.26 47.61 11.67 24.58 10.33
13.87 15.89 22.43 6.79 13.45
"""


@pytest.fixture(scope="module")
def asah():
    y = np.array([int(c) for c in ASAH_POOR])
    markers = {name: np.array(text.split(), dtype=float) for name, text in
               [("wfns", ASAH_WFNS), ("s100b", ASAH_S100B), ("ndka", ASAH_NDKA)]}
    assert len(y) == 113 and y.sum() == 41
    assert all(len(v) == 113 for v in markers.values())
    return y, markers


# ---------------------------------------------------------- DeLong: references


@pytest.mark.parametrize("marker, auc, variance", [
    ("wfns", 0.823678861788618, 0.00146991470882363),
    ("ndka", 0.611957994579946, 0.0031908105493913),
    ("s100b", 0.731368563685637, 0.00266868245717244),
])
def test_delong_matches_proc(asah, marker, auc, variance):
    y, markers = asah
    result = delong_roc_auc(y, markers[marker])
    assert result.auc == pytest.approx(auc, rel=1e-12)
    assert result.variance == pytest.approx(variance, rel=1e-10)
    assert (result.n_positive, result.n_negative) == (41, 72)


def test_delong_interval_matches_proc(asah):
    y, markers = asah
    result = delong_roc_auc(y, markers["ndka"])  # pROC: ci(r.ndka)
    assert (result.low, result.high) == pytest.approx(
        (0.501244999271703, 0.722670989888189), rel=1e-10)
    # s100b, as printed in pROC's documentation: 95% CI 0.6301-0.8326
    result = delong_roc_auc(y, markers["s100b"])
    assert (round(result.low, 4), round(result.high, 4)) == (0.6301, 0.8326)


@pytest.mark.parametrize("a, b, z, p, low, high", [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882,
     0.0104061769564846, 0.174214419249478),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098,
     0.0634011709339876, 0.3600405634833566),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054,
     -0.2876917446341914, 0.0488706064228094),
])
def test_paired_delong_test_matches_proc(asah, a, b, z, p, low, high):
    y, markers = asah
    test = delong_roc_test(y, markers[a], markers[b])
    assert test.statistic == pytest.approx(z, rel=1e-10)
    assert test.pvalue == pytest.approx(p, rel=1e-10)
    assert (test.low, test.high) == pytest.approx((low, high), rel=1e-10)
    reverse = delong_roc_test(y, markers[b], markers[a])
    assert reverse.statistic == pytest.approx(-z, rel=1e-10)
    assert reverse.pvalue == pytest.approx(p, rel=1e-10)


def _delong_by_definition(y, scores):
    """DeLong (1988) written from the paper's definitions, in O(m n).

    psi(x, y) = 1 if x > y, 1/2 if x == y, 0 otherwise; V10(x_i) and V01(y_j)
    are its means over the other class; S10, S01 their sample covariances.
    """
    pos, neg = [s[y == 1] for s in scores], [s[y == 0] for s in scores]
    m, n = len(pos[0]), len(neg[0])
    v10, v01 = [], []
    for x, z in zip(pos, neg):
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    aucs = np.array([v.mean() for v in v10])
    s10 = np.array([[np.sum((a - a.mean()) * (b - b.mean())) / (m - 1) for b in v10]
                    for a in v10])
    s01 = np.array([[np.sum((a - a.mean()) * (b - b.mean())) / (n - 1) for b in v01]
                    for a in v01])
    return aucs, s10 / m + s01 / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_quadratic_definition(seed):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.r_[np.zeros(37, int), np.ones(23, int)])
    a = np.round(y + rng.normal(size=60), 1)  # rounded: many ties
    b = np.round(0.5 * a + rng.normal(size=60), 1)
    aucs, cov = _delong_by_definition(y, [a, b])
    one = delong_roc_auc(y, a)
    assert one.auc == pytest.approx(roc_auc_score(y, a), rel=1e-12)
    assert one.auc == pytest.approx(aucs[0], rel=1e-12)
    assert one.variance == pytest.approx(cov[0, 0], rel=1e-10)
    test = delong_roc_test(y, a, b)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    assert test.difference == pytest.approx(aucs[0] - aucs[1], rel=1e-12)
    assert test.variance == pytest.approx(var, rel=1e-10)
    assert test.statistic == pytest.approx((aucs[0] - aucs[1]) / math.sqrt(var),
                                           rel=1e-10)


def test_delong_labels_and_levels():
    y = ["NORMAL", "PNEUMONIA"] * 10
    score = np.linspace(0, 1, 20) + np.tile([0, 0.2], 10)
    result = delong_roc_auc(y, score, pos_label="PNEUMONIA", confidence_level=0.9)
    wider = delong_roc_auc(y, score, pos_label="PNEUMONIA", confidence_level=0.99)
    assert wider.low < result.low < result.auc < result.high < wider.high
    assert result.to_dict()["standard_error"] == pytest.approx(math.sqrt(result.variance))
    # scores reversed: AUC 1 - auc, same variance
    flipped = delong_roc_auc(y, -score, pos_label="PNEUMONIA")
    assert flipped.auc == pytest.approx(1 - result.auc)
    assert flipped.variance == pytest.approx(result.variance)


def test_delong_test_of_identical_scores():
    y = np.repeat([0, 1], 5)
    score = np.arange(10.0)
    test = delong_roc_test(y, score, score)
    assert (test.difference, test.statistic, test.pvalue) == (0.0, 0.0, 1.0)


@pytest.mark.parametrize("y, score, message", [
    ([0, 1, 2, 1], [0.1, 0.2, 0.3, 0.4], "two classes"),
    ([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], "pos_label=1 is not one of"),
    ([0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], "has 4 values"),
    ([0, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], "at least two positive and two negative"),
    ([0, 0, 1, 1], [0.1, np.nan, 0.3, 0.4], "NaN"),
])
def test_delong_input_errors(y, score, message):
    with pytest.raises(ValueError, match=message):
        delong_roc_auc(y, score)


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="confidence_level"):
        delong_roc_auc([0, 0, 1, 1], [0, 1, 0, 1], confidence_level=95)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_metrics([0, 0, 1, 1], [0, 1, 0, 1], n_resamples=0)


# ----------------------------------------------- bootstrap: the resampling


def test_weighted_metrics_equal_sklearn_with_sample_weight(rng):
    """Every metric, for every resample, equals sklearn's with the draw counts."""
    y = rng.permutation(np.r_[np.zeros(30, int), np.ones(20, int)])
    score = np.round(0.8 * y + rng.normal(size=50), 1)  # ties
    flagged = score >= 0.4
    is_pos = y == 1
    w = next(_resample_weights(*_strata(y, None), 25, rng))
    got = _binary_metrics(w, _Ranking(is_pos, score), is_pos, flagged)
    for row, weights in enumerate(w):
        ref = {
            "roc_auc": roc_auc_score(y, score, sample_weight=weights),
            "average_precision": average_precision_score(y, score, sample_weight=weights),
            "sensitivity": recall_score(y, flagged, sample_weight=weights),
            "specificity": recall_score(1 - y, ~flagged, sample_weight=weights),
            "accuracy": accuracy_score(y, flagged, sample_weight=weights),
            "ppv": precision_score(y, flagged, sample_weight=weights),
            "npv": precision_score(1 - y, ~flagged, sample_weight=weights),
        }
        for name in METRICS:
            assert got[name][row] == pytest.approx(ref[name], rel=1e-12), name


def test_resamples_are_stratified_by_class(rng):
    y = np.r_[np.zeros(30, int), np.ones(12, int)]
    for w in _resample_weights(*_strata(y, None), 300, rng):
        assert (w[:, y == 0].sum(axis=1) == 30).all()
        assert (w[:, y == 1].sum(axis=1) == 12).all()
        assert w.min() >= 0 and np.allclose(w, np.round(w))


def test_resamples_draw_whole_patients(rng):
    # 10 patients with 1-4 images; patients 0-3 negative, 4-7 positive, 8-9 both
    sizes = [1, 2, 3, 4, 1, 2, 3, 4, 2, 2]
    groups = np.repeat([f"p{i}" for i in range(10)], sizes)
    y = np.repeat([0, 0, 0, 0, 1, 1, 1, 1, 0, 0], sizes)
    y[groups == "p8"] = [0, 1]
    y[groups == "p9"] = [1, 0]
    unit, stratum = _strata(y, groups)
    assert len(stratum) == 10
    assert sorted(np.bincount(stratum).tolist()) == [2, 4, 4]
    for w in _resample_weights(unit, stratum, 200, rng):
        for g in np.unique(groups):  # a patient's images are drawn together
            cols = w[:, groups == g]
            assert (cols == cols[:, :1]).all()
        drawn = np.stack([w[:, groups == f"p{i}"][:, 0] for i in range(10)], axis=1)
        # patients drawn per stratum: as many as the stratum holds
        assert (drawn[:, :4].sum(axis=1) == 4).all()
        assert (drawn[:, 4:8].sum(axis=1) == 4).all()
        assert (drawn[:, 8:].sum(axis=1) == 2).all()


def test_bootstrap_metrics_estimates_and_reproducibility(asah):
    y, markers = asah
    score = markers["s100b"]
    pred = np.where(score >= 0.205, 1, 0)
    result = bootstrap_metrics(y, score, y_pred=pred, n_resamples=300, random_state=0)
    same = bootstrap_metrics(y, score, threshold=0.205, n_resamples=300, random_state=0)
    assert result.to_dict() == same.to_dict()
    assert result["roc_auc"].estimate == pytest.approx(roc_auc_score(y, score))
    assert result["average_precision"].estimate == pytest.approx(
        average_precision_score(y, score))
    # pROC: the s100b threshold 0.205 has sensitivity 26/41 and specificity 58/72
    assert result["sensitivity"].estimate == pytest.approx(26 / 41)
    assert result["specificity"].estimate == pytest.approx(58 / 72)
    for name in METRICS:
        iv = result[name]
        assert iv.low <= iv.estimate <= iv.high, name
        assert result.samples[name].shape == (300,)
    other = bootstrap_metrics(y, score, threshold=0.205, n_resamples=300, random_state=1)
    assert other.to_dict() != result.to_dict()
    summary = result.to_dict()
    assert summary["unit"] == "image" and summary["n_units"] == 113
    assert set(summary["metrics"]) == set(METRICS)
    # the bootstrap and DeLong agree on the spread of ROC-AUC
    delong = delong_roc_auc(y, score)
    assert np.std(result.samples["roc_auc"]) == pytest.approx(delong.standard_error,
                                                              rel=0.15)


def test_bootstrap_string_labels_and_groups():
    y = np.array(["NORMAL"] * 8 + ["PNEUMONIA"] * 8)
    score = np.r_[np.linspace(0, 0.6, 8), np.linspace(0.4, 1, 8)]
    groups = np.repeat(np.arange(8), 2)
    result = bootstrap_metrics(y, score, pos_label="PNEUMONIA", groups=groups,
                               n_resamples=200, random_state=0)
    assert result.unit == "group" and result.n_units == 8
    with pytest.raises(ValueError, match="pos_label=1 is not one of"):
        bootstrap_metrics(y, score, n_resamples=10)
    with pytest.raises(ValueError, match="y_pred has 3 values"):
        bootstrap_metrics(y, score, y_pred=y[:3], pos_label="PNEUMONIA")


def test_undefined_ppv_resamples_are_left_out():
    y = np.r_[np.zeros(20, int), np.ones(3, int)]
    score = np.r_[np.zeros(20), [0.9, 0.1, 0.1]]  # a single positive prediction
    result = bootstrap_metrics(y, score, n_resamples=400, random_state=0)
    assert np.isnan(result.samples["ppv"]).any()  # resamples without that image
    assert result["ppv"] == (1.0, 1.0, 1.0)


def test_paired_bootstrap(rng):
    y = np.repeat([0, 1], 100)
    signal = y + rng.normal(size=200)
    good = 1 / (1 + np.exp(-(signal + 0.2 * rng.normal(size=200))))
    bad = 1 / (1 + np.exp(-(signal + 2.0 * rng.normal(size=200))))
    same = paired_bootstrap(y, good, good, n_resamples=200, random_state=0)
    for name in METRICS:
        assert same[name] == (0.0, 0.0, 0.0)
        assert same.pvalues[name] == 1.0
    result = paired_bootstrap(y, good, bad, n_resamples=500, random_state=0)
    single_good = bootstrap_metrics(y, good, n_resamples=10)
    single_bad = bootstrap_metrics(y, bad, n_resamples=10)
    for name in METRICS:
        assert result[name].estimate == pytest.approx(
            single_good[name].estimate - single_bad[name].estimate)
    assert result["roc_auc"].low > 0 and result.pvalues["roc_auc"] < 0.02
    assert result.pvalues["roc_auc"] >= 2 / 501  # never 0
    # DeLong's paired test agrees, and on the interval of the AUC difference
    delong = delong_roc_test(y, good, bad)
    assert delong.pvalue < 0.01
    assert (result["roc_auc"].low, result["roc_auc"].high) == pytest.approx(
        (delong.low, delong.high), abs=0.02)
    assert result.to_dict()["metrics"]["roc_auc"]["pvalue"] < 0.02


# ------------------------------------------------------ coverage by simulation

TRUE_AUC = 0.8
SEPARATION = math.sqrt(2) * stats.norm.ppf(TRUE_AUC)  # AUC = Phi(d / sqrt(2))


def _binormal(rng, n_neg, n_pos):
    """Scores N(0, 1) for negatives and N(d, 1) for positives: AUC 0.8."""
    y = np.r_[np.zeros(n_neg, int), np.ones(n_pos, int)]
    return y, np.r_[rng.normal(0, 1, n_neg), rng.normal(SEPARATION, 1, n_pos)]


@pytest.mark.parametrize("n_neg, n_pos", [(100, 100), (140, 60)])
def test_delong_coverage(n_neg, n_pos):
    """The 95% DeLong interval covers the true AUC in 92-98% of 500 samples."""
    rng = np.random.default_rng(12)
    covered = []
    for _ in range(500):
        result = delong_roc_auc(*_binormal(rng, n_neg, n_pos))
        covered.append(result.low <= TRUE_AUC <= result.high)
    assert 0.92 <= np.mean(covered) <= 0.98, np.mean(covered)


def _bootstrap_coverage(repetitions, n_resamples, seed):
    rng = np.random.default_rng(seed)
    threshold = SEPARATION / 2
    truth = {
        "roc_auc": TRUE_AUC,
        "sensitivity": stats.norm.sf(threshold - SEPARATION),
        "specificity": stats.norm.cdf(threshold),
    }
    hits = {name: [] for name in truth}
    for rep in range(repetitions):
        y, score = _binormal(rng, 120, 80)
        result = bootstrap_metrics(y, score, threshold=threshold,
                                   n_resamples=n_resamples, random_state=rep)
        for name, value in truth.items():
            hits[name].append(result[name].low <= value <= result[name].high)
    return {name: float(np.mean(h)) for name, h in hits.items()}


def test_bootstrap_coverage_quick():
    """A quick version: 150 samples, so a wider band than 92-98%."""
    for name, coverage in _bootstrap_coverage(150, 400, seed=3).items():
        assert 0.89 <= coverage <= 0.99, (name, coverage)


@pytest.mark.slow
def test_bootstrap_coverage():
    """The 95% bootstrap intervals cover the truth in 92-98% of 500 samples."""
    for name, coverage in _bootstrap_coverage(500, 1000, seed=4).items():
        assert 0.92 <= coverage <= 0.98, (name, coverage)


@pytest.mark.slow
def test_patient_bootstrap_coverage_with_correlated_images():
    """Three correlated images per patient: resampling patients keeps 95%.

    Scores are class mean + patient effect + image noise; the image-level
    AUC is still Phi(d / sqrt(2)). Resampling images (or DeLong, which
    assumes independent images) gives too narrow intervals.
    """
    rng = np.random.default_rng(2)
    patients, per_patient = 60, 3
    y = np.repeat(np.r_[np.zeros(patients, int), np.ones(patients, int)], per_patient)
    groups = np.repeat(np.arange(2 * patients), per_patient)
    by_patient, by_image = [], []
    for rep in range(300):
        effect = np.repeat(rng.normal(0, math.sqrt(0.6), 2 * patients), per_patient)
        score = SEPARATION * y + effect + rng.normal(0, math.sqrt(0.4), len(y))
        for out, g in ((by_patient, groups), (by_image, None)):
            iv = bootstrap_metrics(y, score, groups=g, n_resamples=500,
                                   random_state=rep)["roc_auc"]
            out.append(iv.low <= TRUE_AUC <= iv.high)
    assert 0.92 <= np.mean(by_patient) <= 0.98, np.mean(by_patient)
    assert np.mean(by_image) < 0.88, np.mean(by_image)
