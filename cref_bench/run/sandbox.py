"""The box a method runs in: an operating-system sandbox built on bubblewrap (``bwrap``).

:func:`start_box` starts a command in a box of its own (Linux, where ``bwrap`` can make
unprivileged user namespaces; :func:`support` says whether it can):

* new user, mount, PID, network (unless :attr:`BoxSpec.network`), IPC, UTS and cgroup
  namespaces, no capabilities, a new session; the box sees no process outside it, so it
  cannot signal or trace the referee, and every process in it dies when the box's first
  process does (the kernel ends a PID namespace with its init);
* a file system of its own: the system's programs and libraries (``/usr``, ``/bin``,
  ``/lib*``, ``/etc``) and the Python installation read-only, the paths of
  :attr:`BoxSpec.read_only` (the method's code, its weights, the packages it runs on)
  read-only at their own paths, its inputs read-only at :data:`INPUTS`, a fresh ``/proc``
  and ``/dev``, and one writable scratch folder (:data:`SCRATCH`, ``/tmp``, also ``$HOME``),
  a tmpfs of :attr:`BoxSpec.scratch_bytes` at most. Nothing else: not the
  corpus store, the results folder or the user's home. A path of :attr:`BoxSpec.forbidden`
  inside a read-only folder is covered by an empty tmpfs; :func:`start_box` refuses a
  read-only path inside a forbidden one;
* a memory limit covering every process in it: a memory cgroup (v2, or v1) where this
  process may make one (:attr:`Box.memory_cgroup`), else the caller samples the resident
  memory of the box's process tree (:meth:`Box.rss`), which holds every process of the box
  since orphans in a PID namespace are adopted by its init;
* the environment is cleared but for :data:`PASSED_ENV` and ``CREF_BENCH_*``.

Where no box can be made (not Linux, no ``bwrap``, user namespaces disabled), the command
runs as a plain process in a session of its own and :func:`start_box` warns once
(:class:`SandboxUnavailableWarning`); :attr:`Box.sandbox` is then ``"none"``, which the
provenance records.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from cref_bench.errors import InputError
from cref_bench.run.process_tree import kill_tree

CGROUP_REMOVE_SECONDS = 2.0
"""How long a box's memory cgroup may take to empty once its processes are killed."""

INPUTS = "/box/in"
"""Where the box sees its (read-only) inputs folder."""

SCRATCH = "/tmp"
"""The box's writable scratch folder (a tmpfs; also ``$HOME`` and ``$TMPDIR``)."""

SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
"""System folders the box sees read-only (where they exist; symbolic links are copied)."""

PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "CUDA_VISIBLE_DEVICES",
              "NVIDIA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
"""Environment variables passed into the box, with every ``CREF_BENCH_*`` one (the project's
own settings, such as a method's default weights); every other one is cleared (tokens,
keys)."""

DEFAULT_SCRATCH_BYTES = 8 * 2**30
"""Default size of the box's scratch tmpfs (its pages count against the memory limit)."""

GPU_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
               "/dev/nvidia-modeset", "/dev/dri")
"""Device nodes a GPU method sees (with every ``/dev/nvidiaN``)."""


class SandboxUnavailableWarning(UserWarning):
    """No sandbox can be made here: the method runs as a plain process."""


class SandboxError(InputError):
    """A box cannot be made as asked (a read-only path would show the store, say)."""


@dataclass(frozen=True)
class Support:
    """What this machine allows (see :func:`support`).

    Attributes:
        bwrap: the ``bwrap`` program, or None where no box can be made.
        reason: why no box can be made (empty when one can).
        sized_tmpfs: whether ``bwrap`` bounds a tmpfs (``--size``).
        cgroup: ``"v2"`` or ``"v1"`` where this process can make a memory cgroup, else None.
    """

    bwrap: str | None
    reason: str
    sized_tmpfs: bool
    cgroup: str | None


