"""Writing a cref-bench corpus store: entries, the manifest, the patch index, finalisation.

The builders (:mod:`dataset_builder.synthetic`, :mod:`dataset_builder.emdb`) call
:func:`write_entry` once per accepted entry and :func:`record_rejection` once per entry they
turn down, typically one dask task per entry, then :func:`finalize` once from the
coordinating process. Readers use :mod:`cref_bench.corpus.reader`.

The on-disk layout, the map roles (``half1``, ``half2``, ``mask``, optional ``truth`` and
``reference``) and the content hash are defined in :mod:`cref_bench.corpus.layout`. Maps are
stored as float32 (z, y, x), Blosc lz4 level 1 with bit shuffle (about 1 GB/s; noisy maps
compress little more with slower codecs: zstd-5 gains ~5 % at 1/10 speed).

Patch index: origins on a grid of step ``stride`` along each axis, ``0, s, 2s, ...`` while a
patch fits, plus one last origin ``n - size`` flush with the far edge when the grid does not
reach it (so the whole box is covered; that patch overlaps its neighbour). An axis shorter
than ``size`` has no origin, so such a box has no patches. A patch is kept when any of its
mask voxels is ``> 0.5`` (``threshold``).

Manifest design: one small document per entry considered -- the attributes of
``manifest/<ID>``, a single ``zarr.json`` written in one put (atomic on local disk, where zarr
writes to a temporary name and renames, and on object stores) -- by the worker that
considered it. Workers never write a shared document, so concurrent writers of different
entries cannot clobber each other, and a build killed at any moment leaves every row either
old or new, never torn. The row is written *after* the entry's completion mark; if a kill
falls between the two, :func:`finalize` repairs the row from the entry (and marks ``ok``
rows whose entry data are missing as ``failed``), so after finalize the ``ok`` rows are
exactly the complete entries. The root attributes are written only by :func:`create_store` /
:func:`open_store` and :func:`finalize`, from the coordinating process.

Writes: :func:`write_entry` checks everything (grids, finite values, mask range, metadata)
before it writes anything; then creates the entry group afresh (removing leftovers of an
interrupted write), writes the arrays, and puts the full attributes with ``complete: true``
in one final write. Readers list only complete entries, so an interrupted write is
invisible and a rerun completes it. A complete entry is left untouched unless
``overwrite=True`` (it is first hidden, then rewritten). One writer per entry at a time.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from functools import partial
from pathlib import PurePath

import fsspec
import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

import cref_bench
from cref_bench.corpus import splits
from cref_bench.corpus.layout import (
    ENTRIES_GROUP,
    FORMAT_VERSION,
    MANIFEST_GROUP,
    MAP_ROLES,
    MASK_THRESHOLD,
    MASK_TOLERANCE,
    MODELS_GROUP,
    PATCHES_ARRAY,
    check_store_root,
    content_hash,
    list_complete_entries,
    normalise_location,
    open_root,
    read_manifest_rows,
)
from cref_bench.errors import (
    BadMask,
    ConstantMap,
    CorpusError,
    GeometryMismatch,
    InputError,
    NonFiniteMap,
)
from cref_bench.maps.volume import Volume
from cref_bench.results.provenance import now_utc
from dataset_builder._chunks import write_maps
from dataset_builder._moments import hashed_moments

PATCH_SIZE = 96
"""Default patch edge in voxels (the crefDenoiser training patches)."""

CHUNK = 64
"""Largest default chunk edge of the map arrays, voxels (the default is the patch stride
when that is smaller). 64 rather than the 96 of a patch: boxes are mostly multiples of 32
or 64, which 96³ chunks pad (a 128³ map becomes 192³ of chunks, 3.4x the voxels; 256³ 1.4x)
and 64³ chunks pad far less; reading a 96³ patch then decodes 2.4x its voxels on a grid
patch, but a 96³ chunking decodes up to 8x on the patches flush with the far edge.
``benchmarks/bench_build.py`` measures both in one run: every patch of the index read from
64³ chunks in 0.7-0.9x the time of 96³ at 128³ and 1.1x at 256³, the entry written in 0.6x
and 0.7x (two runs on a shared 2-core machine)."""

MAP_CODEC = "blosc-lz4-1-bitshuffle"
MODEL_CHUNK_BYTES = 16 << 20

_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")

_SYSTEM_KEYS = frozenset({
    "id", "complete", "format_version", "split", "split_rule_version", "shape", "voxel_size",
    "origin", "box", "maps", "array_sha256", "stats", "patches", "models", "written_at",
    "status", "reason", "considered_at"})
"""Keys the writer sets itself; builders' metadata may not use them."""

