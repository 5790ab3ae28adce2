"""The ``lafter`` method (baselines.lafter) against known answers: LAFTER v1.1's rules worked
by hand, a plain transcription of the published algorithm, phantoms with known agreement,
and invariances of the box."""

import logging
import math

import numpy as np
import pytest
import scipy.special
from scipy import ndimage

from baselines.lafter.algorithm import (
    FIRST_BAND,
    START_MAX_RES,
    diameter_mask,
    lafter,
    soften,
    truncate,
)
from baselines.lafter.method import Lafter
from cref_bench import Volume
from cref_bench.errors import GeometryMismatch, MapError
from cref_bench.methods.protocol import Method, available_methods, load_method


def _distance(shape, centre):
    grid = np.indices(shape, dtype=np.float64)
    return np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))


def _pair(shape, noise, seed, smooth=1.0, radius=None):
    """Halves = smooth signal (inside a ball of ``radius`` around the centre, if given) plus
    independent white noise of standard deviation ``noise``; and a soft spherical mask."""
    rng = np.random.default_rng(seed)
    signal = ndimage.gaussian_filter(rng.standard_normal(shape), smooth, mode="wrap")
    centre = [n / 2 for n in shape]
    r = _distance(shape, centre)
    if radius is not None:
        signal *= r <= radius
    signal /= signal.std()
    h1 = Volume(signal + noise * rng.standard_normal(shape), 1.5, source="h1")
    h2 = h1.like(signal + noise * rng.standard_normal(shape), source="h2")
    edge = min(shape) / 2 - 3
    mask = h1.like(np.clip(edge - r, 0.0, 1.0), source="mask")
    return h1, h2, mask, signal


# --- a plain transcription of the published algorithm (float64, full complex FFTs) ---------

def _transcription(v1, v2, m, cutoff, mitigate=False, sharpen=False):
    """LAFTER v1.1 step by step, written with numpy as the algorithm is stated."""
    shape = v1.shape
    grids = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij")
    s2 = sum(g ** 2 for g in grids)

    def low(rho):
        return 0.0 if rho <= 0 else 1.0 / np.sqrt(1.0 + (s2 / rho ** 2) ** 4)

    def transform(a):
        t = np.fft.fftn(a)
        t[0, 0, 0] = 0
        return t

    x1, x2 = transform(v1 * m), transform(v2 * m)
    core = m >= 0.99
    a1, a2 = np.zeros(shape), np.zeros(shape)
    bands = []
    lo, hi, max_res, appended = FIRST_BAND[0], FIRST_BAND[1], START_MAX_RES, False
    while True:
        w = low(hi) - low(lo)
        f1, f2 = w * x1, w * x2
        b1, b2 = np.fft.ifftn(f1).real, np.fft.ifftn(f2).real
        f = np.sum((f1 * np.conj(f2)).real) / np.sqrt(np.sum(abs(f1) ** 2) * np.sum(abs(f2) ** 2))
        noise, power = np.mean((b1 - b2)[core] ** 2), np.mean((b1 + b2)[core] ** 2)
        q, rms, sigma = abs(1 - noise / power), np.sqrt(power), np.sqrt(2 * noise)
        e = scipy.special.erf(abs(b1 + b2) / sigma)
        p = e * q / (e * q + (1 - e) * (1 - q))
        a1 += b1 * p * (hi - lo) / rms
        a2 += b2 * p * (hi - lo) / rms
        mean_p = p[core].mean()
        bands.append((lo, hi, f, mean_p))
        if hi > max_res or f < cutoff:
            if mitigate and not appended and hi - lo < 0.0625:
                max_res, lo, hi, appended = lo, hi, hi + max(0.475 - hi, 0.0625), True
                continue
            max_res = lo
            break
        lo, hi = hi, hi + mean_p * hi / 16
    y1, y2 = transform(a1 * m), transform(a2 * m)
    out = np.zeros(shape)
    k = 1.0
    for i, (_, hi, _, _) in enumerate(reversed(bands)):
        c1, c2 = np.fft.ifftn(low(hi) * y1).real, np.fft.ifftn(low(hi) * y2).real
        n_max = np.max((c1 - c2)[core] ** 2)
        if mitigate and i == 0:
            while np.mean((c1 + c2)[core] ** 2 > k * n_max) > 0.025:
                k *= 2
        chosen = (out == 0) & ((c1 + c2) ** 2 > k * n_max)
        out[chosen] = (c1 + c2)[chosen]
    for _ in range(8):
        neighbours = sum(np.roll(out, step, axis) for axis in range(3) for step in (1, -1)) / 6
        out = np.where(out == 0, neighbours, out)
    final = np.fft.fftn(out * m) * low(max_res)
    if sharpen:
        final *= 2.0 ** (8 * s2)
    return np.fft.ifftn(final).real, bands, max_res, k, appended


