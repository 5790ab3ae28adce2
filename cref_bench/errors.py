"""The one family of cref-bench errors, and what each means for the command line.

Every error the project raises on purpose derives from :class:`CrefBenchError` and names
the place at fault (a file, a store, a URL, an argument) and the fault, so that a user
reading a log of a thousand-entry build knows which file to look at and why. The family has
three branches, which decide the exit status of ``cref-bench`` (see :mod:`cref_bench.cli`):

* :class:`InputError` (exit 2): bad input -- a map, model, corpus store, results folder,
  method or argument that cannot be used. Also a :class:`ValueError`.
* :class:`UnavailableError` (exit 2): an unusable environment -- a server, the network, a
  device or an optional dependency the work needs is missing or refuses.
* :class:`WorkFailed` (exit 1): some of the work failed, was recorded as such, and the
  rest was done.

Packages add their own errors under these branches (``dataset_builder.emdb`` its header,
listing and download errors, ``baselines.crefdenoiser`` its checkpoint error).
"""

from __future__ import annotations


class CrefBenchError(Exception):
    """The root of the family: something at a named place cannot be used.

    Args:
        source: the file path or location, a short description of an in-memory object, or
            an argument name; with ``fault`` omitted, the whole message instead.
        fault: what is wrong, in words.

    Attributes:
        source: the place at fault (``None`` when only a message was given).
        fault: what is wrong.
        exit_status: the exit status of ``cref-bench`` when the error ends a command.
    """

    exit_status = 2

    def __init__(self, source: object, fault: str | None = None):
        if fault is None:
            self.source, self.fault = None, str(source)
            super().__init__(self.fault)
        else:
            self.source, self.fault = str(source), fault
            super().__init__(f"{self.source}: {fault}")

    def __reduce__(self):
        # rebuilt whole when pickled to or from a worker process
        parts = (self.fault,) if self.source is None else (self.source, self.fault)
        return type(self), parts


class InputError(CrefBenchError, ValueError):
    """Bad input: a file, store, folder, method or argument that cannot be used as given."""


class UnavailableError(CrefBenchError):
    """An unusable environment: a server, the network, a device or a dependency is missing."""


class WorkFailed(CrefBenchError):
    """Some of the work failed and was recorded as such; the rest was done."""

    exit_status = 1


# --------------------------------------------------------------------------- bad input

class MapError(InputError):
    """A map that cannot be used: unreadable, truncated, inconsistent or non-finite."""


class MapNotFound(MapError):
    """A map file that does not exist."""


class CorruptGzip(MapError):
    """A gzip-compressed map whose stream is corrupt or ends early."""


class TruncatedMap(MapError):
    """A map file (or its decompressed stream) shorter than its header needs."""


class NonFiniteMap(MapError):
    """A map with NaN or infinite voxels."""


class ConstantMap(MapError):
    """A map with one value everywhere (no standard deviation to standardise by)."""


class BadMask(MapError):
    """A mask with values outside ``[0, 1]``, or without a voxel inside."""


class GeometryMismatch(MapError):
    """Two maps that must share a grid do not (shape, voxel size or origin differ)."""


class ModelError(InputError):
    """An atomic model (PDB or mmCIF) that cannot be read or holds no atoms."""


class CorpusError(InputError):
    """A corpus store that cannot be used, or a request it cannot answer.

    Args:
        location: the store path or URL (also available as ``.location``).
        fault: what is wrong, in words.
    """

    @property
    def location(self) -> str | None:
        """The store path or URL."""
        return self.source


class ResultsError(InputError):
    """A results folder that cannot be used: a missing or malformed file, or a conflict."""


class MethodError(InputError):
    """A method that cannot be found or built with the parameters given."""
