"""Speed and memory of the metrics library, as ratios against the FFTs they need.

Run: ``python -m pytest benchmarks/bench_metrics.py --benchmark-enable -s``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.fft

from benchmarks.timing import median_seconds, report_ratio
from cref_bench import Volume
from cref_bench.metrics.fsc import fsc
from cref_bench.metrics.scores import DenoisedMaps, evaluate

N = 256


def make_case(n: int, seed: int = 0) -> dict[str, Volume]:
    rng = np.random.default_rng(seed)
    maps = {}
    for name in ("M1", "M2", "D", "D1", "D2"):
        maps[name] = Volume(rng.standard_normal((n, n, n), dtype=np.float32), 1.0)
    z, y, x = np.ogrid[:n, :n, :n]
    r = np.sqrt((z - n / 2) ** 2 + (y - n / 2) ** 2 + (x - n / 2) ** 2)
    maps["mask"] = Volume(np.clip((n / 3 - r) / 8, 0, 1).astype(np.float32), 1.0)
    return maps


@pytest.fixture(scope="module")
def case256():
    return make_case(N)


def test_fsc_256_vs_two_rfftn(benchmark, case256):
    a, b = case256["M1"], case256["M2"]
    fsc(a, b)  # shells cached, kernel compiled
    two_ffts = lambda: (scipy.fft.rfftn(a.data, workers=-1), scipy.fft.rfftn(b.data, workers=-1))  # noqa: E731
    before = median_seconds(two_ffts, 5)
    benchmark.pedantic(fsc, args=(a, b), rounds=7, warmup_rounds=1)
    baseline = min(before, median_seconds(two_ffts, 5))
    assert report_ratio(benchmark, "FSC 256³", "two_rfftn", baseline) <= 1.5


def test_metric_set_256_vs_minimum_ffts(benchmark, case256):
    m = case256
    denoised = DenoisedMaps(m["D"], half1=m["D1"], half2=m["D2"])
    run = lambda: evaluate(m["M1"], m["M2"], denoised, mask=m["mask"])  # noqa: E731
    run()
    names = ("M1", "M2", "D", "D1", "D2")

    def minimum_ffts():  # five maps, unmasked and masked
        for name in names:
            scipy.fft.rfftn(m[name].data, workers=-1)
            scipy.fft.rfftn(m[name].data * m["mask"].data, workers=-1)

    before = median_seconds(minimum_ffts, 3)
    benchmark.pedantic(run, rounds=5, warmup_rounds=0)
    baseline = min(before, median_seconds(minimum_ffts, 3))
    ratio = report_ratio(benchmark, "metric set 256³ (masked + unmasked)", "ten_rfftn", baseline)
    assert ratio <= 4.0


_PEAK_SCRIPT = """
import json, resource, sys
import numpy as np
from benchmarks.bench_metrics import make_case
from cref_bench.metrics.scores import DenoisedMaps, evaluate
m = make_case({n})
inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
evaluate(m["M1"], m["M2"], DenoisedMaps(m["D"], half1=m["D1"], half2=m["D2"]), mask=m["mask"])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
json.dump({{"inputs": inputs, "peak": peak}}, sys.stdout)
"""


@pytest.mark.parametrize("n", [512])
def test_metric_set_peak_memory_512(n):
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT.format(n=n)], check=True,
                         capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    gib = 2.0**30
    print(f"\nmetric set {n}³: peak RSS {result['peak'] / gib:.2f} GiB "
          f"(inputs alone {result['inputs'] / gib:.2f} GiB: six {n}³ float32 maps = "
          f"{6 * n**3 * 4 / gib:.2f} GiB); ratio peak / inputs "
          f"{result['peak'] / result['inputs']:.2f}")
    assert result["peak"] <= 8 * gib
