"""A stand-in for EMDB, for tests: the search API and an archive mirror on 127.0.0.1.

:class:`EmdbStandIn` is a threaded HTTP server on a free local port serving

* ``/emdb/api/search/<query>?rows=&page=&fl=&wt=csv`` -- the rows of an in-memory index
  that match the query, as CSV, paged like EMDB's API; optionally capped at ``cap`` rows a
  response (as EMDB is reported to cap some answers) or ignoring ``page``. The query
  language understood is the part of Solr's that the listing sends: clauses joined by ``AND``, each
  ``field:value``, ``field:"value"``, ``field:(a OR b)`` or ``field:[low TO high]`` (``*``
  for open ends, ``}`` / ``{`` for exclusive ones); anything else is answered with 400.
* ``/pub/databases/emdb/structures/<path>`` -- files of a directory laid out like the EMDB
  archive, with ``Content-Length`` and single ``Range`` requests (206 / 416).

Faults are injected per path: fail with an HTTP status N times, cut the connection after K
bytes, answer 404, declare a wrong size, ignore ``Range``. Every request is logged.

:func:`make_entry_files` writes one entry (gzip'd MRC half-maps, mask, primary map and a
v3.0 XML header from :func:`header_xml`) from arbitrary arrays and returns the search-index
row, so that tests of the builder can serve phantoms as if they came from EMDB. Like the
real archive (see the headers in ``tests/data/emdb``), the header is ``emd-N.xml`` only,
masks are listed without ``<mask_details>`` and ``size_kbytes`` is the uncompressed size
in kB; a half-map pair can be listed second first.

Use as a context manager or through the ``emdb_server`` pytest fixture
(registered in ``tests/conftest.py``).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

import mrcfile
import numpy as np
import pytest

API_PREFIX = "/emdb/api"
ARCHIVE_PREFIX = "/pub/databases/emdb/structures"


# ----------------------------------------------------------------------------- entry files

def _map_type_xml(tag: str, file: str, dimensions, origin, pixel_spacing,
                  axis_order=("X", "Y", "Z"), contour_level: float | None = None,
                  size_kbytes: int = 1) -> str:
    """A ``map_type`` element of the v3.0 schema (used by the map, half-maps and mask details)."""
    col, row, sec = dimensions
    o_col, o_row, o_sec = origin
    x, y, z = pixel_spacing
    fast, medium, slow = axis_order
    contour = ""
    if contour_level is not None:
        contour = (f"<contour_list><contour primary=\"true\"><level>{contour_level:g}</level>"
                   f"<source>AUTHOR</source></contour></contour_list>")
    return f"""<{tag} format="CCP4" size_kbytes="{size_kbytes}">
      <file>{escape(file)}</file>
      <symmetry><space_group>1</space_group></symmetry>
      <data_type>IMAGE STORED AS FLOATING POINT NUMBER (4 BYTES)</data_type>
      <dimensions><col>{col}</col><row>{row}</row><sec>{sec}</sec></dimensions>
      <origin><col>{o_col}</col><row>{o_row}</row><sec>{o_sec}</sec></origin>
      <spacing><x>{col}</x><y>{row}</y><z>{sec}</z></spacing>
      <cell>
        <a units="Å">{col * x:.3f}</a><b units="Å">{row * y:.3f}</b><c units="Å">{sec * z:.3f}</c>
        <alpha units="deg">90.0</alpha><beta units="deg">90.0</beta><gamma units="deg">90.0</gamma>
      </cell>
      <axis_order><fast>{fast}</fast><medium>{medium}</medium><slow>{slow}</slow></axis_order>
      <pixel_spacing>
        <x units="Å">{x:g}</x><y units="Å">{y:g}</y><z units="Å">{z:g}</z>
      </pixel_spacing>
      {contour}
    </{tag}>"""


def header_xml(emdb_id: str, *, map_file: str, half_map_files: tuple[str, ...],
               mask_files: tuple[str, ...], dimensions: tuple[int, int, int],
               pixel_spacing: tuple[float, float, float], origin: tuple[int, int, int] = (0, 0, 0),
               axis_order: tuple[str, str, str] = ("X", "Y", "Z"),
               resolution: float | None = 3.0, method: str = "singleParticle",
               release_date: date | None = date(2022, 1, 5), fitted_pdbs: tuple[str, ...] = (),
               contour_level: float | None = 0.5, title: str = "Stand-in entry",
               sizes_kbytes: dict[str, int] | None = None, mask_details: bool = False) -> str:
    """A v3.0 EMDB header (``emd-N.xml``) with the given files, geometry and metadata.

    ``dimensions`` and ``origin`` are along the file's (fast, medium, slow) axes, ``pixel_spacing``
    along (x, y, z); half-maps (and masks, with ``mask_details``) are described with the same
    geometry as the map; masks are otherwise listed by file name only, as in most real
    entries. ``sizes_kbytes`` maps file names to the sizes stated in the header (default 1 kB).
    """
    sizes = sizes_kbytes or {}
    processing = ("subtomogram_averaging_processing" if method == "subtomogramAveraging"
                  else "singleparticle_processing")
    key_dates = "<deposition>2021-11-02</deposition>"
    if release_date is not None:
        key_dates += (f"<header_release>{release_date.isoformat()}</header_release>"
                      f"<map_release>{release_date.isoformat()}</map_release>")
    pdbs = "".join(f"<pdb_reference><pdb_id>{p}</pdb_id><relationship>"
                   f"<in_frame>FULLOVERLAP</in_frame></relationship></pdb_reference>"
                   for p in fitted_pdbs)
    pdb_list = f"<pdb_list>{pdbs}</pdb_list>" if pdbs else ""
    res = ""
    if resolution is not None:
        res = (f'<resolution units="Å" res_type="BY AUTHOR">{resolution:g}</resolution>'
               f"<resolution_method>FSC 0.143 CUT-OFF</resolution_method>")
    geometry = {"dimensions": dimensions, "origin": origin, "pixel_spacing": pixel_spacing,
                "axis_order": axis_order}
    halves = "".join(_map_type_xml("half_map", f, **geometry, contour_level=contour_level,
                                   size_kbytes=sizes.get(f, 1)) for f in half_map_files)
    masks = "".join(f"<segmentation><file>{escape(f)}</file>"
                    + (_map_type_xml('mask_details', f, **geometry, size_kbytes=sizes.get(f, 1))
                       if mask_details else "")
                    + "</segmentation>" for f in mask_files)
    primary = _map_type_xml("map", map_file, **geometry, contour_level=contour_level,
                            size_kbytes=sizes.get(map_file, 1))
    interpretation = ""
    if halves or masks:
        interpretation = ("<interpretation>"
                          + (f"<segmentation_list>{masks}</segmentation_list>" if masks else "")
                          + (f"<half_map_list>{halves}</half_map_list>" if halves else "")
                          + "</interpretation>")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<emd emdb_id="{emdb_id}" version="3.0.2.9">
  <admin>
    <current_status><code>REL</code><processing_site>PDBe</processing_site></current_status>
    <sites><deposition>PDBe</deposition><last_processing>PDBe</last_processing></sites>
    <key_dates>{key_dates}<update>2022-02-01</update></key_dates>
    <title>{escape(title)}</title>
    <authors_list><author>Stand-in A</author></authors_list>
  </admin>
  <crossreferences>
    <citation_list><primary_citation><journal_citation published="false">
      <author order="1">Stand-in A</author><title>{escape(title)}</title>
      <journal_abbreviation>To Be Published</journal_abbreviation>
    </journal_citation></primary_citation></citation_list>
    {pdb_list}
  </crossreferences>
  <sample><name>{escape(title)}</name>
    <supramolecule_list>
      <complex_supramolecule supramolecule_id="1"><name>phantom</name></complex_supramolecule>
    </supramolecule_list>
  </sample>
  <structure_determination_list>
    <structure_determination structure_determination_id="1">
      <method>{method}</method>
      <aggregation_state>particle</aggregation_state>
      <specimen_preparation_list>
        <single_particle_preparation preparation_id="1"/>
      </specimen_preparation_list>
      <microscopy_list><single_particle_microscopy microscopy_id="1">
        <microscope>FEI TITAN KRIOS</microscope>
      </single_particle_microscopy></microscopy_list>
      <{processing} image_processing_id="1">
        <final_reconstruction>{res}</final_reconstruction>
      </{processing}>
    </structure_determination>
  </structure_determination_list>
  {primary}
  {interpretation}
</emd>
"""


