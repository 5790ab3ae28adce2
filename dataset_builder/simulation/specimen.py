"""The specimen: an atomic model in a box, its true density, and the oversampled transforms
particles are cut from.

* **Model.** A procedural model (:func:`dataset_builder.phantom_models.build_model`) centred
  in the box, or a given one (PDB/mmCIF) whose box is centred on it. The particle centre is
  voxel ``N/2`` of every axis (``N`` even).
* **Density.** :func:`cref_bench.metrics.model_map.model_map`:
  gemmi's electron-scattering density with
  the atoms' own B-factors, band-limited at Nyquist (raised-cosine roll-off over the last
  20 %). With a flexible domain the core and the domain are computed apart; the truth is the
  core plus the domain's ensemble mean (:mod:`.flexibility`).
* **Oversampled transform** (:func:`oversampled_transform`): the ``N³`` map, divided by the
  gridding correction ``g(x) = Π_axes sinc²(x_i / L)`` (``x`` in voxels from the centre, ``L =
  pad N``; the transform of the trilinear kernel), placed with its centre at index 0 of an
  ``L³`` zero box and transformed (``rfftn``). Trilinear interpolation in it then returns the
  map's transform at any point, up to aliases from the periodic copies, weighted
  ``sinc²(1 − |x|/L) / sinc²(|x|/L)`` relative to the map at ``x`` for ``pad = 2``: 3 % at
  0.3 N from the centre (a procedural particle's edge), 11 % at the box's edge.
"""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import scipy.fft

from cref_bench.maps.volume import Volume
from cref_bench.metrics.model_map import model_map, read_model
from dataset_builder.phantom_models import build_model

MODEL_MARGIN = 14.0
"""Å kept free between a procedural model and the box edge (mask dilation and soft edge)."""
GIVEN_MODEL_MARGIN = 8.0
"""Å a given model must keep from the box edge."""
MIN_PARTICLE_RADIUS = 10.0


def place_model(model: str | Path | gemmi.Structure | None, box: int, voxel_size: float,
                rng: np.random.Generator
                ) -> tuple[gemmi.Structure, tuple[float, float, float], str]:
    """The specimen's model and the box origin that centres it.

    Args:
        model: a model file or structure; None builds a procedural model from ``rng``
            (particle radius 30 % of the box edge, at most the edge's half less 14 Å).
        box: edge in voxels.
        voxel_size: Å.
        rng: the generator of a procedural model.

    Returns:
        ``(structure, origin_zyx, name)``: a private copy of the model, the origin (Å) of
        voxel (0, 0, 0) that puts the model's centre at voxel ``box/2``, and a name to record.

    Raises:
        ValueError: the box is too small for the model.
        Exception: what :func:`cref_bench.metrics.model_map.read_model` raises for a model file that
            cannot be read or holds no atoms.
    """
    edge = box * voxel_size
    if model is None:
        radius = min(0.3 * edge, 0.5 * edge - MODEL_MARGIN)
        if radius < MIN_PARTICLE_RADIUS:
            raise ValueError(f"a {box}^3 box of {voxel_size} Å voxels ({edge:.0f} Å) is too "
                             f"small for a procedural specimen: it needs "
                             f"{2 * (MIN_PARTICLE_RADIUS + MODEL_MARGIN):.0f} Å")
        structure = build_model(rng, radius, centre=(edge / 2,) * 3)
        return structure, (0.0, 0.0, 0.0), "procedural"
    structure = model.clone() if isinstance(model, gemmi.Structure) else read_model(model)
    name = str(model) if isinstance(model, (str, Path)) else (structure.name or "given")
    structure.remove_alternative_conformations()
    xyz = np.array([cra.atom.pos.tolist() for cra in structure[0].all()]).reshape(-1, 3)
    low, high = xyz.min(axis=0), xyz.max(axis=0)
    if np.any(high - low + 2 * GIVEN_MODEL_MARGIN > edge):
        raise ValueError(f"model {name} spans {np.round(high - low, 1)} Å (x, y, z); with "
                         f"{GIVEN_MODEL_MARGIN} Å margins it needs a box edge of "
                         f"{(high - low).max() + 2 * GIVEN_MODEL_MARGIN:.0f} Å, this box has "
                         f"{edge:.0f} Å")
    centre = (low + high) / 2
    return structure, tuple((centre - edge / 2)[::-1].tolist()), name