@pytest.mark.parametrize("shape, mitigate, sharpen", [((32, 32, 32), False, False),
                                                      ((24, 30, 36), True, True)])
def test_agrees_with_a_plain_transcription_of_the_algorithm(shape, mitigate, sharpen):
    h1, h2, mask, _ = _pair(shape, noise=0.8, seed=3, radius=min(shape) / 3)
    spectrum, report = lafter(h1.data, h2.data, mask.data, fsc_cutoff=0.143, sharpen=sharpen,
                              mitigate=mitigate)
    ours = np.fft.irfftn(spectrum, s=shape, axes=(0, 1, 2))
    v1, v2, m = (v.data.astype(np.float64) for v in (h1, h2, mask))
    theirs, bands, max_res, k, appended = _transcription(v1, v2, m, 0.143, mitigate, sharpen)
    assert len(report.bands) == len(bands)
    for band, (lo, hi, f, mean_p) in zip(report.bands, bands):
        assert band.lo == pytest.approx(lo, rel=1e-5) and band.hi == pytest.approx(hi, rel=1e-5)
        assert band.fsc == pytest.approx(f, abs=1e-5)
        assert band.mean_prob == pytest.approx(mean_p, abs=1e-5)
    assert report.max_res == pytest.approx(max_res, rel=1e-5)
    assert report.noise_factor == k
    assert report.bands[-1].appended is appended is mitigate
    # float32 against float64: equal but for rounding
    assert np.sqrt(np.mean((ours - theirs) ** 2)) <= 1e-4 * np.sqrt(np.mean(theirs ** 2))


def test_band_schedule_of_identical_halves_is_the_step_rule_by_hand():
    """Identical halves: no noise, so q = 1, p = 1 and MeanProb = 1; the FSC is 1 in every band.
    Bands then grow by 1 + 1/16 from [1e-10, 0.025] until one ends past 0.45."""
    h1, _, mask, _ = _pair((32, 32, 32), noise=0.5, seed=4)
    method = Lafter()
    method.denoise(h1, h1.like(h1.data.copy(), source="copy"), mask)
    bands = method.report.bands
    # by hand: hi_n = 0.025 (17/16)^(n-1) > 0.45  <=>  n - 1 > ln 18 / ln(17/16) = 47.68
    assert len(bands) == 49
    assert (bands[0].lo, bands[0].hi) == FIRST_BAND
    expected_hi = [0.025 * (17 / 16) ** i for i in range(49)]
    np.testing.assert_allclose([b.hi for b in bands], expected_hi, rtol=1e-12)
    np.testing.assert_allclose([b.lo for b in bands[1:]], expected_hi[:-1], rtol=1e-12)
    assert all(b.mean_prob == 1.0 and b.fsc == pytest.approx(1.0, abs=1e-6) for b in bands)
    assert bands[-2].hi <= 0.45 < bands[-1].hi
    assert method.report.max_res == bands[-1].lo == pytest.approx(0.025 * (17 / 16) ** 47)
    # with mitigation, one band of width 0.0625 is appended (0.475 - hi < 0.0625 here), and its
    # own stop sets the stop resolution to its lower edge
    mitigated = Lafter(mitigate_overfitting=True)
    mitigated.denoise(h1, h1.like(h1.data.copy()), mask)
    extra = mitigated.report.bands
    assert len(extra) == 50 and extra[-1].appended and not any(b.appended for b in extra[:-1])
    assert extra[-1].lo == pytest.approx(expected_hi[-1])
    assert extra[-1].hi - extra[-1].lo == pytest.approx(0.0625)
    assert mitigated.report.max_res == pytest.approx(expected_hi[-1])
    assert mitigated.report.noise_factor == 1.0  # no noise at all: the factor cannot be set


