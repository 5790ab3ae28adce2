"""The trainer's patch loader timed alone: a store to read and the rate and CPU cost of reading it.

Shared by ``benchmarks/bench_patch_loader.py`` (the CPU benchmark) and
``benchmarks/gpu_train_check.py`` (the GPU machine's loader, beside its training step).
"""

from __future__ import annotations

import resource
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from baselines.crefdenoiser.patches import PatchDataset
from cref_bench.corpus import splits
from cref_bench.maps.volume import Volume
from dataset_builder.store import create_store, finalize, write_entry


def write_loader_store(path: str, entries: int = 3, box: int = 192) -> str:
    """A store of ``entries`` train entries, ``box``³ each, with the default patch size and
    chunking: noise half-maps (they compress as little as real ones) and a soft sphere mask
    that selects every patch of the default 96-voxel grid.

    Args:
        path: where to write the store.
        entries: how many entries.
        box: the side of each map.

    Returns:
        The store's path.
    """
    ids = [f"loader-{i}" for i in range(1000) if splits.split_of(f"loader-{i}") == "train"]
    store = create_store(path, source="loader benchmark")
    radius = np.sqrt(((np.indices((box,) * 3) - (box - 1) / 2) ** 2).sum(axis=0))
    mask = Volume((1 / (1 + np.exp((radius - 0.45 * box) / 3))).astype(np.float32))
    rng = np.random.default_rng(0)
    for entry_id in ids[:entries]:
        halves = [Volume(rng.standard_normal((box,) * 3, dtype=np.float32)) for _ in range(2)]
        write_entry(store, entry_id, half1=halves[0], half2=halves[1], mask=mask)
    finalize(store)
    return str(path)


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the loader's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_loader(dataset: PatchDataset, *, batch_size: int, workers: int, passes: int = 2,
                   pin_memory: bool = False, device: torch.device | None = None) -> dict:
    """Read every patch of ``dataset`` ``passes`` times as the trainer does (shuffled, a fresh
    DataLoader iterator per pass, its workers started and stopped with it).

    Args:
        dataset: the patches.
        batch_size: patches per batch.
        workers: DataLoader worker processes (0: read in this process).
        passes: how many passes (epochs) to time.
        pin_memory: copy batches to pinned memory (CUDA only).
        device: also copy each batch there (non-blocking, synchronised at the end).

    Returns:
        ``{"workers", "patches", "seconds", "patches_per_s", "cpu_s_per_patch"}``: CPU time
        of this process and of the workers, per patch.
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        pin_memory=pin_memory, prefetch_factor=2 if workers else None,
                        generator=torch.Generator().manual_seed(0))
    patches = 0
    cpu, start = _cpu_seconds(), time.perf_counter()
    for epoch in range(passes):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        for batch in loader:
            if device is not None:
                batch = [t.to(device, non_blocking=True) for t in batch]
            patches += len(batch[0])
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    return {"workers": workers, "patches": patches, "seconds": seconds,
            "patches_per_s": patches / seconds, "cpu_s_per_patch": cpu / patches}
