"""Training-throughput overhead of PneumoniaCNN over plain ``keras.Model.fit``.

Both sides train the same network (same builder, same seed, same optimizer
and loss) on the same in-memory float32 arrays, interleaved in one run. The
throughput of each fit is images per second over its epochs after the first
(the first epoch pays for graph tracing on both sides). PneumoniaCNN is
measured twice: with its default class-balanced batches (``tf.data``
gathers each batch of a balanced order from the arrays) and with
``balanced_batches=False`` (``tf.data`` shuffles the arrays).
Prints each measurement and the ratios PneumoniaCNN / Keras (target:
>= 0.97), of the medians over repeats and of the best repeat of each side
(the best is the least disturbed by other work on a shared machine, where
single fits vary by a third), and the same ratio for images per CPU-second
of the process (insensitive to time other machines steal from this one).

Usage::

    python benchmarks/overhead.py [--n-images 512] [--image-size 176] [--epochs 4] [--repeats 3]
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _timing import epoch_timer  # noqa: E402  (benchmarks/_timing.py)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=176)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from cxrlearn import PneumoniaCNN
    from cxrlearn.datasets import make_synthetic_xrays
    from cxrlearn.networks import build_pneumonia_cnn
    from cxrlearn.utils import import_keras

    keras = import_keras()
    X, y = make_synthetic_xrays(args.n_images, image_size=args.image_size, random_state=0)
    y01 = (y == "PNEUMONIA").astype(np.float32)
    n = len(X)

    def rates(timer):  # images per wall-clock second and per CPU-second
        return (n / statistics.median(timer.durations[1:]),
                n / statistics.median(timer.cpu_durations[1:]))

    def run_keras():
        model = build_pneumonia_cnn(X.shape[1:], 2, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        timer = epoch_timer(keras)
        model.fit(X, y01, batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                  callbacks=[timer], verbose=0)
        return rates(timer)

    def run_cxrlearn(balanced_batches):
        timer = epoch_timer(keras)
        PneumoniaCNN(epochs=args.epochs, batch_size=args.batch_size, callbacks=[timer],
                     balanced_batches=balanced_batches, random_state=0).fit(X, y)
        return rates(timer)

    results = {"keras": [], "balanced": [], "weighted": []}
    cpu = {"keras": [], "balanced": [], "weighted": []}
    run_keras()  # warm-up: TensorFlow start-up, thread pools, first tracing
    for _ in range(args.repeats):
        for key, run in (("keras", run_keras), ("balanced", lambda: run_cxrlearn(True)),
                         ("weighted", lambda: run_cxrlearn(False))):
            wall, per_cpu_s = run()
            results[key].append(wall)
            cpu[key].append(per_cpu_s)
        print("  " + "   ".join(f"{k} {v[-1]:6.1f} img/s ({cpu[k][-1]:5.1f}/cpu-s)"
                                for k, v in results.items()), flush=True)
    print(f"images: {n} x {args.image_size}x{args.image_size}x1, epochs {args.epochs}, "
          f"batch {args.batch_size}, repeats {args.repeats}")
    ratios = {}
    for name, data, stat, unit in (("median", results, statistics.median, "images/s"),
                                   ("best", results, max, "images/s"),
                                   ("per CPU-second", cpu, statistics.median, "images/cpu-s")):
        k, b, w = (stat(data[key]) for key in ("keras", "balanced", "weighted"))
        print(f"plain keras.Model.fit                    : {k:8.1f} {unit} ({name})")
        print(f"PneumoniaCNN.fit, balanced batches       : {b:8.1f} {unit} ({name})")
        print(f"PneumoniaCNN.fit, balanced_batches=False : {w:8.1f} {unit} ({name})")
        print(f"ratio cxrlearn/keras, balanced batches   : {b / k:.3f}  (target >= 0.97)")
        print(f"ratio cxrlearn/keras, class weights      : {w / k:.3f}  (target >= 0.97)")
        ratios[name] = b / k
    return ratios


if __name__ == "__main__":
    main()