def _independent_band_fsc(h1, h2, mask, lo, hi):
    """The band FSC over the full complex transform, Butterworth band-pass, numpy only."""
    s2 = sum(g ** 2 for g in np.meshgrid(*[np.fft.fftfreq(n) for n in h1.shape], indexing="ij"))
    w = 1 / np.sqrt(1 + (s2 / hi ** 2) ** 4) - 1 / np.sqrt(1 + (s2 / lo ** 2) ** 4)
    f1 = w * np.fft.fftn(h1.data * mask.data)
    f2 = w * np.fft.fftn(h2.data * mask.data)
    f1[0, 0, 0] = f2[0, 0, 0] = 0
    return np.sum((f1 * np.conj(f2)).real) / np.sqrt(np.sum(abs(f1) ** 2) * np.sum(abs(f2) ** 2))


def test_cutoff_stops_in_the_first_band_below_it():
    """A signal whose power falls as a Gaussian under white noise: the band FSC falls through
    0.5 and then 0.143; each cut-off stops in the first band whose FSC (computed here
    independently) is below it, and a higher cut-off stops earlier."""
    h1, h2, mask, _ = _pair((40, 40, 40), noise=1.0, seed=6, smooth=1.5)
    stops = {}
    for cutoff in (0.143, 0.5):
        method = Lafter(fsc_cutoff=cutoff)
        method.denoise(h1, h2, mask)
        bands = method.report.bands
        independent = [_independent_band_fsc(h1, h2, mask, b.lo, b.hi) for b in bands]
        np.testing.assert_allclose([b.fsc for b in bands], independent, atol=1e-5)
        assert all(f >= cutoff and b.hi <= START_MAX_RES for f, b in zip(independent[:-1], bands))
        assert independent[-1] < cutoff and bands[-1].hi <= START_MAX_RES
        assert method.report.max_res == bands[-1].lo
        stops[cutoff] = method.report.max_res
    assert 0.05 < stops[0.5] < stops[0.143] < START_MAX_RES


def test_output_keeps_the_region_where_the_halves_agree():
    """Signal only in a ball of radius 8 off centre; pure independent noise elsewhere in the
    mask. Away from the ball (beyond the 8 voxels of softening and 3 of low-pass tail) the
    output keeps under 3 % of the ball's rms (the average keeps 21 %), and inside it follows
    the signal."""
    shape = (48, 48, 48)
    rng = np.random.default_rng(1)
    r = _distance(shape, (24, 24, 14))
    ball = r <= 8
    signal = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
    signal = np.where(ball, signal / signal[ball].std(), 0.0)
    mask_data = np.clip(21 - _distance(shape, (24, 24, 24)), 0.0, 1.0)
    h1 = Volume(signal + 0.3 * rng.standard_normal(shape), 1.0, source="h1")
    h2 = h1.like(signal + 0.3 * rng.standard_normal(shape), source="h2")
    out = Lafter().denoise(h1, h2, h1.like(mask_data, source="mask")).full.data
    far = (r > 8 + 8 + 3) & (mask_data >= 0.99)
    assert far.sum() > 10000
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))  # noqa: E731
    average = (h1.data + h2.data) / 2
    assert rms(average[far]) / rms(average[ball]) > 0.2
    assert rms(out[far]) / rms(out[ball]) < 0.03
    assert np.sum(out[r <= 11] ** 2) / np.sum(out ** 2) > 0.98
    assert np.corrcoef(out[ball], signal[ball])[0, 1] > 0.95
    assert np.all(out[mask_data == 0] == pytest.approx(0, abs=0.05 * rms(out[ball])))


