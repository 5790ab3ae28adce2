"""Ranked leaderboard tables from the runner's results folders.

A results folder (written by ``cref-bench run``, see :mod:`cref_bench.results`) holds
``scalars.csv`` (one row per method, entry and masking; one column per scalar metric, empty
where not computable), ``curves.csv`` (long format), ``failures.csv`` and
``provenance.json`` (whose ``dataset.content_hash`` identifies the corpus content).

:func:`load_results` and :func:`load_curves` read any number of folders (typically one per
method) and refuse to mix corpora of different content; :func:`leaderboard_table` ranks the
methods on the entries that *every* method finished (a paired comparison; the entries
dropped are counted); :func:`to_markdown`, :func:`to_latex`, :func:`to_html` and
:func:`to_csv` render the table, the best value of each metric in bold.

Which direction of each metric is better, and which metrics a table shows by default, come
from :mod:`cref_bench.metric_facts`; the files' columns from :mod:`cref_bench.results`.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from cref_bench.errors import InputError, ResultsError
from cref_bench.metric_facts import DEFAULT_METRICS, MASKINGS, metric_facts
from cref_bench.results import CURVE_COLUMNS, ID_COLUMNS, NUMBER_COLUMNS

ARROWS = {"min": "↓", "max": "↑"}
"""The header mark of a metric whose lower (``min``) or higher (``max``) values are better."""


def read_provenance(folder: str | os.PathLike) -> dict:
    """The ``provenance.json`` of a results folder.

    Args:
        folder: the results folder.

    Returns:
        The provenance record.

    Raises:
        ResultsError: the file is missing or not a JSON object.
    """
    path = Path(folder) / "provenance.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(path, "missing: is this a cref-bench results folder?") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(path, f"unreadable ({exc})") from None
    if not isinstance(record, dict):
        raise ResultsError(path, "not a JSON object")
    return record


def _corpus_hashes(folders: list[Path], allow_mixed_corpora: bool) -> dict[Path, str | None]:
    hashes = {f: (read_provenance(f).get("dataset") or {}).get("content_hash") for f in folders}
    distinct = set(hashes.values())
    if len(distinct) > 1 and not allow_mixed_corpora:
        listing = "; ".join(f"{f}: {h or 'unknown'}" for f, h in hashes.items())
        raise ResultsError(", ".join(map(str, folders)),
                           "results of different corpus content cannot be compared "
                           f"({listing}); pass allow_mixed_corpora=True "
                           "(--allow-mixed-corpora) to override")
    return hashes


def _read_csv(path: Path, required: Iterable[str]) -> pd.DataFrame:
    """A results table, its fixed text columns read as text; refuses a missing column."""
    text = {c: str for c in required if c not in NUMBER_COLUMNS}
    try:
        frame = pd.read_csv(path, dtype=text, keep_default_na=True)
    except FileNotFoundError:
        raise ResultsError(path, "missing") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ResultsError(path, f"unreadable ({exc})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ResultsError(path, f"missing column(s) {missing}")
    return frame


def _folders(dirs) -> list[Path]:
    folders = [Path(d) for d in ([dirs] if isinstance(dirs, (str, os.PathLike)) else dirs)]
    if not folders:
        raise InputError("no results folder given")
    return folders


def load_results(dirs, *, allow_mixed_corpora: bool = False) -> pd.DataFrame:
    """The scalars of one or more results folders, in one table.

    Args:
        dirs: a results folder or an iterable of them (typically one per method).
        allow_mixed_corpora: accept folders whose corpus content hashes differ.

    Returns:
        The rows of every ``scalars.csv`` (identifying columns as text, metrics as
        float64, NaN where not computable) with two added columns: ``corpus_hash`` and
        ``results_dir``.

    Raises:
        ResultsError: a file is missing or malformed, the corpora differ (and that is not
            allowed), or a (method, entry, masking) row appears twice.
        InputError: no folder given.
    """
    folders = _folders(dirs)
    hashes = _corpus_hashes(folders, allow_mixed_corpora)
    frames = []
    for folder in folders:
        frame = _read_csv(folder / "scalars.csv", ID_COLUMNS)
        for name in frame.columns.difference(ID_COLUMNS):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(np.float64)
        bad = sorted(set(frame["masking"].dropna()) - set(MASKINGS))
        if bad:
            raise ResultsError(folder / "scalars.csv", f"unknown masking value(s) {bad}")
        frame["corpus_hash"] = hashes[folder]
        frame["results_dir"] = str(folder)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    key = ["method", "entry", "masking"]
    twice = frame[frame.duplicated(key, keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        where = sorted(set(twice.loc[(twice[key] == first[key]).all(axis=1), "results_dir"]))
        raise ResultsError(", ".join(where), f"method {first['method']!r} has more than one "
                           f"result for entry {first['entry']!r} ({first['masking']}); give "
                           "each method's results once")
    return frame


def load_curves(dirs, *, curves: Iterable[str] | None = None,
                allow_mixed_corpora: bool = False) -> pd.DataFrame:
    """The curves of one or more results folders, in one long table.

    Args:
        dirs: a results folder or an iterable of them.
        curves: keep only these curve names (e.g. ``("fsc_fd", "c_ref")``); all by default.
        allow_mixed_corpora: accept folders whose corpus content hashes differ.

    Returns:
        A table with the columns of :data:`CURVE_COLUMNS`.

    Raises:
        ResultsError: a file is missing or malformed, or the corpora differ.
        InputError: no folder given.
    """
    folders = _folders(dirs)
    _corpus_hashes(folders, allow_mixed_corpora)
    wanted = None if curves is None else set(curves)
    frames = []
    for folder in folders:
        frame = _read_csv(folder / "curves.csv", CURVE_COLUMNS)
        if wanted is not None:
            frame = frame[frame["curve"].isin(wanted)]
        frames.append(frame[list(CURVE_COLUMNS)])
    return pd.concat(frames, ignore_index=True)


def leaderboard_table(frame: pd.DataFrame, metrics: Iterable[str] = DEFAULT_METRICS,
                      masking: str = "masked", primary: str = "cref_rmse",
                      reference: str = "noisy") -> pd.DataFrame:
    """Rank methods by a primary metric over the entries every method finished.

    Args:
        frame: scalars as returned by :func:`load_results`.
        metrics: metrics to summarise (the primary one is added first if absent); a
            metric with no value on the compared entries is left out.
        masking: ``"masked"`` or ``"unmasked"``.
        primary: the metric that ranks the methods (in its better direction, from
            :data:`cref_bench.metric_facts.METRICS`).
        reference: the method marked as the reference row (the noisy input).

    Returns:
        One row per method, best first (NaN primary last): ``rank``, ``method``,
        ``version``, ``n`` (entries compared), ``reference`` (bool), and per metric
        ``<metric>_mean``, ``<metric>_std`` (``ddof=1``; NaN below two values),
        ``<metric>_median`` and ``<metric>_n`` (entries with a value). ``attrs`` holds
        ``masking``, ``primary``, ``metrics`` (those kept), ``missing_metrics``,
        ``entries`` (the compared entries), ``n_entries``, ``dropped_entries``,
        ``n_dropped`` and ``reference``.

    Raises:
        InputError: unknown masking or metric, no row of that masking, no entry finished
            by every method, or no value of the primary metric.
    """
    if masking not in MASKINGS:
        raise InputError(f"masking must be one of {MASKINGS}, got {masking!r}")
    metrics = list(dict.fromkeys([primary, *metrics]))
    for metric in metrics:
        metric_facts(metric)
    part = frame[frame["masking"] == masking]
    if part.empty:
        present = sorted(set(frame["masking"].dropna()))
        raise InputError(f"no {masking} results (maskings present: {present or 'none'})")
    entry_sets = [set(group["entry"]) for _, group in part.groupby("method", sort=False)]
    common = set.intersection(*entry_sets)
    dropped = sorted(set.union(*entry_sets) - common)
    if not common:
        raise InputError("no entry was finished by every method; nothing can be compared")
    paired = part[part["entry"].isin(common)]
    kept = [m for m in metrics if m in paired.columns and paired[m].notna().any()]
    if primary not in kept:
        raise InputError(f"the primary metric {primary!r} has no value on the compared "
                         "entries")
    rows = []
    for method, group in paired.groupby("method", sort=False):
        versions = ",".join(sorted(set(group["method_version"].astype(str))))
        row = {"method": method, "version": versions, "n": int(group["entry"].nunique()),
               "reference": method == reference}
        for metric in kept:
            values = group[metric].dropna().to_numpy(np.float64)
            row[f"{metric}_mean"] = values.mean() if values.size else np.nan
            row[f"{metric}_std"] = values.std(ddof=1) if values.size > 1 else np.nan
            row[f"{metric}_median"] = float(np.median(values)) if values.size else np.nan
            row[f"{metric}_n"] = int(values.size)
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("method", kind="stable")
    table = table.sort_values(f"{primary}_mean", ascending=metric_facts(primary).better == "min",
                              na_position="last", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table.attrs.update({"masking": masking, "primary": primary, "metrics": kept,
                        "missing_metrics": [m for m in metrics if m not in kept],
                        "entries": sorted(common), "n_entries": len(common),
                        "dropped_entries": dropped, "n_dropped": len(dropped),
                        "reference": reference})
    return table


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}g}" if math.isfinite(value) else "n/a"


def _grid(table: pd.DataFrame) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Headers, cell texts (``mean ± std (median)``) and where to bold, for the renderers."""
    metrics = table.attrs["metrics"]
    better = {m: metric_facts(m).better for m in metrics}
    headers = ["Rank", "Method", "n"] + [f"{m} {ARROWS[better[m]]}" for m in metrics]
    best = {}
    for m in metrics:
        means = table[f"{m}_mean"].to_numpy(np.float64)
        finite = means[np.isfinite(means)]
        best[m] = ((finite.min() if better[m] == "min" else finite.max()) if finite.size
                   else None)
    cells, bold = [], []
    for row in table.to_dict("records"):
        label = f"{row['method']} (reference)" if row["reference"] else row["method"]
        line, strong = [str(row["rank"]), label, str(row["n"])], [False, False, False]
        for m in metrics:
            mean, std, median, count = (row[f"{m}_{s}"] for s in ("mean", "std", "median", "n"))
            if not math.isfinite(mean):
                text = "n/a"
            else:
                spread = f" ± {_number(std, 2)}" if math.isfinite(std) else ""
                text = f"{_number(mean, 4)}{spread} ({_number(median, 4)})"
                if count < row["n"]:
                    text += f" [n={count}]"
            line.append(text)
            strong.append(best[m] is not None and math.isfinite(mean) and mean == best[m])
        cells.append(line)
        bold.append(strong)
    return headers, cells, bold


