"""The trainer's patch loader alone, on the CPU: patches per second and CPU seconds per patch.

A store of three 192³ entries (24 patches of 96³, default chunking, noise half-maps, a soft
mask) on local disk is read twice over, shuffled, in batches of 4, as the trainer reads it:

* baseline: in this process, items with their mask (the trainer's loading before issue 25);
* in this process, items without the mask (what the trainer reads now);
* in two background DataLoader workers, two batches ahead each (what the trainer does on a
  GPU, there with a worker per CPU and pinned memory).

Each is run three times in turn (so all see the same load on a shared machine) and the
medians are compared with the baseline's. CPU time counts this process and its workers.

Run: ``python -m pytest benchmarks/bench_patch_loader.py --benchmark-enable -s``.
"""

from __future__ import annotations

import statistics

import pytest

from baselines.crefdenoiser.patches import PatchDataset
from benchmarks.loader_timing import measure_loader, write_loader_store

ROUNDS = 3
BATCH = 4


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return write_loader_store(str(tmp_path_factory.mktemp("loader") / "loader.zarr"))


def test_patch_loader(benchmark, store):
    variants = {
        "in process, with masks (baseline)": (True, 0),
        "in process, halves only": (False, 0),
        "2 workers, halves only": (False, 2),
    }
    datasets = {name: PatchDataset(store, "train", augment=True, progress=False,
                                   with_mask=with_mask)
                for name, (with_mask, _) in variants.items()}
    results: dict[str, list[dict]] = {name: [] for name in variants}

    def one_round():
        for name, (_, workers) in variants.items():
            results[name].append(measure_loader(datasets[name], batch_size=BATCH,
                                                workers=workers))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    medians = {name: {key: statistics.median(r[key] for r in rows)
                      for key in ("patches_per_s", "cpu_s_per_patch")}
               for name, rows in results.items()}
    base = medians["in process, with masks (baseline)"]
    print(f"\n{results[next(iter(results))][0]['patches']} patches of 96³ per round, "
          f"median of {ROUNDS} rounds")
    for name, m in medians.items():
        speed = m["patches_per_s"] / base["patches_per_s"]
        cost = m["cpu_s_per_patch"] / base["cpu_s_per_patch"]
        print(f"{name:34} {m['patches_per_s']:7.1f} patches/s (x{speed:.2f})  "
              f"{m['cpu_s_per_patch'] * 1e3:6.1f} ms CPU/patch (x{cost:.2f})")
        benchmark.extra_info[name] = m
    assert all(m["patches_per_s"] > 0 for m in medians.values())
