"""``cxrlearn explain``: Grad-CAM figures of a saved pipeline on image files.

Nothing is decided here: the label in each title is the model's own
``predict`` (at its own operating point), the heatmap explains that label
(:func:`cxrlearn.explain.explain_files`).
"""

from pathlib import Path

from ._common import CLIError, add_model_file_argument, load_model_from_args, status


def add_parser(sub):
    parser = sub.add_parser(
        "explain",
        help="Grad-CAM heatmaps: where a saved pipeline looked in X-ray files",
        description="For each FILE, write DIR/<name>.gradcam.png: the image as the "
        "network sees it beside its Grad-CAM heatmap for the label MODEL predicts "
        "(at its own operating point), titled with the file name, that label and "
        "its probability. Files with the same name in different folders get "
        "distinct figures.",
    )
    add_model_file_argument(parser)
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for the figures (created if needed)")
    parser.add_argument("--layer", default=None, metavar="NAME",
                        help="the layer whose feature maps Grad-CAM weighs (default: the "
                        "last convolution, conv5 for the study's network: 2x2 cells at "
                        "176 px; conv4: 6x6, conv3: 22x22)")
    parser.set_defaults(run=run_explain)


def check_out_dir(path):
    """Check before loading anything that ``--out`` is a folder we can write into."""
    from ..io import check_writable

    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists() and not folder.is_dir():
            raise CLIError(f"--out: {folder} is a file, not a folder")
    try:  # creates the folder, then a temporary file in it
        check_writable(path / ".cxrlearn-explain")
    except OSError as exc:
        reason = exc.strerror or "not writable"
        raise CLIError(f"--out: cannot write into {path}: {reason}") from exc
    return path


def run_explain(args):
    out = check_out_dir(args.out)
    model = load_model_from_args(args)
    from ..explain import explain_files

    try:
        written = explain_files(model, args.files, out, layer=args.layer)
    except (TypeError, ImportError) as exc:  # not a CNN model; no matplotlib
        raise CLIError(str(exc)) from exc
    for path in written:
        print(path)
    status(f"wrote {len(written)} Grad-CAM figure(s) to {out}")
    return 0
