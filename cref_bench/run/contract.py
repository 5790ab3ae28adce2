"""What the runner demands of a method, checked on every call.

A method is untrusted code: :func:`call_method` hands it read-only inputs, verifies with a
digest that it left them as they were, and checks that what it returned is a
:class:`~cref_bench.methods.protocol.Denoised` of finite, non-constant maps on the input grid. Any
breach raises :class:`MethodFailure`, naming the method and the fault, so the entry is
recorded as the method's failure (not the input file's).

Failure kinds (:data:`FAILURE_KINDS`), as ``failures.csv`` records them:

======================  ==================================================================
``error``               the method raised an exception
``output``              it returned something other than a valid ``Denoised`` on the grid
``inputs-modified``     it changed the maps it was given
``timeout``             it ran past the run's per-entry time limit (see :mod:`.isolation`)
``memory``              it went over the run's per-entry memory limit
``crashed``             its process died (a signal, ``os._exit``, the kernel's OOM killer)
``load``                the entry could not be read (not the method's fault)
``metrics``             the metrics could not be computed (not the method's fault)
======================  ==================================================================
"""

from __future__ import annotations

import hashlib

import numpy as np

from cref_bench.errors import CrefBenchError, GeometryMismatch
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import Denoised, Method

FAILURE_KINDS = ("error", "output", "inputs-modified", "timeout", "memory", "crashed", "load",
                 "metrics")
"""Why an entry failed; the first six blame the method."""

METHOD_FAULTS = FAILURE_KINDS[:6]
"""The failure kinds that are the method's fault."""


class MethodFailure(CrefBenchError):
    """A method broke the runner's contract or its limits on one entry (recorded by the
    runner as that entry's failure; never the end of a run).

    Args:
        method: the method's name.
        kind: one of :data:`METHOD_FAULTS`.
        fault: what went wrong, in words.
        detail: more for the record (the method's own traceback, when it ran elsewhere).
        error_type: the name of the exception the method raised (kind ``error``), else
            ``"MethodFailure"``.
    """

    def __init__(self, method: str, kind: str, fault: str, detail: str = "",
                 error_type: str = "MethodFailure"):
        if kind not in METHOD_FAULTS:
            raise ValueError(f"unknown failure kind {kind!r}; known: {', '.join(METHOD_FAULTS)}")
        super().__init__(f"method {method!r}", fault)
        self.method = method
        self.kind = kind
        self.detail = detail
        self.error_type = error_type

    def __reduce__(self):
        return type(self), (self.method, self.kind, self.fault, self.detail, self.error_type)


def read_only(volume: Volume) -> Volume:
    """``volume`` with its array marked read-only (no copy; the flag is on a new view).

    A method can still set the flag back on an array that owns its memory; :func:`call_method`
    therefore also compares digests.
    """
    view = volume.data.view()
    view.flags.writeable = False
    return Volume(view, volume.voxel_size, volume.origin, volume.source)


def digest(volume: Volume | None) -> str:
    """A digest of a map's voxels and geometry (SHA-256, hardware-accelerated on CPUs with
    SHA extensions); ``""`` for ``None``."""
    if volume is None:
        return ""
    h = hashlib.sha256()
    h.update(repr((volume.data.shape, volume.data.dtype.str, volume.voxel_size,
                   volume.origin)).encode())
    h.update(memoryview(np.ascontiguousarray(volume.data)).cast("B"))
    return h.hexdigest()


def _check_map(method: str, what: str, volume, like: Volume) -> None:
    if not isinstance(volume, Volume):
        raise MethodFailure(method, "output",
                            f"{what} is a {type(volume).__name__}, not a cref_bench.Volume")
    try:
        like.check_same_grid(volume)
    except GeometryMismatch as exc:
        raise MethodFailure(method, "output", f"{what} is not on the input grid: {exc.fault}") \
            from None
    data = volume.data
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise MethodFailure(method, "output", f"{what} has {bad} non-finite voxel(s) (NaN or inf)")
    if float(data.max()) == float(data.min()):
        raise MethodFailure(method, "output",
                            f"{what} is constant ({float(data.flat[0]):g} everywhere)")


def check_output(method: str, denoised, like: Volume) -> Denoised:
    """Check what a method returned for one entry.

    Args:
        method: the method's name (for messages).
        denoised: the method's return value.
        like: an input map, giving the grid every output must share.

    Returns:
        ``denoised``, checked.

    Raises:
        MethodFailure: (kind ``output``) not a ``Denoised``; a map that is not a ``Volume``,
            not on the grid, not finite or constant; one denoised half without the other.
    """
    if not isinstance(denoised, Denoised):
        raise MethodFailure(method, "output", f"returned a {type(denoised).__name__}, "
                            "not a cref_bench.methods.protocol.Denoised")
    if (denoised.half1 is None) != (denoised.half2 is None):
        raise MethodFailure(method, "output", "returned one denoised half-map without the other")
    for what in ("full", "half1", "half2"):
        volume = getattr(denoised, what)
        if what == "full" or volume is not None:
            _check_map(method, f"the denoised {'full map' if what == 'full' else what}",
                       volume, like)
    return denoised


def call_method(method: Method, half1: Volume, half2: Volume, mask: Volume | None) -> Denoised:
    """Run ``method.denoise`` on read-only inputs and check its inputs and its output.

    Args:
        method: the method.
        half1, half2: the half-maps (one grid).
        mask: the mask, or None.

    Returns:
        The checked :class:`~cref_bench.methods.protocol.Denoised`.

    Raises:
        MethodFailure: the method raised (kind ``error``, chained to its exception), changed
            its inputs (``inputs-modified``, whether or not it also raised) or returned an
            invalid output (``output``).
    """
    inputs = {"half1": read_only(half1), "half2": read_only(half2),
              "mask": None if mask is None else read_only(mask)}
    before = {name: digest(v) for name, v in inputs.items()}
    raised = None
    try:
        denoised = method.denoise(inputs["half1"], inputs["half2"], inputs["mask"])
    except Exception as exc:  # the method's own failure, recorded as such
        raised = exc
    changed = [name for name, v in inputs.items() if digest(v) != before[name]]
    if changed:
        raise MethodFailure(method.name, "inputs-modified",
                            f"changed its input map(s) {', '.join(changed)}; methods must not "
                            "write to their inputs (copy them first)") from raised
    if raised is not None:
        fault = f"raised {type(raised).__name__}: {raised}"
        if isinstance(raised, ValueError) and "read-only" in str(raised):
            fault += " (its inputs are read-only: copy an input before changing it)"
        raise MethodFailure(method.name, "error", fault,
                            error_type=type(raised).__name__) from raised
    return check_output(method.name, denoised, half1)
