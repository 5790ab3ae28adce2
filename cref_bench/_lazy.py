"""Lazy re-exports: a package names its public objects without importing their modules.

The command line must start without numpy, so a package's ``__init__`` lists where each
public name lives and the module is imported on first access.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, where: dict[str, str]):
    """``(__all__, __getattr__)`` for a package whose public names live in its modules.

    Args:
        package: the package's ``__name__``.
        where: public name -> module path relative to ``package`` (``"io"`` for
            ``package.io``).

    Returns:
        the sorted list of public names and a module-level ``__getattr__`` that imports a
        name's module on first access (and raises :class:`AttributeError` for any other name).
    """

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return sorted(where), __getattr__
