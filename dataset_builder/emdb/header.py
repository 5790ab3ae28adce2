"""Reading an entry's EMDB v3.0 XML header (``EMD-N/header/emd-N.xml``, or the older copy
``emd-N-v30.xml``), and choosing the files the corpus takes from it.

The header (schema ``emdb.xsd``, version 3.0) is the authority on an entry's files and
geometry. The parts read here::

    <emd emdb_id="EMD-N">
      <admin><key_dates><header_release>2020-10-07</header_release>...</key_dates></admin>
      <crossreferences><pdb_list><pdb_reference><pdb_id>7a4m</pdb_id>...</pdb_list></crossreferences>
      <structure_determination_list><structure_determination>
        <method>singleParticle</method>
        ...<final_reconstruction><resolution units="Å" res_type="BY AUTHOR">1.22</resolution>
      </structure_determination></structure_determination_list>
      <map format="CCP4" size_kbytes="...">            (map_type: also used by half-maps and masks)
        <file>emd_N.map.gz</file>
        <dimensions><col/><row/><sec/></dimensions>     (voxels along fast, medium, slow axes)
        <origin><col/><row/><sec/></origin>             (first voxel index along each of them)
        <axis_order><fast>X</fast><medium>Y</medium><slow>Z</slow></axis_order>
        <pixel_spacing><x units="Å"/><y/><z/></pixel_spacing>
        <contour_list><contour primary="true"><level/></contour></contour_list>
      </map>
      <interpretation>
        <segmentation_list><segmentation><file>emd_N_msk_1.map</file>
          <mask_details>(map_type, often absent)</mask_details></segmentation></segmentation_list>
        <half_map_list><half_map>(map_type)</half_map>...</half_map_list>
      </interpretation>
    </emd>

File names are taken from the header, never guessed; their folders in the archive are
fixed: the primary map in ``map/``, half-maps in ``other/``, masks in ``masks/``. A
segmentation whose ``<file>`` is missing is named by its ``<mask_details><file>`` (as in
EMD-0001). :func:`choose_mask` picks the primary mask (``msk_1``), :func:`choose_half_maps`
the pair in the order of their numbers.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cref_bench.errors import InputError
from dataset_builder.emdb.layout import (
    HALF_MAP_FOLDER,
    MAP_FOLDER,
    MASK_FOLDER,
    check_file_name,
    entry_relpath,
    normalize_id,
)


class HeaderError(InputError):
    """An EMDB header that cannot be used: malformed XML, a missing field, or no half-maps or
    mask."""


@dataclass(frozen=True)
class MapInfo:
    """One map file as the header describes it.

    Attributes:
        file: the file name, e.g. ``'emd_1234_half_map_1.map.gz'``.
        relpath: the path in the archive, e.g. ``'EMD-1234/other/emd_1234_half_map_1.map.gz'``.
        dimensions: voxels along the (fast, medium, slow) file axes, or ``None`` if not given.
        origin: index of the first voxel along (fast, medium, slow), or ``None``.
        axis_order: the space axis of the (fast, medium, slow) file axes, e.g. ``('X', 'Y', 'Z')``.
        pixel_spacing: Å per voxel along space (x, y, z), or ``None``.
        contour_level: the recommended contour level (the primary one), or ``None``.
        size_kbytes: ``size_kbytes`` as EMDB defines it: the size of the *uncompressed* map
            file, its 1024-byte header included, in kilobytes (1000 bytes in recent headers,
            e.g. 67109 for a 256³ float map; 1024 bytes in some older ones), or ``None``. It
            is not the size of the ``.map.gz`` download.
    """

    file: str
    relpath: str
    dimensions: tuple[int, int, int] | None = None
    origin: tuple[int, int, int] | None = None
    axis_order: tuple[str, str, str] | None = None
    pixel_spacing: tuple[float, float, float] | None = None
    contour_level: float | None = None
    size_kbytes: int | None = None


@dataclass(frozen=True)
class EntryHeader:
    """What the builder needs from an entry's header.

    Attributes:
        emdb_id: the accession, ``'EMD-1234'``.
        method: the structure determination method (``'singleParticle'``, ...).
        resolution: the author's resolution in Å, or ``None``.
        release_date: the header release date, or ``None`` (not yet released).
        fitted_pdbs: PDB ids of fitted models, lower case, in header order.
        map: the primary map (geometry always present).
        half_maps: the half-maps, in header order (two or more when required).
        masks: the masks (segmentation files), in header order.
    """

    emdb_id: str
    method: str | None
    resolution: float | None
    release_date: date | None
    fitted_pdbs: tuple[str, ...]
    map: MapInfo
    half_maps: tuple[MapInfo, ...]
    masks: tuple[MapInfo, ...]

    @property
    def pixel_spacing(self) -> tuple[float, float, float]:
        """Å per voxel of the primary map along (x, y, z)."""
        return self.map.pixel_spacing

    @property
    def dimensions(self) -> tuple[int, int, int]:
        """Voxels of the primary map along the (fast, medium, slow) file axes."""
        return self.map.dimensions

    @property
    def origin(self) -> tuple[int, int, int]:
        """First voxel index of the primary map along (fast, medium, slow)."""
        return self.map.origin

    @property
    def axis_order(self) -> tuple[str, str, str]:
        """Space axes of the primary map's (fast, medium, slow) file axes."""
        return self.map.axis_order

    @property
    def contour_level(self) -> float | None:
        """The primary map's recommended contour level."""
        return self.map.contour_level

    @property
    def half_map_files(self) -> tuple[str, ...]:
        """File names of the half-maps."""
        return tuple(m.file for m in self.half_maps)

    @property
    def mask_files(self) -> tuple[str, ...]:
        """File names of the masks."""
        return tuple(m.file for m in self.masks)


