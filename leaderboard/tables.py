"""Ranked leaderboard tables from a :class:`~leaderboard.loading.ResultSet`.

:func:`leaderboard_table` ranks method settings on the entries that every one of them scored
with a value of the primary metric (a paired comparison; the entries dropped are listed with
the reason). By default the primary metric follows the truth where the corpus has one
(:data:`TRUTH_PRIMARY`, phantoms and simulated reconstructions: the benchmark knows the answer
there), else the held-out correlation where single-map methods have one (the methods it does
not apply to, given both halves, are listed apart, unranked), else C_ref RMSE; with a
truth-based primary, each truth-free score shown carries its Kendall τ with it (between the
methods within each entry, the mean over the compared entries) in the note, and adversarial
probes (``probe-...``) are marked (and never win a tie: a probe that hands back its base's
full map, with only its halves gamed, ranks just below it). A failure never helps: an entry
a ranked setting failed counts, for it, as the unprocessed input (the reference setting,
``noisy``, on that entry) and is shown as failed, so it is not dropped for every setting. The
table is honest about what it holds:

* a setting with failures shows how many entries failed, by kind; one that failed every entry
  (or has no row of the masking) is listed last with its failures, never dropped;
* a value that is a bound (an FSC that never falls below its threshold up to Nyquist, counted
  as the Nyquist resolution with ``<``) is a number, never a missing value; a mean over
  values some of which are ``<`` bounds is itself shown as ``< mean`` and ranks as at least
  as good as its value (ties go to the bounded row);
* the best mean of a metric is bolded only among the rows with the most values of it (every
  compared entry, where a row has them all); a row with fewer values is marked ``[n=k]`` and
  never bolded over one with more.

:func:`to_markdown`, :func:`to_latex` (booktabs), :func:`to_html` and :func:`to_csv` render
it; :func:`describe` writes the note under it. Where :mod:`leaderboard.statistics` has added
its columns (a confidence interval of the primary metric's mean and the Holm-adjusted p value
against the best), the renderers show them and mark the settings not distinguishable from the
best with ``≈``. Which direction of each metric is better comes from
:mod:`cref_bench.metrics.facts`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from cref_bench.errors import InputError
from cref_bench.metrics.facts import DEFAULT_METRICS, MASKINGS, metric_facts, metric_label
from cref_bench.results.folder import aggregate
from cref_bench.results.format import significant
from leaderboard import validity
from leaderboard.loading import ResultSet

ARROWS = {"min": "↓", "max": "↑"}
"""The header mark of a metric whose lower (``min``) or higher (``max``) values are better."""

BOLDING_RULE = ("the best mean of each metric is bolded only among the rows with the most "
                "values of it ([n=k]: only k entries had a value; such a mean is never bolded "
                "over a row with more)")
"""The rule of :func:`best_rows`, as the table's note and ``cref-bench leaderboard --help``
state it."""

FAVOURABLE = {"min": "<", "max": ">"}
"""The bound that makes a value at least as good as shown, by better direction."""

TRUTH_PRIMARY = "truth_corr"
"""The default primary metric where the results hold the truth metrics."""

FREE_PRIMARY = "cref_rmse"
"""The default primary metric without truth (the paper's score)."""


HELDOUT_PRIMARY = "heldout_corr"
"""The default primary metric without truth where single-map methods are among the results:
the held-out correlation, the truth-free score that follows the truth best (docs/score-
validity.md); methods it does not apply to (pair methods) are listed apart, unranked."""


def default_primary(results: ResultSet, masking: str = "masked") -> str:
    """The metric a table ranks by when none is named: :data:`TRUTH_PRIMARY` where the
    results of ``masking`` hold a value of it (a corpus with truth), else
    :data:`HELDOUT_PRIMARY` where they hold one of it (single-map methods), else
    :data:`FREE_PRIMARY`.

    Args:
        results: the results.
        masking: ``"masked"`` or ``"unmasked"``.

    Returns:
        The metric's name.
    """
    part = results.scalars[results.scalars["masking"] == masking]
    for metric in (TRUTH_PRIMARY, HELDOUT_PRIMARY):
        if metric in part.columns and part[metric].notna().any():
            return metric
    return FREE_PRIMARY


def _taus(paired: pd.DataFrame, primary: str, metrics: list[str]) -> dict[str, float]:
    """Per truth-free metric, the mean over entries of Kendall's τ with a truth-based primary
    between the methods of each entry (NaN where no entry has enough methods)."""
    if metric_facts(primary).kind != "truth":
        return {}
    taus = {}
    for m in metrics:
        if metric_facts(m).kind == "score":
            values = validity.within_entry_tau(paired, m, primary)
            taus[m] = float(values.mean()) if values.size else math.nan
    return taus


def kinds_text(kinds: dict[str, int]) -> str:
    """Failure counts by kind as text: ``"timeout 2, error 1"`` (``""`` for none)."""
    return ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items(), key=lambda x: -x[1]))


