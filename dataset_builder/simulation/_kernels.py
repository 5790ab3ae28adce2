"""Compiled inner loop of the particle simulation (numba): slices, CTF, noise and gridding.

Every grid is the ``rfftn`` half-space ``(L, L, L // 2 + 1)`` of an oversampled, centred box
(``L = pad N``, index 0 of every axis at the particle centre); a point with ``x < 0`` is
used as its Friedel mate ``-q``. A particle contributes one member of every Friedel pair
of its image, listed as integer frequencies ``(kx, ky)`` (see :mod:`..particles`).

:func:`simulate_insert` handles one batch of particles. Each image point ``q`` (taken as
``±q`` so that its x component is >= 0, which only exchanges a noise draw for its conjugate,
of the same distribution) is read from the specimen's transform, multiplied by the CTF,
given noise, and added to the numerator and weight grids with the same trilinear weights it
was read with. To keep memory access local the points of the batch are first sorted by
slab (two ``y`` planes of the grid); slabs are then processed in two phases, even then odd,
by parallel threads, so no two threads ever write one voxel, and every voxel receives its
contributions in one fixed order: the sums do not depend on the number of threads.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _interpolate(grid, px, py, pz):
    """Trilinear value ``(re, im)`` of a half-space grid at ``(px, py, pz)`` (grid units,
    any sign); ``grid`` is the complex grid viewed as float32 ``(L, L, 2 (L/2 + 1))``."""
    sign = np.float32(1.0)
    if px < 0.0:
        px, py, pz = -px, -py, -pz
        sign = np.float32(-1.0)
    lz, ly = grid.shape[0], grid.shape[1]
    fx0, fy0, fz0 = np.floor(px), np.floor(py), np.floor(pz)
    fx, fy, fz = np.float32(px - fx0), np.float32(py - fy0), np.float32(pz - fz0)
    x0, y0, z0 = 2 * int(fx0), int(fy0), int(fz0)
    if y0 < 0:
        y0 += ly
    if z0 < 0:
        z0 += lz
    y1 = y0 + 1 if y0 + 1 < ly else 0
    z1 = z0 + 1 if z0 + 1 < lz else 0
    one = np.float32(1.0)
    gx, gy, gz = one - fx, one - fy, one - fz
    re = np.float32(0.0)
    im = np.float32(0.0)
    for z, wz in ((z0, gz), (z1, fz)):
        for y, wy in ((y0, gy), (y1, fy)):
            row = grid[z, y]
            w0 = wz * wy * gx
            w1 = wz * wy * fx
            re += w0 * row[x0] + w1 * row[x0 + 2]
            im += w0 * row[x0 + 1] + w1 * row[x0 + 3]
    return re, sign * im


@numba.njit(inline="always")
def _slice_point(r, kx, ky):
    """``q = kx R[0] + ky R[1]``, negated if needed so that its x component is >= 0."""
    qx = kx * r[0, 0] + ky * r[1, 0]
    qy = kx * r[0, 1] + ky * r[1, 1]
    qz = kx * r[0, 2] + ky * r[1, 2]
    if qx < 0.0:
        return -qx, -qy, -qz
    return qx, qy, qz


@numba.njit(parallel=True, cache=True)
def simulate_insert(core, domain, numerator, weight, rotations, domain_rotations,
                    domain_shifts, defocus, noise, kx, ky, chi_a, chi_b, envelope, pad,
                    use_ctf, noise_sigma):
    """Simulate a batch of particles and grid them (module docstring).

    Complex grids are passed as float32 views (``re, im`` interleaved along x).

    Args:
        core: transform of the rigid specimen (or of its core), ``(L, L, 2 (L/2 + 1))``.
        domain: transform of the flexible domain centred on its pivot, or any array of
            shape ``(1, 1, 1)`` for a rigid specimen.
        numerator: grid the shape of ``core``; ``CTF · image`` is added.
        weight: float32 ``(L, L, L/2 + 1)``; ``CTF²`` is added.
        rotations: ``(B, 3, 3)``: image point ``(kx, ky)`` is the specimen's ``kx R[0] + ky R[1]``.
        domain_rotations: ``(B, 3, 3)`` domain rotations ``Q`` (the domain is read at ``Qᵀ q``).
        domain_shifts: ``(B, 3)`` pivot plus translation of the domain, voxels from the
            centre, ``(x, y, z)``.
        defocus: ``(B,)`` Å.
        noise: ``(B · M, 2)`` float32 standard normals (real, imaginary), used in the order
            the points are processed (not read when ``noise_sigma`` is 0).
        kx, ky: ``(M,)`` float64 image frequencies, inside the Nyquist circle.
        chi_a, chi_b: ``(M,)``: ``χ + arcsin A = chi_a · defocus − chi_b``.
        envelope: ``(M,)`` CTF envelope.
        pad: grid points per image frequency step (``L / N``).
        use_ctf: False for CTF = 1.
        noise_sigma: noise amplitude per real and per imaginary part.
    """
    n_particles, n_points = rotations.shape[0], kx.shape[0]
    lz, ly = numerator.shape[0], numerator.shape[1]
    n_box = ly / pad
    n_slabs = ly // 2
    flexible = domain.shape[0] > 1
    sigma = np.float32(noise_sigma)

    slab = np.empty((n_particles, n_points), np.int32)
    counts = np.zeros((n_particles, n_slabs), np.int64)
    for p in numba.prange(n_particles):
        for m in range(n_points):
            _, qy, _ = _slice_point(rotations[p], kx[m], ky[m])
            y0 = int(np.floor(pad * qy))
            if y0 < 0:
                y0 += ly
            s = y0 // 2
            slab[p, m] = s
            counts[p, s] += 1
    start = np.empty((n_slabs + 1, n_particles), np.int64)
    total = 0
    for s in range(n_slabs):
        for p in range(n_particles):
            start[s, p] = total
            total += counts[p, s]
    start[n_slabs, 0] = total
    order_p = np.empty(total, np.int32)
    order_m = np.empty(total, np.int32)
    for p in numba.prange(n_particles):
        cursor = start[:n_slabs, p].copy()
        for m in range(n_points):
            s = slab[p, m]
            order_p[cursor[s]] = p
            order_m[cursor[s]] = m
            cursor[s] += 1

    one = np.float32(1.0)
    for phase in range(2):
        for half in numba.prange(n_slabs // 2):
            s = 2 * half + phase
            for k in range(start[s, 0], start[s + 1, 0]):
                p = order_p[k]
                m = order_m[k]
                qx, qy, qz = _slice_point(rotations[p], kx[m], ky[m])
                px, py, pz = pad * qx, pad * qy, pad * qz
                fx0, fy0, fz0 = np.floor(px), np.floor(py), np.floor(pz)
                fx = np.float32(px - fx0)
                fy = np.float32(py - fy0)
                fz = np.float32(pz - fz0)
                x0, y0, z0 = int(fx0), int(fy0), int(fz0)
                if y0 < 0:
                    y0 += ly
                if z0 < 0:
                    z0 += lz
                y1 = y0 + 1 if y0 + 1 < ly else 0
                z1 = z0 + 1 if z0 + 1 < lz else 0
                gx, gy, gz = one - fx, one - fy, one - fz
                x0 *= 2
                # Trilinear weights of the 8 neighbours, by (z, y) row and x.
                rows = ((z0, y0, gz * gy), (z0, y1, gz * fy), (z1, y0, fz * gy), (z1, y1, fz * fy))
                re = np.float32(0.0)
                im = np.float32(0.0)
                for z, y, wzy in rows:
                    row = core[z, y]
                    w0 = wzy * gx
                    w1 = wzy * fx
                    re += w0 * row[x0] + w1 * row[x0 + 2]
                    im += w0 * row[x0 + 1] + w1 * row[x0 + 3]
                if flexible:
                    q = domain_rotations[p]
                    dx = q[0, 0] * qx + q[1, 0] * qy + q[2, 0] * qz
                    dy = q[0, 1] * qx + q[1, 1] * qy + q[2, 1] * qz
                    dz = q[0, 2] * qx + q[1, 2] * qy + q[2, 2] * qz
                    t = domain_shifts[p]
                    angle = -2.0 * np.pi * (qx * t[0] + qy * t[1] + qz * t[2]) / n_box
                    d_re, d_im = _interpolate(domain, pad * dx, pad * dy, pad * dz)
                    c, sn = np.float32(np.cos(angle)), np.float32(np.sin(angle))
                    re += c * d_re - sn * d_im
                    im += sn * d_re + c * d_im
                ctf = one
                if use_ctf:
                    ctf = np.float32(-np.sin(chi_a[m] * defocus[p] - chi_b[m]) * envelope[m])
                v_re = ctf * ctf * re
                v_im = ctf * ctf * im
                if sigma > 0:
                    v_re += ctf * sigma * noise[k, 0]
                    v_im += ctf * sigma * noise[k, 1]
                c2 = ctf * ctf
                for z, y, wzy in rows:
                    row = numerator[z, y]
                    w0 = wzy * gx
                    w1 = wzy * fx
                    row[x0] += w0 * v_re
                    row[x0 + 1] += w0 * v_im
                    row[x0 + 2] += w1 * v_re
                    row[x0 + 3] += w1 * v_im
                    wrow = weight[z, y]
                    wrow[x0 // 2] += w0 * c2
                    wrow[x0 // 2 + 1] += w1 * c2
