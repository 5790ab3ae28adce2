"""Whether differences between methods are real: paired tests, confidence intervals and
breakdowns of the primary metric.

* :func:`paired_values`: the primary metric as an entries × settings matrix over the entries
  every ranked setting scored (the leaderboard's compared entries).
* :func:`pairwise_tests`: for every pair of settings, the paired Wilcoxon signed-rank test
  (:func:`scipy.stats.wilcoxon`, two-sided) with the Holm correction over all pairs
  (:func:`holm`), and a bootstrap 95 % confidence interval of the median paired difference
  (:func:`scipy.stats.bootstrap`, percentile method, fixed seed).
* :func:`annotate`: adds to a leaderboard table each setting's bootstrap interval of the mean
  of the primary metric, its Holm-adjusted p value against the best, and whether it is
  distinguishable from the best (``tied_with_best``).
* :func:`breakdown`: the primary metric per setting by bin of the half-map FSC-0.143
  resolution (:data:`RESOLUTION_BINS`) and of box size (:data:`BOX_BINS`).

Differences are ``a - b`` in the metric's units; the better direction comes from
:mod:`cref_bench.metrics.facts`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from cref_bench.metrics.facts import metric_facts
from leaderboard.loading import ResultSet

DEFAULT_SEED = 0
"""The seed of every bootstrap, so a report is reproducible."""

RESAMPLES = 9999
"""Bootstrap resamples (scipy's default)."""

ALPHA = 0.05
"""Family-wise error rate of the Holm-corrected tests."""

RESOLUTION_BINS = ((0.0, 3.0, "< 3 Å"), (3.0, 4.0, "3–4 Å"), (4.0, 6.0, "4–6 Å"),
                   (6.0, math.inf, "> 6 Å"))
"""Bins of the half-map FSC-0.143 resolution: (low, high, name), low inclusive."""

BOX_BINS = ((0, 64, "≤ 64"), (65, 128, "65–128"), (129, 256, "129–256"), (257, 384, "257–384"),
            (385, math.inf, "> 384"))
"""Bins of the box size (the longest edge, voxels): (low, high, name), both inclusive."""


def paired_values(results: ResultSet, table: pd.DataFrame, metric: str | None = None
                  ) -> pd.DataFrame:
    """A metric over the table's compared entries, one column per ranked setting.

    Args:
        results: the results the table was made from.
        table: a table from :func:`leaderboard.tables.leaderboard_table`.
        metric: the metric (default: the table's primary one).

    Returns:
        An entries × labels frame (NaN where a setting has no value), columns in rank order;
        an entry a setting failed holds the unprocessed input's value, as in the table.
    """
    a = table.attrs
    metric = metric or a["primary"]
    labels = list(table.loc[table["rank"].notna(), "label"])
    part = results.scalars[(results.scalars["masking"] == a["masking"])
                           & results.scalars["entry"].isin(a["entries"])
                           & results.scalars["label"].isin(labels)]
    if metric not in part.columns:  # no folder holds a value of it (every entry failed)
        return pd.DataFrame(np.nan, index=pd.Index(a["entries"], name="entry"), columns=labels)
    wide = part.pivot(index="entry", columns="label", values=metric)
    wide = wide.reindex(index=a["entries"], columns=labels)
    for label, entries in a.get("failed_as_input", {}).items():
        for entry in entries:
            if label in wide.columns and entry in wide.index:
                wide.loc[entry, label] = wide.loc[entry, a["input_label"]]
    return wide


def entries_needed(settings: int, alpha: float = ALPHA) -> int:
    """The fewest compared entries with which any two of ``settings`` settings can be told
    apart: the smallest two-sided p of the exact signed-rank test on n entries is
    ``2 / 2**n`` (every difference of one sign), and Holm's adjustment multiplies the smallest
    of the m = settings (settings - 1) / 2 p values by m, so n must make ``m 2**(1 - n)`` fall
    below ``alpha``.

    Args:
        settings: the ranked settings (at least 2).
        alpha: the family-wise error rate.

    Returns:
        The number of entries (6 for two settings at 0.05; 9 for five).
    """
    pairs = settings * (settings - 1) // 2
    n = 1
    while pairs * 2.0 ** (1 - n) >= alpha:
        n += 1
    return n


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of p values (controls the family-wise error rate).

    The i-th smallest of m p values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.

    Args:
        pvalues: the raw p values (NaN stays NaN and is not counted in m).

    Returns:
        The adjusted p values, in the order given.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[index]))
        adjusted[index] = running
    return adjusted


