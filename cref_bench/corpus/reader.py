"""Read-only access to a cref-bench corpus store.

The store is written by :mod:`dataset_builder.store`; its layout, map roles and content hash
are those of :mod:`cref_bench.corpus.layout`. This module only reads it.

* :func:`open_corpus` opens a store (local path or any fsspec URL) and lists its *complete*
  entries once, at open: an entry whose write was interrupted is invisible. Ids are selected
  by split (``train``, ``valid``, ``test``, ``test-50``, ``all``;
  see :mod:`cref_bench.corpus.splits`).
* :class:`Entry` reads a map (``half1``, ``half2``, ``mask``, ``truth``, ``reference``) only
  when its attribute is first accessed, and keeps it while the Entry lives.

Typical use::

    corpus = open_corpus("corpus.zarr")           # or "s3://bucket/corpus.zarr", ...
    corpus.content_hash, corpus.format_version    # provenance (corpus.version: short label)
    for entry_id in corpus.ids("test-50"):        # train | valid | test | test-50 | all
        entry = corpus.entry(entry_id)            # or: for entry in corpus.entries("test")
        entry.half1, entry.half2, entry.mask      # Volumes (data, voxel_size, origin)
        entry.truth, entry.reference              # Volumes where stored, else None
        entry.resolution, entry.metadata          # reported resolution (Å), all attributes
    corpus.manifest                               # DataFrame, one row per entry considered
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import zarr

from cref_bench.corpus import splits
from cref_bench.corpus.layout import (
    ENTRIES_GROUP,
    MANIFEST_COLUMNS,
    MAP_ROLE_NAMES,
    MODELS_GROUP,
    PATCHES_ARRAY,
    content_hash,
    list_complete_entries,
    normalise_location,
    open_store_root,
    read_manifest_rows,
)
from cref_bench.errors import CorpusError
from cref_bench.maps.volume import Volume


class StaleCorpusWarning(UserWarning):
    """The store's entries differ from what its last ``finalize`` recorded (or it had none)."""


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


