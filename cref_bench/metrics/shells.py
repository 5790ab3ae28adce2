"""Fourier shells: the one definition used by every metric, cached per (shape, voxel size).

Convention (``fourier_shells``), for a real map of shape ``(nz, ny, nx)`` and voxel size
``(az, ay, ax)`` Å:

* Transforms are ``rfftn`` over all three axes, so the half-space ``kx >= 0`` is stored.
  Frequencies per axis are ``fftfreq(n_i, a_i)`` in 1/Å (``rfftfreq`` along x), and
  ``|k| = sqrt(kz² + ky² + kx²)``; anisotropic voxels and non-cubic boxes are handled
  by these physical frequencies.
* Shell width ``Δ = max_i 1 / (n_i a_i)``: the coarsest frequency step of the three axes,
  so that every shell is at least one lattice step thick along every axis (for a cubic
  box of edge ``n`` voxels, ``Δ = 1 / (n a)``).
* Shell ``r`` (``r = 1 .. R``) holds the voxels with ``(r - ½)Δ <= |k| < (r + ½)Δ``
  and is reported at frequency ``rΔ`` (resolution ``1 / (rΔ)`` Å). The DC term (shell 0)
  carries only the mean and is left out. ``R = floor(k_nyq / Δ)`` with
  ``k_nyq = min_i 1 / (2 a_i)``: the last shell is the one centred at (or just below)
  Nyquist; the corners of the box beyond it are left out.
* Friedel weighting: a voxel of the half-space with ``0 < kx < nx/2`` stands for itself
  and its Friedel mate, so it is counted twice; the planes ``kx = 0`` and (even ``nx``)
  ``kx = nx/2`` hold both members of each pair and are counted once. Every per-shell sum
  therefore equals the sum over the full 3D transform, and ``Shells.counts`` are the
  lattice-point counts of the full transform.

The reference crefDenoiser loss has its own convention (``reference_shells``): in index
units, shell ``r = 0 .. n/2 - 1`` holds the voxels with ``r² < |k|² <= (r + 1)²`` (no DC,
up to Nyquist); the trainer and the torch loss use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True, eq=False)
class Shells:
    """Shell membership of every voxel of an ``rfftn`` half-space.

    Attributes:
        shape: the real-space shape ``(nz, ny, nx)``.
        voxel_size: Å, ``(z, y, x)``; ``None`` for the index-unit reference convention.
        index: int16 array of the half-space shape ``(nz, ny, nx // 2 + 1)``: the shell
            number (0-based position in the curves) of each voxel, -1 where left out.
        frequency: the frequency of each shell, 1/Å (index units for the reference shells).
        counts: lattice points of the full 3D transform in each shell.
        convention: ``"fourier_shells"`` or ``"reference"``.
    """

    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float] | None
    index: np.ndarray
    frequency: np.ndarray
    counts: np.ndarray
    convention: str

    @property
    def n(self) -> int:
        """The number of shells."""
        return int(self.frequency.size)

    @property
    def resolution(self) -> np.ndarray:
        """Resolution of each shell in Å (``1 / frequency``)."""
        return 1.0 / self.frequency


def half_space_radius2(shape, steps) -> np.ndarray:
    """|k|² over the rfftn half-space of a box.

    Args:
        shape: the real-space box, ``(z, y, x)``.
        steps: the frequency step along each axis (``1 / (n a)`` in 1/Å, or 1 for grid units).

    Returns:
        An array of the rfftn shape ``(nz, ny, nx // 2 + 1)``.
    """
    nz, ny, nx = shape
    kz = np.fft.fftfreq(nz) * nz * steps[0]
    ky = np.fft.fftfreq(ny) * ny * steps[1]
    kx = np.arange(nx // 2 + 1) * steps[2]
    return (kz[:, None, None] ** 2 + ky[None, :, None] ** 2) + kx[None, None, :] ** 2


def friedel_weights(nx: int) -> np.ndarray:
    """Weights of the ``nx // 2 + 1`` half-space planes along x: 1 for kx = 0 and the
    Nyquist plane of an even ``nx``, 2 elsewhere."""
    w = np.full(nx // 2 + 1, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w


def _finish(shape, voxel_size, index, frequency, convention) -> Shells:
    n = frequency.size
    weights = np.broadcast_to(friedel_weights(shape[2]), index.shape)
    inside = index >= 0
    counts = np.bincount(index[inside], weights=weights[inside], minlength=n).astype(np.int64)
    index = index.astype(np.int16)
    index.setflags(write=False)
    frequency.setflags(write=False)
    counts.setflags(write=False)
    return Shells(tuple(shape), voxel_size, index, frequency, counts, convention)


@lru_cache(maxsize=8)
def fourier_shells(shape: tuple[int, int, int], voxel_size: tuple[float, float, float]) -> Shells:
    """The shells of the project's convention (see the module docstring), cached.

    Args:
        shape: real-space shape ``(nz, ny, nx)``.
        voxel_size: Å per voxel, ``(z, y, x)``.

    Returns:
        A read-only :class:`Shells`.

    Raises:
        ValueError: a side shorter than 4 voxels, or a non-positive voxel size.
    """
    shape = tuple(int(s) for s in shape)
    voxel_size = tuple(float(v) for v in voxel_size)
    if len(shape) != 3 or min(shape) < 4:
        raise ValueError(f"shells need a 3D box of at least 4 voxels a side, got {shape}")
    if min(voxel_size) <= 0:
        raise ValueError(f"voxel size must be positive, got {voxel_size}")
    steps = [1.0 / (n * a) for n, a in zip(shape, voxel_size)]
    width = max(steps)
    nyquist = min(0.5 / a for a in voxel_size)
    n_shells = int(np.floor(nyquist / width + 1e-9))
    r = np.rint(np.sqrt(half_space_radius2(shape, steps)) / width).astype(np.int64)
    index = np.where((r >= 1) & (r <= n_shells), r - 1, -1)
    frequency = np.arange(1, n_shells + 1) * width
    return _finish(shape, voxel_size, index, frequency, "fourier_shells")


@lru_cache(maxsize=4)
def reference_shells(shape: tuple[int, int, int]) -> Shells:
    """The shells of the reference crefDenoiser loss, in index units, cached.

    Shell ``r = 0 .. min(shape) // 2 - 1`` holds the voxels with ``r² < |k|² <= (r + 1)²``
    where ``k`` is the integer frequency index; a 96³ patch has 48 shells.

    Args:
        shape: real-space shape ``(nz, ny, nx)``.

    Returns:
        A read-only :class:`Shells` whose ``frequency`` is ``r + 1`` (index units).
    """
    shape = tuple(int(s) for s in shape)
    n_shells = min(shape) // 2
    k2 = np.rint(half_space_radius2(shape, (1.0, 1.0, 1.0))).astype(np.int64)
    # r² < k² <= (r+1)²  <=>  r = ceil(sqrt(k²)) - 1 for k² > 0 (sqrt is exact on squares).
    r = np.ceil(np.sqrt(k2)).astype(np.int64) - 1
    index = np.where((k2 > 0) & (r < n_shells), r, -1)
    frequency = np.arange(1, n_shells + 1, dtype=np.float64)
    return _finish(shape, None, index, frequency, "reference")
