"""Compiled memory-bound steps of the lean forward pass (numba), on ``(Z, Y, X, C)`` arrays
(a channels_last tensor's planes, batch item 0, seen through numpy), float32 or bfloat16 (held
as uint16 bit patterns, computed in float32 and rounded to the nearest even).

* :func:`add_upsampled_leaky` adds the upsampled part of a decoder's first convolution, held as
  phases (see :func:`baselines.crefdenoiser.lean.phase_kernels`), to the skip part and applies
  the LeakyReLU, in one pass, instead of interleaving the phases into a new tensor, adding it
  and activating it in three.
* :func:`max_pool2` is the 2x2x2 max pooling, reading its input once (PyTorch's CPU kernel also
  computes the indices the backward pass would need).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def _add_upsampled_leaky(acc, phases, z_first, z_offset, slope):
    depth, height, width, channels = acc.shape
    for zl in numba.prange(depth):
        z = z_first + zl
        pz = z % 2
        jz = z // 2 + pz - z_offset
        for y in range(height):
            py = y % 2
            jy = y // 2 + py
            for x in range(width):
                px = x % 2
                jx = x // 2 + px
                base = ((pz * 2 + py) * 2 + px) * channels
                for c in range(channels):
                    v = acc[zl, y, x, c] + phases[jz, jy, jx, base + c]
                    acc[zl, y, x, c] = v if v > 0 else v * slope


@numba.njit(parallel=True, cache=True)
def _max_pool2(src, out):
    depth, height, width, channels = out.shape
    for z in numba.prange(depth):
        for y in range(height):
            for x in range(width):
                for c in range(channels):
                    m = src[2 * z, 2 * y, 2 * x, c]
                    for dz in range(2):
                        for dy in range(2):
                            for dx in range(2):
                                v = src[2 * z + dz, 2 * y + dy, 2 * x + dx, c]
                                if v > m:
                                    m = v
                    out[z, y, x, c] = m


@numba.njit(parallel=True, cache=True)
def _add_upsampled_leaky_bf16(acc, phases, z_first, z_offset, slope):
    depth, height, width, channels = acc.shape
    for zl in numba.prange(depth):
        bits = np.empty(channels, np.uint32)
        other = np.empty(channels, np.uint32)
        values, others = bits.view(np.float32), other.view(np.float32)
        z = z_first + zl
        pz = z % 2
        jz = z // 2 + pz - z_offset
        for y in range(height):
            py = y % 2
            jy = y // 2 + py
            for x in range(width):
                px = x % 2
                jx = x // 2 + px
                base = ((pz * 2 + py) * 2 + px) * channels
                for c in range(channels):
                    bits[c] = np.uint32(acc[zl, y, x, c]) << 16
                    other[c] = np.uint32(phases[jz, jy, jx, base + c]) << 16
                for c in range(channels):
                    v = values[c] + others[c]
                    values[c] = v if v > 0 else v * slope
                for c in range(channels):
                    b = bits[c]
                    acc[zl, y, x, c] = np.uint16((b + np.uint32(0x7FFF) + ((b >> 16) & 1)) >> 16)


@numba.njit(parallel=True, cache=True)
def _max_pool2_bf16(src, out):
    depth, height, width, channels = out.shape
    for z in numba.prange(depth):
        bits = np.empty(1, np.uint32)
        value = bits.view(np.float32)
        for y in range(height):
            for x in range(width):
                for c in range(channels):
                    best = src[2 * z, 2 * y, 2 * x, c]
                    bits[0] = np.uint32(best) << 16
                    m = value[0]
                    for dz in range(2):
                        for dy in range(2):
                            for dx in range(2):
                                b = src[2 * z + dz, 2 * y + dy, 2 * x + dx, c]
                                bits[0] = np.uint32(b) << 16
                                if value[0] > m:
                                    m, best = value[0], b
                    out[z, y, x, c] = best


def add_upsampled_leaky(acc: np.ndarray, phases: np.ndarray, z_first: int, z_offset: int,
                        slope: float) -> None:
    """``acc = leaky(acc + up)`` in place, ``up`` the upsampled part held as phases.

    Voxel ``(z, y, x)`` of ``acc`` (``z`` counted in the map, from ``z_first``) takes phase
    ``(z % 2, y % 2, x % 2)`` of ``phases`` at ``(z // 2 + z % 2 - z_offset, y // 2 + y % 2,
    x // 2 + x % 2)``.

    Args:
        acc: ``(Z, Y, X, C)`` float32 or uint16 (bfloat16), the skip part with its bias;
            overwritten.
        phases: ``(Z', Y / 2 + 1, X / 2 + 1, 8 C)``, ``acc``'s type, the phase convolution
            (padding 1)
            of low-resolution planes starting at the map's plane ``z_offset``: its plane ``j``
            holds phase ``p`` of the upsampled plane ``2 (j + z_offset - p) + p``.
        z_first: the map plane of ``acc``'s first plane.
        z_offset: the map's low-resolution plane where the phase convolution's input starts.
        slope: the LeakyReLU's negative slope.
    """
    kernel = _add_upsampled_leaky_bf16 if acc.dtype == np.uint16 else _add_upsampled_leaky
    kernel(acc, phases, z_first, z_offset, np.float32(slope))


def max_pool2(src: np.ndarray, out: np.ndarray) -> None:
    """2x2x2 max pooling: ``out[z, y, x] = max(src[2z:2z+2, 2y:2y+2, 2x:2x+2])`` per channel.

    Args:
        src: ``(2Z, 2Y, 2X, C)`` float32 or uint16 (bfloat16).
        out: ``(Z, Y, X, C)``, ``src``'s type, written.
    """
    (_max_pool2_bf16 if src.dtype == np.uint16 else _max_pool2)(src, out)
