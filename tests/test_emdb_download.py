"""Tests of :mod:`dataset_builder.emdb.download` against the EMDB stand-in's archive mirror.

Each fault the stand-in can inject is met with the behaviour the module promises: retries
with back-off for 5xx, resumption with ``Range`` after a cut, mirror fall-back for 404 and
dead hosts, refusal of contradicted sizes -- and in every case either the exact bytes at
the destination or nothing there at all.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from dataset_builder.emdb import (
    Downloader,
    RetryPolicy,
    fetch_entry_files,
    fetch_header,
    fetch_model,
    mirror_urls,
    model_urls,
)
from dataset_builder.emdb.download import (
    DownloadError,
    NotFoundError,
    SizeMismatchError,
    fetch_file,
    fetch_header_file,
)
from tests.emdb_server import make_entry_files, unused_url

RELPATH = "EMD-1234/other/emd_1234_half_map_1.map.gz"


class Sleeps(list):
    """Records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def payload(emdb_server) -> bytes:
    data = np.random.default_rng(7).bytes(300_000)
    path = emdb_server.root / RELPATH
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return data


def _downloader(sleeps=None, attempts=4) -> Downloader:
    return Downloader(RetryPolicy(attempts=attempts, initial_delay=0.5, factor=2.0, max_delay=1.5),
                      timeout=5, chunk_size=1 << 14,
                      sleep=sleeps if sleeps is not None else Sleeps())


def _no_part_files(folder: Path) -> bool:
    return not any(p.name.endswith(".part") for p in folder.rglob("*"))


def test_plain_download_is_exact_and_atomic(emdb_server, payload, tmp_path):
    dest = tmp_path / "out" / "file.gz"
    seen = []
    result = _downloader().fetch(mirror_urls(RELPATH, [emdb_server.mirror_url]), dest,
                                 progress=lambda n, total: seen.append((n, total)))
    assert dest.read_bytes() == payload
    assert (result.size, result.transferred, result.resumed) == (len(payload), len(payload), False)
    assert sum(n for n, _ in seen) == len(payload) and {t for _, t in seen} == {len(payload)}
    assert _no_part_files(tmp_path)
    # already there: no request at all
    before = len(emdb_server.requests)
    again = _downloader().fetch(emdb_server.mirror_url + "/" + RELPATH, dest)
    assert (again.url, again.transferred) == (None, 0) and len(emdb_server.requests) == before


def test_http_500_is_retried_with_backoff(emdb_server, payload, tmp_path):
    emdb_server.fail(RELPATH, times=3, status=500)
    sleeps = Sleeps()
    dest = tmp_path / "file.gz"
    _downloader(sleeps).fetch(emdb_server.mirror_url + "/" + RELPATH, dest)
    assert dest.read_bytes() == payload
    assert sleeps == [0.5, 1.0, 1.5]                    # doubling, capped at max_delay
    assert [r.status for r in emdb_server.requests_for(RELPATH)] == [500, 500, 500, 200]


def test_cut_connection_resumes_with_range(emdb_server, payload, tmp_path):
    emdb_server.cut(RELPATH, after=100_000, times=2)
    sleeps = Sleeps()
    dest = tmp_path / "file.gz"
    result = _downloader(sleeps).fetch(emdb_server.mirror_url + "/" + RELPATH, dest)
    assert dest.read_bytes() == payload
    log = emdb_server.requests_for(RELPATH)
    assert [(r.range, r.status) for r in log] == [(None, 200), ("bytes=100000-", 206),
                                                  ("bytes=200000-", 206)]
    assert sleeps == []                                 # progress was made: no waiting
    assert result.transferred == len(payload)           # no byte fetched twice


def test_partial_file_from_an_earlier_run_is_resumed(emdb_server, payload, tmp_path):
    dest = tmp_path / "file.gz"
    dest.with_name("file.gz.part").write_bytes(payload[:123_456])
    result = _downloader().fetch(emdb_server.mirror_url + "/" + RELPATH, dest)
    assert dest.read_bytes() == payload
    assert result.resumed and result.transferred == len(payload) - 123_456
    assert emdb_server.requests_for(RELPATH)[0].range == "bytes=123456-"
    # a server that ignores Range: the file is restarted, not corrupted
    dest.unlink()
    dest.with_name("file.gz.part").write_bytes(payload[:1000])
    emdb_server.ignore_range(RELPATH)
    _downloader().fetch(emdb_server.mirror_url + "/" + RELPATH, dest)
    assert dest.read_bytes() == payload