def _bound_mark(marks: Iterable[str]) -> str:
    kinds = {m for m in marks if m}
    return "<>" if kinds == {"<", ">"} else (kinds.pop() if kinds else "")


def _common_entries(part: pd.DataFrame, ranked: list[str], primary: str):
    """The entries every ranked setting scored with a primary value, and why others were
    dropped (``{entry: reason}``)."""
    have = {label: set(group["entry"]) for label, group in part.groupby("label", sort=False)}
    valued = {label: set(group.loc[group[primary].notna(), "entry"])
              for label, group in part.groupby("label", sort=False)}
    every = set().union(*have.values())
    common = set.intersection(*(valued[label] for label in ranked))
    reasons = {}
    for entry in sorted(every - common):
        lacking = [label for label in ranked if entry not in have[label]]
        unvalued = [label for label in ranked if entry in have[label]
                    and entry not in valued[label]]
        words = []
        if lacking:
            words.append(f"not scored by {', '.join(lacking)}")
        if unvalued:
            words.append(f"no {primary} value for {', '.join(unvalued)}")
        reasons[entry] = "; ".join(words)
    return sorted(common), reasons


def _failed_as_input(part: pd.DataFrame, results: ResultSet, ranked: list[str],
                     reference: str) -> tuple[pd.DataFrame, dict[str, list[str]], str | None]:
    """``part`` with, for every ranked setting, the reference's rows (the unprocessed input)
    in place of each entry the setting failed; those entries by label; and the reference
    setting's label. Without a reference setting that scored the entry, the entry stays
    without a row."""
    refs = [label for label in ranked if results.settings[label].method == reference]
    if not refs or results.failures.empty:
        return part, {}, None
    source = part[part["label"] == refs[0]]
    added, as_input = [], {}
    for label in ranked:
        if label in refs:
            continue
        failed = set(results.failures.loc[results.failures["label"] == label, "entry"])
        failed -= set(part.loc[part["label"] == label, "entry"])
        rows = source[source["entry"].isin(failed)].copy()
        if rows.empty:
            continue
        setting = results.settings[label]
        rows["label"], rows["method"] = label, setting.method
        added.append(rows)
        as_input[label] = sorted(set(rows["entry"]))
    return (pd.concat([part, *added]) if added else part), as_input, refs[0]


