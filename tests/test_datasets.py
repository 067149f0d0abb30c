"""Image folders, manifests, patient ids and scan_images."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.utils._param_validation import InvalidParameterError

from cxrlearn._loading import ImageLoader
from cxrlearn.datasets import (
    PatientIdWarning,
    ScanReport,
    list_image_files,
    load_image_directory,
    load_manifest,
    patient_id,
    patient_ids,
    scan_images,
    write_synthetic_xray_directory,
)


def touch_image(path, value=128, size=(6, 6)):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture
def kermany_like(tmp_path):
    root = tmp_path / "train"
    names = [
        "NORMAL/IM-0115-0001.png",
        "NORMAL/NORMAL2-IM-0927-0001.png",
        "NORMAL/IM-0115-0002.png",
        "PNEUMONIA/person1_virus_6.png",
        "PNEUMONIA/person1_virus_7.png",
        "PNEUMONIA/person12_bacteria_45.png",
        "PNEUMONIA/sub/person3_bacteria_9.png",  # nested folder
    ]
    for name in names:
        touch_image(root / name)
    (root / "NORMAL" / ".DS_Store").write_text("x")  # hidden file
    (root / ".hidden").mkdir()  # hidden folder: not a class
    touch_image(root / ".hidden" / "IM-0001-0001.png")
    (root / "PNEUMONIA" / "notes.txt").write_text("x")  # not an image extension
    return root


# ------------------------------------------------------ load_image_directory
def test_load_image_directory_kermany_layout(kermany_like):
    paths, labels = load_image_directory(kermany_like)
    rel = [os.path.relpath(p, kermany_like) for p in paths]
    assert rel == [
        "NORMAL/IM-0115-0001.png",
        "NORMAL/IM-0115-0002.png",
        "NORMAL/NORMAL2-IM-0927-0001.png",
        "PNEUMONIA/person12_bacteria_45.png",
        "PNEUMONIA/person1_virus_6.png",
        "PNEUMONIA/person1_virus_7.png",
        "PNEUMONIA/sub/person3_bacteria_9.png",
    ]
    assert labels.tolist() == ["NORMAL"] * 3 + ["PNEUMONIA"] * 4
    assert paths.dtype == object and labels.dtype == object
    # deterministic: a second call gives the same order
    assert load_image_directory(str(kermany_like))[0].tolist() == paths.tolist()
    assert ImageLoader(4).transform(paths).shape == (7, 4, 4, 3)


def test_three_class_labels(kermany_like):
    paths, labels = load_image_directory(kermany_like, label_mode="three_class")
    assert labels.tolist() == ["NORMAL"] * 3 + ["BACTERIA", "VIRUS", "VIRUS", "BACTERIA"]


def test_three_class_needs_kermany_names(kermany_like):
    touch_image(kermany_like / "PNEUMONIA" / "scan.png")
    with pytest.raises(ValueError, match="scan.png"):
        load_image_directory(kermany_like, label_mode="three_class")


def test_classes_and_extensions(kermany_like):
    touch_image(kermany_like / "NORMAL" / "IM-0200-0001.JPG")
    paths, labels = load_image_directory(kermany_like, classes=["PNEUMONIA", "NORMAL"])
    assert labels[0] == "PNEUMONIA" and labels[-1] == "NORMAL"
    assert any(p.endswith(".JPG") for p in paths)  # case-insensitive suffix
    paths, _ = load_image_directory(kermany_like, extensions=("jpg",), classes=["NORMAL"])
    assert [os.path.basename(p) for p in paths] == ["IM-0200-0001.JPG"]


@pytest.mark.parametrize(
    "setup, kwargs, error, match",
    [
        ("missing", {}, FileNotFoundError, "does not exist"),
        ("flat", {}, ValueError, "no class folders"),
        ("empty_class", {}, ValueError, "holds no image files"),
        ("ok", {"classes": ["COVID"]}, FileNotFoundError, "COVID"),
        ("ok", {"label_mode": "four_class"}, ValueError, "label_mode"),
    ],
)
def test_directory_errors(tmp_path, setup, kwargs, error, match):
    root = tmp_path / "root"
    if setup == "flat":
        touch_image(root / "a.png")
    elif setup == "empty_class":
        touch_image(root / "NORMAL" / "a.png")
        (root / "PNEUMONIA").mkdir()
        (root / "PNEUMONIA" / "readme.txt").write_text("x")
    elif setup == "ok":
        touch_image(root / "NORMAL" / "a.png")
    with pytest.raises(error, match=match):
        load_image_directory(root, **kwargs)


def test_synthetic_directory_round_trip(tmp_path):
    written, written_labels = write_synthetic_xray_directory(
        tmp_path, n_samples=12, image_size=24, random_state=0
    )
    paths, labels = load_image_directory(tmp_path)
    assert sorted(zip(written, written_labels)) == sorted(zip(paths, labels))
    X = ImageLoader(16, color_mode="grayscale").transform(paths)
    assert X.shape == (12, 16, 16, 1) and X.std() > 0.01


# ------------------------------------------------------------- load_manifest
def write_csv(path, text):
    Path(path).write_text(text, encoding="utf-8")
    return str(path)


def test_manifest_relative_and_absolute_paths(tmp_path):
    absolute = str(tmp_path / "elsewhere" / "c.png")
    csv_path = write_csv(
        tmp_path / "m.csv",
        f"path,label,patient\nimg/a.png,NORMAL,p1\nimg/b.png,PNEUMONIA,p2\n{absolute},NORMAL,p1\n",
    )
    paths, labels = load_manifest(csv_path)
    assert paths.tolist() == [
        os.path.join(str(tmp_path), "img/a.png"),
        os.path.join(str(tmp_path), "img/b.png"),
        absolute,
    ]
    assert labels.tolist() == ["NORMAL", "PNEUMONIA", "NORMAL"]
    paths, labels, groups = load_manifest(csv_path, group_column="patient", root="/data")
    assert paths[0] == os.path.join("/data", "img/a.png")
    assert groups.tolist() == ["p1", "p2", "p1"]


def test_manifest_custom_columns_and_bom(tmp_path):
    csv_path = tmp_path / "m.csv"
    csv_path.write_bytes("\ufefffile;diagnosis\n".encode("utf-8"))  # BOM, wrong delimiter
    with pytest.raises(ValueError, match="available columns"):
        load_manifest(csv_path, path_column="file", label_column="diagnosis")
    csv_path.write_bytes("\ufefffile,diagnosis\nx.png,VIRUS\n".encode("utf-8"))
    paths, labels = load_manifest(csv_path, path_column="file", label_column="diagnosis")
    assert labels.tolist() == ["VIRUS"] and paths[0].endswith("x.png")


@pytest.mark.parametrize(
    "text, kwargs, match",
    [
        ("path,label\n", {}, "no rows"),
        ("path,label\na.png,NORMAL\n,PNEUMONIA\n", {}, "line 3"),
        ("path,label\na.png,\n", {}, "empty 'label'"),
        ("file,label\na.png,NORMAL\n", {}, "column 'path' not found"),
        ("path,label\na.png,NORMAL\n", {"group_column": "patient"}, "'patient'"),
    ],
)
def test_manifest_errors(tmp_path, text, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_manifest(write_csv(tmp_path / "m.csv", text), **kwargs)


# ----------------------------------------------------------------- patients
@pytest.mark.parametrize(
    "name, expected",
    [
        ("person123_bacteria_456.jpeg", "person123"),
        ("person1_virus_6.jpeg", "person1"),
        ("person1_virus_6_1.jpeg", "person1"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("IM-0435-0001-0002.jpeg", "IM-0435"),
        ("NORMAL2-IM-0927-0001.jpeg", "NORMAL2-IM-0927"),
        ("/data/train/NORMAL/NORMAL2-IM-1062-0001-0002.jpeg", "NORMAL2-IM-1062"),
        ("scan_42.png", "scan_42"),  # unknown pattern -> the stem
        (Path("x/IM-77.png"), "IM-77"),
    ],
)
def test_patient_id(name, expected):
    assert patient_id(name) == expected


def test_patient_ids_accept_columns():
    column = np.array([["person1_virus_6.jpeg"], ["IM-0115-0001.jpeg"]], dtype=object)
    assert patient_ids(column).tolist() == ["person1", "IM-0115"]


@pytest.mark.parametrize("splitter", [GroupKFold(n_splits=3), StratifiedGroupKFold(n_splits=3)])
def test_no_patient_spans_folds(tmp_path, splitter):
    paths, labels = write_synthetic_xray_directory(
        tmp_path, n_samples=40, image_size=16, random_state=0
    )
    groups = patient_ids(paths)
    assert len(set(groups)) < len(paths)  # some patients have several images
    for train, test in splitter.split(paths, labels, groups):
        assert not set(groups[train]) & set(groups[test])


def test_real_kermany_patient_ids(data_dir):
    folder = data_dir / "kermany224"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    paths, _ = load_image_directory(folder / "train")
    groups = patient_ids(paths)
    stems = {Path(p).stem for p in paths}
    assert not set(groups) & stems  # every real name parses to a patient
    assert 500 < len(set(groups)) < len(paths)  # patients with several images


@pytest.mark.parametrize(
    "call",
    [
        lambda root: load_image_directory(42),
        lambda root: load_image_directory(root, label_mode=None),
        lambda root: load_image_directory(root, classes="NORMAL"),
        lambda root: load_image_directory(root, extensions=3),
        lambda root: load_manifest(None),
        lambda root: load_manifest(root / "m.csv", path_column=0),
        lambda root: load_manifest(root / "m.csv", group_column=["patient"]),
        lambda root: patient_id(None),
        lambda root: patient_ids("person1_virus_6.jpeg"),
    ],
)
def test_parameters_are_validated(tmp_path, call):
    """Types and values: scikit-learn's InvalidParameterError (a ValueError)."""
    with pytest.raises(InvalidParameterError):
        call(tmp_path)


