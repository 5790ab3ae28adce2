"""Running a method in its box, under a time and a memory limit, over a data-only channel.

:class:`MethodProcess` keeps one child Python process per method, in a box of its own
(:mod:`cref_bench.run.sandbox`: its own namespaces, read-only inputs, one scratch folder, no
store, no results, no network), and hands it one entry at a time.

* **The method is built in the box.** Given a spec (``"lowpass"``, ``"pkg.mod:Cls"``,
  ``"file.py:Cls"``) and parameters, the box imports and builds the method itself and
  sends back its name, version, parameters and flags as JSON (:attr:`MethodProcess.facts`):
  this process never imports a method it was given by spec. A :class:`Method` instance
  (the Python API, whose caller imported it already) is sent to the box with cloudpickle.
* **Nothing the box sends is unpickled.** Replies are JSON of a fixed shape, checked here
  (:func:`check_reply`); each output map comes back as the bytes of a ``.npy`` file whose
  header must say C-order ``float32`` of the input's shape and whose size must match it
  before a byte of it is used (:func:`read_npy`); every message has a size limit.
* **Inputs are opaque.** The maps travel as ``.npy`` files in a folder the box sees
  read-only, and their ``source`` is a label (``"<entry>/half1"``), never a path of the
  corpus.
* **Limits on this process's clock.** A thread of this process watches the box while it
  works (also while this process scores the previous entry: :meth:`MethodProcess.submit`,
  :meth:`MethodProcess.collect`): past ``Limits.timeout`` seconds of ``time.monotonic`` on
  one entry, or with the box over ``Limits.memory`` bytes (a memory cgroup where one can be
  made, and the resident memory of every process of the box, sampled every 50 ms), the box
  is killed with everything in it and the entry fails with kind ``timeout`` or ``memory``.
  The box cannot see this process, so it cannot stop it.
* A box whose method process dies fails the entry with kind ``crashed`` and the last lines
  of its output; a new box is started for the next entry.

The box's standard output and error go to a log file (``log``), at most
:data:`~cref_bench.run.box_log.LOG_LIMIT_BYTES` of them per box (:mod:`cref_bench.run.box_log`).
The environment variable :data:`SCRATCH_ENV` names the box's scratch folder.
"""

from __future__ import annotations

import io
import json
import math
import os
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

from cref_bench.errors import MethodError
from cref_bench.maps.volume import Volume
from cref_bench.methods.code import class_roots, code_roots
from cref_bench.methods.protocol import Denoised, Method
from cref_bench.run import sandbox
from cref_bench.run.box_log import BoxLog
from cref_bench.run.contract import METHOD_FAULTS, MethodFailure, call_method, check_output
from cref_bench.run.single_map import HeldOutBoxes, OneMap
from cref_bench.run.trust import method_facts

STARTUP_SECONDS = 300.0
"""How long a box may take to start (import and build the method); not counted against the
per-entry time limit."""

POLL_SECONDS = 0.05
"""How often the watcher samples the box while it works."""

LOG_TAIL_LINES = 20
"""How many of the box's last output lines a ``crashed`` failure quotes."""

SCRATCH_ENV = "CREF_BENCH_METHOD_SCRATCH"
"""Environment variable naming, in the box, a folder for the method's temporary files."""

EXIT_GRACE_SECONDS = 1.0
"""How long a box whose channel closed may take to end before it is killed."""

MAX_MESSAGE_BYTES = 2**20
"""The largest JSON message the box may send (longer text is cut in the box)."""

MAX_TEXT = 20_000
"""Characters of a fault or traceback kept from the box."""

NPY_HEADER_ROOM = 2**16
"""Bytes allowed for a ``.npy`` header beyond the array's own bytes."""

OUTPUT_NAMES = ("full", "half1", "half2")


