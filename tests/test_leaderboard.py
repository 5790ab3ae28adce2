"""The leaderboard: loading results folders, paired ranking, renderers, figures and the CLI."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from baselines.classic import Noisy, Wiener
from cref_bench import Volume
from cref_bench.cli import main
from cref_bench.errors import InputError, ResultsError
from cref_bench.metric_facts import METRICS as FACTS
from cref_bench.metrics import evaluate
from cref_bench.results import CURVE_COLUMNS, FAILURE_COLUMNS
from leaderboard.figures import mean_curve, write_figures
from leaderboard.tables import (
    leaderboard_table,
    load_curves,
    load_results,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
)
from tests.helpers_fields import field

METRICS = ["cref_rmse", "cref_l1", "fsc05_change", "truth_corr", "truth_rmse"]


def write_folder(folder, method, scalars: pd.DataFrame, content_hash="abc123", curves=None,
                 version="1"):
    """A results folder in the runner's schema from a scalars table (entry, masking, metrics)."""
    folder.mkdir(parents=True)
    scalars = scalars.copy()
    scalars.insert(0, "method", method)
    scalars.insert(1, "method_version", version)
    scalars.insert(2, "params", "{}")
    scalars.insert(4, "split", "test")
    scalars.to_csv(folder / "scalars.csv", index=False)
    if curves is None:
        curves = pd.DataFrame(columns=[c for c in CURVE_COLUMNS if c != "method"])
    curves = curves.copy()
    curves.insert(0, "method", method)
    curves.to_csv(folder / "curves.csv", index=False)
    pd.DataFrame(columns=list(FAILURE_COLUMNS)).to_csv(folder / "failures.csv", index=False)
    (folder / "provenance.json").write_text(json.dumps(
        {"dataset": {"content_hash": content_hash},
         "method": {"name": method, "version": version}}))
    return folder


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
def frame(folders):
    return load_results(list(folders.values()))


def test_load_results_reads_every_folder(frame, folders):
    assert len(frame) == 2 * (5 + 5 + 4)
    assert set(frame["method"]) == set(LEVELS)
    assert frame["entry"].tolist()[:2] == ["e00", "e00"]  # entries stay text
    assert set(frame["corpus_hash"]) == {"abc123"}
    assert frame["truth_rmse"].isna().all() and frame["cref_rmse"].dtype == np.float64


