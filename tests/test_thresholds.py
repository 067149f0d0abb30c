"""Tests for operating points: threshold search, OperatingPointClassifier and the
scikit-learn-native route (TunedThresholdClassifierCV, CalibratedClassifierCV and
FrozenEstimator). Toy scikit-learn classifiers stand in for the CNN."""

import pickle

import numpy as np
import pytest
from sklearn import config_context
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, brier_score_loss
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.model_selection import (
    GroupKFold,
    StratifiedKFold,
    TunedThresholdClassifierCV,
    train_test_split,
)
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.metadata_routing import MetadataRouter

from cxrlearn._thresholds import (
    OperatingPointClassifier,
    _operating_point_score,
    make_operating_point_scorer,
    threshold_for_balanced_accuracy,
    threshold_for_sensitivity,
    threshold_for_specificity,
)
from cxrlearn.metrics import sensitivity_score, specificity_score

NAMES = np.array(["NORMAL", "PNEUMONIA"])


def _random_problem(seed, n=60):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 2, n)
    # Rounded scores make ties between and within classes.
    score = np.round(np.clip(0.3 * y + rng.rand(n) * 0.7, 0, 1), 2)
    return y, score


def _sens(y, score, threshold, pos_label=1):
    return sensitivity_score(y == pos_label, score >= threshold, pos_label=True)


def _spec(y, score, threshold, pos_label=1):
    return specificity_score(y == pos_label, score >= threshold, pos_label=True)


@pytest.fixture(scope="module")
def split_problem():
    X, y = make_classification(
        n_samples=3000, n_features=10, n_informative=4, flip_y=0.05, random_state=0
    )
    return train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)


# --------------------------------------------------------------- threshold search
def test_threshold_for_sensitivity_hand_computed():
    y = [0, 0, 0, 1, 0, 1, 1, 1]
    score = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert threshold_for_sensitivity(y, score, 0.5) == 0.7
    assert threshold_for_sensitivity(y, score, 0.51) == 0.6
    assert threshold_for_sensitivity(y, score, 0.75) == 0.6
    assert threshold_for_sensitivity(y, score, 1.0) == 0.4
    assert threshold_for_specificity(y, score, 1.0) == 0.6
    assert threshold_for_specificity(y, score, 0.75) == 0.4
    assert threshold_for_specificity(y, score, 0.5) == 0.3


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("target", [0.1, 0.5, 0.8, 0.9, 0.95, 1.0])
def test_threshold_for_sensitivity_meets_target_and_is_maximal(seed, target):
    y, score = _random_problem(seed)
    threshold = threshold_for_sensitivity(y, score, target)
    assert threshold in score
    assert _sens(y, score, threshold) >= target
    higher = score[score > threshold]
    if higher.size:  # the next distinct score up misses the target
        assert _sens(y, score, higher.min()) < target


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("target", [0.1, 0.5, 0.8, 0.9, 0.95, 1.0])
def test_threshold_for_specificity_meets_target_and_is_minimal(seed, target):
    y, score = _random_problem(seed)
    threshold = threshold_for_specificity(y, score, target)
    assert _spec(y, score, threshold) >= target
    lower = score[score < threshold]
    if lower.size:  # the next distinct score down misses the target
        assert _spec(y, score, lower.max()) < target


@pytest.mark.parametrize("seed", range(8))
def test_threshold_for_balanced_accuracy_is_the_brute_force_optimum(seed):
    y, score = _random_problem(seed)
    threshold = threshold_for_balanced_accuracy(y, score)
    assert threshold in score

    def bacc(t):
        return balanced_accuracy_score(y, score >= t)

    candidates = np.unique(score)
    best = max(bacc(t) for t in candidates)
    assert bacc(threshold) == pytest.approx(best, abs=1e-12)
    # ties go to the highest (most specific) threshold
    assert threshold == max(t for t in candidates if bacc(t) >= best - 1e-12)


