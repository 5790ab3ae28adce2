"""Compiled inner loops of the particle simulation (numba, ``nogil``): slices, noise, gridding.

Every grid is the ``rfftn`` half-space ``(L, L, L // 2 + 1)`` of an oversampled, centred box
(``L = pad N``, index 0 of every axis at the particle centre); a point with ``x < 0`` is
used as its Friedel mate ``-q``. A particle contributes one member of every Friedel pair
of its image, listed as integer frequencies ``(kx, ky)`` (see :mod:`..particles`).

A batch of particles is gridded in three steps, each a loop the caller may split among
threads (:func:`..particles.add_particles` does):

1. :func:`tile_points`: the tile of every image point ``q`` (taken as ``±q`` so that its x
   component is >= 0, which only exchanges a noise draw for its conjugate, of the same
   distribution). A tile is two ``y`` planes by about :data:`TILE_Z` ``z`` planes of the
   grid (all ``x``): what it reads and writes stays in a core's cache.
2. :func:`order_points`: the points listed tile by tile, and within a tile by particle, then
   by image point (a counting sort; ``offsets`` from the per-particle counts).
3. :func:`insert_tiles`: each point of the given tiles is read from the specimen's
   transform, multiplied by the CTF, given noise, and added to the numerator and weight
   grids with the same trilinear weights it was read with. A point writes its tile and the
   next one along ``y`` and ``z``, so tiles are processed in four phases by the parity of
   their ``(y, z)`` tile indices: no two tiles of one phase write one voxel, and every voxel
   receives its contributions in one fixed order, so the sums do not depend on the threads.
"""

from __future__ import annotations

import numba
import numpy as np

TILE_Z = 16
"""Target tile depth along z, grid planes."""


def tile_counts(size: int) -> tuple[int, int, np.ndarray]:
    """The tiling of an ``L``-point grid: ``(tiles_y, tiles_z, tile_of_z)``.

    Tiles are 2 planes along ``y``; along ``z``, plane ``z`` is in tile
    ``tile_of_z[z] = z · tiles_z // L`` (each tile one plane or more). Both counts are even,
    so the last tile, which writes plane 0 as the next plane of plane ``L - 1``, has the
    other parity than tile 0.

    Raises:
        ValueError: ``L`` is not a multiple of 4.
    """
    if size % 4:
        raise ValueError(f"the oversampled grid's edge must be a multiple of 4, got {size}")
    tiles_z = 2 * max(1, round(size / (2 * TILE_Z)))
    return size // 2, tiles_z, np.arange(size, dtype=np.int64) * tiles_z // size


@numba.njit(inline="always")
def _slice_point(r, kx, ky):
    """``q = kx R[0] + ky R[1]``, negated if needed so that its x component is >= 0."""
    qx = kx * r[0, 0] + ky * r[1, 0]
    qy = kx * r[0, 1] + ky * r[1, 1]
    qz = kx * r[0, 2] + ky * r[1, 2]
    if qx < 0.0:
        return -qx, -qy, -qz
    return qx, qy, qz


