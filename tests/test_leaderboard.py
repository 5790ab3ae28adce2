"""The leaderboard: loading results folders, paired ranking, renderers, figures and the CLI."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from baselines.classic import Noisy, Wiener
from cref_bench import Volume
from cref_bench.cli import main
from cref_bench.errors import InputError, ResultsError
from cref_bench.metrics.facts import METRICS as FACTS
from cref_bench.metrics.scores import DenoisedMaps, evaluate
from cref_bench.results.format import significant
from leaderboard.commands import leaderboard as leaderboard_command
from leaderboard.commands.leaderboard import write_figures
from leaderboard.figures.cref_curves import mean_curve
from leaderboard.labels import Setting, colours, setting_labels
from leaderboard.loading import load
from leaderboard.tables import (
    BOLDING_RULE,
    describe,
    leaderboard_table,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
)
from tests.helpers_fields import field
from tests.results_folders import write_folder

METRICS = ["cref_rmse", "cref_l1", "fsc05_change", "truth_corr", "truth_rmse"]


BY_CREF = ("--primary", "cref_rmse")
"""These tests rank by C_ref RMSE (the default on results with truth is truth_corr)."""

LEVELS = {"noisy": (0.5, 0.60), "wiener": (0.3, 0.95), "mine": (0.1, 0.80)}
"""Per method: the centre of cref_rmse (mine best) and of truth_corr (wiener best)."""


def _scalars(rng, method, entries):
    rows = []
    for entry in entries:
        for masking in ("unmasked", "masked"):
            rmse, corr = LEVELS[method]
            rows.append({"entry": entry, "masking": masking,
                         "cref_rmse": rmse + 0.05 * rng.random(),
                         "cref_l1": 2 * rmse + 0.05 * rng.random(),
                         "fsc05_change": -rmse * rng.random(),
                         "truth_corr": corr + 0.02 * rng.random(), "truth_rmse": np.nan})
    frame = pd.DataFrame(rows)
    frame.loc[0, "fsc05_change"] = np.nan  # one entry without a value (unmasked e00)
    frame.loc[1, "fsc05_change"] = np.nan  # and its masked row
    return frame


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """noisy, wiener and mine on entries e00..e04; mine failed e04."""
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp("results")
    entries = [f"e{i:02d}" for i in range(5)]
    return {m: write_folder(root / m, m, _scalars(rng, m, entries if m != "mine" else entries[:4]))
            for m in LEVELS}


@pytest.fixture(scope="module")
def results(folders):
    return load(list(folders.values()))


def test_load_reads_every_folder(results, folders):
    frame = results.scalars
    assert len(frame) == 2 * (5 + 5 + 4)
    assert set(frame["method"]) == set(LEVELS) and results.labels == list(LEVELS)
    assert frame["entry"].tolist()[:2] == ["e00", "e00"]  # entries stay text
    assert set(frame["corpus_hash"]) == {"abc123"} and set(frame["box"]) == {"64x64x64"}
    assert frame["truth_rmse"].isna().all() and frame["cref_rmse"].dtype == np.float64
    assert (results.bounds == "").all().all() and results.failures.empty
    assert results.folders["mine"] == folders["mine"]


def test_ranking_paired_statistics_and_directions(results):
    table = leaderboard_table(results, metrics=METRICS, masking="masked", primary="cref_rmse")
    assert table["label"].tolist() == ["mine", "wiener", "noisy"]
    assert table["rank"].tolist() == [1, 2, 3]
    assert table.attrs["n_entries"] == 4 and table.attrs["n_dropped"] == 1
    assert table.attrs["dropped_entries"] == {"e04": "not scored by mine"}
    assert table["n"].tolist() == [4, 4, 4] and table["failed"].tolist() == [0, 0, 0]
    assert table.attrs["missing_metrics"] == ["truth_rmse"]  # no value anywhere: left out
    assert "truth_rmse_mean" not in table
    assert table.set_index("label")["reference"].to_dict() == {"mine": False, "wiener": False,
                                                               "noisy": True}
    frame = results.scalars
    paired = frame[(frame["masking"] == "masked") & (frame["entry"] != "e04")]
    for method in LEVELS:
        row = table.set_index("label").loc[method]
        for metric in ("cref_rmse", "truth_corr", "fsc05_change"):
            values = paired.loc[paired["method"] == method, metric].dropna().to_numpy()
            assert row[f"{metric}_mean"] == pytest.approx(np.mean(values), rel=1e-12)
            assert row[f"{metric}_std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
            assert row[f"{metric}_median"] == pytest.approx(np.median(values), rel=1e-12)
            assert row[f"{metric}_n"] == values.size
        assert row["fsc05_change_n"] == 3  # e00 has no value
    by_corr = leaderboard_table(results, metrics=METRICS, primary="truth_corr")
    assert FACTS["truth_corr"].better == "max"
    assert by_corr["label"].tolist() == ["wiener", "mine", "noisy"]


def test_unmasked_rows_are_ranked_separately(results):
    masked = leaderboard_table(results, metrics=METRICS, masking="masked", primary="cref_rmse")
    unmasked = leaderboard_table(results, metrics=METRICS, masking="unmasked",
                                 primary="cref_rmse")
    assert unmasked.attrs["masking"] == "unmasked"
    assert not np.isclose(masked.loc[0, "cref_rmse_mean"], unmasked.loc[0, "cref_rmse_mean"])


def test_bad_requests_are_refused(results, tmp_path):
    with pytest.raises(InputError, match="masking"):
        leaderboard_table(results, masking="both", primary="cref_rmse")
    with pytest.raises(InputError, match="no metric named 'my_metric'; known metrics: cref_rmse"):
        leaderboard_table(results, metrics=["my_metric"], primary="cref_rmse")
    with pytest.raises(InputError, match="primary metric 'truth_rmse' has no value"):
        leaderboard_table(results, primary="truth_rmse")
    rng = np.random.default_rng(5)
    apart = [write_folder(tmp_path / "a", "wiener", _scalars(rng, "wiener", ["e00"])),
             write_folder(tmp_path / "b", "mine", _scalars(rng, "mine", ["e99"]))]
    with pytest.raises(InputError, match="no entry was scored with a cref_rmse value by every"):
        leaderboard_table(load(apart), primary="cref_rmse")


def test_mixed_corpora_are_refused_unless_allowed(folders, tmp_path):
    rng = np.random.default_rng(4)
    other = write_folder(tmp_path / "other", "other", _scalars(rng, "wiener", ["e00"]),
                         content_hash="zzz999")
    with pytest.raises(ResultsError, match="different corpus content") as info:
        load([folders["noisy"], other])
    assert "abc123" in str(info.value) and "zzz999" in str(info.value)
    mixed = load([folders["noisy"], other], allow_mixed_corpora=True)
    assert set(mixed.scalars["corpus_hash"]) == {"abc123", "zzz999"}


def test_malformed_folders_are_named(folders, tmp_path):
    with pytest.raises(ResultsError, match="provenance.json: missing"):
        load([tmp_path])
    with pytest.raises(ResultsError, match="both hold results of noisy"):
        load([folders["noisy"], folders["noisy"]])
    broken = write_folder(tmp_path / "broken", "x",
                          pd.DataFrame({"entry": ["e00"], "masking": ["masked"]}))
    pd.DataFrame({"method": ["x"], "entry": ["e00"]}).to_csv(broken / "scalars.csv", index=False)
    with pytest.raises(ResultsError, match=r"scalars.csv: missing column"):
        load([broken])
    lying = write_folder(tmp_path / "lying", "x", _scalars(np.random.default_rng(1), "mine",
                                                           ["e00"]))
    scalars = pd.read_csv(lying / "scalars.csv")
    scalars["params"] = '{"sigma":2}'
    scalars.to_csv(lying / "scalars.csv", index=False)
    with pytest.raises(ResultsError, match="not of the method and parameters of provenance"):
        load([lying])


def test_markdown_is_well_formed_with_the_best_in_bold(results):
    table = leaderboard_table(results, metrics=METRICS, primary="cref_rmse")
    text = to_markdown(table)
    lines = text.splitlines()
    rows = [line for line in lines if line.startswith("|")]
    assert len(rows) == 2 + 3
    assert len({row.count(" | ") for row in rows}) == 1  # same number of cells everywhere
    assert rows[0].startswith("| Rank | Method | n | failed | cref_rmse ↓")
    assert "truth_corr ↑" in rows[0]
    assert "| fsc05_change (Å) ↓ |" in rows[0]  # the unit beside the name
    assert set(rows[1].replace("|", "").split()) <= {"---:", ":---"}
    cells = {r.split(" | ")[1]: r.split(" | ") for r in rows[2:]}
    assert cells["mine"][4].startswith("**") and not cells["wiener"][4].startswith("**")
    assert cells["wiener"][7].startswith("**")  # truth_corr: wiener highest
    assert "noisy (reference)" in cells
    assert "4 entries that every ranked method scored (masked); 1 entries dropped (e04: " \
        "not scored by mine)" in text
    assert "No entry failed." in text
    mean, std = table.loc[0, "cref_rmse_mean"], table.loc[0, "cref_rmse_std"]
    assert f"{significant(mean, 4)} ± {significant(std, 2)}" in cells["mine"][4]
    assert "[n=3]" in cells["mine"][6]  # fsc05_change has a value on 3 of 4 entries
    # every row has 3 values of fsc05_change: the lowest mean among them is bold all the same
    lowest = table.loc[table["fsc05_change_mean"].idxmin(), "label"]
    lowest = "noisy (reference)" if lowest == "noisy" else lowest
    assert [k for k, c in cells.items() if c[6].startswith("**")] == [lowest]


def test_latex_is_booktabs_and_escaped(results):
    table = leaderboard_table(results, metrics=METRICS, primary="cref_rmse")
    text = to_latex(table)
    lines = text.splitlines()
    assert lines[0].startswith("% Cells: mean ± std")
    begin = lines.index(r"\begin{tabular}{rlrrrrrr}")
    assert lines[begin + 1] == r"\toprule" and lines[begin + 3] == r"\midrule"
    assert lines[-2:] == [r"\bottomrule", r"\end{tabular}"]
    body = lines[begin + 2: begin + 3] + lines[begin + 4: begin + 7]
    assert all(line.endswith(r" \\") and line.count(" & ") == 7 for line in body)
    assert r"cref\_rmse $\downarrow$" in body[0] and r"truth\_corr $\uparrow$" in body[0]
    assert "_" not in "".join(body).replace(r"\_", "")
    mine = body[1].split(" & ")
    assert mine[1] == "mine" and mine[4].startswith(r"\textbf{") and r"$\pm$" in mine[4]
    # one best per column, no ties here
    assert text.count(r"\textbf{") == len(table.attrs["metrics"])


def test_html_and_csv(results):
    table = leaderboard_table(results, metrics=METRICS, primary="cref_rmse")
    root = ET.fromstring(to_html(table))
    assert root.tag == "table" and len(root.find("tbody")) == 3
    assert [th.text for th in root.find("thead/tr")][:4] == ["Rank", "Method", "n", "failed"]
    assert len(root.findall(".//strong")) == len(table.attrs["metrics"])
    back = pd.read_csv(io.StringIO(to_csv(table)))
    np.testing.assert_allclose(back["cref_rmse_mean"], table["cref_rmse_mean"], rtol=1e-15)
    assert back["label"].tolist() == table["label"].tolist()


# --------------------------------------------------------------------------- honesty

def _honest(tmp_path, **extra):
    """Three settings on e00..e03 with known values of cref_rmse and truth_res_0143."""
    values = {"noisy": ([0.50, 0.60, 0.55, 0.65], [3.0, 3.2, 3.1, 3.3]),
              "wiener": ([0.30, 0.35, 0.32, 0.33], [2.8, 2.9, 2.85, 2.95]),
              "mine": ([0.10, 0.12, 0.11, 0.13], [2.4, 2.4, 2.5, 2.45])}
    entries = ["e00", "e01", "e02", "e03"]
    folders = []
    for method, (rmse, res) in values.items():
        frame = pd.DataFrame({"entry": entries, "masking": "masked", "cref_rmse": rmse,
                              "truth_res_0143": res, "truth_corr": 0.9})
        folders.append(write_folder(tmp_path / method, method, frame, **extra.get(method, {})))
    return folders


def test_never_crosses_is_a_bound_that_ranks_first(tmp_path):
    """mine's FSC to the truth never falls below 0.143 on e00, e01 (2.4 Å = Nyquist, '<'): it
    ranks first on truth_res_0143, shown as a bound, never as missing."""
    bounds = [("e00", "masked", "truth_res_0143", "<"), ("e01", "masked", "truth_res_0143", "<")]
    results = load(_honest(tmp_path, mine={"bounds": bounds}))
    assert results.bounds.loc[results.scalars["label"] == "mine", "truth_res_0143"].tolist() \
        == ["<", "<", "", ""]
    table = leaderboard_table(results, metrics=["truth_res_0143"], primary="truth_res_0143")
    assert table["label"].tolist() == ["mine", "wiener", "noisy"]
    mine = table.iloc[0]
    assert mine["n"] == 4 and mine["truth_res_0143_n"] == 4  # the bounds count as values
    assert mine["truth_res_0143_bound"] == "<" and mine["truth_res_0143_bounded"] == 2
    assert mine["truth_res_0143_mean"] == pytest.approx(np.mean([2.4, 2.4, 2.5, 2.45]))
    text = to_markdown(table)
    cell = [r for r in text.splitlines() if r.startswith("| 1 |")][0].split(" | ")[4]
    assert cell.startswith("**< 2.438 ±")  # bold and marked as an upper bound
    assert "so the true mean is lower" in text


def test_a_bound_ties_in_its_favour(tmp_path):
    """A measured 2.4 Å and a '< 2.4 Å' bound: the bound ranks first (at least as good)."""
    entries = ["e00", "e01"]
    folders = [write_folder(tmp_path / m, m, pd.DataFrame({
        "entry": entries, "masking": "masked", "cref_rmse": 0.2, "truth_res_0143": 2.4}),
        bounds=[(e, "masked", "truth_res_0143", "<") for e in entries] if m == "zz" else ())
        for m in ("aa", "zz")]
    table = leaderboard_table(load(folders), metrics=[], primary="truth_res_0143")
    assert table["label"].tolist() == ["zz", "aa"]


def test_a_method_failing_every_entry_is_listed_last(tmp_path, capsys):
    folders = _honest(tmp_path)
    crashy = write_folder(tmp_path / "crashy", "crashy",
                          pd.DataFrame(columns=["entry", "masking", "cref_rmse"]),
                          failures=[("e00", "crashed"), ("e01", "timeout"), ("e02", "timeout"),
                                    ("e03", "timeout")])
    results = load([*folders, crashy])
    assert results.failure_counts()["crashy"] == {"crashed": 1, "timeout": 3}
    table = leaderboard_table(results, metrics=["cref_rmse"], primary="cref_rmse")
    assert table["label"].tolist() == ["mine", "wiener", "noisy", "crashy"]
    last = table.iloc[-1]
    assert pd.isna(last["rank"]) and last["n"] == 0 and last["failed"] == 4
    assert last["failed_kinds"] == "timeout 3, crashed 1" and last["attempted"] == 4
    assert table.attrs["n_entries"] == 4 and table.attrs["unranked"] == ["crashy"]
    text = to_markdown(table)
    assert "| – | crashy | 0 | 4 (timeout 3, crashed 1) | failed |" in text
    assert "Failures: crashy failed every entry (timeout 3, crashed 1)." in text
    # the exit status says so too, and the table is written all the same
    assert main(["leaderboard", *BY_CREF, *map(str, folders), str(crashy),
                 "--include-unfit"]) == 1
    captured = capsys.readouterr()
    assert "| – | crashy |" in captured.out and "4 failed entries" in captured.err


def _fail(folder, method, entry, kind="memory"):
    scalars = pd.read_csv(folder / "scalars.csv")
    scalars[scalars["entry"] != entry].to_csv(folder / "scalars.csv", index=False)
    failures = pd.read_csv(folder / "failures.csv")
    failures.loc[len(failures)] = [method, "1", "{}", entry, "test", kind, "MethodFailure", "x",
                                   "Traceback ..."]
    failures.to_csv(folder / "failures.csv", index=False)


def test_failures_are_counted_beside_the_scores(tmp_path):
    """wiener failed e03 (memory): its row says 1 failed, e03 counts as the noisy input for
    it, and no entry is dropped for the others."""
    folders = _honest(tmp_path)
    _fail(folders[1], "wiener", "e03")
    table = leaderboard_table(load(folders), metrics=["cref_rmse"], primary="cref_rmse")
    row = table.set_index("label").loc["wiener"]
    assert row["failed"] == 1 and row["failed_kinds"] == "memory 1" and row["n"] == 4
    assert row["scored"] == 3 and row["as_input"] == 1
    assert row["cref_rmse_mean"] == pytest.approx(np.mean([0.30, 0.35, 0.32, 0.65]))
    assert table.attrs["dropped_entries"] == {} and table.attrs["n_entries"] == 4
    text = to_markdown(table)
    assert "wiener failed 1 of 4 entries, 1 of them scored as the input (memory 1)" in text
    assert "counts as the unprocessed input (noisy)" in text


def test_failing_the_hardest_entry_on_purpose_does_not_help(tmp_path):
    """mine beats wiener on three entries but is awful on e03, and ranks second; failing e03
    on purpose would rank it first if e03 were dropped for everyone (0.29 < 0.323), but e03
    counts as the noisy input (0.65) for mine: still second (0.38 > 0.325)."""
    folders = _honest(tmp_path)
    scalars = pd.read_csv(folders[2] / "scalars.csv")
    scalars["cref_rmse"] = [0.28, 0.30, 0.29, 0.90]  # mine: better on three, awful on e03
    scalars.to_csv(folders[2] / "scalars.csv", index=False)
    honest = leaderboard_table(load(folders), metrics=["cref_rmse"], primary="cref_rmse")
    assert honest["label"].tolist()[:2] == ["wiener", "mine"]
    _fail(folders[2], "mine", "e03", kind="error")
    cheat = leaderboard_table(load(folders), metrics=["cref_rmse"], primary="cref_rmse")
    assert cheat["label"].tolist()[:2] == ["wiener", "mine"]  # dropping e03 would flip them
    mine = cheat.set_index("label").loc["mine"]
    assert mine["cref_rmse_mean"] == pytest.approx(np.mean([0.28, 0.30, 0.29, 0.65]))
    assert mine["failed"] == 1 and cheat.attrs["n_entries"] == 4
    from leaderboard.statistics import paired_values

    assert paired_values(load(folders), cheat).loc["e03", "mine"] == pytest.approx(0.65)


def test_a_mean_over_fewer_entries_is_never_bolded(tmp_path):
    """mine has the best truth_corr mean but on 2 of the 4 entries: complete wiener is bold."""
    folders = _honest(tmp_path)
    for folder, corr in ((folders[0], [0.6, 0.6, 0.6, 0.6]), (folders[1], [0.9, 0.9, 0.9, 0.9]),
                         (folders[2], [0.99, 0.99, np.nan, np.nan])):
        scalars = pd.read_csv(folder / "scalars.csv")
        scalars["truth_corr"] = corr
        scalars.to_csv(folder / "scalars.csv", index=False)
    table = leaderboard_table(load(folders), metrics=["truth_corr"], primary="cref_rmse")
    rows = {r.split(" | ")[1]: r.split(" | ")[5].rstrip(" |")
            for r in to_markdown(table).splitlines() if r.startswith("| ") and r[2].isdigit()}
    assert rows["mine"].startswith("0.9900") and rows["mine"].endswith("[n=2]")
    assert rows["wiener"].startswith("**0.9000") and not rows["mine"].startswith("**")
    # the rule is stated alike under the table and in --help
    assert BOLDING_RULE in to_markdown(table)
    assert BOLDING_RULE in " ".join(leaderboard_command.__doc__.split())


def test_settings_of_one_method_are_separate_rows(tmp_path):
    entries = ["e00", "e01"]
    frame = pd.DataFrame({"entry": entries, "masking": "masked", "cref_rmse": [0.2, 0.3]})
    folders = [write_folder(tmp_path / "a", "lowpass", frame, params={"threshold": 0.143,
                                                                      "edge_shells": 3.0}),
               write_folder(tmp_path / "b", "lowpass", frame.assign(cref_rmse=[0.1, 0.1]),
                            params={"threshold": 0.5, "edge_shells": 3.0}),
               write_folder(tmp_path / "c", "noisy", frame.assign(cref_rmse=[0.5, 0.6]))]
    results = load(folders)
    assert results.labels == ["lowpass (threshold=0.143)", "lowpass (threshold=0.5)", "noisy"]
    table = leaderboard_table(results, metrics=["cref_rmse"], primary="cref_rmse")
    assert table["label"].tolist() == ["lowpass (threshold=0.5)", "lowpass (threshold=0.143)",
                                       "noisy"]
    assert table["n"].tolist() == [2, 2, 2]
    assert "| 1 | lowpass (threshold=0.5) |" in to_markdown(table)


def test_setting_labels_and_colours():
    a = Setting("lowpass", "1", '{"edge_shells":3.0,"threshold":0.143}')
    b = Setting("lowpass", "1", '{"edge_shells":3.0,"threshold":0.5}')
    c = Setting("lowpass", "1", '{"edge_shells":5.0}')
    assert setting_labels([a, b]) == ["lowpass (threshold=0.143)", "lowpass (threshold=0.5)"]
    assert setting_labels([a, c]) == ["lowpass (edge_shells=3, threshold=0.143)",
                                      "lowpass (edge_shells=5, threshold=-)"]
    assert setting_labels([Setting("mine", "1", "{}"), Setting("mine", "2", "{}"),
                           Setting("noisy", "1", "{}")]) == ["mine [v1]", "mine [v2]", "noisy"]
    styles = colours(["b", "a", "c"])
    assert styles["a"][0] == "#0072B2" and styles["b"][0] == "#E69F00"  # by sorted label
    many = colours([f"m{i:02d}" for i in range(9)])
    assert len({v for v in many.values()}) == 9  # beyond the palette, another line style


def test_mean_curve_on_different_grids():
    """Two entries of different shell counts: mean of FSC² on the frequency/Nyquist grid."""
    a = pd.DataFrame({"entry": "a", "frequency": np.arange(1, 11) / 20.0,
                      "value": np.full(10, 0.5)})
    b = pd.DataFrame({"entry": "b", "frequency": np.arange(1, 21) / 10.0,
                      "value": np.sqrt(np.linspace(0.05, 1.0, 20))})
    grid = np.array([0.05, 0.5, 0.75, 1.0])
    got = mean_curve(pd.concat([a, b]), grid)
    # a covers x >= 0.1 only; b's squared values are linear in x = 0.05 .. 1.
    np.testing.assert_allclose(got, [0.05, (0.25 + 0.5) / 2, (0.25 + 0.75) / 2, (0.25 + 1.0) / 2])


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Folders for noisy and wiener from cref_bench.metrics.scores.evaluate on tiny maps."""
    rng = np.random.default_rng(9)
    shape, voxel = (24, 24, 24), (2.0, 2.0, 2.0)
    root = tmp_path_factory.mktemp("evaluated")
    folders = []
    scalars = {"noisy": [], "wiener": []}
    curves = {"noisy": [], "wiener": []}
    for i in range(3):
        truth = field(rng, shape, voxel, lambda k: 30 * np.exp(-(k / 0.06) ** 2))
        m1 = Volume(truth + field(rng, shape, voxel, np.ones_like), voxel)
        m2 = m1.like(truth + field(rng, shape, voxel, np.ones_like))
        mask = m1.like(np.ones(shape, np.float32))
        for method in (Noisy(), Wiener()):
            out = method.denoise(m1, m2, mask)
            report = evaluate(m1, m2, DenoisedMaps(out.full, half1=out.half1, half2=out.half2),
                              mask=mask, truth=m1.like(truth))
            for masking, values in report.scalars.items():
                scalars[method.name].append({"entry": f"emd{i}", "masking": masking, **values})
            curves[method.name].append(report.curves.assign(entry=f"emd{i}")[
                ["entry", "masking", "curve", "shell", "frequency", "value"]])
    for name in scalars:
        folders.append(write_folder(root / name, name, pd.DataFrame(scalars[name]),
                                    curves=pd.concat(curves[name])))
    return folders


