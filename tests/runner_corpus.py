"""The small corpus the runner's tests share (session fixture ``corpus_path``, registered in
conftest.py): five test entries and one valid entry, 32-40³ boxes of a smooth random truth
plus noise, one without truth and one with a reference map (its truth)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cref_bench.corpus.splits import split_of
from cref_bench.maps.volume import Volume


def ids_of_split(split: str, count: int) -> list[str]:
    found, i = [], 0
    while len(found) < count:
        entry_id = f"PH-{i:04d}"
        if split_of(entry_id) == split:
            found.append(entry_id)
        i += 1
    return found


def phantom_maps(rng, n: int, with_truth: bool) -> dict:
    truth = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), 1.5)
    truth = (truth / truth.std()).astype(np.float32)
    z, y, x = np.ogrid[:n, :n, :n]
    radius = np.sqrt((z - n / 2) ** 2 + (y - n / 2) ** 2 + (x - n / 2) ** 2)
    mask = np.clip((0.38 * n - radius) / 3, 0, 1).astype(np.float32)
    maps = {name: Volume(truth + rng.standard_normal(truth.shape).astype(np.float32) * 0.8, 1.5)
            for name in ("half1", "half2")}
    maps["mask"] = Volume(mask, 1.5)
    maps["truth"] = Volume(truth, 1.5) if with_truth else None
    return maps


TEST_IDS = ids_of_split("test", 5)
VALID_IDS = ids_of_split("valid", 1)


@pytest.fixture(scope="session")
def corpus_path(tmp_path_factory) -> str:
    from dataset_builder.store import create_store, finalize, write_entry

    path = tmp_path_factory.mktemp("runner") / "corpus.zarr"
    store = create_store(path, source="runner test phantoms", patch_size=16)
    rng = np.random.default_rng(7)
    for k, entry_id in enumerate(TEST_IDS + VALID_IDS):
        maps = phantom_maps(rng, 32 if k % 2 else 40, with_truth=k != 1)
        if k == 2:  # one entry with a reference map (here its truth)
            maps["reference"] = maps["truth"]
        write_entry(store, entry_id, **maps, metadata={"resolution": 4.0})
    finalize(store)
    return str(path)