def test_truncation_keeps_the_highest_passing_resolution():
    """Three low-passes, highest first, with noise maximum 1 in each: voxel 0 passes at the
    first and keeps that value; voxel 1 passes only at the second; voxel 2 never does."""
    core = np.ones((1, 1, 4), dtype=bool)
    difference = np.array([[[1.0, 0.5, 0.0, -0.2]]], dtype=np.float32)  # max² = 1
    pairs = [(difference, np.array([[[3.0, 0.9, 0.1, 0.0]]], dtype=np.float32)),
             (difference, np.array([[[5.0, -2.0, 0.2, 0.0]]], dtype=np.float32)),
             (difference, np.array([[[7.0, 4.0, -1.0, 0.0]]], dtype=np.float32))]
    out, k, per_band = truncate(iter(pairs), core)
    np.testing.assert_array_equal(out, [[[3.0, -2.0, 0.0, 0.0]]])  # -1.0² = 1 is not above 1
    assert k == 1.0
    assert per_band == [(1.0, 0.25), (1.0, 0.5), (1.0, 0.5)]


def test_mitigation_noise_factor_doubles_past_the_2_5_percent_rule():
    """1000 core voxels, noise maximum 1; 10 % of sums have sum² = 3 and 2 % have sum² = 20:
    k = 1 (12 % above), 2 (12 %), 4 (2 % <= 2.5 %): k = 4."""
    n = 1000
    core = np.ones((1, 1, n), dtype=bool)
    difference = np.zeros((1, 1, n), dtype=np.float32)
    difference[0, 0, 0] = 1.0
    total = np.zeros((1, 1, n), dtype=np.float32)
    total[0, 0, :100] = np.sqrt(3.0)
    total[0, 0, 100:120] = np.sqrt(20.0)
    out, k, per_band = truncate(iter([(difference, total)]), core, mitigate=True)
    assert k == 4.0
    assert np.count_nonzero(out) == 20 and per_band == [(1.0, 0.02)]
    _, k_off, _ = truncate(iter([(difference, total)]), core, mitigate=False)
    assert k_off == 1.0


def test_soften_by_hand():
    box = np.zeros((7, 7, 7), dtype=np.float32)
    box[3, 3, 3] = 6.0
    one = soften(box.copy(), sweeps=1)
    assert one[3, 3, 3] == 6.0 and one[3, 3, 4] == 1.0 and one[2, 3, 3] == 1.0
    assert np.count_nonzero(one) == 7
    two = soften(box.copy(), sweeps=2)
    assert two[3, 3, 5] == pytest.approx(1 / 6) and two[3, 4, 4] == pytest.approx(2 / 6)
    assert two[3, 3, 4] == 1.0  # set in sweep 1, kept
    edge = np.zeros((7, 7, 7), dtype=np.float32)
    edge[0, 0, 0] = 6.0
    wrapped = soften(edge, sweeps=1)
    assert wrapped[6, 0, 0] == 1.0 and wrapped[0, 0, 6] == 1.0  # the box is periodic


def test_diameter_mask_values_in_angstrom():
    mask = diameter_mask((16, 20, 24), (2.0, 2.0, 2.0), 20.0)  # r = 10 Å = 5 voxels
    centre = (8, 10, 12)
    assert mask.dtype == np.float32 and mask[centre] == 1.0
    assert mask[8, 10, 17] == pytest.approx(1 / math.sqrt(2))  # d = r
    assert mask[8, 0, 12] == pytest.approx(1 / math.sqrt(1 + 2.0 ** 8))  # d = 2r
    with pytest.raises(ValueError, match="particle_diameter"):
        diameter_mask((4, 4, 4), 1.0, -3.0)


