"""Patient-grouped cross-validation of a training recipe on Kermany-224 train + val.

    python benchmarks/recipe_cv.py NAME [--set cnn__precision=bfloat16 ...]
        [--seed 0] [--folds 3] [--data ../shared/data/kermany224]

The recipe is what ``cxrlearn train`` builds with its defaults (see
``benchmarks/train_pretrained.py``), changed by ``--set NAME=VALUE``
pipeline parameters. The same ``StratifiedGroupKFold(folds, shuffle=True,
random_state=0)`` split by patient as the ready-trained model's card is used,
so the out-of-fold predictions of two recipes are paired image by image.
Each fold's out-of-fold probabilities, labels and fit time are saved under
``benchmarks/results/recipe-cv/NAME/`` (a re-run resumes, and refuses to
when the folder's folds came from another recipe -- all of the pipeline's
parameters are recorded in its ``recipe.json``; the folder is not
versioned). Prints the pooled held-out ROC-AUC, accuracy at the
pipeline's own decision, sensitivity and specificity with 95% intervals
(bootstrap over patients; DeLong for ROC-AUC) and the fit times, and, with
``--compare OTHER``, the paired difference to another recipe's run (paired
bootstrap over patients).

Nothing here is chosen on these figures automatically: they are the
evidence the recipe page (docs/recipe.rst) cites.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_pretrained import (  # noqa: E402
    DEFAULT_DATA,
    card_figures,
    cross_validate,
    load_all,
)

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "results" / "recipe-cv"


def _parse_set(items):
    from cxrlearn.cli._train import _parse_value

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects NAME=VALUE, got {item!r}")
        out[name.strip()] = _parse_value(value)
    return out


def recipe_of(data, params, seed):
    """Every parameter of the pipeline a run trains, as text (to compare runs)."""
    from train_pretrained import default_pipeline

    pipe = default_pipeline(data, random_state=seed)
    pipe.set_params(**params)
    return {k: repr(v) for k, v in sorted(pipe.get_params(deep=True).items()) if "__" in k}


def check_resumable(work, recipe):
    """Refuse to resume a work folder whose saved folds came from another recipe.

    A run resumes from the folds it saved; if the defaults changed since
    (a new ``cxrlearn train`` default, say), those folds would silently mix
    two recipes in one estimate.
    """
    saved = work / "recipe.json"
    if not saved.exists() or not any(work.glob("fold*.npz")):
        return
    before = json.loads(saved.read_text()).get("recipe")
    if before == recipe:
        return
    if before is None:
        sys.exit(f"{work} holds folds saved before runs recorded their whole recipe: "
                 "remove the folder to run this recipe")
    changed = sorted(k for k in set(before) | set(recipe) if before.get(k) != recipe.get(k))
    sys.exit(f"{work} holds folds of another recipe ({', '.join(changed)} differ): "
             "remove the folder, or give this run another name")


def run(name, params, data, folds, seed, cache):
    work = WORK / name
    work.mkdir(parents=True, exist_ok=True)
    recipe = recipe_of(data, {"cnn__verbose": 2, **params}, seed)
    check_resumable(work, recipe)
    (work / "recipe.json").write_text(
        json.dumps({"set": params, "seed": seed, "recipe": recipe}, indent=1))
    paths, labels, groups = load_all(data)
    proba, pred, _, seconds = cross_validate(
        paths, labels, groups, data, work, folds, params={"cnn__verbose": 2, **params},
        random_state=seed, cache=cache, save_models=True,
    )
    np.savez(work / "oof.npz", proba=proba, pred=pred.astype(str), labels=labels.astype(str),
             groups=groups.astype(str))
    return labels, proba, pred, groups, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="a name for this recipe's run (its work folder)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--compare", default=None, metavar="OTHER",
                        help="a finished run's name: paired difference")
    args = parser.parse_args(argv)
    if not Path(args.data, "train").is_dir():
        sys.exit(f"Kermany-224 not found at {args.data} (--data)")
    params = _parse_set(args.set)
    cache = WORK / "decode-cache"
    labels, proba, pred, groups, seconds = run(args.name, params, args.data, args.folds,
                                               args.seed, cache)
    figures = card_figures(labels, proba, pred, groups)
    summary = {"name": args.name, "set": params, "seed": args.seed,
               "fit_seconds": [round(s, 1) for s in seconds], "figures": figures}
    if args.compare:
        from cxrlearn.evaluation import paired_bootstrap

        other = np.load(WORK / args.compare / "oof.npz", allow_pickle=False)
        assert np.array_equal(other["labels"], labels.astype(str))
        y = labels == "PNEUMONIA"
        diff = paired_bootstrap(y, proba, other["proba"], y_pred_a=pred == "PNEUMONIA",
                                y_pred_b=other["pred"] == "PNEUMONIA", pos_label=True,
                                groups=groups, n_resamples=2000, random_state=0)
        summary["compare"] = {
            "other": args.compare,
            "difference_this_minus_other": {
                name: {"estimate": float(i.estimate), "low": float(i.low),
                       "high": float(i.high), "p_value": float(diff.pvalues[name])}
                for name, i in diff.intervals.items()
            },
        }
    print(json.dumps(summary, indent=1, default=str))
    (WORK / args.name / "summary.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