def leaderboard_table(results: ResultSet, metrics: Iterable[str] = DEFAULT_METRICS,
                      masking: str = "masked", primary: str | None = None,
                      reference: str = "noisy") -> pd.DataFrame:
    """Rank method settings by a primary metric over the entries they all scored.

    Args:
        results: the results (see :func:`leaderboard.loading.load`).
        metrics: metrics to summarise (the primary one is added first if absent); a metric
            with no value on the compared entries is left out.
        masking: ``"masked"`` or ``"unmasked"``.
        primary: the metric that ranks the settings (in its better direction, from
            :data:`cref_bench.metrics.facts.METRICS`); default :func:`default_primary`.
        reference: the method (name) marked as the reference row (the noisy input).

    Returns:
        One row per setting, best first, then the settings without a result of this masking:
        ``rank`` (``<NA>`` for those), ``label``, ``method``, ``version``, ``params``, ``n``
        (entries compared), ``scored`` (entries scored in this masking), ``failed`` (entries
        failed), ``failed_kinds`` (text), ``attempted``, ``as_input`` (compared entries it
        failed, counted as the unprocessed input), ``reference`` (bool), and per metric
        ``<metric>_mean``, ``<metric>_std`` (``ddof=1``; NaN below two values),
        ``<metric>_median``, ``<metric>_n`` (entries with a value), ``<metric>_bounded``
        (how many of them are bounds) and ``<metric>_bound`` (``"<"``, ``">"``, ``"<>"`` for
        both, or ``""``). ``attrs`` holds ``masking``, ``primary``, ``metrics`` (those kept),
        ``missing_metrics``, ``entries`` (the compared entries), ``n_entries``,
        ``dropped_entries`` (``{entry: reason}``), ``n_dropped``, ``reference``,
        ``unranked`` (labels listed last: no result of the masking, or ``no_primary``, no
        value of the primary on any entry), ``failed_as_input`` (``{label: entries}``),
        ``input_label`` (the setting whose values they take), ``failures`` (failed entries in
        all) and ``tau`` (``{metric: mean within-entry Kendall τ with the primary}`` for every
        truth-free score kept, when the primary is truth-based; else empty).

    Raises:
        InputError: unknown masking or metric, no entry scored by every ranked setting, or
            no value of the primary metric.
    """
    if masking not in MASKINGS:
        raise InputError(f"masking must be one of {MASKINGS}, got {masking!r}")
    primary = primary or default_primary(results, masking)
    metrics = list(dict.fromkeys([primary, *metrics]))
    for metric in metrics:
        metric_facts(metric)
    part = results.scalars[results.scalars["masking"] == masking]
    if len(part) and (primary not in part.columns or not part[primary].notna().any()):
        raise InputError(f"the primary metric {primary!r} has no value in the {masking} "
                         "results")
    valued = part if primary in part.columns else part.assign(**{primary: np.nan})
    ranked = [label for label in results.labels
              if valued.loc[valued["label"] == label, primary].notna().any()]
    no_primary = [label for label in results.labels
                  if label not in ranked and (part["label"] == label).any()]
    unranked = [label for label in results.labels if label not in ranked]
    scored_here = part
    part, as_input, input_label = _failed_as_input(part, results, ranked, reference)
    common, dropped = ([], {}) if not ranked else _common_entries(part, ranked, primary)
    if ranked and not common:
        raise InputError(f"no entry was scored with a {primary} value by every method "
                         f"({masking}); nothing can be compared")
    paired = part[part["entry"].isin(common)]
    kept = [m for m in metrics if m in paired.columns and paired[m].notna().any()]
    if ranked and primary not in kept:
        raise InputError(f"the primary metric {primary!r} has no value on the compared entries")
    failures = results.failure_counts()
    everything = results.scalars
    rows = []
    for label in results.labels:
        setting = results.settings[label]
        group = paired[paired["label"] == label]
        scored = int(scored_here.loc[scored_here["label"] == label, "entry"].nunique())
        row = {"rank": pd.NA, "label": label, "method": setting.method,
               "version": setting.version, "params": setting.params,
               "n": int(group["entry"].nunique()), "scored": scored,
               "failed": sum(failures[label].values()),
               "failed_kinds": kinds_text(failures[label]),
               "attempted": int(everything.loc[everything["label"] == label, "entry"].nunique())
               + sum(failures[label].values()),
               "as_input": len(set(as_input.get(label, ())) & set(common)),
               "reference": setting.method == reference}
        for metric in kept:
            values = group[metric]
            marks = results.bounds.loc[values.index, metric]
            row.update({f"{metric}_{k}": v for k, v in aggregate(values, marks).items()})
            row[f"{metric}_bound"] = _bound_mark(marks[values.notna()])
        rows.append(row)
    table = pd.DataFrame(rows)
    table = _ranked(table, ranked, primary)
    table.attrs.update({"masking": masking, "primary": primary, "metrics": kept,
                        "missing_metrics": [m for m in metrics if m not in kept],
                        "entries": common, "n_entries": len(common),
                        "dropped_entries": dropped, "n_dropped": len(dropped),
                        "reference": reference, "unranked": unranked,
                        "no_primary": no_primary,
                        "failed_as_input": as_input, "input_label": input_label,
                        "failures": int(table["failed"].sum()),
                        "tau": _taus(paired, primary, kept)})
    return table


