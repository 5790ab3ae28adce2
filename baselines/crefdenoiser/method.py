"""The ``crefdenoiser`` method: the published crefDenoiser network applied as published.

Each map (the average of the halves, and each half) is standardised over the box, padded
symmetrically to a multiple of 32, run through the network (in tiles where the memory
budget asks for it), cropped, and rescaled to its own mean and standard deviation (see
:mod:`baselines.crefdenoiser.inference`). The mask is not used: the published recipe works
on the whole box.

Weights are not shipped. Get the published checkpoint (``saved-model-epoch-192.index`` and
``.data-00000-of-00001`` from the crefDenoiser repository) and either point ``weights`` at
its ``.index`` or convert it once with ``cref-bench import-weights``; weights from the
cref-bench trainer (``.pt``) work the same way. Without ``weights`` the environment variable
``CREFDENOISER_WEIGHTS`` is used.
"""

from __future__ import annotations

import os

from baselines.crefdenoiser.checkpoint import load_weights, weights_digest
from baselines.crefdenoiser.inference import (DEFAULT_MARGIN, DEFAULT_MEMORY_BUDGET,
                                              denoise_array)
from baselines.crefdenoiser.network import SIZE_MULTIPLE
from cref_bench.errors import MapError
from cref_bench.methods import SingleMapMethod
from cref_bench.volume import Volume

WEIGHTS_ENV = "CREFDENOISER_WEIGHTS"
RECIPE_VERSION = "1"


class CrefDenoiser(SingleMapMethod):
    """The crefDenoiser network as a single-map method.

    Args:
        weights: our ``.pt`` weights file or the published TensorFlow ``.index``; default
            the path in ``$CREFDENOISER_WEIGHTS``.
        tile: core side of the tiles (a multiple of 32); ``None`` chooses it from
            ``memory_budget`` (a map that fits runs in one piece).
        overlap: context voxels on each side of a tile (a multiple of 32); 160 or more makes
            tiled inference equal whole-map inference.
        device: the torch device to run on.
        memory_budget: bytes allowed for one tile's forward pass when ``tile`` is ``None``.
        progress: show a progress bar over the tiles.

    Raises:
        ValueError: no weights given; ``tile`` or ``overlap`` not a multiple of 32.
        CheckpointError: the weights file is missing or unusable.
    """

    name = "crefdenoiser"

    def __init__(self, weights: str | os.PathLike | None = None, tile: int | None = None,
                 overlap: int = DEFAULT_MARGIN, device: str = "cpu",
                 memory_budget: int = DEFAULT_MEMORY_BUDGET, progress: bool = True):
        weights = weights if weights is not None else os.environ.get(WEIGHTS_ENV)
        if not weights:
            raise ValueError(
                "the crefdenoiser method needs weights: download the published checkpoint "
                "(saved-model-epoch-192.index and .data-00000-of-00001, folder models/ of the "
                "crefDenoiser repository), convert it with `cref-bench import-weights "
                "saved-model-epoch-192.index --out crefdenoiser.pt`, and pass weights=PATH "
                f"(or set {WEIGHTS_ENV}=PATH)")
        for label, value in (("tile", tile), ("overlap", overlap)):
            if value is not None and (value < 0 or value % SIZE_MULTIPLE or (label == "tile" and not value)):
                raise ValueError(f"{label} must be a positive multiple of {SIZE_MULTIPLE}, got {value}")
        self.weights = os.fspath(weights)
        self.weights_sha256 = weights_digest(self.weights)
        self.model = load_weights(self.weights).to(device)
        self.tile, self.overlap, self.device = tile, overlap, device
        self.memory_budget, self.progress = memory_budget, progress
        self.version = f"{RECIPE_VERSION}+{self.weights_sha256}"

    def params(self) -> dict:
        """The parameters recorded with every result (weights path and digest, tiling)."""
        return {"weights": self.weights, "weights_sha256": self.weights_sha256,
                "tile": self.tile, "overlap": self.overlap, "device": self.device,
                "memory_budget": self.memory_budget}

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
        volume.check_finite()
        try:
            data = denoise_array(self.model, volume.data, tile=self.tile, margin=self.overlap,
                                 memory_budget=self.memory_budget, device=self.device,
                                 progress=self.progress)
        except ValueError as err:
            raise MapError(volume.source, f"crefdenoiser cannot denoise it: {err}") from None
        return volume.like(data, source=f"crefdenoiser({volume.source})")
