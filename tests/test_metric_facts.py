"""The metric-facts table (cref_bench.metrics.facts) against what evaluate reports, and its
better directions against a known ordering: the noise-free truth as the denoised map beats
the noisy input on every metric that tells them apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cref_bench import Volume
from cref_bench.errors import InputError
from cref_bench.metrics.facts import (
    DEFAULT_METRICS,
    KINDS,
    MASKINGS,
    METRICS,
    SCORES,
    SUMMARY_METRICS,
    TRUTH_METRICS,
    metric_facts,
)
from cref_bench.metrics.model_map import atom_mask, model_map
from cref_bench.metrics.scores import DenoisedMaps, evaluate
from cref_bench.results import folder as results
from leaderboard.tables import ARROWS
from tests.test_model_map import random_atoms


@pytest.fixture(scope="module")
def case():
    """A model, its map as the truth, two noisy halves of it, a mask around the atoms."""
    structure = random_atoms(250, 12.0, 36.0, seed=4)
    like = Volume(np.zeros((48, 48, 48), np.float32), 1.0, origin=(0.0, 0.0, 0.0))
    truth = model_map(structure, like, d_min=3.0)
    rng = np.random.default_rng(8)
    scale = 0.7 * float(truth.data.std())
    halves = [truth.like(truth.data + scale * rng.standard_normal(like.shape).astype(np.float32))
              for _ in range(2)]
    return {"structure": structure, "truth": truth, "halves": halves,
            "mask": atom_mask(structure, like)}


def report_of(case, ideal: bool):
    """Every metric for D = the truth (``ideal``) or D = the noisy input itself."""
    m1, m2 = case["halves"]
    truth = case["truth"]
    if ideal:
        full, d1, d2 = truth, truth, truth
    else:
        full, d1, d2 = m1.like((m1.data + m2.data) / 2), m1, m2
    return evaluate(m1, m2, DenoisedMaps(full, half1=d1, half2=d2, heldout1=d1, heldout2=d2),
                    mask=case["mask"], model=case["structure"], truth=truth, reference=truth)


def test_every_reported_metric_has_facts_and_every_fact_is_reported(case):
    report = report_of(case, ideal=False)
    assert tuple(report.scalars) == MASKINGS
    for masking in MASKINGS:
        assert set(report.scalars[masking]) == set(METRICS)


def test_the_facts_are_well_formed():
    for name, facts in METRICS.items():
        assert facts.name == name and facts.description
        assert facts.better in ("min", "max") and facts.unit in ("Å", "", "map units")
        if facts.unit == "Å":  # a resolution or a change of resolution: smaller is finer
            assert facts.better == "min"
    assert DEFAULT_METRICS == tuple(n for n, f in METRICS.items() if f.shown)
    assert SUMMARY_METRICS == tuple(n for n, f in METRICS.items() if f.summary)
    every = pd.DataFrame([{"masking": "masked", **dict.fromkeys(METRICS, value)}
                          for value in (1.0, 2.0)])
    assert tuple(results.summarise(every, failed=0)["metric"]) == SUMMARY_METRICS
    assert set(ARROWS) == {"min", "max"}
    assert metric_facts("truth_corr").better == "max"
    assert {METRICS[n].kind for n in METRICS} == set(KINDS)
    assert set(TRUTH_METRICS) == {n for n in METRICS if n.startswith("truth_")}
    assert "cref_rmse" in SCORES and "heldout_corr" in SCORES and "res_half_0143" not in SCORES
    with pytest.raises(InputError, match="no metric named 'sharpness'; known metrics: cref_rmse"):
        metric_facts("sharpness")


def test_better_directions_rank_the_truth_above_the_noisy_input(case):
    ideal, noisy = report_of(case, ideal=True), report_of(case, ideal=False)
    compared = set()
    for masking in MASKINGS:
        for name, facts in METRICS.items():
            a, b = ideal.scalars[masking][name], noisy.scalars[masking][name]
            if a is None or b is None or abs(a - b) <= 1e-6 * max(1.0, abs(b)):
                continue  # not told apart: an input-only metric, or a curve never crossing
            assert (a < b) == (facts.better == "min"), (masking, name, a, b)
            compared.add(name)
    assert {"cref_rmse", "cref_l1", "fsc05_change", "res_d2m1_05", "truth_corr",
            "truth_rmse", "heldout_corr", "heldout_rel_error", "heldout_corr_1",
            "heldout_rel_error_2"} <= compared
