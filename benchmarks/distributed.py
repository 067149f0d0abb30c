"""One grid search, five ways: n_jobs=1 (2 TF threads, 1), 2 loky workers (capped or not), Dask.

The same path-based search -- ``Pipeline([ImageLoader, PneumoniaCNN])``, 4
candidates x 2 patient-grouped folds (``StratifiedGroupKFold`` on
:func:`cxrlearn.datasets.patient_ids`), ROC-AUC, a shared decode cache -- on a
subset of the real Kermany-224 training images, at the recipe's 176 px with
the study's network (``--network small --image-size 64`` for a small one),
few images and epochs so that it runs in a few minutes, is timed

* with ``n_jobs=1`` (TensorFlow in this process, its default pools),
* with ``n_jobs=1`` and TensorFlow on 1 thread (``limit_tf_threads(1)``: the
  thread count of the capped workers below, to compare scores),
* with ``n_jobs=2`` (joblib's loky workers; each fit caps TensorFlow at the
  worker's share, ``cpu_count() // 2`` threads, as
  :func:`cxrlearn.utils.limit_tf_threads` does by default in workers),
* the same without the cap (TensorFlow's default pools in each worker, as
  before the cap: 2 workers x every core),
* on a ``distributed.LocalCluster`` of 2 one-thread worker processes under
  ``joblib.parallel_backend("dask")``.

Each configuration runs in a fresh child process, from a fresh cache; the
2 workers are started before the search and timed apart (they start
TensorFlow and fit the pipeline once for 1 epoch, as a previous search would
leave them), since a pool of workers serves many searches. The
table gives the wall-clock seconds of ``search.fit``, the ratio to
``n_jobs=1``, the start-up seconds, the CPU seconds and the peak of the
summed resident memory of the child and all its workers (sampled every 0.1 s
with psutil), the TensorFlow thread pools each fit found, the largest
difference of any ``cv_results_`` score to ``n_jobs=1`` and the machine's
load average. ``--repeats`` runs every configuration again in reverse order
and keeps each one's fastest run: on a shared machine single runs vary a lot.

Then a simulated scale-up: the per-epoch cost of the default recipe at its
real size (176 px grayscale, the study's network) is measured on a few
hundred images in a fresh process (``--skip-epoch`` skips it), and the wall
time of an 8-candidate x 3-fold search on 1, 8 and 64 workers is estimated
from it and from the 6-9 minutes per 7-epoch 2,400-image fit measured before
``precision="auto"`` (float32), for the default number of epochs, with
where the scheduler or the shared cache becomes the bottleneck.

Usage::

    python benchmarks/distributed.py [--data DIR] [--n-images 400] [--image-size 176]
                                     [--network study] [--epochs 2] [--repeats 2]
                                     [--configs n1,loky,...] [--skip-epoch]
"""

import argparse
import contextlib
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
# This file has the name of the ``distributed`` package it uses: keep its
# folder off the import path (here and in the workers, which inherit it), so
# that ``import distributed`` finds Dask's.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]
sys.path.insert(0, str(REPO_ROOT))

from cxrlearn import ImageLoader, PneumoniaCNN  # noqa: E402
from cxrlearn.datasets import load_image_directory, patient_ids  # noqa: E402

GRID = {"cnn__activation": ["relu", "swish"], "cnn__learning_rate": [1e-3, 3e-3]}
CONFIGS = {
    "n1": "n_jobs=1",
    "n1-1thread": "n_jobs=1, TF on 1 thread",
    "loky": "n_jobs=2 (loky), TF capped",
    "loky-uncapped": "n_jobs=2 (loky), TF uncapped",
    "dask": "Dask 2 workers x 1 thread",
}
#: Environment variable naming the file where each fit logs its TF threads.
LOG_VAR = "CXRLEARN_BENCH_THREAD_LOG"


def default_data():
    base = Path(os.environ.get("CXRLEARN_DATA", REPO_ROOT.parent / "shared" / "data"))
    return base / "kermany224" / "train"


