"""Fourier shell correlation: spectra computed once, covariances per shell, FSC curves and
resolution at a threshold.

:class:`Spectra` holds the ``rfftn`` of several maps on one grid (optionally multiplied by a
mask in real space first); any number of FSCs and covariances between them then cost one
pass over the spectra, however many pairs are asked for. Linear combinations of maps (the
average of two half-maps, say) are defined by their weights and never transformed: their
covariances follow from those of the maps they combine.

The shells are those of :func:`cref_bench.metrics.shells.fourier_shells` (see that module for the
convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
import scipy.fft

from cref_bench.maps.volume import Volume
from cref_bench.metrics._kernels import shell_pair_sums
from cref_bench.metrics.shells import Shells, fourier_shells


@dataclass(frozen=True)
class Crossing:
    """Where a curve first falls below a threshold.

    Attributes:
        threshold: the threshold (0.143, 0.5, ...).
        resolution: the crossing in Å, or ``None`` when there is none; ``note`` says why.
        note: empty when ``resolution`` is a number, else the reason (``"never crosses ..."``).
        bound: where there is no crossing, what is known instead: ``"<"`` when the curve
            never falls below the threshold (the resolution is finer than ``limit``, the
            Nyquist resolution), ``">"`` when it is below already at the first shell (coarser
            than ``limit``, the first shell's resolution); ``""`` otherwise.
        limit: the resolution in Å that ``bound`` refers to, or ``None``.
    """

    threshold: float
    resolution: float | None
    note: str = ""
    bound: str = ""
    limit: float | None = None


ROUNDING = 1e-6
"""Relative difference below which two resolutions are the same one: the maps are float32
(machine epsilon 1.2e-7), so curves of maps equal up to rounding cross a threshold at
resolutions that differ by about that much (1e-8 Å at 3 Å), never by a physical amount."""


def resolution_change(after, before):
    """``after - before`` of resolutions (Å), exactly 0 where they agree within float
    rounding (:data:`ROUNDING`, relative), so that a map unchanged up to rounding shows no
    change.

    Args:
        after: a resolution or an array of them.
        before: the same shape.

    Returns:
        The difference (a float for numbers, an array for arrays; NaN stays NaN).
    """
    after, before = np.asarray(after, np.float64), np.asarray(before, np.float64)
    difference = after - before
    scale = ROUNDING * np.maximum(np.abs(after), np.abs(before))
    change = np.where(np.abs(difference) <= scale, 0.0, difference)
    return float(change) if change.ndim == 0 else change


def resolution_at(frequency: np.ndarray, values: np.ndarray, threshold: float) -> Crossing:
    """The resolution at which a curve first falls below ``threshold``.

    Starting at the lowest-frequency shell, the first shell whose value is below the
    threshold is found; the crossing frequency is interpolated linearly between it and the
    shell before. A curve that stays at or above the threshold up to its last shell "never
    crosses" (the resolution is then finer than the Nyquist limit: bound ``"<"``); one that
    starts below it is "below at the first shell" (coarser than that shell: bound ``">"``).
    Neither is reported as a crossing; the bound and its limit are.

    Args:
        frequency: increasing shell frequencies, 1/Å.
        values: the curve, one value per shell (NaN counts as below).
        threshold: the threshold.

    Returns:
        A :class:`Crossing`.
    """
    values = np.asarray(values, dtype=np.float64)
    below = ~(values >= threshold)
    if not below.any():
        limit = float(1 / frequency[-1])
        return Crossing(threshold, None,
                        f"never crosses {threshold:g} up to {limit:.3g} Å (Nyquist)", "<", limit)
    i = int(np.argmax(below))
    if i == 0:
        limit = float(1 / frequency[0])
        return Crossing(threshold, None,
                        f"below {threshold:g} already at the first shell ({limit:.3g} Å)",
                        ">", limit)
    v0, v1 = values[i - 1], values[i]
    t = (v0 - threshold) / (v0 - v1) if np.isfinite(v1) else 0.0
    f = frequency[i - 1] + t * (frequency[i] - frequency[i - 1])
    return Crossing(threshold, float(1.0 / f))


@dataclass(frozen=True, eq=False)
class FSCCurve:
    """An FSC curve on the shells of :func:`cref_bench.metrics.shells.fourier_shells`.

    Attributes:
        frequency: shell frequencies, 1/Å.
        value: the correlation in each shell (NaN where a map has no power in the shell).
        counts: lattice points of the full transform in each shell.
    """

    frequency: np.ndarray
    value: np.ndarray
    counts: np.ndarray

    @property
    def resolution(self) -> np.ndarray:
        """Shell resolutions in Å."""
        return 1.0 / self.frequency

    def resolution_at(self, threshold: float) -> Crossing:
        """The first crossing of ``threshold`` (see :func:`resolution_at`)."""
        return resolution_at(self.frequency, self.value, threshold)


def _correlation(cross: np.ndarray, power_a: np.ndarray, power_b: np.ndarray) -> np.ndarray:
    denom = np.sqrt(power_a * power_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, cross / np.where(denom > 0, denom, 1.0), np.nan)


class Spectra:
    """Fourier transforms of maps on one grid, each computed once, and their covariances.

    Args:
        like: a Volume giving the grid (shape and voxel size) every map must share.
        mask: optional mask Volume on the same grid; each map is multiplied by it in real
            space before its transform.
        shells: the shells to use (default:
                :func:`~cref_bench.metrics.shells.fourier_shells` of the grid).

    Maps are added with :meth:`add`; :meth:`combine` defines a linear combination of maps
    added before. :meth:`cov` and :meth:`fsc` then work on any of these names.
    """

    def __init__(self, like: Volume, mask: Volume | None = None, shells: Shells | None = None):
        self.like = like
        self.shells: Shells = shells or fourier_shells(like.shape, like.voxel_size)
        if mask is not None:
            like.check_same_grid(mask)
        self.mask = mask
        self._spectra: dict[str, np.ndarray] = {}
        self._terms: dict[str, dict[str, float]] = {}
        self._sums: dict[tuple[str, str], np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._terms

    def add(self, name: str, volume: Volume) -> None:
        """Transform ``volume`` (times the mask, if any) and keep it under ``name``.

        Raises:
            GeometryMismatch: the volume is not on the grid of ``like``.
            MapError: the volume has non-finite voxels.
        """
        self.like.check_same_grid(volume)
        volume.check_finite()
        data = volume.data if self.mask is None else volume.data * self.mask.data
        self._spectra[name] = scipy.fft.rfftn(data, workers=-1)
        self._terms[name] = {name: 1.0}

    def combine(self, name: str, weights: dict[str, float]) -> None:
        """Define ``name`` as ``Σ weight · map`` over maps added before (no transform is made)."""
        missing = [m for m in weights if m not in self._spectra]
        if missing:
            raise KeyError(f"cannot combine maps not added: {missing}")
        self._terms[name] = dict(weights)

    def _base_sums(self, pairs: set[tuple[str, str]]) -> None:
        todo = sorted({tuple(sorted(p)) for p in pairs} - set(self._sums))
        if not todo:
            return
        names = sorted({n for p in todo for n in p})
        position = {n: i for i, n in enumerate(names)}
        sums = shell_pair_sums([self._spectra[n] for n in names], self.shells.index,
                               [(position[a], position[b]) for a, b in todo],
                               self.shells.n, self.like.shape[2])
        for pair, row in zip(todo, sums):
            self._sums[pair] = row

    def _pairs_of(self, a: str, b: str):
        for (ma, wa), (mb, wb) in product(self._terms[a].items(), self._terms[b].items()):
            yield tuple(sorted((ma, mb))), wa * wb

    def cov(self, *pairs: tuple[str, str]) -> list[np.ndarray]:
        """Per-shell covariances ``(1/n) Σ Re(F_a · conj(F_b))`` for each ``(a, b)``.

        All base sums not yet known are computed in one pass over the spectra.

        Returns:
            One float64 array per pair, one value per shell.
        """
        for a, b in pairs:
            for name in (a, b):
                if name not in self._terms:
                    raise KeyError(f"no map named {name!r} in these spectra")
        self._base_sums({p for a, b in pairs for p, _ in self._pairs_of(a, b)})
        counts = self.shells.counts
        out = []
        for a, b in pairs:
            total = sum(w * self._sums[p] for p, w in self._pairs_of(a, b))
            out.append(total / np.maximum(counts, 1))
        return out

    def fsc(self, a: str, b: str) -> FSCCurve:
        """The FSC between maps ``a`` and ``b``."""
        cross, pa, pb = self.cov((a, b), (a, a), (b, b))
        return FSCCurve(self.shells.frequency, _correlation(cross, pa, pb), self.shells.counts)

    def release(self) -> None:
        """Drop the transforms (the covariances already computed stay available)."""
        self._spectra.clear()


def fsc(a: Volume, b: Volume, mask: Volume | None = None) -> FSCCurve:
    """The FSC between two maps on one grid, each optionally multiplied by ``mask`` first.

    Args:
        a, b: the maps.
        mask: optional real-space mask on the same grid.

    Returns:
        An :class:`FSCCurve` on the shells of :func:`cref_bench.metrics.shells.fourier_shells`.

    Raises:
        GeometryMismatch: the maps (or mask) are not on one grid.
        MapError: a map has non-finite voxels.
    """
    spectra = Spectra(a, mask)
    spectra.add("a", a)
    spectra.add("b", b)
    return spectra.fsc("a", "b")


__all__ = ["Crossing", "FSCCurve", "Spectra", "fsc", "resolution_at"]
