"""Tests of crefDenoiser inference: padding (the published recipe against a hand-computed
reference), standardisation, tiling (exact once the margin covers the receptive field), the
recipe end to end, and the ``crefdenoiser`` method."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from baselines.crefdenoiser.inference import (
    choose_cores,
    denoise_array,
    pad_to_multiple,
    plan_tiles,
    run_network,
    run_tiles,
    standardise,
    window_bytes,
)
from baselines.crefdenoiser.network import ALIGNED_RECEPTIVE_RADIUS, CrefUNet
from baselines.crefdenoiser.settings import DEFAULT_MARGIN
from tests.reference import reference_dir

REFERENCE = reference_dir("crefdenoiser")
INDEX = REFERENCE / "saved-model-epoch-192.index"
FORWARD = REFERENCE / "forward_64.npz"
needs_reference = pytest.mark.skipif(
    not (INDEX.is_file() and FORWARD.is_file()),
    reason=f"reference crefDenoiser checkpoint and forward pass not found in {REFERENCE}")


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(0)
    model = CrefUNet().eval()
    with torch.no_grad():  # biases too, so that zero padding and offsets matter
        for conv in model.keras_order():
            conv.bias.normal_(0, 0.1)
    return model


def _whole(model, data):
    with torch.inference_mode():
        return model(torch.from_numpy(data)[None, None])[0, 0].numpy()


def test_pad_to_multiple_at_the_end_with_zeros():
    data = np.random.default_rng(0).normal(size=(30, 32, 33)).astype(np.float32)
    padded, crop = pad_to_multiple(data)
    assert padded.shape == (32, 32, 64) and padded.dtype == np.float32
    assert crop == (slice(0, 30), slice(0, 32), slice(0, 33))
    np.testing.assert_array_equal(padded[:30, :32, :33], data)
    assert not padded[30:].any() and not padded[:, :, 33:].any()
    same, crop = pad_to_multiple(padded)
    assert same is padded and crop == (slice(0, 32), slice(0, 32), slice(0, 64))
    with pytest.raises(ValueError, match="padding must be one of end, symmetric"):
        pad_to_multiple(data, padding="reflect")


def test_pad_to_multiple_symmetric_mirrors_over_both_ends():
    data = np.random.default_rng(0).normal(size=(30, 32, 33)).astype(np.float32)
    padded, crop = pad_to_multiple(data, padding="symmetric")
    assert padded.shape == (32, 32, 64)
    np.testing.assert_array_equal(padded[crop], data)
    # 33 -> 64: 15 voxels before, 16 after, mirrored with the edge voxel repeated.
    assert crop[2] == slice(15, 48)
    np.testing.assert_array_equal(padded[1:31, :, 14], data[:, :, 0])
    np.testing.assert_array_equal(padded[1:31, :, 13], data[:, :, 1])
    np.testing.assert_array_equal(padded[1:31, :, 48], data[:, :, 32])
    np.testing.assert_array_equal(padded[0, :, 15:48], data[0])
    np.testing.assert_array_equal(padded[31, :, 15:48], data[29])


def _published_by_hand(model, data):
    """The published recipe written out step by step, with the plain forward pass."""
    data = data.astype(np.float64)
    standardised = (data - data.mean()) / data.std()
    box = np.zeros([-(-n // 32) * 32 for n in data.shape], np.float32)
    box[:data.shape[0], :data.shape[1], :data.shape[2]] = standardised
    raw = _whole(model, box)[:data.shape[0], :data.shape[1], :data.shape[2]].astype(np.float64)
    return (raw - raw.mean()) / raw.std() * data.std() + data.mean()


def test_denoise_array_follows_the_published_padding(random_model):
    data = np.random.default_rng(4).gamma(2.0, size=(40, 33, 50)).astype(np.float32)
    want = _published_by_hand(random_model, data)
    got = denoise_array(random_model, data, progress=False)
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()
    # The other padding gives another answer (so the test can tell them apart).
    other = denoise_array(random_model, data, padding="symmetric", progress=False)
    assert np.linalg.norm(other - want) > 1e-2 * np.linalg.norm(want - want.mean())


def test_standardise():
    data = np.random.default_rng(1).normal(5.0, 3.0, size=(20, 21, 22)).astype(np.float32)
    out, mean, std = standardise(data)
    assert mean == pytest.approx(data.mean(dtype=np.float64))
    assert std == pytest.approx(data.std(dtype=np.float64))
    assert abs(out.mean()) < 1e-6 and out.std() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="standard deviation 0"):
        standardise(np.ones((4, 4, 4), np.float32))


@pytest.mark.parametrize("shape,cores,margin", [((64, 96, 32), 32, 32),
                                                ((96, 96, 96), (64, 32, 96), 64),
                                                ((128, 32, 64), 96, 0)])
def test_tiles_partition_the_map(shape, cores, margin):
    tiles = plan_tiles(shape, cores, margin)
    count = np.zeros(shape, np.int32)
    for tile in tiles:
        count[tile.core] += 1
        for core, window, n in zip(tile.core, tile.window, shape):
            assert window.start % 32 == 0 and window.stop % 32 == 0
            assert window.start == max(0, core.start - margin)
            assert window.stop == min(n, core.stop + margin)
    assert np.all(count == 1)


def test_tile_arguments_checked():
    with pytest.raises(ValueError, match="multiple of 32"):
        plan_tiles((64, 64, 64), 48, 32)
    with pytest.raises(ValueError, match="multiple of 32"):
        plan_tiles((64, 64, 64), 32, 16)
    with pytest.raises(ValueError, match="multiples of 32"):
        plan_tiles((64, 64, 40), 32, 32)


def test_choose_cores_respects_the_budget():
    # A map that fits runs whole.
    assert choose_cores((128, 128, 128), 64, window_bytes((128, 128, 128))) == (128, 128, 128)
    budget = window_bytes((192, 256, 256))
    cores = choose_cores((256, 256, 256), 64, budget)
    windows = [tuple(s.stop - s.start for s in t.window)
               for t in plan_tiles((256,) * 3, cores, 64)]
    assert max(window_bytes(w) for w in windows) <= budget
    assert cores != (256, 256, 256)

    def work(c):
        return sum(math.prod(s.stop - s.start for s in t.window)
                   for t in plan_tiles((256,) * 3, c, 64))

    assert work(cores) < work((32, 32, 32))  # less work than the smallest cores


_PEAK_SCRIPT = """
import json, sys
import torch
from baselines.crefdenoiser.lean import lean_forward
from baselines.crefdenoiser.network import CrefUNet


