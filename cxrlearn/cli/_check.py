"""``cxrlearn check``: find every unreadable image before a long training run."""

from ._common import add_progress_argument, find_splits
from ._progress import CHUNK, Display


def add_parser(sub):
    parser = sub.add_parser(
        "check",
        help="list every unreadable image of a data folder",
        description="Decode every image under DATA_DIR and list all the bad files "
        "(missing, empty, truncated, corrupt, not an image, too large) at once. "
        "Exit status 1 when any file is bad.",
    )
    parser.add_argument("data", metavar="DATA_DIR")
    parser.add_argument("--n-jobs", type=int, default=2)
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


def run(args):
    from ..datasets import ScanReport, list_image_files, scan_images

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
    return 1 if report.bad else 0
