"""Running a method in its own process, under a time and a memory limit.

:class:`MethodProcess` keeps one child Python process per method and hands it one entry at a
time. The inputs travel as ``.npy`` files that the child maps read-only, the outputs come
back the same way, and the parent checks them itself (:func:`cref_bench.contract.check_output`)
before anything is scored, so nothing the method does inside its process can change what it
is scored against. The parent watches the child while it works:

* past ``Limits.timeout`` seconds on one entry, or with its process tree's resident memory
  over ``Limits.memory`` bytes (sampled every 50 ms), the child and everything it started are
  killed and the entry fails with kind ``timeout`` or ``memory``;
* a child that dies (a signal, ``os._exit``, the kernel's OOM killer) fails the entry with
  kind ``crashed`` and the last lines of its output.

A new child is started for the next entry. The child's standard output and error go to a
log file (``log``), since a method's prints must not interleave with the runner's output.
The child is a fresh interpreter (not a fork) with the parent's ``sys.path``, started in its
own session so that a kill reaches the programs it started; on Linux it also dies with its
parent. The method is sent to it with cloudpickle, so methods defined in scripts work. The
environment variable :data:`SCRATCH_ENV` names a folder the method may fill with temporary
files: it is removed with the process's other files on :meth:`MethodProcess.close`, also
after the child was killed mid-entry.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from cref_bench.contract import MethodFailure, call_method, check_output
from cref_bench.methods import Denoised, Method
from cref_bench.volume import Volume

ISOLATION = ("auto", "process", "in-process")
"""Where the runner runs a method: ``auto`` (in its own process only when the method declares
itself ``safe_in_process``), ``process`` (always a child process) or ``in-process``."""

DEFAULT_TIMEOUT = 3600.0
"""Seconds a method may spend on one entry unless told otherwise."""

STARTUP_SECONDS = 300.0
"""How long a method process may take to start (import and unpickle the method); not
counted against the per-entry time limit."""

POLL_SECONDS = 0.05
"""How often the parent samples the child's state while it works."""

LOG_TAIL_LINES = 20
"""How many of the child's last output lines a ``crashed`` failure quotes."""

SCRATCH_ENV = "CREF_BENCH_METHOD_SCRATCH"
"""Environment variable naming, in the child, a folder for the method's temporary files
(removed on :meth:`MethodProcess.close`, even after a kill)."""


@dataclass(frozen=True)
class Limits:
    """Per-entry limits of a method's process.

    Attributes:
        timeout: wall-clock seconds for one entry, or None for no limit.
        memory: bytes of resident memory of the method's process and its children, or None.
    """

    timeout: float | None = None
    memory: int | None = None

    def __post_init__(self):
        for name in ("timeout", "memory"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"the {name} limit must be positive, got {value}")


def _save(folder: Path, name: str, volume: Volume) -> dict:
    np.save(folder / f"{name}.npy", volume.data, allow_pickle=False)
    return {"voxel_size": volume.voxel_size, "origin": volume.origin, "source": volume.source}


def _load(folder: Path, name: str, geometry: dict, mmap: bool) -> Volume:
    data = np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
    return Volume(data, geometry["voxel_size"], geometry["origin"], geometry["source"])


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "its process stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (often the kernel's out-of-memory killer)" if -code == signal.SIGKILL else ""
        return f"its process was killed by {name}{hint}"
    return f"its process exited with status {code}"


