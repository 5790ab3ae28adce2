"""The classic baselines (baselines.classic) against known answers on simulated half-maps."""

import numpy as np
import pytest

from baselines.classic import FSCWeight, Lowpass, Noisy, Wiener, shell_weight_array
from cref_bench import Volume
from cref_bench.errors import GeometryMismatch
from cref_bench.methods.protocol import Method, load_method
from cref_bench.metrics.fsc import FSCCurve, Spectra, fsc
from cref_bench.metrics.scores import c_ref, weighted_agreement
from cref_bench.metrics.shells import fourier_shells
from tests.helpers_fields import field

SHAPE, VOXEL = (48, 48, 48), (1.5, 1.5, 1.5)
SIGNAL = lambda k: 40 * np.exp(-((k / 0.08) ** 2)) + 1e-4  # noqa: E731
NOISE = lambda k: np.ones_like(k)  # noqa: E731
METHODS = (Noisy, Lowpass, FSCWeight, Wiener)


def _soft_sphere(shape, radius, edge):
    centre = (np.asarray(shape) - 1) / 2
    grid = np.indices(shape, dtype=np.float64)
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    return np.clip((radius + edge - r) / edge, 0.0, 1.0)


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(5)
    truth = field(rng, SHAPE, VOXEL, SIGNAL) * _soft_sphere(SHAPE, 14, 4)
    m1 = Volume(truth + field(rng, SHAPE, VOXEL, NOISE), VOXEL, source="h1")
    m2 = m1.like(truth + field(rng, SHAPE, VOXEL, NOISE), source="h2")
    mask = m1.like(_soft_sphere(SHAPE, 16, 4), source="mask")
    return {"M1": m1, "M2": m2, "T": m1.like(truth, source="truth"), "mask": mask}


def _average(case):
    return (case["M1"].data + case["M2"].data) * np.float32(0.5)


def _shell_ratios(before: np.ndarray, after: np.ndarray):
    """Per shell: output/input power ratio and covariance(output, input)/input power."""
    like = Volume(before, VOXEL)
    spectra = Spectra(like)
    spectra.add("in", like)
    spectra.add("out", like.like(after))
    cross, p_in, p_out = spectra.cov(("in", "out"), ("in", "in"), ("out", "out"))
    return p_out / p_in, cross / p_in


def test_registered_and_parameterised():
    for name, cls in (("noisy", Noisy), ("lowpass", Lowpass), ("fsc-weight", FSCWeight),
                      ("wiener", Wiener)):
        method = load_method(name)
        assert isinstance(method, cls) and isinstance(method, Method)
        assert method.name == name and method.needs_gpu is False
    assert load_method("lowpass", threshold=0.5, edge_shells=1).params() == {
        "threshold": 0.5, "edge_shells": 1.0}
    with pytest.raises(ValueError, match="threshold"):
        Lowpass(threshold=1.5)
    with pytest.raises(ValueError, match="edge_shells"):
        Lowpass(edge_shells=-1)


def test_noisy_returns_exactly_the_average(case):
    out = Noisy().denoise(case["M1"], case["M2"], case["mask"])
    np.testing.assert_array_equal(out.full.data, _average(case))
    np.testing.assert_array_equal(out.half1.data, case["M1"].data)
    np.testing.assert_array_equal(out.half2.data, case["M2"].data)
    assert out.full.voxel_size == VOXEL


def test_shell_weight_array_lookup():
    shells = fourier_shells((8, 8, 8), (1.0, 1.0, 1.0))
    weights = np.arange(1, shells.n + 1, dtype=np.float64)
    weights[1] = np.nan
    voxels = shell_weight_array(shells, weights)
    assert voxels.dtype == np.float32 and voxels.shape == shells.index.shape
    assert voxels[0, 0, 0] == 1.0  # DC keeps the mean
    inside = shells.index >= 0
    np.testing.assert_array_equal(voxels[inside],
                                  np.nan_to_num(weights, nan=0.0)[shells.index[inside]])
    corners = (shells.index < 0)
    corners[0, 0, 0] = False
    assert corners.any() and np.all(voxels[corners] == 0)
    with pytest.raises(ValueError, match="shell weights"):
        shell_weight_array(shells, weights[:-1])


@pytest.mark.parametrize("edge_shells", [0, 3])
def test_lowpass_removes_power_beyond_the_cutoff_and_keeps_it_below(case, edge_shells):
    method = Lowpass(edge_shells=edge_shells)
    curve = fsc(case["M1"], case["M2"], case["mask"])
    cutoff = method.cutoff(curve)
    assert cutoff == pytest.approx(1 / curve.resolution_at(0.143).resolution)
    frequency = curve.frequency
    assert frequency[0] * 4 < cutoff < frequency[-1] * 0.9  # the case crosses mid-way
    out = method.denoise(case["M1"], case["M2"], case["mask"])
    keep = frequency <= cutoff - edge_shells * frequency[0] - 1e-12
    gone = frequency >= cutoff
    if edge_shells == 0:
        assert np.all(keep | gone)
    for before, after in ((_average(case), out.full.data), (case["M1"].data, out.half1.data),
                          (case["M2"].data, out.half2.data)):
        power, _ = _shell_ratios(before, after)
        assert np.all(power[gone] <= 1e-6)
        np.testing.assert_allclose(power[keep], 1.0, rtol=1e-4)
        edge = ~(keep | gone)
        assert np.all((power[edge] > 0) & (power[edge] < 1))
        assert after.mean() == pytest.approx(before.mean(), abs=1e-5)