def describe(table: pd.DataFrame) -> str:
    """The note printed under a rendered table: what the cells are and what was left out.

    Args:
        table: a table from :func:`leaderboard_table`.

    Returns:
        One or more sentences.
    """
    a = table.attrs
    text = (f"Cells: mean ± std (median) over the {a['n_entries']} entries finished by every "
            f"method ({a['masking']}); {a['n_dropped']} entries dropped (not finished by every "
            f"method). Ranked by {a['primary']}; ↓ lower is better, ↑ higher is better; best "
            "mean in bold; [n=k]: only k entries had a value.")
    if a["missing_metrics"]:
        text += f" No value for: {', '.join(a['missing_metrics'])}."
    return text


def to_markdown(table: pd.DataFrame) -> str:
    """The table as GitHub-flavoured Markdown, with the note of :func:`describe` below it.

    Args:
        table: a table from :func:`leaderboard_table`.

    Returns:
        The Markdown text.
    """
    headers, cells, bold = _grid(table)

    def line(items):
        return "| " + " | ".join(i.replace("|", "\\|") for i in items) + " |"

    align = ["---:", ":---", "---:"] + ["---:"] * (len(headers) - 3)
    body = [line(f"**{c}**" if b else c for c, b in zip(row, strong))
            for row, strong in zip(cells, bold)]
    rule = "| " + " | ".join(align) + " |"
    return "\n".join([line(headers), rule, *body, "", describe(table)]) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "↓": r"$\downarrow$", "↑": r"$\uparrow$"}


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, _LATEX_SYMBOLS.get(ch, ch)) for ch in text)


