"""Training losses for the crefDenoiser network: the published C_ref loss and two ablations.

Every loss takes the model and a batch of ``(half1, half2, mask)`` patches as
:class:`cref_bench.corpus.reader.PatchDataset` serves them (each half already standardised and
multiplied by the mask), runs the model and returns the per-patch loss ``(B,)``:

* ``cref`` (published): the network sees the masked average ``M = (M1 + M2) / 2`` and the
  loss is :func:`baselines.crefdenoiser.cref_loss.cref_loss` of ``D(M)`` against the halves (the
  trapezoid mean over the 48 reference shells of ``|C_ref - |FSC(D(M), M)||``). The halves
  are passed without the mask because they carry it already (masking twice would square it).
* ``n2n-l2`` (noise-to-noise, L2): the network sees ``M1``; the loss is the mean squared
  difference between ``D(M1)`` and ``M2`` over the patch.
* ``n2n-fsc`` (noise-to-noise, FSC): the network sees ``M1``; the loss is
  ``1 - mean_r FSC(D(M1), M2)[r]`` over the same reference shells (signed FSC, plain mean).

All three are computed in float32 even when the forward pass runs under ``torch.autocast``
(the FFTs need it: half-precision FFTs are limited to powers of two on GPUs).
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.crefdenoiser.cref_loss import cref_loss, reference_fsc

LOSSES = ("cref", "n2n-l2", "n2n-fsc")
"""The loss names :func:`patch_losses` accepts (``cref`` is the published one)."""


def network_input(loss: str, half1: torch.Tensor, half2: torch.Tensor) -> torch.Tensor:
    """What the network sees during training with ``loss``.

    Args:
        loss: one of :data:`LOSSES`.
        half1, half2: masked, standardised half-map patches ``(B, 1, P, P, P)``.

    Returns:
        The masked average ``(half1 + half2) / 2`` for ``cref``; ``half1`` otherwise.

    Raises:
        ValueError: an unknown loss name.
    """
    check_loss(loss)
    return (half1 + half2) * 0.5 if loss == "cref" else half1


def check_loss(loss: str) -> None:
    """Refuse an unknown loss name.

    Args:
        loss: the name to check.

    Raises:
        ValueError: ``loss`` is not one of :data:`LOSSES`.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")


def patch_losses(loss: str, model: nn.Module, half1: torch.Tensor, half2: torch.Tensor,
                 autocast: torch.autocast | None = None) -> torch.Tensor:
    """Run the model on a batch and return the loss of each patch.

    Args:
        loss: one of :data:`LOSSES`.
        model: the network (``(B, 1, P, P, P)`` in and out).
        half1, half2: masked, standardised half-map patches ``(B, 1, P, P, P)``.
        autocast: a ``torch.autocast`` context for the forward pass, or None (full precision).

    Returns:
        ``(B,)`` float32 per-patch losses (differentiable).

    Raises:
        ValueError: an unknown loss name, or shapes the network or loss refuse.
    """
    x = network_input(loss, half1, half2)
    if autocast is None:
        denoised = model(x)
    else:
        with autocast:
            denoised = model(x)
    denoised = denoised.float()
    if loss == "cref":
        return cref_loss(denoised, half1, half2, reduction="none")
    if loss == "n2n-l2":
        return (denoised - half2).square().flatten(1).mean(dim=1)
    return 1.0 - reference_fsc(denoised, half2).mean(dim=1)
