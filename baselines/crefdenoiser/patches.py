"""Training patches of a corpus store as a torch dataset (:class:`PatchDataset`).

:class:`PatchDataset` serves ``(half1, half2, mask)`` patches of the stored patch index as
float32 tensors of shape ``(1, P, P, P)`` (P = 96 in stores built with the defaults; without
the mask with ``with_mask=False``, as the trainer reads them), for
training crefDenoiser-style networks. Items come entry by entry in the split's id order, and
within an entry in the order of its patch index. Per half-map, in this order:

1. standardise with that half-map's own whole-box mean and standard deviation (computed at
   write time and stored, so no whole map is read here): ``z = (x - mean) / std``;
2. multiply by the mask patch: ``z * mask``.

The mask patch is returned as stored (values in ``[0, 1]``). With ``augment=True`` the three
arrays of an item get the same rotation, drawn uniformly from the 24 proper rotations of the
cube (:func:`cube_rotation`) by a generator seeded with ``(seed, epoch, index)``. The rotation
is applied as the standardisation writes its result (one pass over each half-map patch).

This is the one module of :mod:`cref_bench` that imports torch at import time; commands
that never train never import it.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import zarr
from tqdm.auto import tqdm

from cref_bench.corpus.layout import ENTRIES_GROUP, open_root
from cref_bench.corpus.reader import Corpus, open_corpus

# The 24 proper rotations of a cube are "bring one of 6 faces to the top" (one rot90 in the
# given plane, k quarter turns) followed by k2 in 0..3 quarter turns about the vertical axis.
_FACE_MOVES = ((0, (0, 1)), (1, (0, 1)), (2, (0, 1)), (3, (0, 1)), (1, (0, 2)), (3, (0, 2)))


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
        with_mask: also return the mask patch (items are ``(half1, half2)`` without it).

    Raises:
        CorpusError: as :func:`open_corpus` and :meth:`Corpus.ids`.
    """

    def __init__(self, corpus: Corpus | str | os.PathLike, split: str = "train", *,
                 augment: bool = False, seed: int = 0, progress: bool = True,
                 storage_options: dict | None = None, with_mask: bool = True):
        if not isinstance(corpus, Corpus):
            corpus = open_corpus(corpus, storage_options=storage_options)
        self.location = corpus.location
        self.storage_options = corpus.storage_options
        self.split = split
        self.augment = augment
        self.with_mask = with_mask
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
            norms.append([entry.standardisation(h) for h in ("half1", "half2")])
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
            self._root = open_root(self.location, "r", self.storage_options)
            self._arrays, self._pid = {}, os.getpid()
        if owner not in self._arrays:
            group = self._root[f"{ENTRIES_GROUP}/{self.entry_ids[owner]}"]
            self._arrays[owner] = (group["half1"], group["half2"], group["mask"])
        return self._arrays[owner]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        self._check_index(index)
        owner = int(self._owner[index])
        z, y, x = (int(v) for v in self._origins[index])
        p = self.patch_size
        window = (slice(z, z + p), slice(y, y + p), slice(x, x + p))
        half1, half2, mask = (a[window] for a in self._entry_arrays(owner))
        face, turns = self.rotation(index)
        mask = cube_rotation(np.asarray(mask, dtype=np.float32), face, turns)
        out = []
        for half, (mean, std) in zip((half1, half2), self._norm[owner]):
            z = np.empty((1, *mask.shape), dtype=np.float32)
            np.subtract(cube_rotation(np.asarray(half, dtype=np.float32), face, turns),
                        np.float32(mean), out=z[0])
            z /= np.float32(std)
            z *= mask
            out.append(z)
        if self.with_mask:
            out.append(np.ascontiguousarray(mask)[None])
        return tuple(torch.from_numpy(a) for a in out)
