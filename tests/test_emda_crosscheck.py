"""Optional cross-check of our FSC and half-map variances against EMDA.

EMDA (``pip install --no-build-isolation emda``, see the README) bins Fourier space its own
way, so the comparison is made at matching frequencies: our curves are interpolated at the
frequencies of EMDA's bins, on smooth cases where the binning difference is small. Skipped
when EMDA is not importable; the core install never depends on it.
"""

from __future__ import annotations

import numpy as np
import pytest

from cref_bench.fsc import Spectra, fsc
from cref_bench.metrics import variance_analysis
from cref_bench.volume import Volume
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
    return [Volume((signal + field(rng, shape, voxel, lambda k: 0.02 + 0.5 * k)).astype(np.float32), VOXEL)
            for _ in range(2)]


def _emda_bins(arr: np.ndarray):
    unit_cell = np.array([N * VOXEL] * 3 + [90.0] * 3)
    spectrum = np.fft.fftshift(np.fft.fftn(arr))
    nbin, res_arr, bin_idx = emda_restools.get_resolution_array(unit_cell, spectrum)
    return unit_cell, spectrum, nbin, np.asarray(res_arr, float), bin_idx


def _inside(ours_frequency: np.ndarray, res_arr: np.ndarray) -> np.ndarray:
    """EMDA bins whose frequency lies within our shells (no extrapolation)."""
    freq = 1.0 / res_arr
    return (freq >= ours_frequency[0]) & (freq <= ours_frequency[-1])


def test_fsc_matches_emda_get_fsc(halves):
    a, b = halves
    unit_cell = np.array([N * VOXEL] * 3 + [90.0] * 3)
    res_arr, emda_curve = emda_methods.get_fsc(a.data, b.data, unit_cell)
    res_arr, emda_curve = np.asarray(res_arr, float), np.asarray(emda_curve, float)
    ours = fsc(a, b)
    keep = _inside(ours.frequency, res_arr)
    assert keep.sum() > 10
    interpolated = np.interp(1.0 / res_arr[keep], ours.frequency, ours.value)
    np.testing.assert_allclose(interpolated, emda_curve[keep], atol=0.03)


def test_signal_to_noise_matches_emda_halfmaps_fsc_variance(halves):
    a, b = halves
    _, f1, nbin, res_arr, bin_idx = _emda_bins(a.data)
    f2 = np.fft.fftshift(np.fft.fftn(b.data))
    bin_fsc, noisevar, signalvar, *_ = emda_fsc.halfmaps_fsc_variance(f1, f2, bin_idx, nbin)
    spectra = Spectra(a)
    spectra.add("M1", a)
    spectra.add("M2", b)
    ours = variance_analysis(spectra, d1="M1", d2="M2")
    frequency = fsc(a, b).frequency
    keep = _inside(frequency, res_arr) & (np.asarray(noisevar, float) > 0)
    emda_snr = np.asarray(signalvar, float)[keep] / np.asarray(noisevar, float)[keep]
    our_snr = np.interp(1.0 / res_arr[keep], frequency, ours["snr"])
    # EMDA's noise variance may be that of the full map rather than of a half-map (a constant
    # factor of 2): compare the curves' shapes, i.e. their ratio is one constant across bins.
    log_ratio = np.log(our_snr) - np.log(emda_snr)
    assert np.std(log_ratio) < 0.1
    assert np.min(np.abs(np.median(log_ratio) - np.log([0.5, 1.0, 2.0]))) < 0.1
    np.testing.assert_allclose(np.interp(1.0 / res_arr[keep], frequency, fsc(a, b).value),
                               np.asarray(bin_fsc, float)[keep], atol=0.03)
