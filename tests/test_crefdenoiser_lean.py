"""Tests of the lean forward pass: the folded phase kernels against the upsample-then-convolve
they replace, and the whole pass against the training network's forward (random and published
weights, odd shapes, every slab edge case, both kernel paths, batches, bfloat16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.crefdenoiser import lean
from baselines.crefdenoiser.lean import lean_forward, phase_kernels
from baselines.crefdenoiser.network import CrefUNet
from tests.reference import reference_dir

REFERENCE = reference_dir("crefdenoiser")
INDEX = REFERENCE / "saved-model-epoch-192.index"
FORWARD = REFERENCE / "forward_64.npz"
needs_reference = pytest.mark.skipif(
    not (INDEX.is_file() and FORWARD.is_file()),
    reason=f"reference crefDenoiser checkpoint and forward pass not found in {REFERENCE}")
TOLERANCE = 1e-5  # largest deviation allowed, relative to the largest output value
BFLOAT16_TOLERANCE = 0.01  # relative L2 from float32 on the reference input (measured 0.004)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = CrefUNet().eval()
    with torch.no_grad():  # biases too, so that zero padding and slab edges matter
        for conv in net.keras_order():
            conv.bias.normal_(0, 0.1)
    return net


@pytest.fixture(scope="module")
def published():
    from baselines.crefdenoiser.checkpoint import load_weights

    return load_weights(INDEX)


def _plain(model, x):
    with torch.inference_mode():
        return model(x)


def _deviation(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


def test_phase_kernels_convolve_h_as_the_kernel_convolves_its_upsampling():
    torch.manual_seed(1)
    h = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64)
    weight = torch.randn(7, 3, 3, 3, 3, dtype=torch.float64)
    want = F.conv3d(F.interpolate(h, scale_factor=2, mode="nearest"), weight, padding=1)
    phases = F.conv3d(h, phase_kernels(weight), padding=1)  # (2, 8 * 7, 5, 6, 7)
    got = torch.empty_like(want)
    for pz in range(2):
        for py in range(2):
            for px in range(2):
                first = ((pz * 2 + py) * 2 + px) * 7
                got[:, :, pz::2, py::2, px::2] = phases[:, first:first + 7, pz:pz + 4,
                                                        py:py + 5, px:px + 6]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(32, 32, 32), (64, 32, 96), (32, 96, 64)])
@pytest.mark.parametrize("fused", [True, False])
def test_equals_the_training_forward(model, shape, fused):
    x = torch.randn(1, 1, *shape, generator=torch.Generator().manual_seed(2))
    want = _plain(model, x)
    got = lean_forward(model, x, fused=fused)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert _deviation(got, want) < TOLERANCE


@pytest.mark.parametrize("min_planes", [2, 6])
@pytest.mark.parametrize("fused", [True, False])
def test_equals_the_training_forward_across_slab_boundaries(model, monkeypatch, min_planes,
                                                            fused):
    """Slabs of a few planes at every level: slabs at both, one or no edge of the map, halos
    wider than a slab, an odd slab count, a last slab shorter than the others."""
    monkeypatch.setattr(lean, "MIN_SLAB_PLANES", min_planes)
    x = torch.randn(1, 1, 128, 32, 32, generator=torch.Generator().manual_seed(3))
    want = _plain(model, x)
    got = lean_forward(model, x, slab_bytes=1, fused=fused)
    assert _deviation(got, want) < TOLERANCE


def test_slabs_change_nothing_but_rounding(model, monkeypatch):
    x = torch.randn(1, 1, 128, 64, 32, generator=torch.Generator().manual_seed(4))
    whole = lean_forward(model, x)
    monkeypatch.setattr(lean, "MIN_SLAB_PLANES", 4)
    assert _deviation(lean_forward(model, x, slab_bytes=1), whole) < 1e-6


def test_batches_and_parameters_read_at_each_call(model):
    x = torch.randn(2, 1, 32, 64, 32, generator=torch.Generator().manual_seed(5))
    assert _deviation(lean_forward(model, x), _plain(model, x)) < TOLERANCE
    changed = CrefUNet().eval()
    changed.load_state_dict(model.state_dict())
    before = lean_forward(changed, x)
    with torch.no_grad():  # in place, as an optimiser step changes them
        changed.decoder[8].weight[:, 0] *= 3  # the skip part of the full-resolution block
    after = lean_forward(changed, x)
    assert _deviation(after, _plain(changed, x)) < TOLERANCE
    assert _deviation(after, before) > 1e-2


def test_refuses_bad_input(model):
    with pytest.raises(ValueError, match=r"\(N, 1, D, H, W\)"):
        lean_forward(model, torch.zeros(1, 2, 32, 32, 32))
    with pytest.raises(ValueError, match="multiples of 32"):
        lean_forward(model, torch.zeros(1, 1, 32, 48, 32))
    with pytest.raises(ValueError, match="fused kernels need"):
        lean_forward(model, torch.zeros(1, 1, 32, 32, 32), dtype=torch.float64, fused=True)


@needs_reference
def test_published_weights_equal_the_training_forward_and_tensorflow(published):
    recorded = np.load(FORWARD)
    x = torch.from_numpy(recorded["input"])[None, None]
    got = lean_forward(published, x)
    assert _deviation(got, _plain(published, x)) < TOLERANCE
    want = recorded["output"]
    assert np.linalg.norm(got[0, 0].numpy() - want) / np.linalg.norm(want) < 1e-4
    # A box that is not a cube, in slabs, with the published weights.
    big = torch.from_numpy(np.tile(recorded["input"], (2, 1, 1)))[None, None]
    assert _deviation(lean_forward(published, big, slab_bytes=1), _plain(published, big)) \
        < TOLERANCE


@needs_reference
def test_bfloat16_stays_within_its_stated_tolerance(published):
    x = torch.from_numpy(np.load(FORWARD)["input"])[None, None]
    reference = lean_forward(published, x)
    fast = lean_forward(published, x, dtype=torch.bfloat16)
    assert fast.dtype == torch.float32
    relative = float(torch.linalg.norm(fast - reference) / torch.linalg.norm(reference))
    assert 1e-4 < relative < BFLOAT16_TOLERANCE
