"""Fourier resampling (baselines.resampling), the one resampler of LAFTER's upsampled output
and the external method's outputs: known answers for band-limited maps, the Nyquist terms
split and joined, padding undone by cropping, and memory held to slabs."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.resampling import fourier_resample


@pytest.mark.parametrize("shape", [(8, 8, 8), (7, 9, 10), (6, 5, 4)])
def test_padding_interpolates_and_cropping_undoes_it(shape):
    data = np.random.default_rng(10).standard_normal(shape).astype(np.float32)
    big = tuple(2 * n for n in shape)
    upsampled = fourier_resample(data, big)
    assert upsampled.shape == big and upsampled.dtype == np.float32
    np.testing.assert_allclose(upsampled[::2, ::2, ::2], data, atol=2e-6)  # the old samples
    np.testing.assert_allclose(fourier_resample(upsampled, shape), data, atol=2e-6)
    odd = tuple(n + 3 for n in shape)
    np.testing.assert_allclose(fourier_resample(fourier_resample(data, odd), shape), data,
                               atol=2e-6)


def test_the_nyquist_term_is_split_on_padding_and_joined_on_cropping():
    # cos(pi j), the Nyquist term of 8 samples, is cos(2 pi 4 x): split evenly between +4 and
    # -4 it stays that cosine on 16 samples, cos(pi j / 2) (taken whole at +4 it would be
    # complex; taken at -4 only, a sine would appear)
    j = np.arange(8)
    line = np.cos(np.pi * j)[:, None, None] * np.ones((1, 2, 3))
    up = fourier_resample(line, (16, 2, 3))
    np.testing.assert_allclose(up[:, 1, 2], np.cos(np.pi * np.arange(16) / 2), atol=1e-6)
    # cropping 16 samples of cos(2 pi 4 x) to 8 joins its +4 and -4 terms into the new
    # Nyquist term: the same cosine, every other sample
    np.testing.assert_allclose(fourier_resample(up, (8, 2, 3)), line, atol=1e-6)


def _band_limited(x):
    return np.cos(2 * np.pi * 3 * x) + 0.5 * np.sin(2 * np.pi * 5 * x)


def test_fourier_resampling_matches_a_band_limited_function():
    n, m = 24, 40  # samples of a band-limited function on two grids over the same box
    for size_in, size_out in ((n, m), (m, n)):
        x_in, x_out = np.arange(size_in) / size_in, np.arange(size_out) / size_out
        data = _band_limited(x_in)[:, None, None] * np.ones((1, 8, 6))
        out = fourier_resample(data, (size_out, 8, 6))
        np.testing.assert_allclose(out[:, 0, 0], _band_limited(x_out), atol=1e-5)


def test_fourier_resampling_works_in_slabs():
    """Bringing a map onto a smaller grid holds the intermediate arrays and one slab of
    transforms, not the transforms of the whole map (20 MiB here)."""
    import tracemalloc

    data = np.random.default_rng(1).standard_normal((128, 128, 128)).astype(np.float32)
    fourier_resample(data[:8, :8, :8], (4, 4, 4))  # scipy's modules and plans loaded
    tracemalloc.start()
    try:
        out = fourier_resample(data, (64, 64, 64), chunk_bytes=2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * data.nbytes  # measured 8.0 MiB: the 4 MiB half-way array, slabs
    np.testing.assert_allclose(out, fourier_resample(data, (64, 64, 64), chunk_bytes=2**40),
                               atol=1e-5)
