"""Images per second: ImageLoader vs a plain Pillow loop vs Keras.

Decodes the same folder of X-rays (default: the 400 full-resolution Kermany
originals) to the same output size with

* a sequential plain Pillow loop (open, convert, resize, to float),
* ``ImageLoader`` with ``n_jobs=1`` and ``n_jobs=N``,
* ``ImageLoader`` with ``memory=`` (cold: fills the cache; warm: reads it),
* ``keras.utils.image_dataset_from_directory``, iterated once,

and prints images/s side by side with the ratio to the Pillow loop. Each
timing is the best of ``--repeat`` runs (the first run of every method also
warms the OS file cache).

Usage::

    python benchmarks/loading.py [--data DIR] [--image-size 224] [--n-jobs 2]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cxrlearn._loading import ImageLoader  # noqa: E402
from cxrlearn.datasets import load_image_directory  # noqa: E402


def default_data():
    base = Path(os.environ.get("CXRLEARN_DATA", REPO_ROOT.parent / "shared" / "data"))
    return base / "kermany-originals"


def pillow_loop(paths, size, color_mode):
    mode = "RGB" if color_mode == "rgb" else "L"
    out = []
    for path in paths:
        with Image.open(path) as im:
            im = im.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.float32) / 255.0
        out.append(arr if arr.ndim == 3 else arr[..., None])
    return np.stack(out)


def keras_pass(root, size, color_mode):
    from cxrlearn.utils import import_keras

    keras = import_keras()
    dataset = keras.utils.image_dataset_from_directory(
        root,
        labels="inferred",
        image_size=(size, size),
        color_mode=color_mode,
        batch_size=32,
        shuffle=False,
        verbose=False,
    )
    n = 0
    for images, _ in dataset:
        n += int(images.shape[0])
    return n


def best_time(func, repeat):
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(),
                        help="folder with class sub-folders of images "
                             "(default: $CXRLEARN_DATA/kermany-originals)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--color-mode", choices=["rgb", "grayscale"], default="rgb")
    parser.add_argument("--repeat", type=int, default=2, help="runs per method (best kept)")
    parser.add_argument("--skip-keras", action="store_true",
                        help="do not time keras.utils.image_dataset_from_directory")
    args = parser.parse_args(argv)

    if not args.data.is_dir():
        parser.exit(1, f"data folder {args.data} not found (use --data or CXRLEARN_DATA)\n")
    paths, _ = load_image_directory(args.data)
    n, size = len(paths), args.image_size
    print(f"{n} images from {args.data}, output {size}x{size} {args.color_mode}, "
          f"best of {args.repeat}, {os.cpu_count()} CPUs")

    rows = []
    seconds, reference = best_time(lambda: pillow_loop(paths, size, args.color_mode),
                                   args.repeat)
    rows.append(("Pillow loop (sequential)", seconds))

    def loader(**kw):
        return ImageLoader(size, color_mode=args.color_mode, **kw)

    seconds, X = best_time(lambda: loader(n_jobs=1).transform(paths), args.repeat)
    rows.append(("ImageLoader n_jobs=1", seconds))
    diff = float(np.abs(X - reference).mean())
    seconds, _ = best_time(lambda: loader(n_jobs=args.n_jobs).transform(paths), args.repeat)
    rows.append((f"ImageLoader n_jobs={args.n_jobs}", seconds))

    cache = tempfile.mkdtemp(prefix="cxrlearn-bench-cache-")
    try:
        seconds, _ = best_time(
            lambda: loader(n_jobs=args.n_jobs, memory=cache).transform(paths), 1
        )
        rows.append((f"ImageLoader n_jobs={args.n_jobs}, cold cache", seconds))
        seconds, X_cached = best_time(
            lambda: loader(n_jobs=args.n_jobs, memory=cache).transform(paths), args.repeat
        )
        rows.append((f"ImageLoader n_jobs={args.n_jobs}, warm cache", seconds))
        assert np.array_equal(X_cached, X)
        seconds, _ = best_time(lambda: loader(n_jobs=1, memory=cache).transform(paths),
                               args.repeat)
        rows.append(("ImageLoader n_jobs=1, warm cache", seconds))
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    if not args.skip_keras:
        from cxrlearn.utils import import_keras

        import_keras()  # TensorFlow start-up is not part of the timing
        seconds, count = best_time(lambda: keras_pass(str(args.data), size, args.color_mode),
                                   args.repeat)
        assert count == n, (count, n)
        rows.append(("keras image_dataset_from_directory", seconds))

    base = rows[0][1]
    print(f"\n{'method':44s} {'seconds':>8s} {'images/s':>9s} {'vs Pillow':>9s}")
    for name, seconds in rows:
        print(f"{name:44s} {seconds:8.2f} {n / seconds:9.1f} {base / seconds:8.2f}x")
    print(f"\nmean |ImageLoader - Pillow loop| per pixel: {diff:.5f}")


if __name__ == "__main__":
    main()
