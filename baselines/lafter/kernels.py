"""Compiled inner loops of the LAFTER reimplementation (numba), one pass over memory each.

Spectra are ``rfftn`` half-spaces ``(nz, ny, nx // 2 + 1)`` (complex64); frequencies are
given per axis as squared cycles per voxel (``fz[z]``, ``fy[y]``, ``fx[x]``, float32), so
that ``s² = fz[z] + fy[y] + fx[x]`` for any box. Sums are kept per z-plane in float64.

The loops are compiled as parallel loops (numba then marks the arrays as not aliased, which
lets LLVM vectorise them: 5 to 8 times faster than the same loops compiled serially) but
:func:`one_thread` runs them on one thread: they sit between multi-threaded FFTs that cost
several times as much, and on a shared 2-core machine two-thread loops waited on each other
(10 to 30 times slower than one thread) and slowed the FFTs that followed.

The voxel loops are written to vectorise: float32 arithmetic (the maps' own precision),
reassociation allowed, no branches in the inner loops (selects instead), and work that does
not vectorise (a table look-up) in a row loop of its own. ``erf`` is read from a table
(:data:`ERF_TABLE`, made with ``scipy.special.erf``) with linear interpolation: ``math.erf``
does not vectorise and took 90 % of pass 1's voxel loops; the table's error (below 1e-8) is
under the float32 rounding of the maps it is applied to.
"""

from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np
import scipy.special

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
ERF_RANGE = 6.0
"""erf(x) = 1 in float64 for x >= 6 (1 - 2e-17)."""
ERF_STEPS = 1 << 15
ERF_TABLE = scipy.special.erf(np.linspace(0.0, ERF_RANGE, ERF_STEPS + 1)).astype(np.float32)
"""erf at ``ERF_STEPS + 1`` equally spaced points of ``[0, ERF_RANGE]``."""
_CLAMP = np.float32(1e9)
"""``(s²/ρ²)`` is clamped here so that its fourth power stays finite in float32 (the
Butterworth value there, 1e-18, is 0 to float32 precision)."""


@contextmanager
def one_thread():
    """Run numba's parallel loops on the calling thread only, inside the ``with`` block."""
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@numba.njit(inline="always", fastmath=FASTMATH)
def _butterworth(s2, inverse_rho2):
    """``1 / sqrt(1 + (s² / ρ²)⁴)`` in float32, given ``1 / ρ²``."""
    t = min(s2 * inverse_rho2, _CLAMP)
    t *= t
    return np.float32(1.0) / np.sqrt(np.float32(1.0) + t * t)


def _inverse_square(rho: float) -> tuple[np.float32, np.float32]:
    """``(1 / ρ², 1)`` for ``ρ > 0``, ``(0, 0)`` otherwise (a Butterworth left out)."""
    return (np.float32(1.0 / (rho * rho)), np.float32(1.0)) if rho > 0 else (np.float32(0.0),
                                                                             np.float32(0.0))


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def _filter(src, dst, fz, fy, fx, inv_lo, use_lo, inv_hi):
    nz, ny, nxh = src.shape
    for z in numba.prange(nz):
        for y in range(ny):
            base = fz[z] + fy[y]
            for x in range(nxh):
                s2 = base + fx[x]
                w = _butterworth(s2, inv_hi) - use_lo * _butterworth(s2, inv_lo)
                dst[z, y, x] = src[z, y, x] * w


def filter_spectrum(src, dst, fz, fy, fx, lo: float, hi: float) -> None:
    """``dst = (L_hi - L_lo) · src``, with ``L_lo`` left out when ``lo <= 0`` (a low-pass).
    ``dst`` may be ``src``."""
    inv_lo, use_lo = _inverse_square(lo)
    _filter(src, dst, fz, fy, fx, inv_lo, use_lo, _inverse_square(hi)[0])


