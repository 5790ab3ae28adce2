"""Checks of maps given by a user, made before any metric is computed.

The corpus builder refuses bad maps when it stores them; a command that reads maps from
files (``cref-bench metrics``) makes the same checks with these, so that a bad map ends the
command with one line naming the file and the fault instead of NaN scores and numpy warnings:

* :func:`check_mask`: finite values in ``[0, 1]`` (within
  :data:`~cref_bench.corpus.layout.MASK_TOLERANCE`) and at least one voxel inside (above
  :data:`~cref_bench.corpus.layout.MASK_THRESHOLD`), as the store requires of its masks;
* :func:`check_varying`: finite, and not one value everywhere (an all-zero map has no
  Fourier content to correlate, so every FSC with it is undefined).

Each reads the array once, without copies of its size beyond numpy's reductions.
"""

from __future__ import annotations

import numpy as np

from cref_bench.corpus.layout import MASK_THRESHOLD, MASK_TOLERANCE
from cref_bench.errors import BadMask, ConstantMap
from cref_bench.maps.volume import Volume


def _range(volume: Volume) -> tuple[float, float]:
    """The smallest and largest voxel; refuses non-finite voxels."""
    low, high = float(np.min(volume.data)), float(np.max(volume.data))
    if not (np.isfinite(low) and np.isfinite(high)):
        volume.check_finite()  # raises NonFiniteMap with the count
    return low, high


def check_mask(mask: Volume) -> None:
    """Refuse a mask the metrics cannot use.

    Args:
        mask: the mask (its ``source`` names it in the error).

    Raises:
        NonFiniteMap: NaN or infinite voxels.
        BadMask: values outside ``[0, 1]``, or no voxel above the inside threshold.
    """
    low, high = _range(mask)
    if low < -MASK_TOLERANCE or high > 1 + MASK_TOLERANCE:
        raise BadMask(mask.source, f"mask values must lie in [0, 1], found [{low:g}, {high:g}]")
    if high <= MASK_THRESHOLD:
        raise BadMask(mask.source, f"mask is empty (no voxel > {MASK_THRESHOLD}; the largest "
                                   f"value is {high:g})")


def check_varying(volume: Volume) -> None:
    """Refuse a map with one value everywhere, or with non-finite voxels.

    Args:
        volume: the map (its ``source`` names it in the error).

    Raises:
        NonFiniteMap: NaN or infinite voxels.
        ConstantMap: every voxel has the same value.
    """
    low, high = _range(volume)
    if low == high:
        raise ConstantMap(volume.source, f"every voxel is {low:g}: a constant map has no "
                                         "Fourier content, so its FSC with any map is undefined")
