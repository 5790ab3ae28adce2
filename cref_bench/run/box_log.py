"""A box's output, copied to its log file up to a size limit.

A method's box writes its standard output and error into a pipe; a thread of the referee
copies them to the log file (``logs/method-<pid>.log``) until :data:`LOG_LIMIT_BYTES` have been
kept, then counts what follows without keeping it, and ends the log with a line saying how much
was dropped. A method that prints without end cannot fill the disk of the machine that
referees it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

LOG_LIMIT_BYTES = 64 * 2**20
"""How many bytes of its output one box may leave in its log."""

CHUNK_BYTES = 2**16
"""How much is read from the pipe at a time."""


class BoxLog:
    """The pipe a box writes its output to, and the thread that copies it to ``path``.

    Args:
        path: the log file (appended to; its folder must exist).
        limit: the bytes of output kept (default :data:`LOG_LIMIT_BYTES`).

    Give :attr:`write_fd` to the box as its standard output and error, then call
    :meth:`started` (this process's copy of it is closed, so that the copy ends when the box
    and everything it started are gone).
    """

    def __init__(self, path: Path, limit: int | None = None):
        self.limit = LOG_LIMIT_BYTES if limit is None else limit
        self._read_fd, self.write_fd = os.pipe()
        self._file = open(path, "ab")  # closed by the copying thread
        self._thread = threading.Thread(target=self._copy, daemon=True, name="box-log")
        self._thread.start()

    def started(self) -> None:
        """Close this process's end of the pipe (the box holds its own)."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def drained(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the box's last output to be in the file."""
        self._thread.join(timeout)

    def _copy(self) -> None:
        kept = dropped = 0
        with self._file as log, os.fdopen(self._read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(CHUNK_BYTES):
                room = max(self.limit - kept, 0)
                if room:
                    log.write(chunk[:room])
                    log.flush()
                kept += min(len(chunk), room)
                dropped += max(len(chunk) - room, 0)
            if dropped:
                log.write(f"\n[cref-bench: {dropped} more bytes of the box's output were not "
                          f"kept; a box's log keeps at most {self.limit} bytes]\n".encode())


__all__ = ["LOG_LIMIT_BYTES", "BoxLog"]