class LoggedCNN(PneumoniaCNN):
    """PneumoniaCNN that appends ``pid intra inter seconds`` after each fit (see LOG_VAR)."""

    def fit(self, X, y, sample_weight=None):
        t0 = time.perf_counter()
        super().fit(X, y, sample_weight)
        seconds = time.perf_counter() - t0
        import tensorflow as tf

        with open(os.environ[LOG_VAR], "a") as fh:
            fh.write(f"{os.getpid()} {tf.config.threading.get_intra_op_parallelism_threads()} "
                     f"{tf.config.threading.get_inter_op_parallelism_threads()} "
                     f"{seconds:.3f}\n")
        return self


class UncappedCNN(LoggedCNN):
    """Fits with TensorFlow's default pools: what every worker did before the cap.

    TensorFlow is started before the fit, so its pools can no longer be
    capped (the fit's warning about it is silenced).
    """

    def fit(self, X, y, sample_weight=None):
        from cxrlearn.utils import import_keras

        import_keras()
        import tensorflow as tf

        float(tf.reduce_sum(tf.ones(1)))  # TensorFlow starts: pools as it likes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return super().fit(X, y, sample_weight)


def subset(root, n_images, seed=0):
    """About ``n_images`` paths from ``root``, whole patients, both classes in proportion."""
    paths, labels = load_image_directory(root)
    paths, labels = np.asarray(paths, dtype=object), np.asarray(labels)
    groups = patient_ids(paths)
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        share = int(round(n_images * np.mean(labels == label)))
        patients = rng.permutation(np.unique(groups[labels == label]))
        rows = []
        for patient in patients:
            if len(rows) >= share:
                break
            rows.extend(np.flatnonzero((groups == patient) & (labels == label)))
        keep.extend(rows)
    keep = np.sort(keep)
    return paths[keep], labels[keep], groups[keep]


class ProcessTree:
    """Peak summed RSS and threads, and CPU seconds, of this process and its descendants.

    Sampled every ``every`` seconds with psutil; a process's CPU time is the
    last value seen for it (a worker that exits between two samples loses at
    most ``every`` seconds).
    """

    def __init__(self, every=0.1):
        import psutil

        self._me = psutil.Process()
        self._every = every
        self.peak = 0
        self.peak_threads = 0
        self._cpu = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        total = threads = 0
        for proc in [self._me, *self._me.children(recursive=True)]:
            try:
                with proc.oneshot():
                    total += proc.memory_info().rss
                    times = proc.cpu_times()
                    threads += proc.num_threads()
                self._cpu[proc.pid] = times.user + times.system
            except Exception:  # noqa: BLE001 -- a worker that just exited
                pass
        self.peak = max(self.peak, total)
        self.peak_threads = max(self.peak_threads, threads)

    def _run(self):
        while not self._stop.wait(self._every):
            self._sample()

    def mark(self):
        """Start counting CPU seconds from now."""
        self._sample()
        self._mark = sum(self._cpu.values())

    @property
    def cpu_seconds_since_mark(self):
        return sum(self._cpu.values()) - self._mark

    def __enter__(self):
        self.mark()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def network(args):
    """PneumoniaCNN parameters of ``--network``: the study's (default) or a small one."""
    if args.network == "small":
        return dict(conv_filters=(16, 32, 64), dense_units=(64,))
    return {}


def start_worker(pipe, paths, labels):
    """Bring a worker to its steady state: TensorFlow started, one 1-epoch fit done.

    Like a worker left by a previous search. A fresh loky worker takes its
    memory after its first task as a reference and restarts when it has
    grown by 300 MB (joblib's leak heuristic); a first task lighter than a
    fit would have every worker restart after its first fit of the search.
    """
    from sklearn.base import clone

    clone(pipe).set_params(cnn__epochs=1, loader__memory=None).fit(paths, labels)
    time.sleep(0.5)  # so that each of the 2 workers takes one of these tasks
    return os.getpid()