@numba.njit(parallel=True, cache=True)
def sharpen_spectrum(spectrum, fz, fy, fx):
    """``spectrum *= 2^(8 s²)`` in place."""
    nz, ny, nxh = spectrum.shape
    for z in numba.prange(nz):
        for y in range(ny):
            base = np.float64(fz[z]) + fy[y]
            for x in range(nxh):
                spectrum[z, y, x] *= np.float32(2.0 ** (8.0 * (base + fx[x])))


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


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def _accumulate(b1, b2, a1, a2, core, q, inverse_sigma, scale, table):
    nz, ny, nx = b1.shape
    partial = np.zeros(nz, dtype=np.float64)
    to_index = inverse_sigma * np.float32(ERF_STEPS / ERF_RANGE)
    top = np.float32(ERF_STEPS)
    one, zero, infinity = np.float32(1.0), np.float32(0.0), np.float32(np.inf)
    for z in numba.prange(nz):
        e = np.empty(nx, dtype=np.float32)
        acc = 0.0
        for y in range(ny):
            for x in range(nx):  # erf(|b1 + b2| / σ): a table look-up, kept apart
                t = min(abs(b1[z, y, x] + b2[z, y, x]) * to_index, top)
                i = min(int(t), ERF_STEPS - 1)
                e[x] = table[i] + (table[i + 1] - table[i]) * (t - np.float32(i))
            row = zero
            for x in range(nx):
                num = e[x] * q
                den = num + (one - e[x]) * (one - q)
                p = num / (den if den != zero else infinity)
                a1[z, y, x] += b1[z, y, x] * (p * scale)
                a2[z, y, x] += b2[z, y, x] * (p * scale)
                row += p if core[z, y, x] else zero
            acc += row
        partial[z] = acc
    return partial.sum()


def accumulate_band(b1, b2, a1, a2, core, q: float, sigma: float, scale: float) -> float:
    """Add one band to the accumulators: ``a_i += b_i · p · scale`` with the probability of
    signal ``p = e·q / (e·q + (1 - e)(1 - q))``, ``e = erf(|b1 + b2| / σ)`` (``e = 1`` where
    ``b1 + b2 != 0`` if ``σ = 0``; ``p = 0`` where the denominator is 0). Returns ``Σ p`` over
    the core voxels."""
    inverse_sigma = np.float32(1.0 / sigma) if sigma > 0 else np.float32(np.finfo(np.float32).max)
    return _accumulate(b1, b2, a1, a2, core, np.float32(q), inverse_sigma, np.float32(scale),
                       ERF_TABLE)


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
def _band_cross_sums(f, g, fz, fy, fx, inverse_edges, nx_even):
    nz, ny, nxh = f.shape
    n_bands = inverse_edges.shape[0] - 1
    partial = np.zeros((nz, n_bands, 3), dtype=np.float64)
    for z in numba.prange(nz):
        acc = partial[z]
        fg = np.empty(nxh, dtype=np.float32)
        ff = np.empty(nxh, dtype=np.float32)
        gg = np.empty(nxh, dtype=np.float32)
        lower = np.empty(nxh, dtype=np.float32)
        s2 = np.empty(nxh, dtype=np.float32)
        for y in range(ny):
            base = fz[z] + fy[y]
            for x in range(nxh):
                friedel = np.float32(1.0 if x == 0 or (nx_even and x == nxh - 1) else 2.0)
                a = f[z, y, x]
                b = g[z, y, x]
                fg[x] = friedel * (a.real * b.real + a.imag * b.imag)
                ff[x] = friedel * (a.real * a.real + a.imag * a.imag)
                gg[x] = friedel * (b.real * b.real + b.imag * b.imag)
                s2[x] = base + fx[x]
                lower[x] = _butterworth(s2[x], inverse_edges[0])
            for band in range(n_bands):
                inv_hi = inverse_edges[band + 1]
                sum_fg = sum_ff = sum_gg = np.float32(0.0)
                for x in range(nxh):
                    upper = _butterworth(s2[x], inv_hi)
                    w = upper - lower[x]
                    w2 = w * w
                    sum_fg += w2 * fg[x]
                    sum_ff += w2 * ff[x]
                    sum_gg += w2 * gg[x]
                    lower[x] = upper
                acc[band, 0] += sum_fg
                acc[band, 1] += sum_ff
                acc[band, 2] += sum_gg
    return partial.sum(axis=0)


def band_cross_sums(f, g, fz, fy, fx, edges, nx_even: bool):
    """Per band ``b`` between ``edges[b]`` and ``edges[b + 1]`` (all > 0; band-pass weight
    ``w = L_hi - L_lo``): ``Σ w² Re(f g*), Σ w² |f|², Σ w² |g|²`` over the full transform
    (Friedel-weighted half-space; float32 within a row, float64 across rows). Returns float64
    ``(len(edges) - 1, 3)``."""
    inverse_edges = (1.0 / np.asarray(edges, dtype=np.float64) ** 2).astype(np.float32)
    return _band_cross_sums(f, g, fz, fy, fx, inverse_edges, bool(nx_even))
