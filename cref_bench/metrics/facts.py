"""What is known of each scalar metric, in one table that everything reads.

:data:`METRICS` holds one :class:`MetricFacts` per scalar metric that
:func:`cref_bench.metrics.scores.evaluate` reports (in each masking of :data:`MASKINGS`): its unit,
which direction is better, whether a leaderboard shows it by default, whether the runner's
end-of-run summary includes it, and what it is. The runner's summary, the leaderboard (its
ranking directions, arrows and default columns) and the tests read it; a new metric is
added here and computed in :mod:`cref_bench.metrics.scores`. Notation as there: half-maps ``M1``,
``M2``, their average ``M``, the denoised map ``D`` and halves ``D1``, ``D2``, the truth ``T``.

This module imports nothing heavy, so the leaderboard can read it without the metrics'
dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass

from cref_bench.errors import InputError

MASKINGS = ("unmasked", "masked")
"""The rows of a report: every map as it is, and every map times the mask."""


@dataclass(frozen=True)
class MetricFacts:
    """The facts of one scalar metric.

    Attributes:
        name: the metric's name (a column of ``scalars.csv``).
        unit: ``"Å"``, ``"map units"`` (the maps' own density units) or ``""`` (none).
        better: ``"min"`` when lower values are better, ``"max"`` when higher ones are.
        shown: a leaderboard shows it by default.
        summary: the runner's end-of-run summary includes it.
        description: what it is, in a few words.
    """

    name: str
    unit: str
    better: str
    shown: bool
    summary: bool
    description: str


def _crossings(prefix: str, curve: str, *, suffix: str = "", shown: str = "",
               summary: str = "") -> list[tuple]:
    """The rows of the resolutions where ``curve`` crosses 0.143 and 0.5 (``<prefix>_0143``
    and ``<prefix>_05``, then ``suffix``); ``shown`` and ``summary`` name the thresholds
    (``"0143"``, ``"05"``) a leaderboard shows by default and the summary includes."""
    return [(f"{prefix}_{tag}{suffix}", "Å", "min", tag == shown, tag == summary,
             f"resolution where {curve} crosses {threshold}")
            for tag, threshold in (("0143", "0.143"), ("05", "0.5"))]


def _table(*rows: tuple) -> dict[str, MetricFacts]:
    table = {}
    for row in rows:
        facts = MetricFacts(*row)
        if facts.better not in ("min", "max"):
            raise ValueError(f"{facts.name}: better must be 'min' or 'max', not {facts.better!r}")
        table[facts.name] = facts
    return table


METRICS: dict[str, MetricFacts] = _table(
    # name, unit, better, shown, summary, description
    ("cref_rmse", "", "min", True, True,
     "RMSE between max(FSC_FD, 0)² and C_ref² over the shells (the benchmark score)"),
    ("cref_l1", "", "min", True, True,
     "mean |C_ref - FSC_FD| over the shells (the training loss)"),
    ("fsc05_change", "Å", "min", True, True,
     "FSC-0.5 resolution of FSC(D2, M1) minus that of FSC(M1, M2)"),
    *_crossings("res_half", "FSC(M1, M2)", summary="0143"),
    ("res_d2m1_05", "Å", "min", False, False, "resolution where FSC(D2, M1) crosses 0.5"),
    ("truth_corr", "", "max", True, True,
     "correlation of D with the truth T (weighted by the mask in the masked row)"),
    ("truth_rmse", "map units", "min", True, False,
     "RMSE between D and the truth T (weighted by the mask in the masked row)"),
    *_crossings("truth_res", "FSC(D, T)"),
    *_crossings("reference_res", "FSC(D, reference map)"),
    *_crossings("d_fsc_model", "FSC(D, model map)", shown="0143"),
    *_crossings("d_fsc_model", "FSC(M, model map)", suffix="_input"),
)
"""Every scalar metric, by name."""

DEFAULT_METRICS = tuple(name for name, facts in METRICS.items() if facts.shown)
"""The metrics of a default leaderboard (those without any value are left out)."""

SUMMARY_METRICS = tuple(name for name, facts in METRICS.items() if facts.summary)
"""The metrics of the end-of-run summary (each where at least one entry has a value)."""


def metric_facts(name: str) -> MetricFacts:
    """The facts of one metric.

    Args:
        name: the metric's name.

    Returns:
        Its :class:`MetricFacts`.

    Raises:
        InputError: no such metric (the message lists the known ones).
    """
    try:
        return METRICS[name]
    except KeyError:
        raise InputError(f"no metric named {name!r}; known metrics: "
                         f"{', '.join(METRICS)}") from None


def metric_label(name: str) -> str:
    """A metric's name with its unit, as table headers show it: ``res_half_0143 (Å)``,
    ``cref_rmse`` (no unit), ``truth_rmse (map units)``; an unknown name as it is.

    Args:
        name: the metric's name.

    Returns:
        The label.
    """
    facts = METRICS.get(name)
    return f"{name} ({facts.unit})" if facts is not None and facts.unit else name
