"""scikit-learn's own estimator checks over every estimator of the package."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from cxrlearn import PneumoniaCNN

# A small dense configuration: the checks feed 2-D tabular data, which the
# network accepts when it has no convolution blocks.
_CNN = PneumoniaCNN(conv_filters=(), dense_units=(16,), dropout=0.0, epochs=30,
                    batch_size=16, learning_rate=0.02, random_state=0)

EXPECTED_FAILURES = {
    "PneumoniaCNN": {
        "check_sample_weight_equivalence_on_dense_data": (
            "minibatch SGD: weighting a sample by 2 is not the same as repeating it"
        ),
        "check_methods_subset_invariance": (
            "float32 matrix products differ in the last bit (~1e-7) between batch sizes"
        ),
    },
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


@parametrize_with_checks([_CNN], expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
