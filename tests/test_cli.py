"""The ``cxrlearn`` command line, end to end on small synthetic folders."""

import json
import os
import shutil
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
from cxrlearn.networks import resolve_precision

FAST = ["--epochs", "1", "--batch-size", "16", "--companion-size", "0"]
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
    # val kept out of training: the tests below evaluate and threshold on it
    assert main(["train", str(folder), "--out", str(out), "--no-train-on-val", *FAST]) == 0
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


@pytest.mark.parametrize("command", ["demo", "train", "evaluate", "predict", "tune", "check",
                                     "explain", "report"])
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
        (176, 176), "grayscale", "raw")
    assert pipe.named_steps["cnn"].equalize  # equalised inside the main network


@pytest.mark.parametrize("option, value, expected", [
    ("--dense-units", None, (256,)), ("--dense-units", "256", (256,)),
    ("--dense-units", "256,8", (256, 8)), ("--dense-units", "none", ()),
    ("--conv-filters", None, (32, 64, 64, 128, 128)),
    ("--conv-filters", "32,64,128", (32, 64, 128)), ("--conv-filters", "8", (8,)),
])
def test_layer_size_options(option, value, expected):
    import argparse

    from cxrlearn.cli._common import add_model_arguments, make_pipeline

    parser = add_model_arguments(argparse.ArgumentParser())
    args = parser.parse_args([] if value is None else [option, value])
    cnn = make_pipeline(args).named_steps["cnn"]
    assert getattr(cnn, option[2:].replace("-", "_")) == expected
    assert cnn.epochs == 10  # the recipe's default when --epochs is not given


@pytest.mark.parametrize("option, value", [
    ("--dense-units", "abc"), ("--dense-units", "256,0"), ("--dense-units", "256,"),
    ("--conv-filters", "abc"), ("--conv-filters", "32,0"), ("--conv-filters", "32,"),
    ("--conv-filters", "none"),
])
def test_layer_size_options_reject(option, value, capsys):
    import argparse

    from cxrlearn.cli._common import add_model_arguments

    parser = add_model_arguments(argparse.ArgumentParser())
    with pytest.raises(SystemExit) as exc:
        parser.parse_args([option, value])
    assert exc.value.code == 2
    assert option in capsys.readouterr().err


def test_train_refuses_an_image_too_small_for_the_blocks_before_decoding(folder, tmp_path,
                                                                         capsys, monkeypatch):
    import cxrlearn.cli._train as train_module

    def no_fit(*args, **kwargs):
        raise AssertionError("fit must not start")

    monkeypatch.setattr(train_module, "fit_pipeline", no_fit)
    out = tmp_path / "m.skops"
    assert main(["train", str(folder), "--out", str(out), "--image-size", "28", *FAST]) == 1
    err = capsys.readouterr().err
    assert "--image-size 28 is too small for 5 convolution blocks" in err
    assert "at least 172 px" in err
    assert not out.exists()
    # three blocks take 28 px: the same command gets as far as fitting
    with pytest.raises(AssertionError, match="fit must not start"):
        main(["train", str(folder), "--out", str(out), "--image-size", "28",
              "--conv-filters", "8,16,16", *FAST])


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
    assert "at prevalence" not in out  # only when asked


def test_evaluate_at_another_prevalence(trained, folder, capsys):
    assert main(["evaluate", str(trained), str(folder), "--json",
                 "--prevalence", "0.1", "--prevalence", "0.5"]) == 0
    report = json.loads(capsys.readouterr().out)
    sens, spec = report["sensitivity"], report["specificity"]
    assert [r["prevalence"] for r in report["at_prevalence"]] == [0.1, 0.5]
    half = report["at_prevalence"][1]
    assert half["accuracy"] == pytest.approx((sens + spec) / 2)
    tenth = report["at_prevalence"][0]
    assert tenth["npv"] == pytest.approx(0.9 * spec / (0.9 * spec + 0.1 * (1 - sens)))
    assert main(["evaluate", str(trained), str(folder), "--prevalence", "0.2"]) == 0
    assert "at prevalence 0.20: accuracy" in capsys.readouterr().out
    # not a share: refused before the model is opened
    assert main(["evaluate", "/no/such/model.skops", str(folder), "--prevalence", "20"]) == 1
    assert "--prevalence must be in (0, 1), got 20.0" in capsys.readouterr().err


