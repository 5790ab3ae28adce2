"""One pass over a map for its sha256 and its statistics inside and outside a mask (numba).

The store records, per map, the sha256 of its float32 little-endian C-order bytes and
count / mean / std / min / max over the box and inside and outside the mask.
:func:`hashed_moments` computes both in one pass over the map, slab by slab of a few
z-planes (small enough to stay in cache between the hash and the statistics): hashlib and
the compiled kernel both release the GIL, so several maps are scanned at once in threads.
The statistics use float64 accumulators of values shifted by a constant near the data (so
that the sum of squares does not lose the variance to cancellation), one partial sum per
z-plane, added up at the end.
"""

from __future__ import annotations

import hashlib
import math

import numba
import numpy as np

GROUPS = ("box", "inside", "outside")

_SLAB_BYTES = 1 << 20  # bytes of map per slab: the hash and the kernel share it in cache


_KEY_MAX = np.int32(np.iinfo(np.int32).max)
_KEY_MIN = np.int32(np.iinfo(np.int32).min)


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "nsz"})
def _plane_moments(data, bits, mask, threshold, shift, sums, keys):
    """Per z-plane of ``data``, for inside (0) and outside (1): count, sum and sum of squares
    of ``value - shift`` into ``sums`` ``(nz, 2, 3)``, and the order keys of the min and max
    into ``keys`` ``(nz, 2, 2)``.

    Written to vectorise: no branches, sums that may be reassociated (NaN and inf still
    reach them, which is how they are detected), and min / max taken over int32 keys of the
    float32 bits (``bits`` is ``data`` viewed as int32), which order like the floats.
    """
    for z in range(data.shape[0]):
        n_in = s_in = q_in = s_out = q_out = 0.0
        lo_in = lo_out = _KEY_MAX
        hi_in = hi_out = _KEY_MIN
        for y in range(data.shape[1]):
            row, row_bits, row_mask = data[z, y], bits[z, y], mask[z, y]
            for x in range(data.shape[2]):
                inside = row_mask[x] > threshold
                w = np.float64(inside)
                d = np.float64(row[x]) - shift
                wd = w * d
                n_in += w
                s_in += wd
                q_in += wd * d
                od = d - wd
                s_out += od
                q_out += od * d
                key = row_bits[x] ^ ((row_bits[x] >> 31) & _KEY_MAX)
                lo_in = min(lo_in, key if inside else _KEY_MAX)
                hi_in = max(hi_in, key if inside else _KEY_MIN)
                lo_out = min(lo_out, _KEY_MAX if inside else key)
                hi_out = max(hi_out, _KEY_MIN if inside else key)
        sums[z, 0, 0], sums[z, 0, 1], sums[z, 0, 2] = n_in, s_in, q_in
        sums[z, 1, 0] = data.shape[1] * data.shape[2] - n_in
        sums[z, 1, 1], sums[z, 1, 2] = s_out, q_out
        keys[z, 0, 0], keys[z, 0, 1], keys[z, 1, 0], keys[z, 1, 1] = lo_in, hi_in, lo_out, hi_out


def _key_value(key: np.int32) -> float:
    """The float32 whose order key (see :func:`_plane_moments`) is ``key``."""
    bits = np.int32(key ^ ((key >> 31) & _KEY_MAX))
    return float(bits.view(np.float32))


def _summary(count, total, squares, lo, hi, shift) -> dict:
    if count == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "max": None}
    mean_shifted = total / count
    variance = max(squares / count - mean_shifted * mean_shifted, 0.0)
    return {"count": int(count), "mean": float(shift + mean_shifted), "std": math.sqrt(variance),
            "min": float(lo), "max": float(hi)}


def _slab_planes(shape: tuple[int, ...]) -> int:
    return max(1, _SLAB_BYTES // max(1, 4 * shape[1] * shape[2]))


def hashed_moments(data: np.ndarray, mask: np.ndarray,
                   threshold: float) -> tuple[str, dict | None]:
    """The sha256 of ``data`` as float32 little-endian C-order bytes, and its count, mean,
    population std, min and max over the box, inside and outside the mask, in one pass.

    Args:
        data: a 3D array (converted slab by slab to float32 little-endian if it is not).
        mask: a 3D array of the same shape; "inside" means ``mask > threshold``.
        threshold: the mask threshold.

    Returns:
        ``(sha256 hex digest, statistics)``: the statistics are
        ``{group: {count, mean, std, min, max}}`` for the groups :data:`GROUPS` (``None``
        values for an empty group), or ``None`` when ``data`` holds a NaN or an infinity.

    Raises:
        ValueError: ``data`` and ``mask`` differ in shape, or are not 3D.
    """
    if data.ndim != 3 or data.shape != mask.shape:
        raise ValueError(f"need 3D data and mask of one shape, got {data.shape} and "
                         f"{mask.shape}")
    digest = hashlib.sha256()
    sums = np.empty((data.shape[0], 2, 3), dtype=np.float64)
    keys = np.empty((data.shape[0], 2, 2), dtype=np.int32)
    shift = float(data.flat[0]) if data.size else 0.0
    exact = mask.dtype.type(threshold)  # the mask's own type when that changes nothing
    threshold = exact if float(exact) == threshold else float(threshold)
    step = _slab_planes(data.shape)
    for z in range(0, data.shape[0], step):
        slab = np.ascontiguousarray(data[z:z + step], dtype="<f4")
        digest.update(slab)
        _plane_moments(slab, slab.view(np.int32), np.ascontiguousarray(mask[z:z + step]),
                       threshold, shift, sums[z:z + step], keys[z:z + step])
    total = sums.sum(axis=0)  # (group, [count, sum, squares])
    if not (math.isfinite(shift) and np.isfinite(total).all()):
        return digest.hexdigest(), None
    lows, highs = keys[:, :, 0].min(axis=0), keys[:, :, 1].max(axis=0)
    groups = [_summary(*total[g], _key_value(lows[g]), _key_value(highs[g]), shift)
              for g in (0, 1)]
    box = _summary(*total.sum(axis=0), _key_value(lows.min()), _key_value(highs.max()), shift)
    return digest.hexdigest(), {"box": box, "inside": groups[0], "outside": groups[1]}