def test_extensions_as_one_string(tmp_path):
    touch_image(tmp_path / "NORMAL" / "a.png")
    touch_image(tmp_path / "NORMAL" / "b.bmp")
    paths, _ = load_image_directory(tmp_path, extensions="PNG")
    assert [Path(p).name for p in paths] == ["a.png"]


HOSPITAL = ["MRN00123_2024-01-05_PA.png", "MRN00123_2024-03-09_PA.png",
            "MRN00456_2024-02-11_PA.png"]


def test_hospital_names_warn_that_every_file_is_its_own_patient():
    with pytest.warns(PatientIdWarning, match="MRN00123_2024-01-05_PA.png") as record:
        groups = patient_ids(HOSPITAL)
    assert groups.tolist() == [Path(n).stem for n in HOSPITAL]  # unchanged rule
    assert record[0].filename == __file__  # points at the caller
    assert issubclass(PatientIdWarning, UserWarning)


@pytest.mark.parametrize("names", [
    ["person1_virus_6.jpeg", "person2_bacteria_3.jpeg", "IM-0115-0001.jpeg"],  # Kermany
    ["scan_1.png", "scan_1.png"],  # a repeated id
    ["scan_1.png"],  # a single file
])
def test_no_patient_warning_for_kermany_or_repeated_ids(names, recwarn):
    patient_ids(names)
    assert not [w for w in recwarn if issubclass(w.category, PatientIdWarning)]


