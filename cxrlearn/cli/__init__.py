"""The ``cxrlearn`` command line: demo, train, evaluate, predict, tune, threshold, check.

Built on :mod:`argparse`. Each sub-command lives in its own module and
imports Keras only when it runs, so ``cxrlearn --help`` starts fast. Errors
in the input end the program with a one-line message and a non-zero exit
status, never a traceback.
"""

import argparse
import signal
import sys
import threading

from ._common import CLIError

__all__ = ["build_parser", "main"]


def build_parser():
    """Return the :class:`argparse.ArgumentParser` of the ``cxrlearn`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
        The parser, with one sub-parser per command.

    Examples
    --------
    >>> from cxrlearn.cli import build_parser
    >>> args = build_parser().parse_args(["demo", "--epochs", "2"])
    >>> args.command, args.epochs
    ('demo', 2)
    """
    from . import _check, _demo, _evaluate, _threshold, _train
    from . import _explain
    from . import _report
    from . import _serve
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="cxrlearn",
        description="Train, evaluate and use a chest X-ray pneumonia CNN "
        "(scikit-learn pipelines saved in a format that runs no code when opened).",
    )
    parser.add_argument("--version", action="version", version=f"cxrlearn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _demo.add_parser(sub)
    _train.add_train_parser(sub)
    _evaluate.add_evaluate_parser(sub)
    _evaluate.add_predict_parser(sub)
    _train.add_tune_parser(sub)
    _threshold.add_parser(sub)
    _check.add_parser(sub)
    _explain.add_parser(sub)
    _report.add_parser(sub)
    _serve.add_parser(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so that clean-ups run as on Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated


def main(argv=None):
    """Run the ``cxrlearn`` command line.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    status : int
        Exit status: 0 on success, 1 on bad input, 130 on Ctrl-C (SIGINT),
        143 on SIGTERM (what ``kill``, ``docker stop`` and Slurm send).

    Notes
    -----
    SIGTERM is handled as Ctrl-C is: the work stops, temporary files are
    removed and a previous ``--out`` file is left intact.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # signal handlers can only be set there
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.run(args) or 0
    except Terminated:
        print("cxrlearn: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("cxrlearn: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"cxrlearn {args.command}: error: {message}", file=sys.stderr)
        return 1
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
