"""Maps computed from atomic models, on the grid of an existing map.

Model-map FSC (as in phenix.mtriage) compares a map with the density predicted by a fitted
atomic model. This module reads the model (:func:`read_model`), computes its density on exactly
the grid of a given :class:`~cref_bench.maps.volume.Volume` (:func:`model_map`) and a soft mask
around its atoms (:func:`atom_mask`).

How a map's box is turned into something gemmi can fill:

* gemmi computes densities in a periodic unit cell whose grid point ``(0, 0, 0)`` sits at the
  cell's origin. A map's box is not a crystal, so the cell is a P1 box made of the map's grid
  **plus a margin** on every side (the margin is at least the reach of the widest atom, so
  nothing an atom puts inside the box wraps around from the far side); atoms are shifted by
  ``-(origin - margin)`` so that the padded grid lines up with the map's voxels, and the
  margin is cut off at the end.
* Atoms too far outside the box to reach it (farther than the margin) are ignored: their
  occupancy is set to zero in a private copy of the model (the caller's model is untouched).
  No warning is given; cropping a large model to a small box is an ordinary use.
* gemmi grids are indexed ``(x, y, z)``; results are transposed to the project's ``(z, y, x)``.

Units: the density is gemmi's electron-scattering (Mott-Bethe) density built from the
``c4322`` electron form factors, so the map summed over the box times the voxel volume equals
the sum over atoms of ``occupancy * sum(c4322 a-coefficients)`` (the atoms' form factors at
``s = 0``, in Å), for atoms well inside the box.
"""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import scipy.fft
from scipy.spatial import cKDTree

from cref_bench.errors import InputError, ModelError
from cref_bench.maps.volume import Volume

# Smallest total B (atom B + blur) used when sampling atoms on a grid of spacing h:
# B >= 8 pi^2 / 1.1 * h^2, the value gemmi's set_refmac_compatible_blur() aims at. Below it a
# sampled atom aliases noticeably; the blur added to reach it is removed again in Fourier space.
_BLUR_PER_SPACING2 = 8.0 * np.pi**2 / 1.1

# The band limit rolls off as a raised cosine over the last 20 % of its radius: a hard edge
# rings (Gibbs) far from sharp atoms; this taper keeps the ringing below 1e-4 of the peak.
_TAPER_FRACTION = 0.2

# Smallest margin (Å) around the box: covers the reach of an atom's Gaussian tails.
_MIN_MARGIN = 4.0


def read_model(path: str | Path, *, remove_hydrogens: bool = False,
               remove_waters: bool = False) -> gemmi.Structure:
    """Read an atomic model (PDB or mmCIF, optionally gzipped) with its B-factors.

    All models of the file are kept (:func:`model_map` and :func:`atom_mask` use the first).
    Hydrogens and waters are kept unless asked otherwise: a model map for FSC usually keeps
    whatever the depositors refined.

    Args:
        path: the model file.
        remove_hydrogens: drop hydrogen (and deuterium) atoms.
        remove_waters: drop water molecules.

    Returns:
        The structure as gemmi reads it (coordinates in Å, B-factors and occupancies as given).

    Raises:
        ModelError: the file is missing, unreadable, or holds no atoms.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "no such model file")
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelError(path, f"cannot read the atomic model: {exc}") from exc
    if remove_hydrogens:
        structure.remove_hydrogens()
    if remove_waters:
        structure.remove_waters()
    structure.remove_empty_chains()
    if len(structure) == 0 or structure[0].count_atom_sites() == 0:
        raise ModelError(path, "the model holds no atoms")
    return structure


def _first_model(structure: gemmi.Structure) -> gemmi.Model:
    if len(structure) == 0 or structure[0].count_atom_sites() == 0:
        raise ModelError(structure.name or "<structure>", "the model holds no atoms")
    return structure[0]


def _atom_table(model: gemmi.Model) -> np.ndarray:
    """One row per atom, in ``model.all()`` order: x, y, z (Å), B-factor, occupancy."""
    rows = [(cra.atom.pos.x, cra.atom.pos.y, cra.atom.pos.z, cra.atom.b_iso, cra.atom.occ)
            for cra in model.all()]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


class _PaddedBox:
    """A map's box grown by a margin, as a P1 cell holding a shifted copy of a model.

    Args:
        model: the model to place (not modified).
        table: its :func:`_atom_table`.
        like: the map whose box is padded.
        margin: Å added on every side.

    Attributes:
        model: a private copy of the model, shifted so that padded grid point 0 is at the
            cell origin; atoms beyond the margin have occupancy 0.
        positions: the shifted (x, y, z) positions of the atoms kept with occupancy > 0.
        pad: margin in voxels, (z, y, x), on the low side.
        shape: padded grid shape, (z, y, x).
        cell: the P1 unit cell, edges (x, y, z) = padded shape * voxel size.
    """

    def __init__(self, model: gemmi.Model, table: np.ndarray, like: Volume, margin: float):
        voxel = np.asarray(like.voxel_size)
        shape = np.asarray(like.shape)
        pad = np.ceil(margin / voxel).astype(int)
        padded = np.array([scipy.fft.next_fast_len(int(n), real=True)
                           for n in shape + 2 * pad])
        low_corner_zyx = np.asarray(like.origin) - pad * voxel
        shift_xyz = -low_corner_zyx[::-1]

        positions = table[:, :3] + shift_xyz
        extent_xyz = (padded * voxel)[::-1]
        inside = np.all((positions >= 0.0) & (positions < extent_xyz), axis=1)

        copy = model.clone()
        transform = gemmi.Transform()
        transform.vec.fromlist(shift_xyz.tolist())
        copy.transform_pos_and_adp(transform)
        if not inside.all():
            for cra, keep in zip(copy.all(), inside):
                if not keep:
                    cra.atom.occ = 0.0

        self.model = copy
        self.positions = positions[inside & (table[:, 4] > 0)]
        self.pad = tuple(int(p) for p in pad)
        self.shape = tuple(int(n) for n in padded)
        self.cell = gemmi.UnitCell(*extent_xyz.tolist(), 90.0, 90.0, 90.0)
        self._crop = tuple(slice(p, p + n) for p, n in zip(pad, shape))

    def new_grid(self, grid: gemmi.FloatGrid) -> gemmi.FloatGrid:
        """Give ``grid`` this box's cell, P1 symmetry and padded size (x, y, z), zero-filled."""
        grid.set_unit_cell(self.cell)
        grid.spacegroup = gemmi.SpaceGroup("P 1")
        grid.set_size(*self.shape[::-1])
        grid.fill(0.0)
        return grid

    def as_zyx(self, grid: gemmi.FloatGrid) -> np.ndarray:
        """The grid's values as a (z, y, x) view of the padded box (no copy)."""
        return np.asarray(grid.array).transpose(2, 1, 0)

    def crop(self, padded_zyx: np.ndarray) -> np.ndarray:
        """The part of a padded (z, y, x) array that covers the map's box, as a new array."""
        return np.ascontiguousarray(padded_zyx[self._crop], dtype=np.float32)


