"""The C_ref family of metrics against simulated data with known truth."""

import numpy as np
import pytest

from cref_bench import Volume
from cref_bench.errors import GeometryMismatch
from cref_bench.metrics.fsc import Spectra, fsc
from cref_bench.metrics.scores import c_ref, cref_l1, cref_rmse, evaluate, variance_analysis
from cref_bench.metrics.shells import fourier_shells
from tests.helpers_fields import expected_ratio, field

SHAPE, VOXEL = (64, 64, 64), (1.0, 1.0, 1.0)
SIGNAL = lambda k: 30 * np.exp(-((k / 0.12) ** 2)) + 1e-4  # noqa: E731
NOISE = lambda k: np.ones_like(k)  # noqa: E731


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(11)
    truth = field(rng, SHAPE, VOXEL, SIGNAL)
    n1, n2 = field(rng, SHAPE, VOXEL, NOISE), field(rng, SHAPE, VOXEL, NOISE)
    m1 = Volume(truth + n1, VOXEL)
    return {"T": m1.like(truth), "M1": m1, "M2": m1.like(truth + n2), "N1": n1, "N2": n2,
            "rng": rng}


def _tolerance(expected, counts, k=5):
    return k * (1 - np.asarray(expected) ** 2) / np.sqrt(counts / 2) + 2e-3


def test_c_ref_values():
    np.testing.assert_allclose(c_ref(np.array([-0.3, 0.0, 1 / 3, 1.0, 1.2])),
                               [0.0, 0.0, np.sqrt(0.5), 1.0, 1.0])


def test_paper_equation_4_full_map_against_truth_is_c_ref(case):
    """FSC((M1 + M2)/2, T) = C_ref(FSC(M1, M2)), shell by shell."""
    average = case["M1"].like((case["M1"].data + case["M2"].data) / 2)
    measured = fsc(average, case["T"]).value
    predicted = c_ref(fsc(case["M1"], case["M2"]).value)
    shells = fourier_shells(SHAPE, VOXEL)
    expected = np.sqrt(expected_ratio(shells, SIGNAL, lambda k: SIGNAL(k) + NOISE(k) / 2, VOXEL))
    assert np.all(np.abs(measured - expected) < _tolerance(expected, shells.counts))
    # The prediction has the noise of two estimates; away from the noise floor it agrees.
    informative = expected > 0.3
    bound = 2 * _tolerance(expected, shells.counts)
    assert np.all(np.abs(measured - predicted)[informative] < bound[informative])


def test_scores_rank_the_ideal_denoiser_first(case):
    m1, m2, truth = case["M1"], case["M2"], case["T"]
    average = m1.like((m1.data + m2.data) / 2)
    cref = c_ref(fsc(m1, m2).value)
    ideal = cref_rmse(fsc(truth, average).value, cref)
    noisy = cref_rmse(fsc(average, average).value, cref)
    assert ideal < 0.05 < 0.3 < noisy
    assert cref_l1(fsc(truth, average).value, cref) < 0.05
    # Leaving all the noise in has FSC_FD = 1, so the L1 score is the mean of 1 - C_ref.
    assert cref_l1(np.ones_like(cref), cref) == pytest.approx(np.mean(1 - cref))


