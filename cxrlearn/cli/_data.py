"""Training data of ``train`` and ``tune``: a folder or a manifest, and patients.

The patient of each image -- what keeps one patient's images on one side of
every split -- comes from, in this order: ``--groups FILE.csv``, the
``patient`` column of ``--manifest FILE.csv``, or the file names
(``--patient-pattern REGEX``, by default Kermany names).
"""

import csv
import os
import warnings
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from ._common import CLIError, find_splits, load_folder, status

__all__ = [
    "TrainingData",
    "add_data_arguments",
    "file_name_groups",
    "load_training_data",
    "patient_groups",
    "read_groups",
]

#: Accepted column names of a ``--groups`` file: (path column, group column).
GROUP_FILE_COLUMNS = (("path", "file"), ("patient", "group"))


def add_data_arguments(parser):
    """DATA_DIR or ``--manifest``, ``--out``, ``--three-class`` and the patient options."""
    parser.add_argument("data", metavar="DATA_DIR", nargs="?",
                        help="DATA_DIR/<LABEL>/* images, or DATA_DIR/train (+ DATA_DIR/val)")
    parser.add_argument("--out", required=True, metavar="MODEL",
                        help="where to save the fitted pipeline: MODEL.skops (safe format, runs "
                        "no code when opened) or MODEL.joblib (a pickle)")
    parser.add_argument("--three-class", action="store_true",
                        help="NORMAL / BACTERIA / VIRUS from Kermany file names")
    group = parser.add_argument_group(
        "data and patients",
        "Images of one patient must stay on one side of every split. The patient of "
        "each image comes from --groups, else the manifest's patient column, else the "
        "file names (--patient-pattern; by default Kermany names such as "
        "person123_virus_4.jpeg).")
    group.add_argument("--manifest", metavar="FILE.csv",
                       help="train on the images listed in a CSV file with columns path, "
                       "label and optionally patient (instead of DATA_DIR); relative paths "
                       "are relative to the CSV file")
    group.add_argument("--groups", metavar="FILE.csv",
                       help="the patient of each training image: a CSV file with columns "
                       "path (or file) and patient (or group); a path is absolute or the "
                       "last parts of the image's path (NORMAL/x.png, or x.png if the name "
                       "is unique). Every training image needs a row")
    group.add_argument("--patient-pattern", metavar="REGEX",
                       help="a regular expression whose first group is the patient id, "
                       r"searched in each file name, e.g. '^(MRN\d+)_' for "
                       "MRN00123_2024-01-05_PA.png (in the whole path if it contains a /)")


@dataclass
class TrainingData:
    """Training images, their labels and where they came from."""

    paths: np.ndarray
    labels: np.ndarray
    source: str  # the folder or manifest, for messages
    val_dir: object = None
    groups: np.ndarray = None


def load_training_data(args):
    """The training images of DATA_DIR or ``--manifest`` (no groups yet)."""
    if (args.data is None) == (args.manifest is None):
        raise CLIError("give either DATA_DIR or --manifest FILE.csv (one of them)")
    if args.manifest is None:
        train_dir, val_dir = find_splits(args.data)
        mode = "three_class" if args.three_class else "folder"
        paths, labels = load_folder(train_dir, label_mode=mode)
        return TrainingData(paths, labels, str(train_dir), val_dir)
    if args.three_class:
        raise CLIError("--three-class reads Kermany folders; with --manifest, put the three "
                       "labels in its label column")
    paths, labels, groups = _load_manifest(args.manifest)
    counts = ", ".join(f"{c}: {n}" for c, n in zip(*np.unique(labels, return_counts=True)))
    status(f"{args.manifest}: {len(paths)} images ({counts})"
           + (f", {len(np.unique(groups))} patients" if groups is not None else ""))
    return TrainingData(paths, labels, str(args.manifest), None, groups)


def _load_manifest(path):
    from ..datasets import load_manifest

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except FileNotFoundError:
        raise CLIError(f"--manifest: file not found: {path}") from None
    group_column = next((c for c in ("patient", "group") if c in header), None)
    try:
        loaded = load_manifest(path, group_column=group_column)
    except ValueError as exc:
        raise CLIError(f"--manifest: {exc}") from exc
    paths, labels = loaded[0], loaded[1]
    groups = loaded[2] if group_column else None
    return paths, labels, groups


