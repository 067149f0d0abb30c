"""``cxrlearn tune --workers N`` and ``--scheduler ADDRESS``: the search on a Dask cluster.

Each tune here is the smallest the command line allows (20 images, 1
epoch, 2 candidates x 2 folds). The tune on an existing scheduler runs
once (a module fixture) and is the reference the ``--workers`` tune must
reproduce.
"""

import contextlib
import io
import re
import subprocess
import sys
import warnings

import pytest

from cxrlearn.cli import main
from cxrlearn.datasets import write_synthetic_xray_directory
from cxrlearn.io import load_model

pytest.importorskip("distributed")

TUNE = ["--cv", "2", "--epochs", "1", "--batch-size", "16", "--dense-units", "8",
        "--param", "cnn__dropout=0.0,0.5"]
FIT_LINE = re.compile(r"^fit (\d)/4 done \(candidate (\d)/2 fold (\d)/2\): roc_auc [01]\.\d{4} "
                      r"at \d+ s; best so far roc_auc [01]\.\d{4}$")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("xrays")
    write_synthetic_xray_directory(root, 20, 176, random_state=0)
    return root


def _results(out):
    """The ranked table and the best line of a tune's standard output."""
    lines = out.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("rank"))):]
    return [line for line in table if not line.startswith("saved best pipeline")]


def _fit_lines(err):
    lines = [line for line in err.splitlines() if line.startswith("fit ")]
    for line in lines:
        assert FIT_LINE.match(line), line
    return lines