class _Reader:
    """Typed access to the children of one XML element, with errors that name the header."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, fault: str) -> HeaderError:
        return HeaderError(self.source, fault)

    def text(self, element: ET.Element | None, path: str) -> str | None:
        found = element.find(path) if element is not None else None
        if found is None or found.text is None or not found.text.strip():
            return None
        return found.text.strip()

    def number(self, element: ET.Element | None, path: str, kind: type, where: str):
        value = self.text(element, path)
        if value is None:
            return None
        try:
            return kind(value)
        except ValueError:
            raise self.fail(f"{where}/{path}: {value!r} is not a number") from None

    def triple(self, element: ET.Element | None, path: str, names: tuple[str, str, str], kind: type,
               where: str):
        group = element.find(path) if element is not None else None
        if group is None:
            return None
        values = [self.number(group, name, kind, f"{where}/{path}") for name in names]
        if any(v is None for v in values):
            raise self.fail(f"{where}/{path}: needs all of {', '.join(names)}")
        return tuple(values)

    def iso_date(self, element: ET.Element | None, path: str) -> date | None:
        value = self.text(element, path)
        if value is None:
            return None
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            raise self.fail(f"{path}: {value!r} is not a date") from None


def _contour_level(reader: _Reader, element: ET.Element, where: str) -> float | None:
    contours = element.findall("contour_list/contour")
    primary = [c for c in contours if (c.get("primary") or "").strip().lower() == "true"]
    for contour in primary + contours:
        level = reader.number(contour, "level", float, f"{where}/contour_list/contour")
        if level is not None:
            return level
    return None


def _map_info(reader: _Reader, element: ET.Element, emdb_id: str, folder: str, where: str,
              geometry: ET.Element | None) -> MapInfo:
    """The file named by ``element/file`` (else ``geometry/file``), with the map geometry
    found in ``geometry`` (if any)."""
    name = reader.text(element, "file")
    if name is None and geometry is not None and geometry is not element:
        name = reader.text(geometry, "file")
    if name is None:
        raise reader.fail(f"{where}: no <file> name")
    try:
        check_file_name(name, where)
    except ValueError as exc:
        raise reader.fail(str(exc)) from None
    size = geometry.get("size_kbytes") if geometry is not None else None
    axis = None
    if geometry is not None and geometry.find("axis_order") is not None:
        axis = tuple(reader.text(geometry, f"axis_order/{k}") or ""
                     for k in ("fast", "medium", "slow"))
        if sorted(a.upper() for a in axis) != ["X", "Y", "Z"]:
            raise reader.fail(f"{where}/axis_order: {axis} is not a permutation of X, Y, Z")
        axis = tuple(a.upper() for a in axis)
    return MapInfo(
        file=name,
        relpath=entry_relpath(emdb_id, folder, name),
        dimensions=reader.triple(geometry, "dimensions", ("col", "row", "sec"), int, where),
        origin=reader.triple(geometry, "origin", ("col", "row", "sec"), int, where),
        axis_order=axis,
        pixel_spacing=reader.triple(geometry, "pixel_spacing", ("x", "y", "z"), float, where),
        contour_level=_contour_level(reader, geometry, where) if geometry is not None else None,
        size_kbytes=int(size) if size and size.strip().isdigit() else None)


def parse_header(data: bytes | str, source: str = "<header>", *, emdb_id: str | None = None,
                 require_half_maps: bool = True, require_mask: bool = True) -> EntryHeader:
    """Parse the text of a v3.0 header.

    Args:
        data: the XML document.
        source: where it came from (a path or URL), named in every error.
        emdb_id: the accession the header should describe; named in errors even when the XML
            cannot be parsed, and checked against the header's own.
        require_half_maps: raise unless the header lists at least two half-maps.
        require_mask: raise unless the header lists at least one mask.

    Returns:
        The :class:`EntryHeader`.

    Raises:
        HeaderError: the XML is malformed or not a v3.0 header, it describes another entry
            than ``emdb_id``, the primary map lacks its file name, dimensions, origin, axis
            order or pixel spacing, a value is not a number or date, a file name is unsafe,
            or required half-maps / mask are missing. The message names the entry and the header.
            (A segmentation that names no file at all is skipped.)
        ValueError: ``emdb_id`` is not an accession.
    """
    expected = normalize_id(emdb_id) if emdb_id is not None else None
    reader = _Reader(f"{expected} header {source}" if expected else source)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise reader.fail(f"malformed XML: {exc}") from None
    if root.tag != "emd":
        raise reader.fail(f"not an EMDB v3.0 header (root element <{root.tag}>, expected <emd>)")
    try:
        found_id = normalize_id(root.get("emdb_id") or "")
    except ValueError as exc:
        raise reader.fail(f"<emd emdb_id>: {exc}") from None
    if expected is not None and found_id != expected:
        raise reader.fail(f"the header describes {found_id}, not {expected}")
    emdb_id = found_id
    reader.source = f"{emdb_id} header {source}"

    map_element = root.find("map")
    if map_element is None:
        raise reader.fail("no <map> section")
    primary = _map_info(reader, map_element, emdb_id, MAP_FOLDER, "map", map_element)
    for field in ("dimensions", "origin", "axis_order", "pixel_spacing"):
        if getattr(primary, field) is None:
            raise reader.fail(f"map: no <{field}>")

    listed_halves = root.findall("interpretation/half_map_list/half_map")
    half_maps = tuple(_map_info(reader, h, emdb_id, HALF_MAP_FOLDER, f"half_map[{i}]", h)
                      for i, h in enumerate(listed_halves, 1))
    listed_masks = root.findall("interpretation/segmentation_list/segmentation")
    masks = tuple(_map_info(reader, s, emdb_id, MASK_FOLDER, f"segmentation[{i}]",
                            s.find("mask_details"))
                  for i, s in enumerate(listed_masks, 1)
                  if reader.text(s, "file") or reader.text(s, "mask_details/file"))
    if require_half_maps and len(half_maps) < 2:
        raise reader.fail(f"lists {len(half_maps)} half-map(s); a half-map pair is needed")
    if require_mask and not masks:
        raise reader.fail("lists no mask (interpretation/segmentation_list is empty)")

    determination = root.find("structure_determination_list/structure_determination")
    resolution = None
    if determination is not None:
        resolution = reader.number(determination, ".//final_reconstruction/resolution", float,
                                   "structure_determination")
    pdbs = tuple(p.text.strip().lower()
                 for p in root.findall("crossreferences/pdb_list/pdb_reference/pdb_id")
                 if p.text and p.text.strip())
    return EntryHeader(
        emdb_id=emdb_id,
        method=reader.text(determination, "method"),
        resolution=resolution,
        release_date=reader.iso_date(root, "admin/key_dates/header_release"),
        fitted_pdbs=pdbs,
        map=primary,
        half_maps=half_maps,
        masks=masks)


def read_header(path: str | Path, **options) -> EntryHeader:
    """Read and parse a header file; ``options`` are those of :func:`parse_header`.

    Raises:
        HeaderError: see :func:`parse_header`.
        OSError: the file cannot be read.
    """
    return parse_header(Path(path).read_bytes(), source=str(path), **options)


_FILE_NUMBER = re.compile(r"_(?:msk|half_map)_(\d+)\.", re.IGNORECASE)


def _file_number(info: MapInfo) -> int | None:
    match = _FILE_NUMBER.search(info.file)
    return int(match.group(1)) if match else None


def _by_number(files: tuple[MapInfo, ...]) -> list[MapInfo]:
    """The files ordered by the number in their names (``_msk_2``, ``_half_map_1``); files
    without one come after, in header order (the sort is stable)."""
    return sorted(files, key=lambda info: (_file_number(info) is None, _file_number(info) or 0))


def choose_mask(header: EntryHeader) -> MapInfo | None:
    """The entry's primary mask: ``emd_N_msk_1.map`` where the header lists it, else the
    lowest-numbered mask listed, else the first one listed; ``None`` without masks.

    The header's order is not the archive's numbering (EMD-1001 lists ``msk_26`` first);
    ``msk_1`` is the mask that download scripts and EMDA take.

    Args:
        header: the parsed header.

    Returns:
        The mask's :class:`MapInfo`, or ``None``.
    """
    return _by_number(header.masks)[0] if header.masks else None


def choose_half_maps(header: EntryHeader) -> tuple[MapInfo, ...]:
    """The half-map pair, in the order of their numbers (``half_map_1`` first, whatever the
    header's order), or fewer when the header lists fewer than two.

    Args:
        header: the parsed header.

    Returns:
        At most two :class:`MapInfo`.
    """
    return tuple(_by_number(header.half_maps)[:2])
