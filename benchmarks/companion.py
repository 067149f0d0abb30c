"""Fit time of ``cxrlearn train``'s networks: shrinking once, and tf.data's autotuning model.

Two changes to how :class:`cxrlearn.PneumoniaCNN` trains, neither of which
changes a weight:

* The companion's networks take the pipeline's 176 px films and shrink them
  to 28 px with a weightless ``Resizing`` layer. They shrank every training
  image again at every step of every epoch; now the estimator computes the
  shrunk films once and trains the rest of each network on them
  (``cxrlearn._training.split_shrinking_inputs``).
* The training pipelines ran ``tf.data``'s autotuning model, whose thread,
  in TensorFlow 2.21, held up the deletion of the iterator at the end of a
  fit until its next wake-up, up to a minute later; they now run without it
  (``cxrlearn._training._AUTOTUNE_MODEL``).

This script fits the network(s) exactly as ``cxrlearn train`` builds them
(``make_pipeline``, seed 0) in each variant, **interleaved** in one process
(the order rotating from repeat to repeat), on the same images:

* ``--which companion`` (the default): ``before`` (shrinking every step,
  with the autotuning model), ``once`` (shrinking once, with the model) and
  ``now`` (shrinking once, without it);
* ``--which main``: the 176 px network, ``before`` (with the model) and
  ``now`` (without it).

Reported per fit: wall-clock and CPU seconds (all threads of the process,
the shrink included), the seconds between the end of the last epoch and the
return of ``fit``, images per CPU-second (images x epochs x networks /
CPU-s), the median ratios to ``before`` over the repeats, and whether every
variant trained the same weights.

The images are Kermany-224 ``train`` + ``val`` (4,307 films) loaded as
``cxrlearn train`` loads them (176 px grayscale, the films' own grey
levels); ``--synthetic N`` uses N synthetic films instead (for a machine
without the data).

Usage::

    python benchmarks/companion.py [--data ../shared/data/kermany224]
        [--which companion|main] [--repeats 3] [--epochs N] [--networks 1]
        [--synthetic N]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_pretrained import DEFAULT_DATA, default_pipeline, load_all  # noqa: E402


def _images(args):
    if args.synthetic:
        from cxrlearn.datasets import make_synthetic_xrays

        X, y = make_synthetic_xrays(args.synthetic, image_size=176, random_state=0)
        return X.reshape(len(y), 176, 176, 1).astype(np.float32), y, "synthetic"
    if not Path(args.data).is_dir():
        sys.exit(f"no data at {args.data}: give --data, or --synthetic N")
    paths, labels, _ = load_all(args.data)
    loader = default_pipeline(args.data)[0]
    return loader.fit_transform(paths, labels), labels, f"{args.data} (train + val)"


def _after_training(keras):
    """A callback that notes when the last epoch ended (``ended``)."""

    class AfterTraining(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            self.ended = time.perf_counter()

    return AfterTraining()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--which", choices=("companion", "main"), default="companion")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per network (default: the recipe's)")
    parser.add_argument("--networks", type=int, default=1, help="networks per fit")
    parser.add_argument("--synthetic", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)

    from cxrlearn import PneumoniaCNN, _training
    from cxrlearn.networks import resolve_precision
    from cxrlearn.utils import import_keras

    keras = import_keras()

    class ShrinkEveryStep(PneumoniaCNN):
        """The estimator as it was: whole networks train, shrinking each step."""

        def _trainees(self, networks, fit_data, val_data):
            return networks, fit_data, val_data

    X, y, source = _images(args)
    cnn = default_pipeline(args.data)[-1]
    params = (cnn.companion if args.which == "companion" else cnn).get_params(deep=False)
    params.update(random_state=0, verbose=0, n_networks=args.networks, companion=None)
    if args.epochs:
        params["epochs"] = args.epochs
    epochs = params["epochs"]
    size = params["resize"] or X.shape[1]
    print(f"{source}: {len(y)} images of {X.shape[1]}x{X.shape[2]}; {args.which}: "
          f"{args.networks} network(s) of {size} px, {epochs} epochs, batch "
          f"{params['batch_size']}; precision {params['precision']} -> "
          f"{resolve_precision(params['precision'])}; {os.cpu_count()} CPUs", flush=True)
    # (estimator class, tf.data autotuning model)
    if args.which == "companion":
        ways = {"before": (ShrinkEveryStep, True), "once": (PneumoniaCNN, True),
                "now": (PneumoniaCNN, False)}
    else:
        ways = {"before": (PneumoniaCNN, True), "now": (PneumoniaCNN, False)}
    results = {name: {"wall": [], "cpu": [], "tail": []} for name in ways}
    work = len(y) * epochs * args.networks
    weights = {}
    names = list(ways)
    try:
        for r in range(args.repeats):
            for name in names[r % len(names):] + names[: r % len(names)]:
                cls, model = ways[name]
                _training._AUTOTUNE_MODEL = model
                after = _after_training(keras)
                est = cls(**{**params, "callbacks": [after]})
                t0, c0 = time.perf_counter(), time.process_time()
                est.fit(X, y)
                end = time.perf_counter()
                wall, cpu, tail = end - t0, time.process_time() - c0, end - after.ended
                for key, value in (("wall", wall), ("cpu", cpu), ("tail", tail)):
                    results[name][key].append(value)
                weights.setdefault(name, est.model_.get_weights())
                print(f"repeat {r + 1} {name:>6}: fit {wall:6.1f} s wall, {cpu:6.1f} CPU-s "
                      f"({cpu / wall:.2f} cores), {tail:5.1f} s after the last epoch, "
                      f"{work / cpu:6.1f} images/CPU-s", flush=True)
    finally:
        _training._AUTOTUNE_MODEL = False  # as the library has it
    for name, res in results.items():
        print(f"{name:>6}: median {statistics.median(res['wall']):6.1f} s wall, "
              f"{statistics.median(res['cpu']):6.1f} CPU-s, "
              f"{statistics.median(res['tail']):5.1f} s after the last epoch "
              f"(max {max(res['tail']):.1f})")
    for name in names[1:]:
        wall = [o / e for o, e in zip(results[name]["wall"], results["before"]["wall"])]
        cpu = [o / e for o, e in zip(results[name]["cpu"], results["before"]["cpu"])]
        print(f"{name} / before: median {statistics.median(wall):.2f}x the wall-clock time "
              f"(range {min(wall):.2f}-{max(wall):.2f}), {statistics.median(cpu):.2f}x the "
              f"CPU-seconds (range {min(cpu):.2f}-{max(cpu):.2f}) over {args.repeats} repeats")
    same = all(all(np.array_equal(a, b) for a, b in zip(weights[name], weights["before"]))
               for name in names[1:])
    print(f"identical weights: {same}")


if __name__ == "__main__":
    main()