def run_config(args):
    """Child: run one configuration, print one JSON line."""
    import joblib
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.pipeline import Pipeline

    from cxrlearn.utils import import_keras

    import_keras()  # TensorFlow start-up in this process is not timed
    if args.config == "n1-1thread":
        from cxrlearn.utils import limit_tf_threads

        limit_tf_threads(1)  # the thread count of each capped worker
    paths, labels, groups = subset(args.data, args.n_images)
    cnn_class = UncappedCNN if args.config == "loky-uncapped" else LoggedCNN
    cache = tempfile.mkdtemp(prefix="cxrlearn-bench-cache-")
    pipe = Pipeline([
        ("loader", ImageLoader(args.image_size, color_mode="grayscale", memory=cache)),
        ("cnn", cnn_class(epochs=args.epochs, random_state=0, **network(args))),
    ])
    n_jobs = 1 if args.config.startswith("n1") else 2
    search = GridSearchCV(pipe, GRID, scoring="roc_auc", cv=StratifiedGroupKFold(2),
                          n_jobs=n_jobs, refit=False, error_score="raise")
    import pickle

    task_bytes = len(pickle.dumps((pipe, paths, labels)))
    cluster_seconds = startup_seconds = 0.0
    warm_pids = set()
    client = cluster = None

    def backend():
        if args.config == "dask":
            return joblib.parallel_backend("dask")
        if n_jobs > 1:
            return joblib.parallel_config(backend="loky")
        return contextlib.nullcontext()

    if args.config == "dask":
        from distributed import Client, LocalCluster

        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        client = Client(cluster)
        cluster_seconds = time.perf_counter() - t0
    load = os.getloadavg()[0]
    with ProcessTree() as tree:
        if n_jobs > 1:  # start the workers and import TensorFlow there (no op runs)
            t0 = time.perf_counter()
            half = np.arange(0, len(paths), 2)  # as many images as a fold trains on
            warm = (pipe, paths[half], labels[half])
            if client is not None:
                warm_pids = set(client.run(start_worker, *warm).values())
            else:
                with backend():
                    warm_pids = set(joblib.Parallel(n_jobs=2)(
                        joblib.delayed(start_worker)(*warm) for _ in range(2)
                    ))
            startup_seconds = time.perf_counter() - t0
            open(os.environ[LOG_VAR], "w").close()  # the warm-up fits do not count
        tree.mark()
        t0 = time.perf_counter()
        with backend():
            search.fit(paths, labels, groups=groups)
        seconds = time.perf_counter() - t0
    if client is not None:
        client.close()
        cluster.close()
    with open(os.environ[LOG_VAR]) as fh:
        fits = [line.split() for line in fh if line.strip()]
    threads = sorted({tuple(fit[1:3]) for fit in fits})
    fit_seconds = sum(float(fit[3]) for fit in fits)
    in_warm = sum(int(fit[0]) in warm_pids for fit in fits)
    results = search.cv_results_
    print(json.dumps({
        "config": args.config,
        "seconds": seconds,
        "cluster_seconds": cluster_seconds,
        "startup_seconds": startup_seconds,
        "fits_in_started_workers": f"{in_warm}/{len(fits)}" if warm_pids else "",
        "fit_seconds": fit_seconds,
        "peak_rss": tree.peak,
        "peak_threads": tree.peak_threads,
        "cpu_seconds": tree.cpu_seconds_since_mark,
        "load": (load + os.getloadavg()[0]) / 2,
        "task_bytes": task_bytes,
        "n_images": len(paths),
        "n_patients": len(np.unique(groups)),
        "tf_threads": [" / ".join(t) for t in threads],
        "scores": {k: results[k].tolist() for k in ("split0_test_score", "split1_test_score")},
        "best": str(results["params"][int(np.argmin(results["rank_test_score"]))]),
    }))


