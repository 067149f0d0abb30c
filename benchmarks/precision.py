"""Training speed of the study's network in float32 and in mixed bfloat16.

The default network of ``cxrlearn train`` (176x176 grayscale, batch 32) is
built twice with :func:`cxrlearn.networks.build_pneumonia_cnn`: once in
float32 and once with ``dtype="mixed_bfloat16"`` (float32 variables,
bfloat16 computation in the convolution and dense layers). Both are compiled
as :class:`cxrlearn.PneumoniaCNN` compiles them and trained on the same
synthetic batches, **interleaved** in one process: after one warm-up
(graph tracing), each repeat times ``--steps`` training steps of float32,
then of bfloat16 (alternating which goes first), so that whatever else the
machine does affects both alike. Reported per precision: images per second
of wall-clock time and images per CPU-second (all threads of the process),
and the median ratio bfloat16 / float32 of each over the repeats.

``--variants`` picks what is timed: ``float32``, ``bfloat16`` (the
default pair) and ``xla``, float32 compiled by XLA (``jit_compile=True``,
which Keras leaves off on machines without a GPU); ratios are to float32,
which is always timed.

Whether bfloat16 helps depends on the CPU: x86 CPUs with AVX512-BF16 or AMX
(and GPUs of compute capability 8.0 or more) compute it natively; others
emulate it and are slower. ``cxrlearn.networks.resolve_precision("auto")``
says what this machine would use.

Usage::

    python benchmarks/precision.py [--image-size 176] [--steps 20] [--repeats 5]
        [--variants float32,bfloat16,xla]
"""

import argparse
import os
import statistics
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=176)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", default="float32,bfloat16",
                        help="comma-separated, from float32, bfloat16 and xla "
                             "(float32 compiled by XLA)")
    args = parser.parse_args(argv)

    from cxrlearn import _training
    from cxrlearn.datasets import make_synthetic_xrays
    from cxrlearn.networks import build_pneumonia_cnn, resolve_precision
    from cxrlearn.utils import import_keras

    keras = import_keras()
    import tensorflow as tf

    n = args.batch_size * args.steps
    X, y = make_synthetic_xrays(n, image_size=args.image_size, random_state=0)
    X = X.reshape(n, args.image_size, args.image_size, 1).astype(np.float32)
    target = (y == "PNEUMONIA").astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((X, target)).batch(args.batch_size).cache()

    print(f"cpu: bfloat16 in hardware: {resolve_precision('auto') == 'bfloat16'} "
          f"(resolve_precision('auto') -> {resolve_precision('auto')!r}); "
          f"{os.cpu_count()} CPUs; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    models = {}
    known = {"float32": (None, False), "bfloat16": ("mixed_bfloat16", False),
             "xla": (None, True)}
    asked = {v.strip() for v in args.variants.split(",") if v.strip()} | {"float32"}
    if asked - set(known):
        parser.error(f"unknown variants {sorted(asked - set(known))}; choose from {sorted(known)}")
    for name in [v for v in known if v in asked]:
        dtype, jit = known[name]
        model = build_pneumonia_cnn((args.image_size, args.image_size, 1), dtype=dtype, seed=0)
        models[name] = _training.compile_model(
            model, n_classes=2, optimizer="adam", learning_rate=1e-3,
            lr_schedule="constant", decay_steps=1,
        )
        models[name].jit_compile = jit  # read when fit first builds its train function
        models[name].fit(data, epochs=1, shuffle=False, verbose=0)  # warm-up: tracing, allocator
    results = {name: {"wall": [], "cpu": []} for name in models}
    for r in range(args.repeats):
        order = list(models) if r % 2 == 0 else list(models)[::-1]  # alternate who goes first
        for name in order:
            t0, c0 = time.perf_counter(), time.process_time()
            models[name].fit(data, epochs=1, shuffle=False, verbose=0)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            results[name]["wall"].append(n / wall)
            results[name]["cpu"].append(n / cpu)
            print(f"repeat {r + 1} {name:>8}: {n / wall:6.1f} images/s, "
                  f"{n / cpu:6.1f} images/CPU-s", flush=True)
    for name, res in results.items():
        print(f"{name:>8}: median {statistics.median(res['wall']):6.1f} images/s, "
              f"{statistics.median(res['cpu']):6.1f} images/CPU-s")
    base = results["float32"]
    for name in [n for n in results if n != "float32"]:
        ratio_wall = [b / f for b, f in zip(results[name]["wall"], base["wall"])]
        ratio_cpu = [b / f for b, f in zip(results[name]["cpu"], base["cpu"])]
        print(f"{name} / float32: median {statistics.median(ratio_wall):.2f}x images/s "
              f"(range {min(ratio_wall):.2f}-{max(ratio_wall):.2f}), "
              f"{statistics.median(ratio_cpu):.2f}x images/CPU-s "
              f"(range {min(ratio_cpu):.2f}-{max(ratio_cpu):.2f}) over {args.repeats} repeats")


if __name__ == "__main__":
    main()