TIE_DIGITS = 6
"""Means equal to this many significant digits rank as ties: maps equal up to float32
rounding (a scaled copy, say) differ in the 7th digit, never by a real amount."""


def _tie_level(value: float) -> float:
    return float(f"{value:.{TIE_DIGITS}g}") if math.isfinite(value) else value


def _ranked(table: pd.DataFrame, ranked: list[str], primary: str) -> pd.DataFrame:
    """Rows sorted best first by the primary mean (equal to :data:`TIE_DIGITS` significant
    digits is a tie; a favourable bound wins a tie, then an honest method over a probe, then
    the label), the unranked ones last; ``rank`` numbered."""
    better = metric_facts(primary).better
    is_ranked = table["label"].isin(ranked)
    top = table[is_ranked].copy()
    if not top.empty:
        mean = top[f"{primary}_mean"].map(_tie_level)
        top["_key"] = mean if better == "min" else -mean
        top["_favour"] = -(top[f"{primary}_bound"] == FAVOURABLE[better]).astype(int)
        top["_probe"] = top["method"].map(validity.is_probe)
        top = top.sort_values(["_key", "_favour", "_probe", "label"], kind="stable").drop(
            columns=["_key", "_favour", "_probe"])
        top["rank"] = np.arange(1, len(top) + 1)
    rest = table[~is_ranked].sort_values("label", kind="stable")
    out = pd.concat([top, rest], ignore_index=True)
    out["rank"] = out["rank"].astype("Int64")
    return out


def _number(value: float, digits: int) -> str:
    return significant(value, digits) if math.isfinite(value) else "n/a"


def best_rows(table: pd.DataFrame) -> dict[str, set[int]]:
    """Per metric, the rows holding the best mean among the ranked rows with the most values
    of it (the cells to bold): a mean over fewer entries is never bolded over rows with more.

    Args:
        table: a table from :func:`leaderboard_table`.

    Returns:
        ``{metric: {row index, ...}}`` (empty where no row has a value).
    """
    ranked = table[table["rank"].notna()]
    best = {}
    for m in table.attrs["metrics"]:
        counts = ranked[f"{m}_n"]
        most = ranked[(counts == counts.max()) & (counts > 0)] if len(ranked) else ranked
        means = most[f"{m}_mean"].to_numpy(np.float64)
        finite = means[np.isfinite(means)]
        if not finite.size:
            best[m] = set()
            continue
        target = finite.min() if metric_facts(m).better == "min" else finite.max()
        best[m] = set(most.index[most[f"{m}_mean"] == target])
    return best


def metric_cell(row, metric: str) -> str:
    """The text of one summary cell: ``mean ± std (median)``, a bound's sign before the mean
    (``< 2.401``; ``†`` after it for bounds of both kinds), ``[n=k]`` where fewer entries
    had a value than were compared.

    Args:
        row: a row of :func:`leaderboard_table` (a mapping).
        metric: the metric.

    Returns:
        The text (``n/a`` without a value).
    """
    mean, std, median, count = (row[f"{metric}_{s}"] for s in ("mean", "std", "median", "n"))
    if not math.isfinite(mean):
        return "n/a"
    bound = row[f"{metric}_bound"]
    sign = f"{bound} " if bound in ("<", ">") else ""
    spread = f" ± {_number(std, 2)}" if math.isfinite(std) else ""
    text = f"{sign}{_number(mean, 4)}{spread} ({_number(median, 4)})"
    if bound == "<>":
        text += " †"
    if count < row["n"]:
        text += f" [n={count}]"
    return text


def _label(row, tied: bool) -> str:
    text = f"{row['label']} (reference)" if row["reference"] else row["label"]
    if validity.is_probe(row["method"]):
        text += " (probe)"
    return text + (" ≈" if tied else "")


