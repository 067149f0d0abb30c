"""Data sets: synthetic X-rays, image folders, manifests and MedMNIST files."""

from ._synthetic import make_synthetic_xrays, write_synthetic_xray_directory
from ._directory import (
    IMAGE_EXTENSIONS,
    PatientIdWarning,
    list_image_files,
    load_image_directory,
    load_manifest,
    patient_id,
    patient_ids,
)
from ._medmnist import fetch_pneumoniamnist, get_data_home, load_medmnist
from ._scan import ScanReport, scan_images
from ._duplicates import find_duplicate_films

__all__ = [
    "make_synthetic_xrays",
    "write_synthetic_xray_directory",
    "IMAGE_EXTENSIONS",
    "PatientIdWarning",
    "list_image_files",
    "load_image_directory",
    "load_manifest",
    "patient_id",
    "patient_ids",
    "fetch_pneumoniamnist",
    "get_data_home",
    "load_medmnist",
    "ScanReport",
    "scan_images",
    "find_duplicate_films",
]
