"""``cxrlearn check``: find every unreadable image before a long training run."""

from ._common import find_splits


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
    parser.set_defaults(run=run)


def run(args):
    from ..datasets import scan_images

    find_splits(args.data)  # the folder must exist
    report = scan_images(args.data, n_jobs=args.n_jobs)
    print(report)
    return 1 if report.bad else 0