@dataclass(frozen=True)
class Limits:
    """Per-entry limits of a method's process.

    Attributes:
        timeout: wall-clock seconds for one entry, or None for no limit.
        memory: bytes of memory of every process of the method's box together, or None.
    """

    timeout: float | None = None
    memory: int | None = None

    def __post_init__(self):
        for name in ("timeout", "memory"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"the {name} limit must be positive, got {value}")


@dataclass(frozen=True)
class BoxSettings:
    """What a method's box may see besides its code and inputs.

    Attributes:
        forbidden: paths the box must not see (the corpus store, the results folder).
        read_only: more paths it sees read-only (the files its parameters name: weights).
        network: whether it shares this machine's network.
        scratch_bytes: the size of its scratch folder.
    """

    forbidden: tuple[Path, ...] = ()
    read_only: tuple[Path, ...] = ()
    network: bool = False
    scratch_bytes: int = sandbox.DEFAULT_SCRATCH_BYTES


@dataclass
class _Watch:
    """What the watcher thread of a box knows: since when, the limit, what the box is doing
    (for the messages), its verdict (kind, fault) once it killed it, and its stop."""

    started: float
    timeout: float | None
    during: str
    verdict: tuple[str, str] | None = None
    stop: threading.Event = field(default_factory=threading.Event)


class ChannelError(ValueError):
    """What the box sent is not what the channel allows (a malformed reply)."""


def _send_json(conn: Connection, value) -> None:
    conn.send_bytes(json.dumps(value, allow_nan=False).encode())


def _is_triple(value) -> bool:
    return (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in value))


def _text(reply: dict, key: str) -> str:
    value = reply.get(key, "")
    if not isinstance(value, str):
        raise ChannelError(f"{key!r} is a {type(value).__name__}, not text")
    return value[:MAX_TEXT]


def check_reply(raw: bytes) -> dict:
    """A reply of the box, parsed as JSON and checked against the channel's shapes.

    The shapes: ``{"status": "ready", "method": {...}}`` (see :func:`check_facts`);
    ``{"status": "ok", "outputs": {name: {"voxel_size": [3], "origin": [3]}}, "note": str}``
    with ``full`` among the outputs (names from :data:`OUTPUT_NAMES`); ``{"status":
    "failed", "kind": one of the method's failure kinds, "fault": str, "traceback": str,
    "error_type": str}``; ``{"status": "unbuildable", "fault": str, "traceback": str}``.

    Args:
        raw: the message's bytes.

    Returns:
        The reply (texts cut to :data:`MAX_TEXT` characters).

    Raises:
        ChannelError: not JSON, or not of one of those shapes.
    """
    try:
        reply = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChannelError(f"not JSON ({exc})") from None
    if not isinstance(reply, dict):
        raise ChannelError(f"a {type(reply).__name__}, not an object")
    status = reply.get("status")
    if status == "ready":
        return {"status": status, "method": check_facts(reply.get("method"))}
    if status == "ok":
        outputs = reply.get("outputs")
        if not isinstance(outputs, dict) or "full" not in outputs \
                or not set(outputs) <= set(OUTPUT_NAMES):
            raise ChannelError(f"outputs must name 'full' and only {', '.join(OUTPUT_NAMES)}")
        for name, geometry in outputs.items():
            if not (isinstance(geometry, dict) and _is_triple(geometry.get("voxel_size"))
                    and _is_triple(geometry.get("origin"))):
                raise ChannelError(f"output {name!r} needs voxel_size and origin, three "
                                   "finite numbers each")
        return {"status": status, "note": _text(reply, "note"),
                "outputs": {n: {"voxel_size": g["voxel_size"], "origin": g["origin"]}
                            for n, g in outputs.items()}}
    if status == "failed":
        if reply.get("kind") not in METHOD_FAULTS:
            raise ChannelError(f"unknown failure kind {reply.get('kind')!r}")
        return {"status": status, "kind": reply["kind"], "fault": _text(reply, "fault"),
                "traceback": _text(reply, "traceback"),
                "error_type": _text(reply, "error_type")[:200] or "MethodFailure"}
    if status == "unbuildable":
        return {"status": status, "fault": _text(reply, "fault"),
                "traceback": _text(reply, "traceback")}
    raise ChannelError(f"unknown status {status!r}")


