"""Listing EMDB entries: the search API, the selection presets and ID-list files.

EMDB's search API answers ``GET {api}/search/{solr query}?rows=N&page=P&fl=fields&wt=csv``
with one CSV row per entry (``page`` counts from 1). The presets turn a selection into a
Solr query (entries with two half-maps and a mask: ``half_map_filename`` and
``segmentation_filename`` present) and also re-check every returned row on our side, so a
search engine that interprets part of the query differently cannot widen the selection.

Presets:

* ``paper2023`` -- the selection of the crefDenoiser paper (IUCrJ 2024): released
  entries with half-maps and a mask, single-particle or subtomogram-averaging maps,
  resolution 1.22-9.9 Å, released on or before 2023-06-30.
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
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cref_bench.errors import InputError, UnavailableError
from dataset_builder.emdb.layout import normalize_id

logger = logging.getLogger(__name__)

DEFAULT_API = "https://www.ebi.ac.uk/emdb/api"
SEARCH_FIELDS = ("emdb_id", "resolution", "structure_determination_method", "release_date",
                 "half_map_filename", "segmentation_filename", "map_pixel_spacing_x", "fitted_pdbs")
_BASE_QUERY = ('current_status:"REL" AND half_map_filename:[* TO *] '
               'AND segmentation_filename:[* TO *]')
_LIST_SEPARATORS = re.compile(r"[\s,;]+")


class ListingError(UnavailableError):
    """The search API could not be reached or answered something that is not the expected CSV."""


@dataclass(frozen=True)
class ListedEntry:
    """One entry as the search API describes it.

    Attributes:
        emdb_id: the accession, ``'EMD-1234'``.
        resolution: the author's resolution in Å, or ``None`` when not given.
        release_date: the release date, or ``None`` when not given.
        method: the structure determination method (``'singleParticle'``, ...), or ``None``.
        fitted_pdbs: PDB ids of the fitted models, lower case.
        half_map_files: the half-map file names, or ``None`` when the column was not given.
        mask_files: the mask (segmentation) file names, or ``None`` when the column was not given.
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


@dataclass(frozen=True)
class Preset:
    """A named selection of EMDB entries with two half-maps and a mask.

    Attributes:
        name: the preset's name on the command line.
        description: one line for ``--help``.
        methods: accepted structure determination methods; empty accepts any.
        resolution: inclusive (min, max) resolution in Å, or ``None`` for any.
        released_before: only entries released strictly before this date, or ``None``.
    """

    name: str
    description: str
    methods: tuple[str, ...] = ()
    resolution: tuple[float, float] | None = None
    released_before: date | None = None

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

    def accepts(self, entry: ListedEntry, released_before: date | None = None) -> bool:
        """Whether a listed entry meets every condition of the preset (unknown values fail a
        condition).

        Entries listing fewer than two half-maps or no mask are refused too (when the listing
        gave those columns at all).
        """
        if entry.half_map_files is not None and len(entry.half_map_files) < 2:
            return False
        if entry.mask_files is not None and not entry.mask_files:
            return False
        if self.methods and entry.method not in self.methods:
            return False
        if self.resolution is not None:
            low, high = self.resolution
            if entry.resolution is None or not low <= entry.resolution <= high:
                return False
        cutoff = self.cutoff(released_before)
        if cutoff is not None and (entry.release_date is None or entry.release_date >= cutoff):
            return False
        return True