def test_mask_or_particle_diameter():
    h1, h2, mask, _ = _pair((32, 32, 32), noise=0.8, seed=8)
    by_diameter = Lafter(particle_diameter=30.0).denoise(h1, h2).full.data
    sphere = h1.like(diameter_mask(h1.shape, h1.voxel_size, 30.0), source="sphere")
    np.testing.assert_array_equal(by_diameter, Lafter().denoise(h1, h2, sphere).full.data)
    # a given mask wins over the diameter
    with_mask = Lafter(particle_diameter=30.0).denoise(h1, h2, mask)
    np.testing.assert_array_equal(with_mask.full.data, Lafter().denoise(h1, h2, mask).full.data)
    assert "mask: mask;" in with_mask.note
    # neither: the mask is 1 everywhere
    ones = h1.like(np.ones(h1.shape), source="ones")
    plain = Lafter().denoise(h1, h2)
    np.testing.assert_array_equal(plain.full.data, Lafter().denoise(h1, h2, ones).full.data)
    assert "no mask nor particle diameter" in plain.note


def test_non_cubic_box_is_equivariant_to_axis_order_and_shifts():
    """Frequencies are defined per axis, so permuting the axes of a non-cubic box permutes the
    output; every step is periodic, so a circular shift shifts it."""
    h1, h2, mask, _ = _pair((24, 32, 40), noise=0.6, seed=9, radius=10)
    out = Lafter().denoise(h1, h2, mask).full.data
    assert out.shape == (24, 32, 40)
    scale = np.sqrt(np.mean(out ** 2))
    order = (2, 0, 1)
    moved = [Volume(np.ascontiguousarray(v.data.transpose(order)), 1.5, source=v.source)
             for v in (h1, h2, mask)]
    permuted = Lafter().denoise(*moved).full.data
    assert np.max(np.abs(permuted - out.transpose(order))) <= 1e-4 * scale
    shift = (3, -5, 7)
    rolled = [v.like(np.roll(v.data, shift, axis=(0, 1, 2))) for v in (h1, h2, mask)]
    shifted = Lafter().denoise(*rolled).full.data
    assert np.max(np.abs(shifted - np.roll(out, shift, axis=(0, 1, 2)))) <= 1e-4 * scale


def test_upsampled_variant_agrees_on_the_input_grid():
    h1, h2, mask, _ = _pair((32, 32, 32), noise=0.8, seed=11, radius=10)
    down = Lafter().denoise(h1, h2, mask)
    up = Lafter(upsample=True).denoise(h1, h2, mask)
    assert up.full.shape == down.full.shape and up.full.voxel_size == down.full.voxel_size
    difference = np.sqrt(np.mean((up.full.data - down.full.data) ** 2))
    assert difference <= 1e-5 * np.sqrt(np.mean(down.full.data ** 2))
    assert "upsampled ×2 (64x64x64 voxels of 0.75 Å)" in up.note and "upsampled" not in down.note


def test_sharpening_multiplies_the_spectrum_by_2_to_the_8_s_squared():
    h1, h2, mask, _ = _pair((32, 32, 32), noise=0.8, seed=12, radius=10)
    plain = np.fft.rfftn(Lafter().denoise(h1, h2, mask).full.data)
    sharp = np.fft.rfftn(Lafter(sharpen=True).denoise(h1, h2, mask).full.data)
    s2 = sum(g ** 2 for g in np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32),
                                         np.fft.rfftfreq(32), indexing="ij"))
    strong = abs(plain) > 1e-2 * abs(plain).max()
    assert strong.sum() > 1000
    np.testing.assert_allclose((sharp / plain)[strong].real, 2.0 ** (8 * s2[strong]), rtol=1e-3)