def grid(table: pd.DataFrame) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Headers, cell texts and where to bold, as every renderer shows the table.

    Args:
        table: a table from :func:`leaderboard_table`.

    Returns:
        ``(headers, cells, bold)``: the column names, each row's cell texts, and per cell
        whether it holds the best value (see :func:`best_rows`).
    """
    metrics = table.attrs["metrics"]
    statistics = "ci_low" in table.columns
    headers = ["Rank", "Method", "n", "failed"] + [
        f"{metric_label(m)} {ARROWS[metric_facts(m).better]}" for m in metrics]
    if statistics:
        headers += [f"{metric_label(table.attrs['primary'])} mean, 95 % CI",
                    "p vs best (Holm)"]
    best = best_rows(table)
    cells, bold = [], []
    for index, row in table.iterrows():
        failed = str(row["failed"]) + (f" ({row['failed_kinds']})" if row["failed"] else "")
        ranked = not pd.isna(row["rank"])
        tied = (statistics and ranked and row["rank"] != 1
                and bool(row.get("tied_with_best", False)))
        line = [str(row["rank"]) if ranked else "–", _label(row, tied), str(row["n"]), failed]
        strong = [False] * 4
        for m in metrics:
            if not ranked:
                line.append("failed" if row["scored"] == 0 and row["failed"] else "n/a")
            else:
                line.append(metric_cell(row, m))
            strong.append(index in best[m])
        if statistics:
            ci = (f"[{_number(row['ci_low'], 4)}, {_number(row['ci_high'], 4)}]"
                  if ranked and math.isfinite(row["ci_low"]) else "n/a")
            p = row["p_vs_best"]
            line += [ci, "best" if ranked and row["rank"] == 1
                     else (_number(p, 2) if ranked and math.isfinite(p) else "n/a")]
            strong += [False, False]
        cells.append(line)
        bold.append(strong)
    return headers, cells, bold


def describe(table: pd.DataFrame) -> str:
    """The note printed under a rendered table: what the cells are, what was left out, and
    every failure.

    Args:
        table: a table from :func:`leaderboard_table`.

    Returns:
        One or more sentences.
    """
    a = table.attrs
    ranked = table[table["rank"].notna()]
    text = (f"Cells: mean ± std (median) over the {a['n_entries']} entries that every ranked "
            f"method scored ({a['masking']}); {a['n_dropped']} entries dropped")
    if a["n_dropped"]:
        shown = list(a["dropped_entries"].items())[:5]
        text += " (" + "; ".join(f"{e}: {why}" for e, why in shown)
        text += f"; and {a['n_dropped'] - 5} more)" if a["n_dropped"] > 5 else ")"
    text += (f". Ranked by {a['primary']}; ↓ lower is better, ↑ higher is better; "
             f"{BOLDING_RULE}. < x: some values are upper bounds (an "
             "FSC that never falls below its threshold up to Nyquist counts as the Nyquist "
             "resolution), so the true mean is lower; > x: some are lower bounds; †: bounds "
             "of both kinds.")
    taus = a.get("tau", {})
    if taus:
        text += (f" Truth-free scores, with Kendall's τ against {a['primary']} (between the "
                 "methods within each entry, mean over the entries; 1: the same order as the "
                 "truth, 0: unrelated): "
                 + ", ".join(f"{m} {_number(t, 2)}" for m, t in taus.items())
                 + "; cref-bench score-validity measures it in full.")
    if a["primary"] != TRUTH_PRIMARY and metric_facts(a["primary"]).kind == "score":
        text += (f" {a['primary']} does not use the truth; it is trusted only as far as "
                 "cref-bench score-validity measures it to agree with the truth.")
    if "tied_with_best" in table.columns:
        text += (f" ≈: not distinguishable from the best on {a['primary']} (paired Wilcoxon "
                 f"signed-rank test, Holm-adjusted p ≥ {a.get('alpha', 0.05):g}); CI: "
                 f"bootstrap 95 % interval of the mean (seed {a.get('seed', 0)}).")
    if a.get("entries_needed"):
        text += (f" Too few entries: with {a['n_entries']} no two methods can be told apart; "
                 f"that needs at least {a['entries_needed']}.")
    failed = table[table["failed"] > 0]
    if failed.empty:
        text += " No entry failed."
    else:
        items = []
        for row in failed.to_dict("records"):
            scope = ("every entry" if row["scored"] == 0 and pd.isna(row["rank"])
                     else f"{row['failed']} of {row['attempted']} entries")
            if row.get("as_input"):
                scope += f", {row['as_input']} of them scored as the input"
            items.append(f"{row['label']} failed {scope} ({row['failed_kinds']})")
        text += " Failures: " + "; ".join(items) + "."
        if a.get("failed_as_input"):
            text += (f" A failed entry counts as the unprocessed input ({a['reference']}) on "
                     "that entry for ranking.")
    absent = [label for label in a["unranked"] if label not in a.get("no_primary", [])]
    if absent:
        text += f" Listed last, unranked (no {a['masking']} result): {', '.join(absent)}."
    if a.get("no_primary"):
        text += (f" Listed last, unranked (no value of {a['primary']} on any entry; the "
                 "held-out scores do not apply to a method given both halves): "
                 f"{', '.join(a['no_primary'])}.")
    if len(ranked) and a["missing_metrics"]:
        text += f" No value for: {', '.join(a['missing_metrics'])}."
    return text


def to_markdown(table: pd.DataFrame) -> str:
    """The table as GitHub-flavoured Markdown, with the note of :func:`describe` below it.

    Args:
        table: a table from :func:`leaderboard_table`.

    Returns:
        The Markdown text.
    """
    headers, cells, bold = grid(table)
    return markdown_grid(headers, cells, bold, align="rlrr") + "\n" + describe(table) + "\n"


def markdown_grid(headers: list[str], cells: list[list[str]],
                  bold: list[list[bool]] | None = None, align: str = "") -> str:
    """A Markdown table from headers and cell texts.

    Args:
        headers: the column names.
        cells: the rows' cell texts.
        bold: where to bold (default nowhere).
        align: per column ``l`` or ``r`` (missing columns: right).

    Returns:
        The Markdown text, one line per row, ending in a newline.
    """
    def line(items):
        return "| " + " | ".join(str(i).replace("|", "\\|") for i in items) + " |"

    bold = bold or [[False] * len(headers) for _ in cells]
    marks = [":---" if (align[i] if i < len(align) else "r") == "l" else "---:"
             for i in range(len(headers))]
    body = [line(f"**{c}**" if b else c for c, b in zip(row, strong))
            for row, strong in zip(cells, bold)]
    return "\n".join([line(headers), "| " + " | ".join(marks) + " |", *body]) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "↓": r"$\downarrow$", "↑": r"$\uparrow$", "≈": r"$\approx$",
                  "†": r"$^\dagger$", "–": "--", "Å": r"\AA{}", "²": r"$^2$"}


def latex_text(text: str) -> str:
    """Text with LaTeX's special characters escaped and a few symbols spelled in LaTeX."""
    return "".join(_LATEX_SPECIAL.get(ch, _LATEX_SYMBOLS.get(ch, ch)) for ch in str(text))