def test_evaluate_prevalence_needs_two_classes(decision_models, folder, capsys):
    _, path = decision_models["three_classes"]
    assert main(["evaluate", str(path), str(folder), "--prevalence", "0.1"]) == 1
    assert "--prevalence needs a model of two classes" in capsys.readouterr().err


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
        assert row["trained_on"] is False  # val films: not trained on
    assert main(["predict", str(trained), files[0]]) == 0
    captured = capsys.readouterr()
    line = captured.out.strip()
    assert line.startswith(files[0]) and "PNEUMONIA=" in line
    assert "WARNING" not in captured.err


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
    captured = capsys.readouterr()
    text = captured.out
    assert "rank" in text and "'cnn__activation': 'relu'" in text
    assert "'cnn__activation': 'swish'" in text
    best = load_model(out)
    assert best.named_steps["cnn"].activation in ("relu", "swish")
    assert best.named_steps["loader"].memory is None  # temporary cache not shipped
    assert best.named_steps["cnn"].callbacks is None  # nor the progress display
    # not a terminal: no bars, one line per finished fit (see PROGRESS_MARKS below)
    err = captured.err
    assert not [mark for mark in PROGRESS_MARKS if mark in err], err
    fits = [line for line in err.splitlines() if line.startswith("candidate ")]
    assert [line.split(":")[0] for line in fits] == [
        "candidate 1/2 fold 1/2", "candidate 1/2 fold 2/2",
        "candidate 2/2 fold 1/2", "candidate 2/2 fold 2/2"]
    assert "roc_auc" in fits[0] and "best so far roc_auc" in fits[-1]
    assert "refitting the best candidate on all images" in err
    # the precision "auto" resolves to on this machine, said once before the fits
    said = [line for line in err.splitlines() if line.startswith("precision: ")]
    assert len(said) == 1 and said[0].startswith(f"precision: {resolve_precision('auto')},")


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


