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

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import ndimage

from cref_bench.volume import Volume
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
        self.symmetrised = False

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

    def _map_shell_of(self, z: int) -> np.ndarray:
        """The map's shell (``round(radius / pad)``, at most ``N/2``) of each voxel of plane
        ``z`` of the oversampled grid."""
        size = self.numerator.shape[0]
        f = np.fft.fftfreq(size, 1.0 / size)
        radius = np.sqrt(f[z] ** 2 + f[:, None] ** 2 + np.arange(size // 2 + 1) ** 2)
        return np.minimum(np.rint(radius / self.pad), self.n // 2).astype(np.intp)

    def shell_mean_weight(self) -> np.ndarray:
        """The mean oversampled weight in each of the map's shells ``0 .. N/2``
        (:meth:`_map_shell_of`; both halves of the transform counted)."""
        bins = self.n // 2 + 1
        sums, counts = np.zeros(bins), np.zeros(bins)
        x = np.arange(self.numerator.shape[2])
        twice = np.where((x == 0) | (x == x[-1]), 1.0, 2.0)
        for z in range(self.numerator.shape[0]):
            shell = self._map_shell_of(z).ravel()
            w = np.broadcast_to(twice, shell.shape[:0] + self.weight[z].shape).ravel()
            sums += np.bincount(shell, w * self.weight[z].ravel(), bins)
            counts += np.bincount(shell, w, bins)
        return sums / np.maximum(counts, 1e-30)

    def spectrum(self, noise_power: float, lam: np.ndarray | None = None) -> np.ndarray:
        """The map's transform (module docstring, steps 1 to 3); the grids are kept.

        Args:
            noise_power: ``σ²`` per image Fourier coefficient (0: no whitening).
            lam: ``λ`` per map shell ``0 .. N/2`` in units of the oversampled weight (added
                to the weight of every voxel of the shell, :meth:`_map_shell_of`), or None
                (no regulariser).

        Returns:
            complex64 ``rfftn`` of the ``N³`` map, zero beyond Nyquist.
        """
        if not self.symmetrised:
            self._symmetrise_planes()
            self.symmetrised = True
        size, p, n = self.numerator.shape[0], self.pad, self.n
        mean_weight = self._mean_weight()
        whiten = whiten_n = None
        if noise_power > 0:
            # The noise of a voxel has power σ² / weight: whiten by the local mean weight.
            whiten = ndimage.uniform_filter(self.weight, WHITENING_WIDTH,
                                            mode=("wrap", "wrap", "nearest"))
            np.sqrt(np.maximum(whiten, 0.0, out=whiten), out=whiten)   # rounding: no < 0
            whiten_n = whiten[::p, ::p, ::p][:, :, : n // 2 + 1].copy()
        estimate = np.empty_like(self.numerator)
        for z in range(size):
            weight = self.weight[z]
            if lam is not None:
                weight = weight + lam[self._map_shell_of(z)].astype(np.float32)
            weight = np.maximum(weight, STABILISER * mean_weight[self._shell_of(z)])
            factor = np.divide(np.float32(1.0), weight, out=np.zeros_like(weight),
                               where=weight > 0)
            if whiten is not None:
                factor *= whiten[z]
            np.multiply(self.numerator[z], factor, out=estimate[z])
        whiten = None
        big = scipy.fft.irfftn(estimate, s=(size,) * 3, workers=-1)
        del estimate
        data = uncentre(big, n, p)
        del big
        spectrum = scipy.fft.rfftn(data, workers=-1).astype(np.complex64, copy=False)
        if whiten_n is not None:
            np.divide(spectrum, whiten_n, out=spectrum, where=whiten_n > 0)
        spectrum[shell_radius(n) > n / 2] = 0    # band-limited at Nyquist, as the images are
        return spectrum

    def unregularised(self, like: Volume, noise_power: float) -> Unregularised:
        """The map without regulariser, and the grids to regularise it with.

        Args:
            like: the map's grid (``N³``, voxel size, origin).
            noise_power: ``σ²``, noise power per image Fourier coefficient (0: no noise; no
                whitening).

        Returns:
            The :class:`Unregularised` map.
        """
        return Unregularised(self.spectrum(noise_power), self, like, self.particles,
                             float(noise_power))


def shell_radius(n: int) -> np.ndarray:
    """``|k|`` (index units) of every voxel of the ``rfftn`` half-space of an ``N³`` box."""
    k = np.fft.fftfreq(n, 1.0 / n)
    return np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2
                   + np.arange(n // 2 + 1)[None, None, :] ** 2)


def rounded_shells(n: int) -> np.ndarray:
    """The shell of every half-space voxel: ``round(|k|)``, those beyond Nyquist in shell
    ``N/2`` (``0 .. N/2``, int64)."""
    return np.minimum(np.rint(shell_radius(n)), n // 2).astype(np.int64)


def _half_space_weights(n: int) -> np.ndarray:
    """How often each half-space voxel occurs in the full transform (1 on the ``x = 0`` and
    ``x = N/2`` planes, 2 elsewhere), broadcastable."""
    return np.where((np.arange(n // 2 + 1) == 0) | (np.arange(n // 2 + 1) == n // 2), 1.0, 2.0)


def shell_fsc(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """FSC of two ``rfftn`` half-space transforms of an ``N³`` box per rounded shell
    ``0 .. N/2`` (:func:`rounded_shells`; full-space sums)."""
    n = first.shape[0]
    shells = rounded_shells(n).ravel()
    w = np.broadcast_to(_half_space_weights(n), first.shape).ravel()
    bins = n // 2 + 1
    cross = np.bincount(shells, w * np.real(first * np.conj(second)).ravel(), bins)
    p1 = np.bincount(shells, w * (np.abs(first) ** 2).ravel(), bins)
    p2 = np.bincount(shells, w * (np.abs(second) ** 2).ravel(), bins)
    denominator = np.sqrt(p1 * p2)
    return np.divide(cross, denominator, out=np.zeros(bins), where=denominator > 0)


SOLVENT_EDGE = 3.0
"""Width (voxels) of the raised-cosine edge outside the reconstruction sphere."""


def solvent_weight(n: int, edge: float = SOLVENT_EDGE) -> np.ndarray:
    """``w(x)``, 0 inside the sphere of radius ``N/2`` about voxel ``N/2``, rising as a raised
    cosine over ``edge`` voxels outside it, 1 beyond (float32 ``N³``)."""
    c = np.arange(n, dtype=np.float32) - n // 2
    r = np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2)
    t = np.clip((r - n / 2) / edge, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def flatten_solvent(data: np.ndarray, edge: float = SOLVENT_EDGE) -> np.ndarray:
    """Solvent flattening outside the reconstruction sphere (module docstring): ``v (1 − w)
    + w v̄``, ``v̄`` the ``w``-weighted mean of ``v`` (:func:`solvent_weight`). In place;
    returns ``data``."""
    w = solvent_weight(data.shape[0], edge)
    mean = float(np.sum(w * data, dtype=np.float64) / max(float(np.sum(w, dtype=np.float64)),
                                                          1e-30))
    data *= 1.0 - w
    data += w * np.float32(mean)
    return data


def solvent_fraction(n: int, edge: float = SOLVENT_EDGE) -> float:
    """``⟨(1 − w)²⟩`` over the box: the share of white noise power the flattening keeps."""
    return float(np.mean((1.0 - solvent_weight(n, edge).astype(np.float64)) ** 2))


FSC_FLOOR, FSC_CEILING = 0.001, 0.999
"""The FSC is clipped to this range before it is turned into an SSNR (``fsc`` regulariser)."""


def fsc_to_ssnr(fsc: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """``factor · FSC / (1 − FSC)``, the FSC clipped to [:data:`FSC_FLOOR`,
    :data:`FSC_CEILING`] first."""
    clipped = np.clip(np.asarray(fsc, dtype=np.float64), FSC_FLOOR, FSC_CEILING)
    return factor * clipped / (1.0 - clipped)


@dataclass(eq=False)
class Unregularised:
    """A map before its regulariser, with the grids it came from.

    Attributes:
        spectrum: complex64 ``rfftn`` of the unregularised ``N³`` map (unnormalised).
        grids: the numerator and weight grids (:class:`FourierReconstructor`).
        like: the map's grid.
        particles: how many particles.
        noise_power: ``σ²`` of the particles.
    """

    spectrum: np.ndarray
    grids: FourierReconstructor
    like: Volume
    particles: int
    noise_power: float

    @property
    def n(self) -> int:
        """The box edge."""
        return self.spectrum.shape[0]

    def oracle_lambda(self, signal_power: np.ndarray, fudge: float = 1.0) -> np.ndarray:
        """``λ = σ² / (T S)`` per map shell ``0 .. N/2`` in oversampled-weight units
        (``/ pad³``), ``S`` the true signal power of the shell (:func:`power_at_radius`)."""
        power = power_at_radius(np.arange(self.n // 2 + 1, dtype=np.float64), signal_power)
        return self.noise_power / (fudge * np.maximum(power, 1e-30) * self.grids.pad**3)

    def fsc_lambda(self, half_fsc: np.ndarray, fudge: float = 1.0,
                   factor: float = 1.0) -> np.ndarray:
        """``λ = w̄ / (T · SSNR)`` per map shell, ``w̄`` the shell's mean oversampled weight and
        ``SSNR = factor · FSC / (1 − FSC)`` (:func:`fsc_to_ssnr`).

        Args:
            half_fsc: FSC between two unregularised half-maps per rounded shell
                ``0 .. N/2`` (:func:`shell_fsc`).
            fudge: ``T``.
            factor: the map's SSNR relative to one half's (e.g. 2 for both halves' particles).
        """
        if len(half_fsc) != self.n // 2 + 1:
            raise ValueError(f"the FSC has {len(half_fsc)} shells, a {self.n}³ map "
                             f"{self.n // 2 + 1}")
        return self.grids.shell_mean_weight() / (fudge * fsc_to_ssnr(half_fsc, factor))

    def map(self, lam: np.ndarray | None = None, flatten: bool = True,
            source: str | None = None) -> Volume:
        """The map regularised with ``λ`` per shell (None: unregularised), transformed
        back, and solvent-flattened outside the reconstruction sphere
        (:func:`flatten_solvent`) if asked."""
        spectrum = self.spectrum if lam is None else self.grids.spectrum(self.noise_power, lam)
        data = scipy.fft.irfftn(spectrum, s=(self.n,) * 3, workers=-1).astype(np.float32)
        if flatten:
            flatten_solvent(data)
        return self.like.like(data, source=source or
                              f"reconstruction from {self.particles} particles")


__all__ = ["FSC_CEILING", "FSC_FLOOR", "SOLVENT_EDGE", "FourierReconstructor", "Unregularised",
           "flatten_solvent", "fsc_to_ssnr", "power_at_radius", "rounded_shells",
           "shell_fsc", "shell_radius", "solvent_fraction", "solvent_weight"]
