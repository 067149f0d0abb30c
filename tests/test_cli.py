"""The ``cxrlearn`` command line, end to end on small synthetic folders."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from cxrlearn.cli import main
from cxrlearn.datasets import write_synthetic_xray_directory
from cxrlearn.io import load_model

FAST = ["--epochs", "1", "--batch-size", "16"]
REPO_TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("xrays")
    write_synthetic_xray_directory(root / "train", 40, 176, random_state=0)
    write_synthetic_xray_directory(root / "val", 20, 176, random_state=1)
    return root


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "model.skops"
    assert main(["train", str(folder), "--out", str(out), *FAST]) == 0
    return out


def test_help_does_not_import_tensorflow():
    code = (
        "import sys; from cxrlearn.cli import build_parser; build_parser();"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "cxrlearn.cli", "--help"],
                         capture_output=True, text=True, check=True)
    for command in ("demo", "train", "evaluate", "predict", "tune", "check"):
        assert command in out.stdout


@pytest.mark.parametrize("command", ["demo", "train", "evaluate", "predict", "tune", "check"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: cxrlearn " + command in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "/no/such/folder", "--out", "m.joblib"], "data folder not found"),
    (["evaluate", "/no/such/model.skops", "."], "file not found"),
    (["predict", "/no/such/model.skops", "x.png"], "file not found"),
    (["tune", ".", "--out", "m.joblib", "--param", "oops"], "--param expects"),
    (["train", ".", "--out", "m.joblib", "--class-weight", "NORMAL"], None),
])
def test_bad_input_is_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith(f"cxrlearn {argv[0]}: error:")
    assert "Traceback" not in "\n".join(err)
    if message:
        assert message in err[-1]


def test_error_exit_in_subprocess():
    out = subprocess.run([sys.executable, "-m", "cxrlearn.cli", "check", "/no/such/dir"],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("cxrlearn check: error:")
    assert "Traceback" not in out.stderr


def test_train_saves_pipeline_and_reports_val(trained, capsys, folder):
    pipe = load_model(trained)
    assert list(pipe.named_steps) == ["loader", "cnn"]
    assert list(pipe.classes_) == ["NORMAL", "PNEUMONIA"]
    loader = pipe.named_steps["loader"]  # the recipe's loader settings
    assert (loader.image_size, loader.color_mode, loader.intensity) == (
        (176, 176), "grayscale", "equalize")


@pytest.mark.parametrize("value, expected", [
    (None, (256,)), ("256", (256,)), ("256,8", (256, 8)), ("none", ()),
])
def test_dense_units_option(value, expected):
    import argparse

    from cxrlearn.cli._common import add_model_arguments, make_pipeline

    parser = add_model_arguments(argparse.ArgumentParser())
    args = parser.parse_args([] if value is None else ["--dense-units", value])
    cnn = make_pipeline(args).named_steps["cnn"]
    assert cnn.dense_units == expected
    assert cnn.epochs == 7  # the recipe's default when --epochs is not given


@pytest.mark.parametrize("value", ["abc", "256,0", "256,"])
def test_dense_units_option_rejects(value, capsys):
    import argparse

    from cxrlearn.cli._common import add_model_arguments

    parser = add_model_arguments(argparse.ArgumentParser())
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--dense-units", value])
    assert exc.value.code == 2
    assert "--dense-units" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    ([], (True, "balanced")),
    (["--balanced-batches"], (True, "balanced")),
    (["--balanced-batches", "--class-weight", "NORMAL=1.2"], (True, {"NORMAL": 1.2})),
    (["--class-weight", "none"], (True, None)),
    (["--no-balanced-batches"], (False, "balanced")),
    (["--no-balanced-batches", "--class-weight", "none"], (False, None)),
])
def test_balanced_batches_option(argv, expected):
    import argparse

    from cxrlearn.cli._common import add_model_arguments, make_pipeline

    args = add_model_arguments(argparse.ArgumentParser()).parse_args(argv)
    cnn = make_pipeline(args).named_steps["cnn"]
    assert (cnn.balanced_batches, cnn.class_weight) == expected


def test_evaluate_json(trained, folder, capsys):
    assert main(["evaluate", str(trained), str(folder / "val"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("roc_auc", "accuracy", "precision", "recall", "sensitivity",
                "specificity", "confusion_matrix"):
        assert key in report
    assert report["n_samples"] == 20
    assert np.sum(report["confusion_matrix"]) == 20


def test_evaluate_text(trained, folder, capsys):
    assert main(["evaluate", str(trained), str(folder)]) == 0  # uses folder/val
    out = capsys.readouterr().out
    assert "roc_auc" in out and "specificity" in out and "confusion_matrix" in out


def test_predict(trained, folder, capsys):
    files = sorted(str(p) for p in (folder / "val" / "PNEUMONIA").glob("*.png"))[:3]
    assert main(["predict", str(trained), *files, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in rows] == files
    pipe = load_model(trained)
    proba = pipe.predict_proba(np.array(files, dtype=object))
    for row, p in zip(rows, proba):
        assert row["label"] in ("NORMAL", "PNEUMONIA")
        assert row["probabilities"]["PNEUMONIA"] == pytest.approx(p[1], abs=1e-5)
    assert main(["predict", str(trained), files[0]]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(files[0]) and "PNEUMONIA=" in line


def test_predict_unreadable_file(trained, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert main(["predict", str(trained), str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_tune_ranks_and_saves_best(folder, tmp_path, capsys):
    out = tmp_path / "best.skops"
    status = main(["tune", str(folder), "--out", str(out), "--cv", "2", *FAST,
                   "--param", "cnn__activation=relu,swish"])
    assert status == 0
    text = capsys.readouterr().out
    assert "rank" in text and "'cnn__activation': 'relu'" in text
    assert "'cnn__activation': 'swish'" in text
    best = load_model(out)
    assert best.named_steps["cnn"].activation in ("relu", "swish")
    assert best.named_steps["loader"].memory is None  # temporary cache not shipped


def test_check_lists_all_bad_files(tmp_path, capsys):
    write_synthetic_xray_directory(tmp_path, 6, 32, random_state=0)
    (tmp_path / "NORMAL" / "empty.png").write_bytes(b"")
    (tmp_path / "PNEUMONIA" / "text.png").write_text("hello")
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "empty.png" in out and "text.png" in out
    (tmp_path / "NORMAL" / "empty.png").unlink()
    (tmp_path / "PNEUMONIA" / "text.png").unlink()
    assert main(["check", str(tmp_path)]) == 0


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo" / "pipe.skops"
    assert main(["demo", "--n-samples", "40", "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    for key in ("roc_auc", "accuracy", "precision", "recall", "specificity"):
        assert key in text
    assert out.is_file()
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert metrics["n_samples"] == 20
    pipe = load_model(out)
    assert pipe.predict_proba(np.array([str(p) for p in
                                        (out.parent / "synthetic-data" / "val" / "NORMAL")
                                        .glob("*.png")][:2], dtype=object)).shape == (2, 2)


def test_interrupted_save_leaves_no_file(tmp_path, monkeypatch):
    from cxrlearn.cli import Terminated
    from cxrlearn.io import atomic_write

    def boom(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise Terminated  # what SIGTERM raises inside cxrlearn's main()

    target = tmp_path / "model.skops"
    target.write_bytes(b"previous model")
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, boom)
    assert target.read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.skops"]


# --------------------------------------------------- decisions come from the model
@pytest.fixture(scope="module")
def decision_models(folder, tmp_path_factory):
    """Saved models whose decision is not 'argmax of a PNEUMONIA column'."""
    from sklearn.model_selection import TunedThresholdClassifierCV
    from sklearn.pipeline import Pipeline

    from cxrlearn import ImageLoader, OperatingPointClassifier
    from cxrlearn.datasets import load_image_directory
    from cxrlearn.io import save_model
    from conftest import small_cnn

    paths, labels = load_image_directory(folder / "train")
    paths, labels = np.asarray(paths, dtype=object), np.asarray(labels)

    def pipe():
        return Pipeline([("loader", ImageLoader(32, color_mode="grayscale")),
                         ("cnn", small_cnn(epochs=2))])

    models = {
        "normal_point": OperatingPointClassifier(
            pipe(), target_sensitivity=0.95, pos_label="NORMAL", cv=2),
        "logit_threshold": TunedThresholdClassifierCV(
            pipe(), response_method="decision_function", cv=2,
            scoring="balanced_accuracy"),
        "three_classes": pipe(),
    }
    three = np.array(["NORMAL", "BACTERIA", "VIRUS"])[np.arange(len(paths)) % 3]
    folder_out = tmp_path_factory.mktemp("decision")
    saved = {}
    for name, model in models.items():
        model.fit(paths, three if name == "three_classes" else labels)
        saved[name] = (model, save_model(model, folder_out / f"{name}.skops"))
    return saved


def _val_files(folder):
    return sorted(str(p) for p in (folder / "val").rglob("*.png"))


@pytest.mark.parametrize("name", ["normal_point", "logit_threshold", "three_classes"])
def test_predict_labels_are_the_models_own(name, decision_models, folder, capsys):
    model, path = decision_models[name]
    files = _val_files(folder)
    assert main(["predict", str(path), *files, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = model.predict(np.asarray(files, dtype=object))
    assert [r["label"] for r in rows] == [str(label) for label in expected]
    if name == "normal_point":
        assert rows[0]["threshold"] == pytest.approx(model.threshold_)
        assert rows[0]["threshold_applies_to"] == "predict_proba[:, NORMAL]"
    elif name == "logit_threshold":
        assert rows[0]["threshold"] == pytest.approx(model.best_threshold_)
        assert "decision_function" in rows[0]["threshold_applies_to"]
    else:
        assert "threshold" not in rows[0] and len(rows[0]["probabilities"]) == 3


@pytest.mark.parametrize("name", ["normal_point", "logit_threshold", "three_classes"])
def test_evaluate_reports_the_models_decisions(name, decision_models, folder, capsys):
    from sklearn.metrics import confusion_matrix

    from cxrlearn.datasets import load_image_directory

    model, path = decision_models[name]
    assert main(["evaluate", str(path), str(folder / "val"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    mode = "three_class" if name == "three_classes" else "folder"
    paths, labels = load_image_directory(folder / "val", label_mode=mode)
    paths = np.asarray(paths, dtype=object)
    pred = model.predict(paths)
    if name != "three_classes":
        assert report["threshold"] == pytest.approx(
            model.threshold_ if name == "normal_point" else model.best_threshold_)
    expected = confusion_matrix(labels, pred, labels=report["labels"])
    assert report["confusion_matrix"] == expected.tolist()


def test_pickle_model_runs_no_code(tmp_path, capsys, monkeypatch):
    sys.path.insert(0, str(REPO_TESTS))
    try:
        from _evil import MARKER_ENV, PickleBomb
    finally:
        sys.path.remove(str(REPO_TESTS))
    marker = tmp_path / "marker"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    crafted = tmp_path / "model.joblib"
    joblib.dump(PickleBomb(), crafted)
    assert main(["predict", str(crafted), "x.png"]) == 1
    err = capsys.readouterr().err
    assert "pickle" in err and "--allow-pickle" in err and str(crafted) in err
    assert not marker.exists()


def test_allow_pickle_reads_a_trusted_joblib(trained, folder, tmp_path, capsys):
    pipe = load_model(trained)
    legacy = tmp_path / "legacy.joblib"
    joblib.dump(pipe, legacy)
    files = _val_files(folder)[:2]
    assert main(["predict", str(legacy), *files]) == 1
    capsys.readouterr()
    assert main(["predict", str(legacy), *files, "--allow-pickle"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_truncated_model_names_file_and_cause(trained, tmp_path, capsys):
    cut = tmp_path / "cut.skops"
    cut.write_bytes(trained.read_bytes()[:200_000 // 8])
    assert main(["predict", str(cut), "x.png"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(cut) in err and ("truncated" in err or "corrupted" in err)


# ---------------------------------------------------------------- failing early
def _unwritable_out(tmp_path):
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        return locked / "model.skops"
    return "/proc/cxrlearn-no-such-dir/model.skops"  # not writable, even for root


@pytest.mark.parametrize("case", ["existing_folder", "parent_is_file", "unwritable"])
@pytest.mark.parametrize("command", ["train", "tune"])
def test_out_is_checked_before_any_work(command, case, folder, tmp_path, capsys):
    out = {
        "existing_folder": tmp_path,
        "parent_is_file": tmp_path / "afile" / "model.skops",
        "unwritable": _unwritable_out(tmp_path),
    }[case]
    (tmp_path / "afile").write_text("x")
    extra = ["--param", "cnn__dropout=0.1,0.2"] if command == "tune" else []
    assert main([command, str(folder), "--out", str(out), *FAST, *extra]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith(f"cxrlearn {command}: error: --out")
    assert "images (" not in err and "trained" not in err  # nothing was read or fitted


def test_saved_files_follow_the_umask(trained):
    mask = os.umask(0)
    os.umask(mask)
    assert trained.stat().st_mode & 0o777 == 0o666 & ~mask


def test_sigterm_leaves_previous_model_and_no_temporary_files(folder, tmp_path):
    out_dir, tmp_dir = tmp_path / "out", tmp_path / "tmp"
    out_dir.mkdir(), tmp_dir.mkdir()
    out = out_dir / "model.skops"
    out.write_bytes(b"previous model")
    env = {**os.environ, "TMPDIR": str(tmp_dir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cxrlearn.cli", "train", str(folder), "--out", str(out),
         "--epochs", "50", "--batch-size", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    lines = []
    for line in proc.stdout:  # wait until training has started
        lines.append(line)
        if "Epoch" in line or "/step" in line or "loss" in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, "".join(lines) + rest
    assert "terminated" in rest
    assert out.read_bytes() == b"previous model"
    assert [p.name for p in out_dir.iterdir()] == ["model.skops"]
    assert list(tmp_dir.iterdir()) == []