def test_variance_analysis_recovers_constructed_variances(case):
    """D_i = a·S + B + c·N_i + E_i: var(S), var(N), var(B) = (a-1)²S + B, var(N^d) = c²N + E."""
    rng = case["rng"]
    a, c = 0.8, 0.3
    bias_power = lambda k: 0.5 * np.exp(-((k / 0.2) ** 2))  # noqa: E731
    fresh_power = lambda k: 0.2 * np.ones_like(k)  # noqa: E731
    bias = field(rng, SHAPE, VOXEL, bias_power)
    m1 = case["M1"]
    d1 = m1.like(a * case["T"].data + bias + c * case["N1"] + field(rng, SHAPE, VOXEL, fresh_power))
    d2 = m1.like(a * case["T"].data + bias + c * case["N2"] + field(rng, SHAPE, VOXEL, fresh_power))
    spectra = Spectra(m1)
    for name, vol in (("M1", m1), ("M2", case["M2"]), ("D1", d1), ("D2", d2)):
        spectra.add(name, vol)
    curves = variance_analysis(spectra)
    shells = spectra.shells
    one = lambda k: np.ones_like(k)  # noqa: E731
    mean_of = lambda p: expected_ratio(shells, p, one, VOXEL)  # noqa: E731  (shell mean of a power)
    expected = {
        "var_signal": mean_of(SIGNAL),
        "var_noise": mean_of(NOISE),
        "var_bias": mean_of(lambda k: (a - 1) ** 2 * SIGNAL(k) + bias_power(k)),
        "var_leftover_noise": mean_of(lambda k: c**2 * NOISE(k) + fresh_power(k)),
        # what the denoised halves share: the kept signal and the bias
        "cov_d1d2": mean_of(lambda k: a**2 * SIGNAL(k) + bias_power(k)),
    }
    # The unit of cov is the power of unit white noise times the voxel count (numpy's rfftn).
    unit = np.prod(SHAPE)
    scale = mean_of(lambda k: SIGNAL(k) + NOISE(k))  # the spread of each estimate per shell
    for name, want in expected.items():
        got = curves[name] / unit
        err = np.abs(got - want) / scale
        assert np.all(err < 8 / np.sqrt(shells.counts / 2) + 1e-3), name


def test_evaluate_reports_every_metric_or_why_not(case):
    m1, m2 = case["M1"], case["M2"]
    average = m1.like((m1.data + m2.data) / 2)
    mask = m1.like(np.ones(SHAPE))
    report = evaluate(m1, m2, average, mask=mask, truth=case["T"])
    assert set(report.scalars) == {"unmasked", "masked"}
    unmasked = report.scalars["unmasked"]
    assert unmasked["cref_rmse"] > 0.3  # the noisy map keeps all its noise
    notes = report.notes["unmasked"]
    assert unmasked["fsc05_change"] is None and "denoised half-maps" in notes["fsc05_change"]
    assert unmasked["d_fsc_model_0143"] is None and notes["d_fsc_model_0143"] == "no model given"
    correlation = np.corrcoef(average.data.ravel(), case["T"].data.ravel())[0, 1]
    assert unmasked["truth_corr"] == pytest.approx(correlation, abs=1e-6)
    # A mask of ones changes nothing.
    for key in ("cref_rmse", "res_half_0143", "truth_res_05"):
        assert report.scalars["masked"][key] == pytest.approx(unmasked[key], rel=1e-5)
    curves = report.curves
    assert {"fsc_half", "c_ref", "fsc_fd", "fsc_truth"} <= set(curves["curve"])
    assert len(report.rows()) == 2


def test_evaluate_with_halves_gives_fsc05_change(case):
    m1, m2 = case["M1"], case["M2"]
    report = evaluate(m1, m2, case["T"], denoised_half1=case["T"], denoised_half2=case["T"])
    after = report.scalars["unmasked"]["res_d2m1_05"]
    before = report.scalars["unmasked"]["res_half_05"]
    assert report.scalars["unmasked"]["fsc05_change"] == pytest.approx(after - before)
    assert after < before  # the truth correlates better with M1 than M2 does
    assert "masked" not in report.scalars  # no mask, no model: no masked row


def test_evaluate_refuses_mismatched_grids(case):
    m1 = case["M1"]
    with pytest.raises(GeometryMismatch):
        evaluate(m1, case["M2"], Volume(np.zeros((64, 64, 60)), VOXEL))
    with pytest.raises(ValueError, match="both denoised half-maps"):
        evaluate(m1, case["M2"], m1, denoised_half1=m1)