@dataclass(frozen=True)
class BoxSpec:
    """What a box holds.

    Attributes:
        inputs: the host folder the box sees read-only at :data:`INPUTS`.
        read_only: more host paths the box sees read-only at their own paths (code, weights).
        forbidden: host paths the box must not see (the store, the results folder);
            :func:`start_box` refuses a read-only path that is, holds or lies in one of them.
        scratch_bytes: the size of the scratch tmpfs.
        memory: bytes of memory for every process of the box together (a cgroup where one
            can be made), or None.
        network: whether the box shares this machine's network (default: no network).
        gpu: whether the box sees the GPU devices.
        env: more environment variables for the box.
    """

    inputs: Path
    read_only: tuple[Path, ...] = ()
    forbidden: tuple[Path, ...] = ()
    scratch_bytes: int = DEFAULT_SCRATCH_BYTES
    memory: int | None = None
    network: bool = False
    gpu: bool = False
    env: tuple[tuple[str, str], ...] = field(default=())


def _bwrap_works(bwrap: str, *extra: str) -> str:
    """Why ``bwrap`` cannot make a box here ("" when it can)."""
    try:
        done = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/",
                               "/", "--proc", "/proc", *extra, "true"],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap} cannot be run ({exc})"
    if done.returncode:
        said = done.stderr.decode("utf-8", "replace").strip()
        return f"{bwrap} cannot make a box here: {said or f'status {done.returncode}'}"
    return ""


@functools.cache
def support() -> Support:
    """What this machine allows (probed once per process, a few milliseconds).

    Returns:
        A :class:`Support`.
    """
    if not sys.platform.startswith("linux"):
        return Support(None, f"no sandbox on {sys.platform} (it needs Linux namespaces)",
                       False, None)
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Support(None, "bubblewrap is not installed (Debian and Ubuntu: apt-get "
                             "install bubblewrap)", False, None)
    reason = _bwrap_works(bwrap)
    if reason:
        return Support(None, reason + " (user namespaces may be disabled: see "
                                      "sysctl kernel.unprivileged_userns_clone or "
                                      "user.max_user_namespaces)", False, None)
    sized = not _bwrap_works(bwrap, "--size", str(2**20), "--tmpfs", "/tmp")
    return Support(bwrap, "", sized, MemoryCgroup.kind())


class MemoryCgroup:
    """A memory cgroup of its own for one box (v2 or v1), under this process's cgroup.

    Args:
        limit: bytes for every process in it together.
        name: the cgroup's folder name.

    Raises:
        OSError: it cannot be made here.
    """

    def __init__(self, limit: int, name: str):
        kind, parent = self._parent()
        if kind is None:
            raise OSError("no writable memory cgroup")
        self.kind = kind
        self.path = parent / name
        self.path.mkdir()
        try:
            if kind == "v2":
                self._write("memory.max", limit)
                self._write("memory.swap.max", 0, optional=True)
            else:
                self._write("memory.limit_in_bytes", limit)
                self._write("memory.memsw.limit_in_bytes", limit, optional=True)
        except OSError:
            self.remove()
            raise

    @staticmethod
    def _parent() -> tuple[str | None, Path | None]:
        """The cgroup under which this process may make one (``(kind, folder)``)."""
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None, None
        own = dict(line.split(":", 2)[1:] for line in lines if line.count(":") >= 2)
        v1 = next((path for ctl, path in own.items() if "memory" in ctl.split(",")), None)
        if v1 is not None:
            folder = Path("/sys/fs/cgroup/memory") / v1.lstrip("/")
            if os.access(folder, os.W_OK) and (folder / "memory.limit_in_bytes").exists():
                return "v1", folder
        if "" in own:
            for mount in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                folder = mount / own[""].lstrip("/")
                try:
                    controllers = (folder / "cgroup.subtree_control").read_text().split()
                except OSError:
                    continue
                if "memory" in controllers and os.access(folder, os.W_OK):
                    return "v2", folder
        return None, None

    @classmethod
    def kind(cls) -> str | None:
        """``"v2"`` or ``"v1"`` where this process can make a memory cgroup, else None."""
        return cls._parent()[0]

    def _write(self, name: str, value: int, optional: bool = False) -> None:
        try:
            (self.path / name).write_text(str(value))
        except OSError:
            if not optional:
                raise

    @property
    def procs(self) -> Path:
        """The file a process writes its id to, to join the cgroup."""
        return self.path / "cgroup.procs"

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the cgroup for going over its limit."""
        name = "memory.events" if self.kind == "v2" else "memory.oom_control"
        try:
            text = (self.path / name).read_text()
        except OSError:
            return False
        counts = dict(line.split()[:2] for line in text.splitlines() if len(line.split()) >= 2)
        return int(counts.get("oom_kill", "0")) > 0

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup."""
        try:
            pids = [int(p) for p in self.procs.read_text().split()]
        except OSError:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def remove(self) -> None:
        """Remove the cgroup, waiting up to :data:`CGROUP_REMOVE_SECONDS` for its killed
        processes to be gone (a cgroup that still holds one cannot be removed; a leftover is
        logged nowhere)."""
        deadline = time.monotonic() + CGROUP_REMOVE_SECONDS
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _system_binds() -> list[str]:
    args = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def python_paths() -> list[Path]:
    """The Python installation and the installed packages (the folders of ``sys.path`` under
    the installation's prefixes or named ``site-packages`` / ``dist-packages``, and the
    source folders of editable installs, which their finders map outside them)."""
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths = set(prefixes)
    for name, module in list(sys.modules.items()):
        mapping = getattr(module, "MAPPING", None)
        if name.startswith("__editable__") and isinstance(mapping, dict):
            paths.update(Path(p).resolve() for p in mapping.values() if os.path.exists(p))
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        path = Path(entry).resolve()
        if path.name in ("site-packages", "dist-packages") or any(
                _is_within(path, p) for p in prefixes):
            paths.add(path)
    return sorted(paths)


