"""Direct Fourier inversion: gridding particles into numerator and weight grids, and the map.

For a set of particles with images ``X_p`` (Fourier space), CTFs ``c_p`` and slice positions
``k_p``, on a grid oversampled ``pad`` times (``L = pad N``, centred, ``rfftn`` half-space):

    numerator(g) = Σ_p K(g − k_p) c_p X_p        weight(g) = Σ_p K(g − k_p) c_p²

with ``K`` the trilinear kernel (:func:`._kernels.simulate_insert`). Points falling in the ``x < 0``
half are added conjugated at ``−k``; the ``x = 0`` and ``x = L/2`` planes, each its own Friedel
mate, are symmetrised at the end (``v(g) + conj v(−g)``).

The estimate is ``numerator / (weight + λ)`` with the Wiener-type regulariser
``λ(k) = σ² / (pad³ · T · S(|k|))``: ``σ²`` the noise power per image Fourier coefficient,
``S`` the signal's mean power per voxel of the ``N`` grid in the shell of ``k``, ``T`` a
fudge (1: the Wiener filter for the per-voxel SSNR; ``pad³`` because the oversampled grid
spreads each voxel's weight over ``pad³`` points). It is then transformed back, cropped to
the ``N³`` box around the centre and divided by the gridding correction ``Π sinc²(x_i / L)``
(:func:`.specimen.gridding_correction`): the trilinear kernel's convolution in Fourier space
is a multiplication by that function in real space.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from cref_bench.volume import Volume
from dataset_builder.simulation.specimen import uncentre


def power_at_radius(radius: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``S`` at radii in ``N``-grid index units: the power of shell ``round(radius)``, the
    first shell's below it and the last one's beyond."""
    shell = np.clip(np.rint(radius).astype(np.int64), 1, power.size) - 1
    return power[shell]


class FourierReconstructor:
    """Numerator and weight grids of one reconstruction, filled batch by batch.

    Args:
        n: the box edge ``N`` (even) of the map.
        pad: oversampling factor of the grids.
    """

    def __init__(self, n: int, pad: int = 2):
        if n % 2:
            raise ValueError(f"the box edge must be even, got {n}")
        self.n, self.pad = int(n), int(pad)
        size = self.pad * self.n
        self.numerator = np.zeros((size, size, size // 2 + 1), np.complex64)
        self.weight = np.zeros(self.numerator.shape, np.float32)
        self.particles = 0

    def _symmetrise_planes(self) -> None:
        size = self.numerator.shape[0]
        mirror = (-np.arange(size)) % size
        for x in (0, self.numerator.shape[2] - 1):
            for grid, conj in ((self.numerator, np.conj), (self.weight, lambda a: a)):
                plane = grid[:, :, x]
                grid[:, :, x] = plane + conj(plane[np.ix_(mirror, mirror)])

    def reconstruct(self, like: Volume, noise_power: float, signal_power: np.ndarray,
                    fudge: float = 1.0) -> Volume:
        """The map: regularised division, inverse transform, crop, gridding correction.

        The grids are consumed (the numerator holds the estimate afterwards).

        Args:
            like: the map's grid (``N³``, voxel size, origin).
            noise_power: ``σ²``, noise power per image Fourier coefficient (0: no noise,
                plain division where the weight is positive).
            signal_power: ``S`` per shell of the ``N`` grid (cubic), shell ``r`` (1-based)
                at index ``r - 1`` (see :func:`power_at_radius`).
            fudge: ``T``.

        Returns:
            The reconstruction on ``like``'s grid.
        """
        self._symmetrise_planes()
        size = self.numerator.shape[0]
        f = np.fft.fftfreq(size, 1.0 / size).astype(np.float32) / self.pad
        fx = np.arange(size // 2 + 1, dtype=np.float32) / self.pad
        for z in range(size):   # plane by plane: no full-size temporaries
            radius = np.sqrt(f[z] ** 2 + f[:, None] ** 2 + fx[None, :] ** 2)
            weight = self.weight[z]
            if noise_power > 0:
                s = np.maximum(power_at_radius(radius, signal_power), 1e-30)
                weight = weight + np.float32(noise_power) / (self.pad**3 * fudge * s)
            plane = self.numerator[z]
            np.divide(plane, weight, out=plane, where=weight > 0)
            plane[~(weight > 0)] = 0
        self.weight = None
        big = scipy.fft.irfftn(self.numerator, s=(size,) * 3, workers=-1)
        self.numerator = None
        data = uncentre(big, self.n, self.pad)
        return like.like(data, source=f"reconstruction from {self.particles} particles")


__all__ = ["FourierReconstructor", "power_at_radius"]