PRESETS: dict[str, Preset] = {
    "paper2023": Preset(
        name="paper2023",
        description="the crefDenoiser paper's selection: single-particle and subtomogram maps "
                    "with half-maps and a mask, 1.22-9.9 Å, released up to 2023-06-30",
        methods=("singleParticle", "subtomogramAveraging"),
        resolution=(1.22, 9.9),
        released_before=date(2023, 7, 1)),
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
    return None if column not in row else _split_list(row[column])


def parse_search_csv(text: str, source: str = "<search>") -> list[ListedEntry]:
    """Parse the CSV answer of the search API into :class:`ListedEntry` records.

    Columns other than those of :data:`SEARCH_FIELDS` are ignored; missing optional
    columns give ``None``. Multi-valued columns (``fitted_pdbs``, ``half_map_filename``,
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
            release_date=_parse_date(row.get("release_date") or "", emdb_id),
            method=(row.get("structure_determination_method") or "").strip() or None,
            fitted_pdbs=pdbs,
            half_map_files=_optional_list(row, "half_map_filename"),
            mask_files=_optional_list(row, "segmentation_filename"),
            pixel_spacing=_parse_float(row.get("map_pixel_spacing_x") or "", emdb_id,
                                       "pixel spacing")))
    return entries


def _get_text(url: str, timeout: float) -> str:
    request = urllib.request.Request(url, headers={"Accept": "text/csv",
                                                   "User-Agent": "cref-bench"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        raise ListingError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ListingError(f"{url}: {exc}") from None


def search(query: str, *, api: str = DEFAULT_API, fields: tuple[str, ...] = SEARCH_FIELDS,
           rows: int = 1000, max_pages: int = 10_000, timeout: float = 60.0) -> list[ListedEntry]:
    """Run a search, page by page, and return every entry found.

    Pages are requested until one comes back with fewer than ``rows`` entries.

    Args:
        query: a Solr query in EMDB's search syntax (quoted into the URL path here).
        api: the API base URL (default: EMDB's, at the EBI).
        fields: the columns to ask for; must include ``emdb_id``.
        rows: entries per page.
        max_pages: a bound on the number of pages, against a server that never ends.
        timeout: seconds to wait for each page.

    Returns:
        The entries, without duplicates, in the order the server gave them.

    Raises:
        ListingError: a page could not be fetched or parsed, the server ignores paging
            (a full page with no new entry), or ``max_pages`` was reached.
        ValueError: ``rows`` is not positive.
    """
    if rows < 1:
        raise ValueError(f"rows must be positive, got {rows}")
    base = f"{api.rstrip('/')}/search/{urllib.parse.quote(query, safe='')}"
    seen: dict[str, ListedEntry] = {}
    for page in range(1, max_pages + 1):
        params = urllib.parse.urlencode({"rows": rows, "page": page, "fl": ",".join(fields),
                                         "wt": "csv"})
        url = f"{base}?{params}"
        batch = parse_search_csv(_get_text(url, timeout), source=url)
        new = [e for e in batch if e.emdb_id not in seen]
        seen.update((e.emdb_id, e) for e in new)
        if len(batch) < rows:
            return list(seen.values())
        if not new:
            raise ListingError(url, "a full page with no new entry; the server seems to ignore "
                                    "'page'")
    raise ListingError(f"{base}: still more results after {max_pages} pages of {rows}")


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


def select_entries(preset: str | None = None, *, id_file: str | Path | None = None,
                   released_before: date | None = None, api: str = DEFAULT_API,
                   rows: int = 1000, timeout: float = 60.0) -> list[ListedEntry]:
    """The entries to build: those of a preset (searched and re-checked) or of an ID-list file.

    Args:
        preset: a name from :data:`PRESETS`.
        id_file: a file read by :func:`read_id_list`; its entries carry only their id.
        released_before: with a preset, keep only entries released strictly before this date.
        api, rows, timeout: passed to :func:`search`.

    Returns:
        The selected entries (the count is logged).

    Raises:
        InputError: not exactly one of ``preset`` and ``id_file`` given, an unknown preset,
            or ``released_before`` combined with an ID list (the list is taken as given).
        ListingError: the search failed.
    """
    if (preset is None) == (id_file is None):
        raise InputError("give exactly one of a preset and an ID-list file")
    if id_file is not None:
        if released_before is not None:
            raise InputError("--released-before applies to presets; an ID list is taken as "
                             "given")
        entries = [ListedEntry(emdb_id) for emdb_id in read_id_list(id_file)]
        logger.info("%s: %d entries listed", id_file, len(entries))
        return entries
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    chosen = PRESETS[preset]
    found = search(chosen.query(released_before), api=api, rows=rows, timeout=timeout)
    entries = [e for e in found if chosen.accepts(e, released_before)]
    logger.info("preset %s: %d entries found (%d returned by the search)", preset, len(entries),
                len(found))
    return entries
