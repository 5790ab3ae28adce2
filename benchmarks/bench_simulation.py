"""Speed and memory of the simulated reconstructions (:mod:`dataset_builder.simulation`).

* One 128³ entry from 2 x 10,000 particles (and its reference map from 10,000 more at 4x
  the particle SNR), on all cores: the wall and CPU time of each step, particles per
  second, and the ratio of the particle time (slices, CTF, noise, gridding and the
  reconstruction of each set) to the work's floor, one ``N x N`` FFT per particle
  (``scipy.fft.rfft2``, batched, all cores; wall and CPU), measured in the same run.
  Asserted: the two half-maps within 30 CPU seconds, i.e. 15 s on two cores of their own,
  half the 30 s target (the wall time on a shared machine is printed beside it).
  Asserted too: the half-maps (both halves' particles, the FSC of the unregularised halves
  and the two regularised, solvent-flattened maps) within 15x the floor's CPU time.
* Against RELION (``relion_project`` + ``relion_reconstruct``, when installed): the same job,
  a 96³ truth of 1.5 Å, 2,000 particles per half with CTF and white noise, each half
  reconstructed unregularised and again regularised from the halves' FSC (RELION: two
  ``relion_project`` and four ``relion_reconstruct`` runs; CPU time of the child processes),
  measured in the same run; asserted: at least 5x less CPU time.
* One 256³ entry in a subprocess: its peak resident memory, asserted within 6 GiB (run once:
  it takes a minute or two; the particle count is cut, which leaves the memory unchanged).

Run: ``python -m pytest benchmarks/bench_simulation.py --benchmark-enable -s -p no:cacheprovider``.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import scipy.fft

from benchmarks.timing import median_seconds, record_ratio
from dataset_builder.simulation import SimulationSettings, simulate_entry
from dataset_builder.simulation.entry import (
    build_specimen,
    grid_particles,
    particle_parameters,
    regularise,
    unregularised_fsc,
)
from dataset_builder.simulation.reconstruction import shell_fsc
from dataset_builder.simulation.relion import write_fsc_star, write_particles_star

ENTRY = SimulationSettings(box=128, voxel_size=1.2, particles=10_000, reference_factor=4.0,
                           snr=0.05)


def _fft_per_image(n: int, batch: int = 256) -> tuple[float, float]:
    """Median wall and CPU seconds of one ``n x n`` real FFT, batched over ``batch`` images,
    all cores."""
    images = np.random.default_rng(0).standard_normal((batch, n, n), dtype=np.float32)
    wall = median_seconds(lambda: scipy.fft.rfft2(images, workers=-1), 5) / batch
    cpu = []
    for _ in range(5):
        start = time.process_time()
        scipy.fft.rfft2(images, workers=-1)
        cpu.append(time.process_time() - start)
    return wall, float(np.median(cpu)) / batch


def test_entry_128_from_2_x_10000_particles(benchmark):
    simulate_entry(ENTRY.with_(box=32, voxel_size=2.0, particles=64), 0)   # compile, warm up
    entries = []
    before = _fft_per_image(ENTRY.box)
    benchmark.pedantic(lambda: entries.append(simulate_entry(ENTRY, 1)), rounds=1, iterations=1)
    after = _fft_per_image(ENTRY.box)
    floor_wall, floor_cpu = min(before[0], after[0]), min(before[1], after[1])
    wall, cpu = entries[0].timings["wall"], entries[0].timings["cpu"]
    n_half = 2 * ENTRY.particles
    n_all = 3 * ENTRY.particles
    halves_wall = wall["half1"] + wall["half2"] + wall["regularise"]
    halves_cpu = cpu["half1"] + cpu["half2"] + cpu["regularise"]
    all_wall = halves_wall + wall["reference"]
    all_cpu = halves_cpu + cpu["reference"]
    ratios = {"half-maps wall": halves_wall / (n_half * floor_wall),
              "half-maps cpu": halves_cpu / (n_half * floor_cpu),
              "all particles wall": all_wall / (n_all * floor_wall),
              "all particles cpu": all_cpu / (n_all * floor_cpu)}
    benchmark.extra_info.update(timings=entries[0].timings, fft_per_image_s=floor_wall,
                                fft_per_image_cpu_s=floor_cpu, ratios_vs_fft_floor=ratios,
                                particles_per_s=n_half / halves_wall,
                                particles_per_cpu_s=n_half / halves_cpu)
    print(f"\n128³ entry: specimen {wall['specimen']:.1f} s; half-maps ({n_half} particles) "
          f"{halves_wall:.1f} s ({halves_cpu:.1f} CPU s), {n_half / halves_wall:.0f} "
          f"particles/s ({n_half / halves_cpu:.0f} per CPU s); reference ({ENTRY.particles} "
          f"particles at {ENTRY.reference_factor:g}x the SNR) {wall['reference']:.1f} s "
          f"({cpu['reference']:.1f} CPU s); whole entry {sum(wall.values()):.1f} s "
          f"({sum(cpu.values()):.1f} CPU s). One {ENTRY.box}² FFT: {floor_wall * 1e6:.0f} µs "
          f"({floor_cpu * 1e6:.0f} CPU µs); particle time / one FFT per particle: "
          + ", ".join(f"{k} {v:.1f}" for k, v in ratios.items()))
    record_ratio(benchmark, f"128³ entry, {n_half} particles of the half-maps (CPU time)",
                 "one FFT per particle (CPU time)", halves_cpu, n_half * floor_cpu)
    print(f"resolution {entries[0].metadata['resolution']}, implied "
          f"{entries[0].metadata['implied_resolution']}")
    assert halves_cpu <= 30.0
    # Issue 21's target. Not met on the shared 2-core machine: 22.9 at load 3 (the code
    # before the issue: 23.2 a minute earlier), 15.6-16.1 at load 15 (the floor's CPU time
    # rises with load more than the particles' does); see docs/reconstruction-vs-phantoms.md.
    assert ratios["half-maps cpu"] <= 15.0


_CHILD = textwrap.dedent("""
    import json, resource, time
    from dataset_builder.simulation import PRESETS, simulate_entry
    settings = PRESETS["low-8A"].with_(particles=1000)
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
    print(f"\n256³ entry (low-8A preset, 3 x 1,000 particles): peak RSS "
          f"{peak_gib:.2f} GiB, {report['seconds']:.0f} s ({report['timings']})")
    assert peak_gib <= 6.0