def test_shells_a_filter_empties_count_as_lost_signal(case):
    """A hard low-pass keeps FSC_FD = 1 below its edge and is scored 0 beyond, not skipped."""
    m1, m2 = case["M1"], case["M2"]
    average = (m1.data.astype(np.float64) + m2.data) / 2
    shells = fourier_shells(m1.shape, m1.voxel_size)
    keep_shells = shells.n // 2
    spectrum = np.fft.rfftn(average)
    keep = (shells.index >= 0) & (shells.index < keep_shells)  # index 0 is shell 1
    keep[0, 0, 0] = True  # the mean
    lowpassed = np.fft.irfftn(spectrum * keep, s=m1.shape, axes=(0, 1, 2))
    report = evaluate(m1, m2, m1.like(lowpassed.astype(np.float32)))
    curves = report.curves.set_index(["masking", "curve", "shell"]).sort_index()["value"]
    fsc_fd = curves.loc[("unmasked", "fsc_fd")].to_numpy()
    cref = curves.loc[("unmasked", "c_ref")].to_numpy()
    np.testing.assert_allclose(fsc_fd[:keep_shells], 1.0, atol=1e-4)
    np.testing.assert_array_equal(fsc_fd[keep_shells:], 0.0)
    expected = np.sqrt(np.mean((fsc_fd ** 2 - cref ** 2) ** 2))
    assert report.scalars["unmasked"]["cref_rmse"] == pytest.approx(expected, rel=1e-9)
    assert report.scalars["unmasked"]["cref_l1"] == pytest.approx(np.mean(np.abs(cref - fsc_fd)),
                                                                  rel=1e-9)


def test_evaluate_model_map_fsc_finds_the_resolution_of_a_lowpassed_model_map(tmp_path):
    """D = the model map low-passed at 4 Å: d_fsc_model at 0.143 is 4 Å, for a structure or a
    file."""
    from cref_bench.metrics.model_map import model_map
    from tests.test_model_map import lowpass, random_atoms

    structure = random_atoms(300, 12.0, 52.0, seed=5)
    like = Volume(np.zeros((64, 64, 64), np.float32), 1.0, origin=(0.0, 0.0, 0.0))
    rng = np.random.default_rng(2)
    sharp = model_map(structure, like, d_min=2.0)
    denoised = lowpass(sharp, 4.0)
    halves = [sharp.like(sharp.data + rng.standard_normal(sharp.shape).astype(np.float32))
              for _ in range(2)]
    path = tmp_path / "model.cif"
    structure.setup_entities()
    structure.make_mmcif_document().write_file(str(path))
    reports = [evaluate(*halves, denoised, model=m, model_resolution=2.0)
               for m in (structure, str(path))]
    width = 1.0 / 64
    for report in reports:
        d = report.scalars["unmasked"]["d_fsc_model_0143"]
        assert 1 / (0.25 + 1.5 * width) <= d <= 1 / (0.25 - 1.5 * width)
        # The masked row uses a soft mask around the atoms: it leaves out the noise of the
        # solvent, so the noisy input agrees with the model to a far better resolution.
        masked, unmasked = report.scalars["masked"], report.scalars["unmasked"]
        assert masked["d_fsc_model_0143_input"] < 0.5 * unmasked["d_fsc_model_0143_input"]
    for masking in ("unmasked", "masked"):  # the file keeps coordinates to 1e-3 Å
        for name, value in reports[0].scalars[masking].items():
            other = reports[1].scalars[masking][name]
            assert other is None if value is None else other == pytest.approx(value, rel=1e-5)


def _flip_shells_finer_than(volume: Volume, resolution: float) -> Volume:
    """``volume`` with the sign of every Fourier coefficient finer than ``resolution`` flipped."""
    import scipy.fft

    spectrum = scipy.fft.rfftn(volume.data)
    shells = fourier_shells(volume.shape, volume.voxel_size)
    frequency = np.append(shells.frequency, np.inf)[shells.index]  # corners: beyond Nyquist
    spectrum[(frequency > 1 / resolution) & (shells.index >= 0)] *= -1
    return volume.like(scipy.fft.irfftn(spectrum, s=volume.shape).astype(np.float32))


def test_cref_rmse_counts_anticorrelated_shells_as_lost(case):
    """A contrast-inverted output, or one with its fine shells inverted, scores worse than the
    same output with the right sign (FSC_FD below 0 counts as 0, not as its square)."""
    m1, m2, truth = case["M1"], case["M2"], case["T"]
    average = m1.like((m1.data + m2.data) / 2)
    cref = c_ref(fsc(m1, m2).value)
    right = cref_rmse(fsc(truth, average).value, cref)
    inverted = cref_rmse(fsc(truth.like(-truth.data), average).value, cref)
    fine_flipped = cref_rmse(fsc(_flip_shells_finer_than(truth, 6.0), average).value, cref)
    assert right < 0.05
    assert inverted == pytest.approx(cref_rmse(np.zeros_like(cref), cref)) and inverted > 0.5
    assert fine_flipped > right + 0.1
    # unclipped, the sign would not matter at all
    assert np.sqrt(np.nanmean((fsc(truth.like(-truth.data), average).value ** 2 - cref ** 2)
                              ** 2)) == pytest.approx(right, rel=1e-6)


