"""Atomic file writing: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PathLike = str | os.PathLike[str]

__all__ = ["atomic_path", "atomic_write", "atomic_write_text", "check_writable"]


def check_writable(path: PathLike, overwrite: bool) -> Path:
    """Refuse to replace an existing file unless ``overwrite`` is set.

    Args:
        path: the output file.
        overwrite: whether replacing an existing file is allowed.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FileExistsError: when the file exists and ``overwrite`` is False.

    Example:
        >>> check_writable("/tmp/new-file-that-does-not-exist.txt", overwrite=False).name
        'new-file-that-does-not-exist.txt'

    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p}: exists; refusing to overwrite (pass overwrite=True / --overwrite)")
    return p


@contextmanager
def atomic_path(path: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it is renamed onto ``path``.

    The temporary name keeps the target's suffixes (``.nii.gz``), so writers that pick the format from
    the extension work. On error the temporary file is removed and the target is untouched.

    Args:
        path: the final file.
        overwrite: allow replacing an existing file.

    Yields:
        The temporary path to write to.

    Raises:
        FileExistsError: when the file exists and ``overwrite`` is False.

    Example:
        >>> with atomic_path("/tmp/cardiacseg-example.txt", overwrite=True) as tmp:
        ...     _ = tmp.write_text("hello")

    """
    target = check_writable(path, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes) or ".tmp"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the final file the usual permissions
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: PathLike, text: str, overwrite: bool = False) -> Path:
    """Write text atomically.

    Args:
        path: the output file.
        text: its content.
        overwrite: allow replacing an existing file.

    Returns:
        The written path.

    Raises:
        FileExistsError: when the file exists and ``overwrite`` is False.

    Example:
        >>> atomic_write_text("/tmp/cardiacseg-example2.txt", "x", overwrite=True).read_text()
        'x'

    """
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write(path: PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically.

    Args:
        path: the output file.
        write: a function writing the file at the path it is given.
        overwrite: allow replacing an existing file.

    Returns:
        The written path.

    Raises:
        FileExistsError: when the file exists and ``overwrite`` is False.

    Example:
        >>> atomic_write("/tmp/cardiacseg-example3.txt", lambda p: p.write_text("y"), overwrite=True).name
        'cardiacseg-example3.txt'

    """
    with atomic_path(path, overwrite) as tmp:
        write(tmp)
    return Path(path)
