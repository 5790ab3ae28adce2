"""Fig. 2 of the paper: the FSC-0.5 change, unmasked and masked, for methods with denoised
half-maps.

``fsc05_change`` is the FSC-0.5 resolution of FSC(D2, M1) minus that of FSC(M1, M2), in Å
(negative: the denoised half agrees with the other noisy half to a finer resolution). A pair
method has no denoised halves, so no value: it is named in the caption, not drawn.
"""

from __future__ import annotations

import os

import pandas as pd

from cref_bench.metrics.facts import MASKINGS
from leaderboard.figures import distribution
from leaderboard.figures.common import (
    PAGE_WIDTH,
    Absent,
    Context,
    Drawn,
    new_figure,
    save_figure,
    styled,
)

NAME = "fig2_fsc05_change"
TITLE = "FSC-0.5 change, unmasked and masked (paper Fig. 2)"
METRIC = "fsc05_change"


def data(ctx: Context) -> pd.DataFrame:
    """The FSC-0.5 change of every ranked setting with a value, both maskings.

    Returns:
        The rows of :func:`leaderboard.figures.distribution.data` for each masking.
    """
    return pd.concat([distribution.data(ctx, METRIC, masking) for masking in MASKINGS],
                     ignore_index=True)


@styled
def make(ctx: Context, out_dir: str | os.PathLike) -> Drawn | Absent:
    """Draw and save the figure (or say why it cannot be drawn)."""
    frame = data(ctx)
    if frame.empty:
        return Absent(NAME, TITLE, "no method has denoised half-maps (pair methods give a "
                                   "full map only), so no FSC-0.5 change was computed")
    panels = [m for m in MASKINGS if (frame["masking"] == m).any()]
    height = 0.7 + 0.3 * frame["label"].nunique()
    figure, axes = new_figure(PAGE_WIDTH if len(panels) > 1 else PAGE_WIDTH / 2, height,
                              ncols=len(panels))
    axes = axes if len(panels) > 1 else [axes]
    for ax, masking in zip(axes, panels):
        distribution.draw(ax, ctx, frame[frame["masking"] == masking],
                          distribution.axis_label(METRIC, masking))
        ax.axvline(0.0, color="0.5", linewidth=0.6, linestyle=":")
    without = [label for label in ctx.ranked if not (frame["label"] == label).any()]
    caption = (f"FSC-0.5 resolution of FSC(D2, M1) minus that of FSC(M1, M2), in Å, over the "
               f"{ctx.entries_note()}, unmasked (left) and masked (right); negative is better. "
               "Box and points as in Fig. 1.")
    if without:
        caption += f" Without denoised half-maps (not applicable): {', '.join(without)}."
    return Drawn(NAME, TITLE, caption + ctx.failed_note(),
                 save_figure(figure, out_dir, NAME, frame))
