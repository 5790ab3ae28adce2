"""Listing EMDB entries: the search API, the selection presets and ID-list files.

EMDB's search API answers ``GET {api}/search/{solr query}?rows=N&fl=fields&wt=csv`` with one
CSV row per entry. Like EMDB's own client (the ``emdb`` package's ``csv_search``), the
listing asks for everything in one CSV response (``rows=1000000``), then checks that it got
everything: it asks for the page after what it received (``page=2`` with ``rows`` set to the
count received). An empty page proves the listing complete; new entries mean the server
capped its answer, and the listing pages on until an empty page; the same entries again mean
the server ignores ``page`` for CSV, and the one response is the listing (a server that both
caps its answers and ignores ``page`` cannot be told from a complete one without a reported
total, which the CSV answer lacks: the preset's expected count is the check left, and a
listing far short of it is warned about). A listing that
cannot be completed (a full answer from a server that will not page, a page that repeats
what came before) raises :class:`ListingError` with what was received -- never a silent
truncation. (The ``emdb`` package itself is not used: its base URL is fixed to EMDB's, so
it cannot be pointed at a mirror or a test stand-in, and it pins ``pandas<3``.)

The presets turn a selection into a Solr query (entries with two half-maps and a mask:
``half_map_filename`` and ``segmentation_filename`` present) and also re-check every returned
row on our side, so a search engine that interprets part of the query differently cannot
widen the selection. A value the row does not give (an empty or missing column: a date, the
file lists) does not refuse the row -- the query has filtered on it already, and the
header, read by the build, is the authority (the build takes the release date from it).

Presets:

* ``paper2023`` -- the selection of the crefDenoiser paper (IUCrJ 2024): released
  entries with half-maps and a mask, single-particle or subtomogram-averaging maps,
  resolution 1.22-9.9 Å, released on or before 2023-06-30 (about 3,710 entries).
* ``all`` -- every released entry with half-maps and a mask.

The header of each entry (:mod:`dataset_builder.emdb.header`) is the authority on what it
holds; the listing only narrows the candidates.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from cref_bench.errors import InputError, UnavailableError
from dataset_builder.emdb.layout import normalize_id

logger = logging.getLogger(__name__)

DEFAULT_API = "https://www.ebi.ac.uk/emdb/api"
SEARCH_ROWS = 1_000_000
"""Rows asked for in the one CSV request (as EMDB's own client does)."""
SEARCH_FIELDS = ("emdb_id", "resolution", "structure_determination_method", "release_date",
                 "map_release_date", "half_map_filename", "segmentation_filename",
                 "map_pixel_spacing_x", "fitted_pdbs")
"""The columns asked for. The date comes back as ``release_date`` or ``map_release_date``
(the name used with ``fl`` by scripts that read EMDB's CSV); either is read."""
DATE_COLUMNS = ("release_date", "map_release_date", "header_release_date")
"""CSV columns read for the release date, in order; the first non-empty one is taken."""
EXPECTED_FRACTION = 0.9
"""A preset listing fewer than this fraction of the entries it expects is warned about."""
_BASE_QUERY = ('current_status:"REL" AND half_map_filename:[* TO *] '
               'AND segmentation_filename:[* TO *]')
_LIST_SEPARATORS = re.compile(r"[\s,;]+")


class ListingError(UnavailableError):
    """The search API could not be reached, answered something that is not the expected CSV,
    or gave a listing that cannot be completed.

    Attributes:
        received: the entries received before the listing failed (possibly none).
    """

    def __init__(self, *args, received: list | None = None):
        super().__init__(*args)
        self.received = list(received or [])


@dataclass(frozen=True)
class ListedEntry:
    """One entry as the search API describes it.

    Attributes:
        emdb_id: the accession, ``'EMD-1234'``.
        resolution: the author's resolution in Å, or ``None`` when not given.
        release_date: the release date, or ``None`` when not given.
        method: the structure determination method (``'singleParticle'``, ...), or ``None``.
        fitted_pdbs: PDB ids of the fitted models, lower case.
        half_map_files: the half-map file names, or ``None`` when the column was not given
            or empty (unknown).
        mask_files: the mask (segmentation) file names, or ``None`` when the column was not
            given or empty (unknown).
        pixel_spacing: the primary map's Å per voxel along x, or ``None``.
    """

    emdb_id: str
    resolution: float | None = None
    release_date: date | None = None
    method: str | None = None
    fitted_pdbs: tuple[str, ...] = ()
    half_map_files: tuple[str, ...] | None = None
    mask_files: tuple[str, ...] | None = None
    pixel_spacing: float | None = None


LISTING_REASONS: dict[str, str] = {
    "half_maps": "the row lists fewer than two half-maps",
    "no_mask": "the row lists no mask",
    "method": "the structure determination method is not one of the preset's",
    "resolution": "the resolution is unknown or outside the preset's range",
    "released_after": "released on or after the preset's cut-off",
}
"""Why the preset's re-check turns a listed row down (counted in the listing's summary)."""


@dataclass(frozen=True)
class Preset:
    """A named selection of EMDB entries with two half-maps and a mask.

    Attributes:
        name: the preset's name on the command line.
        description: one line for ``--help``.
        methods: accepted structure determination methods; empty accepts any.
        resolution: inclusive (min, max) resolution in Å, or ``None`` for any.
        released_before: only entries released strictly before this date, or ``None``.
        expected: about how many entries the preset lists, or ``None``; far fewer
            (:data:`EXPECTED_FRACTION`) is warned about.
    """

    name: str
    description: str
    methods: tuple[str, ...] = ()
    resolution: tuple[float, float] | None = None
    released_before: date | None = None
    expected: int | None = None

    def cutoff(self, released_before: date | None = None) -> date | None:
        """The effective release cut-off: the earlier of the preset's and ``released_before``."""
        dates = [d for d in (self.released_before, released_before) if d is not None]
        return min(dates) if dates else None

    def query(self, released_before: date | None = None) -> str:
        """The Solr query for this preset, narrowed to releases before ``released_before`` if
        given."""
        parts = [_BASE_QUERY]
        if self.methods:
            parts.append(f"structure_determination_method:({' OR '.join(self.methods)})")
        if self.resolution is not None:
            low, high = self.resolution
            parts.append(f"resolution:[{low:g} TO {high:g}]")
        cutoff = self.cutoff(released_before)
        if cutoff is not None:
            parts.append(f"release_date:[* TO {cutoff.isoformat()}T00:00:00Z}}")
        return " AND ".join(parts)

    def rejection(self, entry: ListedEntry, released_before: date | None = None) -> str | None:
        """Why a listed entry fails the preset (a code of :data:`LISTING_REASONS`), or
        ``None`` when it passes.

        An unknown resolution or method fails; an unknown release date or file list does not
        (the query filtered on them, and the header decides: the build checks the header's
        release date against the cut-off). A row listing one half-map, or an empty mask
        list next to known half-maps, is refused.
        """
        if entry.half_map_files is not None and len(entry.half_map_files) < 2:
            return "half_maps"
        if entry.mask_files is not None and not entry.mask_files:
            return "no_mask"
        if self.methods and entry.method not in self.methods:
            return "method"
        if self.resolution is not None:
            low, high = self.resolution
            if entry.resolution is None or not low <= entry.resolution <= high:
                return "resolution"
        cutoff = self.cutoff(released_before)
        if cutoff is not None and entry.release_date is not None and entry.release_date >= cutoff:
            return "released_after"
        return None

    def accepts(self, entry: ListedEntry, released_before: date | None = None) -> bool:
        """Whether a listed entry meets the preset (see :meth:`rejection`)."""
        return self.rejection(entry, released_before) is None


PRESETS: dict[str, Preset] = {
    "paper2023": Preset(
        name="paper2023",
        description="the crefDenoiser paper's selection: single-particle and subtomogram maps "
                    "with half-maps and a mask, 1.22-9.9 Å, released up to 2023-06-30",
        methods=("singleParticle", "subtomogramAveraging"),
        resolution=(1.22, 9.9),
        released_before=date(2023, 7, 1),
        expected=3710),
    "all": Preset(
        name="all",
        description="every released entry with half-maps and a mask"),
}


def _parse_float(value: str, emdb_id: str, field: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        logger.warning("%s: ignoring unreadable %s %r", emdb_id, field, value)
        return None


def _parse_date(value: str, emdb_id: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        logger.warning("%s: ignoring unreadable release date %r", emdb_id, value)
        return None


def _split_list(value: str | None) -> tuple[str, ...]:
    return tuple(p for p in _LIST_SEPARATORS.split(value or "") if p)


def _optional_list(row: dict, column: str) -> tuple[str, ...] | None:
    """The names in a list column; ``None`` (unknown) when the column is missing or empty."""
    return _split_list(row.get(column)) or None


def _row_date(row: dict, emdb_id: str) -> date | None:
    for column in DATE_COLUMNS:
        value = (row.get(column) or "").strip()
        if value:
            return _parse_date(value, emdb_id)
    return None


def parse_search_csv(text: str, source: str = "<search>") -> list[ListedEntry]:
    """Parse the CSV answer of the search API into :class:`ListedEntry` records.

    Columns other than those of :data:`SEARCH_FIELDS` are ignored; missing or empty optional
    columns give ``None``; the date is the first non-empty of :data:`DATE_COLUMNS`.
    Multi-valued columns (``fitted_pdbs``, ``half_map_filename``,
    ``segmentation_filename``) may be separated by commas, semicolons or blanks.

    Args:
        text: the CSV text, header row first.
        source: the URL or file it came from, for error messages.

    Returns:
        The entries in the order of the rows.

    Raises:
        ListingError: the text is not CSV with an ``emdb_id`` column, or an id is malformed.
    """
    stripped = text.lstrip()
    if stripped.startswith(("{", "[", "<")):
        raise ListingError(f"{source}: expected CSV, got something else (starts {stripped[:40]!r})")
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "emdb_id" not in reader.fieldnames:
        raise ListingError(f"{source}: no 'emdb_id' column in the CSV header {reader.fieldnames!r}")
    entries = []
    for row in reader:
        raw_id = (row.get("emdb_id") or "").strip()
        if not raw_id:
            continue
        try:
            emdb_id = normalize_id(raw_id)
        except ValueError as exc:
            raise ListingError(f"{source}: line {reader.line_num}: {exc}") from None
        pdbs = tuple(p.lower() for p in _split_list(row.get("fitted_pdbs")))
        entries.append(ListedEntry(
            emdb_id=emdb_id,
            resolution=_parse_float(row.get("resolution") or "", emdb_id, "resolution"),
            release_date=_row_date(row, emdb_id),
            method=(row.get("structure_determination_method") or "").strip() or None,
            fitted_pdbs=pdbs,
            half_map_files=_optional_list(row, "half_map_filename"),
            mask_files=_optional_list(row, "segmentation_filename"),
            pixel_spacing=_parse_float(row.get("map_pixel_spacing_x") or "", emdb_id,
                                       "pixel spacing")))
    return entries


def _get_text(url: str, timeout: float, received: list | None = None) -> str:
    request = urllib.request.Request(url, headers={"Accept": "text/csv",
                                                   "User-Agent": "cref-bench"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        raise ListingError(f"{url}: HTTP {exc.code} {exc.reason}", received=received) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ListingError(f"{url}: {exc}", received=received) from None


@dataclass
class SearchResult:
    """The entries a search found, and how the listing was known to be complete.

    Attributes:
        entries: the entries, without duplicates, in the order the server gave them.
        requests: requests made.
        complete_by: how completeness was established, in words.
    """

    entries: list[ListedEntry]
    requests: int
    complete_by: str


def run_search(query: str, *, api: str = DEFAULT_API, fields: tuple[str, ...] = SEARCH_FIELDS,
               rows: int = SEARCH_ROWS, max_pages: int = 10_000,
               timeout: float = 300.0) -> SearchResult:
    """Run a search: everything in one CSV response, then a check that nothing is missing
    (see the module docstring); pages only when the server capped its answer.

    Args:
        query: a Solr query in EMDB's search syntax (quoted into the URL path here).
        api: the API base URL (default: EMDB's, at the EBI).
        fields: the columns to ask for; must include ``emdb_id``.
        rows: the rows asked for in the one request (default :data:`SEARCH_ROWS`).
        max_pages: a bound on the pages, against a server that never ends.
        timeout: seconds to wait for each response.

    Returns:
        The :class:`SearchResult`.

    Raises:
        ListingError: a response could not be fetched or parsed, or the listing cannot be
            completed: a server that caps its answer and ignores ``page``, a page repeating
            entries already received, ``max_pages`` reached. ``received`` holds what came.
        ValueError: ``rows`` is not positive.
    """
    if rows < 1:
        raise ValueError(f"rows must be positive, got {rows}")
    base = f"{api.rstrip('/')}/search/{urllib.parse.quote(query, safe='')}"
    seen: dict[str, ListedEntry] = {}

    def fetch(count: int, page: int | None) -> tuple[str, list[ListedEntry]]:
        params = {"rows": count, "fl": ",".join(fields), "wt": "csv", "download": "false"}
        if page is not None:
            params["page"] = page
        url = f"{base}?{urllib.parse.urlencode(params)}"
        text = _get_text(url, timeout, received=list(seen.values()))
        return url, parse_search_csv(text, source=url)

    def cannot_complete(url: str, fault: str) -> ListingError:
        got = list(seen.values())
        span = f" ({got[0].emdb_id} ... {got[-1].emdb_id})" if got else ""
        return ListingError(url, f"{fault}; the listing cannot be completed: received "
                                 f"{len(got)} entries{span}", received=got)

    _, first = fetch(rows, None)
    seen.update((e.emdb_id, e) for e in first)
    if not first:
        return SearchResult([], 1, "an empty answer")
    page_rows = min(rows, len(first))
    for page in range(2, max_pages + 1):
        url, batch = fetch(page_rows, page)
        new = [e for e in batch if e.emdb_id not in seen]
        if not batch:
            how = ("one response (the next page is empty)" if page == 2 else
                   f"{page - 1} pages of {page_rows} (the server caps its answers; the next "
                   "page is empty)")
            return SearchResult(list(seen.values()), page, how)
        if not new:
            if page == 2 and len(first) < rows:
                return SearchResult(list(seen.values()), page,
                                    "one response (the server ignores 'page' for CSV)")
            fault = ("the server answered as many rows as asked and ignores 'page'"
                     if page == 2 else f"page {page} repeats entries already received")
            raise cannot_complete(url, fault)
        seen.update((e.emdb_id, e) for e in new)
        logger.info("%s: page %d brought %d more entries (%d in all)", base, page, len(new),
                    len(seen))
    raise cannot_complete(base, f"still more entries after {max_pages} pages of {page_rows}")


def search(query: str, *, api: str = DEFAULT_API, fields: tuple[str, ...] = SEARCH_FIELDS,
           rows: int = SEARCH_ROWS, max_pages: int = 10_000,
           timeout: float = 300.0) -> list[ListedEntry]:
    """The entries of a search (:func:`run_search`, which see for the arguments).

    Raises:
        ListingError: see :func:`run_search`.
        ValueError: ``rows`` is not positive.
    """
    return run_search(query, api=api, fields=fields, rows=rows, max_pages=max_pages,
                      timeout=timeout).entries


def read_id_list(path: str | Path) -> list[str]:
    """Read a file of EMDB accessions: one per line, ``EMD-1234`` or ``1234``; ``#`` starts a
    comment.

    Args:
        path: the text file.

    Returns:
        The accessions as ``'EMD-1234'``, in file order, without duplicates.

    Raises:
        InputError: a line holds something that is not an accession (names the file and
            line).
        OSError: the file cannot be read.
    """
    ids: dict[str, None] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                ids[normalize_id(text)] = None
            except ValueError as exc:
                raise InputError(path, f"line {number}: {exc}") from None
    return list(ids)


@dataclass
class Listing:
    """The entries selected for a build, and the counts that say how they were selected.

    Attributes:
        source: ``'preset NAME'`` or the ID-list file.
        entries: the accepted entries, in listing order.
        listed: entries the search returned (or the file held).
        rejected: entries the preset's re-check refused, per code of :data:`LISTING_REASONS`.
        expected: about how many the preset should list, or ``None``.
        complete_by: how the search was known to be complete (empty for a file).
    """

    source: str
    entries: list[ListedEntry]
    listed: int
    rejected: Counter = field(default_factory=Counter)
    expected: int | None = None
    complete_by: str = ""

    def warnings(self) -> list[str]:
        """What the user should be told on standard error: a preset's listing that is empty,
        or far short of what the preset expects (an ID-list file is taken as given)."""
        accepted = len(self.entries)
        if not self.source.startswith("preset "):
            return []
        if accepted == 0:
            return [f"{self.source} lists no entries ({self.listed} returned, "
                    f"{sum(self.rejected.values())} refused); check the search API and its "
                    "column names"]
        if self.expected and accepted < EXPECTED_FRACTION * self.expected:
            return [f"{self.source} lists {accepted} entries, far fewer than the about "
                    f"{self.expected} it should; the search may be truncated or its columns "
                    "renamed"]
        return []

    def format(self) -> str:
        """A few lines: listed, accepted, refused per reason, and how it was completed."""
        lines = [f"{self.listed} entries listed {self._where()}: {len(self.entries)} "
                 f"accepted, {sum(self.rejected.values())} refused"
                 + (f" ({self.complete_by})" if self.complete_by else "")]
        lines += [f"  {code}: {n}" for code, n in sorted(self.rejected.items())]
        return "\n".join(lines)

    def _where(self) -> str:
        return f"by {self.source}" if self.source.startswith("preset ") else f"in {self.source}"


def list_entries(preset: str | None = None, *, id_file: str | Path | None = None,
                 released_before: date | None = None, api: str = DEFAULT_API,
                 rows: int = SEARCH_ROWS, timeout: float = 300.0) -> Listing:
    """The entries to build, with the counts of the selection: those of a preset (searched
    with :func:`run_search` and re-checked) or of an ID-list file.

    Args:
        preset: a name from :data:`PRESETS`.
        id_file: a file read by :func:`read_id_list`; its entries carry only their id.
        released_before: with a preset, keep only entries released strictly before this date.
        api, rows, timeout: passed to :func:`run_search`.

    Returns:
        The :class:`Listing`; its warnings are also logged at WARNING level.

    Raises:
        InputError: not exactly one of ``preset`` and ``id_file`` given, an unknown preset,
            or ``released_before`` combined with an ID list (the list is taken as given).
        ListingError: the search failed or could not be completed.
    """
    if (preset is None) == (id_file is None):
        raise InputError("give exactly one of a preset and an ID-list file")
    if id_file is not None:
        if released_before is not None:
            raise InputError("--released-before applies to presets; an ID list is taken as "
                             "given")
        entries = [ListedEntry(emdb_id) for emdb_id in read_id_list(id_file)]
        listing = Listing(str(id_file), entries, len(entries))
    else:
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        chosen = PRESETS[preset]
        result = run_search(chosen.query(released_before), api=api, rows=rows, timeout=timeout)
        entries, rejected = [], Counter()
        for entry in result.entries:
            reason = chosen.rejection(entry, released_before)
            if reason is None:
                entries.append(entry)
            else:
                rejected[reason] += 1
        listing = Listing(f"preset {preset}", entries, len(result.entries), rejected,
                          chosen.expected, result.complete_by)
    logger.info("%s", listing.format())
    for warning in listing.warnings():
        logger.warning("%s", warning)
    return listing


def select_entries(preset: str | None = None, *, id_file: str | Path | None = None,
                   released_before: date | None = None, api: str = DEFAULT_API,
                   rows: int = SEARCH_ROWS, timeout: float = 300.0) -> list[ListedEntry]:
    """The entries to build (:func:`list_entries`, which see, without the counts).

    Raises:
        InputError, ListingError: see :func:`list_entries`.
    """
    return list_entries(preset, id_file=id_file, released_before=released_before, api=api,
                        rows=rows, timeout=timeout).entries