def _wilcoxon(difference: np.ndarray) -> tuple[float, float]:
    """Statistic and two-sided p value of the signed-rank test; (nan, 1) where every
    difference is zero (nothing tells the two apart)."""
    from scipy import stats

    if not np.any(difference != 0):
        return math.nan, 1.0
    result = stats.wilcoxon(difference, alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def bootstrap_interval(values: np.ndarray, statistic, seed: int = DEFAULT_SEED,
                       confidence: float = 0.95, resamples: int = RESAMPLES
                       ) -> tuple[float, float]:
    """The percentile bootstrap interval of a statistic of some values.

    Args:
        values: 1-D array.
        statistic: ``np.mean``, ``np.median`` (vectorised over an ``axis``).
        seed: the bootstrap's seed.
        confidence: the interval's level.
        resamples: bootstrap resamples.

    Returns:
        ``(low, high)``; the value itself where fewer than two values, or all equal, leave
        nothing to resample (NaN without values).
    """
    from scipy import stats

    if values.size < 2 or np.all(values == values[0]):
        value = float(values[0]) if values.size else math.nan
        return value, value
    result = stats.bootstrap((values,), statistic, confidence_level=confidence,
                             n_resamples=resamples, method="percentile", vectorized=True,
                             rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def pairwise_tests(values: pd.DataFrame, *, seed: int = DEFAULT_SEED, alpha: float = ALPHA,
                   confidence: float = 0.95, resamples: int = RESAMPLES) -> pd.DataFrame:
    """Every pair of settings compared on their paired values.

    Args:
        values: an entries × labels frame (see :func:`paired_values`); entries where either
            of a pair lacks a value are left out of that pair.
        seed: the bootstrap's seed (each pair uses it, so a pair's interval does not depend
            on the others).
        alpha: the family-wise error rate of the Holm-corrected tests.
        confidence: the confidence level of the intervals.
        resamples: bootstrap resamples.

    Returns:
        One row per pair ``(a, b)`` (``a`` ranked above ``b``): ``a``, ``b``, ``n`` (entries),
        ``median_difference`` (of ``a - b``), ``ci_low``, ``ci_high``, ``statistic``
        (Wilcoxon's), ``p``, ``p_holm`` and ``distinguishable`` (``p_holm < alpha``).
    """
    rows = []
    for a, b in itertools.combinations(values.columns, 2):
        pair = values[[a, b]].dropna()
        difference = (pair[a] - pair[b]).to_numpy(np.float64)
        statistic, p = _wilcoxon(difference) if difference.size else (math.nan, math.nan)
        low, high = bootstrap_interval(difference, np.median, seed, confidence, resamples)
        rows.append({"a": a, "b": b, "n": int(difference.size),
                     "median_difference": float(np.median(difference)) if difference.size
                     else math.nan, "ci_low": low, "ci_high": high, "statistic": statistic,
                     "p": p})
    frame = pd.DataFrame(rows, columns=["a", "b", "n", "median_difference", "ci_low",
                                        "ci_high", "statistic", "p"])
    frame["p_holm"] = holm(frame["p"].to_numpy()) if len(frame) else []
    frame["distinguishable"] = frame["p_holm"] < alpha
    frame.attrs.update({"seed": seed, "alpha": alpha, "confidence": confidence,
                        "resamples": resamples})
    return frame


def annotate(table: pd.DataFrame, values: pd.DataFrame, pairs: pd.DataFrame, *,
             seed: int = DEFAULT_SEED, alpha: float = ALPHA, confidence: float = 0.95,
             resamples: int = RESAMPLES) -> pd.DataFrame:
    """The leaderboard table with the statistics' columns.

    Args:
        table: a table from :func:`leaderboard.tables.leaderboard_table`.
        values: its paired primary values (:func:`paired_values`).
        pairs: their pairwise tests (:func:`pairwise_tests`).
        seed, alpha, confidence, resamples: as for :func:`pairwise_tests`.

    Returns:
        A copy with ``ci_low``, ``ci_high`` (bootstrap interval of the primary mean),
        ``p_vs_best`` (Holm-adjusted p against the rank-1 setting; NaN for it) and
        ``tied_with_best`` (the rank-1 setting and those not distinguishable from it);
        ``attrs`` gains ``seed`` and ``alpha``.
    """
    out = table.copy()
    out.attrs = dict(table.attrs, seed=seed, alpha=alpha)
    best = out.loc[out["rank"] == 1, "label"]
    best = best.iloc[0] if len(best) else None
    low, high, p_best, tied = [], [], [], []
    for row in out.to_dict("records"):
        label = row["label"]
        if label in values.columns:
            column = values[label].dropna().to_numpy(np.float64)
            lo, hi = bootstrap_interval(column, np.mean, seed, confidence, resamples)
        else:
            lo = hi = math.nan
        low.append(lo)
        high.append(hi)
        if label == best:
            p_best.append(math.nan)
            tied.append(True)
            continue
        match = pairs[((pairs["a"] == best) & (pairs["b"] == label))
                      | ((pairs["a"] == label) & (pairs["b"] == best))]
        p = float(match["p_holm"].iloc[0]) if len(match) else math.nan
        p_best.append(p)
        tied.append(bool(math.isfinite(p) and p >= alpha))
    out["ci_low"], out["ci_high"] = low, high
    out["p_vs_best"], out["tied_with_best"] = p_best, tied
    return out


def _bin(value: float, bins, closed: bool) -> str | None:
    """The name of the bin holding ``value`` (``high`` inclusive where ``closed``), or None."""
    if not math.isfinite(value):
        return None
    for low, high, name in bins:
        if low <= value and (value <= high if closed else value < high):
            return name
    return None


def box_edge(box) -> float:
    """The longest edge of a ``NZxNYxNX`` box text, in voxels (NaN when unknown)."""
    if not isinstance(box, str) or not box:
        return math.nan
    try:
        return float(max(int(n) for n in box.split("x")))
    except ValueError:
        return math.nan


def breakdown(results: ResultSet, table: pd.DataFrame, metric: str | None = None
              ) -> pd.DataFrame:
    """The primary metric per setting by resolution bin and by box-size bin.

    The resolution of an entry is its half-map FSC-0.143 resolution (``res_half_0143``) in the
    table's masking, which depends on the half-maps only; the box is the longest edge of
    ``box``. Only the table's compared entries are used.

    Args:
        results: the results the table was made from.
        table: a table from :func:`leaderboard.tables.leaderboard_table`.
        metric: the metric (default: the table's primary one).

    Returns:
        Long rows: ``by`` (``resolution`` or ``box``), ``bin``, ``label``, ``n``, ``mean``,
        ``median``, ``entries`` (the entry ids, space-separated); bins in their natural
        order, settings in rank order; entries without a resolution or box are in bin
        ``unknown``.
    """
    a = table.attrs
    metric = metric or a["primary"]
    values = paired_values(results, table, metric)
    part = results.scalars[(results.scalars["masking"] == a["masking"])
                           & results.scalars["entry"].isin(a["entries"])]
    per_entry = part.drop_duplicates("entry").set_index("entry")
    resolution = (per_entry["res_half_0143"] if "res_half_0143" in per_entry
                  else pd.Series(np.nan, index=per_entry.index))
    bins = {"resolution": {e: _bin(float(resolution.get(e, np.nan)), RESOLUTION_BINS, False)
                           for e in values.index},
            "box": {e: _bin(box_edge(per_entry["box"].get(e)), BOX_BINS, True)
                    for e in values.index}}
    names = {"resolution": [b[2] for b in RESOLUTION_BINS], "box": [b[2] for b in BOX_BINS]}
    rows = []
    for by, of_entry in bins.items():
        for name in [*names[by], None]:
            entries = [e for e in values.index if of_entry[e] == name]
            if not entries:
                continue
            for label in values.columns:
                column = values.loc[entries, label].dropna()
                rows.append({"by": by, "bin": name or "unknown", "label": label,
                             "n": int(column.size),
                             "mean": float(column.mean()) if column.size else math.nan,
                             "median": float(column.median()) if column.size else math.nan,
                             "entries": " ".join(column.index)})
    frame = pd.DataFrame(rows, columns=["by", "bin", "label", "n", "mean", "median", "entries"])
    frame.attrs.update({"metric": metric, "masking": a["masking"],
                        "better": metric_facts(metric).better})
    return frame
