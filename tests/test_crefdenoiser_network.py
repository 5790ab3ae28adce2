"""Tests of the crefDenoiser network's architecture: sizes, shapes, initialisation, FLOP count."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from baselines.crefdenoiser.network import (
    ALIGNED_RECEPTIVE_RADIUS,
    PARAMETER_COUNT,
    RECEPTIVE_RADIUS,
    SIZE_MULTIPLE,
    CrefUNet,
    check_input_shape,
    conv_flops,
)

# (C_in, C_out, side of the output for a 64^3 input) of each convolution in Keras order,
# written out from the published architecture (encoder, decoder, output).
EXPECTED_64 = [(1, 16, 64), (16, 16, 64), (16, 16, 32), (16, 16, 16), (16, 16, 8), (16, 16, 4),
               (16, 16, 2),
               (32, 32, 4), (32, 32, 4), (48, 32, 8), (32, 32, 8), (48, 32, 16), (32, 32, 16),
               (48, 32, 32), (32, 32, 32), (33, 16, 64), (16, 8, 64),
               (8, 1, 64)]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CrefUNet().eval()


def test_parameter_count_and_convolutions(model):
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    assert len(convs) == 18
    assert sum(p.numel() for p in model.parameters()) == PARAMETER_COUNT == 322_881
    for conv in convs:
        assert conv.kernel_size == (3, 3, 3) and conv.stride == (1, 1, 1)
        assert conv.padding == (1, 1, 1) and conv.bias is not None
    assert set(map(id, model.keras_order())) == set(map(id, convs))


def _record_convs(model, x):
    """Run the model, returning (C_in, C_out, output side) of each convolution in call order."""
    seen = []
    hooks = [conv.register_forward_hook(
        lambda m, inp, out: seen.append((m, inp[0].shape[1], out.shape[1], tuple(out.shape[2:]))))
        for conv in model.keras_order()]
    try:
        with torch.inference_mode():
            y = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return seen, y


def test_layer_shapes_and_call_order_follow_the_architecture(model):
    x = torch.randn(1, 1, 64, 64, 64)
    seen, y = _record_convs(model, x)
    assert y.shape == x.shape
    # Called in Keras creation order (the order of the checkpoint keys).
    assert [m for m, *_ in seen] == model.keras_order()
    assert [(cin, cout, side[0]) for _, cin, cout, side in seen] == EXPECTED_64
    assert all(len(set(side)) == 1 for *_, side in seen)


def _capture(store, key, which="output"):
    """A hook that keeps a copy of a module's output (or first input); it returns None so
    the forward pass is left unchanged."""
    def forward_hook(module, inputs, output):
        store[key] = output.clone()

    def pre_hook(module, inputs):
        store[key] = inputs[0].clone()

    return forward_hook if which == "output" else pre_hook


def test_output_is_linear():
    torch.manual_seed(3)
    model = CrefUNet().eval()
    seen = {}
    model.output.register_forward_pre_hook(_capture(seen, "hidden", "input"))
    model.output.register_forward_hook(_capture(seen, "out"))
    with torch.no_grad():
        y = model(torch.randn(1, 1, 32, 32, 32))
        recomputed = nn.functional.conv3d(seen["hidden"], model.output.weight,
                                          model.output.bias, padding=1)
    # The last convolution's raw output is returned unchanged (no activation after it),
    # and it does take negative values.
    assert torch.equal(y, seen["out"])
    assert (y < 0).any() and (y > 0).any()
    torch.testing.assert_close(recomputed, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer", ["encoder.0", "encoder.6", "decoder.9"])
def test_leaky_relu_slope_is_one_tenth(layer):
    torch.manual_seed(1)
    model = CrefUNet().eval()
    modules = dict(model.named_modules())
    conv = modules[layer]
    following = model.keras_order()[model.keras_order().index(conv) + 1]
    seen = {}
    conv.register_forward_hook(_capture(seen, "raw"))
    following.register_forward_pre_hook(_capture(seen, "next_input", "input"))
    with torch.inference_mode():
        model(torch.randn(1, 1, 64, 64, 64))
    raw = seen["raw"]
    assert (raw < 0).any()
    activated = torch.where(raw > 0, raw, 0.1 * raw)
    nxt = seen["next_input"]
    if layer == "encoder.0":
        torch.testing.assert_close(nxt, activated)
    elif layer == "encoder.6":
        # The bottleneck's activation is upsampled (nearest) and placed after the skip.
        up = nn.functional.interpolate(activated, scale_factor=2, mode="nearest")
        torch.testing.assert_close(nxt[:, 16:], up)
    else:
        # The last decoder conv (8 filters) feeds the linear output conv directly.
        torch.testing.assert_close(nxt, activated)


def test_he_normal_initialisation():
    torch.manual_seed(2)
    model = CrefUNet()
    for conv in model.keras_order():
        fan_in = conv.weight[0].numel()
        std = math.sqrt(2.0 / fan_in)
        w = conv.weight.detach()
        assert torch.all(conv.bias == 0)
        # Truncated at two standard deviations of the underlying (rescaled) normal.
        assert w.abs().max() <= 2 * std / 0.87962566103423978 + 1e-6
        if w.numel() > 20_000:
            assert w.std().item() == pytest.approx(std, rel=0.04)
            assert abs(w.mean().item()) < 0.05 * std


@pytest.mark.parametrize("shape", [(48, 64, 64), (64, 64, 0), (64, 64), (33, 32, 32)])
def test_rejects_sides_not_multiples_of_32(model, shape):
    with pytest.raises(ValueError, match=f"multiples of {SIZE_MULTIPLE}"):
        check_input_shape(shape)
    if len(shape) == 3 and all(shape):
        with pytest.raises(ValueError, match="multiples of 32"):
            model(torch.zeros(1, 1, *shape))


def test_rejects_wrong_channels(model):
    with pytest.raises(ValueError, match=r"\(N, 1, D, H, W\)"):
        model(torch.zeros(1, 2, 32, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 1, D, H, W\)"):
        model(torch.zeros(32, 32, 32))


def test_conv_flops_matches_the_convolutions_run(model):
    shape = (32, 64, 96)
    seen, _ = _record_convs(model, torch.randn(1, 1, *shape))
    counted = sum(2 * 27 * cin * cout * math.prod(side) for _, cin, cout, side in seen)
    assert conv_flops(shape) == counted
    with pytest.raises(ValueError):
        conv_flops((40, 64, 64))


def _reach(aligned: bool) -> int:
    """How far beyond a voxel (or a 32-aligned block's edge) the output depends on the input,
    along one axis, by following each input's index interval through the graph."""
    n = 32 * 40
    lo, hi = np.arange(n), np.arange(n)

    def conv(t):
        return np.r_[t[0][:1], t[0][:-1]], np.r_[t[1][1:], t[1][-1:]]

    def pool(t):
        return t[0][0::2], t[1][1::2]

    def up_cat(skip, t):
        return np.minimum(skip[0], np.repeat(t[0], 2)), np.maximum(skip[1], np.repeat(t[1], 2))

    x = (lo, hi)
    h, skips = conv(conv(x)), [x]
    for _ in range(4):
        h = pool(h)
        skips.append(h)
        h = conv(h)
    h = conv(pool(h))
    for _ in range(5):
        h = conv(conv(up_cat(skips.pop(), h)))
    lo, hi = conv(h)
    z = np.arange(32 * 10, 32 * 30)  # far from the ends
    left, right, offset = z - lo[z], hi[z] - z, z % 32
    if not aligned:
        return int(max(left.max(), right.max()))
    # Beyond a block edge on the grid: the reach less the voxel's distance from the edge.
    return int(max((left - offset).max(), (right - (31 - offset)).max()))


def test_receptive_radii_follow_from_the_graph():
    assert _reach(aligned=False) == RECEPTIVE_RADIUS == 158
    assert _reach(aligned=True) == ALIGNED_RECEPTIVE_RADIUS == 128
