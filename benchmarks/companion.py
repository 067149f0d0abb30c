"""Training time of ``cxrlearn train``'s 28 px companion: shrinking once or every step.

The companion's networks take the pipeline's 176 px films and shrink them to
28 px with a weightless ``Resizing`` layer. Until this change they shrank
every training image again at every step of every epoch; now the estimator
computes the shrunk films once and trains the rest of each network on them
(``cxrlearn._training.split_shrinking_inputs``), which gives the same
networks bit for bit. This script trains the companion exactly as
``cxrlearn train`` builds it (``make_pipeline``'s ``cnn.companion``, seed 0)
both ways, **interleaved** in one process (alternating which goes first),
on the same images:

* ``every step``: the former way (a subclass whose ``_trainees`` trains the
  whole networks);
* ``once``: the estimator as it is.

Reported per fit: wall-clock and CPU seconds (all threads of the process;
the shrink of ``once`` included), images per CPU-second (images x epochs x
networks / CPU-s), the median ratios once / every step over the repeats, and
whether the two ways trained identical weights.

The images are Kermany-224 ``train`` + ``val`` (4,307 films) loaded as
``cxrlearn train`` loads them (176 px grayscale, the films' own grey levels);
``--synthetic N`` uses N synthetic films instead (for a machine without the
data: the timings then say nothing about real films' decoding, which is not
timed anyway).

Usage::

    python benchmarks/companion.py [--data ../shared/data/kermany224]
        [--repeats 3] [--epochs 30] [--networks 1] [--synthetic N]
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per network (default: the companion's, 30)")
    parser.add_argument("--networks", type=int, default=1,
                        help="networks per fit (cxrlearn train's companion has 3)")
    parser.add_argument("--synthetic", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)

    from cxrlearn import PneumoniaCNN
    from cxrlearn.networks import resolve_precision

    class ShrinkEveryStep(PneumoniaCNN):
        """The estimator as it was: whole networks train, shrinking each step."""

        def _trainees(self, networks, fit_data, val_data):
            return networks, fit_data, val_data

    X, y, source = _images(args)
    companion = default_pipeline(args.data)[-1].companion
    params = companion.get_params()
    params.update(random_state=0, verbose=0, n_networks=args.networks)
    if args.epochs:
        params["epochs"] = args.epochs
    epochs = params["epochs"]
    print(f"{source}: {len(y)} images of {X.shape[1]}x{X.shape[2]}; companion: "
          f"{args.networks} network(s) of {params['resize']} px, {epochs} epochs, batch "
          f"{params['batch_size']}; precision {params['precision']} -> "
          f"{resolve_precision(params['precision'])}; {os.cpu_count()} CPUs", flush=True)
    ways = {"every step": ShrinkEveryStep, "once": PneumoniaCNN}
    results = {name: {"wall": [], "cpu": []} for name in ways}
    work = len(y) * epochs * args.networks
    weights = {}
    for r in range(args.repeats):
        order = list(ways) if r % 2 == 0 else list(ways)[::-1]
        for name in order:
            est = ways[name](**params)
            t0, c0 = time.perf_counter(), time.process_time()
            est.fit(X, y)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            results[name]["wall"].append(wall)
            results[name]["cpu"].append(cpu)
            weights.setdefault(name, est.model_.get_weights())
            print(f"repeat {r + 1} {name:>10}: fit {wall:6.1f} s wall, {cpu:6.1f} CPU-s "
                  f"({cpu / wall:.2f} cores), {work / cpu:6.1f} images/CPU-s", flush=True)
    for name, res in results.items():
        print(f"{name:>10}: median {statistics.median(res['wall']):6.1f} s wall, "
              f"{statistics.median(res['cpu']):6.1f} CPU-s")
    wall = [o / e for o, e in zip(results["once"]["wall"], results["every step"]["wall"])]
    cpu = [o / e for o, e in zip(results["once"]["cpu"], results["every step"]["cpu"])]
    print(f"once / every step: median {statistics.median(wall):.2f}x the wall-clock time "
          f"(range {min(wall):.2f}-{max(wall):.2f}), {statistics.median(cpu):.2f}x the "
          f"CPU-seconds (range {min(cpu):.2f}-{max(cpu):.2f}) over {args.repeats} repeats")
    same = all(np.array_equal(a, b) for a, b in zip(weights["once"], weights["every step"]))
    print(f"identical weights: {same}")


if __name__ == "__main__":
    main()
