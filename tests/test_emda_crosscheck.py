"""Optional cross-check of our FSC and half-map variances against EMDA.

EMDA (``pip install --no-build-isolation emda``, see the README) bins Fourier space its own
way, so the comparison is made at matching frequencies: our curves are interpolated at the
frequencies of EMDA's bins, on smooth cases where the binning difference is small. Skipped
when EMDA is not importable; the core install never depends on it.
"""

from __future__ import annotations

import numpy as np
import pytest

from cref_bench.maps.volume import Volume
from cref_bench.metrics.fsc import Spectra, fsc
from cref_bench.metrics.scores import variance_analysis
from tests.helpers_fields import field

emda_methods = pytest.importorskip("emda.emda_methods", reason="EMDA is not installed (optional)")
emda_fsc = pytest.importorskip("emda.core.fsc", reason="EMDA is not installed (optional)")
emda_restools = pytest.importorskip("emda.core.restools", reason="EMDA is not installed (optional)")

N, VOXEL = 64, 1.5


@pytest.fixture(scope="module")
def halves():
    """Two half-maps: a shared smooth signal plus independent noise rising with frequency."""
    rng = np.random.default_rng(11)
    shape, voxel = (N, N, N), (VOXEL,) * 3
    signal = field(rng, shape, voxel, lambda k: np.exp(-(k / 0.15) ** 2))
    return [Volume((signal + field(rng, shape, voxel, lambda k: 0.02 + 0.5 * k)).astype(np.float32),
                   VOXEL) for _ in range(2)]


def _emda_bins(arr: np.ndarray):
    """EMDA's transform of ``arr``, its bins and each bin's mean frequency (1/Å)."""
    unit_cell = np.array([N * VOXEL] * 3 + [90.0] * 3)
    spectrum = np.fft.fftshift(np.fft.fftn(arr))
    nbin, _, bin_idx = emda_restools.get_resolution_array(unit_cell, spectrum)
    bin_idx = np.asarray(bin_idx)
    axis = np.fft.fftshift(np.fft.fftfreq(N, VOXEL))
    kz, ky, kx = np.meshgrid(axis, axis, axis, indexing="ij")
    radius = np.sqrt(kz**2 + ky**2 + kx**2)
    inside = bin_idx >= 0
    counts = np.bincount(bin_idx[inside], minlength=nbin)[:nbin]
    sums = np.bincount(bin_idx[inside], weights=radius[inside], minlength=nbin)[:nbin]
    with np.errstate(invalid="ignore", divide="ignore"):
        frequency = sums / counts
    return spectrum, nbin, bin_idx, frequency


def _comparable(ours_frequency: np.ndarray, frequency: np.ndarray) -> np.ndarray:
    """EMDA bins whose mean frequency lies within our shells (no extrapolation)."""
    return (np.isfinite(frequency) & (frequency >= ours_frequency[0])
            & (frequency <= ours_frequency[-1]))


def test_fsc_matches_emda_get_fsc(halves):
    a, b = halves
    unit_cell = np.array([N * VOXEL] * 3 + [90.0] * 3)
    _, emda_curve = emda_methods.get_fsc(a.data, b.data, unit_cell)
    _, nbin, _, frequency = _emda_bins(a.data)
    emda_curve = np.asarray(emda_curve, float)[:nbin]
    ours = fsc(a, b)
    keep = _comparable(ours.frequency, frequency)
    assert keep.sum() > 20
    interpolated = np.interp(frequency[keep], ours.frequency, ours.value)
    np.testing.assert_allclose(interpolated, emda_curve[keep], atol=0.01)


def test_signal_to_noise_matches_emda_halfmaps_fsc_variance(halves):
    a, b = halves
    f1, nbin, bin_idx, frequency = _emda_bins(a.data)
    f2 = np.fft.fftshift(np.fft.fftn(b.data))
    bin_fsc, noisevar, signalvar, *_ = emda_fsc.halfmaps_fsc_variance(f1, f2, bin_idx, nbin)
    bin_fsc, noisevar, signalvar = (np.asarray(x, float)[:nbin]
                                    for x in (bin_fsc, noisevar, signalvar))
    spectra = Spectra(a)
    spectra.add("M1", a)
    spectra.add("M2", b)
    ours = variance_analysis(spectra, d1="M1", d2="M2")
    curve = fsc(a, b)
    keep = _comparable(curve.frequency, frequency) & (noisevar > 0)
    assert keep.sum() > 20
    np.testing.assert_allclose(np.interp(frequency[keep], curve.frequency, curve.value),
                               bin_fsc[keep], atol=0.01)
    # EMDA's noise variance is that of the full map (M1 + M2) / 2, half that of a half-map:
    # its S/N is twice ours, bin by bin. Compared where FSC < 0.95: above, the noise variance
    # is a small difference of large numbers in both programs and not precisely estimated.
    keep &= bin_fsc < 0.95
    ours_snr = np.interp(frequency[keep], curve.frequency, ours["snr"])
    log_ratio = np.log(signalvar[keep] / noisevar[keep]) - np.log(ours_snr)
    np.testing.assert_allclose(log_ratio, np.log(2.0), atol=0.1)
