"""The cost of the held-out calls: a single-map method run by the runner on one map per call
(the average, M1 alone, M2 alone: three calls to the method's process, each map sent alone,
and the held-out scores) against the same method run as before, in one call given both
halves (:class:`benchmarks.blur_method.BlurInOneCall`), in the same process, interleaved,
median of the rounds. The method is a Gaussian blur, so cheap that the runner's own work
(the trips to the method's process, the scores) is most of a run: the worst case for the
ratio. Target: at most 1.1x.

Run: ``python -m pytest benchmarks/bench_heldout.py --benchmark-enable -s``.
"""

from __future__ import annotations

import itertools
import statistics
import time

import pytest

from benchmarks.blur_method import Blur, BlurInOneCall
from benchmarks.timing import report_ratio
from cref_bench.run.runner import run_method

ENTRIES = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    from dataset_builder.synthetic import write_phantom_corpus

    path = tmp_path_factory.mktemp("bench-heldout") / "corpus.zarr"
    return write_phantom_corpus(path, ENTRIES, seed=0, progress=False)


def test_heldout_calls_vs_one_call(benchmark, corpus, tmp_path):
    folders = (tmp_path / f"run{i}" for i in itertools.count())
    before: list[float] = []

    def run(method):
        result = run_method(method, corpus, split="all", out=next(folders), progress=False,
                            isolation="process")
        assert result.counts["evaluated"] == ENTRIES and result.exit_status == 0
        return result

    def one_call():  # pedantic's untimed setup: the baseline interleaves with the runs
        start = time.perf_counter()
        run(BlurInOneCall())
        before.append(time.perf_counter() - start)

    def held_out():
        assert run(Blur()).scalars["heldout_corr"].notna().all()

    held_out()  # warm-up: kernels compiled, shells cached
    benchmark.pedantic(held_out, setup=one_call, rounds=5, warmup_rounds=0)
    assert report_ratio(benchmark, f"held-out calls, {ENTRIES} entries", "one_call",
                        statistics.median(before)) <= 1.1