def read_specimen_map(path: str | Path, box: int, voxel_size: float) -> Volume:
    """A map specimen (the truth as given), checked against the settings' box.

    Args:
        path: an MRC/CCP4 map, cubic with an even edge.
        box: the settings' box edge (must equal the map's).
        voxel_size: the settings' voxel size, Å (must equal the map's within 0.1 %).

    Returns:
        The map; its centre voxel ``N/2`` is the particle's centre.

    Raises:
        ValueError: the map is not cubic, or its edge or voxel size differ from the settings.
        cref_bench.maps.io.MapError: the file cannot be read as a map.
    """
    from cref_bench.maps.io import read_map

    volume = read_map(path)
    shape, size = volume.shape, volume.voxel_size
    if len(set(shape)) != 1 or len(set(np.round(size, 4))) != 1:
        raise ValueError(f"specimen {path}: a {shape[::-1]} map of {size[::-1]} Å voxels "
                         f"(x, y, z); a specimen must be cubic with cubic voxels")
    if shape[0] != box or not np.isclose(size[0], voxel_size, rtol=1e-3):
        raise ValueError(f"specimen {path}: a {shape[0]}³ map of {size[0]:.4g} Å voxels, "
                         f"but the settings ask for {box}³ of {voxel_size:.4g} Å (leave box "
                         f"and voxel_size to the map)")
    return volume.like(np.ascontiguousarray(volume.data, np.float32))


MAP_RADIUS_LEVEL = 0.05
"""A map specimen's particle reaches the farthest voxel whose smoothed density exceeds this
fraction of its maximum."""


def map_particle_radius(volume: Volume) -> float:
    """Å from the box centre to the farthest voxel of a map specimen above
    :data:`MAP_RADIUS_LEVEL` of the maximum (after a 1-voxel Gaussian), at least
    :data:`MIN_PARTICLE_RADIUS`."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(volume.data.astype(np.float32), 1.0)
    inside = np.argwhere(smooth > MAP_RADIUS_LEVEL * smooth.max())
    if inside.size == 0:
        raise ValueError(f"specimen {volume.source}: no positive density")
    centre = np.asarray(volume.shape) // 2
    reach = float(np.sqrt(((inside - centre) ** 2).sum(axis=1)).max()) * volume.voxel_size[0]
    return max(reach, MIN_PARTICLE_RADIUS)


def particle_radius(structure: gemmi.Structure, like: Volume) -> float:
    """Å from the box centre to the farthest atom."""
    xyz = np.array([cra.atom.pos.tolist() for cra in structure[0].all()]).reshape(-1, 3)
    centre_zyx = np.asarray(like.origin) + np.asarray(like.shape) // 2 * np.asarray(like.voxel_size)
    return float(np.linalg.norm(xyz - centre_zyx[::-1], axis=1).max())


def density(structure: gemmi.Structure, like: Volume) -> np.ndarray:
    """The model's density on ``like``'s grid (float32 ``(z, y, x)``)."""
    return model_map(structure, like).data


def gridding_correction(n: int, pad: int, centre=None) -> list[np.ndarray]:
    """The trilinear kernel's transform ``sinc²(x / (pad n))`` along each axis of an
    ``n``-voxel box, ``x`` measured from ``centre`` (voxel indices, default ``n // 2``)."""
    centre = (n // 2,) * 3 if centre is None else centre
    return [np.sinc((np.arange(n) - c) / (pad * n)) ** 2 for c in centre]


def _centred_index(n: int, pad: int, centre: int) -> np.ndarray:
    """Where voxel ``i`` of an ``n`` box goes in a ``pad n`` box with ``centre`` at index 0."""
    return (np.arange(n) - centre) % (pad * n)


def oversampled_transform(data: np.ndarray, pad: int = 2, centre=None) -> np.ndarray:
    """The oversampled, gridding-corrected, centred transform of a cubic map (module docstring).

    Args:
        data: ``(N, N, N)`` float array.
        pad: oversampling factor.
        centre: voxel (z, y, x) placed at index 0 (default ``N // 2`` on every axis).

    Returns:
        complex64 ``rfftn`` half-space of shape ``(pad N, pad N, pad N // 2 + 1)``.
    """
    n = data.shape[0]
    centre = (n // 2,) * 3 if centre is None else tuple(int(c) for c in centre)
    gz, gy, gx = gridding_correction(n, pad, centre)
    corrected = data / (gz[:, None, None] * gy[None, :, None] * gx[None, None, :])
    big = np.zeros((pad * n,) * 3, np.float32)
    big[np.ix_(*(_centred_index(n, pad, c) for c in centre))] = corrected
    del corrected
    return scipy.fft.rfftn(big, workers=-1)


def uncentre(big: np.ndarray, n: int, pad: int) -> np.ndarray:
    """The ``n³`` box around index 0 of a centred ``pad n`` real array, gridding-corrected
    (divided by :func:`gridding_correction`), float32."""
    index = _centred_index(n, pad, n // 2)
    box = big[np.ix_(index, index, index)]
    gz, gy, gx = gridding_correction(n, pad)
    box /= gz[:, None, None] * gy[None, :, None] * gx[None, None, :]
    return box.astype(np.float32, copy=False)


__all__ = ["density", "gridding_correction", "map_particle_radius", "oversampled_transform",
           "particle_radius", "place_model", "read_specimen_map", "uncentre"]
