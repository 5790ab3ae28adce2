"""The report: statistics against scipy on a case with a known winner, each figure's data
against values computed by hand for two entries, the page, its absent figures, the command,
and the page opened in a real browser (headless Chromium)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cref_bench.cli import main
from leaderboard import statistics
from leaderboard.figures import (
    distribution,
    entry_curves,
    model_fsc,
    reference_fsc,
    shell_diagnostics,
    variance_ratios,
)
from leaderboard.figures.common import Absent, Context, Drawn, on_grid
from leaderboard.loading import load
from leaderboard.report import choose_entries, write_report
from leaderboard.tables import leaderboard_table, to_markdown
from tests.results_folders import write_folder

# --------------------------------------------------------------------------- statistics


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.2 -> x4, x3, x2, x1 = 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.2
    np.testing.assert_allclose(statistics.holm([0.01, 0.04, 0.03, 0.2]),
                               [0.04, 0.09, 0.09, 0.2])
    np.testing.assert_allclose(statistics.holm([0.5, np.nan, 0.6]), [1.0, np.nan, 1.0])


@pytest.fixture(scope="module")
def known_winner():
    """14 entries: best is lower than worse on every entry by 0.1 (+ noise); twin differs from
    best by differences of both signs in mirrored pairs (no tendency at all)."""
    rng = np.random.default_rng(21)
    base = rng.uniform(0.2, 0.6, 14)
    mirrored = np.repeat(0.005 * np.arange(1, 8), 2) * np.tile([1, -1], 7)
    return pd.DataFrame({"best": base,
                         "twin": base + mirrored,
                         "worse": base + 0.1 + rng.normal(0, 0.01, 14)},
                        index=[f"e{i:02d}" for i in range(14)])


def test_pairwise_tests_are_scipy_with_holm(known_winner):
    pairs = statistics.pairwise_tests(known_winner, seed=3, resamples=2000)
    assert [(r.a, r.b) for r in pairs.itertuples()] == [("best", "twin"), ("best", "worse"),
                                                         ("twin", "worse")]
    raw = []
    for row in pairs.itertuples():
        difference = known_winner[row.a] - known_winner[row.b]
        expected = stats.wilcoxon(difference)
        assert row.p == pytest.approx(expected.pvalue, rel=1e-12)
        assert row.statistic == pytest.approx(expected.statistic)
        assert row.median_difference == pytest.approx(np.median(difference))
        interval = stats.bootstrap((difference.to_numpy(),), np.median, n_resamples=2000,
                                   method="percentile", rng=np.random.default_rng(3))
        assert (row.ci_low, row.ci_high) == pytest.approx(
            (interval.confidence_interval.low, interval.confidence_interval.high))
        raw.append(expected.pvalue)
    np.testing.assert_allclose(pairs["p_holm"], statistics.holm(raw))
    by_pair = pairs.set_index(["a", "b"])
    # 14 differences all of one sign: the exact two-sided p is 2 / 2**14
    assert by_pair.loc[("best", "worse"), "p"] == pytest.approx(2 / 2**14)
    assert by_pair.loc[("best", "worse"), "distinguishable"]
    assert not by_pair.loc[("best", "twin"), "distinguishable"]
    low, high, median = by_pair.loc[("best", "worse"), ["ci_low", "ci_high",
                                                       "median_difference"]]
    assert low <= median <= high < 0 and abs(median + 0.1) < 0.01  # worse by 0.1
    again = statistics.pairwise_tests(known_winner, seed=3, resamples=2000)
    pd.testing.assert_frame_equal(pairs, again)  # a fixed seed: the same intervals


@pytest.mark.parametrize("settings, needed", [(2, 6), (3, 7), (5, 9)])
def test_entries_needed_to_tell_settings_apart(settings, needed):
    """With one entry fewer, even differences all of one sign stay at Holm-adjusted
    p >= 0.05; with ``needed`` they fall below it (scipy's exact test)."""
    assert statistics.entries_needed(settings) == needed
    pairs = settings * (settings - 1) // 2
    for n, separable in ((needed - 1, False), (needed, True)):
        p = stats.wilcoxon(np.arange(1.0, n + 1)).pvalue  # every difference positive
        assert p == pytest.approx(2 / 2**n)
        assert bool(statistics.holm([p] * pairs).min() < 0.05) is separable


def test_annotate_marks_those_not_distinguishable_from_the_best(known_winner, tmp_path):
    folders = [write_folder(tmp_path / m, m, pd.DataFrame({
        "entry": known_winner.index, "masking": "masked", "cref_rmse": known_winner[m]}))
        for m in known_winner.columns]
    results = load(folders)
    table = leaderboard_table(results, metrics=[])
    values = statistics.paired_values(results, table)
    assert list(values.columns) == list(table["label"])
    pairs = statistics.pairwise_tests(values, resamples=2000)
    annotated = statistics.annotate(table, values, pairs, resamples=2000).set_index("label")
    best = annotated.index[annotated["rank"] == 1][0]
    assert best in ("best", "twin") and annotated.loc["worse", "rank"] == 3
    assert annotated["tied_with_best"].to_dict() == {"best": True, "twin": True, "worse": False}
    assert annotated.loc["worse", "p_vs_best"] < 0.05 <= annotated.loc[
        "twin" if best == "best" else "best", "p_vs_best"]
    for label in annotated.index:
        assert annotated.loc[label, "ci_low"] < known_winner[label].mean() \
            < annotated.loc[label, "ci_high"]
    other = "twin" if best == "best" else "best"
    text = to_markdown(statistics.annotate(table, values, pairs, resamples=2000))
    assert f"| 1 | {best} |" in text and f"| 2 | {other} ≈ |" in text  # not the best itself
    assert "| 3 | worse |" in text and "not distinguishable from the best" in text


# --------------------------------------------------------------------------- figure data

SHELLS = {"e00": (32, 64.0), "e01": (20, 40.0)}
"""Per entry: shells R and box length n·a (Å), so shell r is at r / (n·a) 1/Å, up to 0.5."""

FACTOR = {"noisy": 1.0, "mine": 0.5}


def _line(entry: str, a: float, b: float) -> callable:
    return lambda f: a + b * f + (0.1 if entry == "e01" else 0.0)


def _curves(method: str, with_reference: bool) -> pd.DataFrame:
    """Linear curves in frequency (so interpolation is exact), per entry and method."""
    rows = []
    k = FACTOR[method]
    for entry, (count, length) in SHELLS.items():
        shells = np.arange(1, count + 1)
        frequency = shells / length
        curves = {"c_ref": _line(entry, 1.0, -1.0), "fsc_fd": _line(entry, k, -k),
                  "snr": _line(entry, 10.0, -10.0), "sbr": _line(entry, 5.0 * k, -k),
                  "var_signal": _line(entry, 2.0, -1.0), "var_noise": _line(entry, 1.0, 1.0),
                  "cov_d1d2": _line(entry, 2.0 * k, -k)}
        if with_reference:
            curves["fsc_reference"] = _line(entry, 1.0, -k)
        for name, line in curves.items():
            rows.append(pd.DataFrame({"entry": entry, "masking": "masked", "curve": name,
                                      "shell": shells, "frequency": frequency,
                                      "value": line(frequency)}))
    return pd.concat(rows, ignore_index=True)


def _scalars(method: str, with_model: bool) -> pd.DataFrame:
    k = FACTOR[method]
    frame = pd.DataFrame({
        "entry": ["e00", "e01"], "masking": "masked", "cref_rmse": [0.4 * k, 0.6 * k],
        "res_half_0143": [2.5, 4.5], "fsc05_change": [-0.2 * k, -0.4 * k] if k < 1 else 0.0,
        "d_fsc_model_0143_input": [3.0, 5.0] if with_model else np.nan,
        "d_fsc_model_0143": [3.0 - k, 5.0 - 2 * k] if with_model else np.nan})
    return pd.concat([frame, frame.assign(masking="unmasked")], ignore_index=True)


def _folders(root: Path, *, with_reference=False, with_model=False, failures=()) -> list[Path]:
    return [write_folder(root / m, m, _scalars(m, with_model),
                         curves=_curves(m, with_reference),
                         box={"e00": "64x64x64", "e01": "100x90x80"},
                         failures=failures if m == "mine" else ())
            for m in FACTOR]


@pytest.fixture
def ctx(tmp_path):
    results = load(_folders(tmp_path, with_reference=True, with_model=True))
    table = leaderboard_table(results, metrics=["cref_rmse", "fsc05_change"])
    return Context(results, table, chosen=["e00", "e01"])


def test_distribution_and_model_fsc_data_by_hand(ctx):
    frame = distribution.data(ctx, "cref_rmse")
    assert list(zip(frame["label"], frame["entry"], frame["value"])) == [
        ("mine", "e00", 0.2), ("mine", "e01", 0.3), ("noisy", "e00", 0.4), ("noisy", "e01", 0.6)]
    model = model_fsc.data(ctx).set_index(["label", "entry"])
    # after - before = -k on e00 and -2k on e01
    assert model.loc[("mine", "e00"), "change"] == pytest.approx(-0.5)
    assert model.loc[("mine", "e01"), "change"] == pytest.approx(-1.0)
    assert model.loc[("noisy", "e01"), "change"] == pytest.approx(-2.0)


def test_curve_figures_data_by_hand(ctx):
    # the mean of the two entries' lines at frequencies both reach (f >= 1/40)
    fsc = reference_fsc.mean_curves(ctx, "fsc_reference")
    mine = fsc[(fsc["label"] == "mine") & (fsc["frequency"] >= 1 / 40)]
    np.testing.assert_allclose(mine["mean"], 1.0 - 0.5 * mine["frequency"] + 0.05)
    assert (mine["n"] == 2).all() and (fsc["entries"] == 2).all()
    below = fsc[(fsc["label"] == "mine") & (fsc["frequency"] < 1 / 40)
                & (fsc["frequency"] >= 1 / 64)]
    np.testing.assert_allclose(below["mean"], 1.0 - 0.5 * below["frequency"])  # e00 alone
    assert (below["n"] == 1).all()

    ratios = variance_ratios.data(ctx)
    snr = ratios[(ratios["quantity"] == "var(S)/var(N)") & (ratios["frequency"] >= 1 / 40)]
    assert set(snr["label"]) == {variance_ratios.HALF_MAPS}  # once, not per method
    np.testing.assert_allclose(snr["mean"], 10 - 10 * snr["frequency"] + 0.05)
    sbr = ratios[ratios["quantity"] == "var(S)/var(B)"]
    assert set(sbr["label"]) == {"mine"}  # the reference (noisy) has no bias: left out
    sbr = sbr[sbr["frequency"] >= 1 / 40]
    np.testing.assert_allclose(sbr["mean"], 2.5 - 0.5 * sbr["frequency"] + 0.05)

    entry = entry_curves.data(ctx, "e01")
    target = entry[entry["label"] == entry_curves.TARGET]
    np.testing.assert_allclose(target["value"], 1.1 - np.arange(1, 21) / 40)
    fd = entry[(entry["label"] == "mine")]
    np.testing.assert_allclose(fd["value"], 0.6 - 0.5 * np.arange(1, 21) / 40)

    shells = shell_diagnostics.data(ctx, ["e00"])
    f = np.arange(1, 33) / 64
    total = (2 - f) + (1 + f)  # var(S) + var(N) = 3 on every shell
    cov = shells[(shells["quantity"] == "cov(D1, D2)") & (shells["label"] == "mine")]
    np.testing.assert_allclose(cov["relative"], (1.0 - 0.5 * f) / total)
    signal = shells[shells["quantity"] == "var(S)"]
    assert set(signal["label"]) == {"half-maps"} and len(signal) == 32
    np.testing.assert_allclose(signal["relative"], (2 - f) / 3)


def test_the_variance_figure_says_who_has_no_bias_panel(tmp_path):
    """A method that denoises the two halves together (as LAFTER) has no var(S)/var(B): the
    caption names it and says why."""
    curves = _curves("mine", False)
    joint = write_folder(tmp_path / "joint", "joint", _scalars("mine", False),
                         curves=curves[curves["curve"] != "sbr"],
                         box={"e00": "64x64x64", "e01": "100x90x80"})
    results = load([*_folders(tmp_path / "results"), joint])
    table = leaderboard_table(results, metrics=["cref_rmse"])
    figure = variance_ratios.make(Context(results, table, chosen=["e00"]), tmp_path / "fig")
    assert isinstance(figure, Drawn)
    assert " Not in the right panel: joint (no denoised half-maps: the method denoises the " \
           "two halves together, and var(B) needs each denoised alone)." in figure.caption
    assert "mine" not in figure.caption.split("Not in the right panel")[1]


def test_on_grid_without_extrapolation():
    curves = pd.DataFrame({"entry": ["a"] * 3 + ["b"] * 2,
                           "frequency": [0.1, 0.2, 0.3, 0.1, 0.2],
                           "value": [1.0, 2.0, 3.0, 3.0, 4.0]})
    grid = on_grid(curves, np.array([0.05, 0.15, 0.25]))
    np.testing.assert_allclose(grid["mean"], [np.nan, (1.5 + 3.5) / 2, 2.5])
    assert grid["n"].tolist() == [0, 2, 1]


def test_breakdown_by_resolution_and_box(ctx):
    frame = statistics.breakdown(ctx.results, ctx.table).set_index(["by", "bin", "label"])
    assert frame.loc[("resolution", "< 3 Å", "mine"), "mean"] == pytest.approx(0.2)  # e00
    assert frame.loc[("resolution", "4–6 Å", "noisy"), "mean"] == pytest.approx(0.6)  # e01
    assert frame.loc[("box", "≤ 64", "noisy"), "entries"] == "e00"
    assert frame.loc[("box", "65–128", "mine"), "entries"] == "e01"  # 100x90x80: edge 100
    assert set(frame.index.get_level_values("bin")) == {"< 3 Å", "4–6 Å", "≤ 64", "65–128"}


# --------------------------------------------------------------------------- the report

def test_report_without_references_or_models_says_what_is_absent(tmp_path, capsys):
    folders = _folders(tmp_path / "results", failures=[("e02", "timeout")])
    out = tmp_path / "report"
    status = main(["report", *map(str, folders), "--out", str(out), "--include-unfit"])
    assert status == 1  # the results hold a failure: the report is written, the status says so
    captured = capsys.readouterr()
    printed = captured.out
    # 2 entries cannot tell 2 methods apart: said on standard error and under the table
    assert captured.err == ("cref-bench: warning: 2 entries compared: too few for the "
                            "statistics to tell any two of the 2 methods apart (that needs "
                            "at least 6); score more entries (a larger corpus, or --split "
                            "all)\n")
    assert "Too few entries: with 2 no two methods can be told apart; that needs at least 6." \
        in (out / "index.html").read_text()
    assert printed.strip().endswith(str(out / "index.html"))
    assert "1 failed entries" in printed
    page = (out / "index.html").read_text()
    assert "Figures not drawn" in page
    assert "FSC to a higher-resolution reference map (paper Fig. 3)</strong>: no compared " \
           "entry of the corpus holds a reference map" in page
    assert "Model-map FSC resolution before and after denoising (paper Fig. 4)</strong>: no " \
           "compared entry has a model-map FSC" in page
    assert page.count("<img src=\"data:image/png;base64,") == 7
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert "mine failed 1 of 3 entries (timeout 1)" in page
    # no truth in these results: the score-validity section says it was not measured
    assert '<h2 id="validity">Score validity</h2>' in page
    assert "Not measured: the masked results hold no truth metric" in page
    for name in ("leaderboard", "pairwise", "breakdown", "per_entry", "failures", "provenance"):
        for suffix in ("csv", "md", "tex"):
            assert (out / "tables" / f"{name}.{suffix}").stat().st_size > 0
    tex = (out / "tables" / "leaderboard.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex
    drawn = sorted(p.stem for p in (out / "figures").glob("*.png"))
    assert drawn == ["breakdown", "cref_curves", "fig1_distribution", "fig2_fsc05_change",
                     "fig7_variance_ratios", "figS1_fsc_fd_entry", "figS4_shell_diagnostics"]
    for stem in drawn:
        assert (out / "figures" / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"
        assert (out / "figures" / f"{stem}.csv").stat().st_size > 0
    per_entry = pd.read_csv(out / "tables" / "per_entry.csv")
    assert {"cref_rmse", "cref_rmse_bound", "label", "box"} <= set(per_entry.columns)


def test_report_with_references_and_models_draws_them(tmp_path):
    report = write_report(_folders(tmp_path / "results", with_reference=True, with_model=True),
                          tmp_path / "report", entries=["e01"])
    names = {f.name: f for f in report.figures}
    assert isinstance(names["fig3_reference_fsc"], Drawn)
    assert isinstance(names["fig4_model_fsc"], Drawn)
    assert not [f for f in report.figures if isinstance(f, Absent)]
    assert report.exit_status == 0
    assert "Entry e01:" in names["figS1_fsc_fd_entry"].caption
    assert choose_entries(report.results, report.table) == ["e00", "e01"]


def test_report_of_a_method_that_failed_every_entry(tmp_path):
    """As the runner writes it: scalars.csv without a metric column. Alone, the report is
    written and lists the failures; beside others, its statistics and table hold it."""
    boom = write_folder(tmp_path / "boom", "boom", pd.DataFrame(columns=["entry", "masking"]),
                        failures=[("e00", "error"), ("e01", "error")])
    alone = write_report([boom], tmp_path / "alone")
    assert alone.exit_status == 1 and alone.table["label"].tolist() == ["boom"]
    assert "boom failed every entry (error 2)" in alone.index.read_text()
    assert not [f for f in alone.figures if isinstance(f, Drawn)]
    # beside others: the statistics and the table's cells (where the report broke)
    results = load([*_folders(tmp_path / "results"), boom])
    table = leaderboard_table(results, metrics=["cref_rmse"])
    values = statistics.paired_values(results, table)
    table = statistics.annotate(table, values, statistics.pairwise_tests(values, resamples=99))
    assert table["label"].tolist() == ["mine", "noisy", "boom"]
    assert "| – | boom | 0 | 2 (error 2) | failed | n/a | n/a |" in to_markdown(table)


# --------------------------------------------------------------------------- the browser

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_the_page_in_headless_chromium(tmp_path):
    """Every figure loads, nothing leaves the machine, the console stays clean, and the
    per-entry table sorts; a screenshot is kept in the test's folder."""
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (pip install selenium)")
    browser, driver_path = _chromium(), shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("Chromium and chromedriver are needed (Debian: apt-get install chromium "
                    "chromium-driver)")
    report = write_report(_folders(tmp_path / "results", with_reference=True), tmp_path / "rep")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,2000",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=driver_path))
    try:
        driver.get(report.index.resolve().as_uri())
        widths = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0);")
        heading = driver.find_element("css selector", "#per-entry-table thead th")
        heading.click()  # sort by entry, ascending
        heading.click()  # and descending
        first = driver.execute_script(
            "return document.querySelector('#per-entry-table tbody tr td').textContent;")
        driver.save_screenshot(str(tmp_path / "report.png"))
        console = driver.get_log("browser")
        requests = [json.loads(entry["message"])["message"] for entry in
                    driver.get_log("performance")]
    finally:
        driver.quit()
    drawn = [f for f in report.figures if isinstance(f, Drawn)]
    assert len(widths) == len(drawn) == 8 and all(w > 0 for w in widths)
    assert first == "e01"
    assert [e for e in console if e["level"] in ("SEVERE", "WARNING")] == []
    sent = [m["params"] for m in requests if m["method"] == "Network.requestWillBeSent"]
    page = report.index.resolve().as_uri()
    mine = [p["request"]["url"] for p in sent if p.get("documentURL") == page]
    assert page in mine and all(u.startswith(("file://", "data:")) for u in mine), mine
    # nor did the browser itself reach out (its own chrome:// pages stay inside it)
    outside = [p["request"]["url"] for p in sent
               if p["request"]["url"].split(":")[0] in ("http", "https", "ws", "wss", "ftp")]
    assert outside == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