def _band_limit(s: np.ndarray, s_max: float, taper: bool) -> np.ndarray:
    """1 up to ``(1 - taper) s_max``, raised-cosine roll-off to 0 at ``s_max``, 0 beyond;
    without ``taper``, 1 up to ``s_max`` and 0 beyond."""
    if not taper:
        return (s <= np.float32(s_max)).astype(np.float32)
    start = s_max * (1.0 - _TAPER_FRACTION)
    fraction = np.clip((s - np.float32(start)) / np.float32(s_max - start), 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.float32(np.pi) * fraction)).astype(np.float32, copy=False)


def _frequency_squared(shape: tuple[int, int, int], voxel: np.ndarray) -> np.ndarray:
    """|s|^2 in Å^-2 on the half-spectrum grid of ``scipy.fft.rfftn`` for a (z, y, x) box."""
    sz = np.fft.fftfreq(shape[0], voxel[0]).astype(np.float32)
    sy = np.fft.fftfreq(shape[1], voxel[1]).astype(np.float32)
    sx = np.fft.rfftfreq(shape[2], voxel[2]).astype(np.float32)
    return (sz[:, None, None] ** 2 + sy[None, :, None] ** 2) + sx[None, None, :] ** 2


def model_map(structure: gemmi.Structure, like: Volume, *, d_min: float | None = None,
              taper: bool = True) -> Volume:
    """The density of an atomic model on exactly the grid of ``like``.

    Uses gemmi's electron-scattering density (``DensityCalculatorE``, c4322 form factors), the
    atoms' own B-factors (isotropic or anisotropic) and occupancies, and the first model of the
    structure. Sampling a sharp atom on a grid aliases; to avoid it every atom is blurred to a
    total B of at least ``8 pi^2 / 1.1 * h^2`` (``h``: the coarsest voxel edge; gemmi's
    Refmac-compatible blur), and the blur is removed again in Fourier space, where the map is
    also band-limited to a sphere of radius ``s_max = 1 / max(d_min, 2 h)``. With ``taper``
    (the default, for a map to look at) full weight up to ``0.8 s_max`` and a raised-cosine
    roll-off to 0 at ``s_max``: a hard edge would ring around sharp atoms. FSC is *not* blind
    to the roll-off (within a shell the weight varies, and the last shells keep almost no
    power), so a map for model-map FSC is made with ``taper=False``: full weight up to
    ``s_max``, which only the FSC's own shells sample. With ``d_min=None`` the
    sphere reaches the grid's Nyquist frequency ``1 / (2 h)``; a ``d_min`` finer than ``2 h``
    is treated as ``2 h``. Beyond the sphere (the corners of the spectrum) the map is 0.

    Args:
        structure: the model (e.g. from :func:`read_model`); left unchanged.
        like: the map whose grid (shape, voxel size, origin) the result takes.
        d_min: resolution limit in Å, or None for the grid's Nyquist limit.
        taper: roll the band limit off smoothly (see above); ``False`` for FSC.

    Returns:
        A Volume on ``like``'s grid; values in gemmi's units for electron scattering (see
        the module docstring), summing (times the voxel volume) to the atoms' form factors
        at ``s = 0``.

    Raises:
        ModelError: the structure has no atoms.
        InputError: ``d_min`` is not positive.
    """
    if d_min is not None and not d_min > 0:
        raise InputError("d_min", f"must be positive, got {d_min}")
    model = _first_model(structure)
    voxel = np.asarray(like.voxel_size)
    coarsest = float(voxel.max())
    s_max = 1.0 / max(d_min or 0.0, 2.0 * coarsest)

    calc = gemmi.DensityCalculatorE()
    table = _atom_table(model)
    calc.blur = max(0.0, _BLUR_PER_SPACING2 * coarsest**2 - float(table[:, 3].min()))
    b_widest = float(table[:, 3].max()) + calc.blur
    # Gaussian sigma of the widest atom is sqrt(B / 8 pi^2); 5 sigma plus the form factor's
    # own width bounds what gemmi's cut-off (1e-5 of the peak) lets an atom reach.
    margin = max(_MIN_MARGIN, 5.0 * np.sqrt(b_widest / (8 * np.pi**2)) + 2.0)
    box = _PaddedBox(model, table, like, margin)

    box.new_grid(calc.grid)  # d_min stays 0: gemmi keeps the grid set up here
    calc.put_model_density_on_grid(box.model)
    padded = box.as_zyx(calc.grid)

    spectrum = scipy.fft.rfftn(padded, workers=-1)
    s2 = _frequency_squared(box.shape, voxel)
    unblur = np.exp(np.float32(calc.blur / 4.0) * s2)
    unblur *= _band_limit(np.sqrt(s2), s_max, taper)
    spectrum *= unblur
    del unblur, s2
    density = scipy.fft.irfftn(spectrum, s=box.shape, workers=-1)
    return like.like(box.crop(density), source=f"model map of {structure.name or 'model'}")


