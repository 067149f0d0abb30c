"""Images per second: ImageLoader vs Keras's loader vs a plain Pillow loop.

Decodes the same folder of X-rays (default: the 400 full-resolution Kermany
originals) into the same output -- a ``(n, size, size, 3)`` float32 array
for ``--color-mode rgb`` (one channel for ``grayscale``), resized with the
bilinear filter, ignoring the aspect ratio -- with

* a sequential plain Pillow loop (open, full decode, convert, resize with
  Pillow's antialiased bilinear filter, divide by 255),
* ``ImageLoader`` with ``n_jobs=1`` and ``n_jobs=N`` (JPEGs decoded at
  reduced scale by libjpeg, then the same antialiased bilinear resize),
* ``ImageLoader`` with ``memory=`` (cold: fills a fresh cache; warm: reads
  it),
* ``keras.utils.image_dataset_from_directory`` (TensorFlow's multi-threaded
  tf.data pipeline: full decode, bilinear resize *without* antialiasing,
  values in [0, 255]), iterated once in batches of 32, twice: copying the
  batches into one array of the output's shape (the same output as the
  others: the ratios "vs Keras") and dropping them (TensorFlow's batches
  are pooled memory, so this row never writes fresh memory). Keras runs
  in a separate worker process, started (and TensorFlow imported) before
  the timing: TensorFlow's threads keep using CPU after a pass, which
  would slow down and inflate the CPU time of whatever ran next in this
  process.

The machine is usually shared, so its speed drifts within seconds: the
images are split into ``--slices`` interleaved slices, and in each round
every contender decodes each slice in turn, in an order that rotates from
slice to slice, after one untimed warm-up round (which also fills the OS
file cache). Each row gives the best and the median images/s over the
rounds, the CPU time per image (all threads of the process that decodes:
less sensitive to other load than the wall clock), and the median over
rounds of the ratio to Keras and to the Pillow loop measured in the same
round; the per-round ratios of ``ImageLoader(n_jobs=N)`` are printed too.

It then prints how far ImageLoader's pixels are from a full-resolution
decode (the Pillow loop) and from the previous decoder (cxrlearn's
``DECODER_VERSION`` 2, which decoded JPEGs at no less than twice the output
size and resized from the whole reduced image), and from Keras's output,
and what a fresh output-sized array costs to allocate and write once (on a
virtual machine that returns freed memory to its host, a large share of
every row that returns an array).

Usage::

    python benchmarks/loading.py [--data DIR] [--image-size 224] [--n-jobs 2]
                                 [--rounds 5] [--slices 4] [--skip-keras]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cxrlearn._decoders import DECODER_VERSION  # noqa: E402
from cxrlearn._loading import ImageLoader  # noqa: E402
from cxrlearn.datasets import load_image_directory  # noqa: E402


def default_data():
    base = Path(os.environ.get("CXRLEARN_DATA", REPO_ROOT.parent / "shared" / "data"))
    return base / "kermany-originals"


def _to_float(im, color_mode):
    arr = np.asarray(im, dtype=np.float32) / np.float32(255.0)
    if arr.ndim == 2:
        arr = arr[..., None]
    if color_mode == "rgb" and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return arr


def pillow_loop(paths, size, color_mode):
    """The plain loop a user would write: full decode, convert, resize."""
    mode = "RGB" if color_mode == "rgb" else "L"
    out = []
    for path in paths:
        with Image.open(path) as im:
            im = im.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            out.append(_to_float(im, color_mode))
    return np.stack(out)


def previous_decoder(paths, size, color_mode):
    """cxrlearn's JPEG path of ``DECODER_VERSION`` 2 (stretch, bilinear).

    libjpeg's reduced-scale decoding kept at least twice the output size,
    and the reduced image was resized whole (its last, partly filled row
    and column included). Gives the same arrays as that decoder on 8-bit
    JPEGs (checked on the Kermany originals when the decoder changed).
    """
    out = []
    for path in paths:
        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112, 1) or 1
            twice = (2 * size, 2 * size)
            im.draft("L" if color_mode == "grayscale" else None, twice)
            im.load()
            if orientation != 1:
                im = ImageOps.exif_transpose(im)
            mode = "L" if color_mode == "grayscale" or im.mode == "L" else "RGB"
            im = im.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            out.append(_to_float(im, color_mode))
    return np.stack(out)


def keras_dataset(root, size, color_mode):
    """``keras.utils.image_dataset_from_directory`` on ``root``, in file order."""
    from cxrlearn.utils import import_keras

    return import_keras().utils.image_dataset_from_directory(
        root,
        labels="inferred",
        image_size=(size, size),
        color_mode=color_mode,
        interpolation="bilinear",
        batch_size=32,
        shuffle=False,
        verbose=False,
    )


def keras_pass(dataset, size, channels, into_array):
    """Iterate a Keras image dataset once (every pass decodes every file).

    ``into_array``: copy the batches into one ``(n, size, size, channels)``
    float32 array, ImageLoader's output, and return it; otherwise drop them
    and return their count.
    """
    out = np.empty((len(dataset.file_paths), size, size, channels), np.float32)
    n = 0
    for images, _ in dataset:
        if into_array:
            out[n : n + len(images)] = images
        n += len(images)
    assert n == len(out), (n, len(out))
    return out if into_array else n


class KerasWorker:
    """Keras passes in a child process (this script with ``--keras-worker``).

    :meth:`run` returns a pass's image count, wall-clock and CPU seconds,
    measured in the child; :meth:`images` has it save the decoded images,
    scaled to [0, 1], to a file. The child builds each folder's dataset on
    first use (the warm-up round) and times only the passes over it.
    """

    def __init__(self, size, color_mode):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--keras-worker", "--image-size", str(size),
             "--color-mode", color_mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        self._ask({"do": "ready"})

    def _ask(self, request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the Keras worker died (exit code {self.proc.wait()})")
        return json.loads(line)

    def run(self, root, into_array):
        reply = self._ask({"do": "array" if into_array else "drop", "root": str(root)})
        return reply["n"], reply["wall"], reply["cpu"]

    def images(self, root, path):
        self._ask({"do": "save", "root": str(root), "path": str(path)})
        return np.load(path)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()


def keras_worker_loop(size, color_mode):
    """Serve ``KerasWorker`` requests on stdin / stdout until stdin closes."""
    # Replies go to the original stdout; anything else printed goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    from cxrlearn.utils import import_keras

    import_keras()
    channels = 3 if color_mode == "rgb" else 1
    datasets = {}
    for line in sys.stdin:
        request = json.loads(line)
        reply = {}
        if request["do"] != "ready":
            root = request["root"]
            if root not in datasets:
                datasets[root] = keras_dataset(root, size, color_mode)
            dataset = datasets[root]
        if request["do"] in ("array", "drop"):
            into_array = request["do"] == "array"
            result, wall, cpu = timed(lambda: keras_pass(dataset, size, channels, into_array))
            reply = {"n": len(result) if into_array else result, "wall": wall, "cpu": cpu}
        elif request["do"] == "save":
            images = keras_pass(dataset, size, channels, True)
            np.save(request["path"], images / np.float32(255))
        print(json.dumps(reply), file=replies, flush=True)


def timed(func):
    """``func()``'s result, wall-clock seconds and process CPU seconds."""
    c0, t0 = time.process_time(), time.perf_counter()
    result = func()
    return result, time.perf_counter() - t0, time.process_time() - c0


