"""Bounded load test of ``cxrlearn serve`` on 127.0.0.1, with its baselines side by side.

In one run, on the same model and the same Kermany-224 files:

1. in this process, the baselines: decoding a file with the model's
   ImageLoader plus the raw Keras model's ``__call__`` on it (p50), and
   ``pipeline.predict_proba([path])`` (p50);
2. ``cxrlearn serve MODEL`` started in a subprocess on a free 127.0.0.1
   port; one client sending single-image ``POST /predict`` requests one
   after another (warm p50 latency, images/s);
3. ``--clients`` concurrent clients (threads with keep-alive connections)
   sending ``--requests`` single-image requests in all: errors, p50 / p95 /
   p99 latency, images/s;
4. with ``--compare-batching`` (default), steps 2-3 again on a server
   started with ``--max-batch 1`` (no micro-batching).

Goals (issue 15): warm single-image p50 within 1.5x of decode + raw
``__call__``; concurrent throughput at least the sequential one; 0 errors.
Each request has a timeout, the whole run is bounded by ``--requests``.
Skips (exit 0, with a message) when the data are absent.

Usage::

    python benchmarks/serve_load.py [--model /tmp/kermany_default.skops] \\
        [--data ../shared/data] [--clients 4] [--requests 500] [--json out.json]

Without ``--model`` a quick model (1 epoch on 256 Kermany-224 training
images, the ``cxrlearn train`` loader) is trained first: its figures
measure the serving path, not accuracy.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BOUNDARY = "cxrlearn-load-test"


def _percentiles(seconds):
    ms = np.asarray(seconds) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean())}


def _body(path):
    name = Path(path).name
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{name}"\r\nContent-Type: image/jpeg\r\n\r\n').encode() \
        + Path(path).read_bytes() + f"\r\n--{BOUNDARY}--\r\n".encode()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quick_model(data, out):
    """1 epoch on 256 Kermany-224 training images: a model to serve, fast."""
    from sklearn.pipeline import Pipeline

    from cxrlearn import ImageLoader, PneumoniaCNN
    from cxrlearn.datasets import load_image_directory
    from cxrlearn.io import save_model

    paths, labels = load_image_directory(data / "kermany224" / "train")
    rng = np.random.default_rng(0)
    keep = rng.choice(len(paths), size=min(256, len(paths)), replace=False)
    pipe = Pipeline([("loader", ImageLoader(image_size=176, color_mode="grayscale",
                                            intensity="equalize", n_jobs=2)),
                     ("cnn", PneumoniaCNN(epochs=1, random_state=0, verbose=0))])
    pipe.fit(np.asarray(paths, dtype=object)[keep], np.asarray(labels)[keep])
    save_model(pipe, out)
    return out


def baselines(model_path, files, n):
    """p50s in this process: decode + raw Keras ``__call__`` (eager, as the issue
    defines the baseline), decode + the same call compiled with ``tf.function``
    (the floor of any Python server), and ``pipeline.predict_proba([path])``.

    The model must be a Pipeline ``[ImageLoader, PneumoniaCNN]``.
    """
    from cxrlearn.io import load_model

    model = load_model(model_path)  # TensorFlow starts here, with cxrlearn's settings
    import tensorflow as tf

    loader, network = model[:-1], model[-1].model_
    compiled = tf.function(lambda x: network(x, training=False), reduce_retracing=True)
    for f in files[:5]:  # warm: first calls build functions
        network(loader.transform([f]), training=False)
        compiled(loader.transform([f]))
        model.predict_proba([f])
    decode, raw, fast, pipeline = [], [], [], []
    for f in files[:n]:
        t0 = time.perf_counter()
        x = loader.transform([f])
        t1 = time.perf_counter()
        np.asarray(network(x, training=False))
        t2 = time.perf_counter()
        np.asarray(compiled(x))
        t3 = time.perf_counter()
        model.predict_proba([f])
        t4 = time.perf_counter()
        decode.append(t1 - t0)
        raw.append(t2 - t0)
        fast.append(t1 - t0 + t3 - t2)
        pipeline.append(t4 - t3)
    return {"decode_ms": _percentiles(decode), "decode_plus_keras_call_ms": _percentiles(raw),
            "decode_plus_compiled_call_ms": _percentiles(fast),
            "pipeline_predict_proba_ms": _percentiles(pipeline)}


class Server:
    """``cxrlearn serve`` in a subprocess, stopped with SIGTERM."""

    def __init__(self, model, extra=()):
        self.port = _free_port()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cxrlearn.cli", "serve", str(model), "--port",
             str(self.port), *extra], stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health",
                                            timeout=5):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    self.log.seek(0)
                    raise SystemExit("the server did not start:\n"
                                     + self.log.read().decode()[-3000:])
                time.sleep(0.3)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_clients(port, bodies, n_requests, n_clients, timeout):
    """``n_requests`` single-image requests from ``n_clients`` threads."""
    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(n_requests))

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/predict", body, headers)
                response = conn.getresponse()
                payload = response.read()
                elapsed = time.perf_counter() - t0
                ok = response.status == 200 and "label" in json.loads(payload)["results"][0]
            except Exception as exc:  # counted, and the connection renewed
                ok, elapsed, payload = False, time.perf_counter() - t0, repr(exc).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            with lock:
                (latencies if ok else errors).append(elapsed if ok else payload[:200])
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"requests": n_requests, "clients": n_clients, "errors": len(errors),
            "error_samples": [e.decode("utf-8", "replace") for e in errors[:3]],
            "latency_ms": _percentiles(latencies) if latencies else None,
            "images_per_s": len(latencies) / wall, "wall_s": wall}


def measure_server(model, bodies, args, extra=()):
    server = Server(model, extra)
    try:
        run_clients(server.port, bodies, 20, 1, args.timeout)  # warm-up
        sequential = run_clients(server.port, bodies, args.sequential, 1, args.timeout)
        concurrent = run_clients(server.port, bodies, args.requests, args.clients,
                                 args.timeout)
    finally:
        server.stop()
    return {"sequential": sequential, "concurrent": concurrent}


def _line(name, result):
    lat = result["latency_ms"] or {}
    return (f"  {name:<34} p50 {lat.get('p50', float('nan')):7.1f} ms  "
            f"p95 {lat.get('p95', float('nan')):7.1f}  p99 {lat.get('p99', float('nan')):7.1f}"
            f"  {result['images_per_s']:6.1f} images/s  errors {result['errors']}"
            f"/{result['requests']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a .skops model (default: train a "
                        "quick one)")
    parser.add_argument("--data", default=os.environ.get("CXRLEARN_DATA",
                                                         REPO.parent / "shared" / "data"))
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--sequential", type=int, default=200,
                        help="requests of the single, sequential client")
    parser.add_argument("--baseline", type=int, default=100,
                        help="files timed for the in-process baselines")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--compare-batching", action=argparse.BooleanOptionalAction,
                        default=True, help="also measure a server with --max-batch 1")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)

    data = Path(args.data)
    files = sorted(str(p) for p in (data / "kermany224" / "val").glob("*/*.jpeg"))
    if not files:
        print(f"skipped: no Kermany-224 files under {data / 'kermany224' / 'val'} "
              "(--data or CXRLEARN_DATA)")
        return 0
    rng = np.random.default_rng(0)
    files = [files[i] for i in rng.permutation(len(files))]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or quick_model(data, Path(tmp) / "quick.skops")
        print(f"model {model}; {len(files)} Kermany-224 val files; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        base = baselines(model, files, args.baseline)
        bodies = [_body(f) for f in files]
        served = measure_server(model, bodies, args)
        unbatched = measure_server(model, bodies, args, ["--max-batch", "1"]) \
            if args.compare_batching else None

    raw = base["decode_plus_keras_call_ms"]["p50"]
    seq, conc = served["sequential"], served["concurrent"]
    ratios = {
        "served_p50_over_decode_plus_call_p50": seq["latency_ms"]["p50"] / raw,
        "served_p50_over_decode_plus_compiled_call_p50":
            seq["latency_ms"]["p50"] / base["decode_plus_compiled_call_ms"]["p50"],
        "served_p50_over_pipeline_predict_proba_p50":
            seq["latency_ms"]["p50"] / base["pipeline_predict_proba_ms"]["p50"],
        "concurrent_over_sequential_images_per_s": conc["images_per_s"] / seq["images_per_s"],
    }
    if unbatched:
        ratios["batched_over_unbatched_concurrent_images_per_s"] = (
            conc["images_per_s"] / unbatched["concurrent"]["images_per_s"])
    print("in-process baselines (p50):")
    for name, key in (("decode (ImageLoader)", "decode_ms"),
                      ("decode + raw Keras __call__", "decode_plus_keras_call_ms"),
                      ("decode + tf.function(__call__)", "decode_plus_compiled_call_ms"),
                      ("pipeline.predict_proba([path])", "pipeline_predict_proba_ms")):
        print(f"  {name:<34}{base[key]['p50']:7.1f} ms")
    print("server (micro-batching on, --max-batch 32):")
    print(_line("sequential, 1 client", seq))
    print(_line(f"concurrent, {args.clients} clients", conc))
    if unbatched:
        print("server (--max-batch 1, no batching):")
        print(_line("sequential, 1 client", unbatched["sequential"]))
        print(_line(f"concurrent, {args.clients} clients", unbatched["concurrent"]))
    print("ratios:")
    for key, value in ratios.items():
        print(f"  {key:<50} {value:5.2f}")
    goals = {"latency (<= 1.5)": ratios["served_p50_over_decode_plus_call_p50"] <= 1.5,
             "throughput (>= 1.0)": ratios["concurrent_over_sequential_images_per_s"] >= 1.0,
             "0 errors": conc["errors"] == 0 and seq["errors"] == 0}
    print("goals: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in goals.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"baselines": base, "batched": served, "unbatched": unbatched,
             "ratios": ratios, "goals": goals, "load_average": os.getloadavg(),
             "cpus": os.cpu_count()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
