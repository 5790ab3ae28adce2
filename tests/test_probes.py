"""The adversarial probes (baselines.probes): registered, and doing what they claim: the
noise injection matches FSC(D, M) to C_ref while moving away from the truth; the others
hand back what their docstrings say."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from baselines import probes
from baselines.classic import FSCWeight
from cref_bench.methods.protocol import average_halves
from cref_bench.methods.registry import resolve
from cref_bench.metrics.fsc import fsc
from cref_bench.metrics.scores import c_ref, evaluate
from dataset_builder.synthetic import make_phantom

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(5, box=48, voxel_size=1.5, resolution=5.0)


def test_every_probe_is_registered_under_its_name():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    methods = project["project"]["entry-points"]["cref_bench.methods"]
    names = {name: target for name, target in methods.items()
             if name.startswith(probes.PREFIX)}
    assert set(names) == {cls.name for cls in (
        probes.NoiseInjection, probes.NoiseInjectionAverage, probes.FirstHalf,
        probes.SwappedHalves, probes.AverageAsHalves, probes.HugeScale)}
    for name, target in names.items():
        assert resolve(target).name == name


@pytest.mark.parametrize("cls", [probes.NoiseInjection, probes.NoiseInjectionAverage])
def test_noise_injection_matches_c_ref_and_moves_away_from_the_truth(phantom, cls):
    np.random.seed(1)
    out = cls().denoise(phantom.half1, phantom.half2)
    cref = c_ref(fsc(phantom.half1, phantom.half2).value)
    fsc_fd = fsc(out.full, average_halves(phantom.half1, phantom.half2)).value
    informative = cref > 0.05
    np.testing.assert_allclose(fsc_fd[informative], cref[informative], atol=1e-3)
    base = FSCWeight().denoise(phantom.half1, phantom.half2).full if cls.name == "probe-inject" \
        else average_halves(phantom.half1, phantom.half2)
    honest = evaluate(phantom.half1, phantom.half2, base, truth=phantom.truth).scalars
    gamed = evaluate(phantom.half1, phantom.half2, out.full, truth=phantom.truth).scalars
    assert gamed["unmasked"]["cref_rmse"] < 0.01 < honest["unmasked"]["cref_rmse"]
    assert gamed["unmasked"]["truth_corr"] < honest["unmasked"]["truth_corr"]


def test_the_half_map_probes_hand_back_what_they_say(phantom):
    m1, m2 = phantom.half1, phantom.half2
    base = FSCWeight().denoise(m1, m2)
    swapped = probes.SwappedHalves().denoise(m1, m2)
    assert np.array_equal(swapped.half1.data, base.half2.data)
    assert np.array_equal(swapped.half2.data, base.half1.data)
    same = probes.AverageAsHalves().denoise(m1, m2)
    assert np.array_equal(same.half1.data, base.full.data)
    assert np.array_equal(same.half2.data, base.full.data)
    first = probes.FirstHalf().denoise(m1, m2)
    assert np.array_equal(first.full.data, m1.data) and first.half1 is None
    huge = probes.HugeScale(factor=1e30).denoise(m1, m2)
    np.testing.assert_allclose(huge.full.data, base.full.data * np.float32(1e30), rtol=1e-6)
    with pytest.raises(ValueError, match="base must be one of"):
        probes.SwappedHalves(base="mine")
