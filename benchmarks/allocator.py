"""Training throughput with and without TensorFlow's pooling CPU allocator.

:func:`cxrlearn.utils.import_keras` sets ``TF_CPU_ALLOCATOR_USE_BFC=true``
(unless the variable is already set) before TensorFlow allocates anything.
This benchmark measures what that buys: it trains ``PneumoniaCNN()`` -- the
study's network, default recipe -- on the same synthetic images in two fresh
child processes, one with the variable ``false`` (TensorFlow's default:
every large tensor comes from ``malloc``, i.e. freshly mapped pages) and one
with ``true``, alternating them ``--repeats`` times. Each child reports the
images per second over all the epochs after the first (the first pays for
graph tracing) and the user and system CPU seconds of its process. On a
shared machine single runs vary by 20% or more; the system (kernel) CPU
time is the steadier signal of the page faults the pooling allocator saves.

Prints each measurement and the median ratio pooled / malloc.

Usage::

    python benchmarks/allocator.py [--n-images 640] [--image-size 176] [--epochs 3] [--repeats 2]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys


def child(args):
    """Train once in this process and print one JSON line of figures."""
    from _timing import epoch_timer  # benchmarks/_timing.py

    from cxrlearn import PneumoniaCNN
    from cxrlearn.datasets import make_synthetic_xrays
    from cxrlearn.utils import import_keras

    X, y = make_synthetic_xrays(args.n_images, image_size=args.image_size, random_state=0)
    timer = epoch_timer(import_keras())
    t0 = os.times()
    PneumoniaCNN(epochs=args.epochs, callbacks=[timer], random_state=0).fit(X, y)
    t1 = os.times()
    print(json.dumps({
        "images_per_s": len(X) * (args.epochs - 1) / sum(timer.durations[1:]),
        "user_s": t1.user - t0.user,
        "sys_s": t1.system - t0.system,
        "allocator_env": os.environ.get("TF_CPU_ALLOCATOR_USE_BFC"),
    }))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=640)
    parser.add_argument("--image-size", type=int, default=176)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    results = {"false": [], "true": []}
    for _ in range(args.repeats):
        for setting in ("false", "true"):
            env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC=setting, TF_CPP_MIN_LOG_LEVEL="3")
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--n-images", str(args.n_images),
                 "--image-size", str(args.image_size), "--epochs", str(args.epochs)],
                env=env, check=True, capture_output=True, text=True,
            ).stdout.strip().splitlines()[-1]
            res = json.loads(out)
            assert res["allocator_env"] == setting
            results[setting].append(res)
            print(f"  TF_CPU_ALLOCATOR_USE_BFC={setting:5s} {res['images_per_s']:7.1f} img/s  "
                  f"user {res['user_s']:6.1f} s  sys {res['sys_s']:6.1f} s", flush=True)
    malloc = statistics.median(r["images_per_s"] for r in results["false"])
    pooled = statistics.median(r["images_per_s"] for r in results["true"])
    print(f"images: {args.n_images} x {args.image_size}x{args.image_size}x1, "
          f"epochs {args.epochs}, repeats {args.repeats}")
    print(f"malloc (TensorFlow default): {malloc:7.1f} images/s (median)")
    print(f"pooled (cxrlearn default)  : {pooled:7.1f} images/s (median)")
    print(f"ratio pooled/malloc        : {pooled / malloc:.2f}")
    return pooled / malloc


if __name__ == "__main__":
    main()
