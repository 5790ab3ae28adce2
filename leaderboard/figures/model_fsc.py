"""Fig. 4 of the paper: the model-map FSC resolution (masked, FSC 0.143) before and after
denoising, per entry with a fitted model.

``d_fsc_model_0143_input`` is the resolution where FSC(M, model map) crosses 0.143 and
``d_fsc_model_0143`` that of FSC(D, model map); the change is after minus before, in Å
(negative: the denoised map agrees with the model to a finer resolution). A value may be a
bound (an FSC that never crosses up to Nyquist); a change involving a bound is drawn open. The
entries where the change cannot be computed are counted per method.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from cref_bench.metrics.fsc import resolution_change
from leaderboard.figures import distribution
from leaderboard.figures.common import (
    COLUMN_WIDTH,
    Absent,
    Context,
    Drawn,
    new_figure,
    save_figure,
    styled,
)

NAME = "fig4_model_fsc"
TITLE = "Model-map FSC resolution before and after denoising (paper Fig. 4)"
AFTER, BEFORE = "d_fsc_model_0143", "d_fsc_model_0143_input"
MASKING = "masked"


def data(ctx: Context) -> pd.DataFrame:
    """Before, after and change for every ranked setting and compared entry (masked rows).

    Returns:
        Columns ``label``, ``entry``, ``before``, ``after``, ``change``, ``before_bound``,
        ``after_bound``, ``value`` (= change) and ``bound`` (``<``/``>`` where either value is
        a bound, else empty); rows whose change cannot be computed have NaN ``change``.
    """
    scalars, bounds = ctx.results.scalars, ctx.results.bounds
    columns = ["label", "entry", "before", "after", "change", "before_bound", "after_bound",
               "value", "bound"]
    if AFTER not in scalars.columns or BEFORE not in scalars.columns:
        return pd.DataFrame(columns=columns)
    rows = scalars[(scalars["masking"] == MASKING) & scalars["entry"].isin(ctx.entries)
                   & scalars["label"].isin(ctx.ranked)]
    frame = pd.DataFrame({"label": rows["label"], "entry": rows["entry"],
                          "before": rows[BEFORE], "after": rows[AFTER],
                          "before_bound": bounds.loc[rows.index, BEFORE],
                          "after_bound": bounds.loc[rows.index, AFTER]})
    frame["change"] = resolution_change(frame["after"], frame["before"])
    frame["value"] = frame["change"]
    frame["bound"] = np.where(frame["before_bound"] != "", frame["before_bound"],
                              frame["after_bound"])
    order = {label: i for i, label in enumerate(ctx.ranked)}
    frame["_order"] = frame["label"].map(order)
    frame = frame.sort_values(["_order", "entry"], kind="stable").drop(columns="_order")
    return frame[columns].reset_index(drop=True)


@styled
def make(ctx: Context, out_dir: str | os.PathLike) -> Drawn | Absent:
    """Draw and save the figure (or say why it cannot be drawn)."""
    frame = data(ctx)
    drawn = frame[frame["change"].notna()]
    if drawn.empty:
        reasons = ctx.results.notes
        reasons = reasons[(reasons["metric"] == BEFORE) & (reasons["masking"] == MASKING)]
        why = (reasons["reason"].value_counts().index[0] if len(reasons)
               else "no value was computed")
        return Absent(NAME, TITLE, f"no compared entry has a model-map FSC before and after "
                                   f"denoising ({why})")
    figure, ax = new_figure(COLUMN_WIDTH, 0.7 + 0.3 * drawn["label"].nunique())
    distribution.draw(ax, ctx, drawn, "change of d_fsc_model at 0.143 (masked), Å")
    ax.axvline(0.0, color="0.5", linewidth=0.6, linestyle=":")
    missing = frame[frame["change"].isna()].groupby("label").size()
    caption = (f"Change of the masked model-map FSC-0.143 resolution, after minus before "
               f"denoising, in Å, over the entries with a model among the "
               f"{ctx.entries_note()}; negative is better; open points involve a bound (an "
               "FSC that never crosses up to Nyquist).")
    if len(missing):
        caption += " Not computable: " + "; ".join(
            f"{label} {n} entries" for label, n in missing.items()) + "."
    return Drawn(NAME, TITLE, caption + ctx.failed_note(),
                 save_figure(figure, out_dir, NAME, frame))
