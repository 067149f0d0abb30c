"""scikit-learn's own estimator checks over every estimator of the package."""

from sklearn.utils.estimator_checks import parametrize_with_checks

import pytest
from sklearn.utils import estimator_checks as ec

from cxrlearn import ImageLoader, PneumoniaCNN

# A small dense configuration: the checks feed 2-D tabular data, which the
# network accepts when it has no convolution blocks.
_CNN = PneumoniaCNN(conv_filters=(), dense_units=(16,), dropout=0.0, epochs=4,
                    batch_size=32, learning_rate=0.05, random_state=0)

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


# ImageLoader takes file paths (1-D string input), for which
# parametrize_with_checks skips every check; run the API checks that do not
# need numeric data by hand. (OperatingPointClassifier is checked in
# test_thresholds.py.)
_LOADER_API_CHECKS = [
    ec.check_no_attributes_set_in_init,
    ec.check_parameters_default_constructible,
    ec.check_get_params_invariance,
    ec.check_set_params,
    ec.check_estimator_repr,
    ec.check_estimator_cloneable,
    ec.check_valid_tag_types,
    ec.check_mixin_order,
    ec.check_estimator_tags_renamed,
]


@pytest.mark.parametrize("check", _LOADER_API_CHECKS, ids=lambda c: c.__name__)
def test_image_loader_api_checks(check):
    check("ImageLoader", ImageLoader(image_size=8))