def measure_epoch(args):
    """Child: seconds per training image-epoch of the default recipe at its real size."""
    sys.path.append(str(HERE))  # last: after the real ``distributed``
    from _timing import epoch_timer

    from cxrlearn.utils import import_keras

    t0 = time.perf_counter()
    keras = import_keras()
    startup_s = time.perf_counter() - t0
    paths, labels, _ = subset(args.data, args.epoch_images, seed=1)
    t0 = time.perf_counter()
    X = ImageLoader(176, color_mode="grayscale", n_jobs=2).transform(paths)
    decode_s = (time.perf_counter() - t0) / len(paths)
    timer = epoch_timer(keras)
    t0 = time.perf_counter()
    clf = PneumoniaCNN(epochs=2, callbacks=[timer], random_state=0).fit(X, labels)
    fit_s = time.perf_counter() - t0
    print(json.dumps({"seconds_per_image": timer.durations[1] / len(paths),
                      "overhead_seconds": fit_s - 2 * timer.durations[1],
                      "startup_seconds": startup_s,
                      "decode_seconds_per_image": decode_s,
                      "precision": getattr(clf, "precision_", "float32"),
                      "epoch_images": len(paths)}))


def child(argv, extra_env=None):
    env = {**os.environ, **(extra_env or {})}
    out = subprocess.run([sys.executable, __file__, *argv], env=env, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def scale_up(scenarios, *, decode_seconds, startup_seconds, jpeg_bytes, n_train=2400,
             epochs, candidates=8, folds=3, workers=(1, 8, 64)):
    """Print the estimated wall time of a ``candidates x folds`` search of the default recipe.

    ``scenarios`` maps a name to ``(seconds per training image-epoch, fixed
    seconds per fit)``. Each worker is a 2-core share like this machine,
    running one fit at a time; fits run in waves of ``workers``; the refit
    (one fit on all the images) follows in the client.
    """
    tasks = candidates * folds
    n_fit = n_train * (folds - 1) // folds
    cache_bytes = 176 * 176 * 4  # one float32 grayscale entry
    print(f"\nSimulated scale-up: {candidates} candidates x {folds} folds = {tasks} fits of "
          f"the default recipe (176 px grayscale, the study's network, {epochs} epochs) on "
          f"{n_fit} of {n_train} training images, then a refit on all {n_train} in the "
          f"client; each worker a 2-core share like this machine, one fit at a time, "
          f"{startup_seconds:.0f} s of TensorFlow start-up once per worker.")
    names = list(scenarios)
    print(f"  {'workers':>7s}  {'waves':>5s}  " + "  ".join(f"{n:>28s}" for n in names))
    for w in workers:
        waves = math.ceil(tasks / w)
        cells = []
        for name in names:
            per_image, fixed = scenarios[name]
            fit_s = epochs * n_fit * per_image + fixed
            refit_s = epochs * n_train * per_image + fixed
            total = startup_seconds + waves * fit_s + refit_s
            cells.append(f"{total / 60:6.1f} min ({waves * fit_s / 60:5.1f} + "
                         f"{refit_s / 60:4.1f} refit)")
        idle = f"  ({w - tasks} workers idle)" if w > tasks else ""
        print(f"  {w:7d}  {waves:5d}  " + "  ".join(f"{c:>28s}" for c in cells) + idle)
    per_fit_cache = n_train * cache_bytes
    first_wave = min(tasks, max(workers))
    print(f"  Scheduler: {tasks + 1} tasks lasting minutes; Dask's ~1 ms per task does not "
          f"show. It would if the loader sent files to the cluster: {tasks + 1} x {n_train} "
          "decode tasks of ~1 ms each, with the pixels shipped back (the loader decodes in "
          "its own worker instead).")
    print(f"  Shared cache: each file decoded once per cluster (lock per file): "
          f"{n_train} x {decode_seconds * 1e3:.1f} ms = {n_train * decode_seconds:.0f} s "
          f"in all, which the first wave waits for at most. But every fit reads every entry: "
          f"{per_fit_cache / 2**20:.0f} MiB of float32 per fit, "
          f"{first_wave * per_fit_cache / 2**30:.1f} GiB at once when {first_wave} fits "
          f"start together -- about {first_wave * per_fit_cache / 110e6:.0f} s over 1 Gb/s "
          f"NFS (110 MB/s), against "
          f"{first_wave * n_train * jpeg_bytes / 110e6:.0f} s to read the "
          f"{jpeg_bytes / 1024:.0f} KiB JPEGs themselves ({cache_bytes / jpeg_bytes:.0f}x "
          f"fewer bytes) and {n_train * decode_seconds:.0f} s to decode them in each fit.")
    print("  So at 8+ workers on a network file system the shared cache, not the scheduler, "
          "is the first bottleneck for these small pre-resized JPEGs: decode them in each "
          "worker (memory=None, or a cache on each node's local disk); a shared cache pays "
          "for full-resolution originals (tens of ms each to decode). Past one wave "
          f"({tasks} fits) more workers only wait: 64 workers need >= 64 fits (e.g. 22 "
          "candidates x 3 folds, or HalvingGridSearchCV's first round), and the refit, run "
          "alone after the search, then bounds the total. Memory, not CPU, limits workers "
          f"per node: ~{per_fit_cache * 2 / 2**30:.1f} GiB of images per fit (the array and "
          "its fold copy) plus TensorFlow (0.7 GiB here) and activations.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(),
                        help="Kermany-style folder (default: $CXRLEARN_DATA/kermany224/train)")
    parser.add_argument("--n-images", type=int, default=400)
    parser.add_argument("--image-size", type=int, default=176,
                        help="at least 172 for the study's network")
    parser.add_argument("--network", choices=["study", "small"], default="study",
                        help="the study's network (PneumoniaCNN's default) or conv "
                             "(16, 32, 64) + dense (64,), for small images")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated, from {', '.join(CONFIGS)}")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds of all configurations, in alternating order; the "
                             "fastest run of each is shown")
    parser.add_argument("--epoch-images", type=int, default=320,
                        help="images for the per-epoch measurement at 176 px")
    parser.add_argument("--skip-epoch", action="store_true",
                        help="do not measure an epoch (only the float32 figure is used)")
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--measure-epoch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.exit(1, f"data folder {args.data} not found (use --data or CXRLEARN_DATA)\n")
    if args.config:
        return run_config(args)
    if args.measure_epoch:
        return measure_epoch(args)

    common = ["--data", str(args.data), "--n-images", str(args.n_images),
              "--image-size", str(args.image_size), "--epochs", str(args.epochs),
              "--network", args.network]
    names = [name for name in args.configs.split(",") if name and name != "none"]
    if not names:  # --configs none: the scale-up estimate only
        return estimate(args)
    print(f"Grid search: 4 candidates {GRID} x 2 patient-grouped folds, ROC-AUC, "
          f"{args.image_size} px grayscale, the {args.network} network "
          f"({', '.join(f'{k}={v}' for k, v in network(args).items()) or 'PneumoniaCNN()'}), "
          f"{args.epochs} epochs, a fresh decode cache per run; {os.cpu_count()} CPUs; best of "
          f"{args.repeats} run(s) per configuration, in alternating order")
    runs = {name: [] for name in names}
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            with tempfile.NamedTemporaryFile(prefix="threads-", suffix=".log") as log:
                runs[name].append(child([*common, "--config", name], {LOG_VAR: log.name}))
    rows = [min(runs[name], key=lambda run: run["seconds"]) for name in names]
    first = rows[0]
    print(f"{first['n_images']} images of {first['n_patients']} patients from {args.data}; "
          f"the pickled task (pipeline + paths + labels) is {first['task_bytes'] / 1024:.0f} "
          f"KiB; the 1-minute load average of the machine during each run is shown "
          f"(other work shares these {os.cpu_count()} CPUs)")
    base = next((r for r in rows if r["config"] == "n1"), rows[0])
    print(f"\n{'configuration':27s} {'search s':>8s} {'vs n_jobs=1':>11s} {'start-up s':>10s} "
          f"{'in fits s':>9s} {'CPU s':>5s} {'peak RSS':>8s} {'threads':>7s} "
          f"{'TF intra/inter':>14s} "
          f"{'max |score diff|':>16s} {'load':>4s}")
    for r in rows:
        diff = max(
            float(np.max(np.abs(np.subtract(r["scores"][k], base["scores"][k]))))
            for k in r["scores"]
        )
        startup = f"{r['startup_seconds']:.1f}" if r["startup_seconds"] else "-"
        print(f"{CONFIGS[r['config']]:27s} {r['seconds']:8.1f} "
              f"{base['seconds'] / r['seconds']:10.2f}x {startup:>10s} "
              f"{r['fit_seconds']:9.1f} {r['cpu_seconds']:5.0f} "
              f"{r['peak_rss'] / 2**30:6.2f} G {r['peak_threads']:7d} "
              f"{', '.join(r['tf_threads']):>14s} "
              f"{diff:16.2e} {r['load']:4.1f}")
    if args.repeats > 1:
        print("all runs, search seconds: " + "; ".join(
            f"{name} " + ", ".join(f"{run['seconds']:.1f}" for run in runs[name])
            for name in names))
    started = [f"{r['config']} {r['fits_in_started_workers']}" for r in rows
               if r["fits_in_started_workers"]]
    if started:
        print("fits that ran in the workers started beforehand: " + ", ".join(started))
    dask_rows = [r for r in rows if r["cluster_seconds"]]
    if dask_rows:
        print(f"(the Dask cluster itself started in {dask_rows[0]['cluster_seconds']:.1f} s)")
    same = all(r["best"] == base["best"] for r in rows)
    print(f"best parameters identical in every configuration: {same} ({base['best']})")
    print("search s: wall-clock seconds of search.fit, with the 2 workers already started "
          "(start-up s: starting them, starting TensorFlow and one 1-epoch fit there, "
          "as a previous search would leave them). "
          "vs n_jobs=1: its search seconds / these, above 1 is faster. CPU s: user + system "
          "seconds of the process and its workers during the search; in fits s: the seconds "
          "the 8 fits took, added up (PneumoniaCNN.fit, wherever it ran). Peak RSS, threads: "
          "summed over the process and its workers (Dask: and its scheduler and nannies), "
          "start-up included. TF intra/inter: the thread pools each fit ran with, "
          "0 = TensorFlow's default (one per CPU). Scores: split ROC-AUCs against n_jobs=1.")

    estimate(args)


