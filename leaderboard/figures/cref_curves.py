"""The mean FSC_FD² of each method against the mean C_ref² target, across entries.

The C_ref RMSE is the RMSE between max(FSC_FD, 0)² and C_ref² over the shells; this figure
shows where each method's squared FSC_FD departs from the target. Entries may have different
boxes and voxel sizes, so the x axis is the shell frequency divided by the entry's last
(Nyquist) shell frequency, and each entry's curve is interpolated linearly onto a common grid
of that axis before averaging (NaN shells are left out of the mean).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from leaderboard.figures.common import (
    COLUMN_WIDTH,
    TARGET_COLOUR,
    Absent,
    Context,
    Drawn,
    new_figure,
    save_figure,
    styled,
)

NAME = "cref_curves"
TITLE = "Mean FSC_FD² against C_ref²"
GRID_POINTS = 100


def mean_curve(curves: pd.DataFrame, grid: np.ndarray, square: bool = True) -> np.ndarray:
    """The mean over entries of a curve on a common grid of frequency / Nyquist.

    Args:
        curves: long rows of one curve (and one setting) with columns entry, frequency, value.
        grid: points of frequency / (last shell frequency of each entry), in (0, 1].
        square: average the squared values (``FSC²``) rather than the values.

    Returns:
        One mean per grid point; NaN where no entry has a value there.
    """
    total = np.zeros(grid.size)
    count = np.zeros(grid.size)
    for _, one in curves.groupby("entry", sort=False):
        one = one.sort_values("frequency")
        frequency = one["frequency"].to_numpy(np.float64)
        value = one["value"].to_numpy(np.float64) ** (2 if square else 1)
        finite = np.isfinite(value) & np.isfinite(frequency)
        if finite.sum() < 2:
            continue
        x = frequency / np.nanmax(frequency)
        y = np.interp(grid, x[finite], value[finite], left=np.nan, right=np.nan)
        ok = np.isfinite(y)
        total[ok] += y[ok]
        count[ok] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def data(ctx: Context) -> pd.DataFrame:
    """The mean C_ref² (label ``C_ref``) and each ranked setting's mean FSC_FD² over the
    compared entries.

    Returns:
        Columns ``label``, ``x`` (frequency / Nyquist), ``mean_square``.
    """
    curves = ctx.curves("fsc_fd", "c_ref")
    curves = curves[curves["entry"].isin(ctx.entries)]
    target = curves[curves["curve"] == "c_ref"]
    first = target.drop_duplicates("entry")[["entry", "label"]]
    target = target.merge(first, on=["entry", "label"])  # C_ref: each entry's curve once
    grid = np.linspace(0.0, 1.0, GRID_POINTS + 1)[1:]
    frames = [pd.DataFrame({"label": "C_ref", "x": grid, "mean_square": mean_curve(target, grid)})]
    for label in ctx.ranked:
        rows = curves[(curves["curve"] == "fsc_fd") & (curves["label"] == label)]
        if len(rows):
            frames.append(pd.DataFrame({"label": label, "x": grid,
                                        "mean_square": mean_curve(rows, grid)}))
    return pd.concat(frames, ignore_index=True) if len(target) else pd.DataFrame()


@styled
def make(ctx: Context, out_dir: str | os.PathLike, stem: str = NAME) -> Drawn | Absent:
    """Draw and save the figure (or say why it cannot be drawn)."""
    frame = data(ctx)
    if frame.empty or frame["label"].nunique() < 2:
        return Absent(stem, TITLE, f"the {ctx.masking} results hold no fsc_fd or c_ref curve")
    figure, ax = new_figure(COLUMN_WIDTH, 2.6)
    for label in dict.fromkeys(frame["label"]):
        rows = frame[frame["label"] == label]
        if label == "C_ref":
            ax.plot(rows["x"], rows["mean_square"], color=TARGET_COLOUR, linestyle="--",
                    linewidth=1.6, label="$C_{ref}^2$ (target)", zorder=4)
        else:
            ax.plot(rows["x"], rows["mean_square"], color=ctx.colour(label),
                    linestyle=ctx.linestyle(label), label=label)
    ax.set_xlabel("spatial frequency / Nyquist")
    ax.set_ylabel(f"mean $FSC_{{FD}}^2$ ({ctx.masking})")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.05, 1.05)
    ax.legend(loc="lower left")
    caption = (f"Mean FSC_FD² of each method and the mean target C_ref² (dashed) over the "
               f"{ctx.entries_note()}, against frequency relative to each entry's Nyquist "
               "frequency." + ctx.failed_note())
    return Drawn(stem, TITLE, caption, save_figure(figure, out_dir, stem, frame))
