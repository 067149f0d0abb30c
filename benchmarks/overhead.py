"""Training-throughput overhead of PneumoniaCNN over plain ``keras.Model.fit``.

Both sides train the same network (same builder, same seed, same optimizer
and loss) on the same in-memory float32 arrays, interleaved in one run. The
throughput of each fit is images per second over its epochs after the first
(the first epoch pays for graph tracing on both sides). PneumoniaCNN is
measured twice: with its default class-balanced batches (a
``keras.utils.PyDataset`` that gathers each batch from the arrays) and with
``balanced_batches=False`` (a ``tf.data`` pipeline). Prints each
measurement and the ratios PneumoniaCNN / Keras (target: >= 0.97).

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

    def run_keras():
        model = build_pneumonia_cnn(X.shape[1:], 2, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        timer = epoch_timer(keras)
        model.fit(X, y01, batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                  callbacks=[timer], verbose=0)
        return n / statistics.median(timer.durations[1:])

    def run_cxrlearn(balanced_batches):
        timer = epoch_timer(keras)
        PneumoniaCNN(epochs=args.epochs, batch_size=args.batch_size, callbacks=[timer],
                     balanced_batches=balanced_batches, random_state=0).fit(X, y)
        return n / statistics.median(timer.durations[1:])

    results = {"keras": [], "balanced": [], "weighted": []}
    run_keras()  # warm-up: TensorFlow start-up, thread pools, first tracing
    for _ in range(args.repeats):
        results["keras"].append(run_keras())
        results["balanced"].append(run_cxrlearn(True))
        results["weighted"].append(run_cxrlearn(False))
        print("  " + "   ".join(f"{k} {v[-1]:8.1f} img/s" for k, v in results.items()),
              flush=True)
    k, b, w = (statistics.median(results[key]) for key in ("keras", "balanced", "weighted"))
    print(f"images: {n} x {args.image_size}x{args.image_size}x1, epochs {args.epochs}, "
          f"batch {args.batch_size}, repeats {args.repeats}")
    print(f"plain keras.Model.fit                    : {k:8.1f} images/s (median)")
    print(f"PneumoniaCNN.fit, balanced batches       : {b:8.1f} images/s (median)")
    print(f"PneumoniaCNN.fit, balanced_batches=False : {w:8.1f} images/s (median)")
    print(f"ratio cxrlearn/keras, balanced batches   : {b / k:.3f}  (target >= 0.97)")
    print(f"ratio cxrlearn/keras, tf.data            : {w / k:.3f}  (target >= 0.97)")
    return b / k


if __name__ == "__main__":
    main()
