"""The cost of the held-out calls: a single-map method run by the runner on one map per call
(the average, M1 alone, M2 alone: three calls, each to a box of its own kind, each map sent
alone, and the held-out scores) against the same method run as before, in one call given
both halves (:class:`benchmarks.blur_method.BlurInOneCall`), in the same process,
interleaved, median of the rounds. The method is a Gaussian blur, so cheap that the runner's
own work (the boxes, the trips to them, the scores) is most of a run: the worst case for the
ratio.

Two figures, from runs on corpora of 6 and 18 entries:

* per entry: the extra time of 12 more entries with the held-out calls over that of the one
  call (what each entry costs once the boxes are up). Target: at most 1.1x.
* the whole runs (printed), which add the start of two more boxes (one per kind of call, each
  importing what the method imports: numpy and scipy here, about 0.5 CPU-seconds).

Run: ``python -m pytest benchmarks/bench_heldout.py --benchmark-enable -s``.
"""

from __future__ import annotations

import itertools
import statistics
import time

import pytest

from benchmarks.blur_method import Blur, BlurInOneCall
from benchmarks.timing import record_ratio
from cref_bench.run.runner import run_method

SIZES = (6, 18)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[int, str]:
    from dataset_builder.synthetic import write_phantom_corpus

    folder = tmp_path_factory.mktemp("bench-heldout")
    return {n: write_phantom_corpus(folder / f"corpus{n}.zarr", n, seed=0, progress=False)
            for n in SIZES}


def test_heldout_calls_vs_one_call(benchmark, corpora, tmp_path):
    folders = (tmp_path / f"run{i}" for i in itertools.count())
    times: dict[tuple[str, int], list[float]] = {}

    def run(method, entries: int) -> None:
        start = time.perf_counter()
        result = run_method(method, corpora[entries], split="all", out=next(folders),
                            progress=False, isolation="process")
        times.setdefault((method.name, entries), []).append(time.perf_counter() - start)
        assert result.counts["evaluated"] == entries and result.exit_status == 0
        if isinstance(method, Blur):
            assert result.scalars["heldout_corr"].notna().all()

    def others():  # pedantic's untimed setup: the other three runs interleave with it
        run(BlurInOneCall(), SIZES[0])
        run(Blur(), SIZES[0])
        run(BlurInOneCall(), SIZES[1])

    run(Blur(), SIZES[0])  # warm-up: kernels compiled, shells cached
    times.clear()
    benchmark.pedantic(run, args=(Blur(), SIZES[1]), setup=others, rounds=7, warmup_rounds=0)
    median = {key: statistics.median(values) for key, values in times.items()}
    held, once = Blur.name, BlurInOneCall.name
    for size in SIZES:
        print(f"\nwhole run of {size} entries: held-out calls {median[held, size]:.3f} s, "
              f"one call {median[once, size]:.3f} s; ratio "
              f"{median[held, size] / median[once, size]:.2f}")
    extra = SIZES[1] - SIZES[0]
    per_entry = record_ratio(
        benchmark, "held-out calls, per entry", "one_call",
        (median[held, SIZES[1]] - median[held, SIZES[0]]) / extra,
        (median[once, SIZES[1]] - median[once, SIZES[0]]) / extra)
    assert per_entry <= 1.1
