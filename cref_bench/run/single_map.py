"""The runner's held-out calls: a single-map method is handed one noisy map per call.

A :class:`~cref_bench.methods.protocol.SingleMapMethod` is never given both halves. The
runner calls it three times per entry, one map per call: on the average ``M`` (the denoised
full map), on ``M1`` alone (``D1``) and on ``M2`` alone (``D2``). ``D1`` never saw ``M2``, so
``M2`` is an independent noisy copy of the signal against which ``D1`` is scored
(:mod:`cref_bench.metrics.heldout`), and the same holds the other way round. Only these calls
count as held out: a method's own ``denoise`` (which gets both halves, and may look at both)
is not called at all.

A method in its box keeps its memory and its scratch files from one call to the next, so one
box making all three calls could keep ``M1`` and use it when given ``M2``. Each kind of call
therefore has a box of its own (:class:`HeldOutBoxes`): one box is only ever given averages,
one only first halves and one only second halves, of every entry; nothing from the ``M1``
call of an entry reaches the box that denoises its ``M2`` or ``M`` (separate namespaces, memory
and scratch; the boxes share no writable path and, unless the run allows the network, no
network). Without a sandbox (``sandbox: none``) the three are still separate processes, but
they share the file system.

* :class:`OneMap` is what the box runs: the method's ``denoise_map`` of the one map it is
  given. The box's protocol carries a pair of maps; the runner passes the same map twice,
  and :class:`OneMap` refuses a pair that is not one map twice.
* :func:`denoise_apart` makes the three calls through a caller of the runner's choosing:
  :func:`in_process_caller` (this process: cref-bench's own or a trusted method) or
  :func:`process_caller` (the method's three boxes, :class:`HeldOutBoxes`, which run
  :class:`OneMap`); :class:`Apart` makes them in a thread, so that the runner can score one
  entry while the boxes denoise the next.
* :func:`not_held_out` is the note of a method whose scores cannot be held out (a pair method:
  LAFTER, a filter weighted by the halves' FSC, the probes).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cref_bench.errors import InputError
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import Denoised, Method, SingleMapMethod, average_halves

SEED_SPAN = 2 ** 32
"""Seeds are taken modulo this (the per-entry seeds are 32-bit)."""

CALLS = ("average", "half1", "half2")
"""The three held-out calls of an entry, each made in a box of its own (:class:`HeldOutBoxes`)."""


def is_single_map(method: Method) -> bool:
    """Whether the runner denoises ``method``'s halves apart (held out): a single-map method."""
    return isinstance(method, SingleMapMethod)


def not_held_out(name: str) -> str:
    """Why a method has no held-out scores (the note beside them).

    Args:
        name: the name of a method that is not single-map.

    Returns:
        The note.
    """
    return (f"not applicable: {name} denoises the two halves together (a pair method), "
            "so no denoised half was made without the other half")


class OneMap(Method):
    """A single-map method as its box runs it: the one map given, denoised alone.

    Args:
        method: the single-map method.

    The map comes as both halves of the box's call (the same map twice); anything else is
    refused, so that the method is never handed two different maps.
    """

    def __init__(self, method: SingleMapMethod):
        if not is_single_map(method):
            raise InputError(f"{method.name}: only a single-map method can be run on one map")
        self.method = method
        self.name = method.name
        self.version = method.version
        self.needs_gpu = method.needs_gpu
        self.safe_in_process = method.safe_in_process

    def params(self) -> dict:
        return self.method.params()

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None = None) -> Denoised:
        """``method.denoise_map(half1, mask)`` as the full map.

        Raises:
            InputError: ``half2`` is not the map ``half1`` (the runner's own fault).
        """
        if half2.data is not half1.data and not np.array_equal(half1.data, half2.data):
            raise InputError("a single-map call was given two different maps")
        return Denoised(full=self.method.denoise_map(half1, mask))


Caller = Callable[[Volume, Volume | None, int, str], Volume]
"""``call(map, mask, seed, what)``: the runner's call of :class:`OneMap` on one map (``what``
names the map for the log: ``average``, ``half1``, ``half2``); returns the checked output."""


def denoise_apart(call: Caller, half1: Volume, half2: Volume, mask: Volume | None,
                  seed: int) -> Denoised:
    """The three held-out calls of one entry: the average, ``half1`` alone, ``half2`` alone.

    Args:
        call: makes one call (see :data:`Caller`).
        half1, half2: the noisy halves.
        mask: the entry's mask, or None.
        seed: the entry's seed; the calls get ``seed``, ``seed + 1``, ``seed + 2`` (so that
            the two halves' random draws, if any, differ).

    Returns:
        A :class:`Denoised` of the three outputs (``half1`` made from ``half1`` alone).

    Raises:
        MethodFailure: as ``call`` raises it (the first failing call ends the entry).
        GeometryMismatch: the halves are not on one grid.
    """
    maps = average_halves(half1, half2), half1, half2
    full, d1, d2 = [call(volume, mask, (seed + k) % SEED_SPAN, what)
                    for k, (volume, what) in enumerate(zip(maps, CALLS, strict=True))]
    return Denoised(full=full, half1=d1, half2=d2)


