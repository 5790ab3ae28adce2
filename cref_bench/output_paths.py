"""Where cref-bench writes: output paths checked before any work, and the per-user cache.

A command that writes checks its outputs first, so that an unusable path ends it at once
with one line naming the path (exit status 2), not after an hour of work:

* :func:`check_output_file` for a file (``--json OUT``): its folder exists (or, with
  ``make_parents``, can be made) and can be written, and the path is not a folder;
* :func:`check_output_folder` for a folder (``--out DIR``): it is a folder that can be
  written, or it can be made where the nearest existing folder above it can be written.

Locations with a URL scheme (``s3://...``) are left to the storage layer. Downloads go to
:func:`cache_folder`, the user's own cache (``$XDG_CACHE_HOME/cref-bench``, else
``~/.cache/cref-bench``), never to a folder shared by every user of the machine.
"""

from __future__ import annotations

import os
from pathlib import Path

from cref_bench.errors import InputError, UnavailableError

CACHE_NAME = "cref-bench"
"""The folder of cref-bench in the user's cache folder."""


def cache_folder(*parts: str) -> Path:
    """The per-user cache folder of cref-bench (not created).

    Args:
        *parts: sub-folders inside it, e.g. ``"downloads"``.

    Returns:
        ``$XDG_CACHE_HOME/cref-bench/...`` when ``XDG_CACHE_HOME`` is set to an absolute path
        (the XDG rule), else ``~/.cache/cref-bench/...``.
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root.joinpath(CACHE_NAME, *parts)


def _is_url(location: str | os.PathLike) -> bool:
    return "://" in str(location) and not str(location).startswith("file://")


def _local(location: str | os.PathLike) -> Path:
    text = str(location)
    return Path(text[len("file://"):] if text.startswith("file://") else text).expanduser()


def _writable_folder(folder: Path, label: str, target: Path) -> None:
    """Refuse a folder that cannot take new files."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UnavailableError(f"{label} {target}", f"cannot be written: no permission to "
                               f"write in {folder}")


def _nearest_existing(path: Path) -> Path:
    """``path`` or the nearest of its parents that exists."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_file(path: str | os.PathLike | None, label: str = "output", *,
                      make_parents: bool = False) -> None:
    """Refuse, before any work, a file path that cannot be written.

    Args:
        path: the file to be written (``None``: nothing to check).
        label: how the user gave it (``--json``), for the message.
        make_parents: whether the command creates missing folders above it.

    Raises:
        InputError: the path is a folder, or its folder is missing (without
            ``make_parents``) or is a file.
        UnavailableError: the file or its folder exists but cannot be written.
    """
    if path is None or _is_url(path):
        return
    target = _local(path)
    if target.is_dir():
        raise InputError(f"{label} {target}", "is a folder, not a file")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise UnavailableError(f"{label} {target}", "cannot be written: no permission")
        _writable_folder(target.absolute().parent, label, target)
        return
    folder = target.absolute().parent
    if folder.is_dir():
        _writable_folder(folder, label, target)
        return
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise InputError(f"{label} {target}", f"cannot be written: {existing} is a file, not "
                         "a folder")
    if not make_parents:
        raise InputError(f"{label} {target}", f"cannot be written: the folder {folder} does "
                         "not exist")
    _writable_folder(existing, label, target)


def check_output_folder(path: str | os.PathLike | None, label: str = "output") -> None:
    """Refuse, before any work, a folder path that cannot be written or made.

    Args:
        path: the folder to be written into (``None``: nothing to check).
        label: how the user gave it (``--out``), for the message.

    Raises:
        InputError: the path, or one of its parents, is a file.
        UnavailableError: the folder (or the nearest existing one above it) cannot be
            written.
    """
    if path is None or _is_url(path):
        return
    target = _local(path)
    existing = _nearest_existing(target)
    if not existing.is_dir():
        fault = ("is a file, not a folder" if existing == target.absolute() else
                 f"cannot be made: {existing} is a file, not a folder")
        raise InputError(f"{label} {target}", fault)
    _writable_folder(existing, label, target)