def first_touch(shape, idle=1.5, repeat=3):
    """Seconds to allocate and first write an array of ``shape`` (float32).

    Measured after ``idle`` seconds without allocating: on a virtual machine
    that hands freed memory back to its host, touching fresh memory then
    costs far more than zeroing it (the median of ``repeat`` tries).
    """
    times = []
    for _ in range(repeat):
        time.sleep(idle)
        start = time.perf_counter()
        array = np.empty(shape, np.float32)
        array.fill(0.5)
        times.append(time.perf_counter() - start)
        del array
    return statistics.median(times)


def slice_folders(folder, paths, labels, n_slices):
    """Split the images into ``n_slices`` interleaved slices.

    Returns one ``(paths, root)`` pair a slice: the slice's image paths and
    a folder of ``root/<label>/<file>`` symbolic links to them, for Keras.
    """
    slices = []
    for k in range(n_slices):
        root = Path(folder) / f"slice{k}"
        for path, label in zip(paths[k::n_slices], labels[k::n_slices]):
            (root / str(label)).mkdir(parents=True, exist_ok=True)
            (root / str(label) / Path(path).name).symlink_to(path)
        slices.append((paths[k::n_slices], root))
    return slices


def _abs_diff(a, b):
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    per_image = d.reshape(len(d), -1).mean(axis=1)
    return d.mean(), d.max(), per_image.max(), float(np.percentile(d, 99.9))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(),
                        help="folder with class sub-folders of images "
                             "(default: $CXRLEARN_DATA/kermany-originals)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--color-mode", choices=["rgb", "grayscale"], default="rgb")
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed rounds, each running every contender on every slice")
    parser.add_argument("--slices", type=int, default=4,
                        help="interleave the contenders on this many slices of the images")
    parser.add_argument("--skip-keras", action="store_true",
                        help="do not time keras.utils.image_dataset_from_directory")
    parser.add_argument("--keras-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.keras_worker:
        return keras_worker_loop(args.image_size, args.color_mode)

    if not args.data.is_dir():
        parser.exit(1, f"data folder {args.data} not found (use --data or CXRLEARN_DATA)\n")
    paths, labels = load_image_directory(args.data)
    n, size, nj, cm = len(paths), args.image_size, args.n_jobs, args.color_mode
    channels = 3 if cm == "rgb" else 1
    print(f"{n} images from {args.data}")
    print(f"output: ({n}, {size}, {size}, {channels}) float32, bilinear, aspect ratio "
          f"ignored; ImageLoader and the Pillow loop antialias ([0, 1]), Keras does not "
          f"([0, 255]); cxrlearn DECODER_VERSION {DECODER_VERSION}")
    print(f"{args.rounds} rounds after a warm-up round; in each, every contender decodes each "
          f"of {args.slices} slices of ~{n // args.slices} images in turn (rotating order)")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")

    def loader(**kw):
        return ImageLoader(size, color_mode=cm, **kw)

    work = tempfile.mkdtemp(prefix="cxrlearn-bench-")
    caches = []

    def fresh_cache():
        caches.append(tempfile.mkdtemp(prefix="cache", dir=work))
        return caches[-1]

    warm_cache = fresh_cache()
    keras_name = "Keras, batches into one array"
    keras_drop = "Keras, batches dropped"
    main_name = f"ImageLoader n_jobs={nj}"
    contenders = {
        "Pillow loop (sequential)": lambda part: pillow_loop(part, size, cm),
        "ImageLoader n_jobs=1": lambda part: loader(n_jobs=1).transform(part),
        main_name: lambda part: loader(n_jobs=nj).transform(part),
        f"ImageLoader n_jobs={nj}, cold cache":
            lambda part: loader(n_jobs=nj, memory=fresh_cache()).transform(part),
        f"ImageLoader n_jobs={nj}, warm cache":
            lambda part: loader(n_jobs=nj, memory=warm_cache).transform(part),
    }
    names = list(contenders) + ([] if args.skip_keras else [keras_name, keras_drop])
    wall = {name: [0.0] * args.rounds for name in names}
    cpu = {name: [0.0] * args.rounds for name in names}
    keras = None
    try:
        slices = slice_folders(work, paths, labels, args.slices)
        keras = None if args.skip_keras else KerasWorker(size, cm)

        def run(name, part, root):
            if name in (keras_name, keras_drop):
                return keras.run(root, into_array=name == keras_name)
            return timed(lambda: contenders[name](part))

        for part, root in slices:  # warm-up: file cache, Keras datasets, the warm cache
            outputs = {name: run(name, part, root)[0] for name in names}
            reference = outputs[main_name]
            for name in contenders:  # every ImageLoader variant gives the same array
                if name.startswith("ImageLoader"):
                    assert np.array_equal(outputs[name], reference), name
            if keras is not None:
                assert outputs[keras_name] == outputs[keras_drop] == len(part)
            del outputs, reference
        step = 0
        for r in range(args.rounds):
            for part, root in slices:
                order = names[step % len(names):] + names[: step % len(names)]
                step += 1
                for name in order:
                    _, seconds, cpu_seconds = run(name, part, root)
                    wall[name][r] += seconds
                    cpu[name][r] += cpu_seconds
        # Whole-set outputs for the pixel comparison (not timed).
        X = loader(n_jobs=nj).transform(paths)
        others = {
            "full decode (the Pillow loop)": pillow_loop(paths, size, cm),
            "previous decoder (DECODER_VERSION 2)": previous_decoder(paths, size, cm),
        }
        if keras is not None:
            others["Keras / 255 (no antialiasing)"] = keras.images(
                args.data, os.path.join(work, "keras.npy")
            )
    finally:
        if keras is not None:
            keras.close()
        shutil.rmtree(work, ignore_errors=True)

    def ratio(name, base):
        return statistics.median(b / a for a, b in zip(wall[name], wall[base]))

    def per_round(base):
        return " ".join(f"{b / a:.2f}" for a, b in zip(wall[main_name], wall[base]))

    pillow_name = names[0]
    header = (f"{'method':36s} {'best img/s':>10s} {'median':>7s} {'CPU ms/img':>10s}"
              f" {'vs Pillow':>9s}"
              + ("" if keras is None else f" {'vs Keras':>8s} {'vs Keras dropped':>16s}"))
    print("\n" + header)
    for name in names:
        best, median = n / min(wall[name]), n / statistics.median(wall[name])
        cpu_ms = 1000 * statistics.median(cpu[name]) / n
        line = (f"{name:36s} {best:10.1f} {median:7.1f} {cpu_ms:10.2f}"
                f" {ratio(name, pillow_name):8.2f}x")
        if keras is not None:
            line += f" {ratio(name, keras_name):7.2f}x {ratio(name, keras_drop):15.2f}x"
        print(line)
    print("images/s and ratios over the whole set, one value a round; ratios: the median over")
    print("the rounds of the throughput ratio in the round. CPU: user + system time of all the")
    print("threads of the process that decodes (Keras: its worker process), median over rounds.")
    if keras is not None:
        print("'vs Keras': against Keras copying its batches into one float32 array of the")
        print("output's shape, the same output as ImageLoader's; 'vs Keras dropped': against")
        print("Keras keeping nothing (its batches are pooled memory, never a fresh array).")
        print("Keras datasets are built in the warm-up, only their passes are timed.")
    print(f"{main_name} per round: vs Pillow {per_round(pillow_name)}"
          + ("" if keras is None else
             f"; vs Keras {per_round(keras_name)}; vs Keras dropped {per_round(keras_drop)}"))
    main_vs = [f"{ratio(main_name, pillow_name):.2f}x the Pillow loop"]
    if keras is not None:
        main_vs.append(f"{ratio(main_name, keras_name):.2f}x Keras "
                       f"({ratio(main_name, keras_drop):.2f}x Keras with its batches dropped)")
    print(f"{main_name}: " + ", ".join(main_vs)
          + f"; load average {os.getloadavg()[0]:.1f} at the end")
    touch = first_touch((n, size, size, channels))
    print(f"allocating and first writing a fresh ({n}, {size}, {size}, {channels}) float32 "
          f"array after 1.5 s idle: {touch:.2f} s ({1000 * touch / n:.2f} ms an image), "
          "part of every row that returns an array")

    print("\npixel differences of ImageLoader's output, over all values:"
          f"\n{'against':40s} {'mean':>8s} {'max':>7s} {'worst image mean':>17s} {'p99.9':>7s}")
    for name, other in others.items():
        mean, top, worst, p999 = _abs_diff(X, other)
        print(f"{name:40s} {mean:8.5f} {top:7.4f} {worst:17.5f} {p999:7.4f}")


if __name__ == "__main__":
    main()
