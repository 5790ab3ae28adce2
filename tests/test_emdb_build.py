"""Tests of the EMDB corpus build (:mod:`dataset_builder.emdb.build`) against the stand-in.

A small archive is served on 127.0.0.1: good entries made of smooth random fields plus
noise (one with permuted file axes and non-zero ``nxstart``; one behind HTTP 500s; one
whose download is cut), and one entry per fault the builder must turn down. The tests
check that every good entry lands once with the geometry served, every bad one is in the
manifest with its reason, downloads are cleaned up, and an interrupted build rerun gives
the same store.
"""

from __future__ import annotations

import gzip
import hashlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from scipy import ndimage

from cref_bench import cli, errors
from cref_bench.corpus.layout import read_manifest_rows
from cref_bench.corpus.reader import open_corpus
from cref_bench.maps.volume import Volume
from dataset_builder.emdb.build import BuildOptions, build, plan, process_entry
from dataset_builder.emdb.download import RetryPolicy
from dataset_builder.emdb.header import MapInfo
from dataset_builder.emdb.listing import ListedEntry
from dataset_builder.emdb.validate import REASONS, Rejection, classify_map_error, expected_shape
from dataset_builder.store import open_store
from tests.emdb_server import header_xml, make_entry_files

pytestmark = pytest.mark.filterwarnings("ignore:Data array contains NaN values:RuntimeWarning")

BOX = 32
FAST_RETRY = RetryPolicy(attempts=4, initial_delay=0.01, factor=2.0, max_delay=0.05)


