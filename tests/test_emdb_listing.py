"""Tests of :mod:`dataset_builder.emdb.listing` against the EMDB stand-in's search API.

The stand-in filters its index with the query the client sends, so these tests check both
that the presets' queries select what they should and that the client pages, parses and
re-checks the answers.
"""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from dataset_builder.emdb.listing import (
    PRESETS,
    ListedEntry,
    ListingError,
    parse_search_csv,
    read_id_list,
    search,
    select_entries,
)
from tests.emdb_server import EmdbStandIn, query_matches


def _row(number: int, *, resolution="3.1", method="singleParticle", released="2022-01-05",
         halves=2, masks=1, pdbs="") -> dict[str, str]:
    return {
        "emdb_id": f"EMD-{number}",
        "current_status": "REL",
        "resolution": resolution,
        "structure_determination_method": method,
        "release_date": f"{released}T00:00:00Z" if released else "",
        "half_map_filename": ",".join(f"emd_{number}_half_map_{i}.map.gz"
                                      for i in range(1, halves + 1)),
        "segmentation_filename": ",".join(f"emd_{number}_msk_{i}.map"
                                          for i in range(1, masks + 1)),
        "map_pixel_spacing_x": "1.06",
        "fitted_pdbs": pdbs,
    }


INDEX = [
    _row(1001, pdbs="7A4M,7a4n"),                        # in paper2023
    _row(1002, released="2023-06-30"),                    # last day in
    _row(1003, released="2023-07-01"),                    # first day out
    _row(1004, resolution="10.5"),                        # too coarse
    _row(1005, resolution="1.22", method="subtomogramAveraging"),  # lowest bound, other method
    _row(1006, method="helical"),                         # method not in the paper's selection
    _row(1007, masks=0),                                  # no mask: not returned by the search
    _row(1008, halves=0),                                 # no half-maps: not returned either
    _row(1009, resolution=""),                            # unknown resolution
    _row(1010, halves=1),                                 # only one half-map: re-check refuses
]


@pytest.fixture
def server(emdb_server):
    emdb_server.add_rows(*INDEX)
    return emdb_server


def test_paper2023_selects_the_papers_entries(server):
    entries = select_entries("paper2023", api=server.api_url, rows=3)
    assert [e.emdb_id for e in entries] == ["EMD-1001", "EMD-1002", "EMD-1005"]
    first = entries[0]
    assert first == ListedEntry("EMD-1001", 3.1, date(2022, 1, 5), "singleParticle",
                                ("7a4m", "7a4n"),
                                ("emd_1001_half_map_1.map.gz", "emd_1001_half_map_2.map.gz"),
                                ("emd_1001_msk_1.map",), 1.06)
    # the search was paged: 3 rows a page, every request asked for CSV and the same fields
    searches = [r for r in server.requests if "/search/" in r.path]
    assert len(searches) >= 2
    assert [r.query["page"] for r in searches] == [[str(i)] for i in range(1, len(searches) + 1)]
    assert all(r.query["wt"] == ["csv"] and r.query["rows"] == ["3"] for r in searches)


def test_all_preset_and_release_cutoff(server):
    everything = [e.emdb_id for e in select_entries("all", api=server.api_url)]
    # entries without a mask or half-maps are filtered by the query; one half-map by the re-check
    assert everything == [f"EMD-{n}" for n in (1001, 1002, 1003, 1004, 1005, 1006, 1009)]
    early = select_entries("all", api=server.api_url, released_before=date(2023, 1, 1))
    assert "EMD-1002" not in [e.emdb_id for e in early] and "EMD-1001" in [e.emdb_id for e in early]
    # a cut-off later than the preset's own does not widen it
    late = select_entries("paper2023", api=server.api_url, released_before=date(2030, 1, 1))
    assert [e.emdb_id for e in late] == ["EMD-1001", "EMD-1002", "EMD-1005"]


def _as_listed(row: dict[str, str]) -> ListedEntry:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    return parse_search_csv(out.getvalue())[0]


def test_preset_queries_agree_with_the_client_side_check():
    """Each preset's query, as the stand-in evaluates it, selects exactly what ``accepts`` does
    (except a single half-map, which only the client can see in the file list)."""
    for preset in PRESETS.values():
        for row in INDEX:
            if row["emdb_id"] == "EMD-1010":
                assert query_matches(preset.query(), row) and not preset.accepts(_as_listed(row))
                continue
            assert query_matches(preset.query(), row) == preset.accepts(_as_listed(row)), \
                (preset.name, row["emdb_id"])


def test_server_ignoring_pages_is_detected(tmp_path):
    with EmdbStandIn(tmp_path, honour_paging=False) as server:
        server.add_rows(*INDEX)
        with pytest.raises(ListingError, match="ignore 'page'"):
            search(PRESETS["all"].query(), api=server.api_url, rows=2)


def test_search_errors_name_the_url(server):
    server.fail("/emdb/api/search/" + PRESETS["all"].query(), times=1, status=503)
    with pytest.raises(ListingError, match=r"HTTP 503.*") as info:
        select_entries("all", api=server.api_url)
    assert server.api_url in str(info.value)
    with pytest.raises(ListingError, match="expected CSV"):
        parse_search_csv('{"emdb_id": "EMD-1"}', source="answer")
    with pytest.raises(ListingError, match="no 'emdb_id' column"):
        parse_search_csv("id,resolution\nEMD-1234,3\n")
    with pytest.raises(ListingError, match="line 2.*not an EMDB accession"):
        parse_search_csv("emdb_id\nEMD-12\n")


def test_id_list_file(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("# my entries\nEMD-1234\n  5678  # trailing comment\n\nemd_1234\nEMD-11638\n")
    assert read_id_list(path) == ["EMD-1234", "EMD-5678", "EMD-11638"]
    entries = select_entries(id_file=path)
    assert entries == [ListedEntry("EMD-1234"), ListedEntry("EMD-5678"), ListedEntry("EMD-11638")]
    path.write_text("EMD-1234\nnot-an-id\n")
    with pytest.raises(ValueError, match=r"ids.txt: line 2"):
        read_id_list(path)


def test_select_entries_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        select_entries()
    with pytest.raises(ValueError, match="exactly one"):
        select_entries("all", id_file=tmp_path / "x")
    with pytest.raises(ValueError, match="unknown preset"):
        select_entries("paper2024")
    (tmp_path / "x").write_text("1234\n")
    with pytest.raises(ValueError, match="released-before"):
        select_entries(id_file=tmp_path / "x", released_before=date(2020, 1, 1))
