"""Direct Fourier inversion: gridding particles into numerator and weight grids, and the map.

For a set of particles with images ``X_p`` (Fourier space), CTFs ``c_p`` and slice positions
``k_p``, on a grid oversampled ``pad`` times (``L = pad N``, centred, ``rfftn`` half-space):

    numerator(g) = Σ_p K(g − k_p) c_p X_p        weight(g) = Σ_p K(g − k_p) c_p²

with ``K`` the trilinear kernel (:func:`._kernels.insert_tiles`). Points falling in the
``x < 0`` half are added at ``−k`` (as their Friedel mates); the ``x = 0`` and ``x = L/2``
planes, each its own Friedel mate, are symmetrised at the end (``v(g) + conj v(−g)``).

The map (:meth:`FourierReconstructor.spectrum`, :meth:`Unregularised.map`):

1. ``E = numerator / max(weight + λ, η w̄)`` on the oversampled grid, ``w̄(|g|)`` the mean
   weight at the voxel's radius and ``η = 0.02`` (only voxels sampled far less than their
   neighbours are damped; without noise and regulariser this is the plain ratio), ``λ`` the
   regulariser of the voxel's map shell (``round(|g| / pad)``; 0 for an unregularised map);
2. ``E`` multiplied by ``φ = sqrt(weight averaged over 5³ voxels)``, which makes the
   unregularised noise (power ``σ² / weight``, ``σ²`` the noise power per image Fourier
   coefficient) white; transformed back, cropped to the ``N³`` box around the centre,
   divided by the gridding correction ``Π sinc²(x_i / L)`` (:func:`.specimen.gridding_correction`:
   the trilinear kernel's convolution in Fourier space is that multiplication in real space),
   transformed, divided by ``φ`` again (no ``φ`` without noise) and set to zero beyond
   Nyquist (``|k| > N/2``; the images hold nothing there);
3. back in real space, solvent flattening (:func:`flatten_solvent`): outside the sphere of
   radius ``N/2`` about the centre voxel, behind a raised-cosine edge 3 voxels wide, the map
   is set to its mean there, as ``relion_reconstruct`` does (measured on its output: the
   same radius and edge).

The regulariser (``λ`` in oversampled-weight units, as RELION adds ``1/τ²`` to the weights
before its division; :class:`Unregularised`): ``fsc``, ``λ = w̄_s / (T · SSNR_s)`` with
``w̄_s`` the mean weight of map shell ``s`` and ``SSNR_s = FSC_s / (1 − FSC_s)`` from the
FSC of the two unregularised, solvent-flattened half-maps, clipped to [0.045, 0.999] first
(:func:`fsc_to_ssnr`; for uniform sampling the signal gain is then the FSC itself);
``oracle``, ``λ = σ² / (pad³ T S_s)`` with ``S_s`` the truth's mean
power per voxel in the shell. ``T`` is the fudge (1: Wiener). Regularising before the crop,
as RELION does, lets the crop carry well-measured signal into poorly measured directions
(preferred views): the FSC in a cone along a poorly sampled axis is then higher than the
per-voxel SSNR implies.

A crop is a convolution in Fourier space whose kernel falls off only as ``1/u²``: applied to
a spectrum spanning orders of magnitude it carries power from the strong shells into the
weak ones and correlates the FSC of neighbouring shells; the whitening keeps the
unregularised noise from doing so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import scipy.fft
from scipy import ndimage

from cref_bench.maps.volume import Volume
from dataset_builder.simulation import _kernels
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
PLANES = 16
_EMPTY = np.zeros(0, np.float32)
"""Planes of the oversampled grid processed at once (bounds the temporaries)."""


@lru_cache(maxsize=2)
def _grid_shells(size: int, pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per voxel of an ``L = size`` oversampled half-space grid: the rounded radius (at most
    ``L/2 + 1``) and the map's shell ``round(radius / pad)`` (at most ``N/2``), int16,
    read-only; and the voxel counts of each (the latter's over the full transform)."""
    f2 = np.fft.fftfreq(size, 1.0 / size).astype(np.float32) ** 2
    x2 = np.arange(size // 2 + 1, dtype=np.float32) ** 2
    shape = (size, size, size // 2 + 1)
    pad_shell, map_shell = np.empty(shape, np.int16), np.empty(shape, np.int16)
    for lo in range(0, size, PLANES):
        radius = np.sqrt(f2[lo:lo + PLANES, None, None] + f2[None, :, None] + x2[None, None, :])
        pad_shell[lo:lo + PLANES] = np.minimum(np.rint(radius), size // 2 + 1)
        map_shell[lo:lo + PLANES] = np.minimum(np.rint(radius / pad), size // (2 * pad))
    pad_counts = np.bincount(pad_shell.ravel(), minlength=size // 2 + 2).astype(np.float64)
    bins = size // (2 * pad) + 1
    map_counts = 2.0 * np.bincount(map_shell.ravel(), minlength=bins)
    for x in (0, shape[2] - 1):
        map_counts -= np.bincount(map_shell[:, :, x].ravel(), minlength=bins)
    for array in (pad_shell, map_shell, pad_counts, map_counts):
        array.setflags(write=False)
    return pad_shell, map_shell, pad_counts, map_counts


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

    def _prepare(self) -> None:
        """Once the particles are in: symmetrise the ``x = 0`` and ``x = L/2`` planes and
        take each voxel's shells (:func:`_grid_shells`) and the mean weight per rounded
        radius."""
        if self.symmetrised:
            return
        self._symmetrise_planes()
        self.symmetrised = True
        self._pad_shell, self._map_shell, pad_counts, self._map_counts = _grid_shells(
            self.numerator.shape[0], self.pad)
        self._radius_mean = (_kernels.shell_sums(self._pad_shell, self.weight, pad_counts.size)
                             / np.maximum(pad_counts, 1))
        self._whiten = self._shell_mean = None

    def shell_mean_weight(self) -> np.ndarray:
        """The mean oversampled weight in each of the map's shells ``0 .. N/2``
        (``round(radius / pad)``, at most ``N/2``; both halves of the transform counted)."""
        self._prepare()
        if self._shell_mean is None:
            bins = self.n // 2 + 1
            total = 2.0 * _kernels.shell_sums(self._map_shell, self.weight, bins)
            for x in (0, self.weight.shape[2] - 1):      # planes that are their own mirror
                total -= np.bincount(self._map_shell[:, :, x].ravel(),
                                     self.weight[:, :, x].ravel(), bins)
            self._shell_mean = total / np.maximum(self._map_counts, 1e-30)
        return self._shell_mean

    def _whitening(self) -> np.ndarray:
        """``φ``, the square root of the weight averaged over :data:`WHITENING_WIDTH`³ voxels
        (computed once)."""
        if self._whiten is None:
            whiten = ndimage.uniform_filter(self.weight, WHITENING_WIDTH,
                                            mode=("wrap", "wrap", "nearest"))
            np.sqrt(np.maximum(whiten, 0.0, out=whiten), out=whiten)   # rounding: no < 0
            self._whiten = whiten
        return self._whiten

    def spectrum(self, noise_power: float, lam: np.ndarray | None = None) -> np.ndarray:
        """The map's transform (module docstring, steps 1 to 3); the grids are kept.

        Args:
            noise_power: ``σ²`` per image Fourier coefficient (0: no whitening).
            lam: ``λ`` per map shell ``0 .. N/2`` in units of the oversampled weight (added
                to the weight of every voxel of the shell: ``round(radius / pad)``), or None
                (no regulariser).

        Returns:
            complex64 ``rfftn`` of the ``N³`` map, zero beyond Nyquist.
        """
        self._prepare()
        size, p, n = self.numerator.shape[0], self.pad, self.n
        floor = (STABILISER * self._radius_mean).astype(np.float32)
        lam32 = np.zeros(n // 2 + 1, np.float32) if lam is None else np.asarray(lam, np.float32)
        whiten = self._whitening() if noise_power > 0 else None
        estimate = np.empty_like(self.numerator)
        _kernels.divide_weights(self.numerator.view(np.float32).reshape(*self.weight.shape, 2),
                                self.weight, _EMPTY if whiten is None else whiten, lam32,
                                self._map_shell, floor, self._pad_shell,
                                estimate.view(np.float32).reshape(*self.weight.shape, 2))
        big = scipy.fft.irfftn(estimate, s=(size,) * 3, workers=-1, overwrite_x=True)
        del estimate
        data = uncentre(big, n, p)
        del big
        spectrum = scipy.fft.rfftn(data, workers=-1).astype(np.complex64, copy=False)
        if whiten is not None:
            whiten_n = whiten[::p, ::p, ::p][:, :, : n // 2 + 1]
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
        return Unregularised(self, like, self.particles, float(noise_power))


@lru_cache(maxsize=4)
def shell_radius(n: int) -> np.ndarray:
    """``|k|`` (index units) of every voxel of the ``rfftn`` half-space of an ``N³`` box
    (cached, read-only)."""
    k = np.fft.fftfreq(n, 1.0 / n)
    radius = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2
                     + np.arange(n // 2 + 1)[None, None, :] ** 2)
    radius.setflags(write=False)
    return radius


@lru_cache(maxsize=4)
def rounded_shells(n: int) -> np.ndarray:
    """The shell of every half-space voxel: ``round(|k|)``, those beyond Nyquist in shell
    ``N/2`` (``0 .. N/2``, int64; cached, read-only)."""
    shells = np.minimum(np.rint(shell_radius(n)), n // 2).astype(np.int64)
    shells.setflags(write=False)
    return shells


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


@lru_cache(maxsize=4)
def solvent_weight(n: int, edge: float = SOLVENT_EDGE) -> np.ndarray:
    """``w(x)``, 0 inside the sphere of radius ``N/2`` about voxel ``N/2``, rising as a raised
    cosine over ``edge`` voxels outside it, 1 beyond (float32 ``N³``; cached, read-only)."""
    c = np.arange(n, dtype=np.float32) - n // 2
    r = np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2)
    t = np.clip((r - n / 2) / edge, 0.0, 1.0)
    weight = (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)
    weight.setflags(write=False)
    return weight


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


FSC_FLOOR, FSC_CEILING = float(np.sqrt(2 * 0.001 / 1.001)), 0.999
"""The FSC is clipped to this range before it is turned into an SSNR (``fsc`` regulariser).
The floor, 0.0447, is RELION's: ``relion_reconstruct --fsc`` floors the FSC it is given at
0.001 and regularises with ``sqrt(2 FSC / (1 + FSC))`` in its place (measured on its output:
its signal gain never falls below 0.045), so that its maps keep noise up to Nyquist."""


def fsc_to_ssnr(fsc: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """``factor · FSC / (1 − FSC)``, the FSC clipped to [:data:`FSC_FLOOR`,
    :data:`FSC_CEILING`] first."""
    clipped = np.clip(np.asarray(fsc, dtype=np.float64), FSC_FLOOR, FSC_CEILING)
    return factor * clipped / (1.0 - clipped)


@dataclass(eq=False)
class Unregularised:
    """A map before its regulariser, with the grids it came from.

    Attributes:
        grids: the numerator and weight grids (:class:`FourierReconstructor`).
        like: the map's grid.
        particles: how many particles.
        noise_power: ``σ²`` of the particles.
    """

    grids: FourierReconstructor
    like: Volume
    particles: int
    noise_power: float

    @property
    def n(self) -> int:
        """The box edge."""
        return self.grids.n

    @cached_property
    def spectrum(self) -> np.ndarray:
        """complex64 ``rfftn`` of the unregularised ``N³`` map (computed when first asked)."""
        return self.grids.spectrum(self.noise_power)

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