def test_crossings_that_never_happen_are_bounds_not_gaps(case):
    """A map against itself never falls below 0.5: its resolutions are reported as the
    Nyquist resolution with the bound '<'; so is the FSC-0.5 change of "denoised halves"
    that are copies of each other's input (D2 = M1)."""
    m1, m2, truth = case["M1"], case["M2"], case["T"]
    report = evaluate(m1, m2, truth, denoised_half1=m2, denoised_half2=m1, truth=truth)
    values, notes, bounds = (report.scalars["unmasked"], report.notes["unmasked"],
                             report.bounds["unmasked"])
    nyquist = 1 / fourier_shells(SHAPE, VOXEL).frequency[-1]
    for metric in ("truth_res_0143", "truth_res_05", "res_d2m1_05"):
        assert values[metric] == pytest.approx(nyquist) and bounds[metric] == "<"
        assert "never crosses" in notes[metric]
    half = fsc(m1, m2).resolution_at(0.5).resolution
    assert values["fsc05_change"] == pytest.approx(nyquist - half)
    assert bounds["fsc05_change"] == "<" and values["fsc05_change"] < 0
    assert "res_half_0143" not in bounds  # a real crossing is no bound


def test_a_noise_free_map_never_crosses_against_its_own_model():
    """FSC(truth, model map of the truth's model) stays near 1 up to Nyquist, so d_fsc_model
    is the bound '< Nyquist' in both rows; a tapered model map would bend the last shells."""
    from cref_bench.metrics.model_map import model_map
    from dataset_builder.synthetic import make_phantom

    phantom = make_phantom(11, box=64, voxel_size=1.2, resolution=4.0, b_factor=0.0)
    truth = phantom.truth
    report = evaluate(truth, truth, truth, mask=phantom.mask, model=phantom.structure)
    nyquist = 1 / fourier_shells(truth.shape, truth.voxel_size).frequency[-1]
    for masking in ("unmasked", "masked"):
        for metric in ("d_fsc_model_0143", "d_fsc_model_05"):
            assert report.scalars[masking][metric] == pytest.approx(nyquist)
            assert report.bounds[masking][metric] == "<"
    curve = report.curves[(report.curves["masking"] == "unmasked")
                          & (report.curves["curve"] == "fsc_model")]["value"].to_numpy()
    assert curve.min() > 0.99
    tapered = fsc(truth, model_map(phantom.structure, truth, taper=True)).value
    assert tapered[-1] < 0.9


def test_resolutions_equal_up_to_rounding_differ_by_exactly_zero():
    from cref_bench.metrics.fsc import resolution_change

    assert resolution_change(3.000000012, 3.0) == 0.0  # 4e-9 relative: rounding
    assert resolution_change(3.01, 3.0) == pytest.approx(0.01)
    np.testing.assert_array_equal(resolution_change([2.0, 4.0 + 1e-8, np.nan], [2.5, 4.0, 1.0]),
                                  [-0.5, 0.0, np.nan])


def test_a_map_unchanged_up_to_rounding_has_no_fsc05_change(case):
    """D2 = M2 through a float32 Fourier round trip (as a filter that keeps every shell below
    its cutoff): the FSC-0.5 crossing moves by rounding only, and the change is exactly 0."""
    import scipy.fft

    def round_trip(volume):
        data = scipy.fft.irfftn(scipy.fft.rfftn(volume.data), s=volume.data.shape)
        return volume.like(data.astype(np.float32))

    m1, m2 = case["M1"], case["M2"]
    d1, d2 = round_trip(m1), round_trip(m2)
    assert not np.array_equal(d2.data, m2.data)  # changed, by rounding
    report = evaluate(m1, m2, m1.like((d1.data + d2.data) / 2), denoised_half1=d1,
                      denoised_half2=d2)
    assert report.scalars["unmasked"]["fsc05_change"] == 0.0
