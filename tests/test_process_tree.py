"""kill_tree (cref_bench.run.process_tree): a process and all it started die, in its own
process group or not, including a descendant that left the group."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from cref_bench.run.process_tree import kill_tree

# A shell whose children sleep; one of them in a session of its own (outside the group).
TREE = ("sleep 60 & "
        f"{sys.executable} -c 'import os, time; os.setsid(); time.sleep(60)' & "
        "wait")


def _descendants(proc: subprocess.Popen, count: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = psutil.Process(proc.pid).children(recursive=True)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"the tree did not start {count} children")


@pytest.mark.parametrize("group", [False, True])
def test_the_process_and_every_descendant_die(group):
    proc = subprocess.Popen(["/bin/sh", "-c", TREE], start_new_session=group)
    children = _descendants(proc, 2)
    kill_tree(proc.pid, group=group)
    assert proc.wait(timeout=30) == -9
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive


def test_a_process_already_gone_is_skipped():
    proc = subprocess.Popen(["/bin/sh", "-c", "exit 0"])
    proc.wait()
    kill_tree(proc.pid)
    kill_tree(proc.pid, group=True)
