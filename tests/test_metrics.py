"""Tests for cxrlearn.metrics: clinical metrics, reports and the ROC plot."""

import json
import math

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer, roc_auc_score
from sklearn.utils._param_validation import InvalidParameterError

from cxrlearn.metrics import (
    clinical_report,
    format_report,
    multiclass_report,
    plot_operating_points,
    sensitivity_score,
    specificity_score,
)

BINARY_KEYS = {
    "roc_auc",
    "average_precision",
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "sensitivity",
    "specificity",
    "f1",
    "threshold",
    "n_samples",
    "prevalence",
    "confusion_matrix",
    "labels",
}

# Hand-made case: 4 positives, 6 negatives; tp=3, fn=1, tn=4, fp=2.
Y_TRUE = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
Y_SCORE = np.array([0.9, 0.8, 0.55, 0.2, 0.7, 0.6, 0.4, 0.3, 0.1, 0.05])
Y_PRED = (Y_SCORE >= 0.5).astype(int)
NAMES = np.array(["NORMAL", "PNEUMONIA"])


def _assert_plain(obj):
    """Everything in a report is a plain JSON type."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            assert type(key) is str
            _assert_plain(value)
    elif isinstance(obj, list):
        for value in obj:
            _assert_plain(value)
    else:
        assert type(obj) in (float, int, str, bool), type(obj)


def test_sensitivity_specificity_hand_computed():
    assert sensitivity_score(Y_TRUE, Y_PRED) == pytest.approx(3 / 4)
    assert specificity_score(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    # Swapping the positive class swaps the two rates.
    assert sensitivity_score(Y_TRUE, Y_PRED, pos_label=0) == pytest.approx(4 / 6)
    assert specificity_score(Y_TRUE, Y_PRED, pos_label=0) == pytest.approx(3 / 4)


def test_string_labels():
    y_true, y_pred = NAMES[Y_TRUE], NAMES[Y_PRED]
    pos = "PNEUMONIA"
    assert sensitivity_score(y_true, y_pred, pos_label=pos) == pytest.approx(0.75)
    assert specificity_score(y_true, y_pred, pos_label=pos) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="pos_label='PNEUMONIA'"):
        specificity_score(y_true, y_pred)  # pos_label=1 is not a label here


def test_sample_weight_changes_rates():
    weights = np.ones(len(Y_TRUE))
    weights[3] = 3.0  # the missed positive counts three times
    sensitivity = sensitivity_score(Y_TRUE, Y_PRED, sample_weight=weights)
    assert sensitivity == pytest.approx(3 / 6)


def test_more_than_two_labels_rejected():
    with pytest.raises(ValueError, match="multiclass_report"):
        sensitivity_score([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="multiclass_report"):
        specificity_score([0, 1, 2], [0, 1, 1])


def test_specificity_without_negatives_follows_zero_division():
    assert specificity_score([1, 1], [1, 1], zero_division=1.0) == 1.0
    assert math.isnan(specificity_score([1, 1], [1, 0], zero_division=np.nan))


def test_rates_where_imblearn_differs():
    """The cases why these rates do not call imblearn.metrics (0.14).

    imblearn's specificity counts true negatives as samples, not weights
    (scikit-learn-contrib/imbalanced-learn#1180), returns 0.0 for both
    rates when only the negative label is present, and has no
    zero_division; scikit-learn's recall_score gets all three right.
    """
    weights = [2.0, 1.0, 1.0, 1.0]
    # tn weighs 2, fp weighs 1 (imblearn 0.14: 0.5)
    spec = specificity_score([0, 0, 1, 1], [0, 1, 1, 1], sample_weight=weights)
    assert spec == pytest.approx(2 / 3)
    # only negatives, all correct (imblearn 0.14: 0.0)
    assert specificity_score([0, 0], [0, 0]) == 1.0
    # no positive: undefined, warned about, or the value asked for
    with pytest.warns(UndefinedMetricWarning):
        assert sensitivity_score([0, 0], [0, 0]) == 0.0
    assert math.isnan(sensitivity_score([0, 0], [0, 1], zero_division=np.nan))
    assert sensitivity_score([0, 0], [0, 1], zero_division=1.0) == 1.0


@pytest.mark.parametrize(
    "call",
    [
        lambda: sensitivity_score([0, 1], [0, 1], zero_division="skip"),
        lambda: specificity_score([0, 1], [0, 1], pos_label=None),
        lambda: specificity_score([0, 1], [0, 1], sample_weight=2.0),
        lambda: sensitivity_score(1, [0, 1]),
        lambda: clinical_report([0, 1], [0.2, 0.8], threshold="0.5"),
        lambda: clinical_report([0, 1], [0.2, 0.8], pos_label=[1]),
        lambda: multiclass_report([0, 1], [[0.2, 0.8], [0.1, 0.9]], classes=None),
        lambda: format_report([("accuracy", 1.0)]),
        lambda: format_report({"accuracy": 1.0}, decimals=-1),
        lambda: plot_operating_points([0, 1], [0.2, 0.8], thresholds="0.5"),
    ],
)
def test_public_functions_validate_their_parameters(call):
    with pytest.raises(InvalidParameterError):
        call()


def test_usable_with_make_scorer():
    X, y = make_classification(n_samples=200, random_state=0)
    labels = NAMES[y]
    clf = LogisticRegression().fit(X, labels)
    scorer = make_scorer(specificity_score, pos_label="PNEUMONIA")
    expected = np.mean(clf.predict(X)[labels == "NORMAL"] == "NORMAL")
    assert scorer(clf, X, labels) == pytest.approx(expected)


def test_clinical_report_hand_computed():
    report = clinical_report(Y_TRUE, Y_SCORE)
    assert set(report) == BINARY_KEYS
    assert report["labels"] == [0, 1]
    assert report["confusion_matrix"] == [[4, 2], [1, 3]]
    assert report["sensitivity"] == report["recall"] == pytest.approx(0.75)
    assert report["specificity"] == pytest.approx(4 / 6)
    assert report["precision"] == pytest.approx(3 / 5)
    assert report["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert report["accuracy"] == pytest.approx(0.7)
    assert report["balanced_accuracy"] == pytest.approx((0.75 + 4 / 6) / 2)
    assert report["prevalence"] == pytest.approx(0.4)
    assert report["n_samples"] == 10
    assert report["threshold"] == 0.5
    assert report["roc_auc"] == pytest.approx(roc_auc_score(Y_TRUE, Y_SCORE))


def test_clinical_report_string_labels_and_threshold():
    y_true = NAMES[Y_TRUE]
    report = clinical_report(y_true, Y_SCORE, pos_label="PNEUMONIA", threshold=0.15)
    assert report["labels"] == ["NORMAL", "PNEUMONIA"]
    # Lower threshold: every positive is caught, 4 of 6 negatives flagged.
    assert report["confusion_matrix"] == [[2, 4], [0, 4]]
    assert report["sensitivity"] == 1.0
    # A score equal to the threshold counts as positive.
    tie = clinical_report(y_true, Y_SCORE, pos_label="PNEUMONIA", threshold=0.2)
    assert tie["confusion_matrix"][1] == [0, 4]


def test_clinical_report_negative_pos_label():
    report = clinical_report(Y_TRUE, 1 - Y_SCORE, pos_label=0)
    assert report["labels"] == [1, 0]
    assert report["prevalence"] == pytest.approx(0.6)
    assert report["roc_auc"] == pytest.approx(roc_auc_score(Y_TRUE, Y_SCORE))


def test_clinical_report_json_round_trip():
    report = clinical_report(NAMES[Y_TRUE], Y_SCORE, pos_label="PNEUMONIA")
    _assert_plain(report)
    assert json.loads(json.dumps(report)) == report


def test_clinical_report_single_class_warns_not_crashes():
    with pytest.warns(UndefinedMetricWarning, match="single class"):
        report = clinical_report([0, 0, 0], [0.2, 0.7, 0.1])
    assert math.isnan(report["roc_auc"])
    assert report["confusion_matrix"] == [[2, 1], [0, 0]]
    assert report["specificity"] == pytest.approx(2 / 3)
    assert math.isnan(report["sensitivity"])  # no positive case: undefined
    # Only positives with pos_label=1: negative label inferred as 0.
    with pytest.warns(UndefinedMetricWarning):
        report = clinical_report([1, 1], [0.9, 0.1])
    assert report["labels"] == [0, 1]
    # Only positives with a string label: the negative label must be given.
    with pytest.raises(ValueError, match="neg_label"):
        clinical_report(["PNEUMONIA"], [0.9], pos_label="PNEUMONIA")
    with pytest.warns(UndefinedMetricWarning):
        report = clinical_report(
            ["PNEUMONIA"], [0.9], pos_label="PNEUMONIA", neg_label="NORMAL"
        )
    assert report["labels"] == ["NORMAL", "PNEUMONIA"]


def test_clinical_report_input_errors():
    with pytest.raises(ValueError, match="multiclass_report"):
        clinical_report([0, 1, 2], [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="1-D"):
        clinical_report([0, 1], [[0.9, 0.1], [0.2, 0.8]])
    with pytest.raises(ValueError, match="pos_label"):
        clinical_report(NAMES[Y_TRUE], Y_SCORE)
    with pytest.raises(ValueError):
        clinical_report([0, 1, 1], [0.1, 0.5])


CLASSES = ["bacterial", "normal", "viral"]
MC_TRUE = np.array(["normal", "normal", "bacterial", "bacterial", "viral", "viral"])
MC_PROBA = np.array(
    [
        [0.1, 0.8, 0.1],  # normal -> normal
        [0.5, 0.3, 0.2],  # normal -> bacterial
        [0.7, 0.1, 0.2],  # bacterial -> bacterial
        [0.3, 0.1, 0.6],  # bacterial -> viral
        [0.2, 0.1, 0.7],  # viral -> viral
        [0.1, 0.2, 0.7],  # viral -> viral
    ]
)


def test_multiclass_report_hand_computed():
    report = multiclass_report(MC_TRUE, MC_PROBA, classes=CLASSES)
    assert report["labels"] == CLASSES
    assert report["confusion_matrix"] == [[1, 0, 1], [1, 1, 0], [0, 0, 2]]
    assert report["sensitivity"] == {"bacterial": 0.5, "normal": 0.5, "viral": 1.0}
    # bacterial: negatives are 2 normal + 2 viral, one normal flagged bacterial.
    assert report["specificity"]["bacterial"] == pytest.approx(3 / 4)
    assert report["specificity"]["viral"] == pytest.approx(3 / 4)
    assert report["specificity"]["normal"] == 1.0
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["support"] == {"bacterial": 2, "normal": 2, "viral": 2}
    assert report["roc_auc_ovr"] == pytest.approx(
        roc_auc_score(MC_TRUE, MC_PROBA, multi_class="ovr", labels=CLASSES)
    )
    assert report["roc_auc"]["normal"] == pytest.approx(
        roc_auc_score(MC_TRUE == "normal", MC_PROBA[:, 1])
    )
    _assert_plain(report)
    assert json.loads(json.dumps(report)) == report


def test_multiclass_report_absent_class_and_errors():
    keep = MC_TRUE != "viral"
    with pytest.warns(UndefinedMetricWarning, match="viral"):
        report = multiclass_report(MC_TRUE[keep], MC_PROBA[keep], classes=CLASSES)
    assert math.isnan(report["roc_auc_ovr"])
    assert math.isnan(report["roc_auc"]["viral"])
    assert math.isnan(report["sensitivity"]["viral"])
    with pytest.raises(ValueError, match="shape"):
        multiclass_report(MC_TRUE, MC_PROBA[:, :2], classes=CLASSES)
    with pytest.raises(ValueError, match="covid"):
        multiclass_report(["covid"] * 6, MC_PROBA, classes=CLASSES)


def test_format_report_binary_contains_every_key():
    report = clinical_report(NAMES[Y_TRUE], Y_SCORE, pos_label="PNEUMONIA")
    text = format_report(report)
    for key in report:
        assert key in text
    assert "0.7000" in text  # accuracy with 4 decimals
    assert "NORMAL" in text and "PNEUMONIA" in text
    lines = text.splitlines()
    # Confusion matrix rows: true NORMAL [4, 2], true PNEUMONIA [1, 3].
    assert lines[-2].split() == ["NORMAL", "4", "2"]
    assert lines[-1].split() == ["PNEUMONIA", "1", "3"]
    assert format_report(report, decimals=2).count("0.70") >= 1


def test_format_report_multiclass_contains_every_key_and_class():
    report = multiclass_report(MC_TRUE, MC_PROBA, classes=CLASSES)
    text = format_report(report)
    for key in report:
        assert key in text
    for label in CLASSES:
        assert label in text
    viral_row = next(line for line in text.splitlines() if line.startswith("viral "))
    # columns: sensitivity, specificity, roc_auc, support
    assert viral_row.split()[1:3] == ["1.0000", "0.7500"]


@pytest.fixture
def agg():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_plot_operating_points_marks_each_threshold(agg):
    thresholds = {"high sensitivity": 0.15, "default": 0.5}
    ax = plot_operating_points(Y_TRUE, Y_SCORE, thresholds=thresholds)
    # The ROC curve first, then one marker line per operating point.
    assert len(ax.lines) == 1 + len(thresholds)
    x, y = ax.lines[2].get_data()
    assert (x[0], y[0]) == pytest.approx((2 / 6, 3 / 4))  # threshold 0.5
    x, y = ax.lines[1].get_data()
    assert (x[0], y[0]) == pytest.approx((4 / 6, 1.0))  # threshold 0.15
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any(text.startswith("high sensitivity") for text in legend)


def test_plot_operating_points_uses_given_axes_and_string_labels(agg):
    _, ax = agg.subplots()
    out = plot_operating_points(
        NAMES[Y_TRUE], Y_SCORE, pos_label="PNEUMONIA", thresholds=[0.3, 0.5, 0.8], ax=ax
    )
    assert out is ax
    assert len(ax.lines) == 4
