"""The algorithm of the ``lafter`` method: LAFTER v1.1 (Ramlaul, Palmer & Aylett, J. Struct. Biol.
205 (2019) 30-40) reimplemented from its published algorithm; the GPL-3 original is not used.

LAFTER filters a half-map pair jointly into one map. Pass 1 walks band-pass bands from low
to high resolution, weighting each voxel of each band by the probability that it is signal
(from the halves' agreement over the mask's core) and stopping where the band's half-map FSC
falls below ``fsc_cutoff``; pass 2 walks the same bands back down, keeping at each voxel the
sum of the halves at the highest resolution at which it stands above the largest noise seen
inside the core; the result is softened, masked and low-passed at the stop resolution. The
algorithm, step by step, is :func:`lafter`; the method wrapper is
:class:`baselines.lafter.method.Lafter`.

The original's self-check is kept: logger ``baselines.lafter`` writes at INFO one line per
band of pass 1 (edges, FSC, C_ref, MeanProb) and a summary (stop resolution, recovery, the
RMSD between C_ref and FSC(output, V1 + V2)), at DEBUG pass 2 and the self-check band by band;
the same figures stay on the method's ``report`` and the summary in the result's note.

Choices where v1.1 leaves room (each also stated where it is made):

* Non-cubic boxes are handled by defining frequencies per axis: a Fourier voxel
  ``(kz, ky, kx)`` of an ``(nz, ny, nx)`` box has ``s² = (kz/nz)² + (ky/ny)² + (kx/nx)²``
  cycles per voxel, which is v1.1's definition for a cube. No padding. Like v1.1 the
  frequencies are in voxel units; the voxel size enters only the particle-diameter mask and
  the Ångström figures of the log.
* ``particle_diameter`` is in Å (distances in Å, per axis, from voxel ``(nz//2, ny//2,
  nx//2)``); it is used only when no mask is given. With neither, the mask is 1 everywhere.
* ``fsc_cutoff`` outside [0.1, 1] is refused (v1.1 silently uses 0.143 instead).
* The band FSC of pass 1 is computed from the band-passed real-space maps (by Parseval equal
  to the sum over every Fourier voxel); the self-check FSC of the output uses the output's
  spectrum, i.e. the masked map low-passed (and sharpened) as written.
* "Recovery" is the fraction of core voxels assigned in pass 2.
* With over-fitting mitigation, the state machine is taken literally: the extra band ends
  the loop on its own stop test, which sets the stop resolution to its lower edge.
* The output's scale is v1.1's (arbitrary: not renormalised); FSC-based scores ignore it,
  real-space differences to a truth do not.

Cost (float32 / complex64, ``scipy.fft`` on every core, vectorised numba loops on one thread
for the voxels):
two forward transforms of the masked halves, two inverse transforms per band in each pass,
two forward transforms of the accumulators and one forward and one inverse for the output:
``4 · bands + 6`` transforms in all (:func:`minimum_fft_count`). Memory: about a dozen
box-sized float32 arrays at the peak of pass 1 (1.0 GiB at 256³, inputs included).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from baselines.lafter import kernels

log = logging.getLogger("baselines.lafter")

FIRST_BAND = (1e-10, 0.025)
"""The first band of pass 1, cycles per voxel."""
START_MAX_RES = 0.45
"""The band limit pass 1 starts with, cycles per voxel."""
CORE_LEVEL = 0.99
"""Voxels with mask values at or above this are the core, where statistics are taken."""
STEP_DIVISOR = 16.0
"""The next band of pass 1 is ``[hi, hi + meanP · hi / STEP_DIVISOR]``."""
MITIGATION_NARROW = 0.0625
"""With over-fitting mitigation, a stop in a band narrower than this appends one more band."""
MITIGATION_EDGE = 0.475
"""The appended band reaches ``max(MITIGATION_EDGE, hi + MITIGATION_NARROW)``."""
NOISE_EXCESS_FRACTION = 0.025
"""Over-fitting mitigation doubles the noise factor while more core voxels than this pass."""
SOFTEN_SWEEPS = 8
"""Sweeps of the softening that fills unassigned voxels from their neighbours."""
FSC_CUTOFF_RANGE = (0.1, 1.0)

_AXES = (0, 1, 2)


@dataclass
class Band:
    """One band of pass 1 and what each later step found for it.

    Attributes:
        lo, hi: the band's edges, cycles per voxel.
        fsc: the half-map FSC of the band-passed halves.
        cref: ``sqrt(|2 fsc / (1 + fsc)|)``, the FSC expected between the full map and
            the noise-free map.
        mean_prob: the mean probability of signal over the core ("MeanProb").
        appended: whether this is the band added by over-fitting mitigation.
        noise_max: pass 2's largest noise ``max (C1 - C2)²`` over the core at ``hi`` (before
            the noise factor).
        recovery: the fraction of core voxels assigned once pass 2 has seen this band.
        output_fsc: the self-check FSC between the output and ``V1 + V2`` (both masked).
    """

    lo: float
    hi: float
    fsc: float
    cref: float
    mean_prob: float
    appended: bool = False
    noise_max: float = math.nan
    recovery: float = math.nan
    output_fsc: float = math.nan


@dataclass
class LafterReport:
    """What one LAFTER run did: the self-check of the original, kept for the user.

    Attributes:
        bands: the bands of pass 1, in order.
        max_res: the stop resolution, cycles per voxel (the output's low-pass edge).
        noise_factor: pass 2's factor on the largest noise (1 without mitigation).
        recovery: the fraction of core voxels assigned by pass 2.
        self_check_rmsd: band-width-weighted RMSD between the bands' ``cref`` and
            ``output_fsc``.
        core_voxels: the number of core voxels (mask >= 0.99).
        voxel_size: the largest voxel edge, Å (for the Ångström figures).
    """

    bands: list[Band]
    max_res: float
    noise_factor: float
    recovery: float
    self_check_rmsd: float
    core_voxels: int
    voxel_size: float = 1.0
    fft_count: int = field(init=False)

    def __post_init__(self):
        self.fft_count = minimum_fft_count(len(self.bands))

    def resolution(self, frequency: float) -> float:
        """Ångström for a frequency in cycles per voxel (``inf`` at 0)."""
        return self.voxel_size / frequency if frequency > 0 else math.inf

    def summary(self) -> str:
        """One line: bands, stop resolution, recovery, self-check."""
        return (f"{len(self.bands)} bands, stop at {self.max_res:.4f} cycles/voxel "
                f"({self.resolution(self.max_res):.2f} Å), recovery {self.recovery:.3f}, "
                f"noise factor {self.noise_factor:g}, self-check RMSD {self.self_check_rmsd:.4f}")


def minimum_fft_count(n_bands: int) -> int:
    """The 3D transforms LAFTER needs for ``n_bands`` bands: ``4 · n_bands + 6``.

    Two forward transforms of the masked halves; per band two inverse transforms in pass 1
    (each half band-passed) and two in pass 2 (difference and sum low-passed); two forward
    transforms of the accumulators; one forward and one inverse for the output.
    """
    return 4 * n_bands + 6


def diameter_mask(shape: tuple[int, int, int], voxel_size, diameter: float) -> np.ndarray:
    """v1.1's mask for a particle diameter: ``1 / sqrt(1 + (d² / r²)⁴)``, ``r = diameter / 2``.

    Args:
        shape: the box ``(nz, ny, nx)``.
        voxel_size: Å per voxel, a scalar or ``(z, y, x)``.
        diameter: the particle diameter, Å.

    Returns:
        float32 array of ``shape``; ``d`` is the distance in Å to voxel ``(nz//2, ny//2, nx//2)``.

    Raises:
        ValueError: ``diameter`` is not a positive finite number.
    """
    check_diameter(diameter)
    steps = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,))
    r2 = (diameter / 2.0) ** 2
    axes = [((np.arange(n) - n // 2) * a) ** 2 / r2 for n, a in zip(shape, steps)]
    t = axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]
    t = t.astype(np.float32)
    t *= t
    t *= t
    t += np.float32(1.0)
    np.sqrt(t, out=t)
    return np.reciprocal(t, out=t)


def check_diameter(diameter) -> None:
    """Refuse a particle diameter that is not a positive finite number (of Å).

    Raises:
        ValueError: a boolean, a non-number, or a number that is not positive and finite.
    """
    if isinstance(diameter, bool) or not isinstance(diameter, int | float) \
            or not (math.isfinite(diameter) and diameter > 0):
        raise ValueError(f"particle_diameter must be a positive number of Å, got {diameter!r}")


def axis_frequencies(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squared frequencies per axis of an ``rfftn`` half-space, cycles² per voxel²:
    ``(kz/nz)²``, ``(ky/ny)²``, ``(kx/nx)²`` (float32), so that ``s²`` is their sum."""
    nz, ny, nx = shape
    return tuple((f ** 2).astype(np.float32)
                 for f in (np.fft.fftfreq(nz), np.fft.fftfreq(ny), np.fft.rfftfreq(nx)))


def _masked_spectrum(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    spectrum = scipy.fft.rfftn(data * mask, axes=_AXES, workers=-1)
    spectrum[0, 0, 0] = 0
    return spectrum


def inverse(spectrum: np.ndarray, shape) -> np.ndarray:
    """The real map of shape ``shape`` of an ``rfftn`` half-space; ``spectrum`` is overwritten."""
    return scipy.fft.irfftn(spectrum, s=shape, axes=_AXES, workers=-1, overwrite_x=True)


def _cref(f: float) -> float:
    return math.sqrt(abs(2.0 * f / (1.0 + f))) if f != -1.0 else math.inf


def suppress_noise(x1: np.ndarray, x2: np.ndarray, shape, core: np.ndarray, *,
                   fsc_cutoff: float, mitigate: bool = False, voxel_size: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray, list[Band], float]:
    """Pass 1: accumulate each half's bands, weighted by the probability of signal.

    Args:
        x1, x2: the halves' masked spectra (``rfftn`` half-spaces, DC 0).
        shape: the real-space box.
        core: boolean array of the core voxels (not empty).
        fsc_cutoff: stop in the first band whose FSC is below this.
        mitigate: over-fitting mitigation (one wide band appended at the stop).
        voxel_size: Å per voxel, for the log only.

    Returns:
        ``(a1, a2, bands, max_res)``: the accumulators (float32), the bands processed, and
        the stop resolution in cycles per voxel.
    """
    freqs = axis_frequencies(shape)
    n_core = int(np.count_nonzero(core))
    a1 = np.zeros(shape, dtype=np.float32)
    a2 = np.zeros(shape, dtype=np.float32)
    work = np.empty_like(x1)
    bands: list[Band] = []
    lo, hi = FIRST_BAND
    max_res = START_MAX_RES
    appended = False
    while True:
        kernels.filter_spectrum(x1, work, *freqs, lo, hi)
        b1 = inverse(work, shape)
        kernels.filter_spectrum(x2, work, *freqs, lo, hi)
        b2 = inverse(work, shape)
        s12, s11, s22, diff2, sum2 = kernels.pair_statistics(b1, b2, core)
        f = s12 / math.sqrt(s11 * s22) if s11 * s22 > 0 else math.nan
        noise, power = diff2 / n_core, sum2 / n_core
        mean_prob = 0.0
        if power > 0:
            q = abs(1.0 - noise / power)
            sigma = math.sqrt(2.0 * noise)
            scale = (hi - lo) / math.sqrt(power)
            mean_prob = kernels.accumulate_band(b1, b2, a1, a2, core, q, sigma, scale) / n_core
        del b1, b2
        band = Band(lo, hi, f, _cref(f), mean_prob, appended=appended)
        bands.append(band)
        log.info("band %d [%.4f, %.4f] cycles/voxel (%.2f Å): FSC %.4f, C_ref %.4f, MeanProb %.4f",
                 len(bands), lo, hi, voxel_size / hi, f, band.cref, mean_prob)
        if hi > max_res or not f >= fsc_cutoff:
            if mitigate and not appended and hi - lo < MITIGATION_NARROW:
                max_res = lo
                lo, hi = hi, hi + max(MITIGATION_EDGE - hi, MITIGATION_NARROW)
                appended = True
                continue
            max_res = lo
            break
        if not mean_prob > 0:
            log.warning("band [%.4f, %.4f]: no voxel of the core is signal (MeanProb %g); "
                        "stopping here", lo, hi, mean_prob)
            max_res = lo
            break
        lo, hi = hi, hi + mean_prob * hi / STEP_DIVISOR
    return a1, a2, bands, max_res


def truncate(lowpassed, core: np.ndarray, *, mitigate: bool = False
             ) -> tuple[np.ndarray, float, list[tuple[float, float]]]:
    """Pass 2: keep each voxel's sum at the highest resolution where it beats the noise.

    Args:
        lowpassed: an iterable of ``(difference, sum)`` real maps ``(C1 - C2, C1 + C2)``,
            from the highest low-pass edge to the lowest.
        core: boolean array of the core voxels (not empty).
        mitigate: over-fitting mitigation: at the first pair, the noise factor ``k`` doubles
            from 1 while more than 2.5 % of core voxels have ``sum² > k · noise_max``.

    Returns:
        ``(out, k, per_band)``: the truncated map (float32; 0 where never assigned), the
        noise factor, and per pair ``(noise_max, recovery)``.
    """
    n_core = int(np.count_nonzero(core))
    out = None
    k = 1.0
    per_band = []
    for difference, total in lowpassed:
        noise_max = kernels.core_max_square(difference, core)
        if out is None:
            out = np.zeros(total.shape, dtype=np.float32)
            if mitigate:
                allowed = NOISE_EXCESS_FRACTION * n_core
                if noise_max > 0:
                    while kernels.core_count_above(total, core, k * noise_max) > allowed:
                        k *= 2.0
                else:
                    log.warning("no noise in the core at the highest low-pass: "
                                "noise factor kept at 1")
        assigned = kernels.assign_above(total, out, core, k * noise_max)
        per_band.append((noise_max, assigned / n_core))
    return out, k, per_band


def soften(out: np.ndarray, sweeps: int = SOFTEN_SWEEPS) -> np.ndarray:
    """Fill voxels at 0 from their 6 face neighbours (periodic), ``sweeps`` times, each sweep
    reading the previous one's values; non-zero voxels keep their value. Returns the result
    (``out`` or a new array)."""
    other = np.empty_like(out)
    for _ in range(sweeps):
        kernels.soften_sweep(out, other)
        out, other = other, out
    return out


def _lowpassed_pairs(y_sum: np.ndarray, y_diff: np.ndarray, edges, shape):
    """``(IFFT(L_hi · y_diff), IFFT(L_hi · y_sum))`` for each ``hi`` of ``edges``."""
    freqs = axis_frequencies(shape)
    work = np.empty_like(y_sum)
    for hi in edges:
        kernels.filter_spectrum(y_diff, work, *freqs, 0.0, hi)
        difference = inverse(work, shape)
        kernels.filter_spectrum(y_sum, work, *freqs, 0.0, hi)
        yield difference, inverse(work, shape)


def lafter(half1: np.ndarray, half2: np.ndarray, mask: np.ndarray, *, fsc_cutoff: float = 0.143,
           sharpen: bool = False, mitigate: bool = False, voxel_size: float = 1.0
           ) -> tuple[np.ndarray, LafterReport]:
    """LAFTER v1.1 on arrays: the output's spectrum on the input grid and the run's report.

    Args:
        half1, half2: the half-maps, float32, one shape.
        mask: values in [0, 1], same shape, with at least one voxel >= 0.99 (checked by
            the caller).
        fsc_cutoff: the band FSC below which pass 1 stops.
        sharpen: multiply the output's spectrum by ``2^(8 s²)``.
        mitigate: v1.1's over-fitting mitigation.
        voxel_size: Å per voxel, for the log and the report's Ångström figures only.

    Returns:
        ``(spectrum, report)``: the output's ``rfftn`` half-space (complex64; invert it with
        ``irfftn(spectrum, s=half1.shape)``) and a :class:`LafterReport`.
    """
    with kernels.one_thread():
        return _lafter(half1, half2, mask, fsc_cutoff=fsc_cutoff, sharpen=sharpen,
                       mitigate=mitigate, voxel_size=voxel_size)


def _lafter(half1, half2, mask, *, fsc_cutoff, sharpen, mitigate, voxel_size):
    shape = half1.shape
    freqs = axis_frequencies(shape)
    core = mask >= CORE_LEVEL
    x1 = _masked_spectrum(half1, mask)
    x2 = _masked_spectrum(half2, mask)
    a1, a2, bands, max_res = suppress_noise(x1, x2, shape, core, fsc_cutoff=fsc_cutoff,
                                            mitigate=mitigate, voxel_size=voxel_size)
    x1 += x2  # the masked V1 + V2, kept for the self-check
    del x2
    a1 *= mask
    y_sum = scipy.fft.rfftn(a1, axes=_AXES, workers=-1)
    del a1
    a2 *= mask
    y_diff = scipy.fft.rfftn(a2, axes=_AXES, workers=-1)
    del a2
    y_sum[0, 0, 0] = y_diff[0, 0, 0] = 0
    y_sum += y_diff  # Y1 + Y2
    y_diff *= -2
    y_diff += y_sum  # Y1 - Y2
    his = [band.hi for band in reversed(bands)]
    pairs = _lowpassed_pairs(y_sum, y_diff, his, shape)
    out, k, per_band = truncate(pairs, core, mitigate=mitigate)
    del y_sum, y_diff
    for band, (noise_max, recovery) in zip(reversed(bands), per_band):
        band.noise_max, band.recovery = noise_max, recovery
        log.debug("low-pass %.4f cycles/voxel: largest noise %.4g, recovery %.4f",
                 band.hi, k * noise_max, recovery)
    out = soften(out)
    out *= mask
    spectrum = scipy.fft.rfftn(out, axes=_AXES, workers=-1)
    del out
    kernels.filter_spectrum(spectrum, spectrum, *freqs, 0.0, max_res)
    if sharpen:
        kernels.sharpen_spectrum(spectrum, *freqs)
    rmsd = _self_check(spectrum, x1, bands, shape)
    report = LafterReport(bands, max_res, k, per_band[-1][1], rmsd, int(np.count_nonzero(core)),
                          voxel_size)
    log.info("LAFTER: %s", report.summary())
    return spectrum, report


def _self_check(output: np.ndarray, average: np.ndarray, bands: list[Band], shape) -> float:
    """Fill each band's ``output_fsc`` and return the band-width-weighted RMSD to ``cref``."""
    edges = np.array([bands[0].lo] + [band.hi for band in bands], dtype=np.float64)
    sums = kernels.band_cross_sums(output, average, *axis_frequencies(shape), edges,
                                   shape[2] % 2 == 0)
    widths, squares = [], []
    for band, (cross, p_out, p_avg) in zip(bands, sums):
        band.output_fsc = cross / math.sqrt(p_out * p_avg) if p_out * p_avg > 0 else math.nan
        log.debug("self-check band [%.4f, %.4f]: C_ref %.4f, FSC(output, V1 + V2) %.4f",
                 band.lo, band.hi, band.cref, band.output_fsc)
        if math.isfinite(band.output_fsc) and math.isfinite(band.cref):
            widths.append(band.hi - band.lo)
            squares.append((band.cref - band.output_fsc) ** 2)
    if not widths:
        return math.nan
    return math.sqrt(float(np.dot(widths, squares)) / float(np.sum(widths)))


__all__ = ["Band", "LafterReport", "axis_frequencies", "check_diameter", "diameter_mask",
           "inverse", "lafter", "minimum_fft_count", "soften", "suppress_noise", "truncate"]
