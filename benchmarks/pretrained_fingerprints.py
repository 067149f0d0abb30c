"""Add the training-image digests and hashes to the packaged ready-trained model.

    python benchmarks/pretrained_fingerprints.py [--data ../shared/data/kermany224]

The ready-trained model (``cxrlearn/pretrained/kermany224_default.skops``)
was fitted on all of Kermany-224 ``train`` and ``val`` before
:class:`~cxrlearn.PneumoniaCNN` kept digests of its training images
(``training_fingerprints_``) and their perceptual hashes
(``training_hashes_``), so ``cxrlearn evaluate --pretrained kermany224``
could not warn that it scores the model on its own training images, nor
``evaluate --pretrained kermany-originals`` that those are the same films at
full resolution. This script decodes the 4,307 images with the model's own
loader -- the pixels its network was trained on -- stores whichever of the
two it lacks (:func:`cxrlearn.utils.image_fingerprints`,
:func:`cxrlearn.utils.perceptual_hashes`) in the network, checks that the
digests it already had are those of these pixels and that the predictions
did not change, and writes the model back with its new SHA-256 in the card.
The network's weights are untouched. ``benchmarks/train_pretrained.py``
records both itself when it trains a new model; then this script is not
needed.
"""

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_pretrained import DEFAULT_DATA, load_all  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    args = parser.parse_args(argv)
    if not Path(args.data, "train").is_dir():
        sys.exit(f"Kermany-224 not found at {args.data} (--data)")

    from cxrlearn import pretrained
    from cxrlearn.io import save_model
    from cxrlearn.utils import image_fingerprints, perceptual_hashes

    pipe = pretrained.load()  # SHA-256 checked
    card_file = Path(pretrained._model.CARD_PATH)
    card = json.loads(card_file.read_text())
    paths, labels, _ = load_all(args.data)
    expected = card["training_data"]["images_per_class"]
    found = dict(zip(*[a.tolist() for a in np.unique(labels, return_counts=True)]))
    if found != expected:
        sys.exit(f"{args.data} holds {found}, not the {expected} the model was trained on")
    images = pipe[0].transform(paths)
    cnn = pipe[-1]
    before = cnn.predict_proba(images[:64])
    fingerprints = np.unique(image_fingerprints(images))
    if getattr(cnn, "training_fingerprints_", None) is None:
        cnn.training_fingerprints_ = fingerprints
    elif not np.array_equal(cnn.training_fingerprints_, fingerprints):
        sys.exit("the model's digests are not those of these images: other pixels")
    if getattr(cnn, "training_hashes_", None) is None:
        cnn.training_hashes_ = np.unique(perceptual_hashes(images), axis=0)
    if not cnn.trained_on(images, near=False).all():
        sys.exit("the digests do not match the images they were made from")
    print(f"{len(cnn.training_fingerprints_)} distinct digests and "
          f"{len(cnn.training_hashes_)} distinct hashes of {len(paths)} images")

    model_file = Path(pretrained._model.MODEL_PATH)
    save_model(pipe, model_file, include_optimizer=False)
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    from cxrlearn.io import load_model

    again = load_model(model_file)
    np.testing.assert_array_equal(again[-1].predict_proba(images[:64]), before)
    np.testing.assert_array_equal(again[-1].training_fingerprints_, cnn.training_fingerprints_)
    np.testing.assert_array_equal(again[-1].training_hashes_, cnn.training_hashes_)
    card["sha256"], card["size_bytes"] = digest, model_file.stat().st_size
    card_file.write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {model_file} ({card['size_bytes']} bytes), sha256 {digest}: "
          "pin it as MODEL_SHA256 in cxrlearn/pretrained/_model.py")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
