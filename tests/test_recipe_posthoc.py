"""benchmarks/recipe_posthoc.py: the films every run misreads, weighted ensembles, members.

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
    (work / name).mkdir(parents=True, exist_ok=True)
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


def _cross_fitted_run(name, films, make_cnn, size):
    """A finished two-fold run of ``[ImageLoader(size), make_cnn(k)]`` on random
    films, as recipe_cv saves it (fold models included): ``(tests, proba, pipes)``."""
    from sklearn.pipeline import Pipeline

    from cxrlearn import ImageLoader
    from cxrlearn.io import save_model

    paths, labels, groups, _ = films
    rng = np.random.default_rng(size)
    for path in paths:  # films that differ, so that the networks' outputs do
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path)
    work = posthoc.WORK
    (work / name).mkdir(parents=True)
    tests = [np.arange(0, len(paths), 2), np.arange(1, len(paths), 2)]
    proba, pipes = np.full(len(paths), np.nan), []
    for k, test in enumerate(tests):
        train = np.setdiff1d(np.arange(len(paths)), test)
        pipe = Pipeline([("loader", ImageLoader(image_size=size, color_mode="grayscale")),
                         ("cnn", make_cnn(k))])
        pipe.fit(paths[train], labels[train])
        save_model(pipe, work / name / f"fold{k}.skops")
        proba[test] = pipe.predict_proba(paths[test])[:, 1]
        np.savez(work / name / f"fold{k}.npz", test=test, proba=proba[test])
        pipes.append(pipe)
    _save_run(work, name, labels, groups, proba)
    return tests, proba, pipes


def test_members_splits_an_ensemble_run_into_its_networks(data_dir, films):
    """Each member's held-out probabilities, saved as runs of their own; their
    averaged log-odds are the run's, and a fold of another size is refused."""
    from conftest import small_cnn
    from scipy.special import expit, logit

    from cxrlearn.io import save_model
    from cxrlearn.networks import member_networks

    paths, labels, _, _ = films
    tests, proba, pipes = _cross_fitted_run(
        "ens", films, lambda k: small_cnn(conv_filters=(4,), n_networks=2, epochs=2,
                                          random_state=k, precision="float32"), 8)
    X = pipes[0][:-1].transform(paths[tests[0]])
    first = [m.predict(X, verbose=0)[:, 0] for m in member_networks(pipes[0][-1].model_)]

    out = posthoc.members("ens", data_dir)
    assert sorted(out["members"]) == ["ens.member0", "ens.member1"]
    runs = [posthoc._load_run(f"ens.member{i}") for i in range(2)]
    for i, run in enumerate(runs):  # each member's own log-odds, on fold 0's films
        np.testing.assert_allclose(logit(run["proba"][tests[0]]), first[i], rtol=1e-4,
                                   atol=1e-4)
        assert np.array_equal(run["labels"], labels)
    mean = expit((logit(runs[0]["proba"]) + logit(runs[1]["proba"])) / 2)
    np.testing.assert_allclose(mean, proba, rtol=1e-5, atol=1e-6)
    assert not np.allclose(runs[0]["proba"], runs[1]["proba"])
    # a saved fold's folder is a run the other commands read
    assert posthoc.ensemble(["ens.member0", "ens.member1"], combine="logits")["errors"] >= 0

    # a fold with one network only: refused
    train = tests[0]
    pipes[1].set_params(cnn__n_networks=1).fit(paths[train], labels[train])
    save_model(pipes[1], posthoc.WORK / "ens" / "fold1.skops")
    with pytest.raises(SystemExit, match="fold 1 has 1 networks"):
        posthoc.members("ens", data_dir)


def test_members_splits_a_companion_run_into_its_two_recipes(data_dir, films):
    """A model with a companion: its network and its companion saved as runs
    of their own, whose log-odds, weighted as in the model, are the run's."""
    from conftest import small_cnn
    from scipy.special import expit, logit

    def pair(k):
        small = small_cnn(conv_filters=(4,), resize=8, n_networks=2, epochs=2,
                          precision="float32")
        return small_cnn(conv_filters=(4,), epochs=2, random_state=k, precision="float32",
                         equalize=True, companion=small, companion_weight=0.3)

    _, proba, _ = _cross_fitted_run("pair", films, pair, 16)
    out = posthoc.members("pair", data_dir)
    assert sorted(out["members"]) == ["pair.companion", "pair.member0"]
    main, companion = (posthoc._load_run(f"pair.{part}") for part in ("member0", "companion"))
    combined = expit(0.7 * logit(main["proba"]) + 0.3 * logit(companion["proba"]))
    np.testing.assert_allclose(combined, proba, rtol=1e-5, atol=1e-6)
    assert not np.allclose(main["proba"], companion["proba"])
