"""Real Kermany X-rays (slow tier; skipped when ../shared/data is absent)."""

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_default_pipeline_learns_real_xrays(data_dir):
    """The default recipe (7 epochs) on 800 real training images: val ROC-AUC > 0.95."""
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import Pipeline

    from cxrlearn import ImageLoader, PneumoniaCNN
    from cxrlearn.datasets import load_image_directory, patient_ids

    root = data_dir / "kermany224"
    paths, labels = load_image_directory(root / "train")
    val_paths, val_labels = load_image_directory(root / "val")
    keep = np.sort(np.random.default_rng(0).permutation(len(paths))[:800])
    pipe = Pipeline([
        ("loader", ImageLoader(image_size=176, color_mode="grayscale", intensity="equalize",
                               n_jobs=2)),
        ("cnn", PneumoniaCNN(random_state=0)),
    ]).fit(paths[keep], labels[keep])
    score = pipe.predict_proba(val_paths)[:, 1]
    assert roc_auc_score(val_labels == "PNEUMONIA", score) > 0.95
    # train and val share no patient by the README's rule, apart from a handful
    shared = set(patient_ids(paths)) & set(patient_ids(val_paths))
    assert len(shared) <= 10
