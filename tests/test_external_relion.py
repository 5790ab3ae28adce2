"""A real program through the external adapter: RELION's relion_postprocess (Debian's relion
package; .ci/run installs it), run by the shipped recipe on phantoms with known truth."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy import ndimage

from baselines.classic import FSCWeight
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import load_method
from cref_bench.metrics.shells import fourier_shells
from cref_bench.run.contract import call_method
from cref_bench.run.runner import run_method

pytestmark = pytest.mark.skipif(
    shutil.which("relion_postprocess") is None,
    reason="relion_postprocess is not installed (apt-get install relion; .ci/run installs it)")


@pytest.fixture(scope="module")
def phantom():
    """A 64³ pair: a smooth truth inside a sphere plus white noise of 3 times its standard
    deviation, a soft mask, 1.5 Å voxels."""
    n, rng = 64, np.random.default_rng(0)
    z, y, x = np.ogrid[:n, :n, :n]
    radius = np.sqrt((z - n / 2) ** 2 + (y - n / 2) ** 2 + (x - n / 2) ** 2)
    truth = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), 2.0) * (radius < 0.4 * n)
    truth = (truth / truth.std()).astype(np.float32)
    halves = [Volume(truth + 3 * rng.standard_normal(truth.shape).astype(np.float32), 1.5)
              for _ in range(2)]
    mask = Volume(np.clip((0.38 * n - radius) / 4, 0, 1).astype(np.float32), 1.5)
    return halves[0], halves[1], mask, truth


def _corr(a, b, where=None):
    a, b = np.asarray(a), np.asarray(b)
    if where is not None:
        a, b = a[where], b[where]
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_postprocess_weights_the_shells_like_fsc_weighting(phantom):
    half1, half2, mask, truth = phantom
    inside = mask.data > 0.5
    out = call_method(load_method("recipe:relion-postprocess", sharpening=[]), half1, half2,
                      mask)
    ours = FSCWeight().denoise(half1, half2, mask)
    noisy = (half1.data + half2.data) / 2
    # measured: noisy 0.67, relion 0.979, fsc-weight 0.975 (truth correlation in the mask)
    assert _corr(out.full.data, truth, inside) > _corr(noisy, truth, inside) + 0.1
    assert abs(_corr(out.full.data, truth, inside) - _corr(ours.full.data, truth, inside)) < 0.02
    assert _corr(out.full.data, ours.full.data) > 0.97
    assert _corr(out.half1.data, truth, inside) > _corr(half1.data, truth, inside) + 0.1
    assert "RELION relion_postprocess" in out.note


def test_the_sharpening_parameter_reaches_relion(phantom):
    """A B-factor B multiplies the amplitudes by exp(-B s² / 4): the power of each shell up
    to the final resolution grows by exp(-B s² / 2) over the unsharpened map (measured
    within 1.6 %); the default fits B itself (about -470 Å² here): more power outside."""
    half1, half2, mask, _ = phantom
    shells = fourier_shells(half1.shape, half1.voxel_size)

    def power(sharpening):
        method = load_method("recipe:relion-postprocess", sharpening=sharpening)
        spectrum = np.abs(np.fft.rfftn(method.denoise(half1, half2, mask).full.data)) ** 2
        inside = shells.index >= 0
        return np.bincount(shells.index[inside], spectrum[inside], minlength=shells.n)

    plain = power([])
    inner = slice(0, 12)  # the final resolution is 6 Å, shell 16
    expected = np.exp(200 * shells.frequency[inner] ** 2 / 2)
    np.testing.assert_allclose(power(["--adhoc_bfac", "-200"])[inner] / plain[inner], expected,
                               rtol=0.03)
    assert np.all(np.diff(power(["--auto_bfac"])[inner] / plain[inner]) > 0)


def test_relion_through_the_runner_scores_between_noisy_and_truth(corpus_path, tmp_path):
    relion = run_method("recipe:relion-postprocess", corpus_path, out=tmp_path / "relion",
                        limit=2, progress=False, params={"sharpening": []})
    noisy = run_method("noisy", corpus_path, out=tmp_path / "noisy", limit=2, progress=False)
    assert relion.counts["failed"] == 0
    pick = ["entry", "masking", "truth_corr", "cref_rmse", "fsc05_change"]
    both = relion.scalars[pick].merge(noisy.scalars[pick], on=["entry", "masking"],
                                      suffixes=("_relion", "_noisy")).dropna()
    assert len(both) >= 2
    assert (both["truth_corr_relion"] > both["truth_corr_noisy"]).all()
    assert (both["truth_corr_relion"] < 1).all()
    facts = relion.provenance["method"]
    assert facts["name"] == "relion-postprocess"
    assert facts["params"]["program"]["version"].startswith("RELION version:")
    assert "relion_postprocess --i {half1}" in facts["params"]["recipe_text"]
