"""The held-out-half estimators (cref_bench.metrics.heldout) against the truth: on phantoms,
on Gaussian fields with independent noise and on simulated reconstructions, a single-map
filter applied to each half alone; the estimated FSC to the truth per shell, the correlation
and the relative error."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.stats

from cref_bench import Volume
from cref_bench.metrics import heldout
from cref_bench.metrics.fsc import Spectra
from cref_bench.metrics.scores import HELDOUT_METRICS, DenoisedMaps, evaluate
from tests.helpers_fields import field

FSC_TOLERANCE = 0.05
"""Largest |mean over entries of (estimated - true) FSC(H1, T)| in a shell where the
half-map FSC is at least 0.143. Per entry the difference reaches 0.09 in a masked shell
(the mask mixes shells; 8 phantoms of 64³)."""

GLOBAL_TOLERANCE = 0.05
"""Largest |estimated - true| of the correlation and relative error, per entry (measured on
8 phantoms of 64³: at most 0.005 unmasked; masked 0.022 and 0.041, the low shells, few
lattice points holding most of the power, carrying the sampling error)."""


def _blur(volume: Volume, sigma: float = 1.0) -> Volume:
    return volume.like(ndi.gaussian_filter(volume.data, sigma))


def _compare(m1: Volume, m2: Volume, truth: Volume, mask: Volume | None, denoise):
    """(estimated - true FSC per shell, half-map FSC, estimate, true corr, true rel error)."""
    h1, h2 = denoise(m1), denoise(m2)
    spectra = Spectra(m1, mask)
    for name, volume in (("M1", m1), ("M2", m2), ("H1", h1), ("H2", h2), ("T", truth)):
        spectra.add(name, volume)
    first, _ = heldout.estimate(spectra)
    true_fsc, true_error = heldout.truth_values(spectra, "H1", "T", first.scale)
    c_ht, p_h, p_t = spectra.cov(("H1", "T"), ("H1", "H1"), ("T", "T"))
    n = spectra.shells.counts
    corr = (n @ c_ht) / np.sqrt((n @ p_h) * (n @ p_t))
    return (first.fsc_truth - true_fsc, spectra.fsc("M1", "M2").value, first, corr,
            (n @ true_error) / (n @ p_t))


def _over_entries(differences: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The mean and spread over entries per shell of per-entry differences (NaN where a
    shell was left out; NaN where every entry left it out)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(differences, axis=0), np.nanstd(differences, axis=0)


@pytest.fixture(scope="module")
def phantoms():
    from dataset_builder.synthetic import entry_parameters, make_phantom

    out = []
    for index in range(4):
        p = entry_parameters(0, index, boxes=(64, 64))
        out.append(make_phantom(p["seed"], box=64, voxel_size=p["voxel_size"],
                                resolution=p["resolution"]))
    return out


@pytest.mark.parametrize("masked", [False, True])
def test_estimates_agree_with_the_truth_on_phantoms(phantoms, masked):
    differences = []
    for p in phantoms:
        diff, fsc_half, est, corr, rel_error = _compare(
            p.half1, p.half2, p.truth, p.mask if masked else None, _blur)
        differences.append(np.where(fsc_half >= 0.143, diff, np.nan))
        assert est.corr == pytest.approx(corr, abs=GLOBAL_TOLERANCE)
        assert est.rel_error == pytest.approx(rel_error, abs=GLOBAL_TOLERANCE)
    bias, _ = _over_entries(differences)
    assert np.nanmax(np.abs(bias)) < FSC_TOLERANCE


def test_estimates_agree_with_the_truth_with_independent_random_noise():
    """Phantom noise is made orthogonal to the truth shell by shell; here it is drawn freely,
    so the estimates carry their sampling spread (mean over 4 draws)."""
    shape, voxel = (48, 48, 48), (1.0, 1.0, 1.0)
    signal = lambda k: 30 * np.exp(-((k / 0.15) ** 2)) + 1e-4  # noqa: E731
    rng = np.random.default_rng(3)
    differences = []
    for _ in range(4):
        truth = Volume(field(rng, shape, voxel, signal), voxel)
        m1, m2 = (truth.like(truth.data + field(rng, shape, voxel, np.ones_like))
                  for _ in range(2))
        diff, fsc_half, est, corr, rel_error = _compare(m1, m2, truth, None, _blur)
        differences.append(np.where(fsc_half >= 0.143, diff, np.nan))
        assert est.corr == pytest.approx(corr, abs=GLOBAL_TOLERANCE)
        assert est.rel_error == pytest.approx(rel_error, abs=GLOBAL_TOLERANCE)
    bias, spread = _over_entries(differences)
    assert np.nanmax(np.abs(bias)) < FSC_TOLERANCE
    assert np.nanmax(spread) < 0.06


def test_an_output_that_saw_both_halves_is_estimated_too_well(phantoms):
    """Why a pair method's halves may not be scored as held out: H1 = the average of both
    halves shares M2's noise, and the estimate credits it with a correlation it lacks."""
    p = phantoms[0]
    average = p.half1.like((p.half1.data + p.half2.data) / 2)
    _, _, est, corr, _ = _compare(p.half1, p.half2, p.truth, None, lambda v: average)
    assert est.corr > corr + 0.05