def in_process_caller(method: SingleMapMethod, seed_everything: Callable[[int], None]) -> Caller:
    """The :data:`Caller` of a method run in this process: seed, then
    :func:`~cref_bench.run.contract.call_method` of :class:`OneMap` (read-only input, digest
    checked, output checked).

    Args:
        method: the single-map method.
        seed_everything: seeds this process's generators.
    """
    from cref_bench.run.contract import call_method

    box = OneMap(method)

    def call(volume: Volume, mask: Volume | None, seed: int, what: str) -> Volume:
        seed_everything(seed)
        return call_method(box, volume, volume, mask).full

    return call


class HeldOutBoxes:
    """A single-map method's three boxes (:class:`~cref_bench.run.isolation.MethodProcess`),
    one per kind of held-out call (:data:`CALLS`): ``box("half1")`` is given the first halves
    of every entry and nothing else, and so on.

    Args:
        make: ``make(log)`` starts one of the method's boxes, its output going to the file
            ``log``.
        log: the first box's log file; the others write beside it (``method-7-half1.log``).
        first: a box already started (the one that described the method, before it saw any
            map), used for the averages.

    Boxes start when first needed; :meth:`close` (or leaving a ``with`` block) stops all.
    """

    def __init__(self, make: Callable[[Path], object], log: Path, first=None):
        self._make = make
        self.log = Path(log)
        self._boxes = {} if first is None else {CALLS[0]: first}

    def log_of(self, what: str) -> Path:
        """The log file of the box for calls of kind ``what``."""
        if what == CALLS[0]:
            return self.log
        return self.log.with_name(f"{self.log.stem}-{what}{self.log.suffix}")

    def box(self, what: str):
        """The box that makes the calls of kind ``what`` (started here if need be)."""
        if what not in self._boxes:
            self._boxes[what] = self._make(self.log_of(what))
        return self._boxes[what]

    def start(self) -> None:
        """Start the three boxes without waiting for them (their start overlaps the caller's
        own work)."""
        for what in CALLS:
            self.box(what).start()

    @property
    def sandbox(self) -> str | None:
        """``"bwrap"`` where every box started is one, ``"none"`` where any is not, None
        before any started."""
        kinds = {box.sandbox for box in self._boxes.values()} - {None}
        if not kinds:
            return None
        return "none" if "none" in kinds else kinds.pop()

    def close(self) -> None:
        """Stop every box (all told first, so that they end together)."""
        for box in self._boxes.values():
            box.stop()
        for box in self._boxes.values():
            box.close()

    def __enter__(self) -> HeldOutBoxes:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def process_caller(boxes: HeldOutBoxes, label: str) -> Caller:
    """The :data:`Caller` of a method in its boxes (:class:`HeldOutBoxes`; each runs
    :class:`OneMap` for these calls): each map goes alone, as both halves of a call, to the
    box of its kind.

    Args:
        boxes: the method's boxes.
        label: the entry's id (the log names each call ``<label> <what>``).
    """
    def call(volume: Volume, mask: Volume | None, seed: int, what: str) -> Volume:
        return boxes.box(what).denoise(volume, volume, mask, seed=seed,
                                       label=f"{label} {what}", one_map=True).full

    return call


class Apart:
    """The held-out calls of one entry, made in a thread (see :func:`denoise_apart`); the
    same use as :meth:`~cref_bench.run.isolation.MethodProcess.submit` and ``collect``.

    Args:
        call, half1, half2, mask, seed: as :func:`denoise_apart` takes them.
    """

    def __init__(self, call: Caller, half1: Volume, half2: Volume, mask: Volume | None,
                 seed: int):
        pool = ThreadPoolExecutor(1, thread_name_prefix="cref-bench-apart")
        self._future = pool.submit(denoise_apart, call, half1, half2, mask, seed)
        pool.shutdown(wait=False)

    def collect(self) -> Denoised:
        """The three outputs once made.

        Raises:
            MethodFailure: as the first failing call raised it.
        """
        return self._future.result()


__all__ = ["CALLS", "Apart", "Caller", "HeldOutBoxes", "OneMap", "denoise_apart",
           "in_process_caller", "is_single_map", "not_held_out", "process_caller"]
