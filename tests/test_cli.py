"""The ``cxrlearn`` command line, end to end on small synthetic folders."""

import json
import subprocess
import sys

import joblib
import numpy as np
import pytest

from cxrlearn.cli import main
from cxrlearn.datasets import write_synthetic_xray_directory

FAST = ["--epochs", "1", "--batch-size", "16"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("xrays")
    write_synthetic_xray_directory(root / "train", 40, 176, random_state=0)
    write_synthetic_xray_directory(root / "val", 20, 176, random_state=1)
    return root


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "model.joblib"
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
    (["evaluate", "/no/such/model.joblib", "."], "model file not found"),
    (["predict", "/no/such/model.joblib", "x.png"], "model file not found"),
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
    pipe = joblib.load(trained)
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
    pipe = joblib.load(trained)
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
    out = tmp_path / "best.joblib"
    status = main(["tune", str(folder), "--out", str(out), "--cv", "2", *FAST,
                   "--param", "cnn__activation=relu,swish"])
    assert status == 0
    text = capsys.readouterr().out
    assert "rank" in text and "'cnn__activation': 'relu'" in text
    assert "'cnn__activation': 'swish'" in text
    best = joblib.load(out)
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
    out = tmp_path / "demo" / "pipe.joblib"
    assert main(["demo", "--n-samples", "40", "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    for key in ("roc_auc", "accuracy", "precision", "recall", "specificity"):
        assert key in text
    assert out.is_file()
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert metrics["n_samples"] == 20
    pipe = joblib.load(out)
    assert pipe.predict_proba(np.array([str(p) for p in
                                        (out.parent / "synthetic-data" / "val" / "NORMAL")
                                        .glob("*.png")][:2], dtype=object)).shape == (2, 2)


def test_interrupted_save_leaves_no_file(tmp_path, monkeypatch):
    from cxrlearn.cli import _common

    def boom(obj, path):
        with open(path, "wb") as fh:
            fh.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(joblib, "dump", boom)
    target = tmp_path / "model.joblib"
    with pytest.raises(KeyboardInterrupt):
        _common.atomic_dump({"a": 1}, target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
