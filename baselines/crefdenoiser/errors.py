"""The error raised for a weights file that cannot be used.

A checkpoint is bad input read from a file, so the error is a
:class:`cref_bench.errors.InputError` (it names the file and the fault; ``cref-bench`` ends
with exit status 2 and one line saying so).
"""

from __future__ import annotations

from cref_bench.errors import InputError


class CheckpointError(InputError):
    """A weights file (TensorFlow checkpoint or torch file) that cannot be read or used.

    Args:
        source: the file path.
        fault: what is wrong, in words.
    """
