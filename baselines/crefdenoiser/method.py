"""The ``crefdenoiser`` method: the published crefDenoiser network applied as published.

Each map (the average of the halves, and each half) is standardised over the box, padded at
the end of each axis with zeros to a multiple of 32, run through the network (in tiles where
the memory budget asks for it), cropped back (``[:n]``), and rescaled to its own mean and
standard deviation (see :mod:`baselines.crefdenoiser.inference`). The mask is not used: the
published recipe works on the whole box.

Weights are not shipped. Get the published checkpoint (``saved-model-epoch-192.index`` and
``.data-00000-of-00001`` from the crefDenoiser repository) and either point ``weights`` at
its ``.index`` or convert it once with ``cref-bench import-weights``; weights from the
cref-bench trainer (``.pt``) work the same way. Without ``weights`` the environment variable
``CREFDENOISER_WEIGHTS`` is used.

torch is imported when the method is built, so that listing the methods is quick.
"""

from __future__ import annotations

import os

from baselines.crefdenoiser.settings import (
    DEFAULT_MARGIN,
    DEFAULT_MEMORY_BUDGET,
    PRECISIONS,
    check_padding,
)
from cref_bench.errors import MapError
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import SingleMapMethod

WEIGHTS_ENV = "CREFDENOISER_WEIGHTS"
RECIPE_VERSION = "2"
"""Version of the recipe: 2 pads at the end of each axis with zeros, as published (1 split the
padding over both ends)."""


class CrefDenoiser(SingleMapMethod):
    """The crefDenoiser network as a single-map method.

    Args:
        weights: our ``.pt`` weights file or the published TensorFlow ``.index``; default
            the path in ``$CREFDENOISER_WEIGHTS``.
        padding: ``"end"`` (published: zeros after the map) or ``"symmetric"``.
        tile: core side of the tiles (a multiple of 32); ``None`` chooses it from
            ``memory_budget`` (a map that fits runs in one piece).
        margin: context voxels on each side of a tile (a multiple of 32); the default, 128,
            makes tiled inference equal whole-map inference.
        device: the torch device to run on.
        memory_budget: bytes allowed for one tile's forward pass when ``tile`` is ``None``.
        precision: ``"float32"`` (the reference) or ``"bfloat16"`` (faster on CPUs with
            bfloat16 instructions; see docs/methods.md for how far it lies from float32).
        progress: show a progress bar over the tiles.

    Raises:
        ValueError: no weights given; ``tile`` or ``margin`` not a multiple of 32; an unknown
            padding or precision.
        CheckpointError: the weights file is missing or unusable.
    """

    name = "crefdenoiser"
    version = RECIPE_VERSION
    """The recipe's version; a built method's is ``RECIPE_VERSION+<weights SHA-256>``."""

    def __init__(self, weights: str | os.PathLike | None = None, padding: str = "end",
                 tile: int | None = None, margin: int = DEFAULT_MARGIN, device: str = "cpu",
                 memory_budget: int = DEFAULT_MEMORY_BUDGET, precision: str = "float32",
                 progress: bool = True):
        weights = weights if weights is not None else os.environ.get(WEIGHTS_ENV)
        if not weights:
            raise ValueError(
                "the crefdenoiser method needs weights: download the published checkpoint "
                "(saved-model-epoch-192.index and .data-00000-of-00001, folder models/ of the "
                "crefDenoiser repository), convert it with `cref-bench import-weights "
                "saved-model-epoch-192.index --out crefdenoiser.pt`, and pass weights=PATH "
                f"(or set {WEIGHTS_ENV}=PATH)")
        from baselines.crefdenoiser.checkpoint import load_weights, weights_digest
        from baselines.crefdenoiser.inference import check_tiling

        check_padding(padding)
        check_tiling(tile, margin)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; "
                             f"got {precision!r}")
        self.weights = os.fspath(weights)
        self.weights_sha256 = weights_digest(self.weights)
        self.model = load_weights(self.weights)
        self.padding, self.tile, self.margin, self.device = padding, tile, margin, device
        self.memory_budget, self.precision, self.progress = memory_budget, precision, progress
        self.version = f"{RECIPE_VERSION}+{self.weights_sha256}"

    def params(self) -> dict:
        """The parameters recorded with every result (weights path and digest, recipe,
        tiling, precision)."""
        return {"weights": self.weights, "weights_sha256": self.weights_sha256,
                "padding": self.padding, "tile": self.tile, "margin": self.margin,
                "device": self.device, "memory_budget": self.memory_budget,
                "precision": self.precision}

    def denoise_map(self, volume: Volume, mask: Volume | None = None) -> Volume:
        """Denoise one map with the published recipe; ``mask`` is not used.

        Args:
            volume: the map.
            mask: ignored (the recipe works on the whole box).

        Returns:
            The denoised map on the same grid, with the input's mean and standard deviation.

        Raises:
            MapError: the map has non-finite voxels or is constant.
        """
        import torch

        from baselines.crefdenoiser.inference import denoise_array

        volume.check_finite()
        try:
            data = denoise_array(self.model, volume.data, padding=self.padding, tile=self.tile,
                                 margin=self.margin, memory_budget=self.memory_budget,
                                 device=self.device, dtype=getattr(torch, self.precision),
                                 progress=self.progress)
        except ValueError as err:
            raise MapError(volume.source, f"crefdenoiser cannot denoise it: {err}") from None
        return volume.like(data, source=f"crefdenoiser({volume.source})")
