"""Read-only access to a cref-bench corpus store, and a torch dataset of training patches.

The store is written by :mod:`dataset_builder.store` (its docstring describes the on-disk
layout). This module only reads it; the few definitions both sides need (format version,
layout names, the content hash) live here because ``cref_bench`` may not import
``dataset_builder``.

* :func:`open_corpus` opens a store (local path or any fsspec URL) and lists its *complete*
  entries once, at open: an entry whose write was interrupted is invisible. Ids are selected
  by split (``train``, ``valid``, ``test``, ``test-50``, ``all``; see :mod:`cref_bench.splits`).
* :class:`Entry` reads its maps only when an attribute (``half1``, ``half2``, ``mask``,
  ``truth``) is first accessed, and keeps them while the Entry lives.
* :class:`PatchDataset` serves ``(half1, half2, mask)`` patches of the stored patch index as
  float32 tensors of shape ``(1, P, P, P)`` (P = 96 in stores built with the defaults), for
  training crefDenoiser-style networks. Per half-map, in this order:

  1. standardise with that half-map's own whole-box mean and standard deviation (computed at
     write time and stored, so no whole map is read here): ``z = (x - mean) / std``;
  2. multiply by the mask patch: ``z * mask``.

  The mask patch is returned as stored (values in ``[0, 1]``). With ``augment=True`` the three
  arrays of an item get the same rotation, drawn uniformly from the 24 proper rotations of
  the cube by a generator seeded with ``(seed, epoch, index)``.

Typical use::

    corpus = open_corpus("corpus.zarr")           # or "s3://bucket/corpus.zarr", ...
    corpus.content_hash, corpus.format_version    # provenance (corpus.version: short label)
    for entry_id in corpus.ids("test-50"):        # train | valid | test | test-50 | all
        entry = corpus.entry(entry_id)            # or: for entry in corpus.entries("test")
        entry.half1, entry.half2, entry.mask      # Volumes (data, voxel_size, origin)
        entry.truth                               # a Volume for phantoms, else None
        entry.resolution, entry.metadata          # reported resolution (Å), all attributes
    corpus.manifest                               # DataFrame, one row per entry considered
    patches = corpus.patch_dataset("train", augment=True, seed=0)  # a torch Dataset
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property

import numpy as np
import pandas as pd
import torch
import zarr
from tqdm.auto import tqdm

from cref_bench import splits
from cref_bench.errors import SourceError
from cref_bench.volume import Volume

FORMAT_VERSION = 1
"""Version of the store layout; readers refuse stores with another version."""

ENTRIES_GROUP = "entries"
MANIFEST_GROUP = "manifest"
MODELS_GROUP = "models"
PATCHES_ARRAY = "patches"
MAP_NAMES = ("half1", "half2", "mask", "truth")
HALF_NAMES = ("half1", "half2")

MANIFEST_COLUMNS = ("id", "status", "reason", "split", "source", "resolution", "voxel_size",
                    "box", "release_date", "fitted_models", "considered_at")
"""The leading columns of the manifest table; extra metadata keys follow them."""

# The 24 proper rotations of a cube are "bring one of 6 faces to the top" (one rot90 in the
# given plane, k quarter turns) followed by k2 in 0..3 quarter turns about the vertical axis.
_FACE_MOVES = ((0, (0, 1)), (1, (0, 1)), (2, (0, 1)), (3, (0, 1)), (1, (0, 2)), (3, (0, 2)))


class CorpusError(SourceError):
    """A corpus store that cannot be used, or a request it cannot answer.

    Args:
        location: the store path or URL (also available as ``.location``).
        fault: what is wrong, in words.
    """

    @property
    def location(self) -> str:
        """The store path or URL."""
        return self.source


class StaleCorpusWarning(UserWarning):
    """The store's entries differ from what its last ``finalize`` recorded (or it had none)."""


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


