"""The corpus store's layout, content hash and opening: what its writer and reader share.

:mod:`dataset_builder.store` writes stores and :mod:`cref_bench.corpus.reader` reads them; both
take the names, the map roles, the hashing and the opening from here (``cref_bench`` may
not import ``dataset_builder``).

On-disk layout (zarr v3; the location is a local path or any fsspec URL)::

    <store>/
      zarr.json                     root group; attributes:
                                      format_version, split_rule_version, created_at, source,
                                      patch {size, stride, threshold, rule}, chunk, compressor,
                                      cref_bench_version, and, from finalize(): content_hash,
                                      finalized_at, test_50 (ids, rank order), counts
      entries/
        <ID>/                       group; attributes (see below), ``complete: true`` last
          <map role>                float32 (z, y, x), one array per map role present (the
                                      roles are listed below), chunks ``chunk``^3 (by
                                      default the patch stride, at most 64: 64 at the
                                      default stride of 96), Blosc lz4 level 1 with bit
                                      shuffle, fill value 0
          patches                   int32 (K, 3): patch origins (z, y, x) in voxels
          models/<name>             uint8 (n,): the UTF-8 bytes of a fitted model (mmCIF),
                                      zstd level 9, 16 MiB chunks
      manifest/
        <ID>/                       group whose attributes are the entry's manifest row

Entry attributes: ``id``, ``complete``, ``format_version``, ``split``,
``split_rule_version``, ``shape``, ``voxel_size`` and ``origin`` (Å, (z, y, x)), ``maps``
(names of the stored maps), ``array_sha256`` (sha256 of each map's float32 little-endian
C-order bytes, of the patch index's int32 little-endian bytes, key ``patches``, and of each
model's bytes, key ``models/<name>``; the reader checks every array it reads against it),
``stats`` (per map except
the mask: ``box`` / ``inside`` / ``outside`` each ``{count, mean, std, min, max}``, inside
meaning ``mask > 0.5``, population std; the ``box`` mean/std are the standardisation
statistics of the patch dataset; for the mask: ``inside_voxels``, ``inside_fraction``,
``min``, ``max``), ``patches`` ``{size, stride, threshold, count}``, ``models`` (stored model
names), ``written_at``; from the builder's metadata: ``resolution`` (Å or None), ``source``
(e.g. ``"emdb"``, ``"synthetic"``; default: the store's source), ``release_date`` (ISO date
or None), ``source_sha256`` (``{file name: sha256 hex}``), ``fitted_models`` (model ids;
default: the stored model names), and every other metadata key, as given.

The content hash (:func:`content_hash`) covers every complete entry's attributes but
:data:`UNHASHED_ATTRIBUTES`, hence the sha256 of every stored map and model.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import zarr

from cref_bench.corpus import splits
from cref_bench.errors import CorpusError

FORMAT_VERSION = 1
"""Version of the store layout; readers refuse stores with another version."""

ENTRIES_GROUP = "entries"
MANIFEST_GROUP = "manifest"
MODELS_GROUP = "models"
PATCHES_ARRAY = "patches"


@dataclass(frozen=True)
class MapRole:
    """One kind of map an entry stores, all on one grid.

    Attributes:
        name: the array's name in the entry group (and the keyword of the writer and the
            attribute of the reader's entry).
        required: whether every entry has it.
        meaning: what the map is, in words.
    """

    name: str
    required: bool
    meaning: str


MAP_ROLES = (
    MapRole("half1", True, "the first half-map"),
    MapRole("half2", True, "the second half-map"),
    MapRole("mask", True, "the mask, values in [0, 1]; a voxel > 0.5 is inside"),
    MapRole("truth", False, "the noise-free map (phantoms and simulations)"),
    MapRole("reference", False, "a higher-resolution map of the same specimen, on the "
                                "halves' grid"),
)
"""The maps an entry may hold, in storage order."""

MAP_ROLE_NAMES = tuple(role.name for role in MAP_ROLES)
REQUIRED_MAPS = tuple(role.name for role in MAP_ROLES if role.required)

MASK_THRESHOLD = 0.5
"""A voxel is inside the mask when its mask value is above this."""

MASK_TOLERANCE = 1e-3
"""Mask values may stray this far outside ``[0, 1]`` (rounding in files) before refusal."""

MANIFEST_COLUMNS = ("id", "status", "reason", "split", "source", "resolution", "voxel_size",
                    "box", "release_date", "fitted_models", "considered_at")
"""The leading columns of the manifest table; extra metadata keys follow them."""

UNHASHED_ATTRIBUTES = frozenset({"written_at", "stats", "complete"})
"""Entry attributes left out of the content hash: the write time, the completion mark, and
the statistics (derived from the arrays, whose sha256 is hashed; their last floating-point
digits may differ between machines)."""


def _roles_table() -> str:
    width = max(len(name) for name in MAP_ROLE_NAMES)
    lines = [f"    {role.name:<{width}}  {'required' if role.required else 'optional'}  "
             f"{role.meaning}" for role in MAP_ROLES]
    return "\nMap roles (:data:`MAP_ROLES`)::\n\n" + "\n".join(lines) + "\n"


__doc__ += _roles_table()  # the documented roles are the table itself


def normalise_location(path: str | os.PathLike) -> str:
    """The store location as zarr should see it.

    ``file://`` URLs become plain paths, so that zarr uses its local store (atomic writes,
    parent folders created) rather than the generic fsspec one.

    Args:
        path: a local path or an fsspec URL (``memory://x``, ``s3://bucket/x``, ...).

    Returns:
        The location string.

    Raises:
        TypeError: ``path`` is neither a str nor a path-like object.
    """
    location = os.fspath(path)
    if not isinstance(location, str):
        raise TypeError(f"a store location must be a str or path, got {path!r}")
    if location.startswith("file://"):
        return location[len("file://"):]
    return location


def open_root(location: str, mode: str = "r", storage_options: dict | None = None) -> zarr.Group:
    """The root group of whatever zarr group is at ``location`` (not checked to be a store).

    Args:
        location: a normalised location (:func:`normalise_location`).
        mode: zarr access mode (``"r"`` or ``"r+"``).
        storage_options: fsspec options for URLs.

    Returns:
        The group.

    Raises:
        CorpusError: nothing at ``location``, or a zarr array rather than a group.
    """
    try:
        return zarr.open_group(location, mode=mode, storage_options=storage_options)
    except (FileNotFoundError, zarr.errors.NodeNotFoundError) as err:
        raise CorpusError(location, f"no corpus store here ({err})") from err
    except zarr.errors.ContainsArrayError as err:
        raise CorpusError(location, "this is a zarr array, not a corpus store") from err


def check_store_root(location: str, root: zarr.Group) -> None:
    """Check that ``root`` is a corpus store of the format and split rule of this package.

    Args:
        location: the store path or URL (for the message).
        root: the store's root group.

    Raises:
        CorpusError: not a cref-bench store, or another format or split-rule version.
    """
    attrs = root.attrs.asdict()
    if "format_version" not in attrs or ENTRIES_GROUP not in root:
        raise CorpusError(location, "a zarr group but not a cref-bench corpus store "
                          "(no format_version attribute or entries group)")
    if attrs["format_version"] != FORMAT_VERSION:
        raise CorpusError(location, f"store format version {attrs['format_version']}, but this "
                          f"cref_bench reads and writes version {FORMAT_VERSION}")
    if attrs.get("split_rule_version") != splits.SPLIT_RULE_VERSION:
        raise CorpusError(location, f"split rule version {attrs.get('split_rule_version')}, "
                          f"but this cref_bench uses version {splits.SPLIT_RULE_VERSION}")


def open_store_root(location: str, mode: str = "r",
                    storage_options: dict | None = None) -> zarr.Group:
    """The root group of the corpus store at ``location``, checked (:func:`check_store_root`).

    Args:
        location: a normalised location (:func:`normalise_location`).
        mode: zarr access mode (``"r"`` or ``"r+"``).
        storage_options: fsspec options for URLs.

    Returns:
        The root group.

    Raises:
        CorpusError: nothing there, not a cref-bench store, or another format or split-rule
            version.
    """
    root = open_root(location, mode, storage_options)
    check_store_root(location, root)
    return root


def _members(group: zarr.Group) -> list[tuple[str, object]]:
    with warnings.catch_warnings():
        # leftovers of an interrupted delete (folders with no zarr.json) are not members
        warnings.filterwarnings("ignore", message=".*not recognized as a component.*")
        return list(group.members())


def list_complete_entries(root: zarr.Group) -> dict[str, zarr.Group]:
    """The complete entries of an opened store, by id.

    Args:
        root: the store's root group.

    Returns:
        ``{id: entry group}`` for every group under ``entries/`` whose ``complete`` attribute
        is true; leftovers of interrupted writes are skipped silently.

    Raises:
        KeyError: the store has no ``entries`` group.
    """
    return {name: node for name, node in _members(root[ENTRIES_GROUP])
            if isinstance(node, zarr.Group) and node.attrs.get("complete") is True}


def read_manifest_rows(root: zarr.Group) -> list[dict]:
    """Every manifest row of an opened store.

    Args:
        root: the store's root group.

    Returns:
        One dict per entry considered, in id order.

    Raises:
        KeyError: the store has no ``manifest`` group.
    """
    rows = [node.attrs.asdict() for _, node in _members(root[MANIFEST_GROUP])
            if isinstance(node, zarr.Group)]
    return sorted((r for r in rows if "status" in r), key=lambda r: r["id"])


def entry_digest(attrs: Mapping) -> str:
    """The digest of one complete entry: every attribute but :data:`UNHASHED_ATTRIBUTES`.

    That covers the id, the grid (shape, voxel size, origin), the sha256 of every stored
    array and model, the patch index parameters and the builder's metadata (resolution,
    source, source checksums, ...): a change to any of them changes the digest.

    Args:
        attrs: the entry's attributes as stored (needs ``id``, ``shape``, ``voxel_size``,
            ``origin`` and ``array_sha256``).

    Returns:
        A sha256 hex digest of those attributes in canonical JSON.

    Raises:
        KeyError: a needed attribute is missing.
    """
    missing = [k for k in ("id", "shape", "voxel_size", "origin", "array_sha256")
               if k not in attrs]
    if missing:
        raise KeyError(f"entry attributes lack {missing}: not a stored entry")
    fields = {k: v for k, v in attrs.items() if k not in UNHASHED_ATTRIBUTES}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(entry_attrs: Iterable[Mapping]) -> str:
    """The content hash of a corpus: independent of the order the entries come in.

    Args:
        entry_attrs: the attributes of every complete entry.

    Returns:
        sha256 hex digest of the sorted lines ``"<id> <entry digest>\\n"``.

    Raises:
        KeyError: an entry lacks a field :func:`entry_digest` needs.
    """
    lines = sorted(f"{a['id']} {entry_digest(a)}\n" for a in entry_attrs)
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
