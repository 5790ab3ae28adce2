"""The primary metric broken down by half-map resolution and by box size (one figure).

Reads the table of :func:`leaderboard.statistics.breakdown`: per setting, the mean of the
primary metric over the compared entries of each bin of the half-map FSC-0.143 resolution
(left) and of the box's longest edge (right), with the number of entries per bin under the
axis.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from leaderboard.figures.common import (
    PAGE_WIDTH,
    Absent,
    Context,
    Drawn,
    new_figure,
    save_figure,
    styled,
)

NAME = "breakdown"
TITLE = "The primary metric by resolution and by box size"
PANELS = (("resolution", "half-map FSC-0.143 resolution"), ("box", "box edge (voxels)"))


@styled
def make(ctx: Context, out_dir: str | os.PathLike, table: pd.DataFrame) -> Drawn | Absent:
    """Draw and save the figure from a breakdown table (or say why it cannot be drawn).

    Args:
        ctx: the figure context.
        out_dir: the folder.
        table: the rows of :func:`leaderboard.statistics.breakdown`.
    """
    if table.empty:
        return Absent(NAME, TITLE, "no compared entry")
    metric = table.attrs.get("metric", ctx.table.attrs["primary"])
    figure, axes = new_figure(PAGE_WIDTH, 2.6, ncols=2)
    labels = [label for label in ctx.ranked if (table["label"] == label).any()]
    width = 0.7 / max(len(labels), 1)
    for ax, (by, title) in zip(axes, PANELS):
        rows = table[table["by"] == by]
        bins = list(dict.fromkeys(rows["bin"]))
        for i, label in enumerate(labels):
            part = rows[rows["label"] == label].set_index("bin").reindex(bins)
            x = np.arange(len(bins)) + (i - (len(labels) - 1) / 2) * width
            ax.plot(x, part["mean"], marker="o", markersize=3.5, linestyle="none",
                    color=ctx.colour(label), label=label)
        counts = rows.groupby("bin", sort=False)["n"].max().reindex(bins)
        ax.set_xticks(range(len(bins)), [f"{b}\n(n={counts[b]})" for b in bins])
        ax.set_xlabel(title)
        ax.set_ylabel(f"mean {metric} ({ctx.masking})")
        ax.grid(axis="x", visible=False)
    axes[-1].legend(loc="best")
    caption = (f"Mean {metric} ({ctx.masking}) of each method per bin of the half-map "
               "FSC-0.143 resolution (left) and of the box's longest edge (right), over the "
               f"{ctx.entries_note()}; n: entries per bin." + ctx.failed_note())
    return Drawn(NAME, TITLE, caption, save_figure(figure, out_dir, NAME, table))
