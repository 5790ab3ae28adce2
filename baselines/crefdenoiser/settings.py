"""Settings of crefDenoiser inference that describing the method needs, without torch.

The defaults of :class:`baselines.crefdenoiser.method.CrefDenoiser` and the choices it checks
live here so that ``cref-bench methods`` can list the method without importing torch;
:mod:`baselines.crefdenoiser.inference` uses the same values.
"""

from __future__ import annotations

DEFAULT_MARGIN = 128
"""Context voxels on each side of a tile: the network's receptive radius for cores aligned on
its pooling grid (:data:`baselines.crefdenoiser.network.ALIGNED_RECEPTIVE_RADIUS`), so that
tiled inference equals whole-map inference."""

DEFAULT_MEMORY_BUDGET = 6 * 1024 ** 3
"""Bytes allowed for one tile's forward pass when the tile side is chosen."""

PADDINGS = ("end", "symmetric")
"""Ways to pad a map to a multiple of 32: zeros at each axis's end (published), or split over
both ends mirroring the map (numpy ``'symmetric'``)."""

PRECISIONS = ("float32", "bfloat16")
"""The computation's types, by their torch names: float32 (the reference) or bfloat16."""


def check_padding(padding: str) -> None:
    """Refuse an unknown way of padding.

    Args:
        padding: the name.

    Raises:
        ValueError: ``padding`` is not one of :data:`PADDINGS`.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}; got {padding!r}")


__all__ = ["DEFAULT_MARGIN", "DEFAULT_MEMORY_BUDGET", "PADDINGS", "PRECISIONS", "check_padding"]