def check_facts(facts) -> dict:
    """The method's description sent by its box, checked.

    Args:
        facts: ``{"name": str, "version": str, "params": dict, "needs_gpu": bool,
            "safe_in_process": bool, "single_map": bool, "class": str}``.

    Returns:
        The description.

    Raises:
        ChannelError: a key missing or of another type, or an empty or over-long name.
    """
    types = {"name": str, "version": str, "params": dict, "needs_gpu": bool,
             "safe_in_process": bool, "single_map": bool, "class": str}
    if not isinstance(facts, dict):
        raise ChannelError("the method's description is not an object")
    for key, kind in types.items():
        if not isinstance(facts.get(key), kind):
            raise ChannelError(f"the method's {key!r} is not a {kind.__name__}")
    if not 0 < len(facts["name"]) <= 200 or len(facts["version"]) > 200:
        raise ChannelError("the method's name must be 1 to 200 characters, its version at "
                           "most 200")
    return {key: facts[key] for key in types}


def read_npy(raw: memoryview | bytes, offset: int, shape: tuple[int, ...]
             ) -> tuple[np.ndarray, int]:
    """A ``float32`` array of ``shape`` from the bytes of a ``.npy`` file at ``offset`` in
    ``raw``, its header checked before a byte of data is used.

    Args:
        raw: a buffer holding the file's bytes (and maybe more after them).
        offset: where the file starts.
        shape: the shape the array must have.

    Returns:
        ``(array, end)``: a read-only array over ``raw`` (no pickle is ever read: the dtype
        must be float32), and the offset after the file.

    Raises:
        ChannelError: not a ``.npy`` file, another dtype, order or shape, or fewer bytes
            than the header promises.
    """
    stream = io.BytesIO(raw)
    stream.seek(offset)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            found, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            found, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ChannelError(f".npy version {version} is not read")
    except ValueError as exc:
        raise ChannelError(f"not a .npy file ({exc})") from None
    if dtype != np.dtype("<f4") or fortran or tuple(found) != tuple(shape):
        raise ChannelError(f"a map must be C-order little-endian float32 of shape {shape}; "
                           f"got {dtype} of shape {found}{' (Fortran order)' if fortran else ''}")
    start, count = stream.tell(), math.prod(shape)
    if len(raw) - start < 4 * count:
        raise ChannelError(f"holds {len(raw) - start} bytes of data, not {4 * count}")
    array = np.frombuffer(raw, dtype=np.float32, count=count, offset=start).reshape(shape)
    return array, start + 4 * count


def split_message(raw: bytes) -> tuple[bytes, int]:
    """A box's message split into its JSON part and the offset of what follows it (the
    ``.npy`` files of the maps, after one newline; none when there is no newline)."""
    end = raw.find(b"\n")
    return (raw, len(raw)) if end < 0 else (raw[:end], end + 1)


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


def _python_path(code: tuple[Path, ...], boxed: bool) -> str:
    """The import path of the method's process: this one's (in a box without the working
    folder, whose path it need not know) and the folders holding the method's code."""
    entries = [os.path.abspath(p) if p else os.getcwd() for p in sys.path
               if (p and os.path.isdir(p)) or (not p and not boxed)]
    entries += [str(root.parent) for root in code]
    return os.pathsep.join(dict.fromkeys(entries))


def _cref_bench_root() -> Path:
    return Path(__file__).resolve().parents[1]