def test_figures_are_written(evaluated, tmp_path):
    results = load(evaluated)
    table = leaderboard_table(results, primary="cref_rmse")
    assert table["truth_corr_mean"].idxmax() == table.index[table["label"] == "wiener"][0]
    paths = write_figures(results, table, tmp_path / "fig")
    assert sorted(p.name for p in paths) == [
        "cref_curves_masked.csv", "cref_curves_masked.pdf", "cref_curves_masked.png",
        "distribution_cref_rmse_masked.csv", "distribution_cref_rmse_masked.pdf",
        "distribution_cref_rmse_masked.png"]
    for path in paths:
        head = path.read_bytes()[:8]
        if path.suffix != ".csv":
            assert head.startswith(b"%PDF" if path.suffix == ".pdf" else b"\x89PNG")
            assert path.stat().st_size > 1000
    drawn = pd.read_csv(tmp_path / "fig" / "distribution_cref_rmse_masked.csv")
    assert sorted(zip(drawn["label"], drawn["entry"])) == sorted(
        (m, f"emd{i}") for m in ("noisy", "wiener") for i in range(3))
    masked = results.scalars[results.scalars["masking"] == "masked"]
    expected = dict(zip(zip(masked["label"], masked["entry"]), masked["cref_rmse"]))
    for row in drawn.itertuples():
        assert row.value == pytest.approx(expected[(row.label, row.entry)], rel=1e-12)
    assert not list((tmp_path / "fig").glob(".*"))  # no temporary left