def test_check_finds_films_stored_twice(tmp_path, capsys):
    from PIL import Image

    write_synthetic_xray_directory(tmp_path / "train", 12, 128, random_state=0)
    write_synthetic_xray_directory(tmp_path / "val", 6, 128, random_state=1)
    film = sorted((tmp_path / "train" / "NORMAL").glob("*.png"))[0]
    # the same film again for the same patient, split and label: harmless
    harmless = film.with_name(film.stem + "-0009.png")
    shutil.copy(film, harmless)
    assert main(["check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "duplicate films: 1 group of 2 files; 1 within one patient, split and label" in out
    # ... and exported larger as JPEG into val, under another patient and label
    (tmp_path / "val" / "PNEUMONIA").mkdir(exist_ok=True)
    exported = tmp_path / "val" / "PNEUMONIA" / "person999_virus_1.jpeg"
    with Image.open(film) as image:
        image.resize((300, 300)).convert("RGB").save(exported, quality=85)
    assert main(["check", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "1 group of 3 files; 0 within one patient" in lines[1]
    files, conflicts = lines[2].strip().split(": ")
    assert set(files.split(", ")) == {str(film), str(harmless), str(exported)}
    from cxrlearn.datasets import patient_id

    assert conflicts == (f"2 patients ({patient_id(film)}, person999), 2 splits (train, val), "
                         "2 labels (NORMAL, PNEUMONIA)")
    assert main(["check", str(tmp_path), "--skip-duplicates"]) == 0
    assert "duplicate" not in capsys.readouterr().out


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo" / "pipe.skops"
    assert main(["demo", "--n-samples", "40", "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    for key in ("roc_auc", "accuracy", "precision", "recall", "specificity"):
        assert key in text
    assert out.is_file()
    assert f"validation metrics to {out.with_suffix('.metrics.json')}" in text
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
    # PYTHONFAULTHANDLER: should the process ever crash instead of exiting (one
    # run in about a hundred ended with SIGSEGV), the failure shows where
    env = {**os.environ, "TMPDIR": str(tmp_dir), "PYTHONUNBUFFERED": "1",
           "PYTHONFAULTHANDLER": "1"}
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


# ------------------------------------------------- training on val, and after
def test_train_uses_val_too_and_the_commands_notice(folder, trained, tmp_path, capsys,
                                                    monkeypatch):
    from cxrlearn.cli import _train

    fitted_on = []
    real_fit = _train.fit_pipeline

    def recording_fit(pipe, paths, labels, display, **kwargs):
        fitted_on.append(list(paths))
        return real_fit(pipe, paths, labels, display, **kwargs)

    monkeypatch.setattr(_train, "fit_pipeline", recording_fit)
    out = tmp_path / "all.skops"
    assert main(["train", str(folder), "--out", str(out), *FAST]) == 0
    captured = capsys.readouterr()
    val_files = set(_val_files(folder))
    assert len(fitted_on[0]) == 60 and val_files <= set(fitted_on[0])
    assert "train and val together: 60 images" in captured.err
    assert "validation (" not in captured.out  # nothing left to report on

    # scoring it on val warns, and says how many images it was trained on
    assert main(["evaluate", str(out), str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n_trained_on"] == 20
    assert "WARNING: 20 of the 20 images" in captured.err
    # ... and a threshold chosen there is refused unless asked for
    thresholded = tmp_path / "t.skops"
    assert main(["threshold", str(out), str(folder), "--sensitivity", "0.9",
                 "--out", str(thresholded)]) == 1
    assert "20 of the 20 images" in capsys.readouterr().err and not thresholded.exists()
    assert main(["threshold", str(out), str(folder), "--sensitivity", "0.9",
                 "--out", str(thresholded), "--allow-trained-images"]) == 0
    # the model of --no-train-on-val was not trained on val: no warning
    capsys.readouterr()
    assert main(["evaluate", str(trained), str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n_trained_on"] == 0 and "WARNING" not in captured.err
    assert len(fitted_on) == 1

    # the same val films as another system exports them: larger, JPEG, other grey levels
    from PIL import Image

    export = tmp_path / "export"
    for path in _val_files(folder):
        target = export / Path(path).parent.name / (Path(path).stem + ".jpeg")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as film:
            film = film.convert("L").resize((440, 440), Image.Resampling.LANCZOS)
            film.point(lambda v: int(255 * (v / 255) ** 0.8)).save(target, quality=85)
    assert main(["evaluate", str(out), str(export), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n_trained_on"] == 20
    assert "20 of the 20 images" in captured.err and "another size" in captured.err
    assert main(["evaluate", str(trained), str(export), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_trained_on"] == 0

    # predict marks each film it was trained on, and warns once
    new = sorted(str(p) for p in export.rglob("*.jpeg"))[:2]
    files = [*new, *_val_files(folder)[:1]]
    assert main(["predict", str(out), *files, "--json"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["trained_on"] for line in captured.out.splitlines()] == [True] * 3
    assert "WARNING: 3 of the 3 files were used to train" in captured.err
    assert main(["predict", str(trained), *files]) == 0
    assert "WARNING" not in capsys.readouterr().err


# ------------------------------------------------------------------- threshold
def test_threshold_round_trip(trained, folder, tmp_path, capsys):
    from sklearn.frozen import FrozenEstimator

    from cxrlearn import OperatingPointClassifier

    out = tmp_path / "thresholded.skops"
    val = folder / "val"
    assert main(["threshold", str(trained), str(folder), "--sensitivity", "0.9",
                 "--out", str(out)]) == 0  # folder/val is used
    text = capsys.readouterr().out
    assert "threshold" in text and "validation sensitivity" in text and str(out) in text
    model = load_model(out)
    assert isinstance(model, OperatingPointClassifier)
    assert isinstance(model.estimator_, FrozenEstimator) and model.pos_label_ == "PNEUMONIA"
    assert model.validation_sensitivity_ >= 0.9

    assert main(["evaluate", str(out), str(val), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["threshold"] == pytest.approx(model.threshold_)
    assert report["threshold_applies_to"] == "predict_proba[:, PNEUMONIA]"
    assert report["sensitivity"] == pytest.approx(model.validation_sensitivity_)

    files = _val_files(folder)
    assert main(["predict", str(out), *files, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["threshold"] == pytest.approx(model.threshold_)
    assert [r["label"] for r in rows] == model.predict(np.asarray(files, dtype=object)).tolist()

    # a thresholded model gets a new threshold for the model inside it
    again = tmp_path / "again.skops"
    assert main(["threshold", str(out), str(val), "--specificity", "0.8",
                 "--pos-label", "PNEUMONIA", "--out", str(again), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["validation_specificity"] >= 0.8 and result["target"] == {"specificity": 0.8}
    assert isinstance(load_model(again).estimator_.estimator, type(load_model(trained)))


@pytest.mark.parametrize("argv, message", [
    (["--sensitivity", "0.9", "--pos-label", "COVID"], "not one of the classes"),
    (["--sensitivity", "1.5"], "must be in (0, 1]"),
])
def test_threshold_bad_input(trained, folder, tmp_path, capsys, argv, message):
    status = main(["threshold", str(trained), str(folder / "val"), *argv,
                   "--out", str(tmp_path / "t.skops")])
    assert status == 1 and message in capsys.readouterr().err
    assert not (tmp_path / "t.skops").exists()


def test_threshold_needs_a_target(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["threshold", "m.skops", "val", "--out", "t.skops"])
    assert exc.value.code == 2
    assert "--sensitivity" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["threshold", "--help"])
    assert "usage: cxrlearn threshold" in capsys.readouterr().out


# -------------------------------------------------------------------- progress
PROGRESS_MARKS = ("\r", "it/s", "img/s", "step/s", "%|", "ms/step", "━")


def test_search_progress_bars_name_candidate_fold_epoch(xrays):
    """The tune display on a terminal, on arrays with a small network (fast)."""
    import io

    from sklearn.metrics import get_scorer
    from sklearn.model_selection import GridSearchCV

    from conftest import small_cnn
    from cxrlearn.cli._progress import Display, ScoreRecorder, fit_progress

    X, y = xrays
    screen = io.StringIO()
    display = Display(bars=True, file=screen)
    callback = fit_progress(display, n_candidates=2, n_folds=2)
    scorer = ScoreRecorder(get_scorer("roc_auc"), "roc_auc", callback)
    callback.best = scorer.best_text
    search = GridSearchCV(small_cnn(epochs=2, callbacks=[callback]),
                          {"dropout": [0.0, 0.2]}, cv=2, scoring=scorer)
    search.fit(X[:60], y[:60])
    text = screen.getvalue()
    for desc in ("candidate 1/2 fold 1/2 epoch 1/2", "candidate 2/2 fold 2/2 epoch 2/2",
                 "refit on all images epoch 2/2"):
        assert desc in text
    assert "step/s" in text and "best so far roc_auc" in text
    assert sorted(scorer.scores) == [0, 1] and all(len(s) == 2 for s in scorer.scores.values())
    assert search.best_estimator_.callbacks[0] is callback  # shared, not copied


def test_train_bars_when_forced(folder, tmp_path, capsys, monkeypatch):
    from cxrlearn.cli import _progress

    monkeypatch.setattr(_progress, "CHUNK", 8)  # a decoding bar for 40 images
    out = tmp_path / "m.skops"
    assert main(["train", str(folder / "train"), "--out", str(out), *FAST,
                 "--progress"]) == 0
    err = capsys.readouterr().err
    assert "decoding:" in err and "/40 [" in err and "img/s" in err
    assert "epoch 1/1:" in err and "/3 [" in err and "step/s" in err and "loss=" in err
    assert "epoch 1/1: loss" not in err  # the plain epoch line is for logs only


def test_bars_follow_the_terminal_and_json(monkeypatch):
    import argparse
    import io

    from cxrlearn.cli._progress import Display

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert Display().bars and not Display(file=io.StringIO()).bars
    for progress, json_, bars in [(None, False, True), (None, True, False),
                                  (True, True, True), (False, False, False)]:
        args = argparse.Namespace(progress=progress, json=json_)
        assert Display.from_args(args).bars is bars
    monkeypatch.setattr("cxrlearn.cli._progress._tqdm", lambda: None)  # no tqdm installed
    display = Display(bars=True)
    assert not display.bars
    display.line("epoch 1/2: loss 0.5")
    assert sys.stderr.getvalue() == "epoch 1/2: loss 0.5\n"


def test_unsized_terminal_gets_the_plain_lines():
    # a pseudo-terminal nobody sized (0 columns) shows none of tqdm's bars
    import fcntl
    import pty
    import struct
    import termios

    from cxrlearn.cli._progress import Display

    leader, follower = pty.openpty()
    try:
        terminal = os.fdopen(follower, "w")
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 0, 0, 0))
        assert terminal.isatty() and Display(file=terminal).tqdm is None
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        assert Display(file=terminal).tqdm is not None  # a sized terminal: bars
        terminal.close()
    finally:
        os.close(leader)


def test_tune_says_the_cause_of_a_failing_fit_first(folder, tmp_path, capsys):
    assert main(["tune", str(folder), "--out", str(tmp_path / "m.skops"), "--cv", "2",
                 "--image-size", "100", "--param", "cnn__dropout=0.1,0.2", *FAST]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cxrlearn tune: error: Input images of 100x100 pixels are too small")
    assert "fits failed" not in err


def test_check_counts_files_in_words(tmp_path, capsys):
    write_synthetic_xray_directory(tmp_path, 2, 32, random_state=0)
    next(tmp_path.rglob("*.png")).unlink()
    assert main(["check", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().splitlines() == [
        "1 file checked: 1 ok, 0 bad", "duplicate films: none"]
    assert main(["check", str(tmp_path), "--progress"]) == 0
    captured = capsys.readouterr()
    assert "checking" in captured.err and captured.out.startswith("1 file checked")


def test_commands_print_no_tensorflow_lines(trained, folder):
    files = _val_files(folder)[:2]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-m", "cxrlearn.cli", "predict", str(trained),
                          *files], capture_output=True, text=True, env=env, check=True)
    assert out.stderr == "", out.stderr
    assert len(out.stdout.splitlines()) == 2


# ------------------------------------------------------------- small things
def test_help_shows_the_default_numbers(capsys):
    from cxrlearn import PneumoniaCNN
    from cxrlearn.cli._common import CNN_DEFAULTS

    params = PneumoniaCNN().get_params()
    assert {k: params[k] for k in CNN_DEFAULTS} == CNN_DEFAULTS
    for command, epochs in (("train", 10), ("tune", 10), ("demo", 8)):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert f"training epochs (default: {epochs})" in help_text
        assert "PneumoniaCNN's" not in help_text


@pytest.mark.parametrize("flag, param, value, bad, error", [
    ("--ema-momentum", "ema_momentum", 0.99, ("0", "1", "1.5"),
     r"--ema-momentum must be in \(0, 1\)"),
    ("--mixup", "mixup_alpha", 0.2, ("0", "-1"), "--mixup must be > 0"),
    ("--weight-decay", "weight_decay", 0.5, ("-0.1", "nan"), "--weight-decay must be >= 0"),
])
def test_off_by_default_options_reach_the_network(flag, param, value, bad, error):
    from cxrlearn.cli import build_parser
    from cxrlearn.cli._common import CLIError, make_pipeline

    def given(argv):
        return make_pipeline(build_parser().parse_args(argv)).get_params()[f"cnn__{param}"]

    for command in (["train", "d", "--out", "m.skops"], ["tune", "d", "--out", "m.skops"]):
        assert given(command) is None
        assert given([*command, flag, str(value)]) == value
        for wrong in bad:
            with pytest.raises(CLIError, match=error):
                given([*command, flag, wrong])


def test_label_smoothing_defaults_per_command_and_class_count(capsys):
    from cxrlearn.cli import build_parser
    from cxrlearn.cli._common import CLIError, make_pipeline
    from cxrlearn.cli._train import TRAIN_LABEL_SMOOTHING

    assert TRAIN_LABEL_SMOOTHING == 0.2

    def smoothing(argv, n_classes):
        args = build_parser().parse_args(argv)
        return make_pipeline(args, n_classes=n_classes).get_params()["cnn__label_smoothing"]

    for command in (["train", "d", "--out", "m.skops"], ["tune", "d", "--out", "m.skops"]):
        assert smoothing(command, 2) == TRAIN_LABEL_SMOOTHING
        assert smoothing(command, 3) == 0.0  # three classes: none unless asked
        assert smoothing([*command, "--label-smoothing", "0.1"], 2) == 0.1
        assert smoothing([*command, "--label-smoothing", "0"], 2) == 0.0
        with pytest.raises(CLIError, match="needs two classes; the labels have 3"):
            smoothing([*command, "--label-smoothing", "0.2"], 3)
        with pytest.raises(CLIError, match=r"must be in \[0, 1\)"):
            smoothing([*command, "--label-smoothing", "1"], 2)
    assert smoothing(["demo"], 2) == 0.0  # the study's network, as documented
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: 0.2 for two classes, 0 for three" in help_text


def test_make_demo_says_what_it_installs():
    import shutil

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "-B", "demo"], cwd=REPO_TESTS.parent,
                         capture_output=True, text=True, check=True).stdout
    assert "==> installing cxrlearn and its dependencies" in out
    assert "--quiet" not in out and "cxrlearn demo" in out


def test_unreadable_training_image_points_to_check(tmp_path, capsys):
    write_synthetic_xray_directory(tmp_path / "data", 6, 176, random_state=0)
    (tmp_path / "data" / "NORMAL" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "m.skops")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "broken.png" in err and f"cxrlearn check {tmp_path / 'data'}" in err
    assert "trained" not in err


# ------------------------------------------------------------------- patients
HOSPITAL_NAMES = ["MRN00123_2024-01-05_PA", "MRN00123_2024-03-09_PA", "MRN00456_2024-02-11_PA",
                  "MRN00789_2024-02-12_PA"]


@pytest.fixture(scope="module")
def hospital(folder, tmp_path_factory):
    """The synthetic train images under hospital-style names, and a manifest."""
    import shutil

    root = tmp_path_factory.mktemp("hospital")
    rows, patients = [], {}
    for i, src in enumerate(sorted((folder / "train").rglob("*.png"))):
        label = src.parent.name
        patient = f"MRN{i // 2:05d}"  # two films per patient
        dest = root / label / f"{patient}_2024-01-{i % 28 + 1:02d}_PA.png"
        dest.parent.mkdir(exist_ok=True)
        shutil.copy(src, dest)
        rows.append(f"{label}/{dest.name},{label}")
        patients[f"{label}/{dest.name}"] = patient
    (root / "manifest.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    (root / "groups.csv").write_text(
        "file,patient\n" + "\n".join(f"{p},{g}" for p, g in patients.items()) + "\n")
    return root


def test_hospital_names_warn_in_tune(hospital, tmp_path, capsys):
    status = main(["tune", str(hospital), "--out", str(tmp_path / "m.skops"),
                   "--param", "cnn__no_such_param=1,2"])  # stops right after the patients
    err = capsys.readouterr().err
    assert status == 1 and "unknown parameters" in err
    warning = [line for line in err.splitlines() if "warning:" in line]
    assert len(warning) == 1 and "--patient-pattern" in warning[0] and "--groups" in warning[0]


@pytest.mark.parametrize("option", [["--patient-pattern", r"^(MRN\d+)_"],
                                    ["--groups", "groups.csv"]])
def test_patients_from_a_pattern_or_a_groups_file(hospital, tmp_path, capsys, option,
                                                  monkeypatch):
    monkeypatch.chdir(hospital)
    status = main(["tune", str(hospital), "--out", str(tmp_path / "m.skops"), *option,
                   "--param", "cnn__no_such_param=1,2"])
    err = capsys.readouterr().err
    assert status == 1 and "warning:" not in err
    n = len(list(hospital.rglob("*.png")))
    assert f"{n} images of {n // 2} patients" in err


def test_read_groups_matches_path_suffixes(tmp_path):
    from cxrlearn.cli._common import CLIError
    from cxrlearn.cli._data import read_groups

    paths = [str(tmp_path / "train" / c / f"{c[0]}{i}.png")
             for c in ("NORMAL", "PNEUMONIA") for i in range(2)]
    csv = tmp_path / "g.csv"
    csv.write_text("path,group\nN0.png,a\nNORMAL/N1.png,a\n"
                   f"{paths[2]},b\ntrain/PNEUMONIA/P1.png,c\nother/x.png,z\n")
    assert read_groups(csv, paths).tolist() == ["a", "a", "b", "c"]
    for text, message in [
        ("path,group\nN0.png,a\n", "3 of 4 training images have no row"),
        ("path,group\nN0.png,a\nNORMAL/N0.png,b\n", "has two patients"),
        ("name,group\nN0.png,a\n", "needs the columns path"),
        ("path,group\nN0.png,\n", "empty path or patient on line 2"),
    ]:
        csv.write_text(text)
        with pytest.raises(CLIError, match=message):
            read_groups(csv, paths)
    twins = [str(tmp_path / c / "x.png") for c in ("NORMAL", "PNEUMONIA")]
    csv.write_text("path,group\nx.png,a\n")
    with pytest.raises(CLIError, match="names 2 training images"):
        read_groups(csv, twins)


def test_train_on_a_manifest_holds_out_patients(hospital, tmp_path, capsys):
    out = tmp_path / "m.skops"
    assert main(["train", "--manifest", str(hospital / "manifest.csv"), "--out", str(out),
                 "--patient-pattern", r"^(MRN\d+)_", "--val-fraction", "0.25", *FAST]) == 0
    captured = capsys.readouterr()
    assert "held out" in captured.err and "other patients" in captured.err
    assert "validation (" in captured.out and "roc_auc" in captured.out
    assert load_model(out).named_steps["cnn"].callbacks is None


@pytest.mark.parametrize("argv, message", [
    (["--manifest", "m.csv", "DIR"], "either DATA_DIR or --manifest"),
    (["--groups", "g.csv"], "add --val-fraction"),
    (["--manifest", "missing.csv"], "--manifest: file not found"),
])
def test_data_options_errors(argv, message, folder, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "DIR").mkdir()
    if "--manifest" not in argv:
        argv = [str(folder), *argv]
    assert main(["train", *argv, "--out", "m.skops"]) == 1
    assert message in capsys.readouterr().err


def test_train_a_seed_ensemble(folder, tmp_path, capsys):
    from cxrlearn.networks import member_networks

    out = tmp_path / "m.skops"
    assert main(["train", str(folder / "train"), "--out", str(out), *FAST,
                 "--networks", "2"]) == 0
    err = capsys.readouterr().err
    # each network's epochs are named on their progress lines
    assert "network 1/2 epoch 1/1: loss" in err and "network 2/2 epoch 1/1: loss" in err
    cnn = load_model(out).named_steps["cnn"]
    assert cnn.n_networks == 2
    assert [m.name for m in member_networks(cnn.model_)] == ["network0", "network1"]


@pytest.mark.parametrize("argv, message", [
    (["train", "--networks", "0"], "--networks must be at least 1"),
    (["tune", "--param", "cnn__n_networks=1,2"], "not a grid parameter"),
])
def test_bad_networks_option(folder, tmp_path, capsys, argv, message):
    command, *rest = argv
    assert main([command, str(folder), "--out", str(tmp_path / "m.skops"), *rest]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, refused", [
    ([], True), (["--intensity", "raw", "--param", "cnn__equalize=true,false"], True),
    (["--intensity", "raw"], False),
])
def test_tune_refuses_loader_intensity_grids_the_network_equalises_anyway(
        folder, tmp_path, capsys, monkeypatch, argv, refused):
    """With equalisation inside the network, candidates that differ in the loader's
    intensity would see the same inputs: refused before any fit."""
    import sklearn.model_selection

    def no_search(*args, **kwargs):
        raise AssertionError("search must not start")

    # the command imports GridSearchCV when it runs: it gets this one
    monkeypatch.setattr(sklearn.model_selection, "GridSearchCV", no_search)
    argv = ["tune", str(folder), "--out", str(tmp_path / "m.skops"),
            "--param", "loader__intensity=raw,equalize", *argv, *FAST]
    if refused:
        assert main(argv) == 1
        assert "a grid over loader__intensity would compare the same inputs" in (
            capsys.readouterr().err)
    else:
        with pytest.raises(AssertionError, match="search must not start"):
            main(argv)