class Entry:
    """One complete corpus entry: lazy maps and its metadata.

    Created by :meth:`Corpus.entry`; maps are read on first attribute access and kept.

    Attributes:
        id: the entry id.
        metadata: every stored attribute (id, geometry, resolution, source, checksums,
            statistics, patch index parameters, split, and the builder's own metadata).
    """

    def __init__(self, group: zarr.Group, location: str, verify: bool = True):
        self._group = group
        self._location = location
        self._verify = verify
        self.metadata: dict = group.attrs.asdict()
        self.id: str = self.metadata["id"]
        self._maps: dict[str, Volume | None] = {}

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
            name: a stored map role (``half1``, ``half2``, ``mask``, ...) or ``patches``.

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

    def map(self, role: str) -> Volume | None:
        """The map of a role (:data:`cref_bench.corpus.layout.MAP_ROLES`), read on first access
        and kept.

        Args:
            role: ``half1``, ``half2``, ``mask``, ``truth`` or ``reference``.

        Returns:
            The map, or ``None`` for an optional role this entry does not store.

        Raises:
            CorpusError: ``role`` is not a map role.
        """
        if role not in MAP_ROLE_NAMES:
            raise CorpusError(self._location, f"entry {self.id}: no map role {role!r} "
                              f"(the roles are {', '.join(MAP_ROLE_NAMES)})")
        if role not in self._maps:
            self._maps[role] = None
            if role in self.metadata["maps"]:
                data = self._verified(role, self.array(role)[...])
                self._maps[role] = Volume(
                    data, self.voxel_size, self.origin,
                    source=f"{self._location}/{ENTRIES_GROUP}/{self.id}/{role}")
        return self._maps[role]

    def maps(self, roles: tuple[str, ...] = MAP_ROLE_NAMES) -> dict[str, Volume | None]:
        """Several maps at once (as :meth:`map` reads them), each map's digest computed in a
        thread while the next map is read (hashlib releases the GIL), so that the check
        costs little more than the reads.

        Args:
            roles: the map roles wanted (default: all).

        Returns:
            ``{role: map, or None where the entry stores none}``.

        Raises:
            CorpusError: an unknown role, or a map that differs from its recorded digest.
        """
        wanted = [r for r in roles if r not in self._maps and r in self.metadata["maps"]]
        if not self._verify or len(wanted) < 2:
            return {role: self.map(role) for role in roles}
        read: dict[str, np.ndarray] = {}
        with ThreadPoolExecutor(1, thread_name_prefix="cref-bench-digest") as pool:
            hashing = {}
            for role in wanted:
                data = self.array(role)[...]
                read[role] = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
                view = memoryview(read[role].reshape(-1)).cast("B")
                hashing[role] = pool.submit(lambda v: hashlib.sha256(v).hexdigest(), view)
            for role, digest in hashing.items():
                self._compare(role, digest.result(), self._recorded(role))
        for role, data in read.items():
            self._maps[role] = Volume(data, self.voxel_size, self.origin,
                                      source=f"{self._location}/{ENTRIES_GROUP}/{self.id}/{role}")
        return {role: self.map(role) for role in roles}

    def _recorded(self, name: str) -> str:
        recorded = self.metadata.get("array_sha256", {}).get(name)
        if recorded is None:
            raise CorpusError(self._location, f"entry {self.id}: no digest of array {name!r} "
                              "is recorded; the store cannot be verified (rebuild it)")
        return recorded

    def _compare(self, name: str, found: str, recorded: str) -> None:
        if found != recorded:
            raise CorpusError(self._location, f"entry {self.id}: array {name!r} was changed "
                              f"after the store was written (its sha256 is {found[:16]}..., "
                              f"the store recorded {recorded[:16]}...); the store is refused: "
                              "restore or rebuild it")

    def _verified(self, name: str, data: np.ndarray) -> np.ndarray:
        """``data``, read from the array ``name``, once its sha256 is found to be the one
        recorded when the store was written (unless the corpus was opened with
        ``verify=False``).

        Raises:
            CorpusError: no digest is recorded for the array, or the data differs from it.
        """
        if not self._verify:
            return data
        recorded = self._recorded(name)
        data = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
        self._compare(name, hashlib.sha256(memoryview(data.reshape(-1)).cast("B")).hexdigest(),
                      recorded)
        return data

    @property
    def half1(self) -> Volume:
        """The first half-map (read on first access)."""
        return self.map("half1")

    @property
    def half2(self) -> Volume:
        """The second half-map (read on first access)."""
        return self.map("half2")

    @property
    def mask(self) -> Volume:
        """The mask, values in ``[0, 1]`` (read on first access)."""
        return self.map("mask")

    @property
    def truth(self) -> Volume | None:
        """The noise-free map (phantoms, simulations), else ``None`` (read on first access)."""
        return self.map("truth")

    @property
    def reference(self) -> Volume | None:
        """A higher-resolution map of the same specimen where stored, else ``None`` (read on
        first access)."""
        return self.map("reference")

    @property
    def patches(self) -> np.ndarray:
        """The patch index: ``(K, 3)`` int64 patch origins (voxels, ``(z, y, x)``)."""
        stored = self._verified(PATCHES_ARRAY, self.array(PATCHES_ARRAY)[...])
        return np.asarray(stored, dtype=np.int64).reshape(-1, 3)

    def standardisation(self, name: str) -> tuple[float, float]:
        """The whole-box ``(mean, std)`` of a map, as stored at write time.

        Args:
            name: a stored map other than the mask (``half1``, ``half2``, ``truth``, ...).

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
        key = f"{MODELS_GROUP}/{name}"
        raw = self._verified(key, np.asarray(self._group[key][...], dtype=np.uint8))
        return raw.tobytes().decode("utf-8")


class Corpus:
    """An opened corpus store (read-only). Made by :func:`open_corpus`.

    The set of complete entries is listed once, when the store is opened.

    Attributes:
        location: the store path or URL.
        attrs: the store's root attributes.
    """

    def __init__(self, root: zarr.Group, location: str, storage_options: dict | None,
                 verify: bool = True):
        self._root = root
        self.location = location
        self.storage_options = storage_options
        self.verify = verify
        self.attrs: dict = root.attrs.asdict()
        self._entries = list_complete_entries(root)

    def __repr__(self) -> str:
        return f"Corpus({self.location!r}, entries={len(self)}, version={self.version!r})"

    def __reduce__(self):
        """Pickled as its location: unpickling (on a dask worker, say) opens it again."""
        return _reopen, (self.location, self.storage_options)

    @property
    def format_version(self) -> int:
        """The store layout version (:data:`cref_bench.corpus.layout.FORMAT_VERSION`)."""
        return self.attrs["format_version"]

    @property
    def split_rule_version(self) -> int:
        """The split rule version (:data:`cref_bench.corpus.splits.SPLIT_RULE_VERSION`)."""
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
            ``finalize``, topped up by :func:`cref_bench.corpus.splits.choose_test50` with entries
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
        return Entry(group, self.location, self.verify)

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


def _reopen(location: str, storage_options: dict | None) -> Corpus:
    """A pickled :class:`Corpus` opened again (without the staleness warning)."""
    return open_corpus(location, storage_options=storage_options, warn_stale=False)


def open_corpus(path: str | os.PathLike, *, storage_options: dict | None = None,
                warn_stale: bool = True, verify: bool = True) -> Corpus:
    """Open a corpus store for reading.

    Args:
        path: a local path or an fsspec URL of the store.
        storage_options: passed to fsspec for URLs (credentials, endpoints, ...).
        warn_stale: warn (:class:`StaleCorpusWarning`) when the store was never finalised or
            its entries changed since.
        verify: check every array read (maps, patch index, models) against the sha256 the
            store recorded when it was written, refusing a changed one
            (:class:`~cref_bench.errors.CorpusError` naming the entry and the array).

    Returns:
        The :class:`Corpus` (opened read-only).

    Raises:
        CorpusError: nothing at ``path``, not a cref-bench store, or a format / split-rule
            version this package does not read.
    """
    location = normalise_location(path)
    root = open_store_root(location, "r", storage_options)
    corpus = Corpus(root, location, storage_options, verify)
    if warn_stale:
        if corpus.content_hash is None:
            warnings.warn(f"{location}: the store was never finalised (no content hash)",
                          StaleCorpusWarning, stacklevel=2)
        elif corpus.current_hash() != corpus.content_hash:
            warnings.warn(f"{location}: entries changed since the store was finalised; its "
                          f"recorded content hash is stale", StaleCorpusWarning, stacklevel=2)
    return corpus


def verify_store(corpus: Corpus) -> list[str]:
    """Every way a store differs from what was recorded when it was written.

    Reads every array of every complete entry (maps, patch index, models) and compares it
    with its recorded sha256, and compares the entries' attributes with the content hash
    recorded by ``finalize``.

    Args:
        corpus: the opened corpus.

    Returns:
        One message per fault (the entry and the array, or the stale content hash); empty
        when the store is as written.
    """
    faults = []
    if corpus.content_hash is None:
        faults.append(f"{corpus.location}: the store was never finalised (no content hash)")
    elif corpus.current_hash() != corpus.content_hash:
        faults.append(f"{corpus.location}: the entries' attributes differ from the content "
                      f"hash recorded by finalize ({corpus.content_hash[:12]})")
    for entry_id in corpus.ids("all"):
        entry = Entry(corpus._entries[entry_id], corpus.location, verify=True)
        names = [*entry.metadata["maps"], PATCHES_ARRAY,
                 *(f"{MODELS_GROUP}/{m}" for m in entry.model_names)]
        for name in names:
            try:
                if name in MAP_ROLE_NAMES:
                    entry.map(name)
                elif name == PATCHES_ARRAY:
                    entry.patches  # noqa: B018 (read to verify)
                else:
                    entry.model(name.partition("/")[2])
            except CorpusError as exc:
                faults.append(str(exc))
        del entry
    return faults
