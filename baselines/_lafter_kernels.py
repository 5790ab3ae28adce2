"""Compiled inner loops of the LAFTER reimplementation (numba), one pass over memory each.

Spectra are ``rfftn`` half-spaces ``(nz, ny, nx // 2 + 1)`` (complex64); frequencies are
given per axis as squared cycles per voxel (``fz[z]``, ``fy[y]``, ``fx[x]``), so that
``s² = fz[z] + fy[y] + fx[x]`` for any box. Sums are kept per z-plane in float64 and added
at the end, so results do not depend on how the planes are shared among threads. The
loops allow reassociation (vectorised sums) but keep IEEE handling of inf and NaN.

``erf`` is read from a table (:data:`ERF_TABLE`, made with ``scipy.special.erf``) with linear
interpolation: ``math.erf`` does not vectorise and took 90 % of pass 1's voxel loops; the
table's error (below 1e-8) is under the float32 rounding of the maps it is applied to.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import scipy.special

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
ERF_RANGE = 6.0
"""erf(x) = 1 in float64 for x >= 6 (1 - 2e-17)."""
ERF_STEPS = 1 << 15
ERF_TABLE = scipy.special.erf(np.linspace(0.0, ERF_RANGE, ERF_STEPS + 1))
"""erf at ``ERF_STEPS + 1`` equally spaced points of ``[0, ERF_RANGE]``."""


@numba.njit(inline="always", fastmath=FASTMATH)
def _butterworth(s2, rho):
    """``1 / sqrt(1 + (s² / ρ²)⁴)``; 0 for ``ρ <= 0``."""
    if rho <= 0.0:
        return 0.0
    t = s2 / (rho * rho)
    t *= t
    return 1.0 / math.sqrt(1.0 + t * t)


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def filter_spectrum(src, dst, fz, fy, fx, lo, hi, sharpen):
    """``dst = (L_hi - L_lo) · src`` (``L_lo`` left out when ``lo <= 0``), times ``2^(8 s²)``
    when ``sharpen``. ``dst`` may be ``src``."""
    nz, ny, nxh = src.shape
    for z in numba.prange(nz):
        for y in range(ny):
            base = fz[z] + fy[y]
            for x in range(nxh):
                s2 = base + fx[x]
                w = _butterworth(s2, hi) - _butterworth(s2, lo)
                if sharpen:
                    w *= 2.0 ** (8.0 * s2)
                dst[z, y, x] = src[z, y, x] * np.float32(w)


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def pair_statistics(b1, b2, core):
    """Sums of one band's pair: ``Σ b1·b2, Σ b1², Σ b2²`` over the box, then
    ``Σ (b1 - b2)², Σ (b1 + b2)²`` over the core voxels. Returns float64 ``(5,)``."""
    nz, ny, nx = b1.shape
    partial = np.zeros((nz, 5), dtype=np.float64)
    for z in numba.prange(nz):
        s12 = s11 = s22 = dd = ss = 0.0
        for y in range(ny):
            for x in range(nx):
                u = np.float64(b1[z, y, x])
                v = np.float64(b2[z, y, x])
                s12 += u * v
                s11 += u * u
                s22 += v * v
                c = 1.0 if core[z, y, x] else 0.0
                dd += c * (u - v) * (u - v)
                ss += c * (u + v) * (u + v)
        partial[z, 0] = s12
        partial[z, 1] = s11
        partial[z, 2] = s22
        partial[z, 3] = dd
        partial[z, 4] = ss
    return partial.sum(axis=0)


@numba.njit(inline="always", fastmath=FASTMATH)
def _erf_positive(x, table):
    """erf(x) for ``x >= 0`` by linear interpolation in ``table`` (:data:`ERF_TABLE`)."""
    u = x * (ERF_STEPS / ERF_RANGE)
    if u >= ERF_STEPS:
        return table[ERF_STEPS]
    i = int(u)
    return table[i] + (table[i + 1] - table[i]) * (u - i)


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def accumulate_band(b1, b2, a1, a2, core, q, sigma, scale, table):
    """Add one band to the accumulators: ``a_i += b_i · p · scale`` with the probability of
    signal ``p = e·q / (e·q + (1 - e)(1 - q))``, ``e = erf(|b1 + b2| / σ)`` (0 where the
    denominator is 0; ``table`` is :data:`ERF_TABLE`). Returns ``Σ p`` over the core voxels."""
    nz, ny, nx = b1.shape
    partial = np.zeros(nz, dtype=np.float64)
    for z in numba.prange(nz):
        acc = 0.0
        for y in range(ny):
            for x in range(nx):
                u = np.float64(b1[z, y, x])
                v = np.float64(b2[z, y, x])
                total = abs(u + v)
                if sigma > 0.0:
                    e = _erf_positive(total / sigma, table)
                else:
                    e = 1.0 if total > 0.0 else 0.0
                num = e * q
                den = num + (1.0 - e) * (1.0 - q)
                p = num / den if den != 0.0 else 0.0
                a1[z, y, x] += np.float32(u * p * scale)
                a2[z, y, x] += np.float32(v * p * scale)
                acc += p if core[z, y, x] else 0.0
        partial[z] = acc
    return partial.sum()


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def core_max_square(d, core):
    """``max d²`` over the core voxels (0 when there are none)."""
    nz, ny, nx = d.shape
    partial = np.zeros(nz, dtype=np.float64)
    for z in numba.prange(nz):
        best = 0.0
        for y in range(ny):
            for x in range(nx):
                v = np.float64(d[z, y, x])
                best = max(best, v * v if core[z, y, x] else 0.0)
        partial[z] = best
    return partial.max()


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def core_count_above(s, core, threshold):
    """The number of core voxels with ``s² > threshold``."""
    nz, ny, nx = s.shape
    partial = np.zeros(nz, dtype=np.int64)
    for z in numba.prange(nz):
        count = 0
        for y in range(ny):
            for x in range(nx):
                v = np.float64(s[z, y, x])
                if core[z, y, x] and v * v > threshold:
                    count += 1
        partial[z] = count
    return partial.sum()


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def assign_above(s, out, core, threshold):
    """``out = s`` wherever ``out == 0`` and ``s² > threshold``. Returns the number of core
    voxels of ``out`` that are non-zero afterwards."""
    nz, ny, nx = s.shape
    partial = np.zeros(nz, dtype=np.int64)
    for z in numba.prange(nz):
        count = 0
        for y in range(ny):
            for x in range(nx):
                if out[z, y, x] == 0.0:
                    v = s[z, y, x]
                    if np.float64(v) * v > threshold:
                        out[z, y, x] = v
                if core[z, y, x] and out[z, y, x] != 0.0:
                    count += 1
        partial[z] = count
    return partial.sum()


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def soften_sweep(src, dst):
    """One sweep: every voxel of ``src`` at 0 becomes the mean of its 6 face neighbours
    (periodic box), the others keep their value; written to ``dst``."""
    nz, ny, nx = src.shape
    for z in numba.prange(nz):
        zm = z - 1 if z > 0 else nz - 1
        zp = z + 1 if z < nz - 1 else 0
        for y in range(ny):
            ym = y - 1 if y > 0 else ny - 1
            yp = y + 1 if y < ny - 1 else 0
            for x in range(nx):
                v = src[z, y, x]
                if v != 0.0:
                    dst[z, y, x] = v
                    continue
                xm = x - 1 if x > 0 else nx - 1
                xp = x + 1 if x < nx - 1 else 0
                total = (np.float64(src[zm, y, x]) + src[zp, y, x] + src[z, ym, x]
                         + src[z, yp, x] + src[z, y, xm] + src[z, y, xp])
                dst[z, y, x] = np.float32(total / 6.0)


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def band_cross_sums(f, g, fz, fy, fx, edges, nx_even):
    """Per band ``b`` between ``edges[b]`` and ``edges[b + 1]`` (band-pass weight
    ``w = L_hi - L_lo``): ``Σ w² Re(f g*), Σ w² |f|², Σ w² |g|²`` over the full transform
    (Friedel-weighted half-space). Returns float64 ``(len(edges) - 1, 3)``."""
    nz, ny, nxh = f.shape
    n_bands = edges.shape[0] - 1
    partial = np.zeros((nz, n_bands, 3), dtype=np.float64)
    for z in numba.prange(nz):
        acc = partial[z]
        for y in range(ny):
            base = fz[z] + fy[y]
            for x in range(nxh):
                s2 = base + fx[x]
                friedel = 1.0 if (x == 0 or (nx_even and x == nxh - 1)) else 2.0
                a = f[z, y, x]
                b = g[z, y, x]
                fg = np.float64(a.real) * b.real + np.float64(a.imag) * b.imag
                ff = np.float64(a.real) * a.real + np.float64(a.imag) * a.imag
                gg = np.float64(b.real) * b.real + np.float64(b.imag) * b.imag
                lower = _butterworth(s2, edges[0])
                for band in range(n_bands):
                    upper = _butterworth(s2, edges[band + 1])
                    w2 = friedel * (upper - lower) * (upper - lower)
                    acc[band, 0] += w2 * fg
                    acc[band, 1] += w2 * ff
                    acc[band, 2] += w2 * gg
                    lower = upper
    return partial.sum(axis=0)