def test_partial_file_that_is_already_complete(emdb_server, payload, tmp_path):
    """A kill between the last byte and the rename: the server answers 416, the file is kept."""
    dest = tmp_path / "file.gz"
    dest.with_name("file.gz.part").write_bytes(payload)
    result = _downloader().fetch(emdb_server.mirror_url + "/" + RELPATH, dest)
    assert dest.read_bytes() == payload and result.transferred == 0
    assert [r.status for r in emdb_server.requests_for(RELPATH)] == [416]


def test_mirror_fallback(emdb_server, payload, tmp_path):
    dead = unused_url()
    sleeps = Sleeps()
    emdb_server.missing("/elsewhere/" + RELPATH)
    urls = mirror_urls(RELPATH, [dead, emdb_server.url + "/elsewhere", emdb_server.mirror_url])
    result = _downloader(sleeps, attempts=2).fetch(urls, tmp_path / "file.gz")
    assert result.url == urls[2] and (tmp_path / "file.gz").read_bytes() == payload
    assert sleeps == [0.5]                              # the dead host was retried once, 404 never
    assert [r.status for r in emdb_server.requests_for("/elsewhere/" + RELPATH)] == [404]


def test_not_found_everywhere(emdb_server, tmp_path):
    urls = mirror_urls("EMD-1/other/nothing.map.gz",
                       [emdb_server.mirror_url, emdb_server.mirror_url])
    with pytest.raises(NotFoundError, match="HTTP 404") as info:
        _downloader().fetch(urls, tmp_path / "nothing.map.gz")
    assert str(tmp_path / "nothing.map.gz") in str(info.value)
    assert not (tmp_path / "nothing.map.gz").exists() and _no_part_files(tmp_path)


def test_contradicted_size_is_refused(emdb_server, payload, tmp_path):
    dest = tmp_path / "file.gz"
    url = emdb_server.mirror_url + "/" + RELPATH
    with pytest.raises(SizeMismatchError, match=f"expected {len(payload) - 1}"):
        _downloader().fetch(url, dest, expected_size=len(payload) - 1)
    assert not dest.exists() and _no_part_files(tmp_path)
    # a server that declares more than it sends: retried, then given up; never renamed
    emdb_server.lie_size(RELPATH, extra=10)
    sleeps = Sleeps()
    with pytest.raises(DownloadError, match="gave up after 3"):
        _downloader(sleeps, attempts=3).fetch(url, dest)
    assert not dest.exists() and len(sleeps) == 2


def test_local_mirror_by_file_url(payload, emdb_server, tmp_path):
    base = emdb_server.root.resolve().as_uri()
    dest = tmp_path / "file.gz"
    dest.with_name("file.gz.part").write_bytes(payload[:5000])
    result = _downloader().fetch(mirror_urls(RELPATH, [base]), dest)
    assert dest.read_bytes() == payload and result.transferred == len(payload) - 5000
    with pytest.raises(NotFoundError):
        _downloader().fetch(mirror_urls("EMD-1/x.map", [base]), tmp_path / "x.map")


def test_a_local_mirror_is_read_in_place_unless_copies_are_asked_for(payload, emdb_server,
                                                                     tmp_path):
    local = emdb_server.root.resolve().as_uri()
    cache = tmp_path / "cache"
    in_place = fetch_file(RELPATH, cache, mirrors=[local], copy_local=False)
    assert in_place == emdb_server.root.resolve() / RELPATH and not cache.exists()
    copied = fetch_file(RELPATH, cache, mirrors=[local])
    assert copied == cache / RELPATH and copied.read_bytes() == payload
    # a local mirror without the file: the next one (HTTP) delivers a download
    empty = (tmp_path / "empty").as_uri()
    got = fetch_file(RELPATH, tmp_path / "a", mirrors=[empty, emdb_server.mirror_url],
                     copy_local=False, downloader=_downloader())
    assert got == tmp_path / "a" / RELPATH and got.read_bytes() == payload
    # only the local mirrors before the first remote one are read in place
    got = fetch_file(RELPATH, tmp_path / "b", mirrors=[emdb_server.mirror_url, local],
                     copy_local=False, downloader=_downloader())
    assert got == tmp_path / "b" / RELPATH and got.read_bytes() == payload
    with pytest.raises(NotFoundError):
        fetch_file("EMD-1/x.map", tmp_path / "c", mirrors=[local], copy_local=False)


