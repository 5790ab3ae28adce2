"""The runner's overhead: a whole run against the metric computations it makes.

An identity method is run over the demo's corpus (``cref-bench demo``: 12 phantoms, 64-96³,
with truth and model), with the method in its box (the default for a method that is not
cref-bench's own: bubblewrap where the machine allows it) and in process (trusted). The
baseline is the sum, over the same
entries, of :func:`cref_bench.metrics.scores.evaluate` called alone on the same maps (already in
memory), measured before each timed run (so both see the same load on a shared machine) and
taken as the median. The difference is what the runner adds: reading the maps from the store
(each checked against its recorded digest), the method's box (started once per run; the
method's module, ``benchmarks/identity_method.py``, is as light as a small method package)
and the maps' trip to it and back, the digests and output checks, the kept outputs, the
per-entry records, the tables and the provenance, less what the runner overlaps (the next
entry is read, and in a box denoised, while the last one is scored). Targets: at most 1.35x
with the box, 1.3x in process. Also prints entries per minute.

Run: ``python -m pytest benchmarks/bench_runner.py --benchmark-enable -s``.
"""

from __future__ import annotations

import itertools
import statistics

import pytest

from benchmarks.identity_method import Identity
from benchmarks.timing import median_seconds, report_ratio
from cref_bench.corpus.reader import open_corpus
from cref_bench.metrics.scores import DenoisedMaps, evaluate
from cref_bench.run.runner import run_method
from cref_bench.run.scoring import first_model

ENTRIES = 12
TARGETS = {"process": 1.35, "in-process": 1.3}
"""The largest ratio to the metrics alone: with the method in its box, and in process."""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    from dataset_builder.synthetic import write_phantom_corpus

    path = tmp_path_factory.mktemp("bench-runner") / "corpus.zarr"
    return write_phantom_corpus(path, ENTRIES, seed=0, progress=False)


@pytest.mark.parametrize("isolation", ["process", "in-process"])
def test_runner_overhead_vs_metrics_alone(benchmark, corpus, tmp_path, isolation):
    loaded = []
    for entry in open_corpus(corpus).entries("all"):
        loaded.append((entry.half1, entry.half2, entry.mask, entry.truth, first_model(entry)))
    method = Identity()

    def metrics_alone():
        for half1, half2, mask, truth, model in loaded:
            d = method.denoise(half1, half2, mask)
            evaluate(half1, half2, DenoisedMaps(d.full, half1=d.half1, half2=d.half2), mask=mask,
                     truth=truth, model=model)

    folders = (tmp_path / f"run{i}" for i in itertools.count())
    alone: list[float] = []

    def measure_alone():  # pedantic's untimed setup: the baseline interleaves with the runs
        alone.append(median_seconds(metrics_alone, 1))

    def whole_run():
        run = run_method(method, corpus, split="all", out=next(folders), progress=False,
                         isolation=isolation, trust_method=isolation == "in-process")
        assert run.counts["evaluated"] == ENTRIES and run.exit_status == 0

    whole_run()  # warm-up: kernels compiled, shells cached
    benchmark.pedantic(whole_run, setup=measure_alone, rounds=7, warmup_rounds=0)
    baseline = statistics.median(alone)
    per_minute = ENTRIES / benchmark.stats.stats.median * 60
    benchmark.extra_info["entries_per_minute"] = per_minute
    print(f"\nrunner: {per_minute:.0f} entries per minute ({ENTRIES} demo phantoms)")
    assert report_ratio(benchmark, f"runner, {ENTRIES} entries, method {isolation}",
                        "evaluate_alone", baseline) <= TARGETS[isolation]