def test_threshold_for_balanced_accuracy_ignores_the_class_mix():
    # Duplicating every negative changes plain accuracy's optimum, not this one.
    rng = np.random.RandomState(0)
    y = np.r_[np.zeros(100, int), np.ones(100, int)]
    score = np.round(np.clip(0.35 * y + rng.rand(200) * 0.65, 0, 1), 3)
    negatives = y == 0
    y2 = np.r_[y, y[negatives], y[negatives]]
    score2 = np.r_[score, score[negatives], score[negatives]]
    assert threshold_for_balanced_accuracy(y, score) == threshold_for_balanced_accuracy(
        y2, score2
    )


def test_threshold_for_balanced_accuracy_string_labels():
    y = np.array(["NORMAL", "NORMAL", "PNEUMONIA", "NORMAL", "PNEUMONIA"])
    score = [0.1, 0.3, 0.4, 0.6, 0.9]
    assert threshold_for_balanced_accuracy(y, score, pos_label="PNEUMONIA") == 0.4
    with pytest.raises(ValueError, match="pos_label"):
        threshold_for_balanced_accuracy(y, score, pos_label=1)


def test_thresholds_monotonic_in_target():
    y, score = _random_problem(7, n=200)
    targets = np.linspace(0.05, 1.0, 20)
    sens = [threshold_for_sensitivity(y, score, t) for t in targets]
    spec = [threshold_for_specificity(y, score, t) for t in targets]
    assert np.all(np.diff(sens) <= 0)  # more sensitivity, lower threshold
    assert np.all(np.diff(spec) >= 0)  # more specificity, higher threshold
    assert sens[0] > sens[-1] and spec[0] < spec[-1]


def test_string_labels_and_pos_label():
    y, score = _random_problem(3)
    names = NAMES[y]
    expected = threshold_for_sensitivity(y, score, 0.9)
    t = threshold_for_sensitivity(names, score, 0.9, pos_label="PNEUMONIA")
    assert t == expected
    # NORMAL as the positive class with the complementary score.
    t = threshold_for_sensitivity(names, 1 - score, 0.9, pos_label="NORMAL")
    assert _sens(names, 1 - score, t, pos_label="NORMAL") >= 0.9


def test_specificity_target_unreachable_gives_inf():
    # The top-scored sample is negative: specificity 1 flags nothing.
    assert threshold_for_specificity([1, 0, 1], [0.2, 0.9, 0.5], 1.0) == np.inf


def test_rates_that_round_are_not_missed():
    # 7 of 10 positives: 7/10 and 1 - 3/10 are not exactly 0.7 in floating point.
    y = np.array([1] * 10 + [0] * 10)
    score = np.r_[np.linspace(0.9, 0.45, 10), np.linspace(0.6, 0.05, 10)]
    t = threshold_for_sensitivity(y, score, 0.7)
    assert _sens(y, score, t) == pytest.approx(0.7)
    t = threshold_for_specificity(y, score, 0.7)
    assert _spec(y, score, t) == pytest.approx(0.7)


# scikit-learn's validate_params checks the target (its InvalidParameterError is
# a ValueError); like scikit-learn it takes True for 1.
@pytest.mark.parametrize("target", [0, -0.1, 1.5, np.nan, "0.9", None])
def test_invalid_target(target):
    match = r"'target' parameter of threshold_for_s\w+ must be .*\(0\.0, 1\.0\]"
    with pytest.raises(InvalidParameterError, match=match):
        threshold_for_sensitivity([0, 1], [0.1, 0.9], target)
    with pytest.raises(ValueError, match=match):
        threshold_for_specificity([0, 1], [0.1, 0.9], target)


