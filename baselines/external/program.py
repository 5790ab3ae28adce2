"""Running an external program under supervision: its environment, its output, its failure.

:func:`run_program` runs a shell command in a working folder of its own, passes its output line
by line to this process's standard error (which the runner keeps under ``<results>/logs/``),
keeps the last :data:`TAIL_LINES` lines for the failure message, and takes the program and
everything it started down with it when this process fails first. The program stays in this
process's process group, so the runner's per-entry timeout and memory limit reach it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from cref_bench.errors import CrefBenchError
from cref_bench.run.isolation import SCRATCH_ENV
from cref_bench.run.process_tree import kill_tree

TAIL_LINES = 30
"""How many of the program's last output lines a failure quotes."""

LINE_CHARS = 400
"""Longer output lines (progress bars without newlines) keep only their last characters in
the quoted tail (the log keeps them whole)."""


class ProgramFailed(CrefBenchError):
    """The external program failed on an entry: it exited with a non-zero status, or its
    output is missing, unreadable or spans another box. The message ends with its last lines
    of output."""


def default_threads() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def environment(extra: dict[str, str], threads: int) -> dict[str, str]:
    """A program's environment.

    Args:
        extra: variables set on top of the rest.
        threads: the value of ``OMP_NUM_THREADS``.

    Returns:
        This process's environment without the import path the method process was given (it
        would leak cref-bench's packages into another Python) nor its scratch folder, with
        ``OMP_NUM_THREADS``, unbuffered Python output, and ``extra``.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME",
                                                              SCRATCH_ENV)}
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def quote_tail(tail) -> str:
    """The end of a failure message quoting a program's last lines of output.

    Args:
        tail: the lines (blank ones are left out).

    Returns:
        ``"; its last lines of output:\\n..."``, or ``" (it printed nothing)"``.
    """
    lines = [line for line in tail if line.strip()]
    if not lines:
        return " (it printed nothing)"
    return "; its last lines of output:\n" + "\n".join(lines)


def _log_stream():
    """Where the program's output goes: this process's standard error (bytes)."""
    return getattr(sys.stderr, "buffer", None)


def run_program(command: str, workdir: Path, env: dict[str, str], label: str) -> list[str]:
    """Run a command with ``/bin/sh`` in ``workdir``, passing its output line by line to
    standard error.

    Args:
        command: the shell command.
        workdir: its current folder.
        env: its environment.
        label: how the program is named in the log and the messages.

    Returns:
        The last :data:`TAIL_LINES` lines of its output.

    Raises:
        ProgramFailed: it exited with a non-zero status or was killed by a signal.
    """
    sink = _log_stream()

    def emit(data: bytes) -> None:
        if sink is not None:
            sink.write(data)
            sink.flush()
        else:
            sys.stderr.write(data.decode("utf-8", "replace"))
            sys.stderr.flush()

    emit(f"[{label}] in {workdir}: {command}\n".encode())
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    start = time.monotonic()
    proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=workdir, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        for line in iter(proc.stdout.readline, b""):
            emit(line)
            tail.append(line.decode("utf-8", "replace").rstrip()[-LINE_CHARS:])
        code = proc.wait()
    finally:
        if proc.poll() is None:  # this process is failing: take the program down with it
            kill_tree(proc.pid)
            proc.wait()
        proc.stdout.close()
    seconds = time.monotonic() - start
    emit(f"[{label}] exit status {code} after {seconds:.1f} s\n".encode())
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise ProgramFailed(label, f"{how} after {seconds:.1f} s{quote_tail(tail)}")
    return list(tail)


__all__ = ["LINE_CHARS", "TAIL_LINES", "ProgramFailed", "default_threads", "environment",
           "quote_tail", "run_program"]