class MethodProcess:
    """One method running in its box, one entry at a time.

    Args:
        method: a method spec (a registered name, ``package.module:Attribute``,
            ``path/file.py:Attribute``), built in the box with ``params``; or a
            :class:`Method` instance this process already holds (sent with cloudpickle).
        limits: the per-entry limits (default: none).
        log: the file the box's output is appended to (default: a file in the temporary
            folder, removed on :meth:`close`).
        params: the method's parameters (with a spec only).
        settings: what the box may see besides the method's code and inputs.

    Raises:
        MethodError: ``params`` given with an instance, or the spec's code cannot be located.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, method: str | Method, limits: Limits | None = None,
                 log: str | os.PathLike | None = None, *, params: dict | None = None,
                 settings: BoxSettings | None = None):
        self.limits = limits or Limits()
        self.settings = settings or BoxSettings()
        if isinstance(method, str):
            self.spec, self.params = method, dict(params or {})
            self._hello, self._blob = {"spec": method, "params": self.params}, None
            roots = code_roots(method)
            self.label = method
        else:
            if params:
                raise MethodError(method.name, "params can only be given with a method spec")
            import cloudpickle

            self.spec, self.params = None, {}
            self._hello, self._blob = {"pickled": True}, cloudpickle.dumps(method)
            roots = class_roots(type(method))
            self.label = method.name
        self.code = tuple(roots)
        self._scratch = Path(tempfile.mkdtemp(prefix="cref-bench-method-"))
        self._inputs = self._scratch / "in"
        self._inputs.mkdir()
        self.log = Path(log) if log is not None else self._scratch / "method.log"
        self._box: sandbox.Box | None = None
        self._conn: Connection | None = None
        self._starting = False
        self._boxes = 0
        self._facts: dict | None = None
        self._kind: str | None = None
        self._job: tuple[Path, Volume] | None = None
        self._watching: tuple[_Watch, threading.Thread] | None = None
        self._stopped = False
        self._output: BoxLog | None = None

    def __enter__(self) -> MethodProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def sandbox(self) -> str | None:
        """``"bwrap"`` or ``"none"`` once a box was started, else None."""
        return self._kind

    @property
    def facts(self) -> dict:
        """The method's description sent by its box (see :func:`check_facts`); starts the
        box and waits for it if needed.

        Raises:
            MethodError: the box could not build the method.
            MethodFailure: the box died or timed out while starting.
        """
        self._ready()
        return self._facts

    def start(self) -> None:
        """Start the box now, without waiting for it to be ready (the first entry waits),
        so that its start overlaps the caller's own work; a no-op when it is running."""
        if self._box is not None:
            return
        parent, child = socket.socketpair()
        plain = not sandbox.support().bwrap
        scratch = self._scratch / "scratch" if plain else Path(sandbox.SCRATCH)
        if plain:
            scratch.mkdir(exist_ok=True)
        env = {"PYTHONPATH": _python_path(self.code, not plain), SCRATCH_ENV: str(scratch)}
        spec = sandbox.BoxSpec(
            inputs=self._inputs, read_only=(_cref_bench_root(), *self.code,
                                            *self.settings.read_only),
            forbidden=self.settings.forbidden, scratch_bytes=self.settings.scratch_bytes,
            memory=self.limits.memory, network=self.settings.network, gpu=True,
            env=tuple(env.items()))
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._boxes += 1
        self._output = BoxLog(self.log)
        try:
            self._box = sandbox.start_box(
                spec, [sys.executable, "-c",
                       "from cref_bench.run.isolation import child_main; child_main()",
                       str(child.fileno())],
                name=f"cref-bench-{os.getpid()}-{id(self):x}-{self._boxes}",
                pass_fds=(child.fileno(),), stdout=self._output.write_fd,
                stderr=self._output.write_fd, plain_env=dict(os.environ, **env))
        finally:
            child.close()
            self._output.started()
        self._kind = self._box.sandbox
        self._conn = Connection(parent.detach())
        _send_json(self._conn, self._hello)
        if self._blob is not None:
            self._conn.send_bytes(self._blob)
        self._starting = True

    def move_log(self, path: str | os.PathLike) -> None:
        """Move the box's log to ``path`` (a running box goes on writing to it there; where
        the file cannot be moved, as across file systems, the box is stopped and the next
        entry starts a new one writing there).

        Args:
            path: the new log file (its folder is created).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self.log, path)
        except FileNotFoundError:
            pass
        except OSError:
            if self._box is not None and self._job is None:
                self._kill()
        self.log = path

    @property
    def _inputs_in_box(self) -> str:
        return sandbox.INPUTS if self._kind == "bwrap" else str(self._inputs)

    def _ready(self) -> None:
        """Start the box if needed and wait until it has built the method.

        Raises:
            MethodError: the box could not build the method, or described it badly.
            MethodFailure: it died or timed out while starting.
        """
        self.start()
        if not self._starting:
            return
        self._starting = False
        self._watch(STARTUP_SECONDS, "while starting (building the method)")
        reply, _, _ = self._reply()
        if reply["status"] == "unbuildable":
            self._kill()
            detail = f"\n{reply['traceback']}" if reply["traceback"] else ""
            raise MethodError(self.label, reply["fault"] + detail)
        if reply["status"] != "ready":
            self._kill()
            raise MethodError(self.label, f"its box sent {reply['status']!r} before 'ready'")
        if self._facts is None:
            self._facts = reply["method"]
            self.label = self._facts["name"]  # failures name the method as it names itself

    def _kill(self) -> None:
        if self._box is not None:
            self._box.close()
        self._forget()

    def _forget(self) -> None:
        if self._output is not None:  # the box is gone: its last output reaches the log
            self._output.drained(EXIT_GRACE_SECONDS)
            self._output = None
        if self._conn is not None:
            self._conn.close()
        if self._box is not None and self._box.memory_cgroup is not None:
            self._box.memory_cgroup.remove()
        self._conn = self._box = None
        self._stopped = False

    def _log_tail(self) -> str:
        if self._output is not None:
            self._output.drained(EXIT_GRACE_SECONDS)
        try:
            with open(self.log, "rb") as log:
                lines = deque(log, maxlen=LOG_TAIL_LINES)
        except OSError:
            return ""
        text = b"".join(lines).decode("utf-8", "replace").rstrip()
        return f"; its last output:\n{text}" if text else ""

    def _watch(self, timeout: float | None, during: str = "") -> None:
        """Watch the box from a thread until it replies: past ``timeout`` seconds, or over
        the memory limit, it is killed and the verdict kept for :meth:`_reply`. The watch
        goes on while this process does other work (scoring the previous entry)."""
        watch = _Watch(time.monotonic(), timeout, f" {during}" if during else "")
        thread = threading.Thread(target=self._watcher, args=(watch,), daemon=True,
                                  name=f"watch-{self.label}")
        self._watching = (watch, thread)
        thread.start()

    def _watcher(self, watch: _Watch) -> None:
        box, conn, memory = self._box, self._conn, self.limits.memory
        while not watch.stop.wait(POLL_SECONDS):
            try:
                if box.process.poll() is not None or conn.poll(0):
                    return  # the box died, or replied: nothing more to watch
            except (EOFError, OSError):
                return
            elapsed = time.monotonic() - watch.started
            if watch.timeout is not None and elapsed > watch.timeout:
                watch.verdict = ("timeout", f"stopped after {elapsed:.0f} s{watch.during} "
                                 f"(the limit is {watch.timeout:g} s)")
            elif memory is not None and (rss := box.rss()) > memory:
                watch.verdict = ("memory", f"stopped at {rss / 2**30:.2f} GiB resident"
                                 f"{watch.during} (the limit is {memory / 2**30:.2f} GiB)")
            elif box.oom_killed():
                watch.verdict = self._oom_verdict(watch)
            else:
                continue
            box.kill()
            return

    def _receive(self, maxlength: int) -> bytes | None:
        """The box's next message (None where the box is gone or sent a longer one)."""
        while self._box.process.poll() is None or self._conn.poll(0):
            try:
                if self._conn.poll(POLL_SECONDS):
                    return self._conn.recv_bytes(maxlength)
            except (EOFError, OSError):
                return None
        return None

    def _reply(self, maps: int = 0) -> tuple[dict, bytes, int]:
        """The box's checked reply to what it is watched for (see :meth:`_watch`), in one
        message of at most ``maps`` maps of the current entry's size besides its JSON.

        Returns:
            ``(reply, message, offset)``: the checked JSON part (see :func:`check_reply`),
            the whole message and the offset of the maps' ``.npy`` files in it.

        Raises:
            MethodFailure: ``timeout`` or ``memory`` (the watcher killed it), ``crashed``, or
                ``output`` (a reply the channel does not allow; the box is killed).
        """
        watch, thread = self._watching
        room = maps * (4 * math.prod(self._job[1].shape) + NPY_HEADER_ROOM) if maps else 0
        raw = self._receive(MAX_MESSAGE_BYTES + room)
        watch.stop.set()
        thread.join()
        if watch.verdict is None and self._box.oom_killed():  # a process of it, a daemon say
            watch.verdict = self._oom_verdict(watch)
        if watch.verdict is None and raw is not None:
            text, offset = split_message(raw)
            try:
                return check_reply(text), raw, offset
            except ChannelError as exc:
                self._fail("output", f"sent a reply the channel does not allow: {exc}")
        try:  # the channel closed: give the box a moment to end on its own
            code = self._box.process.wait(timeout=0 if watch.verdict else EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._box.kill()
            code = self._box.process.wait()
        if self._kind == "bwrap" and code > 128:
            code = 128 - code  # bwrap exits with 128 + the signal that ended its command
        self._box.kill()  # what may be left of it
        if watch.verdict is None and self._box.oom_killed():
            watch.verdict = self._oom_verdict(watch)
        tail = self._log_tail() if watch.verdict is None else ""
        self._forget()
        kind, fault = watch.verdict or ("crashed", _describe_exit(code) + watch.during + tail)
        raise MethodFailure(self.label, kind, fault)

    def _oom_verdict(self, watch: _Watch) -> tuple[str, str]:
        """The verdict on a box whose memory cgroup killed one of its processes (any of them:
        the method's, or a daemon it left, whose death the method may outlive)."""
        limit = self.limits.memory / 2**30
        return ("memory", f"a process of its box was killed at the memory limit "
                          f"({limit:.2f} GiB){watch.during}")

    def _fail(self, kind: str, fault: str):
        self._kill()
        raise MethodFailure(self.label, kind, fault)

    def submit(self, half1: Volume, half2: Volume, mask: Volume | None, *, seed: int = 0,
               label: str = "", one_map: bool = False) -> None:
        """Hand one entry to the box and return at once; :meth:`collect` gets the result.

        One entry at a time: each ``submit`` is followed by one ``collect``. The time and
        memory limits are enforced from here on, also while the caller does other work.

        Args:
            half1, half2, mask: the entry's maps (the box gets read-only copies whose
                ``source`` is ``label/half1`` and so on, never a path).
            seed: seeds the box's numpy, ``random`` and (when loaded) torch generators.
            label: the entry's label (its id), also written to the log before its output.
            one_map: a held-out call of a single-map method: the box runs it as
                :class:`~cref_bench.run.single_map.OneMap` (``half1`` and ``half2`` are the
                one map it denoises).

        Raises:
            MethodError: the box could not build the method.
            MethodFailure: the box could not start (kind ``crashed`` or ``timeout``).
        """
        if self._job is not None:
            raise RuntimeError("collect the entry handed over before submitting another")
        self._ready()
        folder = Path(tempfile.mkdtemp(prefix="entry-", dir=self._inputs))
        inputs = {"half1": half1, "half2": half2, "mask": mask}
        geometry, written = {}, {}
        for name, volume in inputs.items():
            if volume is None:
                continue
            if id(volume) not in written:  # a map given twice (a held-out call) travels once
                np.save(folder / f"{name}.npy", volume.data, allow_pickle=False)
                written[id(volume)] = name
            geometry[name] = {"voxel_size": list(volume.voxel_size),
                              "origin": list(volume.origin), "file": written[id(volume)],
                              "source": f"{label}/{name}" if label else name}
        self._job = (folder, half1)
        _send_json(self._conn, {"folder": f"{self._inputs_in_box}/{folder.name}",
                                "geometry": geometry, "seed": seed, "label": label,
                                "one_map": bool(one_map)})
        self._watch(self.limits.timeout)

    def collect(self) -> Denoised:
        """Wait for the entry handed over by :meth:`submit` and return its checked output.

        Returns:
            The checked :class:`~cref_bench.methods.protocol.Denoised`, read into this process.

        Raises:
            MethodFailure: the method raised, broke the contract (also by sending what the
                channel does not allow), or ran over a limit or died (a new box is started
                for the next entry).
        """
        if self._job is None:
            raise RuntimeError("no entry was handed over")
        folder, half1 = self._job
        try:
            reply, raw, offset = self._reply(maps=len(OUTPUT_NAMES))
        finally:
            self._job = None
            shutil.rmtree(folder, ignore_errors=True)
        if reply["status"] == "failed":
            raise MethodFailure(self.label, reply["kind"], reply["fault"],
                                detail=reply["traceback"], error_type=reply["error_type"])
        if reply["status"] != "ok":
            self._fail("output", f"sent {reply['status']!r} in reply to an entry")
        maps = {}
        for name, geometry in reply["outputs"].items():
            try:
                data, offset = read_npy(raw, offset, half1.shape)
            except ChannelError as exc:
                self._fail("output", f"sent a bad {name} map: {exc}")
            maps[name] = Volume(data, geometry["voxel_size"], geometry["origin"],
                                f"{self.label} output {name}")
        denoised = Denoised(full=maps["full"], half1=maps.get("half1"), half2=maps.get("half2"),
                            note=reply["note"])
        return check_output(self.label, denoised, half1)

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None, *, seed: int = 0,
                label: str = "", one_map: bool = False) -> Denoised:
        """Denoise one entry in the box: :meth:`submit` then :meth:`collect`.

        Args:
            half1, half2, mask: the entry's maps (the box gets read-only copies).
            seed: seeds the box's numpy, ``random`` and (when loaded) torch generators.
            label: the entry's label (its id).
            one_map: a held-out call (see :meth:`submit`).

        Returns:
            The checked :class:`~cref_bench.methods.protocol.Denoised`.

        Raises:
            MethodError: the box could not build the method.
            MethodFailure: the method raised, broke the contract, or ran over a limit or
                died (a new box is started for the next entry).
        """
        self.submit(half1, half2, mask, seed=seed, label=label, one_map=one_map)
        return self.collect()

    def stop(self) -> None:
        """Tell the box to end once it is idle, without waiting; :meth:`close` then waits for
        it (so that several boxes end together)."""
        if self._box is not None and not self._stopped:
            self._stopped = True
            try:
                _send_json(self._conn, None)
            except OSError:
                pass

    def close(self) -> None:
        """Stop the box (if running; everything in it dies) and remove the temporary files."""
        if self._watching is not None:
            self._watching[0].stop.set()
            self._watching[1].join()
        if self._box is not None:
            self.stop()
            try:
                self._box.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._kill()
        shutil.rmtree(self._scratch, ignore_errors=True)