@numba.njit(nogil=True, cache=True)
def tile_points(rotations, kx, ky, pad, tiles_z, tiles, counts):
    """Step 1 for some particles: ``tiles[p, m]`` and ``counts[p, t]`` (added to).

    Args:
        rotations: ``(P, 3, 3)`` rotations of these particles.
        kx, ky: ``(M,)`` float64 image frequencies.
        pad: grid points per image frequency step.
        tiles_z: int64 ``(L,)``: the tile index along z of each plane (:func:`tile_counts`).
        tiles: ``(P, M)`` int32, filled.
        counts: ``(P, T)`` int32 zeros, filled with the points per tile.
    """
    size = tiles_z.shape[0]
    n_tiles_z = tiles_z[size - 1] + 1
    for p in range(rotations.shape[0]):
        for m in range(kx.shape[0]):
            _, qy, qz = _slice_point(rotations[p], kx[m], ky[m])
            y0 = int(np.floor(pad * qy))
            if y0 < 0:
                y0 += size
            z0 = int(np.floor(pad * qz))
            if z0 < 0:
                z0 += size
            t = (y0 // 2) * n_tiles_z + tiles_z[z0]
            tiles[p, m] = t
            counts[p, t] += 1


@numba.njit(nogil=True, cache=True)
def order_points(tiles, offsets, first, n_particles, order_p, order_m):
    """Step 2 for particles ``first .. first + len(tiles) - 1`` of the batch.

    Args:
        tiles: ``(P, M)`` tiles of these particles (:func:`tile_points`).
        offsets: int64 ``(T · B + 1,)``: where the points of (tile ``t``, particle ``p``)
            start in the order, at ``t · B + p`` (the exclusive cumulative sum of the counts,
            tile-major); ``B`` is ``n_particles``.
        first: the batch index of the first of these particles.
        n_particles: ``B``, particles in the batch.
        order_p, order_m: int32, the particle and point of each position, filled.
    """
    n_tiles = (offsets.shape[0] - 1) // n_particles
    cursor = np.empty(n_tiles, np.int64)
    for i in range(tiles.shape[0]):
        p = first + i
        for t in range(n_tiles):
            cursor[t] = offsets[t * n_particles + p]
        for m in range(tiles.shape[1]):
            t = tiles[i, m]
            order_p[cursor[t]] = p
            order_m[cursor[t]] = m
            cursor[t] += 1


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


@numba.njit(nogil=True, cache=True)
def insert_tiles(selected, bounds, order_p, order_m, core, domain, numerator, weight,
                 rotations, domain_rotations, domain_shifts, ctf, noise, kx, ky, pad,
                 noise_sigma):
    """Step 3 for some tiles: simulate their points and grid them (module docstring).

    Complex grids are passed as float32 views (``re, im`` interleaved along x).

    Args:
        selected: int64 tile ids, none of which writes a voxel another thread's tiles write.
        bounds: int64 ``(T + 1,)``: the points of tile ``t`` are positions
            ``bounds[t] .. bounds[t + 1] - 1`` of the order.
        order_p, order_m: the particle and image point at each position (:func:`order_points`).
        core: transform of the rigid specimen (or of its core), ``(L, L, 2 (L/2 + 1))``.
        domain: transform of the flexible domain centred on its pivot, or any array of
            shape ``(1, 1, 1)`` for a rigid specimen.
        numerator: grid the shape of ``core``; ``CTF · image`` is added.
        weight: float32 ``(L, L, L/2 + 1)``; ``CTF²`` is added.
        rotations: ``(B, 3, 3)``: image point ``(kx, ky)`` is the specimen's ``kx R[0] + ky R[1]``.
        domain_rotations: ``(B, 3, 3)`` domain rotations ``Q`` (the domain is read at ``Qᵀ q``).
        domain_shifts: ``(B, 3)`` pivot plus translation of the domain, voxels from the
            centre, ``(x, y, z)``.
        ctf: float32 ``(B, M)`` CTF of every point of every particle.
        noise: ``(positions, 2)`` float32 standard normals (real, imaginary) by position in
            the order (not read when ``noise_sigma`` is 0).
        kx, ky: ``(M,)`` float64 image frequencies, inside the Nyquist circle.
        pad: grid points per image frequency step (``L / N``).
        noise_sigma: noise amplitude per real and per imaginary part.
    """
    lz, ly, row = numerator.shape[0], numerator.shape[1], numerator.shape[2]
    n_box = ly / pad
    flexible = domain.shape[0] > 1
    sigma = np.float32(noise_sigma)
    one = np.float32(1.0)
    # Flat views and unsigned offsets: no row views, no negative-index checks.
    core_flat, numerator_flat, weight_flat = core.ravel(), numerator.ravel(), weight.ravel()
    u1, u2, u3, half_row = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(row // 2)
    for t in selected:
        for k in range(bounds[t], bounds[t + 1]):
            p = order_p[k]
            m = order_m[k]
            qx, qy, qz = _slice_point(rotations[p], kx[m], ky[m])
            px, py, pz = pad * qx, pad * qy, pad * qz
            fx0, fy0, fz0 = np.floor(px), np.floor(py), np.floor(pz)
            fx = np.float32(px - fx0)
            fy = np.float32(py - fy0)
            fz = np.float32(pz - fz0)
            x0, y0, z0 = np.uint64(fx0), int(fy0), int(fz0)
            if y0 < 0:
                y0 += ly
            if z0 < 0:
                z0 += lz
            y1 = y0 + 1 if y0 + 1 < ly else 0
            z1 = z0 + 1 if z0 + 1 < lz else 0
            gx, gy, gz = one - fx, one - fy, one - fz
            # The 4 (z, y) rows of the 8 neighbours (row index, weight); x0 and x0 + 1 each.
            rows = ((np.uint64(z0 * ly + y0), gz * gy), (np.uint64(z0 * ly + y1), gz * fy),
                    (np.uint64(z1 * ly + y0), fz * gy), (np.uint64(z1 * ly + y1), fz * fy))
            re = np.float32(0.0)
            im = np.float32(0.0)
            for r, wzy in rows:
                at = r * np.uint64(row) + u2 * x0
                w0 = wzy * gx
                w1 = wzy * fx
                re += w0 * core_flat[at] + w1 * core_flat[at + u2]
                im += w0 * core_flat[at + u1] + w1 * core_flat[at + u3]
            if flexible:
                q = domain_rotations[p]
                dx = q[0, 0] * qx + q[1, 0] * qy + q[2, 0] * qz
                dy = q[0, 1] * qx + q[1, 1] * qy + q[2, 1] * qz
                dz = q[0, 2] * qx + q[1, 2] * qy + q[2, 2] * qz
                s = domain_shifts[p]
                angle = -2.0 * np.pi * (qx * s[0] + qy * s[1] + qz * s[2]) / n_box
                d_re, d_im = _interpolate(domain, pad * dx, pad * dy, pad * dz)
                c, sn = np.float32(np.cos(angle)), np.float32(np.sin(angle))
                re += c * d_re - sn * d_im
                im += sn * d_re + c * d_im
            c = ctf[p, m]
            c2 = c * c
            v_re = c2 * re
            v_im = c2 * im
            if sigma > 0:
                v_re += c * sigma * noise[k, 0]
                v_im += c * sigma * noise[k, 1]
            for r, wzy in rows:
                at = r * np.uint64(row) + u2 * x0
                w0 = wzy * gx
                w1 = wzy * fx
                numerator_flat[at] += w0 * v_re
                numerator_flat[at + u1] += w0 * v_im
                numerator_flat[at + u2] += w1 * v_re
                numerator_flat[at + u3] += w1 * v_im
                at = r * half_row + x0
                weight_flat[at] += w0 * c2
                weight_flat[at + u1] += w1 * c2


@numba.njit(nogil=True, cache=True)
def shell_sums(shells, values, bins):
    """``Σ values`` per shell index (float64 ``(bins,)``), as ``np.bincount`` without its
    copies; ``shells`` int16, ``values`` float32 of the same shape (C-contiguous)."""
    out = np.zeros(bins, np.float64)
    flat_shells, flat_values = shells.ravel(), values.ravel()
    for i in range(flat_shells.shape[0]):
        out[flat_shells[i]] += flat_values[i]
    return out


@numba.njit(nogil=True, cache=True)
def divide_weights(numerator, weight, whiten, lam, map_shell, floor, pad_shell, out):
    """``out = numerator · φ / max(weight + λ[map shell], floor[radius])`` voxel by voxel
    (0 where that is 0); ``φ = whiten``, or 1 when ``whiten`` is empty. ``numerator`` and
    ``out`` are complex grids viewed as float32 ``(..., 2)``; the others C-contiguous of the
    weight's shape but ``lam`` and ``floor`` (per shell)."""
    num, w, ms, ps, o = (numerator.ravel(), weight.ravel(), map_shell.ravel(),
                         pad_shell.ravel(), out.ravel())
    white = whiten.ravel()
    use_white = white.shape[0] == w.shape[0]
    for i in range(w.shape[0]):
        d = w[i] + lam[ms[i]]
        f = floor[ps[i]]
        if d < f:
            d = f
        if d > 0:
            factor = np.float32(1.0) / d
            if use_white:
                factor *= white[i]
            o[2 * i] = num[2 * i] * factor
            o[2 * i + 1] = num[2 * i + 1] * factor
        else:
            o[2 * i] = 0
            o[2 * i + 1] = 0
