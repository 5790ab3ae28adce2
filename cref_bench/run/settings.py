"""One run's settings: built once (by ``cref-bench run`` or a script), frozen, checked.

:class:`RunSettings` is what :func:`cref_bench.run.runner.run_method` takes besides the
method and the corpus; it travels unchanged to the dask workers and is written to
``provenance.json`` as :meth:`RunSettings.as_record` gives it::

    settings = RunSettings(split="test-50", workers=4, params={"sigma": 1.5})
    run_method("lowpass", corpus, settings)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from cref_bench.errors import InputError

ISOLATION = ("auto", "process", "in-process")
"""Where the runner runs a method: ``auto`` (in this process for cref-bench's own methods that
declare ``safe_in_process``, and for any method with ``trust_method``; else in its box),
``process`` (always in its box) or ``in-process`` (cref-bench's own methods, or any with
``trust_method``)."""

SPLITS = ("test", "test-50", "valid", "train", "all")
"""The splits a run can evaluate (see :mod:`cref_bench.corpus.splits`)."""

DEFAULT_TIMEOUT = 3600.0
"""Seconds a method may spend on one entry unless told otherwise."""


@dataclass(frozen=True)
class RunSettings:
    """How a run evaluates a method on a corpus (the method and the corpus are given apart).

    Attributes:
        split: which entries: ``test`` (default), ``test-50``, ``valid``, ``train`` or ``all``.
        out: the results folder (None: ``results/<method name>``).
        workers: dask worker processes of a local cluster; 1 (default) runs in this process.
        scheduler: address of an existing dask scheduler (``tcp://host:port``); overrides
            ``workers``.
        limit: evaluate only the first ``limit`` entries of the split (None: all).
        save_maps: write every denoised full map to ``maps/<entry>_denoised.mrc``.
        params: the method's parameters (only with a method given by name); a copy of
            those given.
        progress: show a progress bar.
        seed: the run's seed (each entry gets its own seed from it).
        isolation: one of :data:`ISOLATION`.
        timeout: seconds a method may spend on one entry (None: no limit).
        memory_limit: bytes of resident memory a method's process may use (None: no limit;
            ``"auto"``: a share of the machine's memory divided among the workers).
        retry_failed: evaluate again the entries that failed in an earlier run.
        trust_method: let a method that is not part of cref-bench run in this process
            (``isolation`` ``auto`` or ``in-process``); recorded in the provenance and
            marked by ``cref-bench check``, the leaderboard and the report. Without it such
            a method runs only in its box and is never imported here.
        network: let the method's box share the machine's network (recorded).
        keep_outputs: keep each denoised output in ``outputs/`` (compressed float32), so
            that ``cref-bench check --recompute`` can re-score the records.
        replace: let the run replace the results of another setting (other method or
            parameters) in ``out``; without it a run into a folder given as ``out`` that
            holds another setting is refused, and one into the default folder goes to
            ``results/<method>-<parameters>`` instead.

    Raises:
        InputError: a value out of range (named in the message).
    """

    split: str = "test"
    out: Path | None = None
    workers: int = 1
    scheduler: str | None = None
    limit: int | None = None
    save_maps: bool = False
    params: dict = field(default_factory=dict)
    progress: bool = True
    seed: int = 0
    isolation: str = "auto"
    timeout: float | None = DEFAULT_TIMEOUT
    memory_limit: int | str | None = "auto"
    retry_failed: bool = False
    trust_method: bool = False
    network: bool = False
    keep_outputs: bool = True
    replace: bool = False

    def __post_init__(self):
        if self.out is not None:
            object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "params", dict(self.params or {}))
        self._check()

    def _check(self) -> None:
        if self.split not in SPLITS:
            raise InputError("split", f"must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.workers < 1:
            raise InputError("workers", f"must be at least 1, got {self.workers}")
        if self.limit is not None and self.limit < 1:
            raise InputError("limit", f"must be at least 1, got {self.limit}")
        if self.isolation not in ISOLATION:
            raise InputError("isolation", f"must be one of {', '.join(ISOLATION)}, "
                             f"got {self.isolation!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise InputError("timeout", f"must be positive (or None: no limit), "
                             f"got {self.timeout}")
        memory = self.memory_limit
        if memory not in (None, "auto") and not (isinstance(memory, int) and memory > 0):
            raise InputError("memory limit", f"must be a positive number of bytes, 'auto' or "
                             f"None, got {memory!r}")

    @classmethod
    def of(cls, settings: RunSettings | None = None, **changes) -> RunSettings:
        """``settings`` (default: the defaults) with some fields changed.

        Args:
            settings: the settings to start from.
            **changes: field names and their new values.

        Returns:
            New settings.

        Raises:
            InputError: an unknown field (the valid ones are listed) or a bad value.
        """
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            valid = ", ".join(f.name for f in dataclasses.fields(cls))
            raise InputError("run settings", f"unknown {', '.join(unknown)}; the settings "
                             f"are {valid}")
        return dataclasses.replace(settings or cls(), **changes)

    def as_record(self) -> dict:
        """The settings as JSON-ready values, for the provenance."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        record["out"] = None if self.out is None else str(self.out)
        record["params"] = dict(self.params)
        return record
