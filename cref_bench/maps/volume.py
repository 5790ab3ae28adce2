"""The :class:`Volume` type: a 3D map with its geometry.

Conventions (used everywhere in the project):

* ``data`` is a C-contiguous ``float32`` array with axis order ``(z, y, x)``, the order
  mrcfile returns once the file's ``mapc/mapr/maps`` permutation is applied.
* ``voxel_size`` and ``origin`` are in Ångström and are given **in the same axis order
  as the array**, ``(z, y, x)``.
* ``origin`` is the position in space of the centre of voxel ``(0, 0, 0)``; voxel
  ``(k, j, i)`` sits at ``origin + (k, j, i) * voxel_size``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cref_bench.errors import GeometryMismatch, MapError, NonFiniteMap


def _triple(value) -> tuple[float, float, float]:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (3,))
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D map: ``float32`` data in ``(z, y, x)`` order, voxel size and origin in Å.

    Args:
        data: a 3D array; converted to C-contiguous ``float32`` (no copy when it already is).
        voxel_size: Å per voxel, a scalar or three values in ``(z, y, x)`` order.
        origin: Å position of voxel ``(0, 0, 0)``, three values in ``(z, y, x)`` order.
        source: where the map came from (a path or a description), used in error messages.

    Raises:
        MapError: the data is not 3D, or a voxel size is not finite and positive.
    """

    data: np.ndarray
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    source: str = field(default="<array>", compare=False)

    def __post_init__(self):
        data = np.ascontiguousarray(self.data, dtype=np.float32)
        if data.ndim != 3:
            raise MapError(self.source, f"a map must be 3D, got shape {data.shape}")
        voxel = _triple(self.voxel_size)
        if not all(np.isfinite(v) and v > 0 for v in voxel):
            raise MapError(self.source, f"voxel size must be finite and positive, got {voxel}")
        origin = _triple(self.origin)
        if not all(np.isfinite(o) for o in origin):
            raise MapError(self.source, f"origin must be finite, got {origin}")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "voxel_size", voxel)
        object.__setattr__(self, "origin", origin)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The array shape, ``(z, y, x)``."""
        return self.data.shape

    @property
    def box_angstrom(self) -> tuple[float, float, float]:
        """The box edge lengths in Å, ``(z, y, x)``."""
        return tuple(n * v for n, v in zip(self.shape, self.voxel_size))

    def like(self, data: np.ndarray, source: str | None = None) -> Volume:
        """A new Volume with this one's geometry and other data of the same shape."""
        if np.shape(data) != self.shape:
            raise GeometryMismatch(source or self.source,
                                   f"shape {np.shape(data)} differs from {self.shape}")
        return Volume(data, self.voxel_size, self.origin, source or self.source)

    def check_same_grid(self, other: Volume, rtol: float = 1e-4) -> None:
        """Raise :class:`GeometryMismatch` unless ``other`` has this shape and voxel size.

        Origins may differ by less than half a voxel (rounding in headers); more is a mismatch.
        """
        if other.shape != self.shape:
            raise GeometryMismatch(other.source, f"shape {other.shape} differs from "
                                   f"{self.shape} of {self.source}")
        if not np.allclose(other.voxel_size, self.voxel_size, rtol=rtol, atol=0):
            raise GeometryMismatch(other.source, f"voxel size {other.voxel_size} Å differs from "
                                   f"{self.voxel_size} Å of {self.source}")
        shift = np.abs(np.subtract(other.origin, self.origin)) / np.asarray(self.voxel_size)
        if np.any(shift >= 0.5):
            raise GeometryMismatch(other.source, f"origin {other.origin} Å differs from "
                                   f"{self.origin} Å of {self.source}")

    def check_finite(self) -> None:
        """Raise :class:`~cref_bench.errors.NonFiniteMap` if any voxel is NaN or infinite."""
        bad = int(np.size(self.data) - np.count_nonzero(np.isfinite(self.data)))
        if bad:
            raise NonFiniteMap(self.source, f"{bad} non-finite voxel(s) (NaN or inf)")