def test_ranking_paired_statistics_and_directions(frame):
    table = leaderboard_table(frame, metrics=METRICS, masking="masked")
    assert table["method"].tolist() == ["mine", "wiener", "noisy"]
    assert table["rank"].tolist() == [1, 2, 3]
    assert table.attrs["n_entries"] == 4 and table.attrs["n_dropped"] == 1
    assert table.attrs["dropped_entries"] == ["e04"]
    assert table["n"].tolist() == [4, 4, 4]
    assert table.attrs["missing_metrics"] == ["truth_rmse"]  # no value anywhere: left out
    assert "truth_rmse_mean" not in table
    assert table.set_index("method")["reference"].to_dict() == {"mine": False, "wiener": False,
                                                                "noisy": True}
    paired = frame[(frame["masking"] == "masked") & (frame["entry"] != "e04")]
    for method in LEVELS:
        row = table.set_index("method").loc[method]
        for metric in ("cref_rmse", "truth_corr", "fsc05_change"):
            values = paired.loc[paired["method"] == method, metric].dropna().to_numpy()
            assert row[f"{metric}_mean"] == pytest.approx(np.mean(values), rel=1e-12)
            assert row[f"{metric}_std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
            assert row[f"{metric}_median"] == pytest.approx(np.median(values), rel=1e-12)
            assert row[f"{metric}_n"] == values.size
        assert row["fsc05_change_n"] == 3  # e00 has no value
    by_corr = leaderboard_table(frame, metrics=METRICS, primary="truth_corr")
    assert FACTS["truth_corr"].better == "max"
    assert by_corr["method"].tolist() == ["wiener", "mine", "noisy"]


def test_unmasked_rows_are_ranked_separately(frame):
    masked = leaderboard_table(frame, metrics=METRICS, masking="masked")
    unmasked = leaderboard_table(frame, metrics=METRICS, masking="unmasked")
    assert unmasked.attrs["masking"] == "unmasked"
    assert not np.isclose(masked.loc[0, "cref_rmse_mean"], unmasked.loc[0, "cref_rmse_mean"])


def test_bad_requests_are_refused(frame):
    with pytest.raises(InputError, match="masking"):
        leaderboard_table(frame, masking="both")
    with pytest.raises(InputError, match="no metric named 'my_metric'; known metrics: cref_rmse"):
        leaderboard_table(frame, metrics=["my_metric"])
    with pytest.raises(InputError, match="primary metric 'truth_rmse' has no value"):
        leaderboard_table(frame, primary="truth_rmse")
    lonely = frame[~((frame["method"] == "mine")
                     & frame["entry"].isin(["e00", "e01", "e02", "e03"]))]
    lonely = pd.concat([lonely, frame[(frame["method"] == "mine")].assign(entry="e99")])
    with pytest.raises(InputError, match="no entry was finished by every method"):
        leaderboard_table(lonely)


def test_mixed_corpora_are_refused_unless_allowed(folders, tmp_path):
    rng = np.random.default_rng(4)
    other = write_folder(tmp_path / "other", "other", _scalars(rng, "wiener", ["e00"]),
                         content_hash="zzz999")
    with pytest.raises(ResultsError, match="different corpus content") as info:
        load_results([folders["noisy"], other])
    assert "abc123" in str(info.value) and "zzz999" in str(info.value)
    with pytest.raises(ResultsError, match="different corpus content"):
        load_curves([folders["noisy"], other])
    mixed = load_results([folders["noisy"], other], allow_mixed_corpora=True)
    assert set(mixed["corpus_hash"]) == {"abc123", "zzz999"}


def test_malformed_folders_are_named(folders, tmp_path):
    with pytest.raises(ResultsError, match="provenance.json: missing"):
        load_results([tmp_path])
    with pytest.raises(ResultsError, match="more than one result"):
        load_results([folders["noisy"], folders["noisy"]])
    broken = write_folder(tmp_path / "broken", "x",
                          pd.DataFrame({"entry": ["e00"], "masking": ["masked"]}))
    pd.DataFrame({"method": ["x"], "entry": ["e00"]}).to_csv(broken / "scalars.csv", index=False)
    with pytest.raises(ResultsError, match=r"scalars.csv: missing column"):
        load_results([broken])


def test_markdown_is_well_formed_with_the_best_in_bold(frame):
    table = leaderboard_table(frame, metrics=METRICS)
    text = to_markdown(table)
    lines = text.splitlines()
    rows = [line for line in lines if line.startswith("|")]
    assert len(rows) == 2 + 3
    assert len({row.count(" | ") for row in rows}) == 1  # same number of cells everywhere
    assert rows[0].startswith("| Rank | Method | n | cref_rmse ↓")
    assert "truth_corr ↑" in rows[0]
    assert set(rows[1].replace("|", "").split()) <= {"---:", ":---"}
    cells = {r.split(" | ")[1]: r.split(" | ") for r in rows[2:]}
    assert cells["mine"][3].startswith("**") and not cells["wiener"][3].startswith("**")
    assert cells["wiener"][6].startswith("**")  # truth_corr: wiener highest
    assert "noisy (reference)" in cells
    assert "4 entries finished by every method (masked); 1 entries dropped" in text
    mean, std = table.loc[0, "cref_rmse_mean"], table.loc[0, "cref_rmse_std"]
    assert f"{mean:.4g} ± {std:.2g}" in cells["mine"][3]
    assert "[n=3]" in cells["mine"][5]  # fsc05_change has a value on 3 of 4 entries


def test_latex_is_booktabs_and_escaped(frame):
    table = leaderboard_table(frame, metrics=METRICS)
    text = to_latex(table)
    lines = text.splitlines()
    assert lines[0].startswith("% Cells: mean ± std")
    begin = lines.index(r"\begin{tabular}{rlrrrrr}")
    assert lines[begin + 1] == r"\toprule" and lines[begin + 3] == r"\midrule"
    assert lines[-2:] == [r"\bottomrule", r"\end{tabular}"]
    body = lines[begin + 2: begin + 3] + lines[begin + 4: begin + 7]
    assert all(line.endswith(r" \\") and line.count(" & ") == 6 for line in body)
    assert r"cref\_rmse $\downarrow$" in body[0] and r"truth\_corr $\uparrow$" in body[0]
    assert "_" not in "".join(body).replace(r"\_", "")
    mine = body[1].split(" & ")
    assert mine[1] == "mine" and mine[3].startswith(r"\textbf{") and r"$\pm$" in mine[3]
    # one best per column, no ties here
    assert text.count(r"\textbf{") == len(table.attrs["metrics"])


def test_html_and_csv(frame):
    table = leaderboard_table(frame, metrics=METRICS)
    root = ET.fromstring(to_html(table))
    assert root.tag == "table" and len(root.find("tbody")) == 3
    assert [th.text for th in root.find("thead/tr")][:3] == ["Rank", "Method", "n"]
    assert len(root.findall(".//strong")) == len(table.attrs["metrics"])
    back = pd.read_csv(io.StringIO(to_csv(table)))
    np.testing.assert_allclose(back["cref_rmse_mean"], table["cref_rmse_mean"], rtol=1e-15)
    assert back["method"].tolist() == table["method"].tolist()


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
    """Folders for noisy and wiener from cref_bench.metrics.evaluate on tiny maps."""
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
            report = evaluate(m1, m2, out.full, denoised_half1=out.half1, denoised_half2=out.half2,
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
    frame = load_results(evaluated)
    curves = load_curves(evaluated, curves=("fsc_fd", "c_ref"))
    assert set(curves["curve"]) == {"fsc_fd", "c_ref"}
    table = leaderboard_table(frame)
    assert table["truth_corr_mean"].idxmax() == table.index[table["method"] == "wiener"][0]
    paths = write_figures(frame, curves, table, tmp_path / "fig")
    assert sorted(p.name for p in paths) == ["cref_curves_masked.pdf", "cref_curves_masked.png",
                                            "distribution_cref_rmse_masked.pdf",
                                            "distribution_cref_rmse_masked.png"]
    for path in paths:
        head = path.read_bytes()[:8]
        assert head.startswith(b"%PDF" if path.suffix == ".pdf" else b"\x89PNG")
        assert path.stat().st_size > 1000
    assert not list((tmp_path / "fig").glob(".*"))  # no temporary left


def test_cli_end_to_end(evaluated, tmp_path, capsys):
    out = tmp_path / "table.tex"
    figures = tmp_path / "figures"
    status = main(["leaderboard", *map(str, evaluated), "--format", "latex", "--out", str(out),
                   "--figures", str(figures), "--masking", "unmasked"])
    assert status == 0
    text = out.read_text()
    assert r"\toprule" in text and "noisy (reference)" in text and "wiener" in text
    assert "(unmasked)" in text
    assert len(list(figures.glob("*.png"))) == 2 and len(list(figures.glob("*.pdf"))) == 2
    capsys.readouterr()
    assert main(["leaderboard", *map(str, evaluated), "--metrics", "cref_rmse,truth_corr"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| Rank | Method | n | cref_rmse ↓ | truth_corr ↑ |")


def test_cli_reports_refusals(evaluated, tmp_path, capsys):
    scalars = pd.read_csv(evaluated[0] / "scalars.csv").drop(
        columns=["method", "method_version", "params", "split"])
    other = write_folder(tmp_path / "other", "other", scalars, content_hash="different")
    assert main(["leaderboard", str(evaluated[0]), str(other)]) == 2
    assert "different corpus content" in capsys.readouterr().err
    assert main(["leaderboard", str(evaluated[0]), str(other), "--allow-mixed-corpora",
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("rank,method,version,n,reference,cref_rmse_mean")


def test_runner_results_of_the_classic_baselines(tmp_path, capsys):
    """The real pipeline: a three-entry corpus, the runner on each classic baseline, the CLI."""
    from cref_bench.runner import run_method
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
    table = leaderboard_table(load_results(folders), primary="truth_corr")
    assert table.attrs["n_entries"] == 3 and table["method"].iloc[-1] == "noisy"
    assert main(["leaderboard", *folders]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\n| ") == 5 and "noisy (reference)" in printed
