"""The external adapter's overhead: ``recipe:relion-postprocess`` against the bare
``relion_postprocess`` on the same 128³ half-map pair and mask, in the same run.

The bare program reads MRC files already on disk and writes its maps (the recipe's flags:
``--half_maps``, no B-factor); the adapter also writes the input copies (half1, half2, mask)
with :mod:`cref_bench.maps.io`, passes the program's output on line by line and reads the three
maps back, then removes its private folder. The read/write baseline is those six map
operations alone, and removing what they wrote and read. Rounds alternate (bare
program, read/write, adapter) so that the load of a shared machine falls on all alike; medians
are compared, of wall time and of CPU time (this process's and its children's, user + system:
on a loaded machine the wall time of a 1-second program varies by a factor of two from run to
run, its CPU time by a few per cent). Target: adapter <= 1.1 x bare + read/write, asserted on
CPU time, wall time reported. Identifying the program (its ``--version`` and SHA-256) happens
once, when the method is built, and is not timed.

Run: ``python -m pytest benchmarks/bench_external.py --benchmark-enable -s -p no:cacheprovider``
(skipped without ``relion_postprocess``).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from benchmarks.timing import report_ratio
from cref_bench.maps.io import read_map, write_map
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import load_method

BOX = 128
ROUNDS = 9
pytestmark = pytest.mark.skipif(shutil.which("relion_postprocess") is None,
                                reason="relion_postprocess is not installed (apt-get install "
                                       "relion)")


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:BOX, :BOX, :BOX]
    radius = np.sqrt((z - BOX / 2) ** 2 + (y - BOX / 2) ** 2 + (x - BOX / 2) ** 2)
    truth = ndimage.gaussian_filter(rng.standard_normal((BOX,) * 3, dtype=np.float32), 2.0)
    truth *= radius < 0.4 * BOX
    halves = [Volume(truth + 0.3 * rng.standard_normal(truth.shape, dtype=np.float32), 1.2)
              for _ in range(2)]
    mask = Volume(np.clip((0.38 * BOX - radius) / 4, 0, 1).astype(np.float32), 1.2)
    return halves[0], halves[1], mask


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children so far."""
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def test_adapter_overhead_over_the_bare_program(benchmark, pair, tmp_path):
    half1, half2, mask = pair
    inputs = {name: write_map(tmp_path / f"{name}.mrc", v)
              for name, v in zip(("half1", "half2", "mask"), pair)}
    method = load_method("recipe:relion-postprocess", sharpening=[])
    times: dict[str, list[tuple[float, float]]] = {"bare": [], "io": [], "adapter": []}
    outputs: list[Path] = []

    def timed(name, fn):
        wall, cpu = time.perf_counter(), _cpu_seconds()
        fn()
        times[name].append((time.perf_counter() - wall, _cpu_seconds() - cpu))

    def bare():
        folder = Path(tempfile.mkdtemp(dir=tmp_path))
        subprocess.run(["relion_postprocess", "--i", str(inputs["half1"]), "--i2",
                        str(inputs["half2"]), "--mask", str(inputs["mask"]), "--angpix", "1.2",
                        "--o", str(folder / "postprocess"), "--half_maps"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        outputs[:] = [folder / f"postprocess{s}.mrc" for s in ("", "_half1", "_half2")]

    def read_write():
        folder = Path(tempfile.mkdtemp(dir=tmp_path))
        for k, volume in enumerate(pair):
            write_map(folder / f"{k}.mrc", volume)
        for path in outputs:
            read_map(path)
        shutil.rmtree(outputs[0].parent)
        shutil.rmtree(folder)

    def setup():  # untimed by pedantic: the baselines interleave with the adapter's rounds
        timed("bare", bare)
        timed("io", read_write)

    def run_adapter():
        with open(os.devnull, "w") as quiet:  # the program's lines, as the method log gets them
            previous, sys.stderr = sys.stderr, quiet
            try:
                out = method.denoise(half1, half2, mask)
            finally:
                sys.stderr = previous
        assert out.half1 is not None

    def adapter():
        timed("adapter", run_adapter)

    bare()
    run_adapter()  # warm-up
    benchmark.pedantic(adapter, setup=setup, rounds=ROUNDS, warmup_rounds=0)
    wall = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    for name, got in (("wall", wall), ("CPU", cpu)):
        print(f"\nrelion_postprocess {BOX}³, {name} time (shared machine, medians of {ROUNDS}): "
              f"bare {got['bare']:.3f} s, map reading and writing {got['io']:.3f} s, adapter "
              f"{got['adapter']:.3f} s; adapter / bare {got['adapter'] / got['bare']:.3f}, "
              f"(adapter - read/write) / bare {(got['adapter'] - got['io']) / got['bare']:.3f}")
    benchmark.extra_info.update({f"{k}_cpu_median_s": v for k, v in cpu.items()})
    benchmark.extra_info["read_write_median_s"] = wall["io"]
    report_ratio(benchmark, f"external adapter, relion_postprocess {BOX}³ (wall)",
                 "bare_program", wall["bare"])
    assert cpu["adapter"] <= 1.1 * cpu["bare"] + cpu["io"]
