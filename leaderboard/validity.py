"""How far each truth-free score can be trusted, measured on a corpus with truth.

On phantoms and simulated reconstructions the benchmark knows the answer: the truth-based
metrics (:data:`cref_bench.metrics.facts.TRUTH_METRICS`: correlation, error and FSC
resolution against the truth). Every truth-free score
(:data:`cref_bench.metrics.facts.SCORES`) is judged by them:

* :func:`agreement`: Kendall's τ (:func:`scipy.stats.kendalltau`, τ-b) between a score and a
  truth metric, both oriented so that higher is better (τ = 1: the score orders the methods as
  the truth does; 0: unrelated; -1: reversed). *Within entries*: τ between the methods on each
  entry (at least three methods with both values), averaged over entries with a bootstrap
  interval (:func:`leaderboard.statistics.bootstrap_interval`); *pooled*: τ over every
  (method, entry) row at once. Both over every method given, and over the methods that are
  not probes (``honest``).
* :func:`probes_above`: for each score, the adversarial probes (methods named ``probe-...``,
  :mod:`baselines.probes`) that it ranks above an honest filter (``fsc-weight`` by default):
  a better mean over the entries both scored. A trustworthy score ranks none there.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from cref_bench.errors import InputError
from cref_bench.metrics.facts import SCORES, TRUTH_METRICS, metric_facts
from leaderboard.loading import ResultSet
from leaderboard.statistics import DEFAULT_SEED, bootstrap_interval

PROBE_PREFIX = "probe-"
"""Methods whose name starts with this are adversarial probes."""

MIN_METHODS = 3
"""Methods an entry needs (with both values) to count in the within-entry τ."""

ROUNDING = 1e-6
"""Relative difference within which two values are the same (maps equal up to float32
rounding, a scaled copy say, differ by about 1e-7): a probe is above only beyond it."""


def _beyond(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where ``a`` is greater than ``b`` by more than :data:`ROUNDING` (relative)."""
    return a - b > ROUNDING * np.maximum(np.abs(a), np.abs(b))


def is_probe(method: str) -> bool:
    """Whether a method is an adversarial probe (by its name)."""
    return method.startswith(PROBE_PREFIX)


def oriented(frame: pd.DataFrame, metric: str) -> pd.Series:
    """A metric's column with its sign set so that higher is better."""
    sign = 1.0 if metric_facts(metric).better == "max" else -1.0
    return sign * frame[metric]


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    from scipy import stats

    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.kendalltau(x, y).statistic)


def within_entry_tau(part: pd.DataFrame, score: str, truth: str) -> np.ndarray:
    """Per entry, Kendall's τ between the methods' values of two metrics, both oriented so
    that higher is better.

    Args:
        part: scalars rows (``entry`` and the two metric columns), one row per method and
            entry.
        score, truth: the two metrics.

    Returns:
        One τ per entry with at least :data:`MIN_METHODS` methods holding both values (and
        not all tied), in entry order.
    """
    taus = []
    for _, group in part.groupby("entry", sort=True):
        both = group[[score, truth]].dropna()
        if len(both) >= MIN_METHODS:
            tau = _kendall(oriented(both, score).to_numpy(), oriented(both, truth).to_numpy())
            if math.isfinite(tau):
                taus.append(tau)
    return np.asarray(taus, np.float64)


def _agreement_row(part: pd.DataFrame, score: str, truth: str, seed: int) -> dict:
    taus = within_entry_tau(part, score, truth)
    low, high = bootstrap_interval(taus, np.mean, seed) if taus.size else (math.nan, math.nan)
    pooled = part[[score, truth]].dropna()
    return {"tau": float(taus.mean()) if taus.size else math.nan, "ci_low": low,
            "ci_high": high, "entries": int(taus.size),
            "tau_pooled": _kendall(oriented(pooled, score).to_numpy(),
                                   oriented(pooled, truth).to_numpy()),
            "rows_pooled": int(len(pooled))}


def _present(frame: pd.DataFrame, names: Iterable[str]) -> list[str]:
    return [m for m in names if m in frame.columns and frame[m].notna().any()]


