"""Speed of the ``topaz3d`` method on the CPU (2 threads) against Topaz's own ``denoise3d``
command (the function behind ``topaz denoise3d``, given the map as an MRC file, as a user runs
it) on the same 128³ phantom half-map in the same run: the map denoised whole, and in 64-voxel
patches with 16 voxels of padding. Rounds alternate (Topaz's command, then the method) so that
the load of a shared machine falls on both alike. The ratio should be about 1: the method adds
no work to Topaz's. Topaz's default patches (96 + 2·48 = 192³ windows) need some 8 GiB each on
the CPU and are left out of this run.

Run: ``python -m pytest benchmarks/bench_topaz3d.py --benchmark-enable -s -p no:cacheprovider``
(skipped when topaz-em is not installed).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
import torch

from baselines.topaz3d import Topaz3D
from benchmarks.timing import report_ratio
from cref_bench.maps import io as mapio
from dataset_builder.synthetic import make_phantom

THREADS = 2
BOX = 128
MISSING = Topaz3D.unavailable()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"topaz-em unavailable: {MISSING}")


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def half_map(tmp_path_factory):
    """A 128³ phantom half-map, in memory and as an MRC file."""
    volume = make_phantom(0, box=BOX, voxel_size=1.2, resolution=4.0).half1
    path = mapio.write_map(tmp_path_factory.mktemp("topaz3d") / "half1.mrc", volume)
    return volume, path


def _topaz_denoise3d(path, out, patch_size: int, padding: int) -> np.ndarray:
    """Topaz's ``denoise3d`` command on the CPU; returns the map it wrote."""
    from topaz.commands import denoise3d

    args = denoise3d.add_arguments().parse_args(
        [str(path), "-o", str(out), "-m", "unet-3d-10a", "-s", str(patch_size),
         "-p", str(padding), "-d", "-1"])
    denoise3d.main(args)
    return mapio.read_map(out / path.name).data


@pytest.mark.parametrize("patch_size, padding, rounds", [(0, 0, 3), (64, 16, 1)],
                         ids=["whole", "patches-64-pad-16"])
def test_method_against_topaz_command(benchmark, half_map, tmp_path, patch_size, padding, rounds):
    volume, path = half_map
    method = Topaz3D(patch_size=patch_size, padding=padding, device="cpu")
    theirs, seconds = [], []

    def topaz_first():  # untimed setup of each round: rounds alternate, Topaz's command first
        start = time.perf_counter()
        theirs.append(_topaz_denoise3d(path, tmp_path, patch_size, padding))
        seconds.append(time.perf_counter() - start)

    ours = benchmark.pedantic(method.denoise_map, args=(volume,), setup=topaz_first,
                              rounds=rounds, iterations=1)
    np.testing.assert_allclose(ours.data, theirs[-1], rtol=0,
                               atol=1e-5 * float(np.abs(theirs[-1]).max()))
    report_ratio(benchmark, f"topaz3d {BOX}³ {benchmark.name.split('[')[-1].rstrip(']')}, "
                 f"{THREADS} threads", "topaz_denoise3d_command", statistics.median(seconds))