@pytest.fixture(scope="module")
def scheduler():
    """An existing scheduler: one in-process worker with two threads (joblib runs the
    search of a one-thread cluster in the calling process instead)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def scheduled(folder, scheduler, tmp_path_factory):
    """The tune on the existing scheduler: its exit status, output and saved model."""
    out = tmp_path_factory.mktemp("scheduled") / "best.skops"
    stdout, stderr = io.StringIO(), io.StringIO()
    with warnings.catch_warnings():  # the in-process worker shares this process's threads
        warnings.filterwarnings("ignore", "cxrlearn could not cap TensorFlow")
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = main(["tune", str(folder), "--out", str(out), *TUNE, "--scheduler",
                           scheduler.scheduler_address, "--progress"])
    assert status == 0, stderr.getvalue()
    events = {topic: [message for _, message in log]
              for topic, log in scheduler.scheduler.get_events().items()
              if topic.startswith("cxrlearn-tune-")}
    return stdout.getvalue(), stderr.getvalue(), out, events


def test_local_workers_give_the_scheduler_results(folder, scheduled, tmp_path, capsys):
    # the same search in two worker processes and on a threaded in-process worker:
    # the same table (tests/test_distributed.py checks Dask against n_jobs=1)
    out = tmp_path / "best.skops"
    assert main(["tune", str(folder), "--out", str(out), *TUNE, "--workers", "2"]) == 0
    captured = capsys.readouterr()
    assert _results(captured.out) == _results(scheduled[0])
    err = captured.err
    assert "started a local Dask cluster (2 workers, 2 threads)" in err
    # one line per finished fit, in the order they finish, counted 1..4
    lines = _fit_lines(err)
    assert [int(FIT_LINE.match(line)[1]) for line in lines] == [1, 2, 3, 4]
    assert sorted(FIT_LINE.match(line).group(2, 3) for line in lines) == [
        ("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]
    assert "refitting the best candidate on all images (1 epochs)" in err
    best = load_model(out)
    assert best.named_steps["cnn"].dropout == load_model(scheduled[2]).named_steps["cnn"].dropout
    assert best.named_steps["loader"].memory is None  # the temporary cache is not saved
    assert best.named_steps["cnn"].callbacks is None


def test_existing_scheduler_runs_the_search_and_the_refit(scheduler, scheduled):
    stdout, err, out, events = scheduled
    table = _results(stdout)
    assert len(table) == 4 and table[-1].startswith("best roc_auc ")
    assert {"{'cnn__dropout': 0.0}", "{'cnn__dropout': 0.5}"} == {
        row[row.index("{"):] for row in table[1:3]}
    address = scheduler.scheduler_address
    assert f"connected to the Dask scheduler at {address} (1 worker, 2 threads)" in err
    assert len(_fit_lines(err)) == 4
    assert "grid search:" in err and "/4 [" in err  # the bar of the fits, on a "terminal"
    assert "refitting the best candidate on all images on a worker (1 epochs)" in err
    assert "refit on all images:" in err  # the refit's bar, fed by the worker's events
    assert "decoded" not in err  # no --cache: the workers decoded, nothing was primed here
    assert len(events) == 1  # one topic: this search's progress events
    assert [m["kind"] for m in next(iter(events.values()))] == ["fit"] * 4 + ["epoch"]
    assert load_model(out).named_steps["cnn"].callbacks is None


def test_image_unreadable_on_a_worker_says_where(scheduler, tmp_path, capsys):
    data = tmp_path / "data"  # nothing but damaged files: every fit fails at its first file
    for label, names in (("NORMAL", [f"IM-000{i}-0001.png" for i in range(4)]),
                         ("PNEUMONIA", [f"person{i}_virus_{i}.png" for i in range(4)])):
        (data / label).mkdir(parents=True)
        for name in names:
            (data / label / name).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["tune", str(data), "--out", str(tmp_path / "m.skops"), *TUNE,
                 "--scheduler", scheduler.scheduler_address]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cxrlearn tune: error:") and ".png" in err
    assert "Dask worker" in err  # the worker that failed, named by ImageLoadError
    assert "every worker must see the images (and --cache) at the same paths" in err


def test_unreachable_scheduler_is_a_clear_error(folder, tmp_path, capsys, monkeypatch):
    from cxrlearn.cli import _cluster

    monkeypatch.setattr(_cluster, "CONNECT_TIMEOUT", 1)
    address = "tcp://127.0.0.1:1"
    assert main(["tune", str(folder), "--out", str(tmp_path / "m.skops"), *TUNE,
                 "--scheduler", address]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"cxrlearn tune: error: cannot reach the Dask scheduler at {address}")
    assert "--scheduler tcp://host:8786" in err and not (tmp_path / "m.skops").exists()


def test_missing_dask_is_a_clear_error(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    assert main(["tune", str(folder), "--out", str(tmp_path / "m.skops"), *TUNE,
                 "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("cxrlearn tune: error: --workers and "
                                                   "--scheduler need Dask")
    assert "pip install 'cxrlearn[dask]'" in err
    assert "images (" not in err  # said before any work


def test_workers_and_scheduler_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["tune", ".", "--out", "m.skops", "--workers", "2", "--scheduler", "tcp://h:1"])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tune", ".", "--out", "m.skops", "--workers", "1"])
    assert "expected 2 or more workers, got '1'" in capsys.readouterr().err


def test_help_imports_no_dask(capsys):
    code = ("import sys; from cxrlearn.cli import build_parser; build_parser();"
            "assert not {'dask', 'distributed'} & set(sys.modules), 'dask imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--workers N" in help_text and "--scheduler ADDRESS" in help_text
    assert "storage that every worker sees at the same path" in help_text


def test_event_scorer_names_candidate_and_fold():
    import numpy as np
    from sklearn.pipeline import Pipeline

    from cxrlearn import ImageLoader
    from cxrlearn.cli._progress import EventScorer

    pipe = Pipeline([("loader", ImageLoader(image_size=32))])
    scorer = EventScorer(None, "t", [{"loader__image_size": 16}, {"loader__image_size": 32}],
                         ["/a/x.png", "/a/y.png"])
    assert scorer._candidate(pipe) == 1
    assert scorer._fold(np.array(["/a/y.png", "/a/z.png"], dtype=object)) == 1
    assert scorer._fold(np.array(["/a/z.png"], dtype=object)) is None


def test_finished_fits_lines_once_per_fit():
    from cxrlearn.cli._progress import Display, FinishedFits

    screen = io.StringIO()
    fits = FinishedFits(Display(bars=False, file=screen), 2, 2, "roc_auc")
    for candidate, fold, score in [(1, 0, 0.9), (0, 1, 0.7), (1, 0, 0.9), (1, 1, 0.8)]:
        fits((0.0, {"kind": "fit", "candidate": candidate, "fold": fold, "score": score}))
    fits((0.0, {"kind": "epoch", "epoch": 1, "epochs": 2, "loss": 0.5, "seconds": 1.25}))
    assert not fits.wait(4, timeout=0) and fits.done == 3  # the repeated event counted once
    lines = screen.getvalue().splitlines()
    assert [re.sub(r" at \d+ s", "", line) for line in lines] == [
        "fit 1/4 done (candidate 2/2 fold 1/2): roc_auc 0.9000; best so far roc_auc 0.9000",
        "fit 2/4 done (candidate 1/2 fold 2/2): roc_auc 0.7000; best so far roc_auc 0.9000",
        "fit 3/4 done (candidate 2/2 fold 2/2): roc_auc 0.8000; best so far roc_auc 0.8500",
        "refit on all images epoch 1/2: loss 0.5000 (1.2 s)",
    ]
