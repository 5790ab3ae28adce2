"""Direct Fourier inversion: gridding particles into numerator and weight grids, and the map.

For a set of particles with images ``X_p`` (Fourier space), CTFs ``c_p`` and slice positions
``k_p``, on a grid oversampled ``pad`` times (``L = pad N``, centred, ``rfftn`` half-space):

    numerator(g) = Σ_p K(g − k_p) c_p X_p        weight(g) = Σ_p K(g − k_p) c_p²

with ``K`` the trilinear kernel (:func:`._kernels.insert_tiles`). Points falling in the
``x < 0`` half are added at ``−k`` (as their Friedel mates); the ``x = 0`` and ``x = L/2``
planes, each its own Friedel mate, are symmetrised at the end (``v(g) + conj v(−g)``).

The map (:meth:`FourierReconstructor.reconstruct`):

1. ``E = numerator / max(weight, η w̄)`` on the oversampled grid, ``w̄(|g|)`` the mean
   weight at the voxel's radius and ``η = 0.02`` (only voxels sampled far less than their
   neighbours are damped; without noise this is the plain ratio);
2. ``E`` multiplied by ``φ = sqrt(weight averaged over 5³ voxels)``, which makes its noise
   (power ``σ² / weight``, ``σ²`` the noise power per image Fourier coefficient) white;
   transformed back, cropped to the ``N³`` box around the centre, divided by the gridding
   correction ``Π sinc²(x_i / L)`` (:func:`.specimen.gridding_correction`: the trilinear
   kernel's convolution in Fourier space is that multiplication in real space), transformed
   and divided by ``φ`` again (no ``φ`` without noise);
3. on the ``N`` grid, the Wiener-type regulariser ``a = W / (W + λ)`` per voxel, with
   ``W = pad³ · weight`` at the voxel's frequency (its CTF² summed over particles) and
   ``λ = σ² / (T · S)``, ``S`` the signal's mean power per voxel in the voxel's shell, ``T``
   a fudge (1: Wiener).

A crop is a convolution in Fourier space whose kernel falls off only as ``1/u²``: applied to
a spectrum spanning orders of magnitude it carries power from the strong shells into the
weak ones (signal from the low frequencies into shells a regulariser has emptied; noise
from the high frequencies, or from directions few particles sample, into the rest) and
correlates the FSC of neighbouring shells. Cropping white noise keeps it white; the signal,
confined to the particle, is not cut; the regulariser comes after the crop.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from scipy import ndimage

from cref_bench.maps.volume import Volume
from dataset_builder.simulation.specimen import uncentre


def power_at_radius(radius: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``S`` at radii in ``N``-grid index units: the power of shell ``round(radius)``, the
    first shell's below it and the last one's beyond."""
    shell = np.clip(np.rint(radius).astype(np.int64), 1, power.size) - 1
    return power[shell]


WHITENING_WIDTH = 5
"""Edge (voxels of the oversampled grid) of the box the whitening weight is averaged over."""
STABILISER = 0.02
"""``η``: voxels weighted less than this fraction of their shell's mean are damped."""


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

    def _shell_of(self, z: int) -> np.ndarray:
        """Rounded radius (grid units) of each voxel of plane ``z`` of the oversampled grid."""
        size = self.numerator.shape[0]
        f = np.fft.fftfreq(size, 1.0 / size)
        radius = np.sqrt(f[z] ** 2 + f[:, None] ** 2 + np.arange(size // 2 + 1) ** 2)
        return np.minimum(np.rint(radius), size // 2 + 1).astype(np.intp)

    def _mean_weight(self) -> np.ndarray:
        """``w̄`` at each rounded radius 0 .. L/2 + 1 of the oversampled grid."""
        n_bins = self.numerator.shape[0] // 2 + 2
        sums, counts = np.zeros(n_bins), np.zeros(n_bins)
        for z in range(self.numerator.shape[0]):
            shell = self._shell_of(z).ravel()
            sums += np.bincount(shell, self.weight[z].ravel(), n_bins)
            counts += np.bincount(shell, minlength=n_bins)
        return sums / np.maximum(counts, 1)

    def reconstruct(self, like: Volume, noise_power: float, signal_power: np.ndarray,
                    fudge: float = 1.0) -> Volume:
        """The map (module docstring, steps 1 to 3). The grids are consumed.

        Args:
            like: the map's grid (``N³``, voxel size, origin).
            noise_power: ``σ²``, noise power per image Fourier coefficient (0: no noise,
                no regulariser).
            signal_power: ``S`` per shell of the ``N`` grid (cubic), shell ``r`` (1-based)
                at index ``r - 1`` (see :func:`power_at_radius`).
            fudge: ``T``.

        Returns:
            The reconstruction on ``like``'s grid.
        """
        self._symmetrise_planes()
        size, p, n = self.numerator.shape[0], self.pad, self.n
        weight_n = self.weight[::p, ::p, ::p][:, :, : n // 2 + 1] * np.float32(p**3)
        mean_weight = self._mean_weight()
        whiten = whiten_n = None
        if noise_power > 0:
            # The noise of a voxel has power σ² / weight: whiten by the local mean weight.
            whiten = ndimage.uniform_filter(self.weight, WHITENING_WIDTH,
                                            mode=("wrap", "wrap", "nearest"))
            np.sqrt(np.maximum(whiten, 0.0, out=whiten), out=whiten)   # rounding: no < 0
            whiten_n = whiten[::p, ::p, ::p][:, :, : n // 2 + 1].copy()
        for z in range(size):
            weight = np.maximum(self.weight[z], STABILISER * mean_weight[self._shell_of(z)])
            factor = np.divide(np.float32(1.0), weight, out=np.zeros_like(weight),
                               where=weight > 0)
            if whiten is not None:
                factor *= whiten[z]
            self.numerator[z] *= factor
        self.weight = whiten = None
        big = scipy.fft.irfftn(self.numerator, s=(size,) * 3, workers=-1)
        self.numerator = None
        data = uncentre(big, n, p)
        del big
        spectrum = scipy.fft.rfftn(data, workers=-1)
        k = np.fft.fftfreq(n, 1.0 / n)
        radius = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + np.arange(n // 2 + 1) ** 2)
        factor = np.ones(spectrum.shape, np.float32)
        if whiten_n is not None:
            np.divide(factor, whiten_n, out=factor, where=whiten_n > 0)
            lam = noise_power / (fudge * np.maximum(power_at_radius(radius, signal_power), 1e-30))
            factor *= weight_n / (weight_n + lam)
        spectrum *= factor.astype(np.float32)
        data = scipy.fft.irfftn(spectrum, s=data.shape, workers=-1).astype(np.float32)
        return like.like(data, source=f"reconstruction from {self.particles} particles")


__all__ = ["FourierReconstructor", "power_at_radius"]
