"""Reading and writing MRC/CCP4 density maps as :class:`~cref_bench.maps.volume.Volume` objects.

Three public functions:

* :func:`read_header` -- the geometry of a map (shape, voxel size, origin) without its data;
* :func:`read_map` -- a whole map as a ``float32`` ``(z, y, x)`` :class:`Volume`;
* :func:`write_map` -- a :class:`Volume` as a ``float32`` MRC file (optionally gzipped),
  written atomically.

Files are read plain or gzip-compressed; gzip is recognised by its magic bytes, never by the
file name. The header layout, byte order and data types come from :mod:`mrcfile`
(``mrcfile.dtypes.HEADER_DTYPE`` and ``mrcfile.utils``); the data block is then copied one
section at a time, from a memory map for plain files and from a single decompression pass
for gzip files, straight into the final ``(z, y, x)`` array. Peak memory is therefore one
``float32`` copy of the map plus one section, whatever the file's mode or axis order.
(``mrcfile.open`` is not used for the data because its gzip reader decompresses the file
twice, and because telling its warnings apart needs ``warnings.catch_warnings``, which is
not thread-safe.)

Geometry
--------

``mapc/mapr/maps`` say which spatial axis (1 = X, 2 = Y, 3 = Z) the file's columns, rows
and sections run along; the data is transposed accordingly so that the returned array is
``(z, y, x)``. ``nxstart/nystart/nzstart`` are stored in column/row/section order and are
mapped to X/Y/Z the same way. The voxel size along X is ``cella.x / mx`` (the cell divided
by its sampling, which differs from ``nx`` for boxed-out maps), likewise for Y and Z.

**Origin rule** (the position, in Å, of the centre of voxel ``(0, 0, 0)``):

1. if the ``origin`` header (words 50-52, X/Y/Z in Å, not permuted) is non-zero, it is the
   origin;
2. otherwise the origin is ``nstart * voxel_size`` per spatial axis.

This is what UCSF ChimeraX does for MRC-2000 files (``mrc_format.py``: the origin header
wins when it is non-zero, "and if both are non-zero, the newer xorigin, yorigin, zorigin
are used"). gemmi (``Ccp4::setup``) ignores the origin header altogether and places column
``c`` at grid index ``nxstart + c`` of the unit cell, i.e. at ``nstart * voxel_size`` as in
rule 2. So when the origin header is zero, ChimeraX, gemmi and this module agree exactly;
when both are non-zero and disagree by more than half a voxel, this module follows
ChimeraX and warns (:class:`MapWarning`) that gemmi and other crystallographic readers
would place the map elsewhere. (ChimeraX ignores the origin header of files it opens as
``.ccp4``; such files written by crystallographic software normally have it at zero.)

**Writing** (:func:`write_map`) encodes the origin so that all three readers agree:

* when the origin is a whole number of voxels along every axis (within 1e-3 voxel), it is
  written as integer ``nxstart/nystart/nzstart`` with a zero origin header -- every reader
  places the map exactly;
* otherwise the exact origin goes into the origin header (read by ChimeraX, mrcfile users
  and this module) and ``nstart`` holds the nearest whole number of voxels, so that gemmi,
  which ignores the origin header, places the map within half a voxel of the exact spot.

Header values are ``float32``, so voxel size and origin round-trip to ``float32`` precision.

Strict and permissive reading
-----------------------------

Like mrcfile, reading is strict by default: any fault raises
:class:`~cref_bench.errors.MapError` naming the file and the fault. With
``permissive=True``, faults that still leave a usable map -- a missing ``MAP`` stamp,
an unrecognised machine stamp, an invalid axis order (1, 2, 3 is assumed), a zero or
negative cell or sampling (1 Å or ``n`` voxels is assumed), non-orthogonal cell angles
(ignored), an unusable origin header (``nstart`` is used), trailing bytes after the data,
and NaN/inf voxels (kept) -- produce a :class:`MapWarning` instead. A missing file,
a truncated or corrupt file, a nonsense header and an unsupported mode are always errors.
Unset (all-zero) cell angles are taken as 90° with a warning in both modes.
"""

from __future__ import annotations

