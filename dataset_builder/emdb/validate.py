"""Validating an EMDB entry's downloaded maps before they enter the corpus.

An entry is turned down with a :class:`Rejection` that carries a short reason code (one of
:data:`REASONS`) and the detail (the file and the fault). The checks, in order:

1. before any download (:func:`check_box`): the box the header states for each file the
   build downloads (the half-map pair and the primary mask, not the primary map) is at most
   ``max_box`` voxels along every axis;
2. reading (:func:`load_maps`, with :func:`read_entry_map`, strict): every file
   exists, is an MRC/CCP4 map, is not truncated, its gzip stream is whole, and its voxels
   are finite;
3. the two half-maps share shape, voxel size and origin;
4. each half-map agrees with what the XML header says of it: the same shape (the header's
   ``dimensions`` are along the file's fast/medium/slow axes, mapped to space through its
   ``axis_order``) and the same voxel size (``pixel_spacing``, to :data:`SPACING_RTOL`);
   a half-map the header gives no geometry for is held to the primary map's;
5. the box read is at most ``max_box``;
6. the mask lies on the half-maps' grid, and agrees with its own description in the
   header, if any.

Axis permutations and non-zero ``nxstart``/``nystart``/``nzstart`` are not faults:
:func:`~cref_bench.maps.io.read_map` returns every map in ``(z, y, x)`` order with its origin,
so they land with the right geometry. Origins are not compared with the XML (the file's
origin header, which wins when set, has no counterpart there); the half-maps' and the
mask's origins must agree to half a voxel (:meth:`cref_bench.maps.volume.Volume.check_same_grid`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cref_bench.errors import (
    BadMask,
    ConstantMap,
    CorruptGzip,
    GeometryMismatch,
    MapError,
    MapNotFound,
    NonFiniteMap,
    TruncatedMap,
)
from cref_bench.maps.io import read_map
from cref_bench.maps.volume import Volume
from dataset_builder.emdb.header import EntryHeader, MapInfo, choose_half_maps, choose_mask

SPACING_RTOL = 2e-3
"""Relative tolerance between a file's voxel size and the header's pixel spacing (the
header rounds to a few decimals)."""

REASONS: dict[str, str] = {
    "bad_header": "the XML header is malformed or lacks the map geometry",
    "no_half_maps": "the header lists fewer than two half-maps",
    "no_mask": "the header lists no mask",
    "missing_file": "a file the header names is on no mirror",
    "box_too_large": "the box exceeds --max-box voxels along an axis",
    "corrupt_gzip": "a gzip file is truncated or corrupt",
    "truncated_map": "a map file is shorter than its header needs",
    "unreadable_map": "a file is not a usable MRC/CCP4 map",
    "non_finite": "a map holds NaN or infinite voxels",
    "header_mismatch": "a file's shape or voxel size is at odds with the XML header",
    "half_map_mismatch": "the half-maps differ in shape, voxel size or origin",
    "mask_mismatch": "the mask is not on the half-maps' grid",
    "bad_mask": "the mask is empty or has values outside [0, 1]",
    "constant_map": "a half-map is constant",
    "download_failed": "a download failed (network); retried on the next run",
    "error": "an unexpected error; retried on the next run",
}
"""Reason codes recorded in the manifest, with their meaning."""

TRANSIENT_REASONS = frozenset({"download_failed", "error"})
"""Codes recorded with status ``failed``: the entry is tried again by the next run."""


class Rejection(Exception):
    """An entry turned down, with a reason code of :data:`REASONS` and the detail.

    Args:
        code: the reason code.
        detail: what is wrong, naming the file where there is one.

    Raises:
        ValueError: an unknown code.
    """

    def __init__(self, code: str, detail: str):
        if code not in REASONS:
            raise ValueError(f"unknown rejection reason {code!r}")
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")

    @property
    def permanent(self) -> bool:
        """Whether a rerun would reach the same verdict (the entry is then not tried again)."""
        return self.code not in TRANSIENT_REASONS


@dataclass(frozen=True)
class EntryMaps:
    """The validated maps of an entry, all on one grid, ``(z, y, x)``."""

    half1: Volume
    half2: Volume
    mask: Volume


def expected_shape(info: MapInfo) -> tuple[int, int, int] | None:
    """The ``(z, y, x)`` array shape the header states for a file, or ``None`` if it states none.

    Args:
        info: the file's description in the header.

    Returns:
        The shape, from ``dimensions`` (fast, medium, slow) and ``axis_order``
        (X, Y, Z assumed when absent).
    """
    if info.dimensions is None:
        return None
    order = info.axis_order or ("X", "Y", "Z")
    along = dict(zip(order, info.dimensions))
    return (along["Z"], along["Y"], along["X"])


def check_box(header: EntryHeader, max_box: int | None,
              files: Sequence[MapInfo] | None = None) -> None:
    """Refuse an entry whose header states a box larger than ``max_box`` for a file the build
    downloads (before downloading it).

    Only the files fetched count: the primary map, which the build does not download, may be
    larger than its half-maps (a wider box, finer sampling) without being a reason to refuse.
    A file the header gives no dimensions for is not judged here; its box is checked once read.

    Args:
        header: the entry's header.
        max_box: the largest box edge allowed, voxels; ``None`` for no limit.
        files: the files that will be downloaded; default: the half-map pair
            (:func:`~dataset_builder.emdb.header.choose_half_maps`) and the primary mask
            (:func:`~dataset_builder.emdb.header.choose_mask`).

    Raises:
        Rejection: ``box_too_large``.
    """
    if max_box is None:
        return
    if files is None:
        mask = choose_mask(header)
        files = (*choose_half_maps(header), *((mask,) if mask is not None else ()))
    for info in files:
        shape = expected_shape(info)
        if shape is not None and max(shape) > max_box:
            raise Rejection("box_too_large", f"{header.emdb_id}: {info.file} is {shape} voxels "
                                             f"(z, y, x), over --max-box {max_box}")


_MAP_ERROR_REASONS = ((MapNotFound, "missing_file"), (CorruptGzip, "corrupt_gzip"),
                      (TruncatedMap, "truncated_map"), (NonFiniteMap, "non_finite"),
                      (GeometryMismatch, "mask_mismatch"), (BadMask, "bad_mask"),
                      (ConstantMap, "constant_map"))
"""The reason code of each kind of map error; any other :class:`MapError` is
``unreadable_map``. (A grid mismatch the store writer finds is the mask's: the half-maps'
grids are compared, with their own code, before.)"""


def classify_map_error(error: MapError) -> str:
    """The reason code of a :class:`~cref_bench.errors.MapError` raised while reading the maps
    or writing them to the store.

    Args:
        error: the error.

    Returns:
        ``missing_file``, ``corrupt_gzip``, ``truncated_map``, ``non_finite``,
        ``mask_mismatch``, ``bad_mask``, ``constant_map`` or ``unreadable_map``.
    """
    return next((code for kind, code in _MAP_ERROR_REASONS if isinstance(error, kind)),
                "unreadable_map")


def read_entry_map(path: Path) -> Volume:
    """Read one of an entry's map files (strictly), a fault becoming a rejection.

    Args:
        path: the file.

    Returns:
        The map.

    Raises:
        Rejection: the file is missing, corrupt, truncated, not a usable map or holds
            non-finite voxels (``code`` says which).
    """
    try:
        return read_map(path)
    except MapError as error:
        raise Rejection(classify_map_error(error), str(error)) from error


def _check_against_header(volume: Volume, info: MapInfo, fallback: MapInfo) -> None:
    """The file's shape and voxel size agree with the header's description of it."""
    described = info if info.dimensions is not None else fallback
    shape = expected_shape(described)
    if shape is not None and volume.shape != shape:
        raise Rejection("header_mismatch", f"{volume.source}: shape {volume.shape} (z, y, x) but "
                                           f"the XML header says {shape}")
    if described.pixel_spacing is not None:
        spacing = tuple(reversed(described.pixel_spacing))
        if not np.allclose(volume.voxel_size, spacing, rtol=SPACING_RTOL, atol=0):
            raise Rejection("header_mismatch", f"{volume.source}: voxel size {volume.voxel_size} Å "
                                               f"(z, y, x) but the XML header says {spacing}")


def load_maps(header: EntryHeader, half_maps: Sequence[Path], mask: Path,
              max_box: int | None = None, *,
              read: Callable[[Path], Volume] = read_entry_map,
              half_map_infos: Sequence[MapInfo] | None = None,
              mask_info: MapInfo | None = None) -> EntryMaps:
    """Read and check an entry's half-maps and mask (see the module docstring).

    Args:
        header: the entry's parsed XML header (describes the files).
        half_maps: the two half-map files, in the order of ``half_map_infos``.
        mask: the mask file (described by ``mask_info``).
        max_box: the largest box edge allowed, voxels; ``None`` for no limit.
        read: reads one file, raising :class:`Rejection` (default :func:`read_entry_map`);
            called for the half-maps, then, once they pass their checks, for the mask. (The
            builder passes one that hands over maps it has read already, in threads.)
        half_map_infos: the header's descriptions of the two files; default
            :func:`~dataset_builder.emdb.header.choose_half_maps`.
        mask_info: the header's description of the mask file; default
            :func:`~dataset_builder.emdb.header.choose_mask`.

    Returns:
        The :class:`EntryMaps`.

    Raises:
        Rejection: any check failed; ``code`` says which (see :data:`REASONS`).
        ValueError: not two half-maps given.
    """
    if len(half_maps) != 2:
        raise ValueError(f"{header.emdb_id}: need two half-map files, got {len(half_maps)}")
    half1, half2 = (read(path) for path in half_maps)
    try:
        half1.check_same_grid(half2)
    except GeometryMismatch as error:
        raise Rejection("half_map_mismatch", str(error)) from error
    if half_map_infos is None:
        half_map_infos = choose_half_maps(header)
    if mask_info is None:
        mask_info = choose_mask(header)
    for volume, info in zip((half1, half2), half_map_infos):
        _check_against_header(volume, info, header.map)
    if max_box is not None and max(half1.shape) > max_box:
        raise Rejection("box_too_large", f"{half1.source}: {half1.shape} voxels (z, y, x), over "
                                         f"--max-box {max_box}")
    mask_volume = read(mask)
    try:
        half1.check_same_grid(mask_volume)
    except GeometryMismatch as error:
        raise Rejection("mask_mismatch", str(error)) from error
    if mask_info is not None and mask_info.dimensions is not None:
        _check_against_header(mask_volume, mask_info, mask_info)
    return EntryMaps(half1, half2, mask_volume)
