"""Tests of :mod:`dataset_builder.emdb.listing` against the EMDB stand-in's search API.

The stand-in filters its index with the query the client sends, so these tests check both
that the presets' queries select what they should and that the client asks for everything
at once, proves the listing complete (paging only after a capped answer, failing loudly
when it cannot), parses and re-checks the answers.
"""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from dataset_builder.emdb.listing import (
    PRESETS,
    SEARCH_ROWS,
    ListedEntry,
    ListingError,
    list_entries,
    parse_search_csv,
    read_id_list,
    run_search,
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
    entries = select_entries("paper2023", api=server.api_url)
    assert [e.emdb_id for e in entries] == ["EMD-1001", "EMD-1002", "EMD-1005"]
    first = entries[0]
    assert first == ListedEntry("EMD-1001", 3.1, date(2022, 1, 5), "singleParticle",
                                ("7a4m", "7a4n"),
                                ("emd_1001_half_map_1.map.gz", "emd_1001_half_map_2.map.gz"),
                                ("emd_1001_msk_1.map",), 1.06)
    # everything asked for in one CSV request, as EMDB's own client does; then the page after
    # the 4 rows received (EMD-1010 is refused by the re-check), which is empty: complete
    searches = [r for r in server.requests if "/search/" in r.path]
    assert len(searches) == 2
    assert searches[0].query["rows"] == [str(SEARCH_ROWS)] and "page" not in searches[0].query
    assert searches[1].query["rows"] == ["4"] and searches[1].query["page"] == ["2"]
    assert all(r.query["wt"] == ["csv"] and r.query["download"] == ["false"]
               and r.query["fl"] == searches[0].query["fl"] for r in searches)


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
            if row["emdb_id"] in ("EMD-1007", "EMD-1008"):
                # an empty file column is unknown to the re-check: the query filters on it
                assert not query_matches(preset.query(), row)
                continue
            assert query_matches(preset.query(), row) == preset.accepts(_as_listed(row)), \
                (preset.name, row["emdb_id"])


def _many(count: int, start: int = 10_001) -> list[dict[str, str]]:
    return [_row(n) for n in range(start, start + count)]


def test_capped_server_lists_every_entry(tmp_path):
    """A server that caps every answer at 100 rows: the one request brings 100, the page after
    them more, and so on until an empty page; all 250 entries are listed."""
    with EmdbStandIn(tmp_path, cap=100) as server:
        server.add_rows(*_many(250))
        result = run_search(PRESETS["all"].query(), api=server.api_url)
        assert [e.emdb_id for e in result.entries] == [f"EMD-{n}" for n in range(10_001, 10_251)]
        assert "caps" in result.complete_by and result.requests == 4
        pages = [r.query.get("page") for r in server.requests]
        assert pages == [None, ["2"], ["3"], ["4"]]
        assert all(r.query["rows"] == ["100"] for r in server.requests[1:])


def test_capped_server_ignoring_pages_fails_loudly(tmp_path):
    """A server that answers exactly the rows asked for and ignores ``page`` cannot be listed
    completely: the listing fails, naming what it received."""
    with EmdbStandIn(tmp_path, honour_paging=False) as server:
        server.add_rows(*_many(250))
        with pytest.raises(ListingError, match=r"cannot be completed: received 100 entries "
                                               r"\(EMD-10001 \.\.\. EMD-10100\)") as info:
            search(PRESETS["all"].query(), api=server.api_url, rows=100)
        assert len(info.value.received) == 100


def test_server_ignoring_pages_for_csv_is_handled(tmp_path):
    """The one response holds everything; a server that ignores ``page`` answers the check
    with the same rows, and the one response is the listing (no error, as before)."""
    with EmdbStandIn(tmp_path, honour_paging=False) as server:
        server.add_rows(*INDEX)
        result = run_search(PRESETS["all"].query(), api=server.api_url)
        assert [e.emdb_id for e in result.entries] == [
            f"EMD-{n}" for n in (1001, 1002, 1003, 1004, 1005, 1006, 1009, 1010)]
        assert "ignores 'page'" in result.complete_by
        assert [e.emdb_id for e in select_entries("paper2023", api=server.api_url)] == [
            "EMD-1001", "EMD-1002", "EMD-1005"]


def test_page_repeating_entries_fails_loudly(tmp_path):
    with EmdbStandIn(tmp_path, cap=100) as server:
        server.add_rows(*_many(250))
        answer = server._search

        def third_page_repeats_the_second(text, query):
            if query.get("page") == ["3"]:
                query = {**query, "page": ["2"]}
            return answer(text, query)

        server._search = third_page_repeats_the_second
        with pytest.raises(ListingError, match="page 3 repeats entries") as info:
            search(PRESETS["all"].query(), api=server.api_url)
        assert len(info.value.received) == 200


def test_rows_lacking_the_date_column_are_kept(tmp_path):
    """The live API may return the date under another name, or not at all: the query still
    filters by date on the server's side, and the rows it returns are not refused for want of
    a date (the build checks the header's date instead)."""
    with EmdbStandIn(tmp_path, omit_columns=("release_date",)) as server:
        server.add_rows(*INDEX)
        listing = list_entries("paper2023", api=server.api_url)
    assert [e.emdb_id for e in listing.entries] == ["EMD-1001", "EMD-1002", "EMD-1005"]
    assert all(e.release_date is None for e in listing.entries)
    assert listing.listed == 4 and listing.rejected == {"half_maps": 1}    # EMD-1010
    # the date is read from map_release_date too; an empty one is unknown, not a refusal
    listed = parse_search_csv("emdb_id,release_date,map_release_date\nEMD-1001,,2022-01-05\n"
                              "EMD-1002,2023-07-01T00:00:00Z,\nEMD-1003,,\n")
    assert [e.release_date for e in listed] == [date(2022, 1, 5), date(2023, 7, 1), None]
    preset = PRESETS["paper2023"]
    verdicts = [preset.rejection(ListedEntry(e.emdb_id, 3.0, e.release_date, "singleParticle"))
                for e in listed]
    assert verdicts == [None, "released_after", None]


def test_listing_counts_and_warnings(server, tmp_path):
    listing = list_entries("all", api=server.api_url)
    assert listing.listed == 8 and len(listing.entries) == 7
    assert listing.rejected == {"half_maps": 1}
    text = listing.format()
    assert text.splitlines()[0].startswith("8 entries listed by preset all: 7 accepted, 1 refused")
    assert "  half_maps: 1" in text
    assert listing.warnings() == []                       # 'all' expects no count
    few = list_entries("paper2023", api=server.api_url)
    assert len(few.entries) == 3 and few.expected == 3710
    assert "far fewer than the about 3710" in few.warnings()[0]
    early = list_entries("paper2023", api=server.api_url, released_before=date(2000, 1, 1))
    assert early.entries == [] and "lists no entries" in early.warnings()[0]


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