def _gpu_binds() -> list[str]:
    nodes = sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*")) + list(GPU_DEVICES)
    args = []
    for node in nodes:
        args += ["--dev-bind-try", node, node]
    return args


def _read_only_binds(spec: BoxSpec, system: list[Path]) -> list[str]:
    """``--ro-bind`` arguments of the box's own read-only paths (outermost only); a forbidden
    path inside one of them is covered by an empty tmpfs (where it exists), so the box sees
    the folder but not it.

    Raises:
        SandboxError: a path to bind is or lies in a forbidden path, or a system folder holds
            one.
    """
    wanted = sorted({Path(p).resolve() for p in (*python_paths(), *spec.read_only)})
    forbidden = [Path(p).resolve() for p in spec.forbidden]
    for path in [*system, *wanted]:
        for bad in forbidden:
            if _is_within(path, bad) or (path in system and _is_within(bad, path)):
                raise SandboxError(str(path), f"the method's box would see {bad} through "
                                   "it; move the method's code and files out of the folder "
                                   "holding the corpus or the results")
    outermost: list[Path] = []
    for path in wanted:
        if path.exists() and not any(_is_within(path, o) for o in outermost):
            outermost.append(path)
    args = []
    for path in outermost:
        args += ["--ro-bind", str(path), str(path)]
    for bad in forbidden:
        if bad.is_dir() and any(_is_within(bad, o) for o in outermost):
            args += ["--tmpfs", str(bad), "--remount-ro", str(bad)]
    return args