def estimate(args):
    """Measure an epoch of the default recipe (unless skipped); print the scale-up."""
    jpegs = [p.stat().st_size for p in list(args.data.glob("*/*.jpeg"))[:500]]
    jpeg_bytes = float(np.mean(jpegs)) if jpegs else 8e3
    epochs = PneumoniaCNN().epochs  # the default recipe's
    # 6-9 minutes per 7-epoch fit on ~2,400 images: the figure measured before
    # precision="auto" (float32 on this machine, ~45 images/s)
    float32_per_image = 7.5 * 60 / (7 * 2400)
    scenarios = {}
    if args.skip_epoch:
        decode, startup = 0.0015, 7.0
        print("\nPer-epoch cost not measured (--skip-epoch).")
    else:
        m = child(["--data", str(args.data), "--epoch-images", str(args.epoch_images),
                   "--measure-epoch"])
        per_image, decode, startup = (m["seconds_per_image"], m["decode_seconds_per_image"],
                                      m["startup_seconds"])
        print(f"\nDefault recipe at its real size (176 px grayscale, PneumoniaCNN() "
              f"computing in {m['precision']}), measured on {m['epoch_images']} images in a "
              f"fresh process: {per_image * 1e3:.1f} ms per image-epoch ({1 / per_image:.0f} "
              f"images/s, 2nd epoch), {m['overhead_seconds']:.1f} s of graph tracing per fit, "
              f"{startup:.1f} s of TensorFlow start-up, decoding {decode * 1e3:.2f} ms per "
              f"image (2 threads). A fit on 2,400 images x {epochs} epochs: "
              f"{epochs * 2400 * per_image / 60:.1f} min.")
        scenarios[f"measured ({m['precision']})"] = (per_image, m["overhead_seconds"])
    scenarios["float32, 6-9 min per 7 epochs"] = (float32_per_image, 0.0)
    scale_up(scenarios, decode_seconds=decode, startup_seconds=startup, jpeg_bytes=jpeg_bytes,
             epochs=epochs)


if __name__ == "__main__":
    main()