def agreement(results: ResultSet, masking: str = "masked", scores: Iterable[str] = SCORES,
              truths: Iterable[str] = TRUTH_METRICS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Kendall's τ of every truth-free score against every truth metric.

    Args:
        results: results of several methods on one corpus with truth.
        masking: ``"masked"`` or ``"unmasked"`` rows.
        scores: the truth-free scores to judge (those without values are left out).
        truths: the truth metrics to judge them by (likewise).
        seed: the bootstrap's seed.

    Returns:
        One row per (score, truth): ``score``, ``truth``, then for every method (no prefix)
        and for the honest ones (prefix ``honest_``): ``tau`` (mean within-entry τ),
        ``ci_low``, ``ci_high`` (its 95 % bootstrap interval over entries), ``entries`` (how
        many entries had a τ), ``tau_pooled`` and ``rows_pooled``.

    Raises:
        InputError: no truth metric has a value (the corpus has no truth), or no score does.
    """
    part = results.scalars[results.scalars["masking"] == masking]
    part = part.assign(method=part["label"].map(lambda lab: results.settings[lab].method))
    truths, scores = _present(part, truths), _present(part, scores)
    if not truths:
        raise InputError(f"the {masking} results hold no truth metric: score validity needs a "
                         "corpus with truth (phantoms or simulated reconstructions)")
    if not scores:
        raise InputError(f"the {masking} results hold no truth-free score")
    honest = part[~part["method"].map(is_probe)]
    rows = []
    for score in scores:
        for truth in truths:
            row = {"score": score, "truth": truth, **_agreement_row(part, score, truth, seed)}
            row.update({f"honest_{k}": v
                        for k, v in _agreement_row(honest, score, truth, seed).items()})
            rows.append(row)
    return pd.DataFrame(rows)


def probes_above(results: ResultSet, honest: str = "fsc-weight", masking: str = "masked",
                 scores: Iterable[str] = SCORES) -> pd.DataFrame:
    """For every score, the probes it ranks above an honest method.

    Args:
        results: results holding the honest method and some probes.
        honest: the honest method's name.
        masking: ``"masked"`` or ``"unmasked"`` rows.
        scores: the scores to examine (those without values are left out); truth metrics
            may be given too, as the yardstick.

    Returns:
        One row per (score, probe): ``score``, ``probe`` (its label), ``entries`` (scored by
        both), ``probe_mean``, ``honest_mean``, ``above`` (the probe's mean is better,
        beyond :data:`ROUNDING`), ``share_above`` (the share of those entries where the
        probe's value is better).

    Raises:
        InputError: the honest method or any probe is missing from the results.
    """
    part = results.scalars[results.scalars["masking"] == masking]
    methods = {label: results.settings[label].method for label in results.labels}
    honest_labels = [label for label, m in methods.items() if m == honest]
    probe_labels = [label for label, m in methods.items() if is_probe(m)]
    if not honest_labels:
        raise InputError(f"no results of the honest method {honest!r} among "
                         f"{', '.join(methods.values())}")
    if not probe_labels:
        raise InputError("no probe among the results (methods named probe-...)")
    base = part[part["label"] == honest_labels[0]].set_index("entry")
    rows = []
    for score in _present(part, scores):
        sign = 1.0 if metric_facts(score).better == "max" else -1.0
        for label in probe_labels:
            probe = part[part["label"] == label].set_index("entry")[score]
            paired = pd.concat([probe, base[score]], axis=1, keys=["p", "h"]).dropna()
            if paired.empty:
                continue
            p, h = sign * paired["p"].to_numpy(), sign * paired["h"].to_numpy()
            rows.append({"score": score, "probe": label, "entries": len(paired),
                         "probe_mean": float(paired["p"].mean()),
                         "honest_mean": float(paired["h"].mean()),
                         "above": bool(_beyond(np.mean(p), np.mean(h))),
                         "share_above": float(np.mean(_beyond(p, h)))})
    return pd.DataFrame(rows, columns=["score", "probe", "entries", "probe_mean",
                                       "honest_mean", "above", "share_above"])


def summary(tau: pd.DataFrame, probes: pd.DataFrame | None, truth: str) -> pd.DataFrame:
    """One row per score: its τ against one truth metric and the probes it ranks above the
    honest method.

    Args:
        tau: from :func:`agreement`.
        probes: from :func:`probes_above` (or None).
        truth: the truth metric to report.

    Returns:
        Columns ``score``, ``tau``, ``ci_low``, ``ci_high``, ``entries``, ``tau_pooled``,
        ``honest_tau``, ``probes_above`` (comma-separated labels, ``""`` for none), sorted by
        ``tau``, best first.
    """
    rows = tau[tau["truth"] == truth]
    out = rows[["score", "tau", "ci_low", "ci_high", "entries", "tau_pooled",
                "honest_tau"]].copy()
    fooled = {}
    if probes is not None and len(probes):
        for score, group in probes[probes["above"]].groupby("score"):
            fooled[score] = ", ".join(group["probe"])
    out["probes_above"] = out["score"].map(lambda s: fooled.get(s, ""))
    return out.sort_values("tau", ascending=False, na_position="last").reset_index(drop=True)


__all__ = ["MIN_METHODS", "PROBE_PREFIX", "agreement", "is_probe", "oriented", "probes_above",
           "summary", "within_entry_tau"]
