"""Timing helpers shared by the benchmarks: medians of repeated runs and ratio reports."""

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


def report_ratio(benchmark, name: str, baseline_name: str, baseline_seconds: float) -> float:
    """Print and record the ratio of the benchmark's median to a baseline's median."""
    target = benchmark.stats.stats.median
    ratio = target / baseline_seconds
    benchmark.extra_info[f"{baseline_name}_median_s"] = baseline_seconds
    benchmark.extra_info[f"ratio_vs_{baseline_name}"] = ratio
    print(f"\n{name}: median {target:.4f} s; {baseline_name}: median {baseline_seconds:.4f} s; "
          f"ratio {ratio:.2f}")
    return ratio
