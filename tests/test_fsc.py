"""FSC curves and resolution crossings against known answers."""

import numpy as np
import pytest

from cref_bench import Volume
from cref_bench.errors import GeometryMismatch, MapError
from cref_bench.metrics.fsc import Spectra, fsc, resolution_at
from cref_bench.metrics.shells import fourier_shells
from tests.helpers_fields import expected_ratio, field


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("shape, voxel", [((32, 32, 32), 1.0), ((20, 28, 24), (1.0, 1.2, 0.9))])
def test_identity_antipode_and_scale(rng, shape, voxel):
    a = Volume(rng.standard_normal(shape), voxel)
    np.testing.assert_allclose(fsc(a, a).value, 1.0, atol=1e-6)
    np.testing.assert_allclose(fsc(a, a.like(-a.data)).value, -1.0, atol=1e-6)
    b = a.like(a.data + rng.standard_normal(shape))
    np.testing.assert_allclose(fsc(a, b.like(3.7 * b.data)).value, fsc(a, b).value, atol=1e-6)


def test_signal_plus_noise_matches_power_ratio(rng):
    shape, voxel = (64, 64, 64), (1.0, 1.0, 1.0)
    signal_power = lambda k: np.exp(-((k / 0.15) ** 2)) * 20 + 1e-3  # noqa: E731
    noise_power = lambda k: np.ones_like(k)  # noqa: E731
    s = field(rng, shape, voxel, signal_power)
    m1 = Volume(s + field(rng, shape, voxel, noise_power), voxel)
    m2 = m1.like(s + field(rng, shape, voxel, noise_power))
    curve = fsc(m1, m2)
    shells = fourier_shells(shape, voxel)
    expected = expected_ratio(shells, signal_power, lambda k: signal_power(k) + noise_power(k),
                              voxel)
    # Standard error of a correlation over n/2 independent Friedel pairs: (1 - ρ²) / sqrt(n/2).
    tolerance = 5 * (1 - expected**2) / np.sqrt(shells.counts / 2) + 1e-3
    assert np.all(np.abs(curve.value - expected) < tolerance)
    assert expected.max() > 0.9 and expected.min() < 0.05  # the case spans the whole range


def test_masked_fsc_is_fsc_of_masked_maps(rng):
    a = Volume(rng.standard_normal((24, 24, 24)), 1.1)
    b = a.like(a.data + rng.standard_normal(a.shape))
    mask = a.like(rng.random(a.shape))
    np.testing.assert_allclose(fsc(a, b, mask).value,
                               fsc(a.like(a.data * mask.data), b.like(b.data * mask.data)).value,
                               atol=1e-6)


def test_combination_equals_transform_of_the_combined_map(rng):
    a = Volume(rng.standard_normal((16, 18, 20)), 1.0)
    b = a.like(rng.standard_normal(a.shape))
    d = a.like(rng.standard_normal(a.shape))
    spectra = Spectra(a)
    spectra.add("a", a)
    spectra.add("b", b)
    spectra.add("d", d)
    spectra.combine("avg", {"a": 0.5, "b": 0.5})
    direct = fsc(d, a.like((a.data + b.data) / 2))
    np.testing.assert_allclose(spectra.fsc("d", "avg").value, direct.value, atol=1e-6)


def test_covariance_sums_to_parseval(rng):
    # Σ over all shells of n·cov(a, a) + DC and corners = N · Σ a² (Parseval); with a field
    # that has no power at DC or beyond Nyquist the shells hold it all.
    shape = (32, 32, 32)
    a = Volume(field(rng, shape, (1, 1, 1), lambda k: np.where((k > 0) & (k < 0.45), 1.0, 0.0)),
               1.0)
    spectra = Spectra(a)
    spectra.add("a", a)
    (power,) = spectra.cov(("a", "a"))
    total = (power * spectra.shells.counts).sum()
    assert total == pytest.approx(np.prod(shape) * (a.data.astype(np.float64) ** 2).sum(), rel=1e-5)


def test_grid_and_finite_checks(rng):
    a = Volume(rng.standard_normal((16, 16, 16)), 1.0, source="a.mrc")
    with pytest.raises(GeometryMismatch, match="shape"):
        fsc(a, Volume(rng.standard_normal((16, 16, 18)), 1.0, source="b.mrc"))
    with pytest.raises(GeometryMismatch, match="voxel size"):
        fsc(a, Volume(a.data, 1.2, source="b.mrc"))
    bad = a.data.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(MapError, match="b.mrc: 1 non-finite"):
        fsc(a, Volume(bad, 1.0, source="b.mrc"))


def test_resolution_crossing_is_interpolated():
    freq = np.array([0.1, 0.2, 0.3, 0.4])
    crossing = resolution_at(freq, np.array([1.0, 0.6, 0.4, 0.1]), 0.5)
    assert crossing.resolution == pytest.approx(1 / 0.25)
    assert crossing.note == ""


def test_resolution_first_crossing_wins():
    freq = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    crossing = resolution_at(freq, np.array([1.0, 0.1, 0.9, 0.1, 0.0]), 0.143)
    assert 1 / 0.2 < crossing.resolution < 1 / 0.1


def test_never_crossing_and_starting_below_are_not_numbers():
    freq = np.array([0.1, 0.2, 0.25])
    never = resolution_at(freq, np.array([1.0, 0.9, 0.8]), 0.143)
    assert never.resolution is None and "never crosses 0.143" in never.note and "4 Å" in never.note
    below = resolution_at(freq, np.array([0.1, 0.0, 0.0]), 0.5)
    assert below.resolution is None and "first shell" in below.note