def method_boxes(method: str | Method, limits: Limits, log: Path, *,
                 params: dict | None = None, settings: BoxSettings | None = None,
                 held_out: bool = False, first: MethodProcess | None = None
                 ) -> MethodProcess | HeldOutBoxes:
    """Where a run denoises: the method's box, or for a single-map method's held-out calls its
    three boxes, one per kind of call (:class:`~cref_bench.run.single_map.HeldOutBoxes`).

    Args:
        method, limits, params, settings: as :class:`MethodProcess` takes them.
        log: the (first) box's log file.
        held_out: make the three boxes of the held-out calls.
        first: a box already started for this method (it becomes the box, or the box of the
            averages), its log moved to ``log``.
    """
    def make(path: Path) -> MethodProcess:
        return MethodProcess(method, limits, log=path, params=params, settings=settings)

    if first is not None:
        first.move_log(log)
    if held_out:
        return HeldOutBoxes(make, log, first)
    return first if first is not None else make(log)


def describe_method(spec: str, params: dict | None = None, *,
                    settings: BoxSettings | None = None) -> dict:
    """Build a method in a box and return its description (this process imports none of it).

    Args:
        spec: the method spec.
        params: its parameters.
        settings: what the box may see besides the method's code.

    Returns:
        The description (see :func:`check_facts`).

    Raises:
        MethodError: the method cannot be located or built.
        MethodFailure: its box died or timed out while building it.
    """
    with MethodProcess(spec, Limits(timeout=STARTUP_SECONDS), params=params,
                       settings=settings) as process:
        return process.facts


