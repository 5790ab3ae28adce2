"""Fig. S1 of the paper: FSC_FD of every method against C_ref for one chosen entry.

FSC_FD = FSC(D, M) should follow C_ref = sqrt(2 FSC_half / (1 + FSC_half)): above it is noise
left in, below it signal lost (see :mod:`cref_bench.metrics.scores`). C_ref depends on the half-maps
only and is drawn once, dashed black.
"""

from __future__ import annotations

import os

import pandas as pd

from leaderboard.figures.common import (
    COLUMN_WIDTH,
    TARGET_COLOUR,
    Absent,
    Context,
    Drawn,
    new_figure,
    resolution_axis,
    save_figure,
    styled,
)

NAME = "figS1_fsc_fd_entry"
TITLE = "FSC_FD against C_ref for one entry (paper Fig. S1)"
TARGET = "C_ref"
"""The label of the target curve in the data."""


def data(ctx: Context, entry: str) -> pd.DataFrame:
    """The entry's C_ref (once) and every ranked setting's FSC_FD.

    Args:
        ctx: the figure context.
        entry: the entry.

    Returns:
        Columns ``entry``, ``label`` (:data:`TARGET` for C_ref), ``curve``, ``shell``,
        ``frequency``, ``value``.
    """
    curves = ctx.curves("fsc_fd", "c_ref")
    curves = curves[(curves["entry"] == entry) & curves["label"].isin(ctx.ranked)]
    target = curves[curves["curve"] == "c_ref"]
    target = target[target["label"] == target["label"].iloc[0]] if len(target) else target
    frames = [target.assign(label=TARGET)]
    for label in ctx.ranked:
        frames.append(curves[(curves["curve"] == "fsc_fd") & (curves["label"] == label)])
    frame = pd.concat(frames, ignore_index=True)
    return frame[["entry", "label", "curve", "shell", "frequency", "value"]]


@styled
def make(ctx: Context, out_dir: str | os.PathLike) -> Drawn | Absent:
    """Draw and save the figure for the first chosen entry (or say why it cannot)."""
    if not ctx.chosen:
        return Absent(NAME, TITLE, "no entry was compared")
    entry = ctx.chosen[0]
    frame = data(ctx, entry)
    if not (frame["curve"] == "fsc_fd").any():
        return Absent(NAME, TITLE, f"entry {entry} has no FSC_FD curve")
    figure, ax = new_figure(COLUMN_WIDTH, 2.8)
    for label in dict.fromkeys(frame["label"]):
        rows = frame[frame["label"] == label]
        if label == TARGET:
            ax.plot(rows["frequency"], rows["value"], color=TARGET_COLOUR, linestyle="--",
                    linewidth=1.6, label="$C_{ref}$", zorder=4)
        else:
            ax.plot(rows["frequency"], rows["value"], color=ctx.colour(label),
                    linestyle=ctx.linestyle(label), label=label)
    ax.set_ylabel(f"FSC ({ctx.masking})")
    ax.set_xlim(0, frame["frequency"].max())
    ax.set_ylim(-0.05, 1.05)
    resolution_axis(ax)
    ax.legend(loc="lower left")
    caption = (f"Entry {entry}: FSC_FD = FSC(D, M) of each method and the target C_ref "
               f"(dashed), {ctx.masking}, per Fourier shell. Above C_ref a method left noise "
               "in, below it removed signal.")
    return Drawn(NAME, TITLE, caption, save_figure(figure, out_dir, NAME, frame))
