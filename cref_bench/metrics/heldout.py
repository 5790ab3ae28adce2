"""Held-out-half scores: how close a denoised half-map is to the truth, estimated without it.

A single-map method denoises each noisy half alone: ``D1 = f(M1)``, ``D2 = f(M2)``, with
``Mi = S + Ni`` (signal ``S``, independent noises). ``D1`` never saw ``N2``, so per Fourier
shell ``E cov(D1, M2) = cov(D1, S)``: the other half is an unbiased noisy copy of the signal.
Per shell, with ``f = FSC(M1, M2) ≈ |S|² / (|S|² + |N|²)``:

* **FSC to the truth**: ``FSC(D1, S) ≈ FSC(D1, M2) / sqrt(f)`` (0 where ``f <= 0``: no
  signal is measurable there). Its crossings of 0.143 and 0.5 are the held-out resolutions.
* **Error to the truth**: ``E|a D1 - M2|² = |a D1 - S|² + E|N2|²``, and the noise power of a
  half is measured as ``|M1 - M2|² / 2``; so ``|a D1 - S|² ≈ |a D1 - M2|² - |M1 - M2|² / 2``.
  The scale ``a = Σ cov(D1, M2) / Σ |D1|²`` (sums over all shells, weighted by their
  lattice points) is the one that minimises the estimated error: an output's own scale
  (LAFTER's is arbitrary) does not decide it.

Global values over all shells: the correlation with the truth,
``Σ cov(D1, M2) / sqrt(Σ |D1|² · Σ |S|²)`` with ``|S|² ≈ |M2|² - |M1 - M2|² / 2``, and the
relative error ``Σ |a D1 - S|² / Σ |S|²`` (which is ``1 - corr²``: 0 for the truth up to a
scale, 1 for a map unrelated to it). Each half is estimated against the other; the reported
values are both halves' and their mean.

Only outputs made from one half alone may be scored this way: a method that saw both halves
(LAFTER, a filter weighted by the halves' FSC, the halves swapped) has ``D1`` correlated with
``N2``, and the estimates are then biased in its favour. The runner therefore computes them
only for the single-half calls it made itself; for other methods they are not applicable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cref_bench.metrics.fsc import Spectra


@dataclass(frozen=True)
class HeldOutHalf:
    """The estimates of one denoised half against the other noisy half.

    Attributes:
        fsc_truth: estimated ``FSC(Di, S)`` per shell.
        error: estimated ``|a Di - S|²`` per shell (mean per lattice point, map units²).
        scale: ``a``, the scale that minimises the estimated error.
        corr: estimated correlation of ``Di`` with the truth over all shells (DC left out).
        rel_error: estimated ``Σ |a Di - S|² / Σ |S|²`` over all shells.
    """

    fsc_truth: np.ndarray
    error: np.ndarray
    scale: float
    corr: float
    rel_error: float


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 and np.isfinite(a) else float("nan")


def estimate_half(spectra: Spectra, denoised: str, own: str, other: str) -> HeldOutHalf:
    """The held-out estimates of ``denoised`` (made from ``own`` alone) against ``other``.

    Args:
        spectra: spectra holding the three maps (masked or not, as the scores are).
        denoised: the denoised half ``Di``.
        own: the noisy half it was made from, ``Mi``.
        other: the other noisy half, ``Mj``.

    Returns:
        A :class:`HeldOutHalf`.
    """
    c_do, p_d, c_mm, p_own, p_other = spectra.cov(
        (denoised, other), (denoised, denoised), (own, other), (own, own), (other, other))
    counts = spectra.shells.counts.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        fsc_do = np.where(p_d * p_other > 0, c_do / np.sqrt(p_d * p_other), 0.0)
        f = np.where(p_own * p_other > 0, c_mm / np.sqrt(p_own * p_other), 0.0)
        fsc_truth = np.where(f > 0, fsc_do / np.sqrt(np.where(f > 0, f, 1.0)), 0.0)
    noise = (p_own + p_other - 2.0 * c_mm) / 2.0
    signal = p_other - noise
    sum_cross, sum_d, sum_signal = (float(counts @ v) for v in (c_do, p_d, signal))
    scale = _ratio(sum_cross, sum_d)
    error = scale ** 2 * p_d - 2.0 * scale * c_do + signal
    corr = (sum_cross / np.sqrt(sum_d * sum_signal) if sum_d > 0 and sum_signal > 0
            else float("nan"))
    return HeldOutHalf(fsc_truth, error, scale, float(corr),
                       _ratio(float(counts @ error), sum_signal))


def estimate(spectra: Spectra, m1: str = "M1", m2: str = "M2", h1: str = "H1",
             h2: str = "H2") -> tuple[HeldOutHalf, HeldOutHalf]:
    """The held-out estimates of both halves: ``h1`` (made from ``m1`` alone) against ``m2``,
    ``h2`` (made from ``m2`` alone) against ``m1``.

    Args:
        spectra: spectra holding the four maps.
        m1, m2, h1, h2: their names.

    Returns:
        ``(half 1's, half 2's)`` :class:`HeldOutHalf`.
    """
    # every covariance both halves need, in one pass over the spectra
    spectra.cov(*((a, b) for d, own, other in ((h1, m1, m2), (h2, m2, m1))
                  for a, b in ((d, other), (d, d), (own, other), (own, own), (other, other))))
    return estimate_half(spectra, h1, m1, m2), estimate_half(spectra, h2, m2, m1)


def truth_values(spectra: Spectra, denoised: str, truth: str, scale: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`estimate_half` estimates, measured against the truth (for its validation).

    Args:
        spectra: spectra holding the denoised half and the truth.
        denoised, truth: their names.
        scale: the scale ``a`` of the estimate.

    Returns:
        ``(FSC(Di, T), |a Di - T|²)`` per shell.
    """
    c_dt, p_d, p_t = spectra.cov((denoised, truth), (denoised, denoised), (truth, truth))
    return spectra.fsc(denoised, truth).value, scale ** 2 * p_d - 2.0 * scale * c_dt + p_t


__all__ = ["HeldOutHalf", "estimate", "estimate_half", "truth_values"]