def test_entry_files_and_header_land_in_the_archive_layout(emdb_server, tmp_path):
    rng = np.random.default_rng(0)
    shape = (8, 9, 10)
    entry = make_entry_files(emdb_server.root, "EMD-4321", rng.random(shape), rng.random(shape),
                             np.ones(shape), fitted_pdbs=("6abc",))
    cache = tmp_path / "cache"
    header = fetch_header("4321", cache, mirrors=[emdb_server.mirror_url], downloader=_downloader())
    assert header.emdb_id == "EMD-4321" and header.dimensions == (10, 9, 8)
    files = fetch_entry_files(header, cache, mirrors=[emdb_server.mirror_url],
                              downloader=_downloader())
    for got, served in zip((*files.half_maps, *files.masks), (*entry.half_maps, *entry.masks)):
        assert got == cache / entry.relpath(served)
        assert got.read_bytes() == served.read_bytes()
    assert files.map is None and not (cache / entry.relpath(entry.map)).exists()
    assert _no_part_files(cache)


def test_header_under_either_name(emdb_server, tmp_path):
    """``emd-N.xml`` first, then ``emd-N-v30.xml``; 404 on both is not-found (permanent), a
    transient failure of one is a download error (tried again by the next run)."""
    rng = np.random.default_rng(1)
    shape = (4, 4, 4)
    args = (rng.random(shape), rng.random(shape), np.ones(shape))
    make_entry_files(emdb_server.root, "EMD-0552", *args)                 # emd-0552.xml only
    make_entry_files(emdb_server.root, "EMD-1111", *args, header_names=("emd-{n}-v30.xml",))
    mirrors = [emdb_server.mirror_url]
    official = fetch_header_file("EMD-00552", tmp_path / "a", mirrors=mirrors,
                                 downloader=_downloader())
    assert official == tmp_path / "a" / "EMD-0552" / "header" / "emd-0552.xml"
    assert not emdb_server.requests_for("EMD-0552/header/emd-0552-v30.xml")
    assert fetch_header("1111", tmp_path / "b", mirrors=mirrors,
                        downloader=_downloader()).emdb_id == "EMD-1111"
    assert [r.status for r in emdb_server.requests_for("EMD-1111/header/emd-1111.xml")] == [404]
    with pytest.raises(NotFoundError, match="EMD-2222: no header under either name"):
        fetch_header_file("2222", tmp_path / "c", mirrors=mirrors, downloader=_downloader())
    emdb_server.fail("EMD-3333/header/emd-3333.xml", times=10, status=503)
    with pytest.raises(DownloadError, match="could not be fetched") as info:
        fetch_header_file("3333", tmp_path / "d", mirrors=mirrors, downloader=_downloader())
    assert not isinstance(info.value, NotFoundError)


def test_entry_files_take_the_half_maps_by_number_and_the_primary_mask(emdb_server, tmp_path):
    rng = np.random.default_rng(2)
    shape = (4, 5, 6)
    entry = make_entry_files(emdb_server.root, "EMD-4322", rng.random(shape), rng.random(shape),
                             np.ones(shape), halves_listed_reversed=True)
    header = fetch_header("4322", tmp_path, mirrors=[emdb_server.mirror_url],
                          downloader=_downloader())
    assert header.half_map_files[0].endswith("_half_map_2.map.gz")      # listed second first
    files = fetch_entry_files(header, tmp_path, mirrors=[emdb_server.mirror_url],
                              downloader=_downloader())
    assert [p.name for p in files.half_maps] == [p.name for p in entry.half_maps]
    assert [p.name for p in files.masks] == ["emd_4322_msk_1.map"]


def test_models(emdb_server, tmp_path):
    assert model_urls("7A4M", ["rcsb", "wwpdb"]) == [
        "https://files.rcsb.org/download/7a4m.cif.gz",
        "https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF/a4/7a4m.cif.gz"]
    for bad in ("EMD-1", "7a4", "abcd"):
        with pytest.raises(ValueError, match="not a PDB id"):
            model_urls(bad)
    served = emdb_server.root / "models" / "6abc.cif.gz"
    served.parent.mkdir(parents=True)
    served.write_bytes(b"\x1f\x8b fake gzip bytes")
    path = fetch_model("6ABC", tmp_path, sources=[emdb_server.mirror_url + "/models/{id}.cif.gz"],
                       downloader=_downloader())
    assert path == tmp_path / "models" / "6abc.cif.gz" and path.read_bytes() == served.read_bytes()
    assert os.path.getsize(path) == served.stat().st_size