_ROW_KEYS_ALLOWED_IN_REJECTIONS = frozenset({"voxel_size", "box"})


def _map_codec() -> BloscCodec:
    return BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle")


class Store:
    """A handle on a corpus store for writing; picklable (holds only the location).

    Made by :func:`create_store` or :func:`open_store`. Its methods are the module functions
    of the same names with the store filled in.

    Attributes:
        location: the store path or URL.
        storage_options: fsspec options for URLs.
    """

    def __init__(self, location: str, storage_options: dict | None = None):
        self.location = location
        self.storage_options = storage_options

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    def root(self, mode: str = "r+") -> zarr.Group:
        """The root zarr group, opened now.

        Args:
            mode: zarr access mode (``"r"`` or ``"r+"``).

        Returns:
            The group.

        Raises:
            CorpusError: no store at the location.
        """
        return open_root(self.location, mode, self.storage_options)

    @property
    def attrs(self) -> dict:
        """The root attributes, read now."""
        return self.root("r").attrs.asdict()

    def write_entry(self, entry_id: str, **kwargs) -> dict:
        """:func:`write_entry` into this store."""
        return write_entry(self, entry_id, **kwargs)

    def record_rejection(self, entry_id: str, reason, metadata: Mapping | None = None,
                         **kwargs) -> dict:
        """:func:`record_rejection` into this store."""
        return record_rejection(self, entry_id, reason, metadata, **kwargs)

    def is_complete(self, entry_id: str) -> bool:
        """:func:`is_complete` for this store."""
        return is_complete(self, entry_id)

    def finalize(self) -> str:
        """:func:`finalize` this store."""
        return finalize(self)


def _as_store(store: Store | str | os.PathLike, storage_options: dict | None = None) -> Store:
    if isinstance(store, Store):
        return store
    return open_store(store, mode="r+", storage_options=storage_options)


def _check_replaceable(location: str, overwrite: bool, storage_options: dict | None) -> None:
    """Refuse to create a store over anything but nothing, an empty folder, or (with
    ``overwrite``) an existing corpus store."""
    fs, path = fsspec.core.url_to_fs(location, **(storage_options or {}))
    if not fs.exists(path) or (fs.isdir(path) and not fs.ls(path)):
        return
    try:
        is_store = "format_version" in open_root(location, "r", storage_options).attrs
    except CorpusError:
        is_store = False
    if not is_store:
        fault = ("not a corpus store; refusing to delete it" if overwrite else
                 "something exists here already and is not a corpus store; refusing to write "
                 "over it")
        raise CorpusError(location, fault)
    if not overwrite:
        raise CorpusError(location, "something exists here already: a corpus store; use "
                          "open_store to add to it, or overwrite=True to replace it")