@dataclass
class StandInEntry:
    """What :func:`make_entry_files` wrote.

    Attributes:
        emdb_id: the accession.
        header: the header file; ``half_maps``, ``masks``, ``map``: the data files.
        index_row: the entry's row for :meth:`EmdbStandIn.add_rows` (field name to text).
    """

    emdb_id: str
    header: Path
    half_maps: tuple[Path, Path]
    masks: tuple[Path, ...]
    map: Path | None
    index_row: dict[str, str]

    def relpath(self, path: Path) -> str:
        """The archive path of one of the files, e.g. ``'EMD-1/other/emd_1_half_map_1.map.gz'``."""
        return path.relative_to(self.header.parents[2]).as_posix()


def uncompressed_kbytes(path: Path) -> int:
    """``size_kbytes`` as EMDB states it: the uncompressed map file's size in kB of 1000 bytes
    (EMD-0001: 256³ float voxels and the 1024-byte header, 67,109,888 bytes, give 67109)."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            size = sum(len(chunk) for chunk in iter(lambda: handle.read(1 << 20), b""))
    else:
        size = path.stat().st_size
    return size // 1000


def _write_mrc(path: Path, data: np.ndarray, voxel_xyz: tuple[float, float, float],
               start_xyz: tuple[int, int, int], gzip: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True, compression="gzip" if gzip else None) as mrc:
        mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
        mrc.voxel_size = voxel_xyz
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = start_xyz


def make_entry_files(root: str | Path, emdb_id: str, half1: np.ndarray, half2: np.ndarray,
                     mask: np.ndarray | None = None,
                     voxel: float | tuple[float, float, float] = 1.0, *,
                     start: tuple[int, int, int] = (0, 0, 0), resolution: float | None = 3.0,
                     method: str = "singleParticle", release_date: date | None = date(2022, 1, 5),
                     fitted_pdbs: tuple[str, ...] = (), contour_level: float | None = 0.5,
                     write_map: bool = True, title: str = "Stand-in entry",
                     header_names: tuple[str, ...] = ("emd-{n}.xml",),
                     halves_listed_reversed: bool = False,
                     mask_details: bool = False) -> StandInEntry:
    """Write one entry in EMDB's layout under ``root`` and return its files and index row.

    Args:
        root: the archive root (the folder the stand-in serves).
        emdb_id: the accession, ``'EMD-1234'``.
        half1, half2: the half-maps, 3D arrays in (z, y, x) order, written as gzip'd MRC.
        mask: the mask (same shape), written as ``masks/emd_N_msk_1.map``; ``None`` writes no
            mask and lists none in the header.
        voxel: Å per voxel, a scalar or (z, y, x) as in :class:`cref_bench.maps.volume.Volume`.
        start: the index of the first voxel along (x, y, z) (MRC ``nxstart``, ``nystart``,
            ``nzstart``).
        resolution, method, release_date, fitted_pdbs, contour_level, title: header metadata.
        write_map: also write the primary map (the average of the halves).
        header_names: the header's file names (``{n}``: the digits of the id); the archive
            has ``emd-N.xml`` and may have the older ``emd-N-v30.xml`` too.
        halves_listed_reversed: list ``half_map_2`` before ``half_map_1`` in the header.
        mask_details: describe the mask's geometry in ``<mask_details>``.

    Returns:
        The :class:`StandInEntry`.
    """
    root = Path(root)
    number = emdb_id.split("-")[1]
    folder = root / emdb_id
    voxel_zyx = tuple(float(v) for v in np.broadcast_to(np.asarray(voxel, dtype=float), (3,)))
    voxel_xyz = voxel_zyx[::-1]
    if np.shape(half1) != np.shape(half2) or (mask is not None
                                              and np.shape(mask) != np.shape(half1)):
        raise ValueError(f"{emdb_id}: half-maps and mask must share one shape")
    halves = (folder / "other" / f"emd_{number}_half_map_1.map.gz",
              folder / "other" / f"emd_{number}_half_map_2.map.gz")
    for path, data in zip(halves, (half1, half2)):
        _write_mrc(path, data, voxel_xyz, start, gzip=True)
    masks: tuple[Path, ...] = ()
    if mask is not None:
        masks = (folder / "masks" / f"emd_{number}_msk_1.map",)
        _write_mrc(masks[0], mask, voxel_xyz, start, gzip=False)
    map_path = folder / "map" / f"emd_{number}.map.gz"
    if write_map:
        average = (np.asarray(half1, dtype=np.float32) + np.asarray(half2, dtype=np.float32)) * 0.5
        _write_mrc(map_path, average, voxel_xyz, start, gzip=True)
    nz, ny, nx = np.shape(half1)
    listed_halves = tuple(p.name for p in halves)
    if halves_listed_reversed:
        listed_halves = listed_halves[::-1]
    text = header_xml(
        emdb_id, map_file=map_path.name, half_map_files=listed_halves,
        mask_files=tuple(p.name for p in masks), dimensions=(nx, ny, nz), pixel_spacing=voxel_xyz,
        origin=start, resolution=resolution, method=method, release_date=release_date,
        fitted_pdbs=fitted_pdbs, contour_level=contour_level, title=title,
        sizes_kbytes={p.name: uncompressed_kbytes(p) for p in (*halves, *masks, map_path)
                      if p.exists()}, mask_details=mask_details)
    written = [folder / "header" / name.format(n=number) for name in header_names]
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    header = written[0]
    row = {
        "emdb_id": emdb_id,
        "current_status": "REL",
        "resolution": "" if resolution is None else f"{resolution:g}",
        "structure_determination_method": method,
        "release_date": "" if release_date is None else f"{release_date.isoformat()}T00:00:00Z",
        "fitted_pdbs": ",".join(fitted_pdbs),
        "half_map_filename": ",".join(p.name for p in halves),
        "segmentation_filename": ",".join(p.name for p in masks),
    }
    return StandInEntry(emdb_id, header, halves, masks, map_path if write_map else None, row)


# ----------------------------------------------------------------------------- query language

class QuerySyntaxError(ValueError):
    """A query outside the small part of Solr's syntax the stand-in understands."""


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split at ``separator`` outside quotes, brackets and parentheses."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        char = text[i]
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "([{":
            depth += 1
        elif not quoted and char in ")]}":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            i += len(separator)
            start = i
            continue
        i += 1
    if quoted or depth:
        raise QuerySyntaxError(f"unbalanced quotes or brackets in {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts]


_CLAUSE = re.compile(r"^(\w+):(.+)$")
_RANGE = re.compile(r"^([\[{])\s*(\S+)\s+TO\s+(\S+)\s*([\]}])$")


def _compare(a: str, b: str) -> int:
    try:
        x, y = float(a), float(b)
    except ValueError:
        x, y = a, b
    return (x > y) - (x < y)


def _clause_matches(clause: str, row: dict[str, str]) -> bool:
    match = _CLAUSE.match(clause)
    if not match:
        raise QuerySyntaxError(f"not a field:value clause: {clause!r}")
    name, value = match.groups()
    actual = (row.get(name) or "").strip()
    ranged = _RANGE.match(value)
    if ranged:
        opening, low, high, closing = ranged.groups()
        if not actual:
            return False
        if low != "*":
            order = _compare(actual, low)
            if order < 0 or (order == 0 and opening == "{"):
                return False
        if high != "*":
            order = _compare(actual, high)
            if order > 0 or (order == 0 and closing == "}"):
                return False
        return True
    if value.startswith("(") and value.endswith(")"):
        options = [o.strip('"') for o in _split_top_level(value[1:-1], " OR ")]
    elif re.fullmatch(r'"[^"]*"|[\w.-]+', value):
        options = [value.strip('"')]
    else:
        raise QuerySyntaxError(f"unsupported value {value!r} in clause {clause!r}")
    return actual.lower() in {o.lower() for o in options}


def query_matches(query: str, row: dict[str, str]) -> bool:
    """Whether an index row matches a query (clauses joined by ``AND``).

    Raises:
        QuerySyntaxError: the query uses syntax the stand-in does not understand.
    """
    return all(_clause_matches(clause, row) for clause in _split_top_level(query, " AND "))


# ----------------------------------------------------------------------------- the server

@dataclass
class Fault:
    """A fault injected for one path. ``status``: answer with this status ``times`` times;
    ``cut_after``: send only this many body bytes, then close (``times`` times);
    ``extra_size``: declare the file this many bytes longer than it is (always);
    ``ignore_range``: answer 200 with the whole file even to a ``Range`` request (always)."""

    status: int | None = None
    cut_after: int | None = None
    times: int = 1
    extra_size: int = 0
    ignore_range: bool = False


@dataclass(frozen=True)
class LoggedRequest:
    """One request the stand-in received: its path, query string, ``Range`` header and answer."""

    path: str
    query: dict[str, list[str]]
    range: str | None
    status: int


class _Handler(BaseHTTPRequestHandler):
    timeout = 5

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.server.stand_in._handle(self)


@dataclass
class EmdbStandIn:
    """A stand-in EMDB (search API and archive mirror) on ``127.0.0.1`` at a free port.

    Args:
        root: the directory served as the archive (``EMD-N/...`` folders below it).
        honour_paging: when ``False`` the search ignores ``page`` (to test a client's guard).
        cap: the most rows one search answer holds, whatever ``rows`` asks (``None``: no cap).
        omit_columns: index fields the search filters on but never returns as CSV columns
            (as a live API may name a column otherwise than the query field).
    """

    root: Path
    honour_paging: bool = True
    cap: int | None = None
    omit_columns: tuple[str, ...] = ()
    index: list[dict[str, str]] = field(default_factory=list)
    requests: list[LoggedRequest] = field(default_factory=list)
    faults: dict[str, Fault] = field(default_factory=dict)

    def __post_init__(self):
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle
    def start(self) -> EmdbStandIn:
        """Start serving in a background thread; returns ``self``."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.stand_in = self
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, name="emdb-stand-in",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> EmdbStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """The search API base, to pass as ``api=``."""
        return self.url + API_PREFIX

    @property
    def mirror_url(self) -> str:
        """The archive base, to pass as a mirror."""
        return self.url + ARCHIVE_PREFIX

    # -- content and faults
    def add_rows(self, *rows: dict[str, str]) -> None:
        """Add rows (field name to text) to the search index."""
        self.index.extend(rows)

    def _key(self, target: str) -> str:
        return target if target.startswith("/") else f"{ARCHIVE_PREFIX}/{target}"

    def fail(self, target: str, times: int, status: int = 500) -> None:
        """Answer ``status`` to the next ``times`` requests for ``target`` (an archive path or a
        URL path)."""
        self.faults[self._key(target)] = Fault(status=status, times=times)

    def cut(self, target: str, after: int, times: int = 1) -> None:
        """Close the connection after ``after`` body bytes in the next ``times`` answers for
        ``target``."""
        self.faults[self._key(target)] = Fault(cut_after=after, times=times)

    def missing(self, target: str) -> None:
        """Answer 404 to every request for ``target``."""
        self.faults[self._key(target)] = Fault(status=404, times=10**9)

    def lie_size(self, target: str, extra: int) -> None:
        """Declare ``target`` ``extra`` bytes longer than it is, in every answer."""
        self.faults[self._key(target)] = Fault(extra_size=extra, times=0)

    def ignore_range(self, target: str) -> None:
        """Answer every request for ``target`` with 200 and the whole file, ``Range`` or not."""
        self.faults[self._key(target)] = Fault(ignore_range=True, times=0)

    def requests_for(self, target: str) -> list[LoggedRequest]:
        """The logged requests for one archive path or URL path."""
        key = self._key(target)
        return [r for r in self.requests if r.path == key]

    # -- request handling
    def _take_fault(self, path: str) -> tuple[Fault | None, bool]:
        """The fault for ``path`` and whether its counted part applies to this request."""
        with self._lock:
            fault = self.faults.get(path)
            if fault is None:
                return None, False
            active = fault.times > 0
            if active:
                fault.times -= 1
            return fault, active

    def _log(self, path, query, handler, status):
        with self._lock:
            self.requests.append(LoggedRequest(path, query, handler.headers.get("Range"), status))

    def _send(self, handler, status: int, body: bytes, content_type: str = "text/plain",
              headers: dict[str, str] | None = None, declared: int | None = None,
              cut_after: int | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body) if declared is None else declared))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        if cut_after is not None:
            handler.wfile.write(body[:cut_after])
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)
            handler.close_connection = True
            return
        handler.wfile.write(body)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        path = urllib.parse.unquote(parsed.path)
        query = urllib.parse.parse_qs(parsed.query)
        fault, active = self._take_fault(path)
        if fault is not None and active and fault.status is not None:
            self._log(path, query, handler, fault.status)
            return self._send(handler, fault.status, b"injected fault\n")
        if path.startswith(API_PREFIX + "/search/"):
            status, body = self._search(path[len(API_PREFIX + "/search/"):], query)
            self._log(path, query, handler, status)
            return self._send(handler, status, body, "text/csv" if status == 200 else "text/plain")
        if path.startswith(ARCHIVE_PREFIX + "/"):
            return self._file(handler, path, query, fault, active)
        self._log(path, query, handler, 404)
        self._send(handler, 404, b"not found\n")

    def _search(self, text: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
        if query.get("wt", ["json"])[0] != "csv":
            return 400, b"the stand-in answers wt=csv only\n"
        try:
            rows_per_page = int(query.get("rows", ["10"])[0])
            if self.cap is not None:
                rows_per_page = min(rows_per_page, self.cap)
            page = int(query.get("page", ["1"])[0]) if self.honour_paging else 1
            matched = [r for r in self.index if query_matches(text, r)]
        except (QuerySyntaxError, ValueError) as exc:
            return 400, f"{exc}\n".encode()
        matched.sort(key=lambda r: int(r["emdb_id"].split("-")[1]))
        fields = [f for f in query.get("fl", ["emdb_id"])[0].split(",")
                  if f not in self.omit_columns]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(fields)
        for row in matched[(page - 1) * rows_per_page: page * rows_per_page]:
            writer.writerow([row.get(f, "") for f in fields])
        return 200, out.getvalue().encode()

    def _file(self, handler, path: str, query, fault: Fault | None, active: bool) -> None:
        target = (self.root / path[len(ARCHIVE_PREFIX) + 1:]).resolve()
        if not target.is_file() or self.root.resolve() not in target.parents:
            self._log(path, query, handler, 404)
            return self._send(handler, 404, b"not found\n")
        data = target.read_bytes()
        size = len(data) + (fault.extra_size if fault else 0)
        cut_after = fault.cut_after if fault is not None and active else None
        requested = handler.headers.get("Range")
        if requested and not (fault and fault.ignore_range):
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", requested.strip())
            if not match:
                self._log(path, query, handler, 400)
                return self._send(handler, 400, b"unsupported Range\n")
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            if start >= size:
                self._log(path, query, handler, 416)
                return self._send(handler, 416, b"", headers={"Content-Range": f"bytes */{size}"})
            body = data[start:end + 1]
            self._log(path, query, handler, 206)
            return self._send(handler, 206, body, "application/octet-stream",
                              {"Content-Range": f"bytes {start}-{end}/{size}",
                               "Accept-Ranges": "bytes"},
                              declared=end + 1 - start, cut_after=cut_after)
        self._log(path, query, handler, 200)
        self._send(handler, 200, data, "application/octet-stream", {"Accept-Ranges": "bytes"},
                   declared=size, cut_after=cut_after)


def unused_url() -> str:
    """The URL of a local port nobody listens on (a mirror that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{ARCHIVE_PREFIX}"


@pytest.fixture
def emdb_server(tmp_path):
    """A running :class:`EmdbStandIn` serving ``tmp_path / 'archive'``; stopped after the test."""
    with EmdbStandIn(tmp_path / "archive") as server:
        yield server
