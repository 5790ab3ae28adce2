"""Fig. 1 of the paper: a metric per method across entries, a box with the entries as points.

:func:`data` gives the values drawn (the table's compared entries, each value with its bound
mark); :func:`draw` draws them, one row per setting in rank order, in the setting's colour;
:func:`make` is the report's Fig. 1 (masked C_ref RMSE, or the table's primary metric).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd

from cref_bench.metrics.facts import metric_facts
from leaderboard.figures.common import (
    COLUMN_WIDTH,
    Absent,
    Context,
    Drawn,
    new_figure,
    save_figure,
    styled,
)

NAME = "fig1_distribution"
TITLE = "The primary metric per method (paper Fig. 1)"


def data(ctx: Context, metric: str, masking: str | None = None) -> pd.DataFrame:
    """The values of ``metric`` of every ranked setting over the table's compared entries.

    Args:
        ctx: the figure context.
        metric: the metric.
        masking: the rows (default: the table's).

    Returns:
        Columns ``label``, ``entry``, ``masking``, ``value``, ``bound`` (``<``, ``>`` or
        empty), settings in rank order, entries sorted; rows without a value left out.
    """
    masking = masking or ctx.masking
    scalars, bounds = ctx.results.scalars, ctx.results.bounds
    if metric not in scalars.columns:
        return pd.DataFrame(columns=["label", "entry", "masking", "value", "bound"])
    rows = scalars[(scalars["masking"] == masking) & scalars["entry"].isin(ctx.entries)
                   & scalars["label"].isin(ctx.ranked) & scalars[metric].notna()]
    frame = pd.DataFrame({"label": rows["label"], "entry": rows["entry"], "masking": masking,
                          "value": rows[metric], "bound": bounds.loc[rows.index, metric]})
    order = {label: i for i, label in enumerate(ctx.ranked)}
    frame["_order"] = frame["label"].map(order)
    return (frame.sort_values(["_order", "entry"], kind="stable").drop(columns="_order")
            .reset_index(drop=True))


def draw(ax, ctx: Context, frame: pd.DataFrame, xlabel: str) -> None:
    """A horizontal box per setting (quartiles, whiskers to 1.5 IQR) with its entries as points
    (open markers for bounds), drawn with seaborn.

    Args:
        ax: the axes.
        ctx: the figure context (colours, order).
        frame: rows of :func:`data`.
        xlabel: the axis label.
    """
    import seaborn

    labels = [label for label in ctx.ranked if (frame["label"] == label).any()]
    palette = {label: ctx.colour(label) for label in labels}
    line = {"color": "0.35", "linewidth": 0.7}
    with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11's deprecated `vert`
        warnings.filterwarnings("ignore", message="vert: bool", module="seaborn")
        seaborn.boxplot(data=frame, x="value", y="label", order=labels, orient="h", width=0.55,
                        showfliers=False, fill=False, color="0.35", linewidth=0.7,
                        medianprops={"color": "0.1", "linewidth": 1.0}, whiskerprops=line,
                        capprops=line, ax=ax)
    bounded = frame["bound"] != ""
    state = np.random.get_state()  # seaborn jitters with numpy's global generator:
    np.random.seed(0)               # the same jitter in every report, nothing else changed
    try:
        seaborn.stripplot(data=frame[~bounded], x="value", y="label", order=labels,
                          orient="h", hue="label", palette=palette, legend=False, jitter=0.15,
                          size=3, alpha=0.8, linewidth=0, zorder=3, ax=ax)
    finally:
        np.random.set_state(state)
    rng = np.random.default_rng(0)
    for row, label in enumerate(labels):  # bounds as open circles, outside seaborn's points
        values = frame.loc[bounded & (frame["label"] == label), "value"].to_numpy(np.float64)
        ax.scatter(values, row + rng.uniform(-0.15, 0.15, values.size), s=12, zorder=3,
                   facecolors="none", edgecolors=palette[label], linewidths=0.8)
    counts = frame["label"].value_counts()
    ax.set_yticks(range(len(labels)), [f"{label} (n={counts[label]})" for label in labels])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("")
    ax.grid(axis="y", visible=False)


def axis_label(metric: str, masking: str) -> str:
    """``metric (masking), unit`` as an axis label."""
    unit = metric_facts(metric).unit
    return f"{metric} ({masking})" + (f", {unit}" if unit else "")


@styled
def plot(ctx: Context, out_dir: str | os.PathLike, metric: str, stem: str,
         masking: str | None = None) -> list:
    """Draw and save the distribution of one metric.

    Args:
        ctx: the figure context.
        out_dir: the folder.
        metric: the metric.
        stem: the file name without extension.
        masking: the rows (default: the table's).

    Returns:
        The paths written (PNG, PDF, CSV), or ``[]`` when the metric has no value.
    """
    frame = data(ctx, metric, masking)
    if frame.empty:
        return []
    figure, ax = new_figure(COLUMN_WIDTH, 0.7 + 0.3 * frame["label"].nunique())
    draw(ax, ctx, frame, axis_label(metric, masking or ctx.masking))
    return save_figure(figure, out_dir, stem, frame)


@styled
def make(ctx: Context, out_dir: str | os.PathLike) -> Drawn | Absent:
    """The report's Fig. 1: the primary metric (C_ref RMSE by default) per method."""
    primary = ctx.table.attrs["primary"]
    paths = plot(ctx, out_dir, primary, NAME)
    if not paths:
        return Absent(NAME, TITLE, f"{primary} has no {ctx.masking} value")
    better = "lower" if metric_facts(primary).better == "min" else "higher"
    caption = (f"{primary} ({ctx.masking}) of each method over the {ctx.entries_note()}; "
               f"{better} is better. Box: quartiles and median; whiskers: 1.5 times the "
               "interquartile range; points: entries (open: bounds)."
               + ctx.failed_note())
    return Drawn(NAME, TITLE, caption, paths)