def bwrap_command(spec: BoxSpec, command: list[str], found: Support) -> list[str]:
    """The ``bwrap`` command line that runs ``command`` in a box made as ``spec`` says.

    Args:
        spec: the box.
        command: the program and its arguments, as seen inside the box.
        found: this machine's :class:`Support` (with ``bwrap`` set).

    Returns:
        The argument list.

    Raises:
        SandboxError: a read-only path would show a forbidden one.
    """
    system = [Path(p).resolve() for p in SYSTEM_PATHS if os.path.isdir(p)]
    args = [found.bwrap, "--unshare-all", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL"]
    if spec.network:
        args.append("--share-net")
    args += _system_binds() + ["--proc", "/proc", "--dev", "/dev"]
    args += ["--ro-bind-try", "/sys", "/sys"]
    if spec.gpu:
        args += _gpu_binds()
    if found.sized_tmpfs:
        args += ["--size", str(spec.scratch_bytes)]
    args += ["--tmpfs", SCRATCH]  # first: read-only paths under /tmp go on top of it
    args += _read_only_binds(spec, system)
    args += ["--ro-bind", str(Path(spec.inputs).resolve()), INPUTS, "--chdir", SCRATCH,
             "--clearenv"]
    env = {name: value for name, value in os.environ.items()
           if name in PASSED_ENV or name.startswith("CREF_BENCH_")}
    env.update({"HOME": SCRATCH, "TMPDIR": SCRATCH, "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONNOUSERSITE": "1"})
    env.update(dict(spec.env))
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    return args + ["--", *command]


@functools.cache
def _warn_once(reason: str) -> None:
    warnings.warn(f"no sandbox: {reason}; methods run as plain processes, which can read "
                  "and write whatever this user can (provenance records sandbox: none)",
                  SandboxUnavailableWarning, stacklevel=3)


class Box:
    """A running box (made by :func:`start_box`).

    Attributes:
        process: the ``subprocess.Popen`` of the box (of ``bwrap``, or of the plain
            process where there is no sandbox).
        sandbox: ``"bwrap"``, or ``"none"``.
        memory_cgroup: the box's :class:`MemoryCgroup`, or None.
    """

    def __init__(self, process: subprocess.Popen, sandbox: str,
                 memory_cgroup: MemoryCgroup | None):
        self.process = process
        self.sandbox = sandbox
        self.memory_cgroup = memory_cgroup

    @property
    def pid(self) -> int:
        """The host process id of the box's outermost process."""
        return self.process.pid

    def rss(self) -> int:
        """Resident bytes of every process of the box (its outermost process's tree)."""
        import psutil

        try:
            root = psutil.Process(self.pid)
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

    def oom_killed(self) -> bool:
        """Whether the box's memory cgroup killed one of its processes."""
        return self.memory_cgroup is not None and self.memory_cgroup.oom_killed()

    def kill(self) -> None:
        """SIGKILL every process of the box (the caller reaps the outermost one)."""
        if self.process.returncode is None:  # not reaped: its id is still its own
            kill_tree(self.pid, group=True)
        if self.memory_cgroup is not None:
            self.memory_cgroup.kill_all()

    def close(self) -> None:
        """Kill what is left of the box, reap it and remove its cgroup."""
        self.kill()
        self.process.wait()
        if self.memory_cgroup is not None:
            self.memory_cgroup.remove()


def start_box(spec: BoxSpec, command: list[str], *, name: str, pass_fds: tuple[int, ...] = (),
              stdout=None, stderr=None, plain_env: dict | None = None) -> Box:
    """Start ``command`` in a box (see the module docstring).

    Args:
        spec: the box.
        command: the program and its arguments; inside the box the inputs folder is at
            :data:`INPUTS` and the scratch folder at :data:`SCRATCH`.
        name: a name for the box's cgroup (unique among the boxes of this process).
        pass_fds: file descriptors the command inherits.
        stdout, stderr: as for ``subprocess.Popen``.
        plain_env: the environment of the plain process where no box can be made (default:
            this process's); inside a box, :data:`PASSED_ENV` and ``spec.env`` only.

    Returns:
        The running :class:`Box`.

    Raises:
        SandboxError: a read-only path would show a forbidden one.
        OSError: the command cannot be started.
    """
    found = support()
    cgroup = None
    if spec.memory is not None and found.cgroup is not None:
        try:
            cgroup = MemoryCgroup(spec.memory, name)
        except OSError:
            cgroup = None
    if found.bwrap is not None:
        argv, env, sandbox = bwrap_command(spec, command, found), None, "bwrap"
    else:
        _warn_once(found.reason)
        argv, sandbox = command, "none"
        env = dict(os.environ if plain_env is None else plain_env)
        env.update(dict(spec.env))
    if cgroup is not None:  # join the cgroup before bwrap starts, so every process is in it
        argv = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup.procs), *argv]
    try:
        process = subprocess.Popen(argv, pass_fds=pass_fds, stdin=subprocess.DEVNULL,
                                   stdout=stdout, stderr=stderr, env=env,
                                   start_new_session=True)
    except OSError:
        if cgroup is not None:
            cgroup.remove()
        raise
    return Box(process, sandbox, cgroup)