def to_latex(table: pd.DataFrame) -> str:
    """The table as a LaTeX ``tabular`` with booktabs rules (``\\usepackage{booktabs}``).

    The note of :func:`describe` precedes it as LaTeX comments; the best value of each
    metric is in ``\\textbf``.

    Args:
        table: a table from :func:`leaderboard_table`.

    Returns:
        The LaTeX text.
    """
    headers, cells, bold = _grid(table)
    spec = "rlr" + "r" * (len(headers) - 3)
    lines = [f"% {describe(table)}", f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(_latex(h) for h in headers) + r" \\", r"\midrule"]
    for row, strong in zip(cells, bold):
        lines.append(" & ".join(f"\\textbf{{{_latex(c)}}}" if b else _latex(c)
                                for c, b in zip(row, strong)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_html(table: pd.DataFrame) -> str:
    """The table as an HTML ``<table>`` (best values in ``<strong>``, the note as its caption).

    Args:
        table: a table from :func:`leaderboard_table`.

    Returns:
        The HTML fragment.
    """
    headers, cells, bold = _grid(table)
    esc = html.escape
    lines = ['<table class="cref-bench-leaderboard">',
             f"<caption>{esc(describe(table))}</caption>",
             "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr></thead>",
             "<tbody>"]
    for row, strong in zip(cells, bold):
        lines.append("<tr>" + "".join(f"<td><strong>{esc(c)}</strong></td>" if b
                                      else f"<td>{esc(c)}</td>" for c, b in zip(row, strong))
                     + "</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines) + "\n"


def to_csv(table: pd.DataFrame) -> str:
    """The table as CSV with full-precision numbers (every column of :func:`leaderboard_table`).

    Args:
        table: a table from :func:`leaderboard_table`.

    Returns:
        The CSV text.
    """
    return table.to_csv(index=False)


RENDERERS = {"md": to_markdown, "latex": to_latex, "csv": to_csv, "html": to_html}
"""Renderers by format name (as ``cref-bench leaderboard --format`` takes them)."""

