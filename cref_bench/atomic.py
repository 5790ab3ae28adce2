"""Atomic file writes: write under a temporary name in the target's folder, then rename.

A reader (or a process killed mid-write) never sees a partial file: the target holds either
its old content or the whole new one. Used for result tables, provenance, leaderboards,
figures, maps and checkpoints. The file gets the permissions of any new file of the user
(``0666`` less the umask, as ``open`` gives), not the private ``0600`` of a temporary file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, *, make_parents: bool = False,
                fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; moved onto ``path`` when the block succeeds.

    Args:
        path: the target file.
        make_parents: create the target's folder if it is missing.
        fsync: flush the temporary file to disk before the move (for large files that
            must survive a power cut, such as maps).

    Yields:
        The temporary path (an empty file exists there; write over it).

    Raises:
        OSError: the folder is missing (without ``make_parents``) or not writable. If the
            block raises, the temporary file is removed and the target is left untouched.
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    temp = _new_file_beside(path)
    try:
        yield Path(temp)
        if fsync:
            with open(temp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _new_file_beside(path: Path) -> Path:
    """Create an empty, uniquely named file ``.<name>.<random>.tmp`` in ``path``'s folder,
    with the mode ``open`` gives a new file (``0666`` less the umask)."""
    for _ in range(100):
        temp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temp
    raise FileExistsError(f"no free temporary name beside {path}")


def write_bytes(path: str | os.PathLike, data: bytes, *, make_parents: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically.

    Args:
        path: the target file.
        data: the content.
        make_parents: create the target's folder if it is missing.

    Returns:
        The target path.

    Raises:
        OSError: as :func:`atomic_path`.
    """
    with atomic_path(path, make_parents=make_parents) as temp:
        temp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, *, make_parents: bool = False) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically.

    Args:
        path: the target file.
        text: the content.
        make_parents: create the target's folder if it is missing.

    Returns:
        The target path.

    Raises:
        OSError: as :func:`atomic_path`.
    """
    return write_bytes(path, text.encode("utf-8"), make_parents=make_parents)