UNHASHED_ATTRIBUTES = frozenset({"written_at", "stats", "complete"})
"""Entry attributes left out of the content hash: the write time, the completion mark, and
the statistics (derived from the arrays, whose sha256 is hashed; their last floating-point
digits may differ between machines)."""


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
    with warnings.catch_warnings():
        # leftovers of an interrupted delete (folders with no zarr.json) are not entries
        warnings.filterwarnings("ignore", message=".*not recognized as a component.*")
        members = list(root[ENTRIES_GROUP].members())
    return {name: node for name, node in members
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
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component.*")
        members = list(root[MANIFEST_GROUP].members())
    rows = [node.attrs.asdict() for _, node in members if isinstance(node, zarr.Group)]
    return sorted((r for r in rows if "status" in r), key=lambda r: r["id"])


def manifest_frame(rows: list[dict]) -> pd.DataFrame:
    """Manifest rows as a DataFrame: the :data:`MANIFEST_COLUMNS` first, then extra keys.

    Args:
        rows: manifest rows (dicts).

    Returns:
        A DataFrame with one row per entry considered (empty, with the leading columns, when
        there are none).
    """
    extra = sorted({k for r in rows for k in r} - set(MANIFEST_COLUMNS))
    columns = list(MANIFEST_COLUMNS) + extra
    return pd.DataFrame([[r.get(c) for c in columns] for r in rows], columns=columns)


def cube_rotation(array: np.ndarray, face: int, quarter_turns: int) -> np.ndarray:
    """One of the 24 proper rotations of a cube applied to a 3D array (a view, no copy).

    Args:
        array: a 3D array (cubic for the result to keep its shape).
        face: which face is brought to the top, 0..5.
        quarter_turns: quarter turns about axis 0 afterwards, 0..3 (in the plane of axes 1, 2).

    Returns:
        The rotated array.

    Raises:
        ValueError: ``face`` or ``quarter_turns`` out of range, or ``array`` not 3D.
    """
    if np.ndim(array) != 3:
        raise ValueError(f"cube_rotation needs a 3D array, got shape {np.shape(array)}")
    if not (0 <= face < 6 and 0 <= quarter_turns < 4):
        raise ValueError(f"face must be 0..5 and quarter_turns 0..3, got {face}, {quarter_turns}")
    k, axes = _FACE_MOVES[face]
    return np.rot90(np.rot90(array, k, axes=axes), quarter_turns, axes=(1, 2))


class Entry:
    """One complete corpus entry: lazy maps and its metadata.

    Created by :meth:`Corpus.entry`; maps are read on first attribute access and kept.

    Attributes:
        id: the entry id.
        metadata: every stored attribute (id, geometry, resolution, source, checksums,
            statistics, patch index parameters, split, and the builder's own metadata).
    """

    def __init__(self, group: zarr.Group, location: str):
        self._group = group
        self._location = location
        self.metadata: dict = group.attrs.asdict()
        self.id: str = self.metadata["id"]

    def __repr__(self) -> str:
        return f"Entry({self.id!r}, shape={self.shape}, split={self.split!r})"

    @property
    def split(self) -> str:
        """``"train"``, ``"valid"`` or ``"test"``."""
        return self.metadata["split"]

    @property
    def shape(self) -> tuple[int, int, int]:
        """The box in voxels, ``(z, y, x)``."""
        return tuple(self.metadata["shape"])

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Å per voxel, ``(z, y, x)``."""
        return tuple(self.metadata["voxel_size"])

    @property
    def origin(self) -> tuple[float, float, float]:
        """Å position of voxel ``(0, 0, 0)``, ``(z, y, x)``."""
        return tuple(self.metadata["origin"])

    @property
    def resolution(self) -> float | None:
        """The reported resolution in Å (``None`` when the source gave none)."""
        return self.metadata.get("resolution")

    @property
    def model_names(self) -> list[str]:
        """Names of the fitted models stored with the entry (mmCIF text)."""
        return list(self.metadata.get("models", []))

    def array(self, name: str) -> zarr.Array:
        """The stored zarr array ``name`` (for partial reads).

        Args:
            name: ``half1``, ``half2``, ``mask``, ``truth`` or ``patches``.

        Returns:
            The read-only zarr array.

        Raises:
            CorpusError: the entry has no such array.
        """
        stored = list(self.metadata["maps"]) + [PATCHES_ARRAY]
        if name not in stored:
            raise CorpusError(self._location, f"entry {self.id} has no array {name!r} "
                              f"(it has {', '.join(stored)})")
        return self._group[name]

    def _volume(self, name: str) -> Volume:
        data = self.array(name)[...]
        return Volume(data, self.voxel_size, self.origin,
                      source=f"{self._location}/{ENTRIES_GROUP}/{self.id}/{name}")

    @cached_property
    def half1(self) -> Volume:
        """The first half-map (read on first access)."""
        return self._volume("half1")

    @cached_property
    def half2(self) -> Volume:
        """The second half-map (read on first access)."""
        return self._volume("half2")

    @cached_property
    def mask(self) -> Volume:
        """The mask, values in ``[0, 1]`` (read on first access)."""
        return self._volume("mask")

    @cached_property
    def truth(self) -> Volume | None:
        """The noise-free map of a phantom, ``None`` for real data (read on first access)."""
        return self._volume("truth") if "truth" in self.metadata["maps"] else None

    @property
    def patches(self) -> np.ndarray:
        """The patch index: ``(K, 3)`` int64 patch origins (voxels, ``(z, y, x)``)."""
        return np.asarray(self.array(PATCHES_ARRAY)[...], dtype=np.int64).reshape(-1, 3)

    def standardisation(self, name: str) -> tuple[float, float]:
        """The whole-box ``(mean, std)`` of a map, as stored at write time.

        Args:
            name: ``half1``, ``half2`` or ``truth``.

        Returns:
            ``(mean, std)`` over every voxel of the box.

        Raises:
            CorpusError: no statistics are stored for ``name``.
        """
        stats = self.metadata["stats"].get(name)
        if stats is None:
            raise CorpusError(self._location, f"entry {self.id} has no statistics for {name!r}")
        return stats["box"]["mean"], stats["box"]["std"]

    def model(self, name: str) -> str:
        """The text (mmCIF) of a stored fitted model.

        Args:
            name: one of :attr:`model_names`.

        Returns:
            The model file's text.

        Raises:
            CorpusError: no model of that name is stored.
        """
        if name not in self.model_names:
            raise CorpusError(self._location, f"entry {self.id} has no model {name!r} "
                              f"(it has {self.model_names or 'none'})")
        raw = self._group[f"{MODELS_GROUP}/{name}"][...]
        return np.asarray(raw, dtype=np.uint8).tobytes().decode("utf-8")


class Corpus:
    """An opened corpus store (read-only). Made by :func:`open_corpus`.

    The set of complete entries is listed once, when the store is opened.

    Attributes:
        location: the store path or URL.
        attrs: the store's root attributes.
    """

    def __init__(self, root: zarr.Group, location: str, storage_options: dict | None):
        self._root = root
        self.location = location
        self.storage_options = storage_options
        self.attrs: dict = root.attrs.asdict()
        self._entries = list_complete_entries(root)

    def __repr__(self) -> str:
        return f"Corpus({self.location!r}, entries={len(self)}, version={self.version!r})"

    @property
    def format_version(self) -> int:
        """The store layout version (:data:`FORMAT_VERSION`)."""
        return self.attrs["format_version"]

    @property
    def split_rule_version(self) -> int:
        """The split rule version (:data:`cref_bench.splits.SPLIT_RULE_VERSION`)."""
        return self.attrs["split_rule_version"]

    @property
    def content_hash(self) -> str | None:
        """The content hash recorded by the last ``finalize`` (``None`` if never finalised)."""
        return self.attrs.get("content_hash")

    @property
    def version(self) -> str:
        """A short label for provenance: ``f<format>-s<split rule>-<first 12 of hash>``."""
        tag = (self.content_hash or "unfinalised")[:12]
        return f"f{self.format_version}-s{self.split_rule_version}-{tag}"

    @property
    def source(self) -> str:
        """The description of the store's source given when it was created."""
        return self.attrs.get("source", "")

    @property
    def patch_size(self) -> int:
        """Edge of the patches in the patch index, voxels."""
        return int(self.attrs["patch"]["size"])

    def current_hash(self) -> str:
        """The content hash of the entries visible now (what ``finalize`` would record)."""
        return content_hash(g.attrs.asdict() for g in self._entries.values())

    def ids(self, split: str = "all") -> list[str]:
        """Ids of the complete entries of a split.

        Args:
            split: ``train``, ``valid``, ``test``, ``test-50`` or ``all``.

        Returns:
            The ids, sorted (``test-50`` in its rank order: the list recorded by the last
            ``finalize``, topped up by :func:`cref_bench.splits.choose_test50` with entries
            added since).

        Raises:
            CorpusError: an unknown split name.
        """
        if split not in splits.SELECTIONS:
            raise CorpusError(self.location, f"unknown split {split!r}; expected one of "
                              f"{', '.join(splits.SELECTIONS)}")
        return splits.select(self._entries, split,
                             previous_test50=self.attrs.get("test_50") or ())

    def entry(self, entry_id: str) -> Entry:
        """One complete entry.

        Args:
            entry_id: its id.

        Returns:
            The :class:`Entry` (no map is read yet).

        Raises:
            CorpusError: no complete entry with that id.
        """
        group = self._entries.get(entry_id)
        if group is None:
            raise CorpusError(self.location, f"no complete entry {entry_id!r} in the corpus "
                              f"({len(self._entries)} entries)")
        return Entry(group, self.location)

    def entries(self, split: str = "all") -> Iterator[Entry]:
        """The entries of a split, in :meth:`ids` order.

        Args:
            split: as in :meth:`ids`.

        Returns:
            An iterator of :class:`Entry`.

        Raises:
            CorpusError: an unknown split name.
        """
        return (self.entry(i) for i in self.ids(split))

    def __iter__(self) -> Iterator[Entry]:
        return self.entries("all")

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    @property
    def manifest(self) -> pd.DataFrame:
        """The manifest: one row per entry considered (ok, rejected or failed), read now."""
        return manifest_frame(read_manifest_rows(self._root))

    def patch_dataset(self, split: str = "train", **kwargs) -> "PatchDataset":
        """A :class:`PatchDataset` over a split of this corpus (keywords as there)."""
        return PatchDataset(self, split, **kwargs)


def _open_root(location: str, storage_options: dict | None) -> zarr.Group:
    try:
        return zarr.open_group(location, mode="r", storage_options=storage_options)
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


def open_corpus(path: str | os.PathLike, *, storage_options: dict | None = None,
                warn_stale: bool = True) -> Corpus:
    """Open a corpus store for reading.

    Args:
        path: a local path or an fsspec URL of the store.
        storage_options: passed to fsspec for URLs (credentials, endpoints, ...).
        warn_stale: warn (:class:`StaleCorpusWarning`) when the store was never finalised or
            its entries changed since.

    Returns:
        The :class:`Corpus`.

    Raises:
        CorpusError: nothing at ``path``, not a cref-bench store, or a format / split-rule
            version this package does not read.
    """
    location = normalise_location(path)
    root = _open_root(location, storage_options)
    check_store_root(location, root)
    corpus = Corpus(root, location, storage_options)
    if warn_stale:
        if corpus.content_hash is None:
            warnings.warn(f"{location}: the store was never finalised (no content hash)",
                          StaleCorpusWarning, stacklevel=2)
        elif corpus.current_hash() != corpus.content_hash:
            warnings.warn(f"{location}: entries changed since the store was finalised; its "
                          f"recorded content hash is stale", StaleCorpusWarning, stacklevel=2)
    return corpus


class PatchDataset(torch.utils.data.Dataset):
    """Training patches from the patch index of a split: ``(half1, half2, mask)`` tensors.

    Each item is three float32 tensors of shape ``(1, P, P, P)``: each half-map standardised
    with its own whole-box mean/std, then multiplied by the mask; and the mask. Reading an
    item reads only the zarr chunks the patch overlaps. Picklable: zarr is opened lazily in
    each process (DataLoader workers included).

    With ``augment=True`` an item is rotated by one of the 24 proper cube rotations, the same
    for its three arrays, drawn from ``numpy.random.default_rng((seed, epoch, index))``:
    deterministic given (seed, epoch, index). Call :meth:`set_epoch` before each epoch;
    DataLoader workers see the new epoch when they are started for that epoch (the default,
    ``persistent_workers=False``).

    Args:
        corpus: an opened :class:`Corpus` or a store location.
        split: ``train``, ``valid``, ``test``, ``test-50`` or ``all``.
        augment: apply random rotations.
        seed: seed of the augmentation.
        progress: show a progress bar while the patch index is read.
        storage_options: fsspec options when ``corpus`` is a location.

    Raises:
        CorpusError: as :func:`open_corpus` and :meth:`Corpus.ids`.
    """

    def __init__(self, corpus: Corpus | str | os.PathLike, split: str = "train", *,
                 augment: bool = False, seed: int = 0, progress: bool = True,
                 storage_options: dict | None = None):
        if not isinstance(corpus, Corpus):
            corpus = open_corpus(corpus, storage_options=storage_options)
        self.location = corpus.location
        self.storage_options = corpus.storage_options
        self.split = split
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.patch_size = corpus.patch_size
        ids, origins, owners, norms = [], [], [], []
        for entry in tqdm(corpus.entries(split), total=len(corpus.ids(split)),
                          desc=f"patch index ({split})", disable=not progress):
            found = entry.patches
            if len(found) == 0:
                continue
            owners.append(np.full(len(found), len(ids), dtype=np.int64))
            origins.append(found)
            ids.append(entry.id)
            norms.append([entry.standardisation(h) for h in HALF_NAMES])
        self.entry_ids: list[str] = ids
        self._origins = np.concatenate(origins) if origins else np.zeros((0, 3), np.int64)
        self._owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        self._norm = np.asarray(norms, dtype=np.float64).reshape(len(ids), 2, 2)
        self._pid: int | None = None
        self._root: zarr.Group | None = None
        self._arrays: dict[int, tuple[zarr.Array, zarr.Array, zarr.Array]] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pid"], state["_root"], state["_arrays"] = None, None, {}
        return state

    def __len__(self) -> int:
        return len(self._origins)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds the augmentation (with the seed and the item index)."""
        self.epoch = int(epoch)

    def locate(self, index: int) -> tuple[str, tuple[int, int, int]]:
        """Which entry and patch origin (voxels, ``(z, y, x)``) item ``index`` is."""
        self._check_index(index)
        return self.entry_ids[self._owner[index]], tuple(int(v) for v in self._origins[index])

    def rotation(self, index: int) -> tuple[int, int]:
        """The ``(face, quarter_turns)`` of :func:`cube_rotation` applied to item ``index``
        in the current epoch (``(0, 0)``, the identity, when not augmenting)."""
        self._check_index(index)
        if not self.augment:
            return 0, 0
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return int(rng.integers(6)), int(rng.integers(4))

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"patch index {index} out of range (0..{len(self) - 1})")

    def _entry_arrays(self, owner: int) -> tuple[zarr.Array, zarr.Array, zarr.Array]:
        if self._pid != os.getpid():  # first use in this process (or a fork of it)
            self._root = _open_root(self.location, self.storage_options)
            self._arrays, self._pid = {}, os.getpid()
        if owner not in self._arrays:
            group = self._root[f"{ENTRIES_GROUP}/{self.entry_ids[owner]}"]
            self._arrays[owner] = (group["half1"], group["half2"], group["mask"])
        return self._arrays[owner]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self._check_index(index)
        owner = int(self._owner[index])
        z, y, x = (int(v) for v in self._origins[index])
        p = self.patch_size
        window = (slice(z, z + p), slice(y, y + p), slice(x, x + p))
        half1, half2, mask = (a[window] for a in self._entry_arrays(owner))
        out = []
        for half, (mean, std) in zip((half1, half2), self._norm[owner]):
            half = np.asarray(half, dtype=np.float32)
            half -= np.float32(mean)
            half /= np.float32(std)
            half *= mask
            out.append(half)
        out.append(np.asarray(mask, dtype=np.float32))
        face, turns = self.rotation(index)
        return tuple(torch.from_numpy(np.ascontiguousarray(cube_rotation(a, face, turns))[None])
                     for a in out)
