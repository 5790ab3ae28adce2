"""The ``topaz3d`` method: Topaz-3D's pretrained denoisers, run by the installed ``topaz-em``.

Topaz (Bepler et al., Nat. Commun. 2020) ships two 3D U-nets trained with noise2noise on
cryo-ET tomograms, ``unet-3d-10a`` and ``unet-3d-20a``, inside its PyPI wheel ``topaz-em``
(GPL-3). This method calls ``topaz.denoise.Denoise3D``, the code behind ``topaz denoise3d``,
as an installed dependency: nothing of Topaz is copied here. Each map (the average of the
halves and each half, see :class:`cref_bench.methods.protocol.SingleMapMethod`) is denoised as
``topaz denoise3d`` does it: standardised by its mean and standard deviation, then cut into
patches of ``patch_size`` voxels each seen with ``padding`` voxels of context (Topaz's
defaults 96 and 48), or denoised whole with ``patch_size=0``. The map's ``(z, y, x)`` array is
what Topaz sees (its own reader hands it a standard MRC file's sections in that order).

``topaz-em`` declares torch, torchvision and scikit-learn as dependencies, which pulls a second,
CUDA build of torch; the 3D denoiser needs none of them beyond torch itself, but needs h5py and
Pillow to import and, on Python < 3.12, ``pkg_resources`` (setuptools < 81) to load its weights.
Install it on top of the installed torch with the extra and one more command
(:data:`INSTALL_HINT`).

torch and Topaz are imported when the method is built; :meth:`Topaz3D.unavailable` finds what
is missing without importing them, so that listing the methods is quick.

Memory on the CPU is about 1.2 kB per voxel of what the network sees at once, a patch window
(``patch_size + 2·padding`` per side, whatever the map's size) or the whole map: some 8 GiB for
Topaz's default 192³ windows, 2.5 GiB for a 128³ map denoised whole, 20 GiB for 256³ whole.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from contextlib import nullcontext
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version
from typing import TYPE_CHECKING

import numpy as np

from cref_bench.errors import MapError, UnavailableError
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import SingleMapMethod

if TYPE_CHECKING:
    import torch

MODELS = ("unet-3d-10a", "unet-3d-20a")
DEFAULT_PATCH_SIZE = 96
DEFAULT_PADDING = 48
TOPAZ_DISTRIBUTION = "topaz-em"
TOPAZ_TESTED_VERSION = "0.3.20"
INSTALL_HINT = (f'pip install "cref-bench[topaz]" && pip install --no-deps '
                f'"{TOPAZ_DISTRIBUTION}=={TOPAZ_TESTED_VERSION}"')
RECIPE_VERSION = "1"
MIN_SIDE = 32  # Topaz's 3D U-net halves its input five times: each side of what it sees >= 2**5


def topaz_version() -> str | None:
    """The installed ``topaz-em`` version, or ``None`` when it is not installed."""
    try:
        return distribution_version(TOPAZ_DISTRIBUTION)
    except PackageNotFoundError:
        return None


def method_version() -> str:
    """The method's version: the recipe's, then the installed topaz-em's (``"1+topaz-em-0.3.20"``),
    or the recipe's alone when topaz-em is not installed."""
    installed = topaz_version()
    return RECIPE_VERSION if installed is None else f"{RECIPE_VERSION}+topaz-em-{installed}"


def missing_requirement() -> str | None:
    """Why topaz-em cannot denoise in 3D here, found without importing it (nor torch): the
    module ``topaz``, a package its 3D denoiser imports (h5py, Pillow) or, on Python < 3.12,
    ``pkg_resources`` that loads its weights is missing.

    Returns:
        The reason and how to install what is missing, or ``None`` when all is there.
    """
    for module, what in (("topaz", "topaz-em"), ("h5py", "h5py"), ("PIL", "Pillow")):
        if importlib.util.find_spec(module) is None:
            return (f"the topaz3d method needs topaz-em and what it imports; {what} is not "
                    f"installed (no module {module!r}); install them with: {INSTALL_HINT}")
    if sys.version_info < (3, 12) and importlib.util.find_spec("pkg_resources") is None:
        return ("topaz-em loads its pretrained weights with pkg_resources on Python < 3.12, "
                "which setuptools >= 81 no longer ships; install the extra, which pins "
                f"setuptools < 81: {INSTALL_HINT}")
    return None


def import_topaz_denoise():
    """Import ``topaz.denoise`` (Topaz's denoising module).

    Returns:
        The module.

    Raises:
        UnavailableError: topaz-em or a package it needs is missing (pkg_resources too, on
            Python < 3.12); the message says how to install them.
    """
    try:
        module = importlib.import_module("topaz.denoise")
    except ImportError as err:
        raise UnavailableError(f"the topaz3d method needs topaz-em, which cannot be imported "
                               f"({err}); install it with: {INSTALL_HINT}") from err
    missing = missing_requirement()
    if missing is not None:
        raise UnavailableError(missing)
    return module


