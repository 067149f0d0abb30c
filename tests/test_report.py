"""The evaluation report: its dictionary, its HTML, the command, and the page
as a person sees it in a real (headless) browser."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import confusion_matrix, recall_score
from sklearn.pipeline import Pipeline

from cxrlearn import ImageLoader, OperatingPointClassifier
from cxrlearn.cli import main
from cxrlearn.datasets import load_image_directory, patient_ids, write_synthetic_xray_directory
from cxrlearn.evaluation import (
    delong_roc_auc,
    evaluation_report,
    report_to_html,
    write_html_report,
)
from cxrlearn.io import save_model

from conftest import small_cnn

pytest.importorskip("matplotlib")

N_RESAMPLES = 200  # enough for the tests, fast


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """60 synthetic X-rays (32 px) and two unreadable files."""
    root = tmp_path_factory.mktemp("report_xrays")
    write_synthetic_xray_directory(root, 60, 32, random_state=0)
    (root / "PNEUMONIA" / "person9999_virus_1.png").write_bytes(b"\x89PNG not really")
    (root / "NORMAL" / "IM-9999-0001.jpeg").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def data(folder):
    paths, labels = load_image_directory(folder)
    return np.asarray(paths, dtype=object), np.asarray(labels)


def _readable(paths, labels):
    keep = np.array(["9999" not in p for p in paths])
    return paths[keep], labels[keep]


@pytest.fixture(scope="module")
def pipe(data):
    return Pipeline([
        ("loader", ImageLoader(image_size=24, color_mode="grayscale")),
        ("cnn", small_cnn(epochs=4)),
    ]).fit(*_readable(*data))


@pytest.fixture(scope="module")
def report(pipe, data):
    paths, labels = data
    return evaluation_report(pipe, paths, labels, groups=patient_ids(paths),
                             n_resamples=N_RESAMPLES, n_errors=4, data_name="synthetic")


# ------------------------------------------------------------- the dictionary


def test_report_is_json(report):
    text = json.dumps(report, allow_nan=False)  # strict JSON: no NaN
    assert json.loads(text) == report
    assert report["task"] == "binary" and report["classes"] == ["NORMAL", "PNEUMONIA"]


def test_report_metrics_use_the_models_own_labels(report, pipe, data):
    paths, labels = _readable(*data)
    pred = pipe.predict(paths)
    assert report["confusion_matrix"]["counts"] == confusion_matrix(
        labels, pred, labels=["NORMAL", "PNEUMONIA"]).tolist()
    sens = report["metrics"]["sensitivity"]
    assert sens["estimate"] == pytest.approx(
        recall_score(labels, pred, pos_label="PNEUMONIA"))
    tp = int(np.sum((labels == "PNEUMONIA") & (pred == "PNEUMONIA")))
    assert sens["count"] == [tp, int(np.sum(labels == "PNEUMONIA"))]
    for name, m in report["metrics"].items():
        assert m["low"] <= m["estimate"] <= m["high"], name
        assert "patients" in m["method"]
    score = pipe.predict_proba(paths)[:, 1]
    delong = delong_roc_auc(labels, score, pos_label="PNEUMONIA")
    assert report["roc_auc_delong"]["estimate"] == pytest.approx(delong.auc)
    assert report["roc_auc_delong"]["high"] == pytest.approx(delong.high)
    assert report["metrics"]["roc_auc"]["estimate"] == pytest.approx(delong.auc)
    point = report["model"]["operating_point"]
    assert point["threshold"] is None and point["pos_label"] == "PNEUMONIA"


def test_report_calibration_and_operating_points(report):
    cal = report["calibration"]
    assert 0 <= cal["brier_score"] <= 1 and 0 <= cal["expected_calibration_error"] <= 1
    assert sum(b["count"] for b in cal["bins"]) == report["data"]["n_images"]
    for point in report["operating_points"]:
        assert point["sensitivity"]["estimate"] >= point["target_sensitivity"]
        t = point["threshold"]
        assert t["low"] <= t["estimate"] <= t["high"]


def test_report_at_other_prevalences(report, pipe, data):
    rows = report["at_prevalence"]
    assert [r["prevalence"] for r in rows] == [0.1, 0.2, 0.3, 0.5]
    m = report["metrics"]
    sens, spec = m["sensitivity"]["estimate"], m["specificity"]["estimate"]
    for row in rows:
        p = row["prevalence"]
        assert row["accuracy"]["estimate"] == pytest.approx(sens * p + spec * (1 - p))
        for name in ("accuracy", "ppv", "npv"):
            entry = row[name]
            if entry["low"] is not None:
                assert entry["low"] <= entry["estimate"] <= entry["high"], (p, name)
            assert "Bayes" in entry["method"] and "patients" in entry["method"]
    # the rows answer for the mix asked for, and a mix that is no mix is refused first
    paths, labels = _readable(*data)
    other = evaluation_report(pipe, paths, labels, n_resamples=50, figures=False,
                              n_errors=0, prevalences=[0.05])
    assert [r["prevalence"] for r in other["at_prevalence"]] == [0.05]
    with pytest.raises(ValueError, match="prevalences must be in"):
        evaluation_report(pipe, paths, labels, figures=False, prevalences=[0.3, 1.0])


def test_report_data_section_names_unreadable_files(report):
    data = report["data"]
    assert data["n_files"] == 62 and data["n_images"] == 60
    skipped = {Path(s["path"]).name: s["reason"] for s in data["skipped"]}
    assert set(skipped) == {"person9999_virus_1.png", "IM-9999-0001.jpeg"}
    assert "empty" in skipped["IM-9999-0001.jpeg"]
    assert sum(data["images_per_class"].values()) == 60
    assert data["prevalence"]["PNEUMONIA"] == pytest.approx(
        data["images_per_class"]["PNEUMONIA"] / 60)
    sizes = data["original_sizes"]
    assert sizes["n_known"] == 60 and sizes["most_common"] == [[32, 32, 60]]
    assert 0 < data["n_patients"] < 60  # some patients have two images
    assert report["settings"]["resampled"] == "patients"


def test_report_says_the_model_was_trained_on_these_images(report):
    # the fixture's pipeline was fitted on the 60 readable images it is scored on
    assert report["data"]["n_trained_on"] == 60
    html = report_to_html(report)
    assert "60 of the 60 images were used to train this model" in html
    assert "--no-train-on-val" in html


def test_trained_on_finds_copies_and_the_same_films_resized(pipe, data, tmp_path):
    from PIL import Image

    from cxrlearn.evaluation import trained_on

    paths, labels = _readable(*data)
    copy = tmp_path / "renamed.png"
    shutil.copy(paths[0], copy)
    changed = tmp_path / "one_pixel_changed.png"
    pixels = np.array(Image.open(paths[0]))
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(changed)
    # the same films as a hospital export gives them: larger, JPEG, other grey levels
    # (at 176 px a film survives more: see perceptual_hashes)
    exported = []
    for i, path in enumerate(paths[1:6]):
        with Image.open(path) as film:
            film = film.convert("L").resize((64, 64), Image.Resampling.BICUBIC)
            film = film.point(lambda v: int(255 * (v / 255) ** 0.9))
            exported.append(tmp_path / f"export_{i}.jpeg")
            film.convert("RGB").save(exported[-1], quality=90)
    fresh, _ = write_synthetic_xray_directory(tmp_path / "new", 6, 32, random_state=7)
    wrapped = OperatingPointClassifier(FrozenEstimator(pipe), target_sensitivity=0.9)
    wrapped.fit(paths, labels)
    files = [paths[0], str(copy), str(changed), *exported, *fresh]
    assert trained_on(wrapped, files).tolist() == [True] * 8 + [False] * len(fresh)
    # by pixels alone, only the identical files
    assert trained_on(wrapped, files, near=False).tolist() == \
        [True, True] + [False] * (6 + len(fresh))
    assert trained_on(pipe[-1], paths) is None  # no pipeline of files: cannot tell


def test_report_model_section(report):
    model = report["model"]
    assert model["type"] == "Pipeline(ImageLoader, PneumoniaCNN)"
    assert model["parameters"]["conv_filters"] == [8, 16]
    assert model["loader"]["ImageLoader"]["image_size"] == 24
    assert model["training"]["epochs_trained"] == 4
    assert model["training"]["n_parameters"] > 0
    assert set(model["versions"]) >= {"cxrlearn", "scikit-learn", "keras"}


def test_report_errors_are_the_most_confident_with_grad_cam(report, pipe, data):
    errors = report["errors"]
    paths, labels = _readable(*data)
    n_wrong = int(np.sum(pipe.predict(paths) != labels))
    assert len(errors) == min(4, n_wrong) > 0
    confidence = [e["probability_of_predicted"] for e in errors]
    assert confidence == sorted(confidence, reverse=True)
    assert all(e["true"] != e["predicted"] for e in errors)
    assert all(e["thumbnail"].startswith("data:image/png;base64,") for e in errors)
    assert report["explanations"]["available"], report["explanations"]


def test_report_with_operating_point_classifier(pipe, data):
    paths, labels = _readable(*data)
    clf = OperatingPointClassifier(FrozenEstimator(pipe), target_sensitivity=0.9)
    clf.fit(paths, labels)
    report = evaluation_report(clf, paths, labels, n_resamples=50, n_errors=1,
                               figures=False, threshold_info="chosen on the test set")
    point = report["model"]["operating_point"]
    assert point["threshold"] == pytest.approx(clf.threshold_)
    assert "target sensitivity 0.9" in point["chosen_by"]
    assert point["chosen_by"].startswith("chosen on the test set")
    assert report["metrics"]["sensitivity"]["estimate"] == pytest.approx(
        recall_score(labels, clf.predict(paths), pos_label="PNEUMONIA"))
    assert report["metrics"]["sensitivity"]["estimate"] >= 0.9
    assert report["model"]["type"].startswith(
        "OperatingPointClassifier > FrozenEstimator > Pipeline(")
    assert report["settings"]["resampled"] == "images" and report["figures"] == {}


def test_report_three_classes(folder):
    paths, labels = load_image_directory(folder, label_mode="three_class")
    paths, labels = _readable(np.asarray(paths, dtype=object), np.asarray(labels))
    model = Pipeline([("loader", ImageLoader(image_size=24, color_mode="grayscale")),
                      ("cnn", small_cnn(epochs=2))]).fit(paths, labels)
    report = evaluation_report(model, paths, labels, n_resamples=50, n_errors=2)
    assert report["task"] == "multiclass"
    assert report["classes"] == ["BACTERIA", "NORMAL", "VIRUS"]
    assert set(report["per_class"]) == {"BACTERIA", "NORMAL", "VIRUS"}
    for per in report["per_class"].values():
        assert set(per) >= {"roc_auc", "sensitivity", "specificity", "ppv", "npv"}
    assert np.array(report["confusion_matrix"]["counts"]).shape == (3, 3)
    acc = report["metrics"]["accuracy"]
    assert acc["low"] <= acc["estimate"] <= acc["high"]
    assert set(report["figures"]) == {"curves", "confusion_calibration",
                                      "score_distributions"}
    html = report_to_html(report)
    assert "Per class (one-vs-rest)" in html and "VIRUS" in html


def test_report_input_errors(pipe, data):
    paths, labels = data
    with pytest.raises(ValueError, match="not classes of the model"):
        evaluation_report(pipe, paths[:4], ["A", "B", "A", "B"], figures=False)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        evaluation_report(pipe, paths, labels[:3], figures=False)


# ------------------------------------------------------------------ the HTML

_DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def test_html_is_self_contained(report, tmp_path):
    path = write_html_report(report, tmp_path / "report.html")
    html = path.read_text(encoding="utf-8")
    sources = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert len(sources) == 3 + len(report["errors"])  # three figures, thumbnails
    text = _DATA_URI.sub("", html)
    for external in ("http:", "https:", "//cdn", "<script", "<link", "url(", "@import"):
        assert external not in text.lower(), external
    for heading in ("Metrics with 95% confidence intervals", "At another prevalence",
                    "Confusion matrix",
                    "calibration", "Most confident errors", "Data", "Model"):
        assert heading in html
    assert "person9999_virus_1.png" in html  # the skipped file is named


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _screenshot(browser, page, shot, tmp_path):
    """Render ``page`` in headless Chromium into ``shot``: (height, width, 3) floats."""
    from PIL import Image

    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-dev-shm-usage", "--hide-scrollbars", f"--screenshot={shot}",
           "--window-size=1200,4000", f"--user-data-dir={tmp_path / 'profile'}",
           Path(page).resolve().as_uri()]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HOME": str(tmp_path)})
    assert shot.exists(), result.stderr[-2000:]
    return np.asarray(Image.open(shot).convert("RGB"), dtype=float)


def _coloured(pixels):
    """Fraction of strongly coloured pixels (text and tables are grey)."""
    return float(((pixels.max(axis=2) - pixels.min(axis=2)) > 80).mean())


def test_report_renders_in_a_headless_browser(report, tmp_path):
    """Open the report in Chromium and check its screenshot is a real page.

    The screenshot is kept in the test's tmp_path, and copied to
    ``$CXRLEARN_REPORT_SCREENSHOT`` when that variable is set.
    """
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium/Chrome binary on PATH (Debian: apt-get install "
                    "chromium; .ci/run installs it when it can)")
    page = write_html_report(report, tmp_path / "report.html")
    shot = tmp_path / "report.png"
    pixels = _screenshot(browser, page, shot, tmp_path)
    if os.environ.get("CXRLEARN_REPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["CXRLEARN_REPORT_SCREENSHOT"])
    assert pixels.shape[:2] == (4000, 1200)
    assert pixels.std() > 20  # not a blank page
    assert _coloured(pixels) > 0.02, _coloured(pixels)
    # the confusion matrix's dark blue cells (matplotlib "Blues")
    dark_blue = (pixels[..., 2] > 90) & (pixels[..., 0] < 40) & (pixels[..., 1] < 90)
    assert dark_blue.sum() > 500
    # the same page without its images has hardly any colour: the figures rendered
    bare = tmp_path / "bare.html"
    bare.write_text(_DATA_URI.sub("", page.read_text(encoding="utf-8")), encoding="utf-8")
    bare_pixels = _screenshot(browser, bare, tmp_path / "bare.png", tmp_path)
    assert _coloured(bare_pixels) < 0.1 * _coloured(pixels)


# --------------------------------------------------------------- the command


def test_report_command(pipe, folder, tmp_path, capsys):
    model_file = tmp_path / "model.skops"
    save_model(pipe, model_file)
    out, json_out = tmp_path / "out" / "report.html", tmp_path / "report.json"
    assert main(["report", str(model_file), str(folder), "--out", str(out),
                 "--json", str(json_out), "--n-resamples", "100", "--n-errors", "2",
                 "--prevalence", "0.15", "--prevalence", "0.4"]) == 0
    captured = capsys.readouterr()
    assert "roc_auc" in captured.out and "95% CI" in captured.out
    assert "at prevalence 0.15: accuracy" in captured.out and "at prevalence 0.40" in captured.out
    assert "skipped 2 unreadable file(s)" in captured.err
    assert "WARNING: 60 of the 60 images" in captured.err  # the training images
    content = json.loads(json_out.read_text())
    assert [r["prevalence"] for r in content["at_prevalence"]] == [0.15, 0.4]
    assert content["settings"] == {"n_resamples": 100, "n_errors": 2,
                                   "resampled": "patients", "random_state": 0}
    assert content["data"]["source"] == str(folder)
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "IM-9999-0001.jpeg" in html


def test_report_command_refuses_a_prevalence_that_is_no_share(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing.skops"), str(tmp_path),
                 "--out", str(tmp_path / "r.html"), "--prevalence", "30"]) == 1
    assert "--prevalence must be in (0, 1), got 30.0" in capsys.readouterr().err


def test_report_command_checks_out_first(tmp_path, capsys):
    # --out is an existing folder: refused before the (missing) model is opened
    assert main(["report", str(tmp_path / "missing.skops"), str(tmp_path),
                 "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cxrlearn report: error: --out")
    assert main(["report", str(tmp_path / "missing.skops"), str(tmp_path),
                 "--out", str(tmp_path / "r.html"), "--json", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("cxrlearn report: error: --json")


def test_operating_point_says_how_the_threshold_was_chosen():
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

    from cxrlearn.cli._common import operating_point as cli_operating_point
    from cxrlearn.evaluation import operating_point

    X, y = make_classification(random_state=0)
    cases = {
        "plain": (LogisticRegression(), None, "most probable class"),
        "fixed": (FixedThresholdClassifier(LogisticRegression(), threshold=0.3), 0.3,
                  "set by hand"),
        "tuned": (TunedThresholdClassifierCV(LogisticRegression(), cv=3), None,
                  "maximising balanced_accuracy"),
        "target": (OperatingPointClassifier(LogisticRegression(), target_sensitivity=0.9,
                                            cv=3), None, "out-of-fold predictions (cv=3)"),
    }
    for name, (clf, threshold, chosen) in cases.items():
        point = operating_point(clf.fit(X, y))
        assert chosen in point["chosen_by"], name
        assert cli_operating_point(clf) == point  # the old import still works
        if threshold is not None:
            assert point["threshold"] == threshold
    assert operating_point(cases["tuned"][0])["threshold"] == cases["tuned"][0].best_threshold_
