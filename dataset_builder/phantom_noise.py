"""Half-map noise calibrated so that the half-map FSC follows a designed curve.

Used by :mod:`dataset_builder.synthetic`. Everything works per shell of
:func:`cref_bench.metrics.shells.fourier_shells` (the shells every FSC of the project uses), on
``rfftn`` half-spaces with Friedel weights, so per-shell sums equal sums over the full
transform.

* **Designed FSC** (:func:`designed_fsc`): ``f(s) = 1 / (1 + 6^u)`` with
  ``u = (s - s_half) / (s_c - s_half)`` and ``s_half = s_c / ratio``: about 1 at low
  resolution, 0.5 at ``s_half``, 0.143 at ``s_c``, floored at 0.02. ``ratio`` is the ratio of
  the 0.5 and 0.143 resolutions (the phantoms draw it in [1.1, 1.3]). ``s_c`` is tuned so
  that the curve, interpolated linearly between shells as
  :func:`cref_bench.metrics.fsc.resolution_at` does, crosses 0.143 exactly at the requested
  resolution.
* **Noise power** (:func:`noise_power`): ``N = S (1 - f) / f`` up to the crossing, ``S`` the
  truth's own power in the shell. Beyond it, the power that would give ``f`` had the signal
  stayed at its crossing level, or more, never decreasing: the noise rises to a white
  plateau while the signal fades with its B-factor (as in real half-maps, where noise
  dominates beyond the resolution).
* **Noise** (:func:`calibrated_noise`): white Gaussian noise times a spatial envelope,
  transformed; in each shell made orthogonal to the truth (and, for half 2, to half 1's
  noise) and scaled to ``N``. The projections remove 1-2 of the thousands of degrees of
  freedom of a shell; they take away the sampling scatter of the FSC (up to +-0.03 per
  shell in small boxes), so FSC(truth + noise1, truth + noise2) *is* the designed curve
  (to float32 rounding) and crosses 0.143 where asked. The corners beyond the Nyquist shell
  get the last shell's power (not orthogonalised: no FSC sees them); the mean carries no
  noise.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft

from cref_bench.metrics.fsc import resolution_at
from cref_bench.metrics.shells import Shells, friedel_weights

FSC_THRESHOLD = 0.143
FSC_FLOOR = 0.02
"""Smallest value of the designed FSC (its noise power stays finite)."""


def shell_sums(values: np.ndarray, shells: Shells) -> np.ndarray:
    """Friedel-weighted per-shell sums of a real half-space array (corners left out).

    Args:
        values: an array of the shells' half-space shape.
        shells: the shells.

    Returns:
        float64 sums, one per shell.
    """
    weighted = values * friedel_weights(shells.shape[2])
    return np.bincount(_bins(shells), weights=weighted.ravel(), minlength=shells.n + 1)[:-1]


@lru_cache(maxsize=4)
def _bins(shells: Shells) -> np.ndarray:
    """The shell index of every half-space voxel, flat, with the corners in bin ``n``."""
    return np.where(shells.index >= 0, shells.index, shells.n).astype(np.intp).ravel()


def _fsc_curve(frequency: np.ndarray, ratio: float, s_crossing: float) -> np.ndarray:
    u = (frequency * ratio / s_crossing - 1.0) / (ratio - 1.0)
    return np.maximum(1.0 / (1.0 + np.power(6.0, np.minimum(u, 60.0))), FSC_FLOOR)


def designed_fsc(frequency: np.ndarray, resolution: float, ratio: float) -> np.ndarray:
    """The designed FSC per shell, whose interpolated 0.143 crossing is ``resolution``.

    Args:
        frequency: shell frequencies, 1/Å, increasing.
        resolution: the crossing, Å; must lie between the second and the last shell.
        ratio: resolution at FSC 0.5 over resolution at 0.143 (> 1).

    Returns:
        One value per shell, in ``[FSC_FLOOR, 1)``.

    Raises:
        ValueError: ``ratio`` is not above 1.
    """
    if not ratio > 1.0:
        raise ValueError(f"ratio must be above 1, got {ratio}")
    target = 1.0 / resolution
    low, high = 0.8 * target, 1.25 * target
    for _ in range(50):
        middle = 0.5 * (low + high)
        crossing = resolution_at(frequency, _fsc_curve(frequency, ratio, middle),
                                 FSC_THRESHOLD).resolution
        if crossing is not None and 1.0 / crossing < target:
            low = middle
        else:
            high = middle
    return _fsc_curve(frequency, ratio, 0.5 * (low + high))


def noise_power(signal: np.ndarray, fsc: np.ndarray) -> np.ndarray:
    """Per-shell noise power for a designed FSC (see the module docstring).

    Args:
        signal: the truth's mean power per lattice point in each shell.
        fsc: the designed FSC per shell (it must fall below 0.143 somewhere).

    Returns:
        Mean noise power per lattice point in each shell.
    """
    power = signal * (1.0 - fsc) / fsc
    crossed = int(np.argmax(fsc < FSC_THRESHOLD))
    plateau = signal[crossed] * (1.0 - fsc[crossed:]) / fsc[crossed:]
    power[crossed:] = np.maximum.accumulate(np.maximum(power[crossed:], plateau))
    return power


def calibrated_noise(rng: np.random.Generator, envelope: np.ndarray, against: list[np.ndarray],
                     power: np.ndarray, shells: Shells) -> np.ndarray:
    """The spectrum of one half-map's noise.

    Args:
        rng: the generator of the white noise.
        envelope: real-space amplitude of the noise, the map's shape.
        against: half-space spectra the noise is made orthogonal to, shell by shell; each
            must already be orthogonal to those before it (truth, then half 1's noise).
        power: mean noise power per lattice point wanted in each shell.
        shells: the shells of the map's grid.

    Returns:
        The noise's ``rfftn`` half-space spectrum (complex128).
    """
    index, n = shells.index, shells.n
    spectrum = scipy.fft.rfftn(rng.standard_normal(envelope.shape) * envelope, workers=-1)
    spectrum[0, 0, 0] = 0.0
    for other in against:
        dot = shell_sums(spectrum.real * other.real + spectrum.imag * other.imag, shells)
        norm = shell_sums(other.real**2 + other.imag**2, shells)
        coefficient = np.append(np.divide(dot, norm, out=np.zeros(n), where=norm > 0), 0.0)
        spectrum -= coefficient[index] * other  # index -1 (corners) picks the appended 0
    current = shell_sums(np.abs(spectrum) ** 2, shells) / np.maximum(shells.counts, 1)
    corners = index < 0
    corner_power = np.mean(np.abs(spectrum[corners]) ** 2) if corners.any() else 0.0
    corner_scale = power[-1] / corner_power if corner_power > 0 else 0.0
    scale = np.sqrt(np.append(np.divide(power, current, out=np.zeros(n), where=current > 0),
                              corner_scale))
    spectrum *= scale[index]
    return spectrum


__all__ = ["FSC_FLOOR", "FSC_THRESHOLD", "calibrated_noise", "designed_fsc", "noise_power",
           "shell_sums"]
