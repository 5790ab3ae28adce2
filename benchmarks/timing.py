"""Timing helpers shared by the benchmarks: medians of repeated runs and ratio reports.

A ratio recorded with :func:`record_ratio` (or :func:`report_ratio`) goes into the benchmark's
``extra_info["ratio"]``, where ``benchmarks/conftest.py`` finds it for the performance page.
"""

from __future__ import annotations

import statistics
import time


def median_seconds(fn, rounds: int = 5) -> float:
    """The median wall time of ``rounds`` calls of ``fn``."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def record_ratio(benchmark, name: str, baseline_name: str, seconds: float,
                 baseline_seconds: float) -> float:
    """Print and record the ratio of a measured median to a baseline's median.

    Args:
        benchmark: the pytest-benchmark fixture of the test.
        name: what was timed, e.g. ``"FSC 256³"``.
        baseline_name: the baseline measured in the same run, e.g. ``"two_rfftn"``.
        seconds: the median of what was timed.
        baseline_seconds: the median of the baseline.

    Returns:
        ``seconds / baseline_seconds``.
    """
    ratio = seconds / baseline_seconds
    benchmark.extra_info["ratio"] = {"name": name, "baseline": baseline_name,
                                     "seconds": seconds, "baseline_seconds": baseline_seconds,
                                     "ratio": ratio}
    print(f"\n{name}: median {seconds:.4f} s; {baseline_name}: median {baseline_seconds:.4f} s; "
          f"ratio {ratio:.2f}")
    return ratio


def report_ratio(benchmark, name: str, baseline_name: str, baseline_seconds: float) -> float:
    """:func:`record_ratio` of the benchmark's own median (what ``benchmark`` timed)."""
    return record_ratio(benchmark, name, baseline_name, benchmark.stats.stats.median,
                        baseline_seconds)