@pytest.mark.parametrize(
    "call",
    [
        lambda: threshold_for_sensitivity([0, 1], [0.1, 0.9], 0.9, pos_label=None),
        lambda: threshold_for_balanced_accuracy(0, [0.1, 0.9]),
        lambda: threshold_for_specificity([0, 1], "scores", 0.9),
        lambda: make_operating_point_scorer(target_sensitivity=1.5),
        lambda: make_operating_point_scorer(target_specificity=0.9, pos_label=[1]),
    ],
)
def test_public_functions_validate_their_parameters(call):
    with pytest.raises(InvalidParameterError):
        call()


def test_invalid_labels():
    with pytest.raises(ValueError, match="both classes"):
        threshold_for_sensitivity([1, 1, 1], [0.1, 0.5, 0.9], 0.9)
    with pytest.raises(ValueError, match="both classes"):
        threshold_for_specificity([0, 1, 2], [0.1, 0.5, 0.9], 0.9)
    with pytest.raises(ValueError, match="pos_label"):
        threshold_for_sensitivity(NAMES[[0, 1]], [0.1, 0.9], 0.9)
    with pytest.raises(ValueError, match="y_score"):
        threshold_for_sensitivity([0, 1], [0.1, np.nan], 0.9)


# ------------------------------------------------------------------------ scorer
def test_operating_point_score_ranks_feasible_first():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    meets = np.array([1, 1, 1, 1, 1, 1, 0, 0])  # sens 1, spec 0.5
    misses = np.array([1, 1, 0, 0, 0, 0, 0, 0])  # sens 0.5, spec 1
    assert _operating_point_score(y, meets, target_sensitivity=0.9) == 0.5
    score = _operating_point_score(y, misses, target_sensitivity=0.9)
    assert score == pytest.approx(-1.4)
    assert _operating_point_score(y, misses, target_specificity=0.9) == 0.5
    with pytest.raises(ValueError, match="exactly one"):
        make_operating_point_scorer()
    with pytest.raises(ValueError, match="exactly one"):
        make_operating_point_scorer(target_sensitivity=0.9, target_specificity=0.9)


@pytest.mark.parametrize("target", [0.8, 0.95])
def test_tuned_threshold_classifier_with_frozen_estimator(split_problem, target):
    """The scikit-learn-native route: TunedThresholdClassifierCV + FrozenEstimator."""
    X_train, X_val, y_train, y_val = split_problem
    fitted = LogisticRegression().fit(X_train, y_train)
    coef = fitted.coef_.copy()
    scorer = make_operating_point_scorer(target_sensitivity=target)
    # One curve on all the validation data: the target holds on it exactly.
    tuned = TunedThresholdClassifierCV(
        FrozenEstimator(fitted), scoring=scorer, cv="prefit", refit=False
    ).fit(X_val, y_val)
    assert sensitivity_score(y_val, tuned.predict(X_val)) >= target
    exact = threshold_for_sensitivity(y_val, fitted.predict_proba(X_val)[:, 1], target)
    # A grid of 100 thresholds: below the exact optimum, within one grid step.
    assert exact - 0.01 <= tuned.best_threshold_ <= exact
    # With folds, the per-fold curves are averaged: close to the target.
    tuned_cv = TunedThresholdClassifierCV(
        FrozenEstimator(fitted), scoring=scorer, cv=5
    ).fit(X_val, y_val)
    assert sensitivity_score(y_val, tuned_cv.predict(X_val)) >= target - 0.02
    # The frozen model is never refit.
    assert tuned_cv.estimator_.estimator is fitted
    np.testing.assert_array_equal(fitted.coef_, coef)


# -------------------------------------------------------- OperatingPointClassifier
def test_clone_and_params():
    clf = OperatingPointClassifier(
        LogisticRegression(C=0.5), target_sensitivity=0.9, cv=3, random_state=0
    )
    params = clf.get_params()
    assert params["target_sensitivity"] == 0.9
    assert params["estimator__C"] == 0.5
    cloned = clone(clf)
    assert cloned.get_params()["estimator__C"] == 0.5
    assert cloned.estimator is not clf.estimator
    cloned.set_params(estimator__C=2.0, target_sensitivity=0.8)
    assert cloned.estimator.C == 2.0 and clf.estimator.C == 0.5