import gzip
import os
import shutil
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
from mrcfile import utils as mrc_utils
from mrcfile.dtypes import HEADER_DTYPE
from tqdm.auto import tqdm

from cref_bench import __version__
from cref_bench.atomic import atomic_path
from cref_bench.errors import CorruptGzip, MapError, MapNotFound, NonFiniteMap, TruncatedMap
from cref_bench.maps.volume import Volume

__all__ = ["MapHeader", "MapWarning", "read_header", "read_map", "write_map"]

_GZIP_MAGIC = b"\x1f\x8b"
_HEADER_BYTES = HEADER_DTYPE.itemsize  # 1024
_MODE_DTYPES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}
_COMPLEX_MODES = {3: "complex int16", 4: "complex float32"}
_FLOAT_MODES = (2, 12)
_WHOLE_VOXEL_TOLERANCE = 1e-3   # origin within this many voxels of an integer -> nstart
_ORIGIN_LIMIT = 1e7             # |origin header| beyond this (Å, 1 mm) is garbage
_COPY_CHUNK = 1 << 20           # bytes per read while compressing


class MapWarning(RuntimeWarning):
    """A fault in a map file that permissive reading tolerates (the message names the file)."""


@dataclass(frozen=True)
class MapHeader:
    """What a map file's header says, interpreted by this module's rules.

    Attributes:
        path: the file.
        shape: the array shape once read, ``(z, y, x)``.
        voxel_size: Å per voxel, ``(z, y, x)``.
        origin: Å position of voxel ``(0, 0, 0)``, ``(z, y, x)`` (see the module's origin rule).
        mode: the MRC mode number (0, 1, 2, 6 or 12).
        axis_order: ``(mapc, mapr, maps)`` as used (1, 2, 3 where permissive reading
            replaced an invalid order).
        compressed: whether the file is gzip-compressed.
        file_shape: the data block's shape in file order, ``(sections, rows, columns)``.
        file_dtype: the data block's numpy dtype, with the file's byte order.
        data_offset: byte offset of the data block in the (decompressed) file.
        labels: the header's text labels.
    """

    path: str
    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    origin: tuple[float, float, float]
    mode: int
    axis_order: tuple[int, int, int]
    compressed: bool
    file_shape: tuple[int, int, int]
    file_dtype: np.dtype
    data_offset: int
    labels: tuple[str, ...]

    @property
    def data_bytes(self) -> int:
        """Size of the data block in bytes."""
        return int(np.prod(self.file_shape)) * self.file_dtype.itemsize


def read_header(path: str | os.PathLike, *, permissive: bool = False) -> MapHeader:
    """Read and check a map's header without reading its data.

    For a plain file the file size is checked against the header too; for a gzip file that
    needs decompressing everything, so it is left to :func:`read_map`.

    Args:
        path: an MRC/CCP4 map, plain or gzip-compressed (recognised by its magic bytes).
        permissive: warn (:class:`MapWarning`) instead of failing on faults that still
            leave a usable map (see the module docstring).

    Returns:
        The interpreted header (shape, voxel size and origin in ``(z, y, x)`` order).

    Raises:
        MapError: the file is missing or unreadable, is not an MRC/CCP4 map, is truncated,
            or (in strict mode) has any fault listed in the module docstring.
    """
    path = Path(path)
    compressed = _is_gzip(path)
    try:
        with _open_stream(path, compressed) as stream:
            raw = stream.read(_HEADER_BYTES)
    except (EOFError, OSError, zlib.error) as exc:
        raise _gzip_error(path, exc) if compressed else MapError(path, f"cannot read: {exc}") \
            from exc
    if len(raw) < _HEADER_BYTES:
        raise TruncatedMap(path, f"truncated header: {len(raw)} bytes, an MRC header needs "
                                 f"{_HEADER_BYTES}")
    header = _interpret(path, raw, compressed, permissive)
    if not compressed:
        _check_file_size(path, header, os.path.getsize(path), permissive)
    return header


