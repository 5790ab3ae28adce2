"""The ``lafter`` method: LAFTER v1.1, reimplemented (:mod:`baselines.lafter.algorithm`).

Importing this module is cheap: the algorithm (scipy's FFTs, numba's loops) is imported when
a method is built, so that ``cref-bench methods`` lists it quickly.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from cref_bench.errors import BadMask
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import Denoised, Method

if TYPE_CHECKING:
    from baselines.lafter.algorithm import LafterReport

log = logging.getLogger("baselines.lafter")


class Lafter(Method):
    """LAFTER v1.1, reimplemented: a pair-based denoiser (one output map, no denoised halves).

    Args:
        fsc_cutoff: pass 1 stops in the first band whose half-map FSC is below this
            (v1.1's default 0.143); must lie in [0.1, 1].
        sharpen: multiply the output's spectrum by ``2^(8 s²)`` (s in cycles per voxel).
        upsample: compute v1.1's default output, upsampled ×2 by Fourier padding (voxel size
            halved; maps 8 times the size, held briefly), and Fourier-crop it back onto the
            input grid for scoring (:func:`baselines.resampling.fourier_resample`); off (the
            default), the output is made on the input grid, as v1.1's ``--downsample``. The
            two agree on the input grid to float rounding.
        particle_diameter: Å; when no mask is given, the mask is v1.1's soft sphere of this
            diameter (:func:`~baselines.lafter.algorithm.diameter_mask`); with neither, the
            mask is 1 everywhere.
        mitigate_overfitting: v1.1's over-fitting mitigation switch.

    Raises:
        ValueError: a parameter of the wrong type or out of range.

    Attributes:
        report: the :class:`~baselines.lafter.algorithm.LafterReport` of the last
            :meth:`denoise` call (``None`` before).
    """

    name = "lafter"
    version = "1"
    needs_gpu = False

    def __init__(self, fsc_cutoff: float = 0.143, sharpen: bool = False, upsample: bool = False,
                 particle_diameter: float | None = None, mitigate_overfitting: bool = False):
        from baselines.lafter.algorithm import FSC_CUTOFF_RANGE, check_diameter

        low, high = FSC_CUTOFF_RANGE
        if isinstance(fsc_cutoff, bool) or not isinstance(fsc_cutoff, int | float) \
                or not low <= fsc_cutoff <= high:
            raise ValueError(f"fsc_cutoff must be a number in [{low}, {high}], got {fsc_cutoff!r}")
        for label, value in (("sharpen", sharpen), ("upsample", upsample),
                             ("mitigate_overfitting", mitigate_overfitting)):
            if not isinstance(value, bool):
                raise ValueError(f"{label} must be true or false, got {value!r}")
        if particle_diameter is not None:
            check_diameter(particle_diameter)
        self.fsc_cutoff = float(fsc_cutoff)
        self.sharpen, self.upsample = sharpen, upsample
        self.particle_diameter = None if particle_diameter is None else float(particle_diameter)
        self.mitigate_overfitting = mitigate_overfitting
        self.report: LafterReport | None = None

    def params(self) -> dict:
        """The parameters recorded with every result (and part of the runner's resume key)."""
        return {"fsc_cutoff": self.fsc_cutoff, "sharpen": self.sharpen, "upsample": self.upsample,
                "particle_diameter": self.particle_diameter,
                "mitigate_overfitting": self.mitigate_overfitting}

    def _mask(self, half1: Volume, mask: Volume | None) -> tuple[np.ndarray, str]:
        from baselines.lafter.algorithm import diameter_mask

        if mask is not None:
            half1.check_same_grid(mask)
            mask.check_finite()
            low, high = float(mask.data.min()), float(mask.data.max())
            if low < 0.0 or high > 1.0:
                raise BadMask(mask.source,
                              f"mask values must lie in [0, 1], found {low:g} .. {high:g}")
            return mask.data, mask.source
        if self.particle_diameter is not None:
            return (diameter_mask(half1.shape, half1.voxel_size, self.particle_diameter),
                    f"soft sphere of diameter {self.particle_diameter:g} Å (no mask given)")
        return np.ones(half1.shape, dtype=np.float32), "none (no mask nor particle diameter given)"

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None = None) -> Denoised:
        """Filter the pair into one map on the input grid.

        Args:
            half1, half2: the half-maps (one grid; any box shape).
            mask: optional mask in [0, 1] on the same grid; without it, ``particle_diameter``.

        Returns:
            A :class:`Denoised` with the full map only and a note with the run's self-check.

        Raises:
            GeometryMismatch: the halves or the mask are not on one grid.
            MapError: non-finite voxels.
            BadMask: a mask outside [0, 1], or no mask voxel >= 0.99.
        """
        from baselines.lafter.algorithm import CORE_LEVEL, inverse, lafter
        from baselines.resampling import fourier_resample

        half1.check_same_grid(half2)
        half1.check_finite()
        half2.check_finite()
        mask_data, mask_words = self._mask(half1, mask)
        if not np.any(mask_data >= CORE_LEVEL):
            raise BadMask(mask.source if mask is not None else half1.source,
                          f"the mask has no voxel >= {CORE_LEVEL} (LAFTER's core)")
        voxel = max(half1.voxel_size)
        log.info("LAFTER on %s and %s, box %s, mask: %s", half1.source, half2.source,
                 "x".join(map(str, half1.shape)), mask_words)
        spectrum, report = lafter(half1.data, half2.data, mask_data, fsc_cutoff=self.fsc_cutoff,
                                  sharpen=self.sharpen, mitigate=self.mitigate_overfitting,
                                  voxel_size=voxel)
        self.report = report
        shape = half1.shape
        words = ["LAFTER filters the half-map pair jointly into one map and makes no denoised "
                 f"half-maps; {report.summary()}; mask: {mask_words}"]
        data = inverse(spectrum, shape)
        del spectrum
        if self.upsample:
            big_shape = tuple(2 * n for n in shape)
            data = fourier_resample(fourier_resample(data, big_shape), shape)
            words.append(f"computed upsampled ×2 ({'x'.join(map(str, big_shape))} voxels of "
                         f"{voxel / 2:g} Å) as LAFTER v1.1 writes it, then Fourier-cropped back "
                         "onto the input grid for scoring")
        words.append("output scale arbitrary as in LAFTER v1.1")
        data = data.astype(np.float32, copy=False)
        full = half1.like(data, source=f"lafter({half1.source}, {half2.source})")
        return Denoised(full=full, note="; ".join(words))


__all__ = ["Lafter"]
