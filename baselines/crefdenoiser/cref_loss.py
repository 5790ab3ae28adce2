"""The crefDenoiser training loss in PyTorch: differentiable, batched, on the reference shells.

For a batch of patches ``(B, 1, D, H, W)`` with half-maps ``M1``, ``M2``, an optional mask and
the network output ``D(M)``:

* ``f = |FSC(M1·mask, M2·mask)|`` and ``C_ref = sqrt(2 f / (1 + f))`` (the reference keeps
  the absolute value, where the metrics library clips to [0, 1]);
* ``FSC_FD = |FSC(D(M), M)|`` with ``M = (M1·mask + M2·mask) / 2``; ``D(M)`` is used as given;
* shells of :func:`cref_bench.metrics.shells.reference_shells` (48 shells for a 96³ patch, shell
  ``r`` holding ``r² < |k|² <= (r + 1)²``, no DC);
* the loss of a patch is the trapezoid rule over ``t = r / (n - 1)``, ``r = 0 .. n - 1``, of
  ``|C_ref - FSC_FD|``; the batch loss is the mean over patches.

:func:`cref_bench.metrics.scores.reference_cref_loss` computes the same value with numpy.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from cref_bench.metrics.shells import friedel_weights, reference_shells

_EPS = 1e-12


@lru_cache(maxsize=8)
def _shell_tensors(shape: tuple[int, int, int], device: str):
    shells = reference_shells(shape)
    index = torch.from_numpy(shells.index.astype(np.int64)).reshape(-1)
    index = torch.where(index < 0, torch.full_like(index, shells.n), index)
    weights = torch.from_numpy(friedel_weights(shape[2]))
    trapezoid = np.full(shells.n, 1.0 / (shells.n - 1))
    trapezoid[[0, -1]] *= 0.5
    return index.to(device), weights.to(device), torch.from_numpy(trapezoid).to(device), shells.n


def _shell_sums(a: torch.Tensor, b: torch.Tensor, index, weights, n: int) -> torch.Tensor:
    product = (a.real * b.real + a.imag * b.imag) * weights.to(a.real.dtype)
    flat = product.reshape(product.shape[0], -1)
    out = torch.zeros(flat.shape[0], n + 1, dtype=flat.dtype, device=flat.device)
    return out.index_add(1, index, flat)[:, :n]


def reference_fsc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The FSC of each pair of a batch on the reference shells.

    Args:
        a, b: real tensors ``(B, 1, D, H, W)`` or ``(B, D, H, W)``.

    Returns:
        ``(B, n_shells)``, signed.
    """
    a = a.reshape(a.shape[0], *a.shape[-3:])
    b = b.reshape(b.shape[0], *b.shape[-3:])
    index, weights, _, n = _shell_tensors(tuple(a.shape[-3:]), str(a.device))
    fa = torch.fft.rfftn(a, dim=(-3, -2, -1))
    fb = torch.fft.rfftn(b, dim=(-3, -2, -1))
    cross = _shell_sums(fa, fb, index, weights, n)
    pa = _shell_sums(fa, fa, index, weights, n)
    pb = _shell_sums(fb, fb, index, weights, n)
    return cross / torch.sqrt(pa * pb + _EPS)


def cref_loss(denoised: torch.Tensor, half1: torch.Tensor, half2: torch.Tensor,
              mask: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """The crefDenoiser loss (see the module docstring).

    Args:
        denoised: the network output ``D(M)``, ``(B, 1, D, H, W)``.
        half1, half2: the half-map patches, same shape.
        mask: optional mask patches, same shape (or broadcastable).
        reduction: ``"mean"`` over the batch, or ``"none"`` for one value per patch.

    Returns:
        A scalar tensor, or ``(B,)`` with ``reduction="none"``.

    Raises:
        ValueError: shapes differ, or the patches are not 5D / 4D.
    """
    if denoised.shape != half1.shape or half1.shape != half2.shape:
        raise ValueError(f"shapes differ: denoised {tuple(denoised.shape)}, half1 "
                         f"{tuple(half1.shape)}, half2 {tuple(half2.shape)}")
    if denoised.dim() not in (4, 5):
        raise ValueError(f"expected (B, 1, D, H, W) patches, got {tuple(denoised.shape)}")
    if mask is not None:
        half1, half2 = half1 * mask, half2 * mask
    average = (half1 + half2) * 0.5
    with torch.no_grad():
        f = reference_fsc(half1, half2).abs()
        target = torch.sqrt(2.0 * f / (1.0 + f))
    fsc_fd = reference_fsc(denoised, average).abs()
    _, _, trapezoid, _ = _shell_tensors(tuple(denoised.shape[-3:]), str(denoised.device))
    per_patch = (target - fsc_fd).abs() @ trapezoid.to(fsc_fd.dtype)
    if reduction == "none":
        return per_patch
    if reduction == "mean":
        return per_patch.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