def read_map(path: str | os.PathLike, *, permissive: bool = False,
             progress: bool = False) -> Volume:
    """Read an MRC/CCP4 map (plain or gzip) as a ``float32`` ``(z, y, x)`` :class:`Volume`.

    Modes 0, 1, 2, 6 and 12 (int8, int16, float32, uint16, float16) are converted to
    ``float32``. The axis permutation, ``nstart`` and origin header are applied as the
    module docstring describes.

    Args:
        path: the map file.
        permissive: warn (:class:`MapWarning`) instead of failing on faults that still
            leave a usable map, NaN/inf voxels included (they are kept).
        progress: show a progress bar over the file's sections.

    Returns:
        The map, with ``source`` set to the path.

    Raises:
        MapError: the file is missing, not an MRC/CCP4 map, truncated, a corrupt or
            truncated gzip stream, has an unsupported mode (complex modes 3 and 4 included),
            or (in strict mode) any fault listed in the module docstring.
    """
    path = Path(path)
    header = read_header(path, permissive=permissive)
    try:
        data = np.empty(header.shape, dtype=np.float32)
    except MemoryError:
        raise MapError(path, f"header claims a {header.shape} map, too large to hold in "
                             "memory") from None
    # Spatial axis a (1 = X, 2 = Y, 3 = Z) is array axis 3 - a of the (z, y, x) array, so this
    # view is indexed [section, row, column] like the file and filling it fills ``data``.
    mapc, mapr, maps = header.axis_order
    file_view = data.transpose([3 - axis for axis in (maps, mapr, mapc)])
    sections = _file_sections(path, header, permissive)
    bad = 0
    bar = tqdm(total=header.file_shape[0], desc=path.name, unit="section",
               disable=not progress, leave=False)
    with bar:
        for index, section in enumerate(sections):
            file_view[index] = section
            if header.mode in _FLOAT_MODES:
                bad += section.size - int(np.count_nonzero(np.isfinite(section)))
            bar.update()
    if bad:
        _tolerate(path, permissive, f"{bad} non-finite voxel(s) (NaN or inf)", NonFiniteMap)
    return Volume(data, header.voxel_size, header.origin, source=str(path))


def write_map(path: str | os.PathLike, volume: Volume, *, compress: bool | None = None,
              label: str | None = None, progress: bool = False) -> Path:
    """Write a :class:`Volume` as a ``float32`` MRC file, atomically.

    The file is written under a temporary name in the target's folder, flushed to disk, and
    moved into place (:func:`cref_bench.atomic.atomic_path`), so the target path never holds
    a partial file (an existing file there is left untouched if writing fails). The header
    gets the cell and sampling (``mx, my, mz = nx, ny, nz``), ``mapc/mapr/maps = 1, 2, 3``,
    the origin encoded
    as the module docstring describes, the statistics ``dmin/dmax/dmean/rms`` and a label.

    Args:
        path: the target file.
        volume: the map to write (its data must be finite).
        compress: gzip the file; ``None`` (default) means "when ``path`` ends with ``.gz``".
        label: a text label for the header (at most 80 ASCII characters); by default one
            naming cref-bench and its version.
        progress: show a progress bar over the sections.

    Returns:
        The path written.

    Raises:
        MapError: the volume has NaN/inf voxels, its origin is too far from zero to encode,
            or the label does not fit.
        OSError: the file cannot be written (nothing is left at ``path``).
    """
    path = Path(path)
    compress = path.name.endswith(".gz") if compress is None else bool(compress)
    label = label if label is not None else f"cref-bench {__version__} (cref_bench.maps.io)"
    if len(label) > 80 or not label.isascii():
        raise MapError(path, f"label must be at most 80 ASCII characters, got {label!r}")
    stats = _statistics(path, volume.data)
    nstart_xyz, origin_xyz = _encode_origin(path, volume)
    with atomic_path(path, fsync=True) as temp:
        plain = temp.with_name(temp.name + ".plain") if compress else temp
        try:
            _write_plain(plain, volume, stats, nstart_xyz, origin_xyz, label, progress)
            if compress:
                _compress_file(plain, temp)
        finally:
            if compress:
                plain.unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------- reading

