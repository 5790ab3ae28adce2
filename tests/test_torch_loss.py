"""The differentiable crefDenoiser loss: equal to the numpy value, correct gradients."""

import numpy as np
import pytest
import torch

from baselines.crefdenoiser.cref_loss import cref_loss, reference_fsc
from cref_bench.metrics.scores import reference_cref_loss


@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    shape = (3, 1, 32, 32, 32)
    signal = rng.standard_normal(shape)
    h1 = signal + rng.standard_normal(shape)
    h2 = signal + rng.standard_normal(shape)
    denoised = signal + 0.3 * rng.standard_normal(shape)
    mask = (rng.random(shape) > 0.3).astype(np.float64)
    return denoised, h1, h2, mask


def test_equals_numpy_value(batch):
    tensors = [torch.from_numpy(x) for x in batch]
    per_patch = cref_loss(*tensors, reduction="none")
    expected = [reference_cref_loss(*(x[i, 0] for x in batch)) for i in range(3)]
    np.testing.assert_allclose(per_patch.numpy(), expected, atol=1e-5)
    assert cref_loss(*tensors).item() == pytest.approx(np.mean(expected), abs=1e-5)


def test_perfect_and_identity_outputs(batch):
    denoised, h1, h2, _ = [torch.from_numpy(x) for x in batch]
    average = (h1 + h2) / 2
    # Returning the noisy input gives FSC_FD = 1: the loss is the trapezoid mean of 1 - C_ref.
    f = reference_fsc(h1, h2).abs()
    cref = torch.sqrt(2 * f / (1 + f))
    expected = torch.trapezoid(1 - cref, dx=1 / (cref.shape[1] - 1), dim=1)
    torch.testing.assert_close(cref_loss(average, h1, h2, reduction="none"), expected)


def test_fsc_of_identical_maps_is_one(batch):
    x = torch.from_numpy(batch[0])
    torch.testing.assert_close(reference_fsc(x, x), torch.ones(3, 16, dtype=torch.float64))


@pytest.mark.parametrize("shape, fast", [((1, 1, 6, 6, 6), False), ((2, 1, 8, 8, 8), True)])
def test_gradcheck_small_float64(shape, fast):
    rng = np.random.default_rng(5)
    h1 = torch.from_numpy(rng.standard_normal(shape))
    h2 = h1 + torch.from_numpy(rng.standard_normal(shape))
    mask = torch.from_numpy((rng.random(shape) > 0.2).astype(np.float64))
    denoised = torch.from_numpy(rng.standard_normal(shape)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d: cref_loss(d, h1, h2, mask), (denoised,), eps=1e-6,
                                     atol=1e-5, fast_mode=fast)


def test_shape_errors():
    a = torch.zeros(1, 1, 8, 8, 8)
    with pytest.raises(ValueError, match="shapes differ"):
        cref_loss(a, a, torch.zeros(1, 1, 8, 8, 10))
