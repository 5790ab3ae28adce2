"""Speed and memory of the crefDenoiser network on the CPU (2 threads): inference of 128³ and
256³ maps, peak memory of tiled 256³ inference, and one training step on two 96³ patches.

Speed is reported as achieved GFLOP/s of the convolutions (counted analytically with
:func:`baselines.crefdenoiser.network.conv_flops`; a training step counts three times the
forward FLOPs: forward, gradient of the inputs, gradient of the weights) and as a time
ratio against a large float32 matmul doing the same number of FLOPs, measured in the same
run. Random weights: speed does not depend on their values.

Run: ``python -m pytest benchmarks/bench_crefdenoiser.py --benchmark-enable -s``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from baselines.crefdenoiser.network import CrefUNet, conv_flops
from benchmarks.timing import median_seconds, report_ratio
from cref_bench.torch_loss import cref_loss

THREADS = 2
MATMUL_SIDE = 2048
GIB = 2.0 ** 30


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def matmul_flops_per_second(two_threads):
    """FLOP/s of a 2048 x 2048 float32 matmul on this machine, now."""
    a = torch.randn(MATMUL_SIDE, MATMUL_SIDE)
    b = torch.randn(MATMUL_SIDE, MATMUL_SIDE)
    torch.mm(a, b)
    seconds = median_seconds(lambda: torch.mm(a, b), 7)
    rate = 2 * MATMUL_SIDE ** 3 / seconds
    print(f"\nfloat32 matmul {MATMUL_SIDE}²: {rate / 1e9:.1f} GFLOP/s ({THREADS} threads)")
    return rate


def _report(benchmark, name: str, flops: float, matmul_rate: float) -> None:
    rate = flops / benchmark.stats.stats.median
    benchmark.extra_info["conv_gflop"] = flops / 1e9
    benchmark.extra_info["conv_gflops_per_s"] = rate / 1e9
    print(f"\n{name}: {flops / 1e9:.0f} GFLOP of convolutions, {rate / 1e9:.1f} GFLOP/s "
          f"= {rate / matmul_rate:.2f} of the matmul's rate")
    report_ratio(benchmark, name, "matmul_same_flops", flops / matmul_rate)


def test_inference_128(benchmark, matmul_flops_per_second):
    torch.manual_seed(0)
    model = CrefUNet().eval()
    x = torch.randn(1, 1, 128, 128, 128)

    def forward():
        with torch.inference_mode():
            return model(x)

    benchmark.pedantic(forward, rounds=3, warmup_rounds=1)
    _report(benchmark, "inference 128³ (one piece)", conv_flops((128,) * 3), matmul_flops_per_second)


_TILED_SCRIPT = """
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads({threads})
from baselines.crefdenoiser.inference import (DEFAULT_MARGIN, DEFAULT_MEMORY_BUDGET,
                                              choose_cores, denoise_array, plan_tiles)
from baselines.crefdenoiser.network import CrefUNet, conv_flops
torch.manual_seed(0)
model = CrefUNet().eval()
data = np.random.default_rng(0).standard_normal(({n},) * 3, dtype=np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
denoise_array(model, data, progress=False)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
cores = choose_cores(data.shape, DEFAULT_MARGIN, DEFAULT_MEMORY_BUDGET)
tiles = plan_tiles(data.shape, cores, DEFAULT_MARGIN)
flops = sum(conv_flops(tuple(s.stop - s.start for s in t.window)) for t in tiles)
json.dump({{"seconds": seconds, "peak": peak, "before": before, "flops": flops,
           "cores": cores, "tiles": len(tiles), "budget": DEFAULT_MEMORY_BUDGET}}, sys.stdout)
"""


def test_inference_256_tiled_peak_memory(benchmark, matmul_flops_per_second):
    """One tiled 256³ run in a fresh process (its peak RSS is the process's high-water mark)."""
    n = 256
    results = []

    def run():
        out = subprocess.run([sys.executable, "-c", _TILED_SCRIPT.format(n=n, threads=THREADS)],
                             check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(run, rounds=1, iterations=1)
    r = results[-1]
    rate = r["flops"] / r["seconds"]
    whole = conv_flops((n,) * 3)
    benchmark.extra_info.update(peak_rss_gib=r["peak"] / GIB, inner_seconds=r["seconds"],
                                conv_gflops_per_s=rate / 1e9)
    print(f"\ninference {n}³ tiled: {r['tiles']} tiles of cores {tuple(r['cores'])}, budget "
          f"{r['budget'] / GIB:.1f} GiB; {r['seconds']:.1f} s; {r['flops'] / 1e9:.0f} GFLOP "
          f"({r['flops'] / whole:.2f}x one piece), {rate / 1e9:.1f} GFLOP/s = "
          f"{rate / matmul_flops_per_second:.2f} of the matmul's rate; peak RSS "
          f"{r['peak'] / GIB:.2f} GiB (before the run {r['before'] / GIB:.2f} GiB; one piece "
          f"would need about {n ** 3 * 390 / GIB:.1f} GiB of activations)")
    print(f"ratio vs matmul doing the same FLOPs: "
          f"{r['seconds'] / (r['flops'] / matmul_flops_per_second):.2f}")
    assert r["peak"] <= 4 * GIB


def test_training_step_96(benchmark, matmul_flops_per_second):
    torch.manual_seed(0)
    model = CrefUNet().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((2, 1, 96, 96, 96), dtype=np.float32)
    half1 = torch.from_numpy(signal + rng.standard_normal(signal.shape, dtype=np.float32))
    half2 = torch.from_numpy(signal + rng.standard_normal(signal.shape, dtype=np.float32))
    average = (half1 + half2) * 0.5
    losses = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = cref_loss(model(average), half1, half2)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().item())

    benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    assert all(np.isfinite(losses))
    _report(benchmark, "training step, batch 2 x 96³ (forward + backward + Adam)",
            3 * 2 * conv_flops((96,) * 3), matmul_flops_per_second)