def test_cli_end_to_end(evaluated, tmp_path, capsys):
    out = tmp_path / "table.tex"
    figures = tmp_path / "figures"
    status = main(["leaderboard", *BY_CREF, *map(str, evaluated), "--include-unfit",
                   "--format", "latex",
                   "--out", str(out),
                   "--figures", str(figures), "--masking", "unmasked"])
    assert status == 0
    text = out.read_text()
    assert r"\toprule" in text and "noisy (reference)" in text and "wiener" in text
    assert "(unmasked)" in text
    assert len(list(figures.glob("*.png"))) == 2 and len(list(figures.glob("*.pdf"))) == 2
    assert len(list(figures.glob("*.csv"))) == 2
    capsys.readouterr()
    assert main(["leaderboard", *BY_CREF, *map(str, evaluated), "--metrics",
                 "cref_rmse,truth_corr", "--include-unfit"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| Rank | Method | n | failed | cref_rmse ↓ | truth_corr ↑ |")


def test_cli_reports_refusals(evaluated, tmp_path, capsys):
    scalars = pd.read_csv(evaluated[0] / "scalars.csv").drop(
        columns=["method", "method_version", "params", "split", "box"])
    other = write_folder(tmp_path / "other", "other", scalars, content_hash="different")
    assert main(["leaderboard", *BY_CREF, str(evaluated[0]), str(other),
                 "--include-unfit"]) == 2
    assert "different corpus content" in capsys.readouterr().err
    assert main(["leaderboard", *BY_CREF, str(evaluated[0]), str(other), "--allow-mixed-corpora",
                 "--include-unfit",
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith(
        "rank,label,method,version,params,n,scored,failed,failed_kinds,attempted,as_input,"
        "reference,cref_rmse_mean")


def test_runner_results_of_the_classic_baselines(tmp_path, capsys):
    """The real pipeline: a three-entry corpus, the runner on each classic baseline, the CLI."""
    from cref_bench.run.runner import run_method
    from dataset_builder.store import create_store, finalize, write_entry

    rng = np.random.default_rng(12)
    shape, voxel = (32, 32, 32), (1.5, 1.5, 1.5)
    store = create_store(tmp_path / "corpus.zarr", source="leaderboard test phantoms",
                         patch_size=16)
    grid = np.indices(shape) - 15.5
    sphere = np.clip((12 - np.sqrt((grid ** 2).sum(axis=0))) / 3, 0, 1).astype(np.float32)
    for i in range(3):
        truth = field(rng, shape, voxel, lambda k: 30 * np.exp(-(k / 0.08) ** 2)) * sphere
        halves = [Volume(truth + field(rng, shape, voxel, np.ones_like), voxel) for _ in range(2)]
        write_entry(store, f"PH-{i:04d}", half1=halves[0], half2=halves[1],
                    mask=halves[0].like(sphere), truth=halves[0].like(truth))
    finalize(store)
    folders = [str(run_method(name, tmp_path / "corpus.zarr", split="all", out=tmp_path / name,
                              progress=False).out)
               for name in ("noisy", "lowpass", "fsc-weight", "wiener")]
    folders.append(str(run_method("lowpass", tmp_path / "corpus.zarr", split="all",
                                  out=tmp_path / "lowpass-05", params={"threshold": 0.5},
                                  progress=False).out))
    table = leaderboard_table(load(folders), primary="truth_corr")
    assert table.attrs["n_entries"] == 3 and table["method"].iloc[-1] == "noisy"
    assert {"lowpass (threshold=0.143)", "lowpass (threshold=0.5)"} <= set(table["label"])
    assert main(["leaderboard", *BY_CREF, *folders, "--include-unfit"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\n| ") == 6 and "noisy (reference)" in printed
    assert "| lowpass (threshold=0.5) |" in printed


def test_with_truth_the_default_ranking_follows_the_truth_and_shows_each_scores_tau(results,
                                                                                  tmp_path):
    """mine has the best cref_rmse, wiener the best truth_corr (LEVELS): by default the table
    ranks by truth_corr, keeps cref_rmse as a column and states its τ with the truth."""
    table = leaderboard_table(results, metrics=METRICS, masking="masked")
    assert table.attrs["primary"] == "truth_corr"
    assert table["label"].tolist() == ["wiener", "mine", "noisy"]
    assert "cref_rmse_mean" in table.columns
    # per entry: cref_rmse orders mine > wiener > noisy, the truth wiener > mine > noisy
    assert table.attrs["tau"]["cref_rmse"] == pytest.approx(1 / 3)
    assert "Kendall's τ against truth_corr" in describe(table)
    assert "cref_rmse 0.33" in describe(table)
    without_truth = load([write_folder(
        tmp_path / m, m,
        pd.DataFrame([{"entry": "e0", "masking": "masked", "cref_rmse": v}]))
        for m, v in (("noisy", 0.5), ("wiener", 0.3))])
    plain = leaderboard_table(without_truth)
    assert plain.attrs["primary"] == "cref_rmse" and plain.attrs["tau"] == {}
    assert "does not use the truth" in describe(plain)


def test_a_probe_equal_up_to_rounding_ranks_below_the_honest_method(tmp_path):
    rows = {"fsc-weight": 0.98041234, "probe-huge-scale": 0.98041235, "noisy": 0.75}
    folders = [write_folder(tmp_path / m, m, pd.DataFrame(
        [{"entry": e, "masking": "masked", "truth_corr": v, "cref_rmse": 0.1}
         for e in ("e0", "e1")])) for m, v in rows.items()]
    table = leaderboard_table(load(folders))
    assert table["label"].tolist() == ["fsc-weight", "probe-huge-scale", "noisy"]
    assert "probe-huge-scale (probe)" in to_markdown(table)


def test_without_truth_single_map_methods_rank_by_heldout_and_pair_methods_stand_apart(
        tmp_path):
    values = {"noisy": 0.80, "crefdenoiser": 0.95, "wiener": None}
    folders = [write_folder(tmp_path / m, m, pd.DataFrame(
        [{"entry": e, "masking": "masked", "cref_rmse": 0.1,
          "heldout_corr": np.nan if v is None else v} for e in ("e0", "e1")]))
        for m, v in values.items()]
    table = leaderboard_table(load(folders), metrics=["cref_rmse"])
    assert table.attrs["primary"] == "heldout_corr"
    assert table["label"].tolist() == ["crefdenoiser", "noisy", "wiener"]
    assert table["rank"].tolist()[:2] == [1, 2] and pd.isna(table["rank"].iloc[2])
    assert table.attrs["no_primary"] == ["wiener"]
    assert "unranked (no value of heldout_corr on any entry" in describe(table)
