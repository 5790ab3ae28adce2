"""The Fourier shell convention: counts, frequencies, Nyquist, the reference variant."""

import numpy as np
import pytest

from cref_bench.metrics.shells import fourier_shells, friedel_weights, reference_shells


def _full_space_counts(shape, voxel_size, width, n_shells):
    """Brute force over the full fftn grid, independent of the half-space bookkeeping."""
    axes = [np.fft.fftfreq(n, a) for n, a in zip(shape, voxel_size)]
    kz, ky, kx = np.meshgrid(*axes, indexing="ij")
    r = np.rint(np.sqrt(kz**2 + ky**2 + kx**2) / width).astype(int)
    return np.array([(r == s).sum() for s in range(1, n_shells + 1)])


@pytest.mark.parametrize("shape, voxel", [
    ((32, 32, 32), (1.0, 1.0, 1.0)),
    ((20, 24, 30), (1.0, 1.0, 1.0)),       # non-cubic, even
    ((21, 24, 27), (1.3, 1.3, 1.3)),       # odd sides
    ((24, 24, 24), (1.0, 1.5, 2.0)),       # anisotropic voxels
])
def test_counts_are_full_space_lattice_counts(shape, voxel):
    shells = fourier_shells(shape, voxel)
    width = max(1.0 / (n * a) for n, a in zip(shape, voxel))
    assert shells.frequency[0] == pytest.approx(width)
    np.testing.assert_array_equal(shells.counts, _full_space_counts(shape, voxel, width, shells.n))


def test_cubic_shells_reach_nyquist():
    shells = fourier_shells((64, 64, 64), (2.0, 2.0, 2.0))
    assert shells.n == 32
    assert shells.resolution[-1] == pytest.approx(4.0)  # Nyquist of 2 Å voxels
    assert shells.resolution[0] == pytest.approx(128.0)


def test_anisotropic_nyquist_is_the_coarsest_axis():
    shells = fourier_shells((32, 32, 32), (1.0, 1.0, 2.0))
    assert 1.0 / shells.frequency[-1] >= 4.0 - 1e-9
    assert 1.0 / shells.frequency[-1] < 4.0 + 1.0 / shells.frequency[0] / shells.n


def test_shells_are_cached_and_read_only():
    a = fourier_shells((16, 16, 16), (1.0, 1.0, 1.0))
    assert fourier_shells((16, 16, 16), (1.0, 1.0, 1.0)) is a
    with pytest.raises(ValueError):
        a.index[0, 0, 0] = 3


def test_friedel_weights():
    np.testing.assert_array_equal(friedel_weights(6), [1, 2, 2, 1])
    np.testing.assert_array_equal(friedel_weights(7), [1, 2, 2, 2])


def test_reference_shells_definition():
    shells = reference_shells((96, 96, 96))
    assert shells.n == 48
    axes = [np.fft.fftfreq(96) * 96] * 3
    kz, ky, kx = np.meshgrid(*axes, indexing="ij")
    k2 = kz**2 + ky**2 + kx**2
    expected = [((k2 > r * r) & (k2 <= (r + 1) ** 2)).sum() for r in range(48)]
    np.testing.assert_array_equal(shells.counts, expected)


def test_too_small_box_is_refused():
    with pytest.raises(ValueError, match="at least 4"):
        fourier_shells((2, 8, 8), (1.0, 1.0, 1.0))
