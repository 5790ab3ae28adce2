"""Score validity (leaderboard.validity, cref-bench score-validity): Kendall's τ of truth-free
scores against the truth on constructed results with known orderings, the probes each score
ranks above an honest filter, and the command end to end on a phantom corpus with probes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cref_bench.cli import main
from cref_bench.errors import InputError
from leaderboard import validity
from leaderboard.loading import load
from leaderboard.tables import leaderboard_table
from tests.results_folders import write_folder

ENTRIES = [f"E{i}" for i in range(6)]


def _folders(tmp_path, truth_of: dict[str, list[float]], score_of) -> list:
    """One folder per method: truth_corr as given per entry, cref_rmse = score_of(truth)."""
    folders = []
    for method, values in truth_of.items():
        rows = [{"entry": e, "masking": "masked", "truth_corr": t, "cref_rmse": score_of(method, t)}
                for e, t in zip(ENTRIES, values)]
        folders.append(write_folder(tmp_path / method, method, pd.DataFrame(rows)))
    return folders


TRUTH = {"noisy": [0.70, 0.72, 0.60, 0.80, 0.75, 0.65],
         "fsc-weight": [0.90, 0.91, 0.85, 0.95, 0.93, 0.88],
         "wiener": [0.92, 0.93, 0.87, 0.96, 0.94, 0.90],
         "probe-inject": [0.80, 0.81, 0.75, 0.85, 0.84, 0.78]}


def test_a_score_that_follows_the_truth_has_tau_one_and_a_reversed_one_minus_one(tmp_path):
    follows = load(_folders(tmp_path / "a", TRUTH, lambda m, t: 1.0 - t))  # lower is better
    reverse = load(_folders(tmp_path / "b", TRUTH, lambda m, t: t))
    for results, expected in ((follows, 1.0), (reverse, -1.0)):
        row = validity.agreement(results).set_index(["score", "truth"]).loc[
            ("cref_rmse", "truth_corr")]
        assert row["tau"] == pytest.approx(expected)
        assert row["entries"] == len(ENTRIES)
        assert row["ci_low"] == pytest.approx(expected) == row["ci_high"]
        assert row["tau_pooled"] == pytest.approx(expected)


def test_the_within_entry_tau_averages_entries_and_the_pooled_one_mixes_them(tmp_path):
    """The probe games the score (best cref_rmse everywhere): within each entry, of the 6
    pairs of 4 methods 2 are ordered against the truth (the probe above wiener and
    fsc-weight), so τ = (4 - 2) / 6; without the probe τ is 1."""
    results = load(_folders(tmp_path, TRUTH,
                            lambda m, t: 0.01 if m.startswith("probe-") else 1.0 - t))
    row = validity.agreement(results).iloc[0]
    assert row["tau"] == pytest.approx(1 / 3)
    assert row["honest_tau"] == pytest.approx(1.0)
    assert -1.0 < row["tau_pooled"] < 1.0
    probes = validity.probes_above(results, scores=["cref_rmse", "truth_corr"])
    above = probes.set_index("score")["above"]
    assert bool(above["cref_rmse"]) and not bool(above["truth_corr"])
    assert probes.set_index("score").loc["cref_rmse", "share_above"] == 1.0
    summary = validity.summary(validity.agreement(results), probes, "truth_corr")
    assert summary.loc[0, "probes_above"] == "probe-inject"


def test_results_without_truth_are_refused(tmp_path):
    rows = pd.DataFrame([{"entry": e, "masking": "masked", "cref_rmse": 0.1} for e in ENTRIES])
    results = load([write_folder(tmp_path / m, m, rows) for m in ("noisy", "wiener")])
    with pytest.raises(InputError, match="no truth metric"):
        validity.agreement(results)


@pytest.mark.slow
def test_the_command_on_phantoms_with_probes(tmp_path, capsys):
    from cref_bench.run.runner import run_method
    from dataset_builder.synthetic import write_phantom_corpus

    corpus = write_phantom_corpus(tmp_path / "phantom.zarr", 4, seed=1, boxes=(48, 48),
                                  progress=False)
    folders = [run_method(name, corpus, split="all", out=tmp_path / "results" / name,
                          progress=False).out
               for name in ("noisy", "fsc-weight", "wiener", "probe-inject", "probe-first-half",
                            "probe-swap-halves")]
    out = tmp_path / "validity"
    assert main(["score-validity", *map(str, folders), "--corpus", str(corpus),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "τ vs truth_corr" in printed and "cref_rmse" in printed
    tau = pd.read_csv(out / "tau.csv")
    assert set(tau["truth"]) >= {"truth_corr", "truth_res_0143"}
    assert np.all(tau["tau"].dropna().abs() <= 1.0)
    probes = pd.read_csv(out / "probes.csv").set_index(["score", "probe"])
    # C_ref RMSE is gamed by noise injection (the finding); the truth is not
    assert bool(probes.loc[("cref_rmse", "probe-inject"), "above"])
    assert not bool(probes.loc[("truth_corr", "probe-inject"), "above"])
    assert (out / "score-validity.md").read_text() == printed
    # the default ranking (truth_corr on phantoms) puts every probe below fsc-weight
    order = leaderboard_table(load(folders))["label"].tolist()
    for probe in ("probe-inject", "probe-first-half", "probe-swap-halves"):
        assert order.index(probe) > order.index("fsc-weight"), order
    # C_ref RMSE ranks noise injection first (why it is not the default on phantoms)
    assert leaderboard_table(load(folders), primary="cref_rmse")["label"][0] == "probe-inject"


def test_a_probe_equal_up_to_rounding_is_not_above(tmp_path):
    truth = {"noisy": [0.7] * 6, "fsc-weight": [0.9] * 6, "probe-huge-scale": [0.9] * 6}
    results = load(_folders(tmp_path, truth, lambda m, t: 0.3 * (1 - 1e-9 * m.startswith("p"))
                            if t == 0.9 else 0.5))
    probes = validity.probes_above(results, scores=["cref_rmse"])
    assert not probes["above"].any() and (probes["share_above"] == 0).all()
