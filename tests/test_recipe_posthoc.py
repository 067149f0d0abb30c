"""benchmarks/recipe_posthoc.py errors: the films every cross-validated run misreads.

docs/recipe.rst quotes its counts (films wrong in every run, in some, in
none) and the ROC-AUC without the films every run gets wrong, so they are
tested on runs made up here, where the answer is known.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_benchmark

Image = pytest.importorskip("PIL.Image")


posthoc = load_benchmark("recipe_posthoc")


@pytest.fixture
def data_dir(tmp_path):
    """A Kermany-like folder: train/ and val/, NORMAL/ and PNEUMONIA/, 12 films."""
    root = tmp_path / "data"
    pixels = Image.fromarray(np.zeros((8, 8), dtype=np.uint8))
    for split, first in (("train", 1), ("val", 4)):
        stems = {"NORMAL": [f"IM-{n:04d}-0001" for n in range(first, first + 3)],
                 "PNEUMONIA": [f"person{n}_bacteria_{n}" for n in range(first, first + 3)]}
        for label, names in stems.items():
            (root / split / label).mkdir(parents=True)
            for stem in names:
                pixels.save(root / split / label / f"{stem}.jpeg")
    return root


def _save_run(work, name, labels, groups, proba):
    (work / name).mkdir(parents=True)
    pred = np.where(proba >= 0.5, "PNEUMONIA", "NORMAL")
    np.savez(work / name / "oof.npz", proba=proba, pred=pred, labels=labels,
             groups=np.asarray(groups, dtype=str))


@pytest.fixture
def films(tmp_path, data_dir, monkeypatch):
    """``data_dir``'s paths, labels (str), patients and pneumonia mask; runs go to tmp."""
    paths, labels, groups = posthoc.load_all(data_dir)
    labels = np.asarray(labels, dtype=str)
    monkeypatch.setattr(posthoc, "WORK", tmp_path / "work")
    return paths, labels, groups, labels == "PNEUMONIA"


def test_errors_counts_the_films_every_run_misreads(data_dir, films):
    paths, labels, groups, y = films
    work = posthoc.WORK
    base = np.where(y, 0.9, 0.1)
    always = [int(np.flatnonzero(~y)[0]), int(np.flatnonzero(y)[1])]  # one of each class
    sometimes = int(np.flatnonzero(y)[2])
    a, b = base.copy(), base.copy()
    a[always] = [0.8, 0.2]
    b[always] = [0.6, 0.3]
    b[sometimes] = 0.4
    _save_run(work, "a", labels, groups, a)
    _save_run(work, "b", labels, groups, b)

    out = posthoc.errors(["a", "b"], str(data_dir))

    assert out["errors_per_run"] == {"a": 2, "b": 3}
    wrong = out["wrong_in_every_run"]
    assert (wrong["films"], wrong["normal"], wrong["pneumonia"]) == (2, 1, 1)
    assert wrong["mean_probability_normal"] == [0.7, 0.7]
    assert wrong["mean_probability_pneumonia"] == [0.25, 0.25]
    assert out["wrong_in_some_runs"] == 1
    assert out["wrong_in_no_run"] == len(y) - 3
    assert out["roc_auc_of_mean"] < 1.0
    assert out["roc_auc_of_mean_without_them"] == 1.0
    names = {str(Path(paths[i]).relative_to(data_dir)) for i in always}
    assert set(out["films"]) == names
    json.dumps(out)  # what main() prints


def test_errors_refuses_runs_of_other_images(tmp_path, data_dir, monkeypatch):
    _, labels, groups = posthoc.load_all(data_dir)
    labels = np.asarray(labels, dtype=str)
    work = tmp_path / "work"
    monkeypatch.setattr(posthoc, "WORK", work)
    proba = np.linspace(0.05, 0.95, len(labels))
    _save_run(work, "a", labels, groups, proba)
    _save_run(work, "b", labels[::-1], groups, proba)
    # the same labels in the same order, but other patients' films
    _save_run(work, "c", labels, [f"other{g}" for g in groups], proba)
    with pytest.raises(SystemExit, match="same images"):
        posthoc.errors(["a", "b"], str(data_dir))
    with pytest.raises(SystemExit, match="same images"):
        posthoc.errors(["a", "c"], str(data_dir))
    with pytest.raises(SystemExit, match="does not hold the images"):
        posthoc.errors(["b"], str(data_dir))
    with pytest.raises(SystemExit, match="does not hold the images"):
        posthoc.errors(["c"], str(data_dir))
    with pytest.raises(SystemExit, match="same images"):
        posthoc.ensemble(["a", "c"])


def test_ensemble_weights_and_combines_the_runs(films):
    _, labels, groups, y = films
    work = posthoc.WORK
    # "a" misreads film i (0.3 for a pneumonia film), "b" reads it right (0.8):
    # the average decides by the weights
    i = int(np.flatnonzero(y)[0])
    a, b = np.where(y, 0.9, 0.1), np.where(y, 0.9, 0.1)
    a[i], b[i] = 0.3, 0.8
    _save_run(work, "a", labels, groups, a)
    _save_run(work, "b", labels, groups, b)

    equal = posthoc.ensemble(["a", "b"])
    assert equal["weights"] == [0.5, 0.5] and equal["errors"] == 0  # (0.3 + 0.8) / 2 = 0.55
    heavy = posthoc.ensemble(["a", "b"], weights=[3, 1])
    assert heavy["weights"] == [0.75, 0.25] and heavy["errors"] == 1  # 0.425
    # three runs read film i at 0.7, 0.7 and 0.15: the probabilities average to
    # 0.517 (right), the log-odds to (0.847 + 0.847 - 1.735) / 3 < 0 (wrong)
    for name, value in (("c", 0.7), ("d", 0.7), ("e", 0.15)):
        run = np.where(y, 0.9, 0.1)
        run[i] = value
        _save_run(work, name, labels, groups, run)
    assert posthoc.ensemble(["c", "d", "e"])["errors"] == 0
    out = posthoc.ensemble(["c", "d", "e"], combine="logits")
    assert out["combine"] == "logits" and out["errors"] == 1
    with pytest.raises(SystemExit, match="one non-negative weight per run"):
        posthoc.ensemble(["a", "b"], weights=[1])
    with pytest.raises(SystemExit, match="one non-negative weight per run"):
        posthoc.ensemble(["a", "b"], weights=[1, -1])
    json.dumps(out)