def status(key):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(key))


torch.set_num_threads(2)
model = CrefUNet().eval()
lean_forward(model, torch.zeros(1, 1, 32, 32, 32))  # kernels compiled, weights laid out
x = torch.randn(1, 1, {shape})
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # reset the peak resident size (VmHWM)
before = status("VmRSS:")
lean_forward(model, x)
json.dump({{"grew": status("VmHWM:") - before}}, sys.stdout)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_window_bytes_bounds_the_lean_pass():
    """The tiling budget's estimate of a window's memory covers the lean pass's measured
    growth of peak RSS (input and output included) in a fresh process."""
    shape = (160, 128, 96)
    done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT.format(shape=str(shape)[1:-1])],
                          check=True, capture_output=True, text=True)
    grew = json.loads(done.stdout)["grew"]
    assert 0 < grew <= window_bytes(shape)


def test_tiled_stitching_is_exact_for_a_pointwise_model():
    model = nn.Conv3d(1, 1, kernel_size=1)
    data = np.random.default_rng(2).normal(size=(64, 96, 32)).astype(np.float32)
    with torch.inference_mode():
        want = model(torch.from_numpy(data)[None, None])[0, 0].numpy()
    got = run_tiles(model, data, plan_tiles(data.shape, 32, 0), progress=False)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_tiled_equals_whole_once_the_margin_covers_the_receptive_field(random_model):
    """A long box cut into 64-voxel cores along its first axis: with the default margin, 128
    (the receptive radius of cores cut on the pooling grid), every core's output equals
    whole-map inference to rounding; with 96 it does not, so the box does test the seams."""
    assert DEFAULT_MARGIN == ALIGNED_RECEPTIVE_RADIUS == 128
    data = np.random.default_rng(3).normal(size=(384, 32, 32)).astype(np.float32)
    whole = _whole(random_model, data)
    scale = np.abs(whole).max()
    tiled = run_network(random_model, data, tile=64, progress=False)
    assert len(plan_tiles(data.shape, 64, DEFAULT_MARGIN)) == 6
    assert np.abs(tiled - whole).max() < 1e-5 * scale
    short = run_network(random_model, data, tile=64, margin=96, progress=False)
    assert np.abs(short - whole).max() > 1e-4 * scale


