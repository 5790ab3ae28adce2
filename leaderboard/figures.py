"""Leaderboard figures: the spread of a metric across entries, and mean FSC_FD² against C_ref².

Figures are drawn on :class:`matplotlib.figure.Figure` objects (no pyplot, no global
backend or style change; PNG through Agg, PDF through the PDF backend) and each is saved
as PNG and PDF, atomically.

* :func:`plot_distribution`: one box (with the entries as points) per method, in the
  leaderboard's order.
* :func:`plot_cref_curves`: per method, the mean over entries of ``FSC_FD²`` (curve
  ``fsc_fd`` of :mod:`cref_bench.metrics`), with the mean ``C_ref²`` (curve ``c_ref``, the
  target, the same for every method) dashed. Entries may have different boxes and voxel
  sizes, so the x axis is the shell frequency divided by the entry's last (Nyquist) shell
  frequency, and each entry's curve is interpolated linearly onto a common grid of that
  axis before averaging (NaN shells are left out of the mean).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from cref_bench.atomic import atomic_path
from cref_bench.errors import InputError

FORMATS = ("png", "pdf")
GRID_POINTS = 100


def save_figure(figure: Figure, out_dir: str | os.PathLike, stem: str) -> list[Path]:
    """Save a figure as ``<out_dir>/<stem>.png`` and ``.pdf``, each atomically.

    Args:
        figure: the figure.
        out_dir: the folder (created if needed).
        stem: the file name without extension.

    Returns:
        The paths written.

    Raises:
        OSError: the folder cannot be created or written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        target = out_dir / f"{stem}.{fmt}"
        with atomic_path(target) as temp:
            figure.savefig(temp, format=fmt, dpi=200, bbox_inches="tight")
        written.append(target)
    return written


def _select(frame: pd.DataFrame, masking: str, entries: Sequence[str] | None,
            order: Sequence[str] | None) -> tuple[pd.DataFrame, list[str]]:
    part = frame[frame["masking"] == masking]
    if entries is not None:
        part = part[part["entry"].isin(set(entries))]
    if part.empty:
        raise InputError(f"nothing to plot: no {masking} rows for the given entries")
    methods = list(order) if order is not None else sorted(set(part["method"]))
    return part[part["method"].isin(set(methods))], methods


def plot_distribution(frame: pd.DataFrame, out_dir: str | os.PathLike, metric: str = "cref_rmse",
                      masking: str = "masked", order: Sequence[str] | None = None,
                      entries: Sequence[str] | None = None, stem: str | None = None) -> list[Path]:
    """Per-method distribution of one metric across entries (box plot with the points).

    Args:
        frame: scalars as returned by :func:`leaderboard.tables.load_results`.
        out_dir: where to save the figure.
        metric: the metric to show.
        masking: ``"masked"`` or ``"unmasked"``.
        order: methods, top to bottom (default: alphabetical).
        entries: only these entries (default: all).
        stem: file name without extension (default ``distribution_<metric>_<masking>``).

    Returns:
        The PNG and PDF paths.

    Raises:
        InputError: the metric is not a column, or nothing is left to plot.
        OSError: the figure cannot be written.
    """
    if metric not in frame.columns:
        raise InputError(f"no metric {metric!r} in the results")
    part, methods = _select(frame, masking, entries, order)
    part = part.dropna(subset=[metric])
    if part.empty:
        raise InputError(f"nothing to plot: {metric} has no {masking} value")
    figure = Figure(figsize=(6.0, 1.0 + 0.45 * len(methods)))
    with sns.axes_style("whitegrid"):
        ax = figure.subplots()
    with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib's deprecated ``vert``
        warnings.filterwarnings("ignore", message=r"vert: bool", category=DeprecationWarning)
        sns.boxplot(data=part, x=metric, y="method", order=methods, ax=ax, color="0.85",
                    showfliers=False, width=0.6)
    sns.stripplot(data=part, x=metric, y="method", order=methods, ax=ax, size=3, alpha=0.6,
                  color="C0", jitter=0.15)
    ax.set_xlabel(f"{metric} ({masking}, {part['entry'].nunique()} entries)")
    ax.set_ylabel("")
    return save_figure(figure, out_dir, stem or f"distribution_{metric}_{masking}")