@pytest.mark.parametrize("pattern", [r"^(MRN\d+)_", r"^(?P<patient>MRN\d+)_(\d+)"])
def test_patient_pattern(pattern, recwarn):
    import re

    groups = patient_ids([f"/data/x/{n}" for n in HOSPITAL], pattern=pattern)
    assert groups.tolist() == ["MRN00123", "MRN00123", "MRN00456"]
    assert patient_ids(HOSPITAL, pattern=re.compile(pattern)).tolist() == groups.tolist()
    assert not recwarn.list


def test_patient_pattern_on_folders_and_whole_matches():
    paths = ["export/MRN1/a.dcm", "export/MRN1/b.dcm", "export/MRN2/a.dcm"]
    assert patient_ids(paths, pattern=r"/(MRN\d+)/").tolist() == ["MRN1", "MRN1", "MRN2"]
    assert patient_id("MRN7_x.png", pattern=r"MRN\d+") == "MRN7"  # no group: the match


@pytest.mark.parametrize("pattern, match", [
    (r"^(MRN\d+)_", "does not match 'scan_1.png'"),
    (r"(", "not a valid regular expression"),
    (r"^(x?)", "empty patient id"),
])
def test_patient_pattern_errors(pattern, match):
    with pytest.raises(ValueError, match=match):
        patient_ids(["MRN1_a.png", "scan_1.png"], pattern=pattern)


