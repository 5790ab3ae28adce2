"""Fig. S4 of the paper: per-shell var(S), var(N) and cov(D1, D2) for chosen entries.

The bias analysis (paper eqs. 12-16) assumes that the denoised halves D1, D2 carry
independent noise. Then cov(D1, D2) estimates what the halves share, the signal kept plus the
bias, and stays near or below var(S) = cov(M1, M2); a cov(D1, D2) well above var(S) where the
half-maps hold little signal shows noise shared between the denoised halves (the assumption
failing). Each quantity is divided by the shell's total half-map power var(S) + var(N) =
sqrt(cov(M1, M1) cov(M2, M2)), so var(S) reads as the half-map FSC and var(N) as 1 - FSC.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from leaderboard.figures.common import (
    PAGE_WIDTH,
    TARGET_COLOUR,
    Absent,
    Context,
    Drawn,
    new_figure,
    resolution_axis,
    save_figure,
    styled,
)

NAME = "figS4_shell_diagnostics"
TITLE = "Per-shell var(S), var(N) and cov(D1, D2) (paper Fig. S4)"
MAX_PANELS = 3
COMMON = {"var_signal": "var(S)", "var_noise": "var(N)"}


def data(ctx: Context, entries) -> pd.DataFrame:
    """The entries' var(S) and var(N) (once each) and every ranked setting's cov(D1, D2).

    Args:
        ctx: the figure context.
        entries: the entries.

    Returns:
        Columns ``entry``, ``label`` (``half-maps`` for var(S), var(N)), ``quantity``,
        ``shell``, ``frequency``, ``value`` (as stored) and ``relative`` (divided by the
        shell's var(S) + var(N)).
    """
    curves = ctx.curves("var_signal", "var_noise", "cov_d1d2")
    curves = curves[curves["entry"].isin(entries) & curves["label"].isin(ctx.ranked)]
    frames = []
    for entry in entries:
        one = curves[curves["entry"] == entry]
        halves = one[one["curve"].isin(COMMON)]
        if halves.empty:
            continue
        halves = halves[halves["label"] == halves["label"].iloc[0]]
        total = halves.groupby("shell")["value"].sum()
        rows = pd.concat([halves.assign(label="half-maps"), one[one["curve"] == "cov_d1d2"]])
        rows = rows.assign(quantity=rows["curve"].map({**COMMON, "cov_d1d2": "cov(D1, D2)"}))
        with np.errstate(divide="ignore", invalid="ignore"):
            rows["relative"] = rows["value"].to_numpy() / rows["shell"].map(total).to_numpy()
        frames.append(rows)
    if not frames:
        return pd.DataFrame(columns=["entry", "label", "quantity", "shell", "frequency",
                                     "value", "relative"])
    frame = pd.concat(frames, ignore_index=True)
    return frame[["entry", "label", "quantity", "shell", "frequency", "value", "relative"]]


@styled
def make(ctx: Context, out_dir: str | os.PathLike) -> Drawn | Absent:
    """Draw and save the figure for up to three chosen entries (or say why it cannot)."""
    entries = ctx.chosen[:MAX_PANELS]
    frame = data(ctx, entries)
    if not (frame["quantity"] == "cov(D1, D2)").any():
        return Absent(NAME, TITLE, "no method has denoised half-maps with a stored "
                                   "cov(D1, D2) curve for the chosen entries")
    entries = list(dict.fromkeys(frame["entry"]))
    figure, axes = new_figure(PAGE_WIDTH, 3.0, ncols=len(entries))
    axes = np.atleast_1d(axes)
    for ax, entry in zip(axes, entries):
        rows = frame[frame["entry"] == entry]
        for quantity, style in (("var(S)", "-"), ("var(N)", ":")):
            part = rows[rows["quantity"] == quantity]
            ax.plot(part["frequency"], part["relative"], color=TARGET_COLOUR, linestyle=style,
                    linewidth=1.4, label=quantity if ax is axes[0] else None, zorder=5)
        for label in ctx.ranked:
            part = rows[(rows["quantity"] == "cov(D1, D2)") & (rows["label"] == label)]
            if len(part):
                ax.plot(part["frequency"], part["relative"], color=ctx.colour(label),
                        linestyle=ctx.linestyle(label),
                        label=f"cov(D1, D2): {label}" if ax is axes[0] else None)
        ax.set_ylabel(f"relative to var(S) + var(N), {entry}")
        ax.set_xlim(0, rows["frequency"].max())
        resolution_axis(ax)
    figure.legend(loc="outside lower center", ncols=3)
    caption = (f"Entries {', '.join(entries)} ({ctx.masking}): per Fourier shell, var(S) "
               "(solid black) and var(N) (dotted black) of the half-maps and cov(D1, D2) of "
               "each method's denoised halves, each divided by the shell's var(S) + var(N). "
               "cov(D1, D2) well above var(S) where the half-maps hold little signal means "
               "the denoised halves share noise: the bias analysis's independence assumption "
               "fails there.")
    return Drawn(NAME, TITLE, caption, save_figure(figure, out_dir, NAME, frame))
