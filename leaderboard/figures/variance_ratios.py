"""Fig. 7 of the paper: var(S)/var(N) and var(S)/var(B) against spatial frequency.

From the per-shell variance analysis (:func:`cref_bench.metrics.scores.variance_analysis`): ``snr``
is var(S)/var(N) of the half-maps (the same for every method, drawn once in black) and
``sbr`` var(S)/var(B), the signal against the bias a denoiser introduced (methods with
denoised half-maps only). Both are put on one frequency axis (1/Å) across entries; the mean is
drawn with the interquartile range shaded, where at least half of the entries reach.
"""

from __future__ import annotations

import os

import pandas as pd

from leaderboard.figures.common import (
    PAGE_WIDTH,
    TARGET_COLOUR,
    Absent,
    Context,
    Drawn,
    new_figure,
    on_grid,
    resolution_axis,
    save_figure,
    styled,
)
from leaderboard.figures.reference_fsc import draw_means, mean_curves

NAME = "fig7_variance_ratios"
TITLE = "var(S)/var(N) and var(S)/var(B) against resolution (paper Fig. 7)"
HALF_MAPS = "half-maps"
"""The label of the curve common to every method (var(S)/var(N) of the half-maps)."""


def data(ctx: Context) -> pd.DataFrame:
    """The two ratios across the compared entries.

    Returns:
        Columns ``quantity`` (``var(S)/var(N)`` or ``var(S)/var(B)``) and those of
        :func:`leaderboard.figures.reference_fsc.mean_curves`; var(S)/var(N) once, with label
        :data:`HALF_MAPS` (each entry's curve taken from the first setting that has it); the
        reference row (the noisy map, which has no bias: var(S)/var(B) is infinite) is left
        out of var(S)/var(B).
    """
    sbr = mean_curves(ctx, "sbr")
    reference = set(ctx.table.loc[ctx.table["reference"], "label"])
    sbr = sbr[~sbr["label"].isin(reference)]
    snr = ctx.curves("snr")
    snr = snr[snr["entry"].isin(ctx.entries)]
    if snr.empty and sbr.empty:
        return pd.DataFrame()
    frames = []
    if len(snr):
        first = snr.drop_duplicates("entry")[["entry", "label"]]
        snr = snr.merge(first, on=["entry", "label"])
        common = on_grid(snr)
        common.insert(0, "label", HALF_MAPS)
        common["entries"] = snr["entry"].nunique()
        frames.append(common.assign(quantity="var(S)/var(N)"))
    if len(sbr):
        frames.append(sbr.assign(quantity="var(S)/var(B)"))
    frame = pd.concat(frames, ignore_index=True)
    return frame[["quantity", *[c for c in frame.columns if c != "quantity"]]]


def left_out_note(ctx: Context, frame: pd.DataFrame) -> str:
    """A sentence naming the ranked methods missing from the var(S)/var(B) panel and why:
    without denoised half-maps (a method that denoises the two halves together, as LAFTER
    does) var(B) is not computed; the unfiltered reference has no bias."""
    drawn = set(frame.loc[frame["quantity"] == "var(S)/var(B)", "label"])
    reference = set(ctx.table.loc[ctx.table["reference"], "label"])
    with_curves = set(ctx.curves("sbr").dropna(subset=["value"])["label"])
    missing = [label for label in ctx.ranked if label not in drawn | reference]
    without = [label for label in missing if label not in with_curves]
    other = [label for label in missing if label in with_curves]
    text = ""
    if without:
        text += (f" Not in the right panel: {', '.join(without)} (no denoised half-maps: the "
                 "method denoises the two halves together, and var(B) needs each denoised "
                 "alone).")
    if other:
        text += (f" Not in the right panel: {', '.join(other)} (too few entries with a "
                 "positive var(B) at any frequency).")
    return text


@styled
def make(ctx: Context, out_dir: str | os.PathLike) -> Drawn | Absent:
    """Draw and save the figure (or say why it cannot be drawn)."""
    frame = data(ctx)
    if frame.empty or not (frame["quantity"] == "var(S)/var(B)").any():
        return Absent(NAME, TITLE, "no method has denoised half-maps, so var(B) (the bias) "
                                   "was not computed")
    figure, axes = new_figure(PAGE_WIDTH, 2.8, ncols=2)
    for ax, quantity in zip(axes, ("var(S)/var(N)", "var(S)/var(B)")):
        rows = frame[frame["quantity"] == quantity]
        draw_means(ax, {**ctx.colours, HALF_MAPS: (TARGET_COLOUR, "-")}, rows)
        ax.set_yscale("log")
        ax.set_ylabel(f"{quantity} ({ctx.masking})")
        ax.set_xlim(0, frame["frequency"].max())
        resolution_axis(ax)
        ax.legend(loc="upper right")
    caption = ("Left: var(S)/var(N), the half-maps' signal against their noise per shell; "
               "right: var(S)/var(B), the signal against the bias each denoiser introduced "
               f"(paper eqs. 12-16; the unfiltered reference has none), {ctx.masking}. Mean "
               f"over the {ctx.entries_note()}, on a common axis of spatial frequency; "
               "shaded: interquartile range across entries; "
               "drawn where at least half of the entries reach that frequency; shells where a "
               "variance is not positive are left out." + left_out_note(ctx, frame)
               + ctx.failed_note())
    return Drawn(NAME, TITLE, caption, save_figure(figure, out_dir, NAME, frame))
