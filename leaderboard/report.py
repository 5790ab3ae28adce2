"""The report: every figure of the crefDenoiser evaluation, the statistics and one HTML page.

:func:`write_report` turns results folders into ``<out>/``:

* ``index.html``: one self-contained page (figures embedded as PNG data, styles inline, a few
  lines of plain JavaScript to sort the per-entry table, nothing fetched from anywhere): the
  ranked table with confidence intervals, the pairwise statistics, the score validity (on
  results with truth: how far each truth-free score follows it, and the probes it ranks
  above ``fsc-weight``; :func:`validity_view`), every figure with its
  caption (or why it is absent), the breakdown by resolution and box size, the per-entry
  table, the failures and the provenance of each results folder with its
  ``cref-bench check`` verdict;
* ``tables/``: ``leaderboard``, ``pairwise``, ``breakdown``, ``per_entry``, ``failures``,
  ``provenance`` and ``validity`` as CSV (full precision), Markdown and LaTeX (booktabs);
* ``figures/``: each figure as PNG and PDF with the data drawn as CSV beside it.

Every number says over how many entries it was computed, and every failure is listed. The
report's :attr:`Report.exit_status` is 1 when the results hold failed entries (the report is
written all the same), as for ``cref-bench run``.
"""

from __future__ import annotations

import base64
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cref_bench.atomic import write_text
from cref_bench.metrics.facts import DEFAULT_METRICS, metric_facts, metric_label
from cref_bench.results.format import significant
from leaderboard import statistics, tables
from leaderboard.figures.common import Absent, Context, Drawn
from leaderboard.labels import params_display
from leaderboard.loading import ResultSet, load

CHOSEN_ENTRIES = 2
"""Entries drawn in the single-entry figures unless chosen: the one of median half-map
resolution among the compared entries, then the coarsest."""


@dataclass
class TableView:
    """A table as the HTML page shows it: ``headers``, ``rows`` (cell texts), ``bold`` (per
    cell), ``numeric`` (per column: right-aligned), ``caption``, ``files`` (names under
    ``tables/``)."""

    headers: list[str]
    rows: list[list[str]]
    bold: list[list[bool]] = field(default_factory=list)
    numeric: list[bool] = field(default_factory=list)
    caption: str = ""
    files: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.bold = self.bold or [[False] * len(self.headers) for _ in self.rows]
        self.numeric = self.numeric or [False] * len(self.headers)

    def markdown(self) -> str:
        """The table as Markdown (the caption below it)."""
        align = "".join("r" if n else "l" for n in self.numeric)
        text = tables.markdown_grid(self.headers, self.rows, self.bold, align)
        return text + (f"\n{self.caption}\n" if self.caption else "")

    def latex(self) -> str:
        """The table as LaTeX with booktabs rules (the caption as a comment above)."""
        align = "".join("r" if n else "l" for n in self.numeric)
        return tables.latex_grid(self.headers, self.rows, self.bold, align, self.caption)


@dataclass
class Report:
    """What :func:`write_report` wrote.

    Attributes:
        out: the report folder.
        index: ``index.html``.
        results: the results read.
        table: the ranked table, with the statistics' columns.
        pairs: the pairwise tests (:func:`leaderboard.statistics.pairwise_tests`).
        breakdown: the breakdown table (:func:`leaderboard.statistics.breakdown`).
        figures: every figure, drawn or absent.
        checks: the ``cref-bench check`` verdict of each results folder, by label.
    """

    out: Path
    index: Path
    results: ResultSet
    table: pd.DataFrame
    pairs: pd.DataFrame
    breakdown: pd.DataFrame
    figures: list = field(default_factory=list)
    checks: dict = field(default_factory=dict)

    @property
    def exit_status(self) -> int:
        """1 when the results hold failed entries, else 0."""
        return 1 if len(self.results.failures) else 0


