"""Killing a process and every process it started (a method's box, an external program).

A descendant may have left the process's group (a new session) or lost its parent (a
daemon), so the descendants are listed (with psutil) before anything is killed; a process that
leads its own group has the whole group killed too, which reaches those the listing missed.
"""

from __future__ import annotations

import os
import signal


def kill_tree(pid: int, *, group: bool = False) -> None:
    """SIGKILL a process and all its descendants; the caller reaps its own child.

    Processes already gone are skipped; nothing is raised for them.

    Args:
        pid: the process.
        group: the process leads its own process group (started with
            ``start_new_session=True``): kill the whole group as well.
    """
    import psutil

    try:
        victims = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        victims = []
    try:
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for victim in victims:  # those outside the group, or all of them without one
        try:
            victim.kill()
        except psutil.Error:
            pass


__all__ = ["kill_tree"]
