"""Write a file so that a reader never sees half of it."""

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "check_writable"]


def _umask():
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(path):
    """Fail now, not after hours of training, if ``path`` cannot be written.

    Creates the missing parent folders, then creates and removes a
    temporary file beside ``path`` (the only test that also holds for root
    and for read-only mounts, where :func:`os.access` can be wrong).

    Parameters
    ----------
    path : str or os.PathLike
        The file that will be written.

    Returns
    -------
    path : pathlib.Path
        The same path.

    Raises
    ------
    OSError
        If ``path`` is an existing folder, a parent is a file, or the
        folder cannot be written; the message names the path.

    Examples
    --------
    >>> import os, tempfile
    >>> from cxrlearn.io import check_writable
    >>> folder = tempfile.mkdtemp()
    >>> check_writable(os.path.join(folder, "sub", "model.skops")).name
    'model.skops'
    >>> check_writable(folder)
    Traceback (most recent call last):
    ...
    IsADirectoryError: cannot write ...: it is a folder
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(f"cannot write {path}: {parent} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write {path}: {exc.strerror}") from exc
    os.close(fd)
    os.unlink(tmp)
    return path


def atomic_write(path, write):
    """Call ``write(tmp_path)``, then rename the temporary file to ``path``.

    The temporary file lives in the destination folder (so the rename is
    atomic), gets the permissions the user's umask gives a new file (not the
    0600 of :func:`tempfile.mkstemp`), and is removed whatever happens, also
    on ``KeyboardInterrupt`` (which ``cxrlearn`` raises on SIGTERM too). An
    interrupted write therefore never leaves a half-written file at
    ``path`` and never replaces a previous file there.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    write : callable
        Called with the temporary path (a ``str``); writes the content there.

    Returns
    -------
    path : pathlib.Path
        The destination.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from cxrlearn.io import atomic_write
    >>> folder = tempfile.mkdtemp()
    >>> out = atomic_write(os.path.join(folder, "a.txt"), lambda tmp: Path(tmp).write_text("hi"))
    >>> out.read_text(), sorted(os.listdir(folder))
    ('hi', ['a.txt'])
    """
    path = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
