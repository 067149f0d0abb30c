"""Which Kermany patient is each PneumoniaMNIST image? (Patient groups for a 28 px CV.)

PneumoniaMNIST ships its images without file names, so a cross-validation of
it cannot be split by patient, and its own train / val split was not made by
patient. Its train and val splits are Kermany's training films at 28x28
(MedMNIST v2: centre-cropped to the short side, then resized), so most of
them are also in ``kermany224/`` -- the same films at 224x224, stretched
instead of cropped, under their file names. This script finds each
Kermany-224 file's PneumoniaMNIST image by normalised correlation: the 224 px
image is centre-cropped to each of several widths (the original aspect ratio
is lost in the stretch), resized to 28x28, and compared with every
PneumoniaMNIST image; the best match over the crops counts when its
correlation is at least ``--min-corr`` (0.9).

It prints how many images were matched, whether the labels agree, and how
many PneumoniaMNIST val images belong to a patient who also has images in
PneumoniaMNIST train (the leak that makes val figures flatter), and saves
the patient of every PneumoniaMNIST image (``""`` where none matched) to
``benchmarks/results/pneumoniamnist-patients.npz`` (not versioned: it is
derived from the data), which ``benchmarks/pneumoniamnist.py --grouped-cv``
reads.

Usage::

    python benchmarks/pneumoniamnist_patients.py [--data ../shared/data]
"""

import argparse
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "pneumoniamnist-patients.npz"
CROP_WIDTHS = np.round(np.arange(0.55, 1.001, 0.05), 2)  # fraction of the width kept


def _unit_rows(a):
    """Rows centred and scaled to unit length: dot products are correlations."""
    a = np.asarray(a, dtype=np.float32)
    a = a - a.mean(axis=1, keepdims=True)
    return a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-6)


def thumbnails(path):
    """The 28x28 images of one Kermany-224 file, one per centre crop width."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("L")
        w, h = img.size
        out = []
        for f in CROP_WIDTHS:
            cw = int(round(w * f))
            left = (w - cw) // 2
            small = img.crop((left, 0, left + cw, h)).resize((28, 28), Image.BICUBIC)
            out.append(np.asarray(small, dtype=np.float32).ravel())
    return np.stack(out)


def match(paths, mnist_images):
    """Best PneumoniaMNIST index and its correlation, for each Kermany-224 file."""
    bank = _unit_rows(mnist_images.reshape(len(mnist_images), -1)).T
    best = np.empty(len(paths), dtype=np.int64)
    corr = np.empty(len(paths), dtype=np.float32)
    for k, path in enumerate(paths):
        c = (_unit_rows(thumbnails(path)) @ bank).max(axis=0)
        best[k] = int(np.argmax(c))
        corr[k] = c[best[k]]
    return best, corr


def patients_of_mnist(n_mnist, best, corr, patients, min_corr):
    """The patient of each PneumoniaMNIST image ("" where none or two disagree)."""
    claims = defaultdict(set)
    for i, c, p in zip(best, corr, patients):
        if c >= min_corr:
            claims[int(i)].add(p)
    out = np.full(n_mnist, "", dtype=object)
    conflicts = 0
    for i, ps in claims.items():
        if len(ps) == 1:
            out[i] = next(iter(ps))
        else:
            conflicts += 1
    return out, conflicts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("CXRLEARN_DATA",
                                                         REPO.parent / "shared" / "data"))
    parser.add_argument("--min-corr", type=float, default=0.9)
    args = parser.parse_args(argv)
    data = Path(args.data)
    npz = data / "pneumoniamnist" / "pneumoniamnist_trainval.npz"
    if not npz.is_file() or not (data / "kermany224" / "train").is_dir():
        sys.exit(f"PneumoniaMNIST and Kermany-224 are needed under {data} (--data)")

    from cxrlearn.datasets import load_image_directory, patient_ids

    with np.load(npz) as d:
        images = np.concatenate([d["train_images"], d["val_images"]])
        labels = np.concatenate([d["train_labels"].ravel(), d["val_labels"].ravel()])
        n_train = len(d["train_images"])
    paths, names = [], []
    for split in ("train", "val"):
        p, y = load_image_directory(data / "kermany224" / split)
        paths += list(p)
        names += list(y)
    patients = np.asarray(patient_ids(paths))
    k_labels = (np.asarray(names) == "PNEUMONIA").astype(int)

    best, corr = match(paths, images)
    ok = corr >= args.min_corr
    print(f"{len(paths)} Kermany-224 files, {len(images)} PneumoniaMNIST images "
          f"({n_train} train, {len(images) - n_train} val)")
    print(f"matched at correlation >= {args.min_corr}: {ok.sum()} files "
          f"(correlation median {np.median(corr):.4f}, 1st percentile "
          f"{np.quantile(corr, 0.01):.4f}); labels agree for "
          f"{np.mean(labels[best[ok]] == k_labels[ok]):.4f} of them")
    mnist_patient, conflicts = patients_of_mnist(len(images), best, corr, patients,
                                                 args.min_corr)
    known = mnist_patient != ""
    print(f"PneumoniaMNIST images with a patient: {known.sum()}; without: {(~known).sum()} "
          f"({conflicts} claimed by files of two patients)")
    splits = np.where(np.arange(len(images)) < n_train, "train", "val")
    in_split = defaultdict(set)
    for p, s in zip(mnist_patient[known], splits[known]):
        in_split[p].add(s)
    val_known = known & (splits == "val")
    shared = np.array([len(in_split[p]) == 2 for p in mnist_patient[val_known]])
    print(f"PneumoniaMNIST val images with a patient: {val_known.sum()}, of which "
          f"{shared.sum()} ({shared.mean():.0%}) belong to a patient who also has images "
          f"in PneumoniaMNIST train; patients in both splits: "
          f"{sum(len(s) == 2 for s in in_split.values())} of {len(in_split)}")
    print("Kermany-224 split -> PneumoniaMNIST split of the matched files:",
          dict(Counter(f"{'val' if '/val/' in str(q) else 'train'}->{splits[i]}"
                       for q, i in zip(np.asarray(paths)[ok], best[ok]))))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez(OUT, patient=mnist_patient.astype(str), split=splits, label=labels,
             n_train=n_train, min_corr=args.min_corr)
    print(f"saved {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