class MethodProcess:
    """One method running in a child process, one entry at a time.

    Args:
        method: the method (sent to the child with cloudpickle).
        limits: the per-entry limits (default: none).
        log: the file the child's output is appended to (default: a file in the temporary
            folder, removed on :meth:`close`).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, method: Method, limits: Limits | None = None,
                 log: str | os.PathLike | None = None):
        import cloudpickle

        self.method = method
        self.limits = limits or Limits()
        self._blob = cloudpickle.dumps(method)
        self._scratch = Path(tempfile.mkdtemp(prefix="cref-bench-method-"))
        self.log = Path(log) if log is not None else self._scratch / "method.log"
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._starting = False

    def __enter__(self) -> MethodProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Start the child now, without waiting for it to be ready (the first entry waits),
        so that its start overlaps the caller's own work; a no-op when it is running."""
        if self._proc is not None:
            return
        parent, child = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            os.path.abspath(p) if p else os.getcwd() for p in sys.path))
        env[SCRATCH_ENV] = str(self._scratch)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", "from cref_bench.isolation import child_main; child_main()",
                 str(child.fileno())],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=env, start_new_session=True)
        child.close()
        self._conn = Connection(parent.detach())
        self._conn.send_bytes(self._blob)
        self._starting = True

    def _ready(self) -> None:
        """Start the child if needed and wait until it has loaded the method."""
        self.start()
        if self._starting:
            self._wait(STARTUP_SECONDS, "while starting (loading the method)")
            self._starting = False

    def _kill(self) -> None:
        if self._proc is not None:
            import psutil

            try:
                victims = psutil.Process(self._proc.pid).children(recursive=True)
            except psutil.Error:
                victims = []
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for proc in victims:  # those that left the session
                try:
                    proc.kill()
                except psutil.Error:
                    pass
            self._proc.wait()
        self._forget()

    def _forget(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._proc = None

    def _log_tail(self) -> str:
        try:
            with open(self.log, "rb") as log:
                lines = deque(log, maxlen=LOG_TAIL_LINES)
        except OSError:
            return ""
        text = b"".join(lines).decode("utf-8", "replace").rstrip()
        return f"; its last output:\n{text}" if text else ""

    def _wait(self, timeout: float | None, during: str = "") -> dict:
        """The child's next reply, enforcing ``timeout`` and the memory limit while waiting;
        ``during`` says what the child was doing, for the messages."""
        start, name = time.monotonic(), self.method.name
        during = f" {during}" if during else ""
        while True:
            try:
                if self._conn.poll(POLL_SECONDS):
                    return pickle.loads(self._conn.recv_bytes())
            except (EOFError, OSError):
                pass  # the child is gone; its exit status says how
            code = self._proc.poll()
            if code is not None:
                self._proc.wait()
                tail = self._log_tail()
                self._forget()
                raise MethodFailure(name, "crashed", _describe_exit(code) + during + tail)
            elapsed = time.monotonic() - start
            if timeout is not None and elapsed > timeout:
                self._kill()
                raise MethodFailure(name, "timeout", f"stopped after {elapsed:.0f} s{during} "
                                    f"(the limit is {timeout:g} s)")
            if self.limits.memory is not None:
                rss = _tree_rss(self._proc.pid)
                if rss > self.limits.memory:
                    self._kill()
                    raise MethodFailure(name, "memory", f"stopped at {rss / 2**30:.2f} GiB "
                                        f"resident{during} (the limit is "
                                        f"{self.limits.memory / 2**30:.2f} GiB)")

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None, *, seed: int = 0,
                label: str = "") -> Denoised:
        """Denoise one entry in the child process.

        Args:
            half1, half2, mask: the entry's maps (the child gets read-only copies).
            seed: seeds the child's numpy, ``random`` and (when loaded) torch generators.
            label: a line written to the log before the entry's output (e.g. its id).

        Returns:
            The checked :class:`~cref_bench.methods.Denoised`, read back into this process.

        Raises:
            MethodFailure: the method raised, broke the contract, or ran over a limit or
                died (the child is then restarted for the next entry).
        """
        self._ready()
        job = Path(tempfile.mkdtemp(prefix="entry-", dir=self._scratch))
        try:
            inputs = {"half1": half1, "half2": half2, "mask": mask}
            geometry = {n: _save(job, n, v) for n, v in inputs.items() if v is not None}
            self._conn.send_bytes(pickle.dumps({"folder": str(job), "geometry": geometry,
                                                "seed": seed, "label": label}))
            reply = self._wait(self.limits.timeout)
            if reply["status"] != "ok":
                raise MethodFailure(self.method.name, reply["kind"], reply["fault"],
                                    detail=reply["traceback"], error_type=reply["error_type"])
            maps = {n: _load(job, f"out-{n}", g, mmap=False)
                    for n, g in reply["outputs"].items()}
        finally:
            shutil.rmtree(job, ignore_errors=True)
        denoised = Denoised(full=maps["full"], half1=maps.get("half1"), half2=maps.get("half2"),
                            note=str(reply["note"]))
        return check_output(self.method.name, denoised, half1)

    def close(self) -> None:
        """Stop the child (if running) and remove the temporary files."""
        if self._proc is not None:
            try:
                self._conn.send_bytes(pickle.dumps(None))
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._kill()
        shutil.rmtree(self._scratch, ignore_errors=True)


def _seed(value: int) -> None:
    import random

    random.seed(value)
    np.random.seed(value)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(value)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _run_job(method: Method, job: dict) -> dict:
    folder = Path(job["folder"])
    maps = {n: _load(folder, n, g, mmap=True) for n, g in job["geometry"].items()}
    _seed(job["seed"])
    try:
        denoised = call_method(method, maps["half1"], maps["half2"], maps.get("mask"))
    except MethodFailure as exc:
        cause = exc.__cause__
        trace = "".join(traceback.format_exception(cause)) if cause is not None else ""
        return {"status": "failed", "kind": exc.kind, "fault": exc.fault, "traceback": trace,
                "error_type": exc.error_type}
    # the outputs get names of their own: a method may return its (mapped) inputs
    outputs = {"full": _save(folder, "out-full", denoised.full)}
    if denoised.half1 is not None:
        outputs["half1"] = _save(folder, "out-half1", denoised.half1)
        outputs["half2"] = _save(folder, "out-half2", denoised.half2)
    return {"status": "ok", "outputs": outputs, "note": denoised.note}


def child_main() -> None:
    """The child's loop: receive the method, then jobs, until told to stop (not for users)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    import cloudpickle

    conn = Connection(int(sys.argv[1]))
    method = cloudpickle.loads(conn.recv_bytes())
    conn.send_bytes(pickle.dumps("ready"))
    while True:
        try:
            job = pickle.loads(conn.recv_bytes())
        except EOFError:
            return
        if job is None:
            return
        print(f"== {job['label']}", flush=True)
        reply = _run_job(method, job)
        sys.stdout.flush()
        sys.stderr.flush()
        conn.send_bytes(pickle.dumps(reply))