def test_self_check_is_logged_and_kept(caplog):
    h1, h2, mask, _ = _pair((32, 32, 32), noise=0.8, seed=13, radius=10)
    method = Lafter()
    with caplog.at_level(logging.DEBUG, logger="baselines.lafter"):
        result = method.denoise(h1, h2, mask)
    report = method.report
    records = [r for r in caplog.records if r.name == "baselines.lafter"]
    info = [r.getMessage() for r in records if r.levelno == logging.INFO]
    debug = [r.getMessage() for r in records if r.levelno == logging.DEBUG]
    # INFO: each band of pass 1 with its FSC, C_ref and MeanProb, and the summary
    assert [m.split(" [")[0] for m in info if m.startswith("band ")] == [
        f"band {i}" for i in range(1, len(report.bands) + 1)]
    assert all(f"FSC {b.fsc:.4f}, C_ref {b.cref:.4f}, MeanProb {b.mean_prob:.4f}" in m
               for b, m in zip(report.bands, (m for m in info if m.startswith("band "))))
    assert any(f"stop at {report.max_res:.4f} cycles/voxel" in m for m in info)
    # DEBUG: pass 2 and the self-check, band by band
    assert sum(m.startswith("self-check band") for m in debug) == len(report.bands)
    assert sum(m.startswith("low-pass ") for m in debug) == len(report.bands)
    assert result.half1 is None and result.half2 is None
    assert "no denoised half-maps" in result.note and report.summary() in result.note
    # the self-check: C_ref of the halves against FSC(output, V1 + V2), weighted by band width
    widths = np.array([b.hi - b.lo for b in report.bands])
    gaps = np.array([b.cref - b.output_fsc for b in report.bands])
    expected = np.sqrt(np.sum(widths * gaps ** 2) / widths.sum())
    assert report.self_check_rmsd == pytest.approx(expected)
    assert 0 <= report.self_check_rmsd < 0.2
    assert all(b.cref == pytest.approx(np.sqrt(2 * b.fsc / (1 + b.fsc))) for b in report.bands)
    assert 0 < report.recovery <= 1 and report.fft_count == 4 * len(report.bands) + 6


def test_registered_with_its_parameters():
    assert "lafter" in available_methods()
    method = load_method("lafter", fsc_cutoff=0.5, sharpen=True, particle_diameter=120)
    assert isinstance(method, Lafter) and isinstance(method, Method)
    assert method.name == "lafter" and method.version and method.needs_gpu is False
    assert method.params() == {"fsc_cutoff": 0.5, "sharpen": True, "upsample": False,
                               "particle_diameter": 120.0, "mitigate_overfitting": False}
    assert Lafter().params() == {"fsc_cutoff": 0.143, "sharpen": False, "upsample": False,
                                 "particle_diameter": None, "mitigate_overfitting": False}
    for bad in ({"fsc_cutoff": 0.05}, {"fsc_cutoff": 1.5}, {"fsc_cutoff": "0.143"},
                {"sharpen": "yes"}, {"upsample": 1}, {"particle_diameter": -10},
                {"mitigate_overfitting": None}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Lafter(**bad)


def test_bad_input_is_refused_by_name():
    h1, h2, mask, _ = _pair((16, 16, 16), noise=0.8, seed=14)
    with pytest.raises(MapError, match=r"mask: mask values must lie in \[0, 1\]"):
        Lafter().denoise(h1, h2, mask.like(mask.data * 2, source="mask"))
    with pytest.raises(GeometryMismatch, match="small-mask"):
        Lafter().denoise(h1, h2, Volume(np.ones((8, 16, 16)), 1.5, source="small-mask"))
    with pytest.raises(GeometryMismatch, match="other-half"):
        Lafter().denoise(h1, Volume(h2.data, 2.0, source="other-half"), mask)
    with pytest.raises(MapError, match="flat: the mask has no voxel >= 0.99"):
        Lafter().denoise(h1, h2, mask.like(np.full(h1.shape, 0.5), source="flat"))
    broken = h2.data.copy()
    broken[0, 0, 0] = np.nan
    with pytest.raises(MapError, match="nan-half"):
        Lafter().denoise(h1, h2.like(broken, source="nan-half"), mask)