def test_denoise_array_keeps_shape_mean_std_and_is_affine_invariant(random_model):
    data = np.random.default_rng(5).normal(size=(40, 33, 50)).astype(np.float32)
    out = denoise_array(random_model, data, progress=False)
    assert out.shape == data.shape and out.dtype == np.float32
    assert out.mean() == pytest.approx(data.mean(), abs=1e-5)
    assert out.std() == pytest.approx(data.std(), rel=1e-5)
    # Standardising first makes the result follow any positive affine change of the input.
    shifted = denoise_array(random_model, data * 3.0 + 7.0, progress=False)
    np.testing.assert_allclose(shifted, out * 3.0 + 7.0, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="3D"):
        denoise_array(random_model, data[0])


@needs_reference
def test_denoise_array_matches_the_recorded_forward_pass():
    from baselines.crefdenoiser.checkpoint import load_weights

    recorded = np.load(FORWARD)
    data = recorded["input"] * 2.5 + 1.0
    want = recorded["output"].astype(np.float64)
    want = ((want - want.mean()) / want.std() * data.std(dtype=np.float64)
            + data.mean(dtype=np.float64))
    got = denoise_array(load_weights(INDEX), data, progress=False)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-4


@pytest.fixture()
def random_weights(tmp_path, random_model):
    from baselines.crefdenoiser.checkpoint import save_weights

    return save_weights(random_model, tmp_path / "random.pt")


def test_method_denoises_average_and_halves(random_weights, random_model):
    from baselines.crefdenoiser.checkpoint import weights_digest
    from cref_bench.maps.volume import Volume
    from cref_bench.methods.protocol import load_method

    method = load_method("crefdenoiser", weights=str(random_weights), progress=False)
    assert type(method).__name__ == "CrefDenoiser"
    assert method.version.endswith("+" + weights_digest(random_weights))
    assert method.params()["weights_sha256"] == weights_digest(random_weights)
    rng = np.random.default_rng(6)
    half1 = Volume(rng.normal(size=(40, 36, 33)), voxel_size=1.3, origin=(1.0, 2.0, 3.0),
                   source="h1.mrc")
    half2 = half1.like(rng.normal(size=(40, 36, 33)).astype(np.float32), source="h2.mrc")
    result = method.denoise(half1, half2)
    average = (half1.data + half2.data) * np.float32(0.5)
    np.testing.assert_allclose(result.full.data,
                               denoise_array(random_model, average, progress=False),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.half2.data,
                               denoise_array(random_model, half2.data, progress=False),
                               rtol=1e-5, atol=1e-5)
    for out in (result.full, result.half1, result.half2):
        out.check_same_grid(half1)
        assert out.origin == half1.origin
    assert result.half1.data.std() == pytest.approx(half1.data.std(), rel=1e-5)


def test_method_refuses_bad_input(random_weights, monkeypatch):
    from baselines.crefdenoiser.method import WEIGHTS_ENV, CrefDenoiser
    from cref_bench.errors import MapError
    from cref_bench.maps.volume import Volume

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(ValueError, match="cref-bench import-weights"):
        CrefDenoiser()
    monkeypatch.setenv(WEIGHTS_ENV, str(random_weights))
    method = CrefDenoiser(progress=False)
    assert method.weights == str(random_weights)
    with pytest.raises(MapError, match="flat.mrc"):
        method.denoise_map(Volume(np.ones((32, 32, 32)), source="flat.mrc"))
    with pytest.raises(ValueError, match="margin must be a non-negative multiple of 32"):
        CrefDenoiser(random_weights, margin=40)
    with pytest.raises(ValueError, match="tile must be a positive multiple of 32"):
        CrefDenoiser(random_weights, tile=0)
    with pytest.raises(ValueError, match="padding must be one of"):
        CrefDenoiser(random_weights, padding="zeros")
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16"):
        CrefDenoiser(random_weights, precision="float16")


@needs_reference
def test_method_accepts_the_tensorflow_checkpoint():
    from baselines.crefdenoiser.checkpoint import weights_digest
    from baselines.crefdenoiser.method import CrefDenoiser

    method = CrefDenoiser(str(INDEX), progress=False)
    assert method.weights_sha256 == weights_digest(INDEX)
    assert method.weights_sha256 in method.version
