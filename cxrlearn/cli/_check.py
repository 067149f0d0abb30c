"""``cxrlearn check``: find every unreadable image, and every film stored twice
across patients, splits or labels, before a long training run."""

from pathlib import Path

from ._common import add_progress_argument, find_splits
from ._progress import CHUNK, Display


def add_parser(sub):
    parser = sub.add_parser(
        "check",
        help="list every unreadable image of a data folder",
        description="Decode every image under DATA_DIR and list all the bad files "
        "(missing, empty, truncated, corrupt, not an image, too large) at once; then "
        "list the films stored twice (copied, resized or re-encoded) under two "
        "patients' names, in two splits (train / val) or under two labels, which a "
        "split by patient cannot keep apart. Exit status 1 when any file is bad or "
        "any such film is found.",
    )
    parser.add_argument("data", metavar="DATA_DIR")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--skip-duplicates", action="store_true",
                        help="do not look for films stored twice (that decodes every "
                             "image once more)")
    add_progress_argument(parser)
    parser.set_defaults(run=run)


def format_scan(report):
    """The summary of a :class:`~cxrlearn.datasets.ScanReport`, then one line per bad file.

    Examples
    --------
    >>> from cxrlearn.datasets import ScanReport
    >>> print(format_scan(ScanReport(n_files=1)))
    1 file checked: 1 ok, 0 bad
    >>> print(format_scan(ScanReport(n_files=3, bad=[("a.png", "empty file (0 bytes)")])))
    3 files checked: 2 ok, 1 bad
      a.png: empty file (0 bytes)
    """
    return str(report)


def describe_duplicates(groups, root):
    """Lines about groups of files holding one film; ``(lines, n_conflicting)``.

    A group is harmless when its files share one patient (by file name), one
    split and one label (their folder); otherwise each differing part is
    named.

    Examples
    --------
    >>> groups = [["d/train/NORMAL/IM-0001-0001.png", "d/train/NORMAL/IM-0001-0002.png"],
    ...           ["d/train/NORMAL/IM-0002-0001.png", "d/val/PNEUMONIA/person7_virus_9.png"]]
    >>> lines, n = describe_duplicates(groups, "d")
    >>> n
    1
    >>> print("\\n".join(lines))
    duplicate films: 2 groups of 4 files; 1 within one patient, split and label; 1 across patients, splits or labels (a patient-grouped validation sees such a film on both sides, or its labels disagree):
      d/train/NORMAL/IM-0002-0001.png, d/val/PNEUMONIA/person7_virus_9.png: 2 patients (IM-0002, person7), 2 splits (train, val), 2 labels (NORMAL, PNEUMONIA)
    """
    from ..datasets import patient_id

    def split(path):  # root/<split>/<label>/file, or "" for root/<label>/file
        parts = Path(path).relative_to(root).parts
        return parts[0] if len(parts) > 2 else ""

    conflicts = []
    for group in groups:
        parts = []
        for what, keys in (
            ("patients", [patient_id(p) for p in group]),
            ("splits", [split(p) for p in group]),
            ("labels", [Path(p).parent.name for p in group]),
        ):
            distinct = sorted(set(keys))
            if len(distinct) > 1:
                parts.append(f"{len(distinct)} {what} ({', '.join(distinct)})")
        if parts:
            conflicts.append(f"  {', '.join(group)}: {', '.join(parts)}")
    n_files = sum(len(g) for g in groups)
    head = (f"duplicate films: {len(groups)} group{'s' * (len(groups) != 1)} of {n_files} "
            f"files; {len(groups) - len(conflicts)} within one patient, split and label")
    if conflicts:
        head += (f"; {len(conflicts)} across patients, splits or labels (a patient-grouped "
                 "validation sees such a film on both sides, or its labels disagree):")
    return ([head] if groups else ["duplicate films: none"]) + conflicts, len(conflicts)


def run(args):
    from ..datasets import ScanReport, find_duplicate_films, list_image_files, scan_images

    find_splits(args.data)  # the folder must exist
    display = Display.from_args(args)
    files = list_image_files(args.data)
    bar = display.bar(len(files), "checking", "img")
    bad = []
    try:
        for start in range(0, len(files), CHUNK):
            chunk = files[start : start + CHUNK]
            bad += scan_images(chunk, n_jobs=args.n_jobs).bad
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    report = ScanReport(n_files=len(files), bad=bad)
    print(format_scan(report))
    n_conflicts = 0
    if not args.skip_duplicates:
        unreadable = {str(path) for path, _ in report.bad}
        readable = [f for f in files if str(f) not in unreadable]
        lines, n_conflicts = describe_duplicates(
            find_duplicate_films(readable, n_jobs=args.n_jobs), args.data)
        print("\n".join(lines))
    return 1 if report.bad or n_conflicts else 0
