"""Errors raised for bad input.

Every error about a map names the file (or the in-memory source) and the fault, so that
a user reading a log of a thousand-entry build knows which file to look at and why.
"""

from __future__ import annotations


class SourceError(ValueError):
    """Something at a named place (a file, a store, a URL) that cannot be used.

    Args:
        source: the file path or location, or a short description of an in-memory object.
        fault: what is wrong, in words.
    """

    def __init__(self, source: object, fault: str):
        self.source = str(source)
        self.fault = fault
        super().__init__(f"{self.source}: {fault}")


class MapError(SourceError):
    """A map that cannot be used: unreadable, truncated, inconsistent or non-finite."""


class GeometryMismatch(MapError):
    """Two maps that must share a grid do not (shape, voxel size or origin differ)."""