def _is_gzip(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(2) == _GZIP_MAGIC
    except FileNotFoundError:
        raise MapNotFound(path, "file not found") from None
    except IsADirectoryError:
        raise MapError(path, "is a directory, not a map file") from None
    except OSError as exc:
        raise MapError(path, f"cannot open: {exc}") from None


def _open_stream(path: Path, compressed: bool):
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _gzip_error(path: Path, exc: BaseException) -> MapError:
    if isinstance(exc, EOFError):
        return CorruptGzip(path, f"truncated gzip stream (the compressed file ends early): {exc}")
    return CorruptGzip(path, f"corrupt gzip stream: {exc}")


def _tolerate(path: Path, permissive: bool, fault: str, error: type[MapError] = MapError) -> None:
    """Raise ``error`` in strict mode; warn in permissive mode."""
    if not permissive:
        raise error(path, fault)
    warnings.warn(MapWarning(f"{path}: {fault}"), stacklevel=3)


def _parse(raw: bytes, byte_order: str) -> np.recarray:
    dtype = HEADER_DTYPE.newbyteorder(byte_order)
    return np.frombuffer(raw, dtype=dtype).reshape(()).view(np.recarray)


def _plausible(header: np.recarray) -> bool:
    dims = (int(header.nx), int(header.ny), int(header.nz))
    return int(header.mode) in _MODE_DTYPES and all(0 < n < 2 ** 24 for n in dims)


def _byte_order(path: Path, raw: bytes, permissive: bool) -> str:
    machst = bytes(_parse(raw, "<").machst)
    try:
        return mrc_utils.byte_order_from_machine_stamp(machst)
    except ValueError:
        _tolerate(path, permissive, f"unrecognised machine stamp {machst!r} (byte order "
                                    "unknown)")
    guesses = [order for order in "<>" if _plausible(_parse(raw, order))]
    return guesses[0] if guesses else "<"


def _interpret(path: Path, raw: bytes, compressed: bool, permissive: bool) -> MapHeader:
    stamp = bytes(_parse(raw, "<").map)
    bad_stamp = stamp[:3] != b"MAP"
    if bad_stamp and not permissive:
        raise MapError(path, f"bad MAP stamp {stamp!r} (bytes 209-212): not an MRC/CCP4 map "
                             "or a corrupt header")
    header = _parse(raw, _byte_order(path, raw, permissive))
    nonsense = f"bad MAP stamp {stamp!r} and nonsense header" if bad_stamp else "nonsense header"

    file_shape = (int(header.nz), int(header.ny), int(header.nx))
    if min(file_shape) <= 0:
        raise MapError(path, f"{nonsense}: grid size (nx, ny, nz) = {file_shape[::-1]}")
    mode = int(header.mode)
    if mode in _COMPLEX_MODES:
        raise MapError(path, f"mode {mode} ({_COMPLEX_MODES[mode]}, a Fourier transform) is "
                             "not a real-space map; unsupported")
    if mode not in _MODE_DTYPES:
        raise MapError(path, f"{nonsense}: unknown mode {mode}")
    nsymbt = int(header.nsymbt)
    if nsymbt < 0:
        raise MapError(path, f"{nonsense}: negative extended header size nsymbt = {nsymbt}")
    if bad_stamp:
        _tolerate(path, permissive, f"bad MAP stamp {stamp!r} (bytes 209-212)")

    axis_order = (int(header.mapc), int(header.mapr), int(header.maps))
    if sorted(axis_order) != [1, 2, 3]:
        _tolerate(path, permissive, f"bad mapc/mapr/maps {axis_order}: not a permutation of "
                                    "1, 2, 3 (assuming 1, 2, 3)")
        axis_order = (1, 2, 3)
    n_xyz = [0, 0, 0]
    for count, axis in zip(file_shape[::-1], axis_order):
        n_xyz[axis - 1] = count

    voxel_xyz = _voxel_size(path, header, n_xyz, permissive)
    _check_angles(path, header, permissive)
    ispg = int(header.ispg)
    if 401 <= ispg <= 630 and file_shape[0] != int(header.mz):
        raise MapError(path, f"a volume stack (ispg {ispg}, nz {file_shape[0]}, mz "
                             f"{int(header.mz)}), not a single map; unsupported")

    nstart_xyz = [0, 0, 0]
    for start, axis in zip((header.nxstart, header.nystart, header.nzstart), axis_order):
        nstart_xyz[axis - 1] = int(start)
    origin_xyz = _origin(path, header, nstart_xyz, voxel_xyz, permissive)

    nlabl = min(max(int(header.nlabl), 0), 10)
    labels = tuple(bytes(header.label[i]).decode("ascii", "replace").rstrip(" \0")
                   for i in range(nlabl))
    file_dtype = np.dtype(_MODE_DTYPES[mode]).newbyteorder(header.mode.dtype.byteorder)
    return MapHeader(
        path=str(path),
        shape=(n_xyz[2], n_xyz[1], n_xyz[0]),
        voxel_size=tuple(voxel_xyz[::-1]),
        origin=tuple(origin_xyz[::-1]),
        mode=mode,
        axis_order=axis_order,
        compressed=compressed,
        file_shape=file_shape,
        file_dtype=file_dtype,
        data_offset=_HEADER_BYTES + nsymbt,
        labels=labels,
    )


def _voxel_size(path: Path, header: np.recarray, n_xyz: list[int],
                permissive: bool) -> list[float]:
    sampling = [int(header.mx), int(header.my), int(header.mz)]
    if min(sampling) <= 0:
        _tolerate(path, permissive, f"zero or negative sampling (mx, my, mz) = "
                                    f"{tuple(sampling)} (assuming nx, ny, nz)")
        sampling = [m if m > 0 else n for m, n in zip(sampling, n_xyz)]
    cell = [float(header.cella.x), float(header.cella.y), float(header.cella.z)]
    if not all(np.isfinite(c) and c > 0 for c in cell):
        _tolerate(path, permissive, f"zero, negative or non-finite cell (a, b, c) = "
                                    f"{tuple(cell)} Å (assuming 1 Å voxels)")
        return [c / m if np.isfinite(c) and c > 0 else 1.0 for c, m in zip(cell, sampling)]
    return [c / m for c, m in zip(cell, sampling)]


def _check_angles(path: Path, header: np.recarray, permissive: bool) -> None:
    angles = (float(header.cellb.alpha), float(header.cellb.beta), float(header.cellb.gamma))
    if all(abs(a - 90.0) < 1e-3 for a in angles):
        return
    if all(a == 0.0 for a in angles):
        warnings.warn(MapWarning(f"{path}: cell angles unset (0, 0, 0); assuming 90°"),
                      stacklevel=4)
        return
    _tolerate(path, permissive, f"non-orthogonal cell angles {angles}; only orthogonal "
                                "grids are supported")


def _origin(path: Path, header: np.recarray, nstart_xyz: list[int],
            voxel_xyz: list[float], permissive: bool) -> list[float]:
    from_nstart = [s * v for s, v in zip(nstart_xyz, voxel_xyz)]
    stored = [float(header.origin.x), float(header.origin.y), float(header.origin.z)]
    if all(o == 0.0 for o in stored):
        return from_nstart
    if not all(np.isfinite(o) and abs(o) < _ORIGIN_LIMIT for o in stored):
        _tolerate(path, permissive, f"unusable origin header {tuple(stored)} Å (non-finite "
                                    "or absurdly large; using nxstart/nystart/nzstart)")
        return from_nstart
    if any(s != 0 for s in nstart_xyz):
        apart = [abs(o - f) / v for o, f, v in zip(stored, from_nstart, voxel_xyz)]
        if max(apart) > 0.5 + _WHOLE_VOXEL_TOLERANCE:
            warnings.warn(MapWarning(
                f"{path}: origin header {tuple(stored)} Å and nxstart/nystart/nzstart "
                f"{tuple(nstart_xyz)} (= {tuple(from_nstart)} Å) disagree; using the origin "
                "header as ChimeraX does (gemmi would use nstart)"), stacklevel=4)
    return stored


def _check_file_size(path: Path, header: MapHeader, actual: int, permissive: bool) -> None:
    expected = header.data_offset + header.data_bytes
    if actual < expected:
        raise TruncatedMap(path, f"truncated data: the file has {actual} bytes, its header "
                                 f"needs {expected}")
    if actual > expected:
        _tolerate(path, permissive, f"header inconsistent with data size: the file is "
                                    f"{actual - expected} bytes longer than its header says")


def _file_sections(path: Path, header: MapHeader, permissive: bool):
    """Yield the data block one section (rows x columns array) at a time."""
    if header.compressed:
        yield from _gzip_sections(path, header, permissive)
        return
    yield from np.memmap(path, dtype=header.file_dtype, mode="r", offset=header.data_offset,
                         shape=header.file_shape)


def _gzip_sections(path: Path, header: MapHeader, permissive: bool):
    section = np.empty(header.file_shape[1:], dtype=header.file_dtype)
    buffer = memoryview(section).cast("B")
    try:
        with gzip.open(path, "rb") as stream:
            stream.seek(header.data_offset)
            for index in range(header.file_shape[0]):
                got = _read_into(stream, buffer)
                if got < len(buffer):
                    done = index * len(buffer) + got
                    raise TruncatedMap(path, f"truncated data: the decompressed file ends "
                                             f"after {done} of the {header.data_bytes} data "
                                             "bytes its header needs")
                yield section
            extra = len(stream.read(_COPY_CHUNK))
    except (EOFError, OSError, zlib.error) as exc:
        raise _gzip_error(path, exc) from None
    if extra:
        _tolerate(path, permissive, "header inconsistent with data size: the decompressed "
                                    "file is longer than its header says")


def _read_into(stream, buffer: memoryview) -> int:
    filled = 0
    while filled < len(buffer):
        got = stream.readinto(buffer[filled:])
        if not got:
            break
        filled += got
    return filled


# ----------------------------------------------------------------------------- writing

def _statistics(path: Path, data: np.ndarray) -> tuple[float, float, float, float]:
    """Min, max, mean and RMS deviation from the mean, one z-slab at a time."""
    low, high, total = np.inf, -np.inf, 0.0
    for plane in data:
        if not np.isfinite(plane).all():
            raise NonFiniteMap(path, "refusing to write non-finite voxels (NaN or inf)")
        low = min(low, float(plane.min()))
        high = max(high, float(plane.max()))
        total += float(plane.sum(dtype=np.float64))
    mean = total / data.size
    squares = sum(float(np.square(plane.astype(np.float64) - mean).sum()) for plane in data)
    return low, high, mean, (squares / data.size) ** 0.5


def _encode_origin(path: Path, volume: Volume) -> tuple[list[int], list[float]]:
    """Integer nstart and origin header (both X, Y, Z) for a volume's origin."""
    steps = np.asarray(volume.origin[::-1]) / np.asarray(volume.voxel_size[::-1])
    nearest = np.rint(steps)
    if np.any(np.abs(nearest) > np.iinfo(np.int32).max):
        raise MapError(path, f"origin {volume.origin} Å is too far from zero to encode")
    nstart = [int(n) for n in nearest]
    if np.all(np.abs(steps - nearest) <= _WHOLE_VOXEL_TOLERANCE):
        return nstart, [0.0, 0.0, 0.0]
    return nstart, list(volume.origin[::-1])


def _write_plain(target: Path, volume: Volume, stats, nstart_xyz, origin_xyz, label: str,
                 progress: bool) -> None:
    with mrcfile.new_mmap(target, shape=volume.shape, mrc_mode=2, overwrite=True) as mrc:
        for index in tqdm(range(volume.shape[0]), desc=target.name, unit="section",
                          disable=not progress, leave=False):
            mrc.data[index] = volume.data[index]
        header = mrc.header
        mrc.voxel_size = tuple(volume.voxel_size[::-1])
        header.nxstart, header.nystart, header.nzstart = nstart_xyz
        header.origin.x, header.origin.y, header.origin.z = origin_xyz
        header.mapc, header.mapr, header.maps = 1, 2, 3
        header.dmin, header.dmax, header.dmean, header.rms = stats
        mrc.add_label(label)


def _compress_file(source: Path, target: Path) -> None:
    with open(source, "rb") as plain, open(target, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6,
                           mtime=0) as packed:
            shutil.copyfileobj(plain, packed, _COPY_CHUNK)