def create_store(path: str | os.PathLike, *, source: str, patch_size: int = PATCH_SIZE,
                 patch_stride: int | None = None, chunk: int | None = None,
                 overwrite: bool = False, storage_options: dict | None = None) -> Store:
    """Create an empty corpus store.

    Args:
        path: a local path or fsspec URL.
        source: a description of what the store holds (e.g. ``"EMDB half-maps, 2025-06"``).
        patch_size: edge of the patch-index patches, voxels.
        patch_stride: step of the patch grid (default: ``patch_size``).
        chunk: chunk edge of the map arrays (default: the stride, at most :data:`CHUNK`).
        overwrite: replace an existing corpus store at ``path`` (deleting all of it); without
            it, anything at ``path`` but an empty folder is refused.
        storage_options: fsspec options for URLs.

    Returns:
        The :class:`Store`.

    Raises:
        CorpusError: something exists at ``path`` and ``overwrite`` is false, or it is not a
            corpus store.
        InputError: a non-positive size, stride or chunk, or an empty source.
    """
    stride = patch_size if patch_stride is None else patch_stride
    chunk = min(stride, CHUNK) if chunk is None else chunk
    for name, value in (("patch_size", patch_size), ("patch_stride", stride), ("chunk", chunk)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(source, str) or not source.strip():
        raise InputError(f"source must be a non-empty description, got {source!r}")
    location = normalise_location(path)
    _check_replaceable(location, overwrite, storage_options)
    attrs = {
        "format_version": FORMAT_VERSION,
        "split_rule_version": splits.SPLIT_RULE_VERSION,
        "created_at": now_utc(),
        "source": source,
        "patch": {"size": int(patch_size), "stride": int(stride), "threshold": MASK_THRESHOLD,
                  "rule": "grid of step stride from 0, plus a last origin flush with the far "
                          "edge; kept where any mask voxel > threshold"},
        "chunk": int(chunk),
        "compressor": MAP_CODEC,
        "cref_bench_version": cref_bench.__version__,
        "content_hash": None,
        "finalized_at": None,
        "test_50": [],
        "counts": {},
    }
    root = zarr.open_group(location, mode="w", storage_options=storage_options,
                           zarr_format=3, attributes=attrs)
    root.require_group(ENTRIES_GROUP)
    root.require_group(MANIFEST_GROUP)
    return Store(location, storage_options)


def open_store(path: str | os.PathLike, mode: str = "a", *, source: str | None = None,
               storage_options: dict | None = None, **create_options) -> Store:
    """Open a corpus store for writing, creating it when the mode allows.

    Args:
        path: a local path or fsspec URL.
        mode: ``"r+"`` (must exist), ``"a"`` (open, or create if absent), ``"w-"`` (create,
            refuse an existing node) or ``"w"`` (create, replacing what is there).
        source: the store description; needed when the store is created.
        storage_options: fsspec options for URLs.
        **create_options: ``patch_size``, ``patch_stride``, ``chunk`` for
            :func:`create_store` (ignored when an existing store is opened).

    Returns:
        The :class:`Store`.

    Raises:
        CorpusError: an existing node that is not a corpus store of this format version, or
            (``"r+"``) nothing at ``path``.
        InputError: an unknown mode, or no ``source`` when the store must be created.
    """
    if mode not in ("r+", "a", "w-", "w"):
        raise InputError(f"mode must be 'r+', 'a', 'w-' or 'w', got {mode!r}")
    location = normalise_location(path)
    if mode in ("r+", "a"):
        try:
            root = open_root(location, "r", storage_options)
        except CorpusError:
            if mode == "r+":
                raise
        else:
            check_store_root(location, root)
            return Store(location, storage_options)
    if source is None:
        raise InputError(location, "creating a store needs a source description")
    return create_store(location, source=source, overwrite=(mode == "w"),
                        storage_options=storage_options, **create_options)


# --------------------------------------------------------------------------- validation

def _check_id(entry_id: str) -> None:
    if not isinstance(entry_id, str) or not _ID_PATTERN.fullmatch(entry_id):
        raise InputError(f"entry id {entry_id!r} is not 1-128 characters of letters, digits, "
                         f"'.', '_', '-' starting with a letter or digit")


def _jsonable(value, where: str):
    """``value`` as plain JSON types (numpy scalars, tuples, dates, paths converted)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, Mapping):
        out = {}
        for key, val in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: metadata keys must be str, got {key!r}")
            out[key] = _jsonable(val, f"{where}.{key}")
        return out
    raise TypeError(f"{where}: {type(value).__name__} value {value!r} cannot be stored as JSON")


def _user_metadata(entry_id: str, metadata: Mapping | None, default_source: str,
                   allowed: frozenset = frozenset()) -> dict:
    """Validate and normalise a builder's metadata; fills the recognised keys."""
    meta = _jsonable(dict(metadata or {}), f"entry {entry_id} metadata")
    clash = sorted((set(meta) & _SYSTEM_KEYS) - allowed)
    if clash:
        raise InputError(f"entry {entry_id}: metadata keys {clash} are set by the store "
                         f"writer itself; rename them")
    resolution = meta.get("resolution")
    if resolution is not None and not (isinstance(resolution, (int, float))
                                       and not isinstance(resolution, bool) and resolution > 0):
        raise InputError(f"entry {entry_id}: resolution must be a positive number of Å or "
                         f"None, got {resolution!r}")
    meta["resolution"] = None if resolution is None else float(resolution)
    release = meta.get("release_date")
    if release is not None:
        try:
            date.fromisoformat(str(release)[:10])
        except ValueError as err:
            raise InputError(f"entry {entry_id}: release_date {release!r} is not an ISO "
                             f"date") from err
    meta["release_date"] = release
    source = meta.get("source", default_source)
    if not isinstance(source, str) or not source:
        raise InputError(f"entry {entry_id}: source must be a non-empty str, got {source!r}")
    meta["source"] = source
    checksums = meta.get("source_sha256", {})
    if not isinstance(checksums, dict) or not all(
            isinstance(v, str) and _SHA256_PATTERN.fullmatch(v) for v in checksums.values()):
        raise InputError(f"entry {entry_id}: source_sha256 must map file names to sha256 hex "
                         f"digests (64 lower-case hex characters), got {checksums!r}")
    meta["source_sha256"] = checksums
    return meta


def _check_maps(entry_id: str, maps: dict[str, Volume | None]) -> dict[str, Volume]:
    """The maps given, in role order, checked to be Volumes on the grid of ``half1``."""
    present = {}
    for role in MAP_ROLES:
        vol = maps[role.name]
        if vol is None:
            if role.required:
                raise TypeError(f"entry {entry_id}: the {role.name} map is required")
            continue
        if not isinstance(vol, Volume):
            raise TypeError(f"entry {entry_id}: {role.name} must be a cref_bench Volume, "
                            f"got {type(vol).__name__}")
        present[role.name] = vol
    reference = present["half1"]
    for name, vol in present.items():
        if name == "half1":
            continue
        try:
            reference.check_same_grid(vol)
        except GeometryMismatch as err:
            raise GeometryMismatch(f"entry {entry_id} {name} ({err.source})", err.fault) from err
    return present


def _check_models(entry_id: str, models: Mapping[str, str] | None) -> dict[str, bytes]:
    out = {}
    for name, text in (models or {}).items():
        if not isinstance(name, str) or not _ID_PATTERN.fullmatch(name):
            raise InputError(f"entry {entry_id}: model name {name!r} is not 1-128 letters, "
                             f"digits, '.', '_', '-'")
        if not isinstance(text, str) or not text:
            raise InputError(f"entry {entry_id}: model {name} must be non-empty text (mmCIF)")
        out[name] = text.encode("utf-8")
    return out


# --------------------------------------------------------------------------- scanning

def _non_finite_error(entry_id: str, name: str, vol: Volume) -> NonFiniteMap:
    bad = int(vol.data.size - np.count_nonzero(np.isfinite(vol.data)))
    return NonFiniteMap(f"entry {entry_id} {name} ({vol.source})",
                        f"{bad} non-finite voxel(s) (NaN or inf)")


def _scan_mask(entry_id: str, mask: Volume) -> tuple[str, dict]:
    """sha256 and summary of the mask (one pass); refuses non-finite, out-of-range or empty
    masks."""
    digest, stats = hashed_moments(mask.data, mask.data, MASK_THRESHOLD)
    if stats is None:
        raise _non_finite_error(entry_id, "mask", mask)
    box, inside = stats["box"], stats["inside"]["count"]
    lo, hi = box["min"], box["max"]
    where = f"entry {entry_id} mask ({mask.source})"
    if lo < -MASK_TOLERANCE or hi > 1 + MASK_TOLERANCE:
        raise BadMask(where, f"mask values must lie in [0, 1], found [{lo:g}, {hi:g}]")
    if inside == 0:
        raise BadMask(where, f"mask is empty (no voxel > {MASK_THRESHOLD})")
    return digest, {"inside_voxels": inside, "inside_fraction": inside / mask.data.size,
                    "min": lo, "max": hi}


def _scan_map(entry_id: str, name: str, vol: Volume, mask: Volume) -> tuple[str, dict]:
    """sha256 and box / inside / outside statistics of a map (one pass, no copies)."""
    digest, stats = hashed_moments(vol.data, mask.data, MASK_THRESHOLD)
    if stats is None:
        raise _non_finite_error(entry_id, name, vol)
    if not stats["box"]["std"] > 0:
        raise ConstantMap(f"entry {entry_id} {name} ({vol.source})",
                          "constant map (standard deviation 0): cannot be standardised")
    return digest, stats


def grid_origins(length: int, size: int, stride: int) -> list[int]:
    """Patch origins along one axis (see the module docstring).

    Args:
        length: the axis length, voxels.
        size: patch edge.
        stride: grid step.

    Returns:
        ``0, stride, 2 * stride, ...`` while a patch fits, plus ``length - size`` when the
        grid does not reach the far edge; empty when ``length < size``.
    """
    if length < size:
        return []
    origins = list(range(0, length - size + 1, stride))
    if origins[-1] + size < length:
        origins.append(length - size)
    return origins


def patch_origins(mask: np.ndarray, size: int, stride: int,
                  threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """The patch index of a mask: grid origins whose patch holds a mask voxel > threshold.

    Args:
        mask: 3D mask array.
        size: patch edge, voxels.
        stride: grid step, voxels.
        threshold: a patch is kept when any of its mask values exceeds this.

    Returns:
        ``(K, 3)`` int32 origins ``(z, y, x)``, in C order of the grid.
    """
    grids = [grid_origins(n, size, stride) for n in mask.shape]
    kept = [(z, y, x) for z in grids[0] for y in grids[1] for x in grids[2]
            if np.any(mask[z:z + size, y:y + size, x:x + size] > threshold)]
    return np.asarray(kept, dtype=np.int32).reshape(-1, 3)


# --------------------------------------------------------------------------- manifest

def _ok_row(attrs: Mapping) -> dict:
    """The manifest row of a complete entry, from its attributes."""
    row = {k: v for k, v in attrs.items() if k not in _SYSTEM_KEYS}
    row.update(id=attrs["id"], status="ok", reason=None, split=attrs["split"],
               voxel_size=attrs["voxel_size"], box=attrs["shape"], considered_at=now_utc())
    return row


def _put_manifest_row(root: zarr.Group, row: dict) -> None:
    manifest = root[MANIFEST_GROUP]
    if row["id"] in manifest:
        manifest[row["id"]].attrs.put(row)
    else:
        manifest.create_group(row["id"], attributes=row)


def _hide_and_delete(entries: zarr.Group, entry_id: str) -> None:
    if entry_id not in entries:
        return
    group = entries[entry_id]
    if group.attrs.get("complete") is True:
        group.attrs["complete"] = False  # one atomic write: invisible before the delete
    del entries[entry_id]


# --------------------------------------------------------------------------- public API

def write_entry(store: Store | str | os.PathLike, entry_id: str, *, half1: Volume,
                half2: Volume, mask: Volume, truth: Volume | None = None,
                reference: Volume | None = None, models: Mapping[str, str] | None = None,
                metadata: Mapping | None = None, overwrite: bool = False) -> dict:
    """Write one entry (maps, patch index, models, attributes) and its manifest row.

    Idempotent: a complete entry is left as it is (its manifest row is returned, and
    rewritten only if missing or not ``ok``) unless ``overwrite``; leftovers of an
    interrupted write are replaced. Safe to run concurrently for *different* entries.

    Args:
        store: a :class:`Store` or the location of an existing store.
        entry_id: the entry id (letters, digits, ``.``, ``_``, ``-``; e.g. ``"EMD-11638"``).
        half1, half2: the half-maps.
        mask: the mask, values in ``[0, 1]``, at least one voxel ``> 0.5``.
        truth: the noise-free map (phantoms, simulations), or None.
        reference: a higher-resolution map of the same specimen on the halves' grid, or None.
        models: fitted models, ``{name: mmCIF text}``.
        metadata: builder metadata, JSON-like; recognised keys ``resolution`` (Å),
            ``source``, ``release_date`` (ISO), ``source_sha256`` (``{file: sha256 hex}``),
            ``fitted_models`` (ids); other keys are stored as given. Keys the writer sets
            itself (``id``, ``shape``, ``voxel_size``, ``stats``, ...) are refused.
        overwrite: rewrite a complete entry.

    Returns:
        The entry's manifest row (a dict).

    Raises:
        GeometryMismatch: a map is not on the grid of ``half1`` (names the entry).
        NonFiniteMap, BadMask, ConstantMap: non-finite values, a mask outside ``[0, 1]`` or
            empty, a constant map (names the entry and the map).
        InputError: a bad id, metadata value or model.
        TypeError: a map that is not a Volume, or metadata that is not JSON-like.
        CorpusError: no corpus store at ``store``.
    """
    _check_id(entry_id)
    maps = _check_maps(entry_id, {"half1": half1, "half2": half2, "mask": mask,
                                  "truth": truth, "reference": reference})
    model_bytes = _check_models(entry_id, models)
    store = _as_store(store)
    root = store.root()
    root_attrs = root.attrs.asdict()
    meta = _user_metadata(entry_id, metadata, root_attrs["source"])
    if not overwrite:
        row = _row_of_complete_entry(root, entry_id)
        if row is not None:
            return row
    patch = root_attrs["patch"]
    checksums, stats, origins = _scan_entry(entry_id, maps, model_bytes, patch)
    entries = root[ENTRIES_GROUP]
    _hide_and_delete(entries, entry_id)
    group = entries.create_group(entry_id, overwrite=True,
                                 attributes={"id": entry_id, "complete": False})
    _write_arrays(store, group, maps, origins, model_bytes, root_attrs["chunk"])
    attrs = dict(meta)
    attrs.setdefault("fitted_models", sorted(model_bytes))
    attrs.update({
        "id": entry_id,
        "format_version": FORMAT_VERSION,
        "split": splits.split_of(entry_id),
        "split_rule_version": splits.SPLIT_RULE_VERSION,
        "shape": list(half1.shape),
        "voxel_size": list(half1.voxel_size),
        "origin": list(half1.origin),
        "maps": list(maps),
        "array_sha256": checksums,
        "stats": stats,
        "patches": {"size": patch["size"], "stride": patch["stride"],
                    "threshold": patch["threshold"], "count": len(origins)},
        "models": sorted(model_bytes),
        "written_at": now_utc(),
        "complete": True,
    })
    group.attrs.put(attrs)  # the completion mark: one write, last
    row = _ok_row(attrs)
    _put_manifest_row(root, row)
    return row


def _row_of_complete_entry(root: zarr.Group, entry_id: str) -> dict | None:
    """The ``ok`` manifest row of an entry already complete (repaired if missing or not
    ``ok``), or ``None`` when the entry is not complete."""
    entries = root[ENTRIES_GROUP]
    if entry_id not in entries:
        return None
    existing = entries[entry_id].attrs.asdict()
    if existing.get("complete") is not True:
        return None
    rows = root[MANIFEST_GROUP]
    if entry_id in rows and rows[entry_id].attrs.get("status") == "ok":
        return rows[entry_id].attrs.asdict()
    row = _ok_row(existing)
    _put_manifest_row(root, row)
    return row


def _in_threads(tasks: Mapping[str, Callable[[], object]]) -> dict[str, object]:
    """Run the tasks at once, one thread each; their results by name, or the exception of
    the first task (in the given order) that raised, once all have ended."""
    with ThreadPoolExecutor(max_workers=max(1, len(tasks))) as pool:
        futures = {name: pool.submit(task) for name, task in tasks.items()}
    return {name: future.result() for name, future in futures.items()}


def _scan_entry(entry_id: str, maps: dict[str, Volume], model_bytes: dict[str, bytes],
                patch: Mapping) -> tuple[dict, dict, np.ndarray]:
    """The sha256 of every map and model, the statistics of every map (checked; the mask's
    faults first, then each map's in role order) and the patch index, the maps scanned at
    once in threads."""
    mask = maps["mask"]
    tasks = {name: (partial(_scan_mask, entry_id, vol) if name == "mask" else
                    partial(_scan_map, entry_id, name, vol, mask))
             for name, vol in sorted(maps.items(), key=lambda item: item[0] != "mask")}
    tasks[PATCHES_ARRAY] = partial(patch_origins, mask.data, patch["size"], patch["stride"],
                                   patch["threshold"])
    done = _in_threads(tasks)
    origins = done.pop(PATCHES_ARRAY)
    checksums = {name: digest for name, (digest, _) in done.items()}
    stats = {name: summary for name, (_, summary) in done.items()}
    checksums[PATCHES_ARRAY] = hashlib.sha256(origins.astype("<i4").tobytes()).hexdigest()
    for name, raw in model_bytes.items():
        checksums[f"{MODELS_GROUP}/{name}"] = hashlib.sha256(raw).hexdigest()
    return checksums, stats, origins


def _write_arrays(store: Store, group: zarr.Group, maps: dict[str, Volume],
                  origins: np.ndarray, model_bytes: dict[str, bytes], chunk: int) -> None:
    """The maps, the patch index and the models of an entry, into its (new) group; the maps'
    chunks compressed and written in threads (:mod:`dataset_builder._chunks`)."""
    chunks = tuple(min(chunk, n) for n in maps["half1"].shape)
    arrays = [(group.create_array(name, shape=vol.shape, dtype=np.float32, chunks=chunks,
                                  compressors=_map_codec(), fill_value=0.0), vol.data)
              for name, vol in maps.items()]
    write_maps(store.location, store.storage_options, arrays)
    group.create_array(PATCHES_ARRAY, data=origins, chunks=(max(1, len(origins)), 3))
    for name, raw in model_bytes.items():
        group.create_array(f"{MODELS_GROUP}/{name}", data=np.frombuffer(raw, dtype=np.uint8),
                           chunks=(min(len(raw), MODEL_CHUNK_BYTES),),
                           compressors=ZstdCodec(level=9))


def record_rejection(store: Store | str | os.PathLike, entry_id: str, reason,
                     metadata: Mapping | None = None, *, status: str = "rejected") -> dict:
    """Record that an entry was considered and left out (or failed), with the reason.

    Any data already stored for the entry, complete or not, is removed: the corpus holds
    exactly the entries whose latest verdict is ``ok``.

    Args:
        store: a :class:`Store` or the location of an existing store.
        entry_id: the entry id.
        reason: why, in words (an exception is recorded as ``"Type: message"``).
        metadata: what is known of the entry (``resolution``, ``voxel_size``, ``box``,
            ``release_date``, ``fitted_models``, ``source``, ...), JSON-like.
        status: ``"rejected"`` (did not meet the criteria) or ``"failed"`` (an error).

    Returns:
        The manifest row written.

    Raises:
        InputError: a bad id, status, empty reason, or metadata value.
        TypeError: metadata that is not JSON-like.
        CorpusError: no corpus store at ``store``.
    """
    _check_id(entry_id)
    if status not in ("rejected", "failed"):
        raise InputError(f"entry {entry_id}: status must be 'rejected' or 'failed', "
                         f"got {status!r}")
    if isinstance(reason, BaseException):
        reason = f"{type(reason).__name__}: {reason}"
    if not isinstance(reason, str) or not reason.strip():
        raise InputError(f"entry {entry_id}: a rejection needs a reason, got {reason!r}")
    store = _as_store(store)
    root = store.root()
    meta = _user_metadata(entry_id, metadata, root.attrs["source"],
                          allowed=_ROW_KEYS_ALLOWED_IN_REJECTIONS)
    _hide_and_delete(root[ENTRIES_GROUP], entry_id)
    row = {**meta, "id": entry_id, "status": status, "reason": reason,
           "split": splits.split_of(entry_id), "voxel_size": meta.get("voxel_size"),
           "box": meta.get("box"), "fitted_models": meta.get("fitted_models", []),
           "considered_at": now_utc()}
    _put_manifest_row(root, row)
    return row


def is_complete(store: Store | str | os.PathLike, entry_id: str) -> bool:
    """Whether a complete entry with this id is stored (builders skip those).

    Args:
        store: a :class:`Store` or the location of an existing store.
        entry_id: the entry id.

    Returns:
        True when ``entries/<id>`` exists and is marked complete.

    Raises:
        CorpusError: no corpus store at ``store``.
    """
    root = _as_store(store).root("r")
    try:
        return root[f"{ENTRIES_GROUP}/{entry_id}"].attrs.get("complete") is True
    except KeyError:
        return False


def finalize(store: Store | str | os.PathLike) -> str:
    """Reconcile the manifest with the entries and record the content hash and test-50.

    Run once from the coordinating process after all writers have finished. Complete
    entries lacking an ``ok`` row get one; ``ok`` rows without a complete entry become
    ``failed`` ("entry data missing"). Then the root attributes get ``content_hash``
    (:func:`cref_bench.corpus.layout.content_hash` over the complete entries), ``test_50``
    (:func:`cref_bench.corpus.splits.choose_test50`, keeping the members recorded before),
    ``counts`` (per split and per manifest status) and ``finalized_at``, in one write.

    Args:
        store: a :class:`Store` or the location of an existing store.

    Returns:
        The content hash (sha256 hex).

    Raises:
        CorpusError: no corpus store at ``store``.
    """
    root = _as_store(store).root()
    entries = {i: g.attrs.asdict() for i, g in list_complete_entries(root).items()}
    rows = {r["id"]: r for r in read_manifest_rows(root)}
    for entry_id, attrs in entries.items():
        if rows.get(entry_id, {}).get("status") != "ok":
            rows[entry_id] = _ok_row(attrs)
            _put_manifest_row(root, rows[entry_id])
    for entry_id, row in rows.items():
        if row["status"] == "ok" and entry_id not in entries:
            row.update(status="failed", reason="entry data missing (write interrupted or "
                       "removed)", considered_at=now_utc())
            _put_manifest_row(root, row)
    digest = content_hash(entries.values())
    counts = {s: sum(a["split"] == s for a in entries.values()) for s in splits.SPLITS}
    for status in ("ok", "rejected", "failed"):
        counts[status] = sum(r["status"] == status for r in rows.values())
    test_50 = splits.choose_test50(entries, previous=root.attrs.get("test_50") or ())
    root.attrs.update({"content_hash": digest, "test_50": test_50, "counts": counts,
                       "finalized_at": now_utc()})
    return digest