def _field(seed: int, shape=(BOX, BOX, BOX),
           voxel=1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two half-maps (a smooth field plus independent noise) and a soft spherical mask."""
    rng = np.random.default_rng(seed)
    signal = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0) * 5
    halves = [(signal + 0.3 * rng.standard_normal(shape)).astype(np.float32) for _ in range(2)]
    z, y, x = np.indices(shape)
    radius = np.sqrt(sum((c - (n - 1) / 2) ** 2 for c, n in zip((z, y, x), shape)))
    mask = np.clip((min(shape) * 0.4 - radius) / 3 + 0.5, 0, 1).astype(np.float32)
    return halves[0], halves[1], mask


@dataclass
class Served:
    """What the stand-in serves for one good entry: the volumes as they should be stored."""

    half1: Volume
    half2: Volume
    mask: Volume


def _indexed(rows: list, entry):
    """Remember the entry's search-index row; returns the entry."""
    rows.append(entry.index_row)
    return entry


def _write_permuted(path: Path, data_zyx: np.ndarray, order: tuple[str, str, str], voxel_zyx,
                    start_xyz) -> None:
    """An MRC file whose columns, rows and sections run along ``order`` (e.g. ('Y', 'Z', 'X'))."""
    axis = {"Z": 0, "Y": 1, "X": 2}
    # (section, row, column)
    file_data = data_zyx.transpose([axis[order[2]], axis[order[1]], axis[order[0]]])
    size_xyz = data_zyx.shape[::-1]
    voxel_xyz = voxel_zyx[::-1]
    compression = "gzip" if path.suffix == ".gz" else None
    with mrcfile.new(path, overwrite=True, compression=compression) as mrc:
        mrc.set_data(np.ascontiguousarray(file_data, dtype=np.float32))
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = ("XYZ".index(a) + 1 for a in order)
        mrc.header.mx, mrc.header.my, mrc.header.mz = size_xyz
        mrc.header.cella = tuple(n * v for n, v in zip(size_xyz, voxel_xyz))
        starts = dict(zip("XYZ", start_xyz))
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = (starts[a] for a in order)


def _permuted_entry(root: Path, rows: list, emdb_id: str, seed: int) -> Served:
    """An entry stored with file axes (Y, Z, X) and non-zero starts, and its XML saying so."""
    shape = (BOX, BOX - 2, BOX + 4)     # (z, y, x): unequal so a wrong transpose shows
    half1, half2, mask = _field(seed, shape)
    voxel_zyx, start_xyz, order = (1.1, 1.2, 1.3), (-7, 4, 11), ("Y", "Z", "X")
    entry = _indexed(rows, make_entry_files(root, emdb_id, half1, half2, mask, voxel=voxel_zyx,
                                            write_map=False))
    for path, data in zip((*entry.half_maps, *entry.masks), (half1, half2, mask)):
        _write_permuted(path, data, order, voxel_zyx, start_xyz)
    size = dict(zip("XYZ", shape[::-1]))
    starts = dict(zip("XYZ", start_xyz))
    entry.header.write_text(header_xml(
        emdb_id, map_file=f"emd_{emdb_id[4:]}.map.gz",
        half_map_files=tuple(p.name for p in entry.half_maps),
        mask_files=tuple(p.name for p in entry.masks), dimensions=tuple(size[a] for a in order),
        origin=tuple(starts[a] for a in order), axis_order=order, pixel_spacing=voxel_zyx[::-1]),
        encoding="utf-8")
    origin = tuple(s * v for s, v in zip(start_xyz[::-1], voxel_zyx))   # (z, y, x) Å
    return Served(*(Volume(d, voxel_zyx, origin) for d in (half1, half2, mask)))


def _good_entry(root: Path, rows: list, emdb_id: str, seed: int, voxel=1.0,
                start=(0, 0, 0)) -> Served:
    half1, half2, mask = _field(seed)
    _indexed(rows, make_entry_files(root, emdb_id, half1, half2, mask, voxel=voxel, start=start,
                                    fitted_pdbs=("7abc",)))
    origin = tuple(s * voxel for s in start[::-1])
    return Served(*(Volume(d, voxel, origin) for d in (half1, half2, mask)))


def _bad_entries(root: Path, rows: list) -> dict[str, str]:
    """One entry per fault; returns ``{id: expected reason code}``."""
    expected = {}

    h1, h2, m = _field(20)
    entry = _indexed(rows, make_entry_files(root, "EMD-2001", h1, h2, m))
    raw = entry.half_maps[1].read_bytes()
    entry.half_maps[1].write_bytes(raw[: len(raw) // 2])          # truncated gzip
    expected["EMD-2001"] = "corrupt_gzip"

    h1, h2, m = _field(21)
    entry = _indexed(rows, make_entry_files(root, "EMD-2002", h1, h2, m))
    with mrcfile.new(entry.half_maps[1], overwrite=True, compression="gzip") as mrc:
        mrc.set_data(h2[:, :, :-2].copy())                         # half-map of another shape
        mrc.voxel_size = 1.0
    expected["EMD-2002"] = "half_map_mismatch"

    h1, h2, m = _field(22)
    entry = _indexed(rows, make_entry_files(root, "EMD-2003", h1, h2, m))
    with mrcfile.new(entry.masks[0], overwrite=True) as mrc:
        mrc.set_data(m[:-4].copy())                                # mask of another shape
        mrc.voxel_size = 1.0
    expected["EMD-2003"] = "mask_mismatch"

    h1, h2, _ = _field(23)
    _indexed(rows, make_entry_files(root, "EMD-2004", h1, h2, None))  # header lists no mask
    expected["EMD-2004"] = "no_mask"

    h1, h2, m = _field(24)
    entry = _indexed(rows, make_entry_files(root, "EMD-2005", h1, h2, m))
    entry.masks[0].unlink()                                        # listed, but on no mirror
    expected["EMD-2005"] = "missing_file"

    h1, h2, m = _field(25)
    h2[3, 4, 5] = np.nan                                           # a NaN voxel
    _indexed(rows, make_entry_files(root, "EMD-2006", h1, h2, m))
    expected["EMD-2006"] = "non_finite"

    h1, h2, m = _field(26)
    entry = _indexed(rows, make_entry_files(root, "EMD-2007", h1, h2, m, voxel=1.0))
    text = entry.header.read_text(encoding="utf-8")                # XML says 1.25 Å, files 1 Å
    entry.header.write_text(text.replace('<x units="Å">1</x>', '<x units="Å">1.25</x>'),
                            encoding="utf-8")
    expected["EMD-2007"] = "header_mismatch"

    h1, h2, m = _field(27, shape=(48, 48, 48))
    _indexed(rows, make_entry_files(root, "EMD-2008", h1, h2, m))  # over --max-box 40
    expected["EMD-2008"] = "box_too_large"
    return expected


@pytest.fixture
def archive(emdb_server):
    """The stand-in serving 5 good entries (with faults on the wire) and 8 bad ones."""
    root, rows = emdb_server.root, []
    good = {
        "EMD-1001": _good_entry(root, rows, "EMD-1001", 1),
        "EMD-1002": _good_entry(root, rows, "EMD-1002", 2, voxel=1.2, start=(3, -2, 5)),
        "EMD-1003": _good_entry(root, rows, "EMD-1003", 3),
        "EMD-1004": _good_entry(root, rows, "EMD-1004", 4),
        "EMD-1005": _permuted_entry(root, rows, "EMD-1005", 5),
    }
    emdb_server.fail("EMD-1002/other/emd_1002_half_map_1.map.gz", times=2, status=500)
    emdb_server.cut("EMD-1003/other/emd_1003_half_map_2.map.gz", after=20_000)
    bad = _bad_entries(root, rows)
    emdb_server.add_rows(*rows)
    return emdb_server, good, bad


def _options(tmp_path: Path, **overrides) -> BuildOptions:
    settings = {"mirrors": (), "download_dir": str(tmp_path / "downloads"), "max_box": 40,
                "retry": FAST_RETRY, "timeout": 5}
    settings.update(overrides)
    return BuildOptions(**settings)


def _check_store(path: Path, good: dict[str, Served], bad: dict[str, str]) -> None:
    corpus = open_corpus(path)
    assert sorted(corpus.ids()) == sorted(good)
    for entry_id, served in good.items():
        entry = corpus.entry(entry_id)
        for name in ("half1", "half2", "mask"):
            stored, expected = getattr(entry, name), getattr(served, name)
            assert stored.shape == expected.shape, (entry_id, name)
            np.testing.assert_allclose(stored.voxel_size, expected.voxel_size, rtol=1e-6)
            np.testing.assert_allclose(stored.origin, expected.origin, rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(stored.data, expected.data)
        assert entry.metadata["source"] == "emdb" and entry.resolution == 3.0
        assert set(entry.metadata["source_sha256"]) == {f"emd_{entry_id[4:]}_half_map_1.map.gz",
                                                        f"emd_{entry_id[4:]}_half_map_2.map.gz",
                                                        f"emd_{entry_id[4:]}_msk_1.map"}
    rows = {r["id"]: r for r in read_manifest_rows(open_store(path).root("r"))}
    assert {i for i, r in rows.items() if r["status"] == "ok"} == set(good)
    for entry_id, code in bad.items():
        row = rows[entry_id]
        assert (row["status"], row["reason_code"]) == ("rejected", code), (entry_id, row["reason"])
        assert row["reason"].startswith(f"{code}: ")
    assert set(rows) == set(good) | set(bad)


def test_build_lands_good_entries_and_rejects_bad_ones(archive, tmp_path):
    server, good, bad = archive
    out = tmp_path / "corpus.zarr"
    ids = sorted([*good, *bad])
    report = build(ids, str(out), options=_options(tmp_path, mirrors=(server.mirror_url,)),
                   workers=2, processes=False, progress=False)
    _check_store(out, good, bad)
    assert report.counts() == {"ok": len(good), "rejected": len(bad)}
    assert report.reasons() == {code: 1 for code in bad.values()}
    by_id = {o.entry_id: o for o in report.outcomes}
    assert all(set(by_id[i].phases) == {"fetch", "read", "write"} for i in good)
    assert set(by_id["EMD-2008"].phases) == {"fetch"}  # turned down before reading anything
    assert "worker time: fetch" in report.format()
    assert report.content_hash == open_corpus(out).content_hash
    # the faults on the wire were met: retried after 500s, resumed after the cut
    retried = server.requests_for("EMD-1002/other/emd_1002_half_map_1.map.gz")
    assert [r.status for r in retried] == [500, 500, 200]
    resumed = server.requests_for("EMD-1003/other/emd_1003_half_map_2.map.gz")
    assert [(r.range, r.status) for r in resumed] == [(None, 200), ("bytes=20000-", 206)]
    # a box over --max-box is refused from its header: its maps were never downloaded
    assert not server.requests_for("EMD-2008/other/emd_2008_half_map_1.map.gz")
    # downloads are deleted; the bytes reported are those of the files fetched
    assert not any((tmp_path / "downloads").rglob("*.map*"))
    fetched = sum(f.stat().st_size for e in good for f in (server.root / e).rglob("*")
                  if f.parent.name in ("other", "masks"))
    assert sum(o.downloaded_bytes for o in report.outcomes if o.status == "ok") == fetched
    # a second run does nothing and changes nothing
    again = build(ids, str(out), options=_options(tmp_path, mirrors=(server.mirror_url,)),
                  workers=1, processes=False, progress=False)
    assert again.counts() == {"skipped": len(ids)} and again.content_hash == report.content_hash
    assert "skipped" in again.format() and report.format().count("\n") >= 2 + len(bad)


def test_interrupted_build_resumes_to_the_same_store(archive, tmp_path):
    server, good, bad = archive
    ids = sorted([*good, *bad])
    options = _options(tmp_path, mirrors=(server.mirror_url,))
    reference = build(ids, str(tmp_path / "reference.zarr"), options=options, workers=2,
                      processes=False, progress=False)

    out = str(tmp_path / "corpus.zarr")
    seen = []

    def interrupt_after_two(outcome):
        seen.append(outcome.entry_id)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(ids, out, options=options, workers=2, processes=False, progress=False,
              on_outcome=interrupt_after_two)
    # and a half-written entry, as a kill in the middle of write_entry leaves it
    store = open_store(out)
    entries = store.root()["entries"]
    broken = seen[0] if seen[0] in good else "EMD-1001"
    if broken in entries:
        entries[broken].attrs["complete"] = False
        del entries[broken]["half2"]
    else:
        entries.create_group(broken, attributes={"id": broken, "complete": False})
    todo, done = plan(store, [ListedEntry(i) for i in ids], options.max_box)
    assert 1 <= len(done) < len(ids) and broken in [e.emdb_id for e in todo]

    rerun = build(ids, out, options=options, workers=2, processes=False, progress=False)
    assert rerun.counts()["skipped"] == len(done)
    assert rerun.counts()["skipped"] + rerun.counts()["ok"] + rerun.counts()["rejected"] == len(ids)
    assert rerun.content_hash == reference.content_hash
    _check_store(Path(out), good, bad)


def test_transient_failures_are_retried_by_the_next_run(archive, tmp_path):
    server, good, _ = archive
    out = tmp_path / "corpus.zarr"
    store = open_store(out, source="test")
    server.fail("EMD-1001/other/emd_1001_half_map_1.map.gz", times=4, status=503)
    options = _options(tmp_path, mirrors=(server.mirror_url,))
    outcome = process_entry("EMD-1001", store, options)
    assert (outcome.status, outcome.code) == ("failed", "download_failed")
    assert "HTTP 503" in outcome.detail
    todo, done = plan(store, [ListedEntry("EMD-1001")], options.max_box)
    assert [e.emdb_id for e in todo] == ["EMD-1001"] and done == []
    assert process_entry("EMD-1001", store, options).status == "ok"
    assert process_entry("EMD-1001", store, options).status == "skipped"
    # an entry turned down for its box is reconsidered when --max-box grows
    small = _options(tmp_path, mirrors=(server.mirror_url,), max_box=16)
    assert process_entry("EMD-1004", store, small).code == "box_too_large"
    assert plan(store, [ListedEntry("EMD-1004")], 16)[0] == []
    assert [e.emdb_id for e in plan(store, [ListedEntry("EMD-1004")], 64)[0]] == ["EMD-1004"]


def test_local_mirror_is_read_in_place_to_the_same_store(archive, tmp_path):
    """A ``file://`` mirror without kept downloads: the files are read where they lie (no
    copy, the mirror untouched), their sha256 recorded, and the store's content hash is that
    of the same build over HTTP."""
    server, good, bad = archive
    files = sorted(p for p in server.root.rglob("*") if p.is_file())
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    ids = sorted([*good, *bad])
    local = _options(tmp_path, mirrors=(server.root.resolve().as_uri(),))
    by_file = build(ids, str(tmp_path / "file.zarr"), options=local, workers=2,
                    processes=False, progress=False)
    _check_store(tmp_path / "file.zarr", good, bad)
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == before
    assert not any((tmp_path / "downloads").rglob("*.map*"))
    assert [o.downloaded_bytes for o in by_file.outcomes] == [0] * len(ids)  # nothing copied
    for entry_id in good:
        recorded = open_corpus(tmp_path / "file.zarr").entry(entry_id).metadata["source_sha256"]
        for name, digest in recorded.items():
            served, = (p for p in files if p.name == name)
            assert digest == before[served]
    by_http = build(ids, str(tmp_path / "http.zarr"), options=_options(
        tmp_path, mirrors=(server.mirror_url,)), workers=2, processes=False, progress=False)
    assert by_file.content_hash == by_http.content_hash
    assert all(o.downloaded_bytes > 0 for o in by_http.outcomes if o.entry_id in good)


def test_mirror_fallback_local_mirror_and_kept_downloads(archive, tmp_path):
    server, good, _ = archive
    store = open_store(tmp_path / "corpus.zarr", source="test")
    keep = tmp_path / "kept"
    options = _options(tmp_path, mirrors=(server.url + "/nowhere", server.root.resolve().as_uri()),
                       download_dir=str(keep), keep_downloads=True, with_models=True,
                       model_sources=(server.mirror_url + "/models/{id}.cif.gz",))
    model = "data_7abc\n_entry.id 7ABC\n"
    (server.root / "models").mkdir()
    with gzip.open(server.root / "models" / "7abc.cif.gz", "wt", encoding="utf-8") as handle:
        handle.write(model)
    assert process_entry("EMD-1001", store, options).status == "ok"
    assert (keep / "EMD-1001" / "other" / "emd_1001_half_map_1.map.gz").read_bytes() == \
        (server.root / "EMD-1001" / "other" / "emd_1001_half_map_1.map.gz").read_bytes()
    entry = open_corpus(tmp_path / "corpus.zarr", warn_stale=False).entry("EMD-1001")
    assert entry.model("7abc") == model and entry.metadata["models_unavailable"] == []
    np.testing.assert_array_equal(entry.half1.data, good["EMD-1001"].half1.data)


def test_reason_codes():
    known = {errors.CorruptGzip: "corrupt_gzip", errors.TruncatedMap: "truncated_map",
             errors.NonFiniteMap: "non_finite", errors.MapNotFound: "missing_file",
             errors.GeometryMismatch: "mask_mismatch", errors.BadMask: "bad_mask",
             errors.ConstantMap: "constant_map", errors.MapError: "unreadable_map"}
    for kind, code in known.items():
        assert classify_map_error(kind("f.map", "whatever the words")) == code
        assert code in REASONS
    with pytest.raises(ValueError, match="unknown rejection reason"):
        Rejection("because", "x")
    assert all(Rejection(code, "x").permanent == (code not in ("download_failed", "error"))
               for code in REASONS)


def test_expected_shape_follows_the_axis_order():
    info = MapInfo("f", "EMD-1/other/f", dimensions=(10, 20, 30), axis_order=("Y", "Z", "X"))
    assert expected_shape(info) == (20, 10, 30)          # z = medium, y = fast, x = slow
    assert expected_shape(MapInfo("f", "p", dimensions=(10, 20, 30))) == (30, 20, 10)
    assert expected_shape(MapInfo("f", "p")) is None


def test_cli_build_limit_then_complete(archive, tmp_path, capsys):
    server, good, bad = archive
    out = str(tmp_path / "corpus.zarr")
    common = ["build", "--out", out, "--preset", "all", "--api", server.api_url, "--threads",
              "--workers", "2", "--max-box", "40", "--no-progress", "--keep-downloads",
              str(tmp_path / "kept")]
    assert cli.main([*common, "--mirror", server.mirror_url, "--limit", "3"]) == 0
    printed = capsys.readouterr().out
    assert "12 entries listed by preset all" in printed          # EMD-2004 lists no mask: not found
    assert "3 entries listed: 3 ok" in printed
    assert sorted(open_corpus(out).ids()) == ["EMD-1001", "EMD-1002", "EMD-1003"]
    # the rest, from the archive as a local folder; kept downloads are reused, not fetched again
    assert cli.main([*common, "--mirror", str(server.root)]) == 0
    printed = capsys.readouterr().out
    assert "12 entries listed: 2 ok, 3 skipped, 7 rejected, 0 failed" in printed
    _check_store(Path(out), good, {k: v for k, v in bad.items() if k != "EMD-2004"})
    assert (tmp_path / "kept" / "EMD-1005" / "other" / "emd_1005_half_map_1.map.gz").exists()


def test_cli_refuses_bad_arguments(tmp_path, capsys):
    ids = tmp_path / "ids.txt"
    ids.write_text("EMD-1001\n")
    out = str(tmp_path / "c.zarr")
    assert cli.main(["build", "--out", out, "--ids", str(ids), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert cli.main(["build", "--out", out, "--ids", str(ids),
                     "--released-before", "2020-01-01"]) == 2
    assert cli.main(["build", "--out", out, "--ids", str(ids),
                     "--mirror", str(tmp_path / "nothing")]) == 2
    assert "neither a known mirror" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("# no accession yet\n")
    assert cli.main(["build", "--out", out, "--ids", str(empty), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cref-bench: error: no entries listed in {empty}; nothing to build"]
    assert not Path(out).exists()


def test_build_on_an_existing_cluster(archive, tmp_path):
    from dask.distributed import LocalCluster

    server, good, bad = archive
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        report = build(["EMD-1005", "EMD-2003"], str(tmp_path / "corpus.zarr"),
                       options=_options(tmp_path, mirrors=(server.mirror_url,)),
                       scheduler=cluster.scheduler_address, progress=False)
        assert cluster.scheduler_address.startswith("inproc://")
    assert report.counts() == {"ok": 1, "rejected": 1}
    _check_store(tmp_path / "corpus.zarr", {"EMD-1005": good["EMD-1005"]},
                 {"EMD-2003": bad["EMD-2003"]})


def _entries_begun(out: Path) -> int:
    """Entry groups in the store a build process is writing (0 while it is being created: its
    root exists a moment before its ``entries`` group)."""
    try:
        return len(open_store(out, mode="r+").root("r")["entries"])
    except errors.CorpusError:
        return 0


@pytest.mark.slow
def test_killed_build_process_resumes_to_the_same_store(archive, tmp_path):
    """A ``cref-bench build`` process killed with SIGKILL mid-way, then rerun, gives the same
    store."""
    server, good, bad = archive
    ids = sorted([*good, *bad])
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    options = _options(tmp_path, mirrors=(server.mirror_url,))
    reference = build(ids, str(tmp_path / "reference.zarr"), options=options, workers=1,
                      processes=False, progress=False)
    # hold the third entry up (the default retry policy waits 1 s, then 2 s) to kill inside the run
    server.fail("EMD-1003/header/emd-1003.xml", times=2, status=503)
    out = tmp_path / "corpus.zarr"
    command = [sys.executable, "-m", "cref_bench.cli", "build", "--out", str(out),
               "--ids", str(tmp_path / "ids.txt"), "--mirror", server.mirror_url, "--threads",
               "--workers", "1", "--max-box", "40", "--no-progress",
               "--keep-downloads", str(tmp_path / "kept")]
    process = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[1],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if _entries_begun(out) >= 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the build ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    todo, done = plan(open_store(out), [ListedEntry(i) for i in ids], options.max_box)
    assert done and todo
    rerun = build(ids, str(out), options=options, workers=1, processes=False, progress=False)
    assert rerun.counts()["skipped"] == len(done)
    assert rerun.content_hash == reference.content_hash
    _check_store(out, good, bad)