def patient_groups(args, data):
    """The patient of every training image (see the module docstring).

    A :class:`~cxrlearn.datasets.PatientIdWarning` of the file-name rule is
    printed as a one-line warning that names the options.
    """
    given = [name for name, value in (("--groups", args.groups),
                                       ("--patient-pattern", args.patient_pattern),
                                       ("the manifest's patient column", data.groups))
             if value is not None]
    if len(given) > 1:
        raise CLIError(f"give the patients one way, not {' and '.join(given)}")
    if args.groups is not None:
        groups = read_groups(args.groups, data.paths)
    elif data.groups is not None:
        groups = data.groups
    else:
        groups = file_name_groups(data.paths, command=args.command, source=data.source,
                                  pattern=args.patient_pattern)
    status(f"{len(groups)} images of {len(np.unique(groups))} patients")
    return np.asarray(groups, dtype=object)


def file_name_groups(paths, *, command, source, pattern=None,
                     advice="give the patients with --patient-pattern REGEX (e.g. "
                     r"'^(MRN\d+)_'), --groups FILE.csv or a --manifest with a patient column"):
    """:func:`~cxrlearn.datasets.patient_ids`, its warning as a one-line message."""
    from ..datasets import PatientIdWarning, patient_ids

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PatientIdWarning)
        try:
            groups = patient_ids(paths, pattern=pattern)
        except ValueError as exc:
            raise CLIError(f"--patient-pattern: {exc}") from exc
    for warning in caught:
        if issubclass(warning.category, PatientIdWarning):
            name = next(os.path.basename(str(p)) for p, g in zip(paths, groups)
                        if os.path.splitext(os.path.basename(str(p)))[0] == g)
            status(f"cxrlearn {command}: warning: no two images of {source} share a "
                   f"patient (names such as '{name}' follow no known rule), so each counts "
                   "as its own patient and one patient's images can fall on both sides of "
                   f"a split; {advice}")
        else:
            warnings.warn_explicit(warning.message, warning.category,
                                   warning.filename, warning.lineno)
    return groups


def _parts(path):
    return PurePath(os.path.normpath(str(path).replace("\\", "/"))).parts


def read_groups(csv_path, paths):
    """The group of each of ``paths`` from a CSV file of (path, patient) rows.

    Columns ``path`` (or ``file``) and ``patient`` (or ``group``). A row's
    path is absolute or the last parts of an image's path (``x.png``,
    ``NORMAL/x.png``, ``train/NORMAL/x.png``); rows that name no training
    image are ignored, so one file can serve train, validation and test.

    Raises
    ------
    CLIError
        If a column is missing, a row's path names several images, an image
        gets two different patients, or a training image has no row.
    """
    try:
        fh = open(csv_path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise CLIError(f"--groups: file not found: {csv_path}") from None
    with fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        path_col, group_col = (next((c for c in names if c in header), None)
                               for names in GROUP_FILE_COLUMNS)
        if path_col is None or group_col is None:
            raise CLIError(f"--groups: {csv_path} needs the columns path (or file) and "
                           f"patient (or group); it has {header}")
        rows = [(reader.line_num, (row[path_col] or "").strip(), (row[group_col] or "").strip())
                for row in reader]
    # every training image under each of its path suffixes
    index = {}
    for i, path in enumerate(paths):
        parts = PurePath(os.path.abspath(path)).parts
        for k in range(1, len(parts) + 1):
            index.setdefault(parts[-k:], []).append(i)
    groups = [None] * len(paths)
    for line, path, group in rows:
        if not path or not group:
            raise CLIError(f"--groups: empty path or patient on line {line} of {csv_path}")
        key = (PurePath(os.path.abspath(path)).parts if os.path.isabs(path)
               else _parts(path))
        found = index.get(key, [])
        if len(found) > 1:
            shown = ", ".join(str(paths[i]) for i in found[:3])
            raise CLIError(f"--groups: '{path}' (line {line} of {csv_path}) names "
                           f"{len(found)} training images ({shown}); give more of its path")
        for i in found:
            if groups[i] is not None and groups[i] != group:
                raise CLIError(f"--groups: '{paths[i]}' has two patients in {csv_path}: "
                               f"{groups[i]!r} and {group!r}")
            groups[i] = group
    missing = [p for p, g in zip(paths, groups) if g is None]
    if missing:
        raise CLIError(f"--groups: {len(missing)} of {len(paths)} training images have no "
                       f"row in {csv_path}, e.g. '{missing[0]}'")
    return np.asarray(groups, dtype=object)
