"""Gaussian random fields with a prescribed radial power spectrum, for metric tests."""

from __future__ import annotations

import numpy as np

from cref_bench.metrics.shells import half_space_radius2


def radial_frequency(shape, voxel_size) -> np.ndarray:
    """|k| in 1/Å over the rfftn half-space."""
    steps = [1.0 / (n * a) for n, a in zip(shape, voxel_size)]
    return np.sqrt(half_space_radius2(shape, steps))


def field(rng: np.random.Generator, shape, voxel_size, power) -> np.ndarray:
    """A real Gaussian field whose expected power at frequency |k| is ``power(|k|)`` (times
    the power of unit white noise)."""
    white = np.fft.rfftn(rng.standard_normal(shape))
    return np.fft.irfftn(white * np.sqrt(power(radial_frequency(shape, voxel_size))), s=shape,
                         axes=(0, 1, 2))


def expected_ratio(shells, numerator, denominator, voxel_size) -> np.ndarray:
    """Σ numerator(|k|) / Σ denominator(|k|) over each shell's voxels, Friedel-weighted."""
    from cref_bench.metrics.shells import friedel_weights

    k = radial_frequency(shells.shape, voxel_size)
    w = np.broadcast_to(friedel_weights(shells.shape[2]), k.shape)
    inside = shells.index >= 0
    num = np.bincount(shells.index[inside], weights=(w * numerator(k))[inside],
                      minlength=shells.n)
    den = np.bincount(shells.index[inside], weights=(w * denominator(k))[inside],
                      minlength=shells.n)
    return num / den
