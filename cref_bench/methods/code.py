"""Where a method's code lives, found without importing it, and a digest of all of it.

A method's code is the folder of its top-level package (every file in it), the file of a
top-level module, or, for a ``path/to/file.py:Attribute`` spec, the folder holding the file
(a module beside it may be imported by it). The box a method runs in sees these paths
read-only (:mod:`cref_bench.run.sandbox`), and :func:`code_digest` of them is part of the
runner's resume key, so that editing any file the method may import makes results stale.

:func:`code_roots` reads a spec the way :func:`cref_bench.methods.registry.resolve` does, but
only locates modules (``importlib.util.find_spec`` of a top-level name runs no code of it);
a registered name or scheme is located through its entry point's ``module:attribute``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

from cref_bench.errors import MethodError
from cref_bench.methods.registry import (
    ENTRY_POINT_GROUP,
    SCHEME_GROUP,
    is_file_spec,
    registered,
    unknown_method,
)

SKIPPED_PARTS = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache",
                           ".ruff_cache"})
"""Folders left out of a code digest (caches and version control, not code)."""


def module_root(module_name: str) -> Path | None:
    """The folder of a module's top-level package, or the file of a top-level module.

    Args:
        module_name: a dotted module name.

    Returns:
        The resolved path, or None for a built-in or frozen module (no file of its own).

    Raises:
        MethodError: no such top-level module is importable.
    """
    top = module_name.partition(".")[0]
    module = sys.modules.get(top)
    if module is not None and getattr(module, "__file__", None) is None \
            and not getattr(module, "__path__", None):
        return None
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise MethodError(module_name, f"cannot locate module {top!r}: {exc}") from exc
    if spec is None:
        raise MethodError(module_name, f"no module {module_name!r} on the import path "
                                       "(install its package, add its folder to PYTHONPATH, "
                                       "or give the file as path/to/file.py:Attribute)")
    if spec.submodule_search_locations:
        locations = list(spec.submodule_search_locations)
        return Path(locations[0]).resolve() if locations else None
    if spec.origin in (None, "built-in", "frozen"):
        return None
    return Path(spec.origin).resolve()


def _entry_point_target(group: str, name: str) -> str | None:
    found = [ep for ep in registered(group) if ep.name == name]
    return found[0].value if found else None


def code_roots(spec: str) -> tuple[Path, ...]:
    """The paths holding a method's code, for a spec as
    :func:`cref_bench.methods.registry.resolve` reads it.

    Args:
        spec: a registered name, ``SCHEME:NAME``, ``package.module:Attribute`` or
            ``path/file.py:Attribute``.

    Returns:
        Resolved folders and files (a file spec: the file's folder).

    Raises:
        MethodError: the spec names nothing that can be located.
    """
    scheme, sep, _ = spec.partition(":")
    target = _entry_point_target(SCHEME_GROUP, scheme) if sep else None
    if target is None and is_file_spec(spec):
        path = Path(spec.rpartition(":")[0]).expanduser()
        if not path.is_file():
            raise MethodError(spec, f"no file {path}")
        return (path.resolve().parent,)
    if target is None:
        target = spec if sep else _entry_point_target(ENTRY_POINT_GROUP, spec)
    if target is None:
        raise unknown_method(spec)
    root = module_root(target.partition(":")[0])
    return () if root is None else (root,)


def class_roots(cls: type) -> tuple[Path, ...]:
    """The paths holding the code of a method class already imported in this process.

    Args:
        cls: the method's class.

    Returns:
        The folder of its module's top-level package (the folder of a file loaded by path
        or of a script), or nothing for a class without a file.
    """
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if path is None:
        return ()
    if "." not in cls.__module__ and not getattr(module, "__path__", None):
        return (Path(path).resolve().parent,)  # a script, or a file loaded by path
    root = module_root(cls.__module__)
    return () if root is None else (root,)


DATA_MARKERS = ("zarr.json", "provenance.json")
"""A folder holding one of these files is a corpus store or a results folder, not code: a
code digest leaves it out (a method file may sit beside its results)."""


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_PARTS and not any(
            os.path.exists(os.path.join(folder, d, m)) for m in DATA_MARKERS))
        found += [Path(folder) / f for f in files if not f.endswith((".pyc", ".pyo"))]
    return sorted(found)


def code_digest(roots: tuple[Path, ...] | list[Path]) -> str:
    """The SHA-256 of every file under ``roots`` (names relative to their root, and bytes).

    Args:
        roots: folders and files (caches and ``.pyc`` files are left out).

    Returns:
        A hex digest.

    Raises:
        OSError: a file cannot be read.
    """
    digest = hashlib.sha256()
    for root in sorted(Path(r) for r in roots):
        digest.update(f"root {root.name}\0".encode())
        for path in _files(root):
            name = path.name if path == root else path.relative_to(root).as_posix()
            data = path.read_bytes()
            digest.update(f"{name}\0{len(data)}\0".encode())
            digest.update(data)
    return digest.hexdigest()
