"""Speed and memory of the simulated reconstructions (:mod:`dataset_builder.simulation`).

* One 128³ entry from 2 x 10,000 particles (and its reference map from 4 x 10,000 more), on
  all cores: the time of each step, particles per second, and the ratio of the particle
  time (slices, CTF, noise, gridding and the reconstruction of each set) to the work's
  floor, one ``N x N`` FFT per particle (``scipy.fft.rfft2``, batched, all cores), measured
  in the same run. Asserted: the two half-maps within 60 CPU seconds, i.e. 30 s on two cores
  of their own (the wall time on a shared machine is printed beside it).
* One 256³ entry in a subprocess: its peak resident memory, asserted within 6 GiB (run once:
  it takes a minute or two; the particle count is cut, which leaves the memory unchanged).

Run: ``python -m pytest benchmarks/bench_simulation.py --benchmark-enable -s -p no:cacheprovider``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import scipy.fft

from benchmarks.timing import median_seconds
from dataset_builder.simulation import SimulationSettings, simulate_entry

ENTRY = SimulationSettings(box=128, voxel_size=1.2, particles=10_000, reference_factor=4.0,
                           snr=0.05)


def _fft_per_image(n: int, batch: int = 256) -> float:
    """Median seconds of one ``n x n`` real FFT, batched over ``batch`` images, all cores."""
    images = np.random.default_rng(0).standard_normal((batch, n, n), dtype=np.float32)
    return median_seconds(lambda: scipy.fft.rfft2(images, workers=-1), 5) / batch


def test_entry_128_from_2_x_10000_particles(benchmark):
    simulate_entry(ENTRY.with_(box=32, voxel_size=2.0, particles=64), 0)   # compile, warm up
    entries = []
    floor_before = _fft_per_image(ENTRY.box)
    benchmark.pedantic(lambda: entries.append(simulate_entry(ENTRY, 1)), rounds=1, iterations=1)
    floor = min(floor_before, _fft_per_image(ENTRY.box))
    wall, cpu = entries[0].timings["wall"], entries[0].timings["cpu"]
    halves = wall["half1"] + wall["half2"]
    n_half = 2 * ENTRY.particles
    n_all = n_half + ENTRY.reference_particles
    ratio_half = halves / (n_half * floor)
    ratio_all = (halves + wall["reference"]) / (n_all * floor)
    benchmark.extra_info.update(timings=entries[0].timings, fft_per_image_s=floor,
                                ratio_vs_fft_floor=ratio_half,
                                particles_per_s=n_half / halves)
    print(f"\n128³ entry: specimen {wall['specimen']:.1f} s; half-maps ({n_half} particles) "
          f"{halves:.1f} s ({cpu['half1'] + cpu['half2']:.1f} CPU s), {n_half / halves:.0f} "
          f"particles/s; reference ({ENTRY.reference_particles} particles) "
          f"{wall['reference']:.1f} s ({cpu['reference']:.1f} CPU s); whole entry "
          f"{sum(wall.values()):.1f} s. One {ENTRY.box}² FFT: {floor * 1e6:.0f} µs; "
          f"particle time / one FFT per particle: {ratio_half:.1f} (half-maps), "
          f"{ratio_all:.1f} (all {n_all} particles)")
    print(f"resolution {entries[0].metadata['resolution']}, implied "
          f"{entries[0].metadata['implied_resolution']}")
    assert cpu["half1"] + cpu["half2"] <= 60.0


_CHILD = textwrap.dedent("""
    import json, resource, time
    from dataset_builder.simulation import PRESETS, simulate_entry
    settings = PRESETS["low-8A"].with_(particles=1000, reference_factor=2.0)
    start = time.perf_counter()
    entry = simulate_entry(settings, 0)
    print(json.dumps({"seconds": time.perf_counter() - start, "timings": entry.timings["wall"],
                      "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
""")


def test_entry_256_peak_memory():
    result = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                            check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    peak_gib = report["peak_kib"] / 2**20
    print(f"\n256³ entry (low-8A preset, 2 x 1,000 + 2,000 particles): peak RSS "
          f"{peak_gib:.2f} GiB, {report['seconds']:.0f} s ({report['timings']})")
    assert peak_gib <= 6.0
