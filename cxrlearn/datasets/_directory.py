"""Image folders, CSV manifests and Kermany patient ids, as path arrays."""

import csv
import os
import re

import numpy as np
from sklearn.utils._param_validation import StrOptions, validate_params

__all__ = [
    "IMAGE_EXTENSIONS",
    "load_image_directory",
    "load_manifest",
    "patient_id",
    "patient_ids",
]

#: File extensions :func:`load_image_directory` picks up by default.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".tif", ".tiff", ".bmp")

_PERSON = re.compile(r"^(person\d+)_", re.IGNORECASE)
_IM_SERIES = re.compile(r"^((?:[A-Za-z0-9]+-)?IM-\d+)(?:-\d+)+$", re.IGNORECASE)


def _is_hidden(name):
    return name.startswith(".")


def _image_files(folder, extensions):
    """Non-hidden files under ``folder`` (recursively) with an allowed suffix."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        for name in filenames:
            if not _is_hidden(name) and os.path.splitext(name)[1].lower() in extensions:
                found.append(os.path.join(dirpath, name))
    return sorted(found)


def _three_class_label(path, folder_label):
    if folder_label.upper() == "NORMAL":
        return "NORMAL"
    name = os.path.basename(path).lower()
    if "bacteria" in name:
        return "BACTERIA"
    if "virus" in name:
        return "VIRUS"
    raise ValueError(
        f"cannot tell bacterial from viral pneumonia for '{path}': "
        "label_mode='three_class' needs Kermany file names containing "
        "'bacteria' or 'virus' (e.g. person1_bacteria_1.jpeg)"
    )


@validate_params(
    {
        "root": [str, os.PathLike],
        "extensions": [str, "array-like"],
        "label_mode": [StrOptions({"folder", "three_class"})],
        "classes": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def load_image_directory(
    root, *, extensions=IMAGE_EXTENSIONS, label_mode="folder", classes=None
):
    """List the images of a ``root/<LABEL>/<image>`` folder (Kermany layout).

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding one sub-folder per class, e.g. ``NORMAL/`` and
        ``PNEUMONIA/``. Images may sit in nested folders inside a class
        folder. Hidden files and folders (name starting with ``.``) are
        ignored.
    extensions : str or sequence of str, default=IMAGE_EXTENSIONS
        File suffixes to keep (case-insensitive, the dot optional), by default
        ``.png .jpg .jpeg .dcm .dicom .tif .tiff .bmp``.
    label_mode : {"folder", "three_class"}, default="folder"
        ``"folder"``: the label is the class folder's name (binary NORMAL /
        PNEUMONIA for Kermany). ``"three_class"``: ``"NORMAL"`` for the
        ``NORMAL`` folder, else ``"BACTERIA"`` or ``"VIRUS"`` from the Kermany
        file name (``person1_bacteria_1.jpeg``, ``person1_virus_6.jpeg``).
    classes : sequence of str, default=None
        Class folders to read, in this order; by default every non-hidden
        sub-folder, sorted by name.

    Returns
    -------
    paths : ndarray of shape (n_samples,)
        Object array of file paths (``str``), grouped by class folder in
        ``classes`` order and sorted by path within each class.
    labels : ndarray of shape (n_samples,)
        Object array of ``str`` labels.

    Raises
    ------
    FileNotFoundError
        If ``root`` (or a folder named in ``classes``) does not exist.
    ValueError
        If ``root`` has no class folders, a class folder holds no image, or
        a file name gives no bacteria / virus label in ``"three_class"`` mode.

    See Also
    --------
    patient_ids : Patient groups for grouped cross-validation.
    load_manifest : The same from a CSV file.

    Examples
    --------
    >>> import os, tempfile
    >>> from cxrlearn.datasets import load_image_directory
    >>> root = tempfile.mkdtemp()
    >>> for rel in ["NORMAL/IM-0001-0001.jpeg", "PNEUMONIA/person3_virus_7.jpeg",
    ...             "PNEUMONIA/person2_bacteria_5.jpeg"]:
    ...     os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
    ...     open(os.path.join(root, rel), "wb").close()
    >>> paths, labels = load_image_directory(root)
    >>> [os.path.basename(p) for p in paths]
    ['IM-0001-0001.jpeg', 'person2_bacteria_5.jpeg', 'person3_virus_7.jpeg']
    >>> labels.tolist()
    ['NORMAL', 'PNEUMONIA', 'PNEUMONIA']
    >>> load_image_directory(root, label_mode="three_class")[1].tolist()
    ['NORMAL', 'BACTERIA', 'VIRUS']
    """
    root = os.fspath(root)
    if isinstance(extensions, str):
        extensions = (extensions,)
    extensions = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder '{root}' does not exist or is not a folder")
    if classes is None:
        classes = sorted(
            d
            for d in os.listdir(root)
            if not _is_hidden(d) and os.path.isdir(os.path.join(root, d))
        )
        if not classes:
            raise ValueError(
                f"'{root}' has no class folders; expected root/<LABEL>/<image files>, "
                "e.g. root/NORMAL/x.jpeg and root/PNEUMONIA/y.jpeg"
            )
    paths, labels = [], []
    for label in classes:
        folder = os.path.join(root, label)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"class folder '{folder}' does not exist")
        files = _image_files(folder, extensions)
        if not files:
            raise ValueError(
                f"class folder '{folder}' holds no image files with extensions "
                f"{sorted(extensions)}"
            )
        for path in files:
            paths.append(path)
            if label_mode == "three_class":
                labels.append(_three_class_label(path, label))
            else:
                labels.append(label)
    return _object_array(paths), _object_array(labels)


def _object_array(values):
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


@validate_params(
    {
        "csv_path": [str, os.PathLike],
        "path_column": [str],
        "label_column": [str],
        "group_column": [str, None],
        "root": [str, os.PathLike, None],
    },
    prefer_skip_nested_validation=True,
)
def load_manifest(
    csv_path, *, path_column="path", label_column="label", group_column=None, root=None
):
    """Read image paths and labels (and groups) from a CSV manifest.

    Parameters
    ----------
    csv_path : str or os.PathLike
        CSV file with a header row (UTF-8, an Excel byte-order mark is fine).
    path_column : str, default="path"
        Column of image paths; relative paths are taken relative to ``root``.
    label_column : str, default="label"
        Column of labels (kept as strings).
    group_column : str, default=None
        Optional column of groups (e.g. patient ids) for grouped
        cross-validation; when given, a third array is returned.
    root : str or os.PathLike, default=None
        Base folder for relative paths; the CSV file's folder by default.

    Returns
    -------
    paths : ndarray of shape (n_samples,)
        Object array of ``str`` paths (absolute paths are kept as they are).
    labels : ndarray of shape (n_samples,)
        Object array of ``str`` labels.
    groups : ndarray of shape (n_samples,)
        Object array of ``str`` groups; only when ``group_column`` is given.

    Raises
    ------
    ValueError
        If a column is missing (the available ones are listed), the CSV has no
        rows, or a path / label / group cell is empty (the line is named).

    Examples
    --------
    >>> import os, tempfile
    >>> from cxrlearn.datasets import load_manifest
    >>> folder = tempfile.mkdtemp()
    >>> csv_path = os.path.join(folder, "manifest.csv")
    >>> with open(csv_path, "w") as fh:
    ...     _ = fh.write("path,label,patient\\nimg/a.png,NORMAL,p1\\nimg/b.png,PNEUMONIA,p2\\n")
    >>> paths, labels, groups = load_manifest(csv_path, group_column="patient")
    >>> os.path.relpath(paths[0], folder), labels.tolist(), groups.tolist()
    ('img/a.png', ['NORMAL', 'PNEUMONIA'], ['p1', 'p2'])
    """
    csv_path = os.fspath(csv_path)
    base = os.path.dirname(os.path.abspath(csv_path)) if root is None else os.fspath(root)
    columns = [("path", path_column), ("label", label_column)]
    if group_column is not None:
        columns.append(("group", group_column))
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        for _, column in columns:
            if column not in header:
                raise ValueError(
                    f"column '{column}' not found in '{csv_path}'; "
                    f"available columns: {header}"
                )
        values = {kind: [] for kind, _ in columns}
        for row in reader:
            for kind, column in columns:
                cell = (row.get(column) or "").strip()
                if not cell:
                    raise ValueError(
                        f"empty '{column}' value on line {reader.line_num} of '{csv_path}'"
                    )
                if kind == "path" and not os.path.isabs(cell):
                    cell = os.path.join(base, cell)
                values[kind].append(cell)
    if not values["path"]:
        raise ValueError(f"manifest '{csv_path}' has no rows")
    return tuple(_object_array(values[kind]) for kind, _ in columns)


@validate_params({"path": [str, os.PathLike]}, prefer_skip_nested_validation=True)
def patient_id(path):
    """The patient a Kermany chest X-ray file belongs to.

    ``person123_bacteria_456.jpeg`` gives ``person123``; ``IM-0115-0001.jpeg``
    gives ``IM-0115``; ``NORMAL2-IM-0927-0001.jpeg`` gives ``NORMAL2-IM-0927``
    (further ``-NNNN`` parts, as in ``IM-0435-0001-0002.jpeg``, are image
    numbers too). A name that follows neither pattern gives its file stem,
    i.e. each such file is taken to be its own patient.

    Parameters
    ----------
    path : str or os.PathLike
        File path or name.

    Returns
    -------
    patient : str
        The patient id.

    Examples
    --------
    >>> from cxrlearn.datasets import patient_id
    >>> patient_id("train/PNEUMONIA/person123_bacteria_456.jpeg")
    'person123'
    >>> patient_id("NORMAL2-IM-0927-0001.jpeg"), patient_id("IM-0115-0001.jpeg")
    ('NORMAL2-IM-0927', 'IM-0115')
    >>> patient_id("scan_42.png")
    'scan_42'
    """
    return _patient_id(path)


def _patient_id(path):
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    match = _PERSON.match(stem) or _IM_SERIES.match(stem)
    return match.group(1) if match else stem


@validate_params({"paths": ["array-like"]}, prefer_skip_nested_validation=True)
def patient_ids(paths):
    """Patient ids of many files, for ``GroupKFold`` / ``StratifiedGroupKFold``.

    Parameters
    ----------
    paths : array-like of str or os.PathLike
        File paths (a list, 1-D array, ``(n, 1)`` column or pandas Series).

    Returns
    -------
    groups : ndarray of shape (n_samples,)
        Object array of patient ids, see :func:`patient_id`.

    Examples
    --------
    >>> from sklearn.model_selection import GroupKFold
    >>> from cxrlearn.datasets import patient_ids
    >>> paths = ["person1_virus_6.jpeg", "person1_virus_7.jpeg",
    ...          "person2_bacteria_3.jpeg", "IM-0115-0001.jpeg"]
    >>> patient_ids(paths).tolist()
    ['person1', 'person1', 'person2', 'IM-0115']
    >>> for train, test in GroupKFold(n_splits=3).split(paths, groups=patient_ids(paths)):
    ...     assert not {paths[i][:7] for i in train} & {paths[i][:7] for i in test}
    """
    flat = np.asarray(paths, dtype=object).ravel()
    return _object_array([_patient_id(p) for p in flat])
