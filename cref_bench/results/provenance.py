"""What a results folder records about where its numbers came from.

:class:`RunProvenance` is the typed content of the ``provenance.json`` the runner writes
beside every results table; helpers describe the software (package versions), the hardware
(CPU, memory, GPU) and the memory a process used.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("cref-bench", "numpy", "scipy", "torch", "zarr", "dask", "distributed", "pandas",
            "gemmi", "mrcfile", "numba")
"""Distributions whose versions every results folder records."""


def now_utc() -> str:
    """The current time, ISO 8601 in UTC with seconds (``2026-01-31T12:00:00+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    """The installed version of each distribution.

    Args:
        names: distribution names as pip knows them.

    Returns:
        ``{name: version}``, ``None`` for a distribution that is not installed.
    """
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[str]:
    """The CUDA devices: as torch sees them where this process has imported torch, else as
    ``nvidia-smi`` lists them where it is installed (importing torch only to ask would add a
    second or more to every run)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        if not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listed = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listed.splitlines() if line.strip()]


def hardware() -> dict:
    """The machine this process runs on.

    Returns:
        ``host``, ``platform``, ``python``, ``cpu_model``, ``cpu_cores`` (logical),
        ``memory_bytes`` (physical total, ``None`` if unknown) and ``gpus`` (CUDA device
        names, empty without one).
    """
    try:
        import psutil

        memory = int(psutil.virtual_memory().total)
    except ImportError:
        memory = None
    return {"host": socket.gethostname(), "platform": platform.platform(),
            "python": sys.version.split()[0], "cpu_model": _cpu_model(),
            "cpu_cores": os.cpu_count(), "memory_bytes": memory, "gpus": _gpus()}


def peak_rss_bytes() -> int:
    """The peak resident set size of this process so far, in bytes (Linux and macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def process_identity() -> dict:
    """Host name and process id of this process (to tell workers apart)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


@dataclass(frozen=True)
class DatasetFacts:
    """The corpus a run evaluated: ``provenance.json``'s ``dataset``."""

    location: str
    format_version: int
    content_hash: str | None
    version: str
    split: str
    entries: int
    limit: int | None


@dataclass(frozen=True)
class MethodFacts:
    """The method a run evaluated: ``provenance.json``'s ``method`` (``cls`` is written as
    ``class``: ``module:qualname``)."""

    name: str
    version: str
    params: dict
    code_digest: str | None
    needs_gpu: bool
    spec: str | None
    cls: str


@dataclass(frozen=True)
class ExecutionFacts:
    """How the method ran, as resolved from the run's settings: ``provenance.json``'s
    ``execution``.

    Attributes:
        isolation: ``process`` (its box) or ``in-process`` (the referee's own process).
        timeout_s, memory_limit_bytes: the per-entry limits.
        sandbox: ``bwrap`` (an operating-system sandbox, :mod:`cref_bench.run.sandbox`) or
            ``none`` (no sandbox could be made, or the method ran in process).
        trusted: the method ran in the referee's process because the user trusted it
            (``--trust-method``), not because it is one of cref-bench's own.
        network: the method's box shared the machine's network (``--allow-network``).
    """

    isolation: str
    timeout_s: float | None
    memory_limit_bytes: int | None
    sandbox: str
    trusted: bool
    network: bool


@dataclass(frozen=True)
class RunProvenance:
    """Everything ``provenance.json`` records of one run (:meth:`to_json` is the file).

    Attributes:
        dataset, method, execution: see their types.
        scoring: ``cref_bench_version`` and ``scoring_digest`` (the scoring code's, see
            :func:`cref_bench.run.scoring.scoring_facts`).
        settings: the run's :class:`~cref_bench.run.settings.RunSettings`, as given.
        counts: ``entries``, ``evaluated``, ``resumed``, ``failed``.
        failures_by_kind: failed entries per failure kind.
        started_at, finished_at: ISO 8601 times in UTC; wall_seconds: the run's duration.
        peak_memory: peak resident memory of the driver and of each worker process.
        command_line: how the run was started.
        packages, hardware: :func:`package_versions` and :func:`hardware`, taken when made.
    """

    dataset: DatasetFacts
    method: MethodFacts
    settings: dict
    execution: ExecutionFacts
    scoring: dict
    counts: dict
    failures_by_kind: dict
    started_at: str
    finished_at: str
    wall_seconds: float
    peak_memory: dict
    command_line: list[str]
    packages: dict = field(default_factory=package_versions)
    hardware: dict = field(default_factory=hardware)

    def to_json(self) -> dict:
        """The JSON object of ``provenance.json``."""
        record = asdict(self)
        record["method"]["class"] = record["method"].pop("cls")
        return record