def choose_entries(results: ResultSet, table: pd.DataFrame, count: int = CHOSEN_ENTRIES
                   ) -> list[str]:
    """The entries of the single-entry figures: among the compared entries, the one of
    median half-map FSC-0.143 resolution, then the coarsest, then the finest.

    Args:
        results: the results.
        table: the ranked table.
        count: how many.

    Returns:
        Up to ``count`` entry ids.
    """
    entries = table.attrs["entries"]
    if not entries:
        return []
    part = results.scalars[(results.scalars["masking"] == table.attrs["masking"])
                           & results.scalars["entry"].isin(entries)].drop_duplicates("entry")
    resolution = (part.set_index("entry")["res_half_0143"] if "res_half_0143" in part
                  else pd.Series(np.nan, index=part["entry"]))
    ordered = resolution.sort_values(kind="stable", na_position="last")
    ids = list(ordered.index)
    picks = [ids[(len(ids) - 1) // 2], ids[-1], ids[0]]
    return list(dict.fromkeys(picks))[:count]


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return significant(float(value), digits)
    return str(value)


def pairwise_view(pairs: pd.DataFrame, metric: str) -> TableView:
    """The pairwise tests as a table."""
    unit = metric_facts(metric).unit
    rows = [[r["a"], r["b"], _fmt(r["n"]), _fmt(r["median_difference"]),
             f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", _fmt(r["statistic"]),
             _fmt(r["p"], 3), _fmt(r["p_holm"], 3), _fmt(bool(r["distinguishable"]))]
            for r in pairs.to_dict("records")]
    a = pairs.attrs
    caption = (f"Every pair of methods on {metric}{f' ({unit})' if unit else ''}: the median "
               f"of the paired differences a - b over the n entries both scored, its "
               f"bootstrap {a.get('confidence', 0.95):.0%} confidence interval (percentile, "
               f"{a.get('resamples', statistics.RESAMPLES)} resamples, seed "
               f"{a.get('seed', statistics.DEFAULT_SEED)}), the two-sided Wilcoxon "
               "signed-rank test (scipy.stats.wilcoxon) and its p value adjusted by Holm's "
               f"method over all {len(pairs)} pairs; distinguishable: adjusted p < "
               f"{a.get('alpha', statistics.ALPHA):g}.")
    return TableView(["a", "b", "n", "median a - b", "95 % CI", "W", "p", "p (Holm)",
                      "distinguishable"], rows, numeric=[False, False] + [True] * 7,
                     caption=caption)


def breakdown_view(frame: pd.DataFrame) -> TableView:
    """The breakdown as a table: one row per (by, bin), one column per setting."""
    labels = list(dict.fromkeys(frame["label"]))
    rows = []
    for (by, name), group in frame.groupby(["by", "bin"], sort=False):
        cells = group.set_index("label")
        rows.append([by, name, _fmt(int(cells["n"].max()))] + [
            f"{_fmt(cells.at[label, 'mean'])} (n={cells.at[label, 'n']})"
            if label in cells.index else "" for label in labels])
    a = frame.attrs
    caption = (f"Mean {metric_label(a.get('metric'))} ({a.get('masking')}) per bin of the "
               "half-map FSC-0.143 resolution and of the box's longest edge (voxels), over the "
               "compared entries; (n=k): entries with a value.")
    return TableView(["by", "bin", "entries", *labels], rows,
                     numeric=[False, False, True] + [True] * len(labels), caption=caption)


def per_entry_view(results: ResultSet, table: pd.DataFrame) -> TableView:
    """Every setting's value of each shown metric on every entry (the table's masking), bounds
    marked, and its failed entries with their kind."""
    a = table.attrs
    metrics = a["metrics"]
    scalars = results.scalars[results.scalars["masking"] == a["masking"]]
    rows = []
    order = {label: i for i, label in enumerate(table["label"])}
    ordered = scalars.assign(_o=scalars["label"].map(order)).sort_values(
        ["entry", "_o"], kind="stable")
    for index, row in ordered.iterrows():
        cells = [row["entry"], row["label"], row.get("box") if isinstance(row.get("box"), str)
                 else "", "compared" if row["entry"] in set(a["entries"]) else "dropped"]
        for metric in metrics:
            value = row.get(metric, math.nan)
            bound = results.bounds.at[index, metric] if metric in results.bounds else ""
            cells.append((f"{bound} " if bound else "") + _fmt(value))
        rows.append(cells)
    for row in results.failures.to_dict("records"):
        rows.append([row["entry"], row["label"], "", f"failed ({row['kind']})"]
                    + ["failed"] * len(metrics))
    rows.sort(key=lambda r: (r[0], order.get(r[1], 0)))
    caption = (f"Each method's value on each entry ({a['masking']}); '< x': an upper bound "
               "(an FSC that never falls below its threshold up to Nyquist), '> x': a lower "
               "bound; compared: used in the ranking; failed: the method failed the entry.")
    return TableView(["entry", "method", "box", "status", *map(metric_label, metrics)], rows,
                     numeric=[False] * 4 + [True] * len(metrics), caption=caption)


def failures_view(results: ResultSet) -> TableView:
    """Every failed entry with its kind and message."""
    rows = [[r["label"], r["entry"], r["kind"], r["error_type"], str(r["message"])[:400]]
            for r in results.failures.to_dict("records")]
    caption = ("Failed entries. Kinds error, output, inputs-modified, timeout, memory and "
               "crashed are the method's fault; load and metrics are not (see "
               "cref_bench.run.contract).")
    return TableView(["method", "entry", "kind", "error", "message"], rows, caption=caption)


def provenance_view(results: ResultSet, checks: dict) -> TableView:
    """One row per results folder: what was run, on what, where and how long."""
    rows = []
    for label, p in results.provenance.items():
        dataset, method = p.get("dataset") or {}, p.get("method") or {}
        execution, hardware = p.get("execution") or {}, p.get("hardware") or {}
        counts = p.get("counts") or {}
        check = checks.get(label)
        verdict = ("n/a" if check is None else "fit" if check.fit else
                   "NOT fit: " + ", ".join(dict.fromkeys(f.topic for f in check.findings)))
        if check is not None and check.marks:
            verdict += "; marked: " + ", ".join(m.partition(":")[0] for m in check.marks)
        cpu = ", ".join(str(x) for x in (hardware.get("cpu_model"),
                                         f"{hardware.get('cpu_cores')} cores",
                                         _bytes(hardware.get("memory_bytes")))
                        if x is not None)
        gpus = hardware.get("gpus") or []
        rows.append([
            label, str(results.folders[label]), f"{method.get('version')}",
            params_display(method.get("params")),
            str(method.get("code_digest") or "n/a")[:12],
            f"{dataset.get('location')} [{dataset.get('split')}]",
            str(dataset.get("content_hash") or "n/a")[:12],
            f"{counts.get('entries', 'n/a')} ({counts.get('failed', 0)} failed)",
            f"{execution.get('isolation')}, sandbox {execution.get('sandbox')}"
            f"{', trusted' if execution.get('trusted') else ''}, timeout "
            f"{execution.get('timeout_s')} s, memory "
            f"{_bytes(execution.get('memory_limit_bytes'))}",
            cpu + (f"; GPUs: {', '.join(map(str, gpus))}" if gpus else ""),
            f"{p.get('started_at')}, {_fmt(p.get('wall_seconds'), 3)} s",
            verdict])
    caption = ("Provenance of each results folder (provenance.json): method version, parameters "
               "and code digest, corpus and split, entries, isolation and limits, hardware, "
               "start time and wall time, and the verdict of cref-bench check.")
    return TableView(["method", "folder", "version", "parameters", "code", "corpus [split]",
                      "corpus hash", "entries", "execution", "hardware", "started, wall time",
                      "check"], rows, caption=caption)


def _bytes(value) -> str:
    if not isinstance(value, (int, float)):
        return "none"
    return f"{value / 2**30:.1f} GiB"


def _write_tables(out: Path, views: dict[str, TableView], csvs: dict[str, pd.DataFrame]):
    folder = out / "tables"
    for name, view in views.items():
        write_text(folder / f"{name}.md", view.markdown(), make_parents=True)
        write_text(folder / f"{name}.tex", view.latex(), make_parents=True)
        write_text(folder / f"{name}.csv", csvs[name].to_csv(index=False), make_parents=True)
        view.files = [f"tables/{name}.{x}" for x in ("csv", "md", "tex")]


def _check_entries(table: pd.DataFrame, alpha: float) -> None:
    """Warn, and note in the table's ``attrs["entries_needed"]``, where the compared entries
    are too few for the pairwise tests to tell any two settings apart."""
    ranked = int(table["rank"].notna().sum())
    if ranked < 2:
        return
    needed = statistics.entries_needed(ranked, alpha)
    if table.attrs["n_entries"] < needed:
        table.attrs["entries_needed"] = needed
        warnings.warn(f"{table.attrs['n_entries']} entries compared: too few for the "
                      f"statistics to tell any two of the {ranked} methods apart (that needs "
                      f"at least {needed}); score more entries (a larger corpus, or --split "
                      "all)", stacklevel=2)


def _checks(results: ResultSet, corpus, expect_hash) -> dict:
    from cref_bench.results.check import check_results

    return {label: check_results(folder, corpus=corpus, expect_hash=expect_hash)
            for label, folder in results.folders.items()}


def write_report(dirs, out: str | os.PathLike, *, masking: str = "masked",
                 primary: str | None = None, metrics=DEFAULT_METRICS, reference: str = "noisy",
                 entries=None, seed: int = statistics.DEFAULT_SEED,
                 alpha: float = statistics.ALPHA, allow_mixed_corpora: bool = False,
                 corpus=None, expect_hash: str | None = None) -> Report:
    """Write the report of some results folders (see the module docstring).

    Args:
        dirs: the results folders (one per method setting).
        out: the report folder (created; files in it are replaced).
        masking: the rows ranked and drawn (``masked`` or ``unmasked``; Fig. 2 shows both and
            Fig. 4 the masked model-map FSC).
        primary: the metric that ranks and is tested (default
            :func:`leaderboard.tables.default_primary`: the truth correlation on a corpus with
            truth, else C_ref RMSE).
        metrics: the metrics of the tables.
        reference: the method marked as the reference row.
        entries: the entries of the single-entry figures (default :func:`choose_entries`).
        seed: the bootstraps' seed.
        alpha: the family-wise error rate of the pairwise tests.
        allow_mixed_corpora: accept results of different corpus content.
        corpus: an opened corpus the results must be of, for the check of each folder.
        expect_hash: the corpus content hash the results must have, for the check.

    Returns:
        The :class:`Report`.

    Raises:
        ResultsError: a results folder cannot be read, or the corpora differ.
        InputError: bad arguments (masking, metric), an entry chosen that was not compared,
            or nothing to compare.
        OSError: the report cannot be written.
    """
    from cref_bench.errors import InputError
    from leaderboard.figures import PAPER_FIGURES
    from leaderboard.figures import breakdown as breakdown_figure

    out = Path(out)
    results = load(dirs, allow_mixed_corpora=allow_mixed_corpora)
    primary = primary or tables.default_primary(results, masking)
    table = tables.leaderboard_table(results, metrics=metrics, masking=masking,
                                     primary=primary, reference=reference)
    values = statistics.paired_values(results, table)
    pairs = statistics.pairwise_tests(values, seed=seed, alpha=alpha)
    table = statistics.annotate(table, values, pairs, seed=seed, alpha=alpha)
    _check_entries(table, alpha)
    broken = statistics.breakdown(results, table)
    chosen = list(entries) if entries else choose_entries(results, table)
    unknown = [e for e in chosen if e not in set(table.attrs["entries"])]
    if unknown:
        raise InputError(f"entries {unknown} were not compared (compared: "
                         f"{', '.join(table.attrs['entries'][:10])}...)")
    checks = _checks(results, corpus, expect_hash)

    ctx = Context(results, table, chosen)
    figure_dir = out / "figures"
    figures = [module.make(ctx, figure_dir) for module in PAPER_FIGURES]
    figures.insert(7, breakdown_figure.make(ctx, figure_dir, broken))

    headers, cells, bold = tables.grid(table)
    views = {"leaderboard": TableView(headers, cells, bold,
                                      numeric=[True, False] + [True] * (len(headers) - 2),
                                      caption=tables.describe(table)),
             "pairwise": pairwise_view(pairs, primary),
             "breakdown": breakdown_view(broken),
             "per_entry": per_entry_view(results, table),
             "failures": failures_view(results),
             "provenance": provenance_view(results, checks)}
    views["validity"], validity_table = validity_view(results, masking, seed)
    csvs = {"leaderboard": table, "pairwise": pairs, "breakdown": broken,
            "per_entry": _per_entry_csv(results, masking),
            "failures": results.failures.drop(columns=["results_dir"]),
            "provenance": pd.DataFrame(views["provenance"].rows,
                                       columns=views["provenance"].headers),
            "validity": validity_table}
    _write_tables(out, views, csvs)
    report = Report(out=out, index=out / "index.html", results=results, table=table,
                    pairs=pairs, breakdown=broken, figures=figures, checks=checks)
    write_text(report.index, render_html(report, views, chosen))
    return report


def validity_view(results: ResultSet, masking: str, seed: int) -> tuple[TableView, pd.DataFrame]:
    """The score-validity section (see :mod:`leaderboard.validity`): per truth-free score, its
    Kendall τ with the truth correlation and the probes it ranks above ``fsc-weight``.

    Args:
        results: the results (with truth metrics, or the view says there are none).
        masking: the rows judged.
        seed: the bootstrap's seed.

    Returns:
        ``(view, table)``; without truth the view has no rows and says why.
    """
    from cref_bench.errors import InputError
    from leaderboard import validity

    headers = ["score", "τ vs truth_corr (within entries)", "95 % CI", "entries", "τ pooled",
               "τ without probes", "probes above fsc-weight"]
    try:
        tau = validity.agreement(results, masking, seed=seed)
    except InputError as exc:
        return TableView(headers, [], caption=f"Not measured: {exc.fault}."), pd.DataFrame()
    probes = None
    methods = {s.method for s in results.settings.values()}
    if "fsc-weight" in methods and any(validity.is_probe(m) for m in methods):
        probes = validity.probes_above(results, "fsc-weight", masking)
    truth = "truth_corr" if (tau["truth"] == "truth_corr").any() else tau["truth"].iloc[0]
    headers[1] = f"τ vs {truth} (within entries)"
    summary = validity.summary(tau, probes, truth)
    rows = [[r.score, _fmt(r.tau, 3), f"[{_fmt(r.ci_low, 3)}, {_fmt(r.ci_high, 3)}]",
             str(r.entries), _fmt(r.tau_pooled, 3), _fmt(r.honest_tau, 3),
             r.probes_above or ("none" if probes is not None else "no probes run")]
            for r in summary.itertuples()]
    caption = ("How far each truth-free score follows the truth on these results: Kendall's τ "
               f"between the score and {truth}, both oriented so that higher is better, "
               "between the methods of each entry (mean over entries, 95 % bootstrap "
               "interval) and over every row pooled (cref-bench score-validity). A score whose "
               "τ is near 0, or that ranks a probe above an honest filter, cannot be trusted "
               "to rank methods where there is no truth.")
    return TableView(headers, rows, numeric=[False] + [True] * 5 + [False],
                     caption=caption), tau


def _per_entry_csv(results: ResultSet, masking: str) -> pd.DataFrame:
    """The scalars of every setting, with a ``<metric>_bound`` column beside each metric."""
    scalars = results.scalars.drop(columns=["results_dir", "corpus_hash"])
    for metric in results.metrics:
        scalars.insert(scalars.columns.get_loc(metric) + 1, f"{metric}_bound",
                       results.bounds[metric])
    return scalars


def _image(path: Path) -> tuple[str, int]:
    """A PNG as a data URL, and its width in CSS pixels at its physical size (96 per inch)."""
    from leaderboard.figures.common import DPI

    data = path.read_bytes()
    width = int.from_bytes(data[16:20], "big")  # the IHDR chunk's width, in pixels
    return ("data:image/png;base64," + base64.b64encode(data).decode("ascii"),
            round(width * 96 / DPI))


def render_html(report: Report, views: dict[str, TableView], chosen: list[str]) -> str:
    """The report's HTML page (template ``leaderboard/templates/report.html.j2``).

    Args:
        report: the report's content.
        views: its tables.
        chosen: the entries of the single-entry figures.

    Returns:
        The page, self-contained.
    """
    import jinja2

    import cref_bench
    from cref_bench.results.provenance import now_utc

    environment = jinja2.Environment(loader=jinja2.PackageLoader("leaderboard", "templates"),
                                     autoescape=True, trim_blocks=True, lstrip_blocks=True,
                                     undefined=jinja2.StrictUndefined)
    figures = []
    number = 0
    for figure in report.figures:
        if isinstance(figure, Drawn):
            number += 1
            image, width = _image(figure.png)
            figures.append({"drawn": True, "number": number, "title": figure.title,
                            "caption": figure.caption, "image": image, "width": width,
                            "files": [p.relative_to(report.out).as_posix()
                                      for p in figure.paths]})
        elif isinstance(figure, Absent):
            figures.append({"drawn": False, "title": figure.title, "reason": figure.reason})
    a = report.table.attrs
    hashes = sorted({str((p.get("dataset") or {}).get("content_hash"))
                     for p in report.results.provenance.values()})
    return environment.get_template("report.html.j2").render(
        version=cref_bench.__version__, generated=now_utc(), attrs=a, views=views,
        figures=figures, chosen=chosen, corpus_hashes=hashes,
        n_settings=len(report.results.labels), n_failures=len(report.results.failures),
        absent=[f for f in figures if not f["drawn"]])
