"""Every score that does not measure in map units is the same for an output scaled by any
factor from 1e-30 to 1e36, masked and unmasked (the FSCs were once taken from float32
transforms, which overflow at 1e36: an FSC-0.5 change of +72 Å); an output that cannot be
scored fails as the method's ``output``."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.classic import FSCWeight
from cref_bench.metrics.facts import METRICS
from cref_bench.metrics.scores import DenoisedMaps, evaluate
from cref_bench.run.contract import MethodFailure, check_output
from dataset_builder.synthetic import make_phantom

FACTORS = (1e-30, 1e-12, 1e12, 1e36)

IN_MAP_UNITS = {name for name, facts in METRICS.items() if facts.unit == "map units"}
"""Scores in the output's own units (truth_rmse): they scale with it by definition."""


@pytest.fixture(scope="module")
def case():
    phantom = make_phantom(3, box=48, voxel_size=1.5, resolution=5.0)
    denoised = FSCWeight().denoise(phantom.half1, phantom.half2, phantom.mask)
    return phantom, denoised


def _scores(phantom, denoised, factor: float) -> dict:
    def scaled(v):
        return v.like(v.data * np.float32(factor))

    d1, d2 = scaled(denoised.half1), scaled(denoised.half2)
    return evaluate(phantom.half1, phantom.half2,
                    DenoisedMaps(scaled(denoised.full), half1=d1, half2=d2, heldout1=d1,
                                 heldout2=d2),
                    mask=phantom.mask, truth=phantom.truth).scalars


@pytest.mark.parametrize("factor", FACTORS)
def test_scores_ignore_the_output_scale(case, factor):
    base, scaled = _scores(*case, 1.0), _scores(*case, factor)
    compared = 0
    for masking in ("unmasked", "masked"):
        for name, value in base[masking].items():
            if name in IN_MAP_UNITS or value is None:
                continue
            assert scaled[masking][name] == pytest.approx(value, rel=1e-4, abs=1e-6), \
                (masking, name)
            compared += 1
    assert compared >= 30


def test_an_output_beyond_float32_fails_as_output(case):
    phantom, denoised = case
    with np.errstate(over="ignore"):
        huge = denoised.full.like(denoised.full.data * np.float32(1e38) * np.float32(1e3))
    from cref_bench.methods.protocol import Denoised

    with pytest.raises(MethodFailure, match="non-finite") as caught:
        check_output("probe", Denoised(full=huge), phantom.half1)
    assert caught.value.kind == "output"