@pytest.mark.parametrize("factor", [1e-30, 1e-8, 1e12, 1e36])
def test_the_estimates_ignore_the_output_scale(phantoms, factor):
    p = phantoms[1]
    base = _compare(p.half1, p.half2, p.truth, p.mask, _blur)[2]
    scaled = _compare(p.half1, p.half2, p.truth, p.mask,
                      lambda v: v.like(_blur(v).data * np.float32(factor)))[2]
    assert scaled.corr == pytest.approx(base.corr, rel=1e-6)
    assert scaled.rel_error == pytest.approx(base.rel_error, rel=1e-5)
    # float32 rounding of the scaled voxels, not the scale, moves the faintest shells
    np.testing.assert_allclose(scaled.fsc_truth, base.fsc_truth, rtol=1e-3, atol=1e-5)


def test_evaluate_reports_heldout_scores_only_for_heldout_halves(phantoms):
    p = phantoms[2]
    h1, h2 = _blur(p.half1), _blur(p.half2)
    full = _blur(p.half1.like((p.half1.data + p.half2.data) / 2))
    given = evaluate(p.half1, p.half2,
                     DenoisedMaps(full, half1=h1, half2=h2, heldout1=h1, heldout2=h2), mask=p.mask,
                     truth=p.truth)
    pair = evaluate(p.half1, p.half2,
                    DenoisedMaps(full, half1=h1, half2=h2,
                                 heldout_note="not applicable: the method needs both halves"),
                    mask=p.mask)
    for masking in ("unmasked", "masked"):
        assert all(given.scalars[masking][m] is not None for m in HELDOUT_METRICS)
        assert all(pair.scalars[masking][m] is None for m in HELDOUT_METRICS)
        assert pair.notes[masking]["heldout_corr"].startswith("not applicable")
        # the same estimate whether the held-out halves are transformed apart or shared
        assert given.scalars[masking]["heldout_corr"] == pytest.approx(
            evaluate(p.half1, p.half2,
                     DenoisedMaps(full, heldout1=h1.like(h1.data.copy()),
                                  heldout2=h2.like(h2.data.copy())),
                     mask=p.mask).scalars[masking]["heldout_corr"], rel=1e-9)
    assert given.scalars["masked"]["heldout_corr"] > 0.9


RECONSTRUCTION_TOLERANCE = {"rigid-3.5A": 0.03, "flexible-4.5A": 0.08, "preferred-4.5A": 0.16}
"""Largest |estimated - true| FSC(H1, T) in a shell where the half-map FSC is at least 0.143,
on simulated reconstructions of 64³ (3,000 particles per half), unmasked and masked: for the
rigid preset the mean over two entries (measured: at most 0.023 per entry), for the others
per entry (measured 0.066 and 0.145). The estimate takes the signal to be what the halves
share. A per-shell gain common to both halves (CTF correction, regularisation) changes no
FSC, but the flexible domain's blur and, most of all, preferred views (a gain that depends on
the direction within a shell) make the halves share something other than the truth, and the
estimate reads high."""


@pytest.fixture(scope="module")
def reconstructions():
    from dataset_builder.simulation.corpus import corpus_settings
    from dataset_builder.simulation.entry import simulate_entry

    small = {"box": 64, "particles": 3000}
    return [(preset, simulate_entry(corpus_settings(preset, small)[0], seed))
            for preset, seed in (("rigid-3.5A", 1), ("rigid-3.5A", 2), ("flexible-4.5A", 1),
                                 ("preferred-4.5A", 1))]


@pytest.mark.parametrize("masked", [False, True])
def test_estimates_follow_the_truth_on_simulated_reconstructions(reconstructions, masked):
    differences: dict[str, list] = {}
    for preset, e in reconstructions:
        diff, fsc_half, _, _, _ = _compare(e.half1, e.half2, e.truth,
                                           e.mask if masked else None, _blur)
        differences.setdefault(preset, []).append(np.where(fsc_half >= 0.143, diff, np.nan))
    for preset, tolerance in RECONSTRUCTION_TOLERANCE.items():
        bias, _ = _over_entries(differences[preset])
        assert np.nanmax(np.abs(bias)) < tolerance, preset


@pytest.mark.parametrize("masked", [False, True])
def test_the_estimated_correlation_orders_filters_as_the_truth(reconstructions, masked):
    """The unfiltered half and three blurs of each entry, ranked by the mean of both halves'
    estimated correlation and by the true one: at most one pair swapped (Kendall's τ ≥ 2/3)
    per entry. The level differs: the estimate weighs shells by the power the halves share,
    which the CTF and the regularisation take from the high shells of a reconstruction."""
    filters = [lambda v: v] + [lambda v, s=s: _blur(v, s) for s in (0.7, 1.5, 3.0)]
    for preset, e in reconstructions:
        mask = e.mask if masked else None
        estimated, true = [], []
        for denoise in filters:
            spectra = Spectra(e.half1, mask)
            for name, volume in (("M1", e.half1), ("M2", e.half2), ("H1", denoise(e.half1)),
                                 ("H2", denoise(e.half2)), ("T", e.truth)):
                spectra.add(name, volume)
            first, second = heldout.estimate(spectra)
            estimated.append((first.corr + second.corr) / 2)
            c1, c2, p1, p2, pt = spectra.cov(("H1", "T"), ("H2", "T"), ("H1", "H1"),
                                             ("H2", "H2"), ("T", "T"))
            n = spectra.shells.counts
            true.append(((n @ c1) / np.sqrt((n @ p1) * (n @ pt))
                         + (n @ c2) / np.sqrt((n @ p2) * (n @ pt))) / 2)
        assert scipy.stats.kendalltau(estimated, true).statistic >= 0.66, (preset, estimated,
                                                                            true)
