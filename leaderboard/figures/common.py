"""What every figure of the report shares: its context, its style, its files.

* :class:`Context`: the results, the ranked table, the entries chosen for single-entry
  figures, one colour per setting label (:func:`leaderboard.labels.colours`) and the curves,
  read once for every figure.
* :class:`Drawn` and :class:`Absent`: what a figure module returns, a figure written (with its
  caption) or the reason it could not be drawn.
* :func:`styled` and :func:`new_figure`: figures drawn in the report's style (:data:`STYLE`:
  8 pt text, no titles; captions belong to the report) on a
  :class:`matplotlib.figure.Figure` (no pyplot, no global state) at a journal's column width
  (:data:`COLUMN_WIDTH`, :data:`PAGE_WIDTH` inches).
* :func:`save_figure`: PNG, vector PDF and the data behind the figure as CSV, each atomically.
* :func:`on_grid`: curves of entries of different boxes and voxel sizes on one frequency axis
  (1/Å), with the mean and quartiles across entries at each point.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cref_bench.atomic import atomic_path, write_text
from leaderboard.labels import colours
from leaderboard.loading import ResultSet

FORMATS = ("png", "pdf")
DPI = 200
COLUMN_WIDTH = 3.5
"""Inches: one column of a two-column journal page."""
PAGE_WIDTH = 7.0
"""Inches: the full width of such a page."""

STYLE = {"font.size": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
         "legend.fontsize": 7, "axes.linewidth": 0.6, "lines.linewidth": 1.2,
         "axes.grid": True, "grid.linewidth": 0.4, "grid.color": "0.88",
         "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
         "pdf.fonttype": 42, "svg.fonttype": "none"}
"""matplotlib settings of every figure (applied with ``rc_context``; TrueType fonts in PDF)."""

TARGET_COLOUR = "#000000"
"""The colour of what is common to every method (C_ref, the half-maps' own curves)."""

GRID_POINTS = 200
"""Points of the common frequency axis of curves averaged across entries."""

CURVES = ("fsc_fd", "c_ref", "fsc_reference", "snr", "sbr", "var_signal", "var_noise",
          "cov_d1d2")
"""The curves the report's figures read."""


@dataclass
class Drawn:
    """A figure written: ``name`` (file stem), ``title`` (for the report's headings),
    ``caption``, ``paths`` (PNG, PDF, then the data CSV)."""

    name: str
    title: str
    caption: str
    paths: list[Path]

    @property
    def png(self) -> Path:
        """The PNG file."""
        return next(p for p in self.paths if p.suffix == ".png")


@dataclass
class Absent:
    """A figure that could not be drawn: ``name``, ``title`` and the ``reason``."""

    name: str
    title: str
    reason: str


@dataclass
class Context:
    """What the figure modules draw from.

    Attributes:
        results: the results.
        table: the ranked table (:func:`leaderboard.tables.leaderboard_table`); its order is
            the order of every legend.
        chosen: entries for the single-entry figures (S1, S4).
        colours: ``{label: (colour, line style)}`` of every setting.
    """

    results: ResultSet
    table: pd.DataFrame
    chosen: list[str] = field(default_factory=list)
    colours: dict = field(default_factory=dict)
    _curves: pd.DataFrame | None = None

    def __post_init__(self):
        if not self.colours:
            self.colours = colours(self.results.labels)

    @property
    def masking(self) -> str:
        """The table's masking."""
        return self.table.attrs["masking"]

    @property
    def entries(self) -> list[str]:
        """The table's compared entries."""
        return list(self.table.attrs["entries"])

    @property
    def ranked(self) -> list[str]:
        """The ranked labels, best first."""
        return list(self.table.loc[self.table["rank"].notna(), "label"])

    def curves(self, *names: str) -> pd.DataFrame:
        """The named curves of the table's masking, every label (read once, see
        :data:`CURVES`)."""
        if self._curves is None:
            curves = self.results.curves(CURVES)
            self._curves = curves[curves["masking"] == self.masking]
        return self._curves[self._curves["curve"].isin(names)]

    def colour(self, label: str) -> str:
        """The label's colour."""
        return self.colours[label][0]

    def linestyle(self, label: str) -> str:
        """The label's line style."""
        return self.colours[label][1]

    def failed_note(self, labels=None) -> str:
        """A sentence naming the failures of ``labels`` (default: every setting), or ``""``."""
        rows = self.table if labels is None else self.table[self.table["label"].isin(labels)]
        failed = rows[rows["failed"] > 0]
        if failed.empty:
            return ""
        items = [f"{r['label']} {r['failed']} ({r['failed_kinds']})"
                 for r in failed.to_dict("records")]
        return f" Failed entries, not shown: {'; '.join(items)}."

    def entries_note(self) -> str:
        """A sentence saying over which entries a figure was computed."""
        a = self.table.attrs
        text = f"{a['n_entries']} entries scored by every method ({a['masking']})"
        if a["n_dropped"]:
            text += f"; {a['n_dropped']} entries dropped (see the table's note)"
        return text


def styled(draw):
    """Decorate a function that draws figures: it runs with :data:`STYLE` in force (a
    matplotlib ``rc_context``, so nothing global changes)."""

    @functools.wraps(draw)
    def in_style(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return in_style


def new_figure(width: float = COLUMN_WIDTH, height: float = 2.6, ncols: int = 1,
               sharey: bool = False):
    """A figure and its axes (call it, and draw, inside a function decorated by
:func:`styled`).

    Args:
        width, height: inches.
        ncols: panels side by side.
        sharey: the panels share their y axis.

    Returns:
        ``(figure, axes)``: one axes, or an array of ``ncols``.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(1, ncols, sharey=sharey, squeeze=True)


def save_figure(figure, out_dir: str | os.PathLike, stem: str,
                data: pd.DataFrame | None = None) -> list[Path]:
    """Save a figure as ``<stem>.png`` and ``<stem>.pdf`` and its data as ``<stem>.csv``.

    Args:
        figure: the figure.
        out_dir: the folder (created if needed).
        stem: the file name without extension.
        data: the numbers drawn (None: no CSV).

    Returns:
        The paths written (PNG, PDF, CSV).

    Raises:
        OSError: the folder cannot be created or written.
    """
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # its font subsetting chatters
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        target = out_dir / f"{stem}.{fmt}"
        with atomic_path(target) as temp:
            figure.savefig(temp, format=fmt, dpi=DPI,
                           metadata={"Software": "cref-bench"} if fmt == "png" else None)
        written.append(target)
    if data is not None:
        written.append(write_text(out_dir / f"{stem}.csv", data.to_csv(index=False)))
    return written


def on_grid(curves: pd.DataFrame, grid: np.ndarray | None = None,
            points: int = GRID_POINTS) -> pd.DataFrame:
    """One curve across entries on a common frequency axis.

    Each entry's curve is interpolated linearly in frequency (1/Å) onto ``grid``, only
    within its own shells (no extrapolation); at each point the mean, the quartiles and the
    number of entries that reach it are taken over the entries with a finite value there.

    Args:
        curves: long rows of one curve (and one label) with columns entry, frequency, value.
        grid: the frequencies; default ``points`` points up to the highest frequency.
        points: the size of the default grid.

    Returns:
        Columns ``frequency``, ``mean``, ``q25``, ``median``, ``q75``, ``n``.
    """
    if grid is None:
        top = float(curves["frequency"].max()) if len(curves) else 0.0
        grid = np.linspace(0.0, top, points + 1)[1:]
    stack = []
    for _, one in curves.groupby("entry", sort=True):
        one = one.sort_values("frequency")
        x = one["frequency"].to_numpy(np.float64)
        y = one["value"].to_numpy(np.float64)
        finite = np.isfinite(x) & np.isfinite(y)
        if finite.sum() < 2:
            continue
        stack.append(np.interp(grid, x[finite], y[finite], left=np.nan, right=np.nan))
    values = np.array(stack) if stack else np.full((1, grid.size), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a point no entry reaches stays NaN
        q25, median, q75 = np.nanpercentile(values, [25, 50, 75], axis=0)
        mean = np.nanmean(values, axis=0)
    return pd.DataFrame({"frequency": grid, "mean": mean, "q25": q25, "median": median,
                         "q75": q75, "n": np.isfinite(values).sum(axis=0)})


RESOLUTION_TICKS = (20.0, 10.0, 6.0, 4.0, 3.0, 2.5, 2.0, 1.5)
"""Resolutions (Å) marked on the top axis of frequency plots."""


def resolution_axis(ax) -> None:
    """Label the x axis of spatial frequency (1/Å) and mark resolutions (Å) above it."""
    ax.set_xlabel("spatial frequency (1/Å)")
    low, high = ax.get_xlim()
    ticks = [r for r in RESOLUTION_TICKS if low < 1.0 / r < high]
    top = ax.secondary_xaxis("top", functions=(_inverse, _inverse))
    top.set_xticks(ticks, [f"{r:g}" for r in ticks])
    top.set_xlabel("resolution (Å)")


def _inverse(x):
    """1/x, with 0 (and below) sent far away rather than to infinity."""
    x = np.asarray(x, dtype=np.float64)
    return 1.0 / np.maximum(x, 1e-6)