def mean_curve(curves: pd.DataFrame, grid: np.ndarray, square: bool = True) -> np.ndarray:
    """The mean over entries of a curve on a common grid of frequency / Nyquist.

    Args:
        curves: long rows of one curve (and one method) with columns entry, frequency, value.
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


def plot_cref_curves(curves: pd.DataFrame, out_dir: str | os.PathLike, masking: str = "masked",
                     order: Sequence[str] | None = None, entries: Sequence[str] | None = None,
                     stem: str | None = None) -> list[Path]:
    """Mean ``FSC_FD²`` per method against the mean ``C_ref²`` target.

    Args:
        curves: curves as returned by :func:`leaderboard.tables.load_curves` (needs the
            ``fsc_fd`` and ``c_ref`` curves).
        out_dir: where to save the figure.
        masking: ``"masked"`` or ``"unmasked"``.
        order: methods in legend order (default: alphabetical).
        entries: only these entries (default: all).
        stem: file name without extension (default ``cref_curves_<masking>``).

    Returns:
        The PNG and PDF paths.

    Raises:
        InputError: no ``fsc_fd`` or ``c_ref`` curve to plot.
        OSError: the figure cannot be written.
    """
    part, methods = _select(curves, masking, entries, order)
    fsc_fd = part[part["curve"] == "fsc_fd"]
    target = part[part["curve"] == "c_ref"]
    if fsc_fd.empty or target.empty:
        raise InputError(f"nothing to plot: the {masking} results hold no fsc_fd or c_ref curve")
    # C_ref depends on the half-maps only: take each entry's curve once.
    first_method = target.drop_duplicates("entry")[["entry", "method"]]
    target = target.merge(first_method, on=["entry", "method"])
    grid = np.linspace(0.0, 1.0, GRID_POINTS + 1)[1:]
    figure = Figure(figsize=(6.0, 4.0))
    with sns.axes_style("whitegrid"):
        ax = figure.subplots()
    ax.plot(grid, mean_curve(target, grid), color="black", linestyle="--", linewidth=2,
            label="$C_{ref}^2$ (target)")
    palette = sns.color_palette(n_colors=max(len(methods), 1))
    for method, color in zip(methods, palette):
        rows = fsc_fd[fsc_fd["method"] == method]
        if not rows.empty:
            ax.plot(grid, mean_curve(rows, grid), color=color, linewidth=1.5, label=method)
    ax.set_xlabel("frequency / Nyquist")
    ax.set_ylabel(f"mean over {part['entry'].nunique()} entries ({masking})")
    ax.set_title("$FSC_{FD}^2$ against $C_{ref}^2$")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.05, 1.05)
    ax.legend(frameon=False, fontsize="small")
    return save_figure(figure, out_dir, stem or f"cref_curves_{masking}")


def write_figures(frame: pd.DataFrame, curves: pd.DataFrame, table: pd.DataFrame,
                  out_dir: str | os.PathLike) -> list[Path]:
    """The leaderboard's figures for a ranked table: distribution of its primary metric and
    the FSC_FD² / C_ref² curves, over the table's compared entries and in its order.

    Args:
        frame: scalars from :func:`leaderboard.tables.load_results`.
        curves: curves from :func:`leaderboard.tables.load_curves`.
        table: the ranked table from :func:`leaderboard.tables.leaderboard_table`.
        out_dir: where to save the figures.

    Returns:
        The paths written (PNG and PDF of each figure).

    Raises:
        InputError: nothing to plot.
        OSError: a figure cannot be written.
    """
    a = table.attrs
    order = list(table["method"])
    return (plot_distribution(frame, out_dir, a["primary"], a["masking"], order, a["entries"])
            + plot_cref_curves(curves, out_dir, a["masking"], order, a["entries"]))
