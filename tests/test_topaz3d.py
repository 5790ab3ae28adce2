"""Tests of the ``topaz3d`` method: equal to Topaz's own ``denoise3d`` command (patches and
whole maps, both models, the average and each half), parameters and version, bad input, and
the message when the optional topaz-em is missing."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.topaz3d import INSTALL_HINT, Topaz3D
from cref_bench import cli
from cref_bench.commands import methods as methods_cmd
from cref_bench.errors import MapError, UnavailableError
from cref_bench.maps import io as mapio
from cref_bench.maps.volume import Volume
from cref_bench.methods.catalog import describe
from cref_bench.methods.protocol import available_methods, load_method
from dataset_builder.synthetic import make_phantom

ROOT = Path(__file__).resolve().parents[1]
TARGET = "baselines.topaz3d:Topaz3D"
MISSING = Topaz3D.unavailable()
needs_topaz = pytest.mark.skipif(MISSING is not None,
                                 reason=f"topaz-em is not installed or not importable: {MISSING}")


def _simulate_missing_topaz(monkeypatch) -> None:
    """Make every ``import topaz...`` fail as if topaz-em were not installed."""
    for name in [m for m in sys.modules if m == "topaz" or m.startswith("topaz.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "topaz", None)


def _topaz_command(tmp_path: Path, volumes: dict[str, Volume], *options: str,
                   device: str = "-1") -> dict[str, np.ndarray]:
    """Run ``topaz denoise3d`` (its module's command line) on ``volumes`` written as MRC files,
    on the CPU (``device`` -1) or a GPU; returns the denoised arrays by name."""
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    paths = [mapio.write_map(inputs / f"{name}.mrc", vol) for name, vol in volumes.items()]
    done = subprocess.run([sys.executable, "-m", "topaz.commands.denoise3d", *map(str, paths),
                           "-o", str(outputs), "-d", device, *options],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return {name: mapio.read_map(outputs / f"{name}.mrc").data for name in volumes}


def _assert_same(ours: Volume, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    scale = float(np.abs(theirs).max())
    np.testing.assert_allclose(ours.data, theirs, rtol=0, atol=1e-5 * scale)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(3, box=40, voxel_size=1.5, resolution=6.0)


def _crop(volume: Volume, box) -> Volume:
    return Volume(volume.data[box], volume.voxel_size, volume.origin, volume.source)


@needs_topaz
def test_patches_equal_topaz_denoise3d_for_the_average_and_each_half(phantom, tmp_path):
    # A non-cubic box (axes must not be swapped) cut into 1 x 2 x 2 patches of 20 voxels, each
    # seen in a 32-voxel window (6 voxels of padding).
    box = (slice(4, 24), slice(2, 30), slice(2, 38))
    half1, half2 = _crop(phantom.half1, box), _crop(phantom.half2, box)
    method = Topaz3D(patch_size=20, padding=6, device="cpu")
    ours = method.denoise(half1, half2)
    average = Volume((half1.data + half2.data) * np.float32(0.5), half1.voxel_size, half1.origin)
    theirs = _topaz_command(tmp_path, {"average": average, "half1": half1, "half2": half2},
                            "-m", "unet-3d-10a", "-s", "20", "-p", "6")
    _assert_same(ours.full, theirs["average"])
    _assert_same(ours.half1, theirs["half1"])
    _assert_same(ours.half2, theirs["half2"])
    # The padding reaches the result: another padding gives another map.
    other = Topaz3D(patch_size=20, padding=10, device="cpu").denoise_map(average)
    assert np.abs(other.data - theirs["average"]).max() > 1e-2 * np.abs(theirs["average"]).max()


@needs_topaz
def test_whole_map_equals_topaz_denoise3d_with_either_model(phantom, tmp_path):
    volume = _crop(phantom.half1, (slice(0, 32), slice(2, 38), slice(0, 40)))
    theirs = _topaz_command(tmp_path, {"map": volume}, "-m", "unet-3d-20a", "-s", "0")["map"]
    volume.data.flags.writeable = False  # as the runner hands maps to methods
    method = Topaz3D(model="unet-3d-20a", patch_size=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quietly, and without touching the input
        ours20 = method.denoise_map(volume)
    _assert_same(ours20, theirs)
    ours10 = Topaz3D(model="unet-3d-10a", patch_size=0, device="cpu").denoise_map(volume)
    assert np.abs(ours10.data - theirs).max() > 1e-2 * np.abs(theirs).max()  # the model matters
    assert ours20.voxel_size == volume.voxel_size and ours20.origin == volume.origin


@needs_topaz
def test_denoising_brings_each_map_closer_to_the_truth(phantom):
    def correlation(a: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), phantom.truth.data.ravel())[0, 1])

    out = Topaz3D(patch_size=0, device="cpu").denoise(phantom.half1, phantom.half2)
    noisy = (phantom.half1.data + phantom.half2.data) / 2
    assert correlation(noisy) < 0.4 and correlation(out.full.data) > 0.8
    for half, denoised in ((phantom.half1, out.half1), (phantom.half2, out.half2)):
        assert correlation(half.data) < 0.3 and correlation(denoised.data) > 0.8


@needs_topaz
def test_parameters_version_and_registry():
    expected_device = "cuda:0" if torch.cuda.is_available() else "cpu"
    method = load_method("topaz3d")
    assert isinstance(method, Topaz3D)
    assert method.params() == {"model": "unet-3d-10a", "patch_size": 96, "padding": 48,
                               "device": expected_device}
    installed = importlib.metadata.version("topaz-em")
    assert method.version == f"1+topaz-em-{installed}" == Topaz3D.version
    chosen = load_method("topaz3d", model="unet-3d-20a", patch_size=64, padding=0, device="cpu")
    assert chosen.params() == {"model": "unet-3d-20a", "patch_size": 64, "padding": 0,
                               "device": "cpu"}
    assert available_methods()["topaz3d"] == TARGET


@needs_topaz
@pytest.mark.parametrize("kwargs, fault", [
    ({"model": "unet-3d-30a"}, "model must be one of unet-3d-10a, unet-3d-20a"),
    ({"patch_size": -1}, "patch_size must be an integer >= 0"),
    ({"padding": 1.5}, "padding must be an integer >= 0"),
    ({"patch_size": 16, "padding": 4}, "at least 32"),
    ({"device": "tpu"}, "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ({"device": "cuda:64"}, "GPU"),
])
def test_bad_parameters_are_refused(kwargs, fault):
    with pytest.raises(ValueError, match=fault):
        Topaz3D(**kwargs)


@needs_topaz
def test_bad_maps_are_refused_with_their_source():
    whole = Topaz3D(patch_size=0, device="cpu")
    data = np.random.default_rng(0).normal(size=(32, 32, 32)).astype(np.float32)
    data[1, 2, 3] = np.nan
    with pytest.raises(MapError, match="nan.map: 1 non-finite"):
        whole.denoise_map(Volume(data, source="nan.map"))
    with pytest.raises(MapError, match="flat.map: .*constant"):
        whole.denoise_map(Volume(np.full((32, 32, 32), 2.0, np.float32), source="flat.map"))
    with pytest.raises(MapError, match="small.map: .*at least 32"):
        whole.denoise_map(Volume(np.ones((32, 31, 40), np.float32), source="small.map"))
    # Exactly zero beyond x = 14: the window of the patch at x = 20 (from x = 14 on) is constant
    # and Topaz divides it by its standard deviation, 0.
    masked = np.random.default_rng(1).normal(size=(20, 20, 36)).astype(np.float32)
    masked[..., 14:] = 0
    patched = Topaz3D(patch_size=20, padding=6, device="cpu")
    with pytest.raises(MapError, match="masked.map: topaz3d produced .* non-finite"):
        patched.denoise_map(Volume(masked, source="masked.map"))


@needs_topaz
def test_methods_listing_shows_it_ready():
    row = describe("topaz3d", TARGET)
    assert row["error"] is None and row["version"] == Topaz3D.version
    assert row["parameters"] == "model='unet-3d-10a', patch_size=96, padding=48, device='auto'"


def test_missing_extra_says_how_to_install(monkeypatch, capsys):
    _simulate_missing_topaz(monkeypatch)
    assert 'pip install "cref-bench[topaz]"' in INSTALL_HINT and "--no-deps" in INSTALL_HINT
    with pytest.raises(UnavailableError, match="topaz3d method needs topaz-em") as caught:
        Topaz3D()
    assert INSTALL_HINT in str(caught.value)
    assert INSTALL_HINT in Topaz3D.unavailable()
    row = describe("topaz3d", TARGET)
    assert INSTALL_HINT in row["error"] and row["version"] is None and row["parameters"] is None
    monkeypatch.setattr(methods_cmd, "available_methods", lambda: {"topaz3d": TARGET})
    assert cli.main(["methods"]) == 0
    [line] = capsys.readouterr().out.splitlines()[1:]
    assert line.startswith("topaz3d") and f"unavailable: {Topaz3D.unavailable()}" in line


@needs_topaz
@pytest.mark.parametrize("module, package", [("h5py", "h5py"), ("PIL", "Pillow")])
def test_a_missing_package_of_topaz_is_named(monkeypatch, module, package):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    reason = Topaz3D.unavailable()
    assert f"{package} is not installed (no module {module!r})" in reason
    assert INSTALL_HINT in reason


@needs_topaz
def test_missing_weight_loader_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "pkg_resources", None)  # as with setuptools >= 81
    if sys.version_info >= (3, 12):  # topaz-em finds its weights with importlib.resources
        assert Topaz3D.unavailable() is None
        return
    assert "setuptools >= 81" in Topaz3D.unavailable()
    with pytest.raises(UnavailableError, match="pkg_resources"):
        Topaz3D()


def test_module_imports_without_topaz():
    script = ("import sys; sys.modules['topaz'] = None\n"
              "import baselines.topaz3d as t\n"
              "print(t.Topaz3D.unavailable())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert INSTALL_HINT in done.stdout


@needs_topaz
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU seen by torch")
def test_gpu_equals_topaz_denoise3d_on_the_gpu(tmp_path):
    # Topaz's default patches (96, padding 48: 8 windows of 192³) on a 100³ map, on GPU 0.
    phantom = make_phantom(5, box=100, voxel_size=1.2, resolution=4.0)
    method = Topaz3D()
    assert method.params()["device"] == "cuda:0"
    ours = method.denoise_map(phantom.half1)
    theirs = _topaz_command(tmp_path, {"half1": phantom.half1}, device="0")["half1"]
    np.testing.assert_allclose(ours.data, theirs, rtol=0, atol=1e-3 * float(np.abs(theirs).max()))
    # The CPU gives the same map up to the GPU's reduced-precision (TF32) convolutions.
    cpu = Topaz3D(patch_size=0, device="cpu").denoise_map(phantom.half2)
    gpu = Topaz3D(patch_size=0, device="cuda").denoise_map(phantom.half2)
    assert np.corrcoef(cpu.data.ravel(), gpu.data.ravel())[0, 1] > 0.999