def test_lowpass_cutoff_edge_cases():
    frequency = np.arange(1, 11) / 20.0
    counts = np.full(10, 100)
    method = Lowpass()
    assert method.cutoff(FSCCurve(frequency, np.full(10, 0.9), counts)) is None
    w_full, w_half = method.weights(FSCCurve(frequency, np.full(10, 0.9), counts))
    np.testing.assert_array_equal(w_full, 1.0)
    np.testing.assert_array_equal(w_half, 1.0)
    assert method.cutoff(FSCCurve(frequency, np.full(10, 0.01), counts)) == frequency[0]
    w_full, _ = method.weights(FSCCurve(frequency, np.full(10, 0.01), counts))
    np.testing.assert_array_equal(w_full, 0.0)


@pytest.mark.parametrize("cls, full_rule, half_rule", [
    (FSCWeight, lambda f: c_ref(f), lambda f: np.sqrt(np.clip(f, 0, 1))),
    (Wiener, lambda f: c_ref(f) ** 2, lambda f: np.clip(f, 0, 1)),
])
def test_shell_weights_equal_the_rule_per_shell(case, cls, full_rule, half_rule):
    """Output/input power is w² and covariance(output, input)/power is w, shell by shell."""
    f = fsc(case["M1"], case["M2"], case["mask"]).value
    out = cls().denoise(case["M1"], case["M2"], case["mask"])
    assert np.ptp(full_rule(f)) > 0.5  # the weights vary across the shells
    for before, after, rule in ((_average(case), out.full.data, full_rule),
                                (case["M1"].data, out.half1.data, half_rule),
                                (case["M2"].data, out.half2.data, half_rule)):
        power, gain = _shell_ratios(before, after)
        np.testing.assert_allclose(np.sqrt(power), rule(f), atol=2e-5)
        np.testing.assert_allclose(gain, rule(f), atol=2e-5)


def test_unmasked_weights_come_from_the_unmasked_fsc(case):
    f = fsc(case["M1"], case["M2"]).value
    assert not np.allclose(f, fsc(case["M1"], case["M2"], case["mask"]).value, atol=1e-3)
    out = FSCWeight().denoise(case["M1"], case["M2"])
    _, gain = _shell_ratios(_average(case), out.full.data)
    np.testing.assert_allclose(gain, c_ref(f), atol=2e-5)


def test_filters_bring_the_map_closer_to_the_truth(case):
    """Real-space agreement with the truth (inside the mask) improves; the unmasked per-shell
    FSC to the truth is unchanged (a positive per-shell weight cannot change a correlation
    within a shell; masking in real space mixes shells, so the masked FSC can move)."""
    truth, mask = case["T"], case["mask"]
    noisy = Noisy().denoise(case["M1"], case["M2"], mask).full
    base_corr, base_rmse = weighted_agreement(noisy.data, truth.data, mask.data)
    base_fsc = fsc(noisy, truth).value
    for cls in (Lowpass, FSCWeight, Wiener):
        out = cls().denoise(case["M1"], case["M2"], mask)
        corr, rmse = weighted_agreement(out.full.data, truth.data, mask.data)
        assert corr > base_corr + 0.02, cls.name
        assert rmse < 0.9 * base_rmse, cls.name
        half_corr, _ = weighted_agreement(out.half1.data, truth.data, mask.data)
        noisy_corr, _ = weighted_agreement(case["M1"].data, truth.data, mask.data)
        assert half_corr > noisy_corr + 0.02, cls.name
        if cls is not Lowpass:
            kept = cls().weights(fsc(case["M1"], case["M2"], mask))[0] > 1e-3
            assert kept.sum() > 10
            np.testing.assert_allclose(fsc(out.full, truth).value[kept], base_fsc[kept], atol=1e-4)


@pytest.mark.parametrize("cls", METHODS)
def test_scaling_the_halves_scales_the_output(case, cls):
    c = np.float32(3.7)
    method = cls()
    out = method.denoise(case["M1"], case["M2"], case["mask"])
    scaled = method.denoise(case["M1"].like(case["M1"].data * c),
                            case["M2"].like(case["M2"].data * c), case["mask"])
    for a, b in ((out.full, scaled.full), (out.half1, scaled.half1), (out.half2, scaled.half2)):
        assert b.data.dtype == np.float32 and b.shape == SHAPE
        np.testing.assert_allclose(b.data, c * a.data, atol=1e-5 * c * np.abs(a.data).max())


@pytest.mark.parametrize("cls", METHODS)
def test_mismatched_grids_are_refused(case, cls):
    other = Volume(np.zeros((48, 48, 40), np.float32), VOXEL, source="other.mrc")
    with pytest.raises(GeometryMismatch, match="other.mrc"):
        cls().denoise(case["M1"], other)


def test_gaussian_blurs_each_map_alone(case):
    from baselines.classic import Gaussian
    from cref_bench.methods.protocol import SingleMapMethod

    method = Gaussian(sigma=2.0)
    assert isinstance(method, SingleMapMethod) and method.params() == {"sigma": 2.0}
    out = method.denoise_map(case["M1"])
    assert out.data.std() < case["M1"].data.std()
    assert np.isclose(out.data.mean(), case["M1"].data.mean(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        Gaussian(sigma=0)
