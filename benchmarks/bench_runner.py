"""The runner's overhead: a whole run against the metric computations it makes.

An identity method is run over a 12-entry corpus (64-96³ phantoms with truth) in process;
the baseline is the sum, over the same entries, of :func:`cref_bench.metrics.evaluate`
called alone on the same maps (already in memory), measured before each timed run (so
both see the same load on a shared machine) and taken as the median. The difference is what
the runner adds: reading the maps from the store, the per-entry records, the tables and the
provenance. Target: at most 1.3x. Also prints entries per minute.

Run: ``python -m pytest benchmarks/bench_runner.py --benchmark-enable -s``.
"""

from __future__ import annotations

import itertools
import statistics

import numpy as np
import pytest
from scipy import ndimage

from benchmarks.timing import median_seconds, report_ratio
from cref_bench.dataset import open_corpus
from cref_bench.methods import Denoised, Method
from cref_bench.metrics import evaluate
from cref_bench.runner import run_method
from cref_bench.volume import Volume

ENTRIES = 12
BOXES = (64, 72, 80, 96)


class Identity(Method):
    """Returns the noisy average and the halves unchanged."""

    name = "identity-bench"
    version = "1"

    def denoise(self, half1, half2, mask=None):
        average = half1.like((half1.data + half2.data) * np.float32(0.5))
        return Denoised(full=average, half1=half1, half2=half2)


def _phantom(rng, n: int) -> dict[str, Volume]:
    truth = ndimage.gaussian_filter(rng.standard_normal((n, n, n), dtype=np.float32), 2.0)
    truth /= truth.std()
    z, y, x = np.ogrid[:n, :n, :n]
    radius = np.sqrt((z - n / 2) ** 2 + (y - n / 2) ** 2 + (x - n / 2) ** 2)
    maps = {h: Volume(truth + rng.standard_normal(truth.shape, dtype=np.float32), 1.1)
            for h in ("half1", "half2")}
    maps["mask"] = Volume(np.clip((0.38 * n - radius) / 4, 0, 1), 1.1)
    maps["truth"] = Volume(truth, 1.1)
    return maps


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    from dataset_builder.store import create_store, finalize, write_entry

    path = tmp_path_factory.mktemp("bench-runner") / "corpus.zarr"
    store = create_store(path, source="runner benchmark phantoms")
    rng = np.random.default_rng(0)
    for k in range(ENTRIES):
        write_entry(store, f"BENCH-{k:03d}", **_phantom(rng, BOXES[k % len(BOXES)]))
    finalize(store)
    return str(path)


@pytest.mark.parametrize("isolation", ["process", "in-process"])
def test_runner_overhead_vs_metrics_alone(benchmark, corpus, tmp_path, isolation):
    loaded = []
    for entry in open_corpus(corpus).entries("all"):
        loaded.append((entry.half1, entry.half2, entry.mask, entry.truth))
    method = Identity()

    def metrics_alone():
        for half1, half2, mask, truth in loaded:
            d = method.denoise(half1, half2, mask)
            evaluate(half1, half2, d.full, denoised_half1=d.half1, denoised_half2=d.half2,
                     mask=mask, truth=truth)

    folders = (tmp_path / f"run{i}" for i in itertools.count())
    alone: list[float] = []

    def measure_alone():  # pedantic's untimed setup: the baseline interleaves with the runs
        alone.append(median_seconds(metrics_alone, 1))

    def whole_run():
        run = run_method(method, corpus, split="all", out=next(folders), progress=False,
                         isolation=isolation)
        assert run.counts["evaluated"] == ENTRIES and run.exit_status == 0

    whole_run()  # warm-up: kernels compiled, shells cached
    benchmark.pedantic(whole_run, setup=measure_alone, rounds=7, warmup_rounds=0)
    baseline = statistics.median(alone)
    per_minute = ENTRIES / benchmark.stats.stats.median * 60
    benchmark.extra_info["entries_per_minute"] = per_minute
    print(f"\nrunner: {per_minute:.0f} entries per minute ({ENTRIES} entries, {BOXES} boxes)")
    assert report_ratio(benchmark, f"runner, {ENTRIES} entries, method {isolation}",
                        "evaluate_alone", baseline) <= 1.3