def latex_grid(headers: list[str], cells: list[list[str]],
               bold: list[list[bool]] | None = None, align: str = "", note: str = "") -> str:
    """A LaTeX ``tabular`` with booktabs rules (``\\usepackage{booktabs}``).

    Args:
        headers: the column names.
        cells: the rows' cell texts.
        bold: where to use ``\\textbf`` (default nowhere).
        align: per column ``l`` or ``r`` (missing columns: right).
        note: a comment line above the table.

    Returns:
        The LaTeX text.
    """
    bold = bold or [[False] * len(headers) for _ in cells]
    spec = "".join(align[i] if i < len(align) else "r" for i in range(len(headers)))
    lines = ([f"% {note}"] if note else []) + [
        f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
        " & ".join(latex_text(h) for h in headers) + r" \\", r"\midrule"]
    for row, strong in zip(cells, bold):
        lines.append(" & ".join(f"\\textbf{{{latex_text(c)}}}" if b else latex_text(c)
                                for c, b in zip(row, strong)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame) -> str:
    """The table as a LaTeX ``tabular`` with booktabs rules; the note of :func:`describe` as
    a comment above it; the best value of each metric in ``\\textbf``.

    Args:
        table: a table from :func:`leaderboard_table`.

    Returns:
        The LaTeX text.
    """
    headers, cells, bold = grid(table)
    return latex_grid(headers, cells, bold, align="rlrr", note=describe(table))


def to_html(table: pd.DataFrame) -> str:
    """The table as an HTML ``<table>`` (best values in ``<strong>``, the note as caption).

    Args:
        table: a table from :func:`leaderboard_table`.

    Returns:
        The HTML fragment.
    """
    headers, cells, bold = grid(table)
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