def test_predict_uses_threshold(split_problem):
    X_train, X_test, y_train, _ = split_problem
    clf = OperatingPointClassifier(
        LogisticRegression(), target_sensitivity=0.95, cv=3
    ).fit(X_train, y_train)
    proba = clf.predict_proba(X_test)
    np.testing.assert_array_equal(proba, clf.estimator_.predict_proba(X_test))
    np.testing.assert_array_equal(clf.predict(X_test), proba[:, 1] >= clf.threshold_)
    assert clf.threshold_ < 0.5  # high sensitivity: lower than the default
    # More positives predicted than at 0.5.
    assert clf.predict(X_test).sum() > clf.estimator_.predict(X_test).sum()
    assert clf.validation_sensitivity_ >= 0.95
    np.testing.assert_allclose(clf.predict_log_proba(X_test), np.log(proba))
    assert clf.n_features_in_ == 10


def test_held_out_sensitivity_near_target():
    X, y = make_classification(
        n_samples=40_000, n_features=20, n_informative=5, flip_y=0.1, random_state=1
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=1
    )
    for kwargs in [{"target_sensitivity": 0.9}, {"target_specificity": 0.8}]:
        clf = OperatingPointClassifier(LogisticRegression(), cv=3, **kwargs)
        clf.fit(X_train, y_train)
        y_pred = clf.predict(X_test)
        if "target_sensitivity" in kwargs:
            assert clf.validation_sensitivity_ >= 0.9
            assert abs(sensitivity_score(y_test, y_pred) - 0.9) < 0.015
        else:
            assert clf.validation_specificity_ >= 0.8
            assert abs(specificity_score(y_test, y_pred) - 0.8) < 0.015


def test_string_labels_and_pos_label_choice(split_problem):
    X_train, X_test, y_train, _ = split_problem
    names = NAMES[y_train]
    clf = OperatingPointClassifier(LogisticRegression(), target_sensitivity=0.9, cv=3)
    clf.fit(X_train, names)
    assert clf.pos_label_ == "PNEUMONIA"
    assert set(clf.predict(X_test)) <= {"NORMAL", "PNEUMONIA"}
    normal = clone(clf).set_params(pos_label="NORMAL").fit(X_train, names)
    assert normal.pos_label_ == "NORMAL"
    assert normal.validation_sensitivity_ >= 0.9
    # NORMAL is the column 0 of predict_proba.
    np.testing.assert_array_equal(
        normal.predict(X_test) == "NORMAL",
        normal.predict_proba(X_test)[:, 0] >= normal.threshold_,
    )
    with pytest.raises(ValueError, match="pos_label='COVID'"):
        clone(clf).set_params(pos_label="COVID").fit(X_train, names)


class _CountingLogisticRegression(LogisticRegression):
    """LogisticRegression that counts its fits, to prove a model is not refit."""

    n_fits = 0

    def fit(self, X, y, sample_weight=None):
        type(self).n_fits += 1
        return super().fit(X, y, sample_weight=sample_weight)


def test_frozen_estimator_is_not_refit(split_problem):
    X_train, X_val, y_train, y_val = split_problem
    fitted = _CountingLogisticRegression().fit(X_train, y_train)
    coef = fitted.coef_.copy()
    before = _CountingLogisticRegression.n_fits
    clf = OperatingPointClassifier(
        FrozenEstimator(fitted), target_sensitivity=0.9, cv=5
    ).fit(X_val, y_val)
    assert _CountingLogisticRegression.n_fits == before
    np.testing.assert_array_equal(fitted.coef_, coef)
    assert clf.estimator_.estimator is fitted
    # All the validation data chooses the threshold, exactly.
    expected = threshold_for_sensitivity(y_val, fitted.predict_proba(X_val)[:, 1], 0.9)
    assert clf.threshold_ == expected
    # Clone keeps the frozen model (FrozenEstimator clones to itself).
    assert clone(clf).estimator.estimator is fitted