# ---- in the box -------------------------------------------------------------------------


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


def _run_job(method: Method, job: dict) -> tuple[dict, list[np.ndarray]]:
    folder = Path(job["folder"])
    files = {g["file"] for g in job["geometry"].values()}
    arrays = {f: np.load(folder / f"{f}.npy", mmap_mode="r", allow_pickle=False) for f in files}
    maps = {n: Volume(arrays[g["file"]], g["voxel_size"], g["origin"], g["source"])
            for n, g in job["geometry"].items()}
    _seed(job["seed"])
    target = OneMap(method) if job.get("one_map") else method
    try:
        denoised = call_method(target, maps["half1"], maps["half2"], maps.get("mask"))
    except MethodFailure as exc:
        cause = exc.__cause__
        trace = "".join(traceback.format_exception(cause)) if cause is not None else ""
        return ({"status": "failed", "kind": exc.kind, "fault": exc.fault[:MAX_TEXT],
                 "traceback": trace[-MAX_TEXT:], "error_type": exc.error_type}, [])
    outputs, arrays = {}, []
    for name in OUTPUT_NAMES:
        volume = getattr(denoised, name)
        if volume is not None:
            outputs[name] = {"voxel_size": list(volume.voxel_size), "origin": list(volume.origin)}
            arrays.append(volume.data)
    return {"status": "ok", "outputs": outputs, "note": str(denoised.note)[:MAX_TEXT]}, arrays