def test_list_image_files(tmp_path):
    for rel in ["a/1.png", "b/2.JPEG", "b/notes.txt", ".hidden/3.png", "b/.4.png"]:
        touch_image(tmp_path / rel) if rel.endswith((".png", ".JPEG")) else \
            (tmp_path / rel).write_text("x")
    found = [os.path.relpath(p, tmp_path) for p in list_image_files(tmp_path)]
    assert found == ["a/1.png", "b/2.JPEG"]
    assert list_image_files(tmp_path, extensions="jpeg") == [str(tmp_path / "b" / "2.JPEG")]
    with pytest.raises(FileNotFoundError):
        list_image_files(tmp_path / "missing")


def test_patient_ids_of_a_series():
    pd = pytest.importorskip("pandas")
    series = pd.Series(["person1_virus_6.jpeg", "IM-0115-0001.jpeg"], index=[7, 3])
    assert patient_ids(series).tolist() == ["person1", "IM-0115"]


# ------------------------------------------------------------- scan_images
@pytest.fixture
def mixed_folder(tmp_path):
    good = [touch_image(tmp_path / f"ok{i}.png") for i in range(4)]
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpeg").write_text("hello")
    noise = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    data = (tmp_path / "noise.png").read_bytes()
    (tmp_path / "noise.png").unlink()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    big = touch_image(tmp_path / "big.png", size=(300, 300))
    return tmp_path, good, big


def test_scan_reports_every_bad_file(mixed_folder):
    folder, good, big = mixed_folder
    missing = str(folder / "missing.png")
    paths = good + [str(folder / "empty.png"), missing, str(folder / "text.jpeg"), big]
    report = scan_images(paths + [str(folder / "cut.png")], max_pixels=50_000)
    assert isinstance(report, ScanReport)
    assert report.n_files == 9 and report.ok_count == 4 and not report.ok
    reasons = dict(report.bad)
    assert list(reasons) == paths[4:] + [str(folder / "cut.png")]  # input order
    assert "empty file" in reasons[str(folder / "empty.png")]
    assert "file not found" in reasons[missing]
    assert "not a recognised image" in reasons[str(folder / "text.jpeg")]
    assert "max_pixels" in reasons[big]
    assert "truncated" in reasons[str(folder / "cut.png")]
    text = str(report)
    assert text.startswith("9 files checked: 4 ok, 5 bad")
    assert all(p in text for p in report.bad_paths)


def test_scan_folder_parallel_and_with_loader(mixed_folder):
    folder, good, big = mixed_folder
    report = scan_images(folder)
    assert report.n_files == 8 and len(report.bad) == 3  # empty, text, cut
    assert scan_images(folder, n_jobs=2).bad == report.bad
    strict = scan_images(folder, loader=ImageLoader(8, max_pixels=50_000, n_jobs=2))
    assert big in strict.bad_paths and len(strict.bad) == 4
    assert scan_images(good).ok
    assert scan_images(str(folder), extensions=(".bmp",)).n_files == 0
    with pytest.raises(TypeError, match="ImageLoader"):
        scan_images(good, loader="fast")