RELION_JOB = SimulationSettings(box=96, voxel_size=1.5, particles=2000, noise_sigma=3.0,
                                defocus_um=(1.0, 3.0), envelope_b=60.0, reference_factor=1.0)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.skipif(shutil.which("relion_reconstruct") is None,
                    reason="relion_project/relion_reconstruct are not installed")
def test_cpu_time_against_relion():
    settings = RELION_JOB
    simulate_entry(settings.with_(box=32, voxel_size=2.0, particles=64), 0)   # compile
    specimen = build_specimen(settings, 0)
    streams = np.random.SeedSequence(0).spawn(2)
    start = time.process_time()
    _ = specimen.transforms
    halves = [grid_particles(specimen, settings, settings.particles, s) for s in streams]
    half_fsc = unregularised_fsc(*halves)
    maps = [regularise(h, specimen, settings, half_fsc) for h in halves]
    ours = time.process_time() - start
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        with mrcfile.new(work / "truth.mrc") as handle:
            handle.set_data(specimen.truth.data)
            handle.voxel_size = settings.voxel_size
        for k, stream in enumerate(streams):
            write_particles_star(work / f"ang{k}.star",
                                 *particle_parameters(specimen, settings, settings.particles,
                                                      stream), settings)
        angpix = ["--angpix", str(settings.voxel_size)]

        def run(*args):
            subprocess.run(args, cwd=work, check=True, capture_output=True)

        before = _children_cpu()
        unregularised = []
        for k in range(2):
            run("relion_project", "--i", "truth.mrc", "--o", f"half{k}", "--ang", f"ang{k}.star",
                *angpix, "--ctf", "--add_noise", "--white_noise", str(settings.noise_sigma))
            run("relion_reconstruct", "--i", f"half{k}.star", "--o", f"unreg{k}.mrc", "--ctf",
                *angpix)
            unregularised.append(scipy.fft.rfftn(mrcfile.read(work / f"unreg{k}.mrc")))
        write_fsc_star(work / "fsc.star", shell_fsc(*unregularised))
        for k in range(2):
            run("relion_reconstruct", "--i", f"half{k}.star", "--o", f"reg{k}.mrc", "--ctf",
                *angpix, "--fsc", "fsc.star")
        relion = _children_cpu() - before
    ratio = relion / ours
    print(f"\n96³, 2 x {settings.particles} particles, unregularised and FSC-regularised "
          f"halves: ours {ours:.1f} CPU s, RELION (relion_project + relion_reconstruct) "
          f"{relion:.1f} CPU s; RELION / ours {ratio:.1f}")
    assert len(maps) == 2 and ratio >= 5.0
