"""The error raised for a weights file that cannot be used.

A checkpoint is not a map, but it is bad input read from a file all the same, so the error
is a :class:`cref_bench.errors.MapError` (it names the file and the fault, and code that
reports bad input already catches it).
"""

from __future__ import annotations

from cref_bench.errors import MapError


class CheckpointError(MapError):
    """A weights file (TensorFlow checkpoint or torch file) that cannot be read or used.

    Args:
        source: the file path.
        fault: what is wrong, in words.
    """