def test_refit_false_keeps_single_split_model(split_problem):
    X_train, _, y_train, _ = split_problem
    clf = OperatingPointClassifier(
        LogisticRegression(),
        target_sensitivity=0.9,
        cv=0.25,
        refit=False,
        random_state=0,
    ).fit(X_train, y_train)
    full = LogisticRegression().fit(X_train, y_train)
    assert not np.allclose(clf.estimator_.coef_, full.coef_)
    same = clone(clf).fit(X_train, y_train)
    assert same.threshold_ == clf.threshold_  # random_state makes it repeatable
    with pytest.raises(ValueError, match="single split"):
        clone(clf).set_params(cv=3).fit(X_train, y_train)


def test_group_splitter_uses_groups(split_problem):
    X_train, _, y_train, _ = split_problem
    groups = np.arange(len(y_train)) // 3  # e.g. 3 images per patient
    clf = OperatingPointClassifier(
        LogisticRegression(), target_sensitivity=0.9, cv=GroupKFold(3)
    )
    assert clf.fit(X_train, y_train, groups=groups).validation_sensitivity_ >= 0.9
    with pytest.raises(ValueError, match="groups"):
        clone(clf).fit(X_train, y_train)


class _RecordingLogisticRegression(LogisticRegression):
    """LogisticRegression that records the data and weights of each fit."""

    fits = []

    def fit(self, X, y, sample_weight=None):
        type(self).fits.append((np.asarray(X).copy(), sample_weight))
        return super().fit(X, y, sample_weight=sample_weight)


@pytest.fixture
def recording():
    _RecordingLogisticRegression.fits = []
    yield _RecordingLogisticRegression
    _RecordingLogisticRegression.fits = []


def _indexed_problem(n=300):
    """X whose first column is the row number, so a fit's rows can be told."""
    X, y = make_classification(n_samples=n, n_features=5, random_state=0)
    X[:, 0] = np.arange(n)
    return X, y


def test_sample_weight_is_routed_to_every_fit(recording):
    X, y = _indexed_problem()
    weights = np.linspace(0.5, 2.0, len(y))
    cv = StratifiedKFold(3)
    with config_context(enable_metadata_routing=True):
        estimator = recording(max_iter=500).set_fit_request(sample_weight=True)
        clf = OperatingPointClassifier(estimator, target_sensitivity=0.9, cv=cv)
        clf.fit(X, y, sample_weight=weights)
    # one fit per fold, then the refit on all the data
    assert len(recording.fits) == 4
    for X_fit, sample_weight in recording.fits:
        rows = X_fit[:, 0].astype(int)
        np.testing.assert_array_equal(sample_weight, weights[rows])
    fold_rows = [np.sort(fit[0][:, 0].astype(int)) for fit in recording.fits[:3]]
    for rows, (train, _) in zip(fold_rows, cv.split(X, y)):
        np.testing.assert_array_equal(rows, train)
    assert len(recording.fits[3][0]) == len(y)
    # the weights change the model, hence its probabilities
    unweighted = LogisticRegression(max_iter=500).fit(X, y)
    assert not np.allclose(clf.estimator_.coef_, unweighted.coef_)


def test_sample_weight_with_refit_false_fits_the_training_part(recording):
    X, y = _indexed_problem()
    weights = np.linspace(0.5, 2.0, len(y))
    with config_context(enable_metadata_routing=True):
        estimator = recording(max_iter=500).set_fit_request(sample_weight=True)
        clf = OperatingPointClassifier(
            estimator, target_sensitivity=0.9, cv=0.25, refit=False, random_state=0
        ).fit(X, y, sample_weight=weights)
    (X_fit, sample_weight), = recording.fits
    assert len(X_fit) == 225
    np.testing.assert_array_equal(sample_weight, weights[X_fit[:, 0].astype(int)])
    assert clf.estimator_.n_features_in_ == 5


