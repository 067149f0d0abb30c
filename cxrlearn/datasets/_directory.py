"""Image folders, CSV manifests and Kermany patient ids, as path arrays."""

import csv
import os
import re
import warnings

import numpy as np
from sklearn.utils._param_validation import StrOptions, validate_params

__all__ = [
    "IMAGE_EXTENSIONS",
    "PatientIdWarning",
    "list_image_files",
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


def _extension_set(extensions):
    if isinstance(extensions, str):
        extensions = (extensions,)
    return {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}


@validate_params(
    {"folder": [str, os.PathLike], "extensions": [str, "array-like"]},
    prefer_skip_nested_validation=True,
)
def list_image_files(folder, *, extensions=IMAGE_EXTENSIONS):
    """The image files under a folder, recursively, sorted by path.

    Parameters
    ----------
    folder : str or os.PathLike
        Folder to search; hidden files and folders (name starting with
        ``.``) are skipped.
    extensions : str or sequence of str, default=IMAGE_EXTENSIONS
        File suffixes to keep (case-insensitive, the dot optional).

    Returns
    -------
    paths : list of str
        File paths.

    Raises
    ------
    FileNotFoundError
        If ``folder`` is not a folder.

    Examples
    --------
    >>> import os, tempfile
    >>> from cxrlearn.datasets import list_image_files
    >>> root = tempfile.mkdtemp()
    >>> for rel in ["a/1.png", "b/2.jpeg", "b/notes.txt", ".hidden/3.png"]:
    ...     os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
    ...     open(os.path.join(root, rel), "wb").close()
    >>> [os.path.relpath(p, root) for p in list_image_files(root)]
    ['a/1.png', 'b/2.jpeg']
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder '{folder}' does not exist or is not a folder")
    return _image_files(folder, _extension_set(extensions))


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

    Notes
    -----
    The paths come class by class, so ``paths[:300]`` is (almost) one
    class. Take a subset that keeps the class balance with
    :func:`sklearn.model_selection.train_test_split`::

        from sklearn.model_selection import train_test_split
        paths, _, labels, _ = train_test_split(
            paths, labels, train_size=300, stratify=labels, random_state=0)

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
    extensions = _extension_set(extensions)
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


class PatientIdWarning(UserWarning):
    """The file names give no patient ids: every file counts as its own patient.

    Issued by :func:`patient_ids` when its default rule (Kermany file names)
    finds no two files of the same patient in names that are not
    Kermany-style, e.g. ``MRN00123_2024-01-05_PA.png`` and
    ``MRN00123_2024-03-09_PA.png``. Grouped cross-validation with such
    groups puts images of one patient on both sides of a split, which
    inflates every score. Give the rule (``pattern=r"^(MRN\\d+)_"``) or the
    groups themselves (a manifest's patient column). Silence it, once the
    files really are one per patient, with
    ``warnings.simplefilter("ignore", PatientIdWarning)``.
    """


def _compile_pattern(pattern):
    if isinstance(pattern, str):
        try:
            pattern = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {exc}")
    return pattern


def _kermany_id(stem):
    match = _PERSON.match(stem) or _IM_SERIES.match(stem)
    return match.group(1) if match else None


def _pattern_id(path, pattern):
    """The patient id that ``pattern`` (compiled) finds in ``path``."""
    path = os.fspath(path)
    if "/" in pattern.pattern:  # a rule about folders: search the whole path
        where = path.replace(os.sep, "/")
    else:
        where = os.path.basename(path)
    match = pattern.search(where)
    if match is None:
        raise ValueError(
            f"pattern {pattern.pattern!r} does not match {where!r}"
            + (f" (the file name of '{path}')" if where != path else "")
            + "; every file needs a patient id"
        )
    if "patient" in pattern.groupindex:
        patient = match.group("patient")
    else:
        patient = match.group(1) if pattern.groups else match.group(0)
    if not patient:
        raise ValueError(f"pattern {pattern.pattern!r} gives an empty patient id for '{path}'")
    return patient


@validate_params(
    {"path": [str, os.PathLike], "pattern": [str, re.Pattern, None]},
    prefer_skip_nested_validation=True,
)
def patient_id(path, *, pattern=None):
    """The patient a chest X-ray file belongs to, from its name.

    By default, Kermany names: ``person123_bacteria_456.jpeg`` gives
    ``person123``; ``IM-0115-0001.jpeg`` gives ``IM-0115``;
    ``NORMAL2-IM-0927-0001.jpeg`` gives ``NORMAL2-IM-0927`` (further
    ``-NNNN`` parts, as in ``IM-0435-0001-0002.jpeg``, are image numbers
    too). A name that follows neither pattern gives its file stem, i.e.
    each such file is taken to be its own patient -- give a ``pattern`` for
    other naming schemes.

    Parameters
    ----------
    path : str or os.PathLike
        File path or name.
    pattern : str, re.Pattern or None, default=None
        A regular expression that finds the patient id, searched
        (:func:`re.search`) in the file name -- or in the whole path, with
        ``/`` separators, when the pattern contains a ``/``. The id is its
        group named ``patient``, else its first group, else the whole
        match. E.g. ``r"^(MRN\\d+)_"`` for ``MRN00123_2024-01-05_PA.png``,
        or ``r"/(MRN\\d+)/"`` for one folder per patient.

    Returns
    -------
    patient : str
        The patient id.

    Raises
    ------
    ValueError
        If ``pattern`` is not a valid regular expression or does not match.

    Examples
    --------
    >>> from cxrlearn.datasets import patient_id
    >>> patient_id("train/PNEUMONIA/person123_bacteria_456.jpeg")
    'person123'
    >>> patient_id("NORMAL2-IM-0927-0001.jpeg"), patient_id("IM-0115-0001.jpeg")
    ('NORMAL2-IM-0927', 'IM-0115')
    >>> patient_id("scan_42.png")
    'scan_42'
    >>> patient_id("MRN00123_2024-01-05_PA.png", pattern=r"^(MRN\\d+)_")
    'MRN00123'
    >>> patient_id("export/MRN00123/2024-01-05_PA.dcm", pattern=r"/(MRN\\d+)/")
    'MRN00123'
    """
    if pattern is not None:
        return _pattern_id(path, _compile_pattern(pattern))
    return _patient_id(path)


def _patient_id(path):
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return _kermany_id(stem) or stem


@validate_params(
    {"paths": ["array-like"], "pattern": [str, re.Pattern, None]},
    prefer_skip_nested_validation=True,
)
def patient_ids(paths, *, pattern=None):
    """Patient ids of many files, for ``GroupKFold`` / ``StratifiedGroupKFold``.

    Parameters
    ----------
    paths : array-like of str or os.PathLike
        File paths (a list, 1-D array, ``(n, 1)`` column or pandas Series).
    pattern : str, re.Pattern or None, default=None
        The rule that finds a patient id in a file name (or path), see
        :func:`patient_id`; by default Kermany names, and the file stem for
        any other name.

    Returns
    -------
    groups : ndarray of shape (n_samples,)
        Object array of patient ids, see :func:`patient_id`.

    Warns
    -----
    PatientIdWarning
        With the default rule, when some names are not Kermany-style and
        no two files share a patient id: every such file is then its own
        patient, which a hospital's naming (``MRN00123_2024-01-05_PA.png``)
        rarely means. Pass ``pattern`` or the groups themselves.

    Raises
    ------
    ValueError
        If ``pattern`` does not match a file (the file is named).

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

    A hospital's names need their own rule:

    >>> hospital = ["MRN00123_2024-01-05_PA.png", "MRN00123_2024-03-09_PA.png",
    ...             "MRN00456_2024-02-11_PA.png"]
    >>> patient_ids(hospital, pattern=r"^(MRN\\d+)_").tolist()
    ['MRN00123', 'MRN00123', 'MRN00456']
    """
    flat = np.asarray(paths, dtype=object).ravel()
    if pattern is not None:
        pattern = _compile_pattern(pattern)
        return _object_array([_pattern_id(p, pattern) for p in flat])
    names = [os.path.basename(os.fspath(p)) for p in flat]
    stems = [os.path.splitext(name)[0] for name in names]
    ids = [_kermany_id(stem) for stem in stems]
    other = [name for name, found in zip(names, ids) if found is None]
    groups = [found or stem for stem, found in zip(stems, ids)]
    if len(groups) >= 2 and other and len(set(groups)) == len(groups):
        warnings.warn(
            f"no two of these {len(groups)} files share a patient id: names such as "
            f"{other[0]!r} follow no known rule (Kermany's person123_*, IM-0115-*), so "
            "each file counts as its own patient and images of one patient can fall "
            "on both sides of a split. Give the rule as a regular expression, e.g. "
            r"pattern=r'^(MRN\d+)_' (its first group is the patient id), or the "
            "patient of each file (a manifest or groups file).",
            PatientIdWarning,
            stacklevel=3,  # the caller, above scikit-learn's parameter validation
        )
    return _object_array(groups)