def _build(conn: Connection, hello: dict) -> Method | None:
    from cref_bench.methods.protocol import load_method

    try:
        if hello.get("pickled"):
            import cloudpickle

            method = cloudpickle.loads(conn.recv_bytes())
        else:
            method = load_method(hello["spec"], **hello["params"])
        facts = method_facts(method)
    except Exception as exc:  # reported to the referee, which raises MethodError
        _send_json(conn, {"status": "unbuildable", "fault": str(exc)[:MAX_TEXT],
                          "traceback": "".join(traceback.format_exception(exc))[-MAX_TEXT:]})
        return None
    _send_json(conn, {"status": "ready", "method": facts})
    return method


def child_main() -> None:
    """The box's loop: build the method, then run jobs until told to stop (not for users)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the referee decides when to stop
    conn = Connection(int(sys.argv[1]))
    method = _build(conn, json.loads(conn.recv_bytes()))
    if method is None:
        return
    while True:
        try:
            job = json.loads(conn.recv_bytes())
        except EOFError:
            return
        if job is None:
            return
        print(f"== {job['label']}", flush=True)
        reply, arrays = _run_job(method, job)
        sys.stdout.flush()
        sys.stderr.flush()
        message = io.BytesIO()
        message.write(json.dumps(reply, allow_nan=False).encode() + b"\n")
        for array in arrays:
            np.lib.format.write_array(message, np.ascontiguousarray(array, dtype=np.float32),
                                      allow_pickle=False)
        conn.send_bytes(message.getbuffer())