def test_groups_are_routed_to_the_splitter(recording):
    X, y = _indexed_problem()
    groups = np.arange(len(y)) // 4  # e.g. 4 images per patient
    with config_context(enable_metadata_routing=True):
        clf = OperatingPointClassifier(
            recording(max_iter=500), target_sensitivity=0.9, cv=GroupKFold(3)
        ).fit(X, y, groups=groups)
        assert clf.validation_sensitivity_ >= 0.9
        # a splitter that takes no groups: not routed anywhere, as in sklearn
        with pytest.raises(TypeError, match="groups"):
            clone(clf).set_params(cv=3).fit(X, y, groups=groups)
    for X_fit, _ in recording.fits[:3]:  # no patient on both sides of a split
        trained = np.bincount(groups[X_fit[:, 0].astype(int)], minlength=75)
        assert set(np.unique(trained)) == {0, 4}
    assert len(recording.fits[3][0]) == len(y)  # the refit


@pytest.mark.filterwarnings("ignore:The groups parameter is ignored:UserWarning")
def test_routing_disabled_takes_groups_only(recording):
    X, y = _indexed_problem()
    groups = np.arange(len(y)) // 4
    clf = OperatingPointClassifier(
        recording(max_iter=500), target_sensitivity=0.9, cv=GroupKFold(3)
    ).fit(X, y, groups=groups)
    for X_fit, sample_weight in recording.fits[:3]:
        trained = np.bincount(groups[X_fit[:, 0].astype(int)], minlength=75)
        assert set(np.unique(trained)) == {0, 4}
        assert sample_weight is None
    # a splitter without groups ignores them, as before
    clone(clf).set_params(cv=3).fit(X, y, groups=groups)
    # sample_weight needs routing, as in TunedThresholdClassifierCV
    with pytest.raises(ValueError, match="enable_metadata_routing=True"):
        clone(clf).fit(X, y, sample_weight=np.ones(len(y)))


def test_unrequested_sample_weight_raises_with_routing():
    X, y = _indexed_problem()
    clf = OperatingPointClassifier(LogisticRegression(), target_sensitivity=0.9)
    with config_context(enable_metadata_routing=True):
        with pytest.raises(UnsetMetadataPassedError, match="sample_weight"):
            clf.fit(X, y, sample_weight=np.ones(len(y)))


def test_get_metadata_routing():
    with config_context(enable_metadata_routing=True):
        estimator = LogisticRegression().set_fit_request(sample_weight=True)
        routing = OperatingPointClassifier(
            estimator, target_sensitivity=0.9, cv=GroupKFold(3)
        ).get_metadata_routing()
        assert isinstance(routing, MetadataRouter)
        assert routing.consumes("fit", {"sample_weight", "groups", "other"}) == {
            "sample_weight",
            "groups",
        }
        # the default cv takes no groups; the estimator requests nothing
        routing = OperatingPointClassifier(
            LogisticRegression(), target_sensitivity=0.9
        ).get_metadata_routing()
        assert routing.consumes("fit", {"sample_weight", "groups"}) == set()


def test_routing_through_a_pipeline(recording):
    """sample_weight and groups reach the right objects inside a Pipeline."""
    X, y = _indexed_problem()
    weights = np.linspace(0.5, 2.0, len(y))
    groups = np.arange(len(y)) // 4
    with config_context(enable_metadata_routing=True):
        estimator = recording(max_iter=500).set_fit_request(sample_weight=True)
        pipe = make_pipeline(
            OperatingPointClassifier(
                estimator, target_sensitivity=0.9, cv=GroupKFold(3)
            )
        )
        pipe.fit(X, y, sample_weight=weights, groups=groups)
    assert len(recording.fits) == 4
    for X_fit, sample_weight in recording.fits:
        np.testing.assert_array_equal(sample_weight, weights[X_fit[:, 0].astype(int)])