def resolve_device(device: str) -> torch.device:
    """The torch device for ``device``: ``"auto"`` is the first GPU when torch sees one, else
    the CPU; ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` are taken as given.

    Raises:
        ValueError: the name is not a device, or names a GPU that torch does not see.
    """
    import torch

    wrong = f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(wrong) from err
    if resolved.type == "cuda":
        index = 0 if resolved.index is None else resolved.index
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} asked for, but torch sees "
                             f"{torch.cuda.device_count()} GPU(s)")
        return torch.device("cuda", index)
    if resolved.type != "cpu":
        raise ValueError(wrong)
    return resolved


class Topaz3D(SingleMapMethod):
    """Topaz-3D's pretrained denoiser as a single-map method.

    Args:
        model: ``"unet-3d-10a"`` (Topaz's default) or ``"unet-3d-20a"``.
        patch_size: side of the patches the map is denoised in (Topaz's default 96); 0
            denoises the map whole.
        padding: voxels of context on each side of a patch (Topaz's default 48).
        device: ``"auto"`` (the GPU when torch sees one, else the CPU), ``"cpu"``, ``"cuda"``
            or ``"cuda:N"``; the device used is recorded in :meth:`params`.

    Raises:
        UnavailableError: topaz-em is not installed (the message says how to install it).
        ValueError: an unknown model or device, a negative patch size or padding, or patches
            whose window (``patch_size + 2·padding``) is under 32 voxels.
    """

    name = "topaz3d"
    version = method_version()

    def __init__(self, model: str = MODELS[0], patch_size: int = DEFAULT_PATCH_SIZE,
                 padding: int = DEFAULT_PADDING, device: str = "auto"):
        if model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
        for label, value in (("patch_size", patch_size), ("padding", padding)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{label} must be an integer >= 0, got {value!r}")
        if patch_size and patch_size + 2 * padding < MIN_SIDE:
            raise ValueError(f"patch_size + 2·padding must be at least {MIN_SIDE} (the network's "
                             f"input side), got {patch_size} + 2·{padding}")
        topaz_denoise = import_topaz_denoise()
        import torch

        self.model, self.patch_size, self.padding = model, int(patch_size), int(padding)
        self.device = resolve_device(device)
        on_gpu = self.device.type == "cuda"
        with torch.cuda.device(self.device) if on_gpu else nullcontext(), \
                warnings.catch_warnings():  # from Topaz's weight loader on Python < 3.12
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            warnings.filterwarnings("ignore", message="Use of .. or absolute path in a resource")
            self._denoiser = topaz_denoise.Denoise3D(model, use_cuda=on_gpu, dims=3)

    @classmethod
    def unavailable(cls) -> str | None:
        """Why the method cannot be built here and how to fix that, or ``None`` when it can
        (read by ``cref-bench methods``; nothing heavy is imported)."""
        return missing_requirement()

    def params(self) -> dict:
        """The parameters recorded with every result: model, patch size, padding, device."""
        return {"model": self.model, "patch_size": self.patch_size, "padding": self.padding,
                "device": str(self.device)}

    def denoise_map(self, volume: Volume, mask: Volume | None = None) -> Volume:
        """Denoise one map as ``topaz denoise3d`` does; ``mask`` is not used.

        Args:
            volume: the map.
            mask: ignored (Topaz works on the whole box).

        Returns:
            The denoised map on the same grid.

        Raises:
            MapError: the map has non-finite voxels, is constant, or is denoised whole with a
                side under 32 voxels; or Topaz's output has non-finite voxels (a patch window
                of constant value, as in a map masked to exactly zero).
        """
        volume.check_finite()
        if not self.patch_size and min(volume.shape) < MIN_SIDE:
            raise MapError(volume.source, f"topaz3d denoises a map whole only when each side is at "
                                          f"least {MIN_SIDE} voxels, got {volume.shape}; give a "
                                          "patch_size")
        if float(volume.data.min()) == float(volume.data.max()):
            raise MapError(volume.source, "topaz3d cannot denoise a constant map "
                                          "(Topaz divides by its standard deviation)")
        with warnings.catch_warnings():  # Topaz wraps the read-only input without writing it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            data = self._denoiser.denoise(volume.data, patch_size=self.patch_size,
                                          padding=self.padding, batch_size=1, verbose=False)
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise MapError(volume.source, f"topaz3d produced {bad} non-finite voxel(s): Topaz "
                           "divides each patch window by its standard deviation, so a window of "
                           "constant value gives NaN; try a larger patch_size or patch_size=0")
        return volume.like(data, source=f"topaz3d({volume.source})")

