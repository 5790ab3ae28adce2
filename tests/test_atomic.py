"""Tests for cref_bench.atomic: a target holds its old content or the whole new one."""

from __future__ import annotations

import os
import stat

import pytest

from cref_bench.atomic import atomic_path, write_bytes, write_text


def test_write_replaces_the_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    assert write_text(target, "a,b\n1,2\n") == target
    assert target.read_text() == "a,b\n1,2\n"
    write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_failed_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "provenance.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temp:
            temp.write_text("half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["provenance.json"]


def test_parents_are_made_only_when_asked(tmp_path):
    with pytest.raises(OSError):
        write_text(tmp_path / "missing" / "x.txt", "x")
    assert write_text(tmp_path / "made" / "x.txt", "x", make_parents=True).read_text() == "x"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        written = write_text(tmp_path / "scalars.csv", "a\n")
        with atomic_path(tmp_path / "model.pt") as temp:
            temp.write_bytes(b"weights")
    finally:
        os.umask(previous)
    for path in (written, tmp_path / "model.pt"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