def atom_mask(structure: gemmi.Structure, like: Volume, *, radius: float = 3.0,
              soft_edge: float = 3.0) -> Volume:
    """A soft mask around the atoms of a model, on the grid of ``like``.

    The mask is 1 within ``radius`` Å of any atom (of the first model, occupancy > 0,
    hydrogens included), falls off as a raised cosine ``0.5 + 0.5 cos(pi (d - radius) /
    soft_edge)`` with the distance ``d`` to the nearest atom, and is 0 beyond
    ``radius + soft_edge``. gemmi marks the voxels near atoms; exact distances are computed
    only for the voxels in the soft edge (a k-d tree query), which keeps 256^3 boxes fast.

    Args:
        structure: the model; left unchanged.
        like: the map whose grid the mask takes.
        radius: Å around each atom where the mask is 1.
        soft_edge: width in Å of the cosine fall-off; 0 gives a binary mask.

    Returns:
        A Volume with values in [0, 1] on ``like``'s grid.

    Raises:
        ModelError: the structure has no atoms.
        ValueError: ``radius`` is not positive or ``soft_edge`` is negative.
    """
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    if not soft_edge >= 0:
        raise ValueError(f"soft_edge must be >= 0, got {soft_edge}")
    model = _first_model(structure)
    reach = radius + soft_edge
    box = _PaddedBox(model, _atom_table(model), like, reach + float(max(like.voxel_size)))

    grid = box.new_grid(gemmi.FloatGrid())
    if soft_edge > 0:
        grid.mask_points_in_constant_radius(box.model, reach, 1.0,
                                            ignore_zero_occupancy_atoms=True)
    grid.mask_points_in_constant_radius(box.model, radius, 2.0,
                                        ignore_zero_occupancy_atoms=True)
    marks = box.as_zyx(grid)
    mask = np.where(marks == 2.0, np.float32(1.0), np.float32(0.0))
    if soft_edge > 0:
        edge = np.nonzero(marks == 1.0)
        if edge[0].size:
            voxel = np.asarray(like.voxel_size)
            points_xyz = (np.stack(edge, axis=1) * voxel)[:, ::-1]
            distance, _ = cKDTree(box.positions).query(points_xyz, workers=-1)
            fraction = np.clip((distance - radius) / soft_edge, 0.0, 1.0)
            mask[edge] = (0.5 + 0.5 * np.cos(np.pi * fraction)).astype(np.float32)
    return like.like(box.crop(mask), source=f"atom mask of {structure.name or 'model'}")