def test_estimator_parameters_that_name_the_classes(split_problem):
    """Each fold is fitted on the labels themselves, not on encoded ones."""
    X_train, _, y_train, _ = split_problem
    estimator = LogisticRegression(class_weight={"NORMAL": 1.0, "PNEUMONIA": 3.0})
    clf = OperatingPointClassifier(estimator, target_sensitivity=0.9, cv=3)
    clf.fit(X_train, NAMES[y_train])
    assert clf.pos_label_ == "PNEUMONIA"
    assert clf.validation_sensitivity_ >= 0.9


def test_list_input_is_only_indexed():
    """X is passed to the estimator as is (e.g. a list of image paths)."""
    X, y = make_classification(n_samples=120, random_state=0)
    clf = OperatingPointClassifier(LogisticRegression(), target_sensitivity=0.9, cv=3)
    clf.fit(X.tolist(), y)
    assert clf.predict(X.tolist()).shape == (120,)


def test_invalid_configurations():
    X, y = make_classification(n_samples=60, random_state=0)
    with pytest.raises(ValueError, match="exactly one"):
        OperatingPointClassifier(LogisticRegression()).fit(X, y)
    with pytest.raises(ValueError, match="exactly one"):
        OperatingPointClassifier(
            LogisticRegression(), target_sensitivity=0.9, target_specificity=0.9
        ).fit(X, y)
    with pytest.raises(ValueError, match="target_sensitivity"):
        OperatingPointClassifier(LogisticRegression(), target_sensitivity=0).fit(X, y)
    with pytest.raises(ValueError, match="Only binary"):
        OperatingPointClassifier(LogisticRegression(), target_sensitivity=0.9).fit(
            X, y % 3 + (X[:, 0] > 0)
        )


def test_pickle_round_trip(split_problem):
    X_train, X_test, y_train, _ = split_problem
    clf = OperatingPointClassifier(
        LogisticRegression(), target_sensitivity=0.9, cv=3
    ).fit(X_train, y_train)
    restored = pickle.loads(pickle.dumps(clf))
    assert restored.threshold_ == clf.threshold_
    np.testing.assert_array_equal(restored.predict(X_test), clf.predict(X_test))


# predict deliberately disagrees with argmax(predict_proba): that is the point.
EXPECTED_FAILED_CHECKS = {
    "check_classifiers_train": "predict uses threshold_, not argmax(predict_proba)",
}


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
@parametrize_with_checks(
    [OperatingPointClassifier(LogisticRegression(), target_sensitivity=0.8, cv=2)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# ------------------------------------------------------------------- calibration
@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrating_a_frozen_model_improves_brier(method):
    X, y = make_classification(n_samples=3000, n_informative=5, random_state=0)
    X_train, X_rest, y_train, y_rest = train_test_split(
        X, y, test_size=0.6, random_state=0
    )
    X_cal, X_test, y_cal, y_test = train_test_split(
        X_rest, y_rest, test_size=0.5, random_state=0
    )
    # Deliberately miscalibrated: heavy regularisation squashes the
    # probabilities towards 0.5 while keeping a good ranking.
    fitted = _CountingLogisticRegression(C=1e-4).fit(X_train, y_train)
    coef = fitted.coef_.copy()
    n_fits = _CountingLogisticRegression.n_fits
    calibrated = CalibratedClassifierCV(FrozenEstimator(fitted), method=method)
    calibrated.fit(X_cal, y_cal)
    before = brier_score_loss(y_test, fitted.predict_proba(X_test)[:, 1])
    after = brier_score_loss(y_test, calibrated.predict_proba(X_test)[:, 1])
    assert after < 0.6 * before
    # The frozen model was used as is, not refit on the calibration data.
    assert _CountingLogisticRegression.n_fits == n_fits
    np.testing.assert_array_equal(fitted.coef_, coef)
    assert len(calibrated.calibrated_classifiers_) == 1
    assert calibrated.calibrated_classifiers_[0].estimator.estimator is fitted
