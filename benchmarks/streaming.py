"""Peak memory of streamed vs in-memory fits, on N and 4N images.

Each fit runs in a fresh Python process (so TensorFlow's own footprint is
the same on every side) and reports its peak resident memory
(``ru_maxrss``). Images are synthetic PNGs written to a temporary folder
(or ``--data DIR`` with ``DIR/<LABEL>/*``). Prints the four peaks and the
growth ratios peak(4N) / peak(N): target for the streamed fit < 1.3.

Usage::

    python benchmarks/streaming.py [--n-images 200] [--image-size 176] [--epochs 1]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CHILD = r"""
import json, resource, sys, time
import numpy as np
from cxrlearn import ImageLoader, PneumoniaCNN
paths, labels, size, lazy, epochs = json.loads(sys.argv[1])
loader = ImageLoader(image_size=size, color_mode="grayscale", lazy=lazy, n_jobs=2)
X = loader.transform(np.asarray(paths, dtype=object))
t0 = time.perf_counter()
PneumoniaCNN(epochs=epochs, batch_size=32, n_jobs=2, random_state=0).fit(X, np.asarray(labels))
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mib": peak_kib / 1024, "seconds": time.perf_counter() - t0}))
"""


def _fit_peak(paths, labels, size, lazy, epochs):
    arg = json.dumps([list(paths), list(labels), size, lazy, epochs])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True,
                         text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=176)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--data", default=None, help="DIR/<LABEL>/* instead of synthetic")
    args = parser.parse_args(argv)

    from cxrlearn.datasets import load_image_directory, write_synthetic_xray_directory

    n, big = args.n_images, 4 * args.n_images
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            paths, labels = load_image_directory(args.data)
            if len(paths) < big:
                parser.error(f"{args.data} has {len(paths)} images, fewer than 4N = {big}")
            rng = np.random.default_rng(0)
            order = rng.permutation(len(paths))[:big]
            paths, labels = [str(paths[i]) for i in order], [str(labels[i]) for i in order]
        else:
            paths, labels = write_synthetic_xray_directory(tmp, big, args.image_size,
                                                           random_state=0)
        rows = {}
        for lazy in (True, False):
            for count in (n, big):
                res = _fit_peak(paths[:count], labels[:count], args.image_size, lazy,
                                args.epochs)
                rows[(lazy, count)] = res
                name = "streamed " if lazy else "in-memory"
                print(f"{name} fit, {count:5d} images: peak {res['peak_mib']:8.1f} MiB, "
                      f"{res['seconds']:6.1f} s", flush=True)
    for lazy in (True, False):
        name = "streamed " if lazy else "in-memory"
        ratio = rows[(lazy, big)]["peak_mib"] / rows[(lazy, n)]["peak_mib"]
        target = "  (target < 1.3)" if lazy else ""
        print(f"{name} peak growth for 4x images: {ratio:.3f}{target}")
    print(f"image size {args.image_size}x{args.image_size}x1, epochs {args.epochs}")


if __name__ == "__main__":
    main()
