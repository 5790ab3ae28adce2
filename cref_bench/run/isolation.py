"""Running a method in its own process, under a time and a memory limit.

:class:`MethodProcess` keeps one child Python process per method and hands it one entry at a
time. The inputs travel as ``.npy`` files that the child maps read-only, the outputs come
back the same way, and the parent checks them itself (:func:`cref_bench.run.contract.check_output`)
before anything is scored, so nothing the method does inside its process can change what it
is scored against. A thread of the parent watches the child while it works (also while the
parent does other work, so that a run can score one entry while the child denoises the next:
:meth:`MethodProcess.submit`, :meth:`MethodProcess.collect`):

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
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import Denoised, Method
from cref_bench.run.contract import MethodFailure, call_method, check_output
from cref_bench.run.process_tree import kill_tree

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


@dataclass
class _Watch:
    """What the watcher thread of a child knows: since when, the limit, what the child is
    doing (for the messages), its verdict (kind, fault) once it killed it, and its stop."""

    started: float
    timeout: float | None
    during: str
    verdict: tuple[str, str] | None = None
    stop: threading.Event = field(default_factory=threading.Event)


def _save(folder: Path, name: str, volume: Volume) -> dict:
    np.save(folder / f"{name}.npy", volume.data, allow_pickle=False)
    return {"voxel_size": volume.voxel_size, "origin": volume.origin, "source": volume.source}


def _load(folder: Path, name: str, geometry: dict, mmap: bool) -> Volume:
    name = geometry.get("file", name)  # a map given twice travels once (see submit)
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
        self._job: tuple[Path, Volume] | None = None
        self._watching: tuple[_Watch, threading.Thread] | None = None

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
                [sys.executable, "-c",
                 "from cref_bench.run.isolation import child_main; child_main()",
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
            self._starting = False
            self._watch(STARTUP_SECONDS, "while starting (loading the method)")
            self._reply()

    def _kill(self) -> None:
        if self._proc is not None:
            kill_tree(self._proc.pid, group=True)
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

    def _watch(self, timeout: float | None, during: str = "") -> None:
        """Watch the child from a thread until it replies: past ``timeout`` seconds, or over
        the memory limit, it is killed and the verdict kept for :meth:`_reply`. The watch
        goes on while this process does other work (scoring the previous entry)."""
        watch = _Watch(time.monotonic(), timeout, f" {during}" if during else "")
        thread = threading.Thread(target=self._watcher, args=(watch,), daemon=True,
                                  name=f"watch-{self.method.name}")
        self._watching = (watch, thread)
        thread.start()

    def _watcher(self, watch: _Watch) -> None:
        proc, conn, memory = self._proc, self._conn, self.limits.memory
        while not watch.stop.wait(POLL_SECONDS):
            try:
                if proc.poll() is not None or conn.poll(0):
                    return  # the child died, or replied: nothing more to watch
            except (EOFError, OSError):
                return
            elapsed = time.monotonic() - watch.started
            if watch.timeout is not None and elapsed > watch.timeout:
                watch.verdict = ("timeout", f"stopped after {elapsed:.0f} s{watch.during} "
                                 f"(the limit is {watch.timeout:g} s)")
            elif memory is not None and (rss := _tree_rss(proc.pid)) > memory:
                watch.verdict = ("memory", f"stopped at {rss / 2**30:.2f} GiB resident"
                                 f"{watch.during} (the limit is {memory / 2**30:.2f} GiB)")
            else:
                continue
            kill_tree(proc.pid, group=True)
            return

    def _reply(self) -> dict:
        """The child's reply to what it is watched for (see :meth:`_watch`).

        Raises:
            MethodFailure: ``timeout`` or ``memory`` (the watcher killed it), or ``crashed``.
        """
        watch, thread = self._watching
        reply = None
        while reply is None and self._proc.poll() is None:
            try:
                if self._conn.poll(POLL_SECONDS):
                    reply = pickle.loads(self._conn.recv_bytes())
            except (EOFError, OSError):
                break  # the child is gone; its exit status says how
        watch.stop.set()
        thread.join()
        if watch.verdict is None and reply is not None:
            return reply
        code = self._proc.wait()
        tail = self._log_tail() if watch.verdict is None else ""
        self._forget()
        kind, fault = watch.verdict or ("crashed", _describe_exit(code) + watch.during + tail)
        raise MethodFailure(self.method.name, kind, fault)

    def submit(self, half1: Volume, half2: Volume, mask: Volume | None, *, seed: int = 0,
               label: str = "") -> None:
        """Hand one entry to the child and return at once; :meth:`collect` gets the result.

        One entry at a time: each ``submit`` is followed by one ``collect``. The time and
        memory limits are enforced from here on, also while the caller does other work.

        Args:
            half1, half2, mask: the entry's maps (the child gets read-only copies).
            seed: seeds the child's numpy, ``random`` and (when loaded) torch generators.
            label: a line written to the log before the entry's output (e.g. its id).

        Raises:
            MethodFailure: the child could not start (kind ``crashed`` or ``timeout``).
        """
        if self._job is not None:
            raise RuntimeError("collect the entry handed over before submitting another")
        self._ready()
        folder = Path(tempfile.mkdtemp(prefix="entry-", dir=self._scratch))
        geometry = {"half1": _save(folder, "half1", half1)}
        geometry["half2"] = ({**geometry["half1"], "file": "half1"} if half2 is half1
                             else _save(folder, "half2", half2))
        if mask is not None:
            geometry["mask"] = _save(folder, "mask", mask)
        self._job = (folder, half1)
        self._conn.send_bytes(pickle.dumps({"folder": str(folder), "geometry": geometry,
                                            "seed": seed, "label": label}))
        self._watch(self.limits.timeout)

    def collect(self) -> Denoised:
        """Wait for the entry handed over by :meth:`submit` and return its checked output.

        Returns:
            The checked :class:`~cref_bench.methods.protocol.Denoised`, read back into this process.

        Raises:
            MethodFailure: the method raised, broke the contract, or ran over a limit or
                died (the child is then restarted for the next entry).
        """
        if self._job is None:
            raise RuntimeError("no entry was handed over")
        (folder, half1), self._job = self._job, None
        try:
            reply = self._reply()
            if reply["status"] != "ok":
                raise MethodFailure(self.method.name, reply["kind"], reply["fault"],
                                    detail=reply["traceback"], error_type=reply["error_type"])
            maps = {n: _load(folder, f"out-{n}", g, mmap=False)
                    for n, g in reply["outputs"].items()}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        denoised = Denoised(full=maps["full"], half1=maps.get("half1"), half2=maps.get("half2"),
                            note=str(reply["note"]))
        return check_output(self.method.name, denoised, half1)

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None, *, seed: int = 0,
                label: str = "") -> Denoised:
        """Denoise one entry in the child process: :meth:`submit` then :meth:`collect`.

        Args:
            half1, half2, mask: the entry's maps (the child gets read-only copies).
            seed: seeds the child's numpy, ``random`` and (when loaded) torch generators.
            label: a line written to the log before the entry's output (e.g. its id).

        Returns:
            The checked :class:`~cref_bench.methods.protocol.Denoised`, read back into this process.

        Raises:
            MethodFailure: the method raised, broke the contract, or ran over a limit or
                died (the child is then restarted for the next entry).
        """
        self.submit(half1, half2, mask, seed=seed, label=label)
        return self.collect()

    def close(self) -> None:
        """Stop the child (if running) and remove the temporary files."""
        if self._watching is not None:
            self._watching[0].stop.set()
            self._watching[1].join()
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
