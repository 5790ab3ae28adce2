"""The noise level a particle SNR sets, and the spectral SNR and FSC the settings imply.

Units: ``F`` is the ``rfftn`` (unnormalised) of the ``N³`` map; ``k`` a frequency in index
units (``|k| = s N a``); an image's transform is unnormalised too, so white real-space noise
of variance ``σ_px²`` per pixel has power ``σ² = N² σ_px²`` per Fourier coefficient.

* **Particle SNR** (:func:`noise_power`): the variance of the noise-free, CTF-modulated
  image over the particle's disk, over the noise variance, averaged over uniform
  orientations and the defocus range:
  ``SNR = Σ_{k≠0} ⟨CTF²⟩(k) S(|k|) / (A_p σ²)``, the sum over the image's Fourier points
  inside the Nyquist circle, ``S`` the map's mean power per voxel at ``|k|``, ``A_p`` the area
  (pixels) of the disk of the particle's radius.
* **Spectral SNR** of a reconstruction from ``n`` particles (:func:`implied_fsc`): a voxel at
  ``|k|`` in direction ``ω`` is measured by ``m = n h(ω) / (2|k|)`` image points
  (slices through it, per unit volume; ``h`` from :mod:`.orientations`, 1 for uniform
  views), each with SNR ``⟨CTF²⟩ |F(k)|² / σ²``, so ``SSNR(k) = m ⟨CTF²⟩ |F(k)|² / σ²``. With
  the Wiener-type regulariser of :mod:`.reconstruction` a voxel's estimate is
  ``a F + a ε``, ``a = W / (W + λ)``, ``W = m ⟨CTF²⟩``, ``λ = σ² / (T S)``, noise power
  ``σ² / W``; the FSC of two independent halves is then, per shell,

      FSC = Σ a² |F|² / Σ a² (|F|² + σ² / W),   i.e. SSNR / (1 + SSNR) for uniform sampling,

  with sampling scatter of about ``(1 − FSC²) / sqrt(n_shell)`` (``n_shell`` the shell's
  lattice points). A flexible domain's motion is not counted (it acts as more noise).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cref_bench.metrics.fsc import resolution_at
from cref_bench.metrics.shells import Shells, fourier_shells
from dataset_builder.phantom_noise import shell_sums
from dataset_builder.simulation.ctf import Microscope
from dataset_builder.simulation.orientations import ViewDistribution
from dataset_builder.simulation.particles import ImagePoints
from dataset_builder.simulation.reconstruction import fsc_to_ssnr, power_at_radius


def shell_power(spectrum: np.ndarray, shells: Shells) -> np.ndarray:
    """Mean power per lattice point of a half-space spectrum in each shell."""
    return shell_sums(np.abs(spectrum) ** 2, shells) / np.maximum(shells.counts, 1)


def mean_ctf2(s2: np.ndarray, microscope: Microscope | None,
              defocus_range: tuple[float, float]) -> np.ndarray:
    """``⟨CTF²⟩`` over the defocus range at squared frequencies ``s2``; 1 without CTF."""
    if microscope is None:
        return np.ones_like(np.asarray(s2, dtype=np.float64))
    return microscope.mean_ctf2(s2, defocus_range)


def noise_power(snr: float, power: np.ndarray, points: ImagePoints,
                microscope: Microscope | None, defocus_range: tuple[float, float],
                radius: float) -> float:
    """``σ²``, the noise power per image Fourier coefficient for a particle SNR.

    Args:
        snr: the particle SNR (positive; ``inf`` for no noise).
        power: the map's mean power per voxel in each shell (:func:`shell_power`; cubic box).
        points: the image points.
        microscope: the optics, or None for no CTF.
        defocus_range: Å.
        radius: the particle's radius, Å.

    Returns:
        ``σ²`` (0 for an infinite SNR).

    Raises:
        ValueError: a non-positive SNR or radius.
    """
    if not snr > 0:
        raise ValueError(f"the particle SNR must be positive, got {snr}")
    if not radius > 0:
        raise ValueError(f"the particle radius must be positive, got {radius}")
    if np.isinf(snr):
        return 0.0
    k = np.sqrt(points.kx**2 + points.ky**2)
    inside = k > 0
    signal = np.sum(points.full_grid_count()[inside] * mean_ctf2(points.s2[inside], microscope,
                                                                 defocus_range)
                    * power_at_radius(k[inside], power))
    area = np.pi * (radius / points.voxel_size) ** 2
    return float(signal / (area * snr))


def implied_fsc(spectrum: np.ndarray, shells: Shells, n_particles: int, noise: float,
                microscope: Microscope | None, defocus_range: tuple[float, float],
                views: ViewDistribution, fudge: float = 1.0,
                regulariser: str = "oracle") -> np.ndarray:
    """The expected FSC between two half-maps of ``n_particles`` each (module docstring).

    Args:
        spectrum: the truth's ``rfftn`` half-space (the ``N³`` map).
        shells: the shells to report on (those of the map, or a cone of them from
            :func:`cone_shells`).
        n_particles: particles per half.
        noise: ``σ²`` per image Fourier coefficient (:func:`noise_power`).
        microscope: the optics, or None for no CTF.
        defocus_range: Å.
        views: the orientation distribution.
        fudge: the regulariser's ``T`` (inf: no regulariser).
        regulariser: ``oracle`` (``λ = σ² / (T S)``) or ``fsc`` (``λ = W̄ / (T · SSNR)`` per
            shell, the SSNR the unregularised halves' FSC gives: ``Σ |F|² / Σ σ² / W``, the
            FSC clipped as :func:`.reconstruction.fsc_to_ssnr` clips it; the same for uniform
            views).

    Returns:
        One value per shell (1 without noise).
    """
    if noise == 0:
        return np.ones(shells.n)
    n = shells.shape[0]
    kz = np.fft.fftfreq(n, 1.0 / n)
    kx = np.arange(n // 2 + 1, dtype=np.float64)
    k_perp2 = kz[None, :, None] ** 2 + kx[None, None, :] ** 2          # ky² + kx²
    k2 = kz[:, None, None] ** 2 + k_perp2
    radius = np.sqrt(np.maximum(k2, 1e-12))
    h = views.slice_density(np.sqrt(np.broadcast_to(k_perp2, k2.shape)) / radius)
    s2 = k2 / (n * shells.voxel_size[0]) ** 2
    weight = n_particles * h / (2.0 * radius) * mean_ctf2(s2, microscope, defocus_range)
    full = fourier_shells(shells.shape, shells.voxel_size)
    signal = np.abs(spectrum) ** 2
    if regulariser == "fsc":
        counts = np.maximum(full.counts, 1)
        signal_sum = shell_sums(signal, full)
        noise_sum = shell_sums(noise / np.maximum(weight, 1e-30), full)
        unregularised = signal_sum / np.maximum(signal_sum + noise_sum, 1e-300)
        lam = shell_sums(weight, full) / counts / (fudge * fsc_to_ssnr(unregularised))
        a = weight / (weight + power_at_radius(radius, lam))
    else:
        mean_power = power_at_radius(radius, shell_power(spectrum, full))
        a = weight / (weight + noise / (fudge * np.maximum(mean_power, 1e-30)))
    cross = shell_sums(a**2 * signal, shells)
    total = shell_sums(a**2 * (signal + noise / np.maximum(weight, 1e-30)), shells)
    return np.divide(cross, total, out=np.zeros(shells.n), where=total > 0)


def implied_resolution(fsc: np.ndarray, shells: Shells, threshold: float = 0.143) -> float | None:
    """Where an implied FSC first falls below ``threshold`` (Å), or None if it never does."""
    return resolution_at(shells.frequency, fsc, threshold).resolution


def cone_shells(shells: Shells, half_angle: float, along: bool = True) -> Shells:
    """The shells restricted to a double cone about the z axis (or outside it).

    Args:
        shells: shells of a cubic box (:func:`cref_bench.metrics.shells.fourier_shells`).
        half_angle: degrees.
        along: keep the voxels within ``half_angle`` of the z axis; False keeps those within
            ``half_angle`` of the xy plane instead.

    Returns:
        Shells with the same frequencies, other voxels left out, counts recounted.
    """
    n = shells.shape[0]
    kz = np.fft.fftfreq(n, 1.0 / n)
    kx = np.arange(n // 2 + 1, dtype=np.float64)
    k_perp = np.sqrt(kz[None, :, None] ** 2 + kx[None, None, :] ** 2)
    angle_from_z = np.degrees(np.arctan2(k_perp, np.abs(kz)[:, None, None]))
    inside = angle_from_z <= half_angle if along else angle_from_z >= 90.0 - half_angle
    index = np.where(inside & (shells.index >= 0), shells.index, -1).astype(np.int16)
    index.setflags(write=False)
    weights = np.broadcast_to(np.where((kx == 0) | (kx == n // 2), 1.0, 2.0), index.shape)
    counts = np.bincount(index[index >= 0], weights=weights[index >= 0],
                         minlength=shells.n).astype(np.int64)
    counts.setflags(write=False)
    return replace(shells, index=index, counts=counts, convention=f"cone {half_angle:g}°")


__all__ = ["cone_shells", "implied_fsc", "implied_resolution", "mean_ctf2", "noise_power",
           "shell_power"]
