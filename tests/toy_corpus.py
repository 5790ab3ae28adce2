"""A small learnable corpus for training tests and benchmarks: soft-sphere particles of smooth
random density plus white noise in each half-map, on 64³ boxes with 32³ patches."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cref_bench.corpus import splits
from cref_bench.maps.volume import Volume
from dataset_builder.store import create_store, finalize, write_entry

BOX, PATCH, NOISE = 64, 32, 1.0


def ids_of(split: str, count: int, prefix: str = "toy") -> list[str]:
    """The first ``count`` ids ``{prefix}-0``, ``{prefix}-1``, ... that the split rule puts in
    ``split``."""
    found = (f"{prefix}-{i}" for i in range(100 * count + 100))
    return [i for i in found if splits.split_of(i) == split][:count]


def write_toy_corpus(path, ids: list[str]) -> str:
    """Write and finalise a store with one toy entry per id (entry ``k`` seeded with ``k``).

    Args:
        path: the store to create.
        ids: the entry ids.

    Returns:
        The store's path as a string.
    """
    store = create_store(path, source="trainer test phantoms", patch_size=PATCH)
    radius = np.sqrt(((np.indices((BOX,) * 3) - (BOX - 1) / 2) ** 2).sum(axis=0))
    particle = 1 / (1 + np.exp((radius - 22) / 1.5))
    mask = Volume((1 / (1 + np.exp((radius - 26) / 1.5))).astype(np.float32))
    for seed, entry_id in enumerate(ids):
        rng = np.random.default_rng(seed)
        truth = ndimage.gaussian_filter(rng.standard_normal((BOX,) * 3), 2.0)
        truth = (truth / truth.std() * particle).astype(np.float32)
        halves = [Volume((truth + NOISE * rng.standard_normal(truth.shape)).astype(np.float32))
                  for _ in range(2)]
        write_entry(store, entry_id, half1=halves[0], half2=halves[1], mask=mask,
                    truth=Volume(truth))
    finalize(store)
    return str(path)
