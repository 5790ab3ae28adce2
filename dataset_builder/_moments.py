"""Compiled one-pass statistics of a map inside and outside a mask (numba).

The store records, per map, count / mean / std / min / max over the box and inside and
outside the mask. One parallel pass over the map and the mask computes all three groups,
with float64 accumulators of values shifted by a constant near the data (so that the sum of
squares does not lose the variance to cancellation).
"""

from __future__ import annotations

import math

import numba
import numpy as np

GROUPS = ("box", "inside", "outside")


@numba.njit(parallel=True, cache=True)
def _partial_moments(data, mask, threshold, shift):
    nz = data.shape[0]
    # per z-plane: for inside (0) and outside (1): count, sum, sum of squares, min, max
    part = np.zeros((nz, 2, 5), dtype=np.float64)
    for z in numba.prange(nz):
        acc = part[z]
        acc[0, 3] = np.inf
        acc[1, 3] = np.inf
        acc[0, 4] = -np.inf
        acc[1, 4] = -np.inf
        for y in range(data.shape[1]):
            for x in range(data.shape[2]):
                v = np.float64(data[z, y, x])
                g = 0 if mask[z, y, x] > threshold else 1
                d = v - shift
                acc[g, 0] += 1.0
                acc[g, 1] += d
                acc[g, 2] += d * d
                if v < acc[g, 3]:
                    acc[g, 3] = v
                if v > acc[g, 4]:
                    acc[g, 4] = v
                if not math.isfinite(v):  # min/max comparisons skip NaN: flag it here
                    acc[g, 1] = np.nan
    return part


def _summary(count, total, squares, lo, hi, shift) -> dict:
    if count == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "max": None}
    mean_shifted = total / count
    variance = max(squares / count - mean_shifted * mean_shifted, 0.0)
    return {"count": int(count), "mean": float(shift + mean_shifted), "std": math.sqrt(variance),
            "min": float(lo), "max": float(hi)}


def masked_moments(data: np.ndarray, mask: np.ndarray, threshold: float) -> dict | None:
    """Count, mean, population std, min and max of ``data`` over the box, inside and outside.

    Args:
        data: a 3D float array.
        mask: a 3D array of the same shape; "inside" means ``mask > threshold``.
        threshold: the mask threshold.

    Returns:
        ``{group: {count, mean, std, min, max}}`` for the groups :data:`GROUPS` (``None``
        values for an empty group), or ``None`` when ``data`` holds a NaN or an infinity.
    """
    shift = float(data.flat[0]) if data.size else 0.0
    if not math.isfinite(shift):
        return None
    part = _partial_moments(data, mask, threshold, shift)
    sums = part[:, :, :3].sum(axis=0)  # (group, [count, sum, squares])
    if not np.isfinite(sums).all():
        return None
    lows, highs = part[:, :, 3].min(axis=0), part[:, :, 4].max(axis=0)
    groups = [_summary(*sums[g], lows[g], highs[g], shift) for g in (0, 1)]
    box = _summary(*sums.sum(axis=0), lows.min(), highs.max(), shift)
    return {"box": box, "inside": groups[0], "outside": groups[1]}
