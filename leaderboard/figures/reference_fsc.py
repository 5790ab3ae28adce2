"""Fig. 3 of the paper: the FSC of each denoised map to a higher-resolution reference map of
the same specimen, where the corpus holds one.

Entries differ in box and voxel size, so each entry's curve ``fsc_reference`` (FSC(D,
reference), see :mod:`cref_bench.metrics.scores`) is put on one axis of spatial frequency (1/Å) and
the mean across entries is drawn, with the interquartile range shaded, where at least half of
the entries reach that frequency.
"""

from __future__ import annotations

import os

import pandas as pd

from leaderboard.figures.common import (
    COLUMN_WIDTH,
    Absent,
    Context,
    Drawn,
    new_figure,
    on_grid,
    resolution_axis,
    save_figure,
    styled,
)

NAME = "fig3_reference_fsc"
TITLE = "FSC to a higher-resolution reference map (paper Fig. 3)"
CURVE = "fsc_reference"


def mean_curves(ctx: Context, curve: str) -> pd.DataFrame:
    """A curve's mean and quartiles across the compared entries, per ranked setting, on one
    frequency axis (see :func:`leaderboard.figures.common.on_grid`).

    Args:
        ctx: the figure context.
        curve: the curve's name.

    Returns:
        Columns ``label``, ``frequency``, ``mean``, ``q25``, ``median``, ``q75``, ``n``
        (entries reaching the point), ``entries`` (entries with the curve).
    """
    curves = ctx.curves(curve)
    curves = curves[curves["entry"].isin(ctx.entries)]
    if curves.empty:
        return pd.DataFrame(columns=["label", "frequency", "mean", "q25", "median", "q75",
                                     "n", "entries"])
    grid = on_grid(curves)["frequency"].to_numpy()
    frames = []
    for label in ctx.ranked:
        rows = curves[curves["label"] == label]
        if rows.empty:
            continue
        frame = on_grid(rows, grid)
        frame.insert(0, "label", label)
        frame["entries"] = rows["entry"].nunique()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def draw_means(ax, styles: dict, frame: pd.DataFrame) -> None:
    """Each label's mean curve with its interquartile band, where half its entries reach.

    Args:
        ax: the axes.
        styles: ``{label: (colour, line style)}``.
        frame: rows of :func:`mean_curves`.
    """
    for label in dict.fromkeys(frame["label"]):
        rows = frame[(frame["label"] == label) & (frame["n"] >= frame["entries"] / 2)]
        colour, linestyle = styles[label]
        ax.plot(rows["frequency"], rows["mean"], color=colour, linestyle=linestyle,
                label=label)
        ax.fill_between(rows["frequency"], rows["q25"], rows["q75"], color=colour, alpha=0.15,
                        linewidth=0)


@styled
def make(ctx: Context, out_dir: str | os.PathLike) -> Drawn | Absent:
    """Draw and save the figure (or say why it cannot be drawn)."""
    frame = mean_curves(ctx, CURVE)
    if frame.empty:
        return Absent(NAME, TITLE, "no compared entry of the corpus holds a reference map (a "
                                   "higher-resolution map of the same specimen)")
    figure, ax = new_figure(COLUMN_WIDTH, 2.8)
    draw_means(ax, ctx.colours, frame)
    ax.axhline(0.143, color="0.5", linewidth=0.6, linestyle=":")
    ax.set_ylabel(f"FSC to the reference map ({ctx.masking})")
    ax.set_xlim(0, frame["frequency"].max())
    resolution_axis(ax)
    ax.legend(loc="upper right")
    n = int(frame["entries"].max())
    caption = (f"FSC between each denoised map and the reference map ({ctx.masking}), mean over "
               f"the {n} compared entries with a reference map (of the {ctx.entries_note()}); "
               "shaded: interquartile range across entries; drawn where at least half of the "
               "entries reach that frequency; dotted: 0.143." + ctx.failed_note())
    return Drawn(NAME, TITLE, caption, save_figure(figure, out_dir, NAME, frame))
