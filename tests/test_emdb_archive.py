"""The EMDB builder against the archive's own quirks and files.

Real headers (``tests/data/emdb``, written by the archive) are served from a ``file://``
mirror and built; the stand-in serves entries the way the archive does (``emd-N.xml`` only,
masks without ``<mask_details>``, ``msk_1`` listed after another mask, half-maps listed
second first, a primary map larger than the half-maps, 4-digit ids); ``--dry-run`` lists and
reports without downloading.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import mrcfile
import numpy as np
import pytest

import tests.test_emdb_build as built
from cref_bench import cli
from cref_bench.corpus.layout import read_manifest_rows
from cref_bench.corpus.reader import open_corpus
from dataset_builder.emdb.build import BuildOptions, build, dry_run, process_entry
from dataset_builder.emdb.listing import ListedEntry
from dataset_builder.store import open_store
from tests.emdb_server import header_xml, make_entry_files

pytestmark = pytest.mark.filterwarnings("ignore:Data array contains NaN values:RuntimeWarning")

REAL_HEADERS = Path(__file__).parent / "data" / "emdb"


def _options(tmp_path: Path, mirror: str, **overrides) -> BuildOptions:
    settings = {"mirrors": (mirror,), "download_dir": str(tmp_path / "downloads"),
                "retry": built.FAST_RETRY, "timeout": 5}
    settings.update(overrides)
    return BuildOptions(**settings)


def _rows(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_manifest_rows(open_store(path).root("r"))}


def test_real_headers_through_a_file_mirror_build(tmp_path):
    """The archive's own headers, laid out as ``EMD-N/header/emd-N.xml`` in a local mirror:
    every entry gets the verdict its header calls for, from the header alone, with the
    header's metadata (EMD-1001's mask is ``msk_1``; EMD-0001's mask, named only in
    ``<mask_details>``, does not make the header bad)."""
    mirror = tmp_path / "mirror"
    for name, number in (("emd-1001.xml", "1001"), ("emd-0001.xml", "0001"),
                         ("emd-13682.xml", "13682")):
        target = mirror / f"EMD-{number}" / "header" / name
        target.parent.mkdir(parents=True)
        shutil.copyfile(REAL_HEADERS / name, target)
    out = tmp_path / "corpus.zarr"
    report = build(["EMD-1001", "0001", "EMD-013682"], str(out),
                   options=_options(tmp_path, mirror.resolve().as_uri(), max_box=64),
                   workers=1, processes=False, progress=False)
    assert report.counts() == {"rejected": 3}
    rows = _rows(out)
    assert {i: r["reason_code"] for i, r in rows.items()} == {
        "EMD-1001": "no_half_maps", "EMD-0001": "no_half_maps", "EMD-13682": "no_mask"}
    assert rows["EMD-1001"]["mask_file"] == "emd_1001_msk_1.map"
    assert rows["EMD-1001"]["method"] == "tomography" and rows["EMD-1001"]["resolution"] == 40.0
    assert rows["EMD-0001"]["mask_file"] == "emd_0001.map.gz"
    assert rows["EMD-0001"]["release_date"] == "2018-06-06"
    assert rows["EMD-13682"]["half_map_files"] == ["emd_13682_half_map_1.map.gz",
                                                   "emd_13682_half_map_2.map.gz"]
    # a dry run over the same mirror reads the same headers and predicts the same verdicts
    preview = dry_run(["EMD-1001", "EMD-0001", "EMD-13682"], str(tmp_path / "new.zarr"),
                      options=_options(tmp_path, mirror.resolve().as_uri()))
    assert (preview.todo, preview.headers_read) == (3, 3)
    assert preview.refused == {"no_half_maps": 2, "no_mask": 1}
    assert not (tmp_path / "new.zarr").exists()


@pytest.fixture
def quirky(emdb_server):
    """Entries served the way the archive serves them."""
    root, rows = emdb_server.root, []
    h1, h2, mask = built._field(31)
    # a 4-digit id with a leading zero; half-maps listed second first; masks msk_2 and msk_1,
    # msk_2 listed first and empty (it must not be the one taken)
    entry = make_entry_files(root, "EMD-0552", h1, h2, mask, halves_listed_reversed=True)
    text = entry.header.read_text(encoding="utf-8").replace(
        "<segmentation><file>emd_0552_msk_1.map</file></segmentation>",
        "<segmentation><file>emd_0552_msk_2.map</file></segmentation>"
        "<segmentation><file>emd_0552_msk_1.map</file></segmentation>")
    entry.header.write_text(text, encoding="utf-8")
    with mrcfile.new(entry.header.parents[1] / "masks" / "emd_0552_msk_2.map") as mrc:
        mrc.set_data(np.zeros_like(mask))
        mrc.voxel_size = 1.0
    rows.append(entry.index_row)
    # a primary map (64³ voxels of 0.5 Å) larger than the 32³ half-maps the build fetches
    h1, h2, mask = built._field(32)
    entry = make_entry_files(root, "EMD-1702", h1, h2, mask, write_map=False)
    nz, ny, nx = h1.shape
    entry.header.write_text(header_xml(
        "EMD-1702", map_file="emd_1702.map.gz", half_map_files=tuple(p.name for p in
                                                                  entry.half_maps),
        mask_files=("emd_1702_msk_1.map",), dimensions=(nx, ny, nz),
        pixel_spacing=(1.0, 1.0, 1.0)).replace(
        "<dimensions><col>32</col><row>32</row><sec>32</sec></dimensions>",
        "<dimensions><col>64</col><row>64</row><sec>64</sec></dimensions>", 1),
        encoding="utf-8")
    rows.append(entry.index_row)
    # only the older header name
    h1, h2, mask = built._field(33)
    rows.append(make_entry_files(root, "EMD-1703", h1, h2, mask,
                                 header_names=("emd-{n}-v30.xml",)).index_row)
    emdb_server.add_rows(*rows)
    return emdb_server


def test_archive_quirks_build(quirky, tmp_path):
    server = quirky
    out = tmp_path / "corpus.zarr"
    options = _options(tmp_path, server.mirror_url, max_box=40)
    report = build(["EMD-00552", "EMD-1702", "EMD-1703"], str(out), options=options,
                   workers=1, processes=False, progress=False)
    assert report.counts() == {"ok": 3}, report.format()
    corpus = open_corpus(out)
    assert sorted(corpus.ids()) == ["EMD-0552", "EMD-1702", "EMD-1703"]
    entry = corpus.entry("EMD-0552")
    assert entry.metadata["mask_file"] == "emd_0552_msk_1.map"
    assert entry.metadata["half_map_files"] == ["emd_0552_half_map_1.map.gz",
                                                "emd_0552_half_map_2.map.gz"]
    with mrcfile.open(server.root / "EMD-0552" / "other" / "emd_0552_half_map_1.map.gz") as mrc:
        np.testing.assert_array_equal(entry.half1.data, mrc.data)
    assert entry.mask.data.max() == 1.0                                # not the empty msk_2
    assert not server.requests_for("EMD-0552/masks/emd_0552_msk_2.map")
    # --max-box 40 judged the 32³ half-maps, not the 64³ primary map (never downloaded)
    assert not any("/map/" in r.path for r in server.requests)
    # the official header name is asked for first, the older one only when it is missing
    assert not any(r.path.endswith("-v30.xml") for r in server.requests
                   if "EMD-1703" not in r.path)
    assert [r.status for r in server.requests_for("EMD-1703/header/emd-1703.xml")] == [404]
    assert [r.status for r in server.requests_for("EMD-1703/header/emd-1703-v30.xml")] == [200]
    # a box over --max-box in the files fetched is still refused before their download
    small = build(["EMD-1702"], str(tmp_path / "small.zarr"),
                  options=_options(tmp_path, server.mirror_url, max_box=16), workers=1,
                  processes=False, progress=False)
    assert small.reasons() == {"box_too_large": 1}


def test_header_release_date_holds_undated_rows_to_the_cutoff(emdb_server, tmp_path):
    h1, h2, mask = built._field(34)
    make_entry_files(emdb_server.root, "EMD-1801", h1, h2, mask, release_date=date(2023, 8, 1))
    store = open_store(tmp_path / "corpus.zarr", source="test")
    options = _options(tmp_path, emdb_server.mirror_url, released_before=date(2023, 7, 1))
    outcome = process_entry(ListedEntry("EMD-1801"), store, options)
    assert outcome.status == "excluded" and "2023-08-01" in outcome.detail
    assert "EMD-1801" not in _rows(tmp_path / "corpus.zarr")            # nothing recorded
    # a row that gave its date is taken at its word (the query and the re-check judged it)
    dated = ListedEntry("EMD-1801", release_date=date(2023, 6, 1))
    assert process_entry(dated, store, options).status == "ok"


def test_cli_dry_run_downloads_nothing_and_reports(tmp_path, capsys):
    """``--dry-run`` over a capped search API and an HTTP mirror: the listing is complete,
    counted and filtered; no archive file is requested and no store is written."""
    from tests.emdb_server import EmdbStandIn

    with EmdbStandIn(tmp_path / "archive", cap=2) as server:
        rows = []
        for number, seed in ((1901, 41), (1902, 42), (1903, 43)):
            rows.append(make_entry_files(server.root, f"EMD-{number}",
                                         *built._field(seed)).index_row)
        one_half = dict(rows[0], emdb_id="EMD-1904",
                        half_map_filename="emd_1904_half_map_1.map.gz")
        server.add_rows(*rows, one_half)
        out = tmp_path / "corpus.zarr"
        base = ["build", "--out", str(out), "--preset", "all", "--api", server.api_url,
                "--no-progress", "--dry-run"]
        assert cli.main([*base, "--mirror", server.mirror_url]) == 0
        printed = capsys.readouterr().out
        assert not any(r.path.startswith("/pub/") for r in server.requests)
        assert "4 entries listed by preset all: 3 accepted, 1 refused" in printed
        assert "half_maps: 1" in printed
        assert "dry run: 3 entries listed: 0 done earlier, 3 to process; nothing downloaded" \
            in printed
        assert "3 entries to process have no local header" in printed
        assert not out.exists()
        # from the archive as a local folder, the headers are read in place: verdicts and sizes
        assert cli.main([*base, "--mirror", str(server.root), "--max-box", "16"]) == 0
        printed = capsys.readouterr().out
        assert "headers found locally for 3: 3 would be refused" in printed
        assert "box_too_large: 3" in printed
        assert cli.main([*base, "--mirror", str(server.root)]) == 0
        printed = capsys.readouterr().out
        # two half-maps an entry state their size (132 kB); the masks, without details, none
        expected = 3 * 2 * ((1024 + 32 ** 3 * 4) // 1000) * 1000
        assert f"3 would fetch about {expected / 1e6:.1f} MB (uncompressed sizes stated by " \
               "the headers; 3 files state none)" in printed
        assert not out.exists()


def test_cli_warns_of_a_short_preset(emdb_server, tmp_path, capsys):
    make_entry_files(emdb_server.root, "EMD-1951", *built._field(51))
    emdb_server.add_rows({"emdb_id": "EMD-1951", "current_status": "REL", "resolution": "3",
                          "structure_determination_method": "singleParticle",
                          "release_date": "2020-01-01T00:00:00Z",
                          "half_map_filename": "a,b", "segmentation_filename": "m"})
    args = ["build", "--out", str(tmp_path / "c.zarr"), "--preset", "paper2023", "--api",
            emdb_server.api_url, "--mirror", emdb_server.mirror_url, "--dry-run",
            "--no-progress"]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "cref-bench: warning: preset paper2023 lists 1 entries, far fewer than the about " \
           "3710" in err
