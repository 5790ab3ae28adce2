"""Tests for cref_bench.metrics.model_map: model maps and atom masks on a map's grid."""

from __future__ import annotations

import time
from pathlib import Path

import gemmi
import numpy as np
import pytest

from cref_bench.errors import ModelError
from cref_bench.maps.volume import Volume
from cref_bench.metrics.model_map import atom_mask, model_map, read_model

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
MODEL_3J5P = REFERENCE / "models" / "3j5p.pdb"

# A non-cubic box with anisotropic voxels and an origin away from zero, (z, y, x).
LIKE = Volume(np.zeros((40, 50, 60), np.float32), voxel_size=(0.9, 1.1, 1.3),
              origin=(-5.0, 3.0, 10.0))


def make_structure(atoms) -> gemmi.Structure:
    """A one-residue structure from (element, (x, y, z), b_iso, occupancy) tuples."""
    structure = gemmi.Structure()
    structure.name = "test"
    structure.add_model(gemmi.Model("1"))
    chain = gemmi.Chain("A")
    residue = gemmi.Residue()
    residue.name = "UNK"
    residue.seqid = gemmi.SeqId(1, " ")
    for k, (element, xyz, b_iso, occ) in enumerate(atoms):
        atom = gemmi.Atom()
        atom.name = f"X{k}"
        atom.element = gemmi.Element(element)
        atom.pos = gemmi.Position(*xyz)
        atom.b_iso = b_iso
        atom.occ = occ
        residue.add_atom(atom)
    chain.add_residue(residue)
    structure[0].add_chain(chain)
    return structure


def position_of(volume: Volume, index_zyx) -> tuple[float, float, float]:
    """The (x, y, z) position in Å of voxel ``index_zyx``."""
    zyx = np.asarray(volume.origin) + np.asarray(index_zyx) * np.asarray(volume.voxel_size)
    return tuple(zyx[::-1].tolist())


def form_factor_sum(structure: gemmi.Structure) -> float:
    return sum(cra.atom.occ * sum(cra.atom.element.c4322.a) for cra in structure[0].all())


def test_model_map_integrates_to_the_electron_form_factors():
    rng = np.random.default_rng(0)
    atoms = []
    for element in ["C", "N", "O", "S", "H", "C", "Fe", "P"]:
        index = rng.uniform(0.35, 0.65, 3) * np.asarray(LIKE.shape)
        atoms.append((element, position_of(LIKE, index), float(rng.uniform(0, 80)),
                      float(rng.uniform(0.3, 1.0))))
    structure = make_structure(atoms)
    density = model_map(structure, LIKE)
    assert density.shape == LIKE.shape
    assert density.voxel_size == LIKE.voxel_size and density.origin == LIKE.origin
    integral = float(density.data.sum(dtype=np.float64)) * np.prod(LIKE.voxel_size)
    assert integral == pytest.approx(form_factor_sum(structure), rel=0.01)


def test_model_map_scales_with_occupancy():
    centre = position_of(LIKE, (20, 25, 30))
    full = model_map(make_structure([("C", centre, 20.0, 1.0)]), LIKE).data
    half = model_map(make_structure([("C", centre, 20.0, 0.5)]), LIKE).data
    np.testing.assert_allclose(half, 0.5 * full, atol=1e-6 * full.max())


@pytest.mark.parametrize("index", [(20, 25, 30), (7, 41, 13), (33, 9, 52)])
def test_atom_lands_on_its_voxel(index):
    structure = make_structure([("O", position_of(LIKE, index), 15.0, 1.0)])
    data = model_map(structure, LIKE).data
    assert np.unravel_index(np.argmax(data), data.shape) == index


def test_density_centroid_is_the_atom_position_off_grid():
    xyz = np.array(position_of(LIKE, (21.3, 24.6, 29.45)))
    data = model_map(make_structure([("C", tuple(xyz), 30.0, 1.0)]), LIKE).data.astype(np.float64)
    grids = np.meshgrid(*[o + v * np.arange(n) for o, v, n in
                          zip(LIKE.origin, LIKE.voxel_size, LIKE.shape)], indexing="ij")
    centroid_zyx = np.array([(g * data).sum() / data.sum() for g in grids])
    np.testing.assert_allclose(centroid_zyx[::-1], xyz, atol=0.02)


def test_atoms_outside_the_box_do_not_wrap_around():
    # 1 Å beyond the low-x face: its density enters the box at x index 0 only.
    low_x = np.array(position_of(LIKE, (20, 25, 0))) - (1.0, 0.0, 0.0)
    data = model_map(make_structure([("C", tuple(low_x), 20.0, 1.0)]), LIKE).data
    assert data[20, 25, 0] > 0.01
    assert np.abs(data[:, :, -10:]).max() < 1e-3 * data.max()
    # Far outside: nothing reaches the box.
    far = model_map(make_structure([("C", (-200.0, 31.0, 15.0), 20.0, 1.0)]), LIKE).data
    assert np.abs(far).max() < 1e-7


def test_model_map_leaves_the_structure_unchanged():
    xyz = position_of(LIKE, (20, 25, 30))
    structure = make_structure([("C", xyz, 20.0, 1.0), ("N", (-300.0, 0.0, 0.0), 20.0, 1.0)])
    model_map(structure, LIKE)
    atom_mask(structure, LIKE)
    atoms = [cra.atom for cra in structure[0].all()]
    assert atoms[0].pos.tolist() == pytest.approx(list(xyz))
    assert [a.occ for a in atoms] == [1.0, 1.0]


def test_d_min_removes_high_frequencies():
    like = Volume(np.zeros((64, 64, 64), np.float32), voxel_size=1.0, origin=(0, 0, 0))
    rng = np.random.default_rng(1)
    atoms = [("C", tuple(rng.uniform(24, 40, 3)), 10.0, 1.0) for _ in range(30)]
    structure = make_structure(atoms)
    sharp = model_map(structure, like).data
    low = model_map(structure, like, d_min=4.0).data
    s = np.sqrt(sum(f**2 for f in np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64),
                                              np.fft.rfftfreq(64), indexing="ij")))
    power_low = np.abs(np.fft.rfftn(low)) ** 2
    power_sharp = np.abs(np.fft.rfftn(sharp)) ** 2
    beyond = s > 1 / 4.0 + 2 / 64
    assert power_low[beyond].sum() < 1e-3 * power_sharp[beyond].sum()
    within = s < 0.8 / 4.0 - 2 / 64  # full weight up to 0.8 / d_min
    np.testing.assert_allclose(power_low[within].sum(), power_sharp[within].sum(), rtol=0.02)


def test_model_map_rejects_bad_input():
    with pytest.raises(ValueError, match="d_min"):
        model_map(make_structure([("C", (0, 0, 0), 20.0, 1.0)]), LIKE, d_min=0.0)
    empty = gemmi.Structure()
    empty.name = "empty"
    with pytest.raises(ModelError, match="empty.*no atoms"):
        model_map(empty, LIKE)


def test_atom_mask_follows_the_cosine_profile_around_one_atom():
    xyz = np.array(position_of(LIKE, (20.4, 25.2, 30.7)))
    radius, soft_edge = 3.0, 4.0
    mask = atom_mask(make_structure([("C", tuple(xyz), 20.0, 1.0)]), LIKE,
                     radius=radius, soft_edge=soft_edge).data
    grids = np.meshgrid(*[o + v * np.arange(n) for o, v, n in
                          zip(LIKE.origin, LIKE.voxel_size, LIKE.shape)], indexing="ij")
    distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, xyz[::-1])))
    fraction = np.clip((distance - radius) / soft_edge, 0, 1)
    expected = 0.5 + 0.5 * np.cos(np.pi * fraction)
    away_from_boundaries = (np.abs(distance - radius) > 1e-3) & \
        (np.abs(distance - radius - soft_edge) > 1e-3)
    np.testing.assert_allclose(mask[away_from_boundaries], expected[away_from_boundaries],
                               atol=1e-6)
    assert mask.min() >= 0.0 and mask.max() <= 1.0


def test_atom_mask_is_binary_without_soft_edge_and_does_not_wrap():
    low_x = np.array(position_of(LIKE, (20, 25, 0))) - (2.0, 0.0, 0.0)
    mask = atom_mask(make_structure([("C", tuple(low_x), 20.0, 1.0)]), LIKE,
                     radius=3.0, soft_edge=0.0).data
    assert set(np.unique(mask).tolist()) == {0.0, 1.0}
    assert mask[20, 25, 0] == 1.0
    assert mask[:, :, 2:].max() == 0.0  # 2 Å + 3 Å reaches x index 0 and 1 (1.3 Å voxels)
    with pytest.raises(ValueError, match="radius"):
        atom_mask(make_structure([("C", (0, 0, 0), 20.0, 1.0)]), LIKE, radius=0.0)


def test_read_model_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.pdb"
    with pytest.raises(ModelError, match="missing.pdb"):
        read_model(missing)
    blank = tmp_path / "blank.pdb"
    blank.write_text("REMARK nothing here\nEND\n")
    with pytest.raises(ModelError, match="blank.pdb.*no atoms"):
        read_model(blank)
    junk = tmp_path / "junk.cif"
    junk.write_bytes(b"data_x\nloop_\n_atom_site.id\n'unterminated\n")
    with pytest.raises(ModelError, match="junk.cif"):
        read_model(junk)


def test_read_model_round_trip_keeps_b_factors(tmp_path):
    structure = make_structure([("C", (1.0, 2.0, 3.0), 42.5, 0.75),
                                ("O", (4.0, 5.0, 6.0), 17.0, 1.0)])
    structure.setup_entities()
    path = tmp_path / "two.pdb"
    structure.write_pdb(str(path))
    back = read_model(path)
    atoms = [cra.atom for cra in back[0].all()]
    assert [a.b_iso for a in atoms] == pytest.approx([42.5, 17.0])
    assert [a.occ for a in atoms] == pytest.approx([0.75, 1.0])


@pytest.fixture(scope="module")
def model_3j5p():
    if not MODEL_3J5P.is_file():
        pytest.skip(f"reference model absent: {MODEL_3J5P}")
    return read_model(MODEL_3J5P, remove_waters=True)


def test_3j5p_model_map_on_a_coarse_box(model_3j5p):
    assert model_3j5p[0].count_atom_sites() == 15820
    centre_zyx = np.array(model_3j5p[0].calculate_center_of_mass().tolist())[::-1]
    like = Volume(np.zeros((64, 72, 64), np.float32), voxel_size=2.0,
                  origin=tuple(centre_zyx - np.array([64, 72, 64]) * 1.0))
    start = time.perf_counter()
    density = model_map(model_3j5p, like)
    mask = atom_mask(model_3j5p, like, radius=3.0, soft_edge=3.0)
    elapsed = time.perf_counter() - start
    assert elapsed < 15
    integral = float(density.data.sum(dtype=np.float64)) * 8.0
    assert integral == pytest.approx(form_factor_sum(model_3j5p), rel=0.01)
    inside = float((density.data * (mask.data > 0.5)).sum(dtype=np.float64)) * 8.0
    assert inside > 0.97 * integral
    assert 0.02 < float(mask.data.mean()) < 0.6


def lowpass(volume: Volume, d: float) -> Volume:
    """``volume`` with every Fourier component beyond 1/d Å⁻¹ removed (hard spherical edge)."""
    shape = volume.data.shape
    axes = [np.fft.fftfreq(n, a) for n, a in zip(shape[:2], volume.voxel_size[:2])]
    axes.append(np.fft.rfftfreq(shape[2], volume.voxel_size[2]))
    kz, ky, kx = np.meshgrid(*axes, indexing="ij")
    keep = kz**2 + ky**2 + kx**2 <= 1.0 / d**2
    data = np.fft.irfftn(np.fft.rfftn(volume.data) * keep, s=shape, axes=(0, 1, 2))
    return volume.like(data.astype(np.float32))


def random_atoms(n: int, low: float, high: float, seed: int = 3) -> gemmi.Structure:
    rng = np.random.default_rng(seed)
    elements = rng.choice(["C", "N", "O", "S"], size=n, p=[0.6, 0.2, 0.18, 0.02])
    return make_structure([(str(e), tuple(rng.uniform(low, high, 3)), rng.uniform(5, 40), 1.0)
                           for e in elements])


@pytest.mark.parametrize("source", ["random atoms", "3j5p"])
def test_model_map_against_itself_lowpassed_at_4A_crosses_near_4A(source):
    from cref_bench.metrics.fsc import fsc

    # The whole model lies inside the box, so that no density is cut at the box edge.
    if source == "3j5p":
        if not MODEL_3J5P.is_file():
            pytest.skip(f"reference model absent: {MODEL_3J5P}")
        structure = read_model(MODEL_3J5P, remove_waters=True)
        n, voxel = 96, 1.5  # TRPV1 spans about 100 Å
    else:
        structure = random_atoms(400, 10.0, 70.0)
        n, voxel = 80, 1.0
    xyz = np.array([cra.atom.pos.tolist() for cra in structure[0].all()])
    centre_zyx = ((xyz.min(axis=0) + xyz.max(axis=0)) / 2)[::-1]
    like = Volume(np.zeros((n, n, n), np.float32), voxel_size=voxel,
                  origin=tuple(centre_zyx - n * voxel / 2))
    sharp = model_map(structure, like)
    tolerance = 1.5 / (n * voxel)  # one and a half shell widths, Å⁻¹
    low, high = 1 / (0.25 + tolerance), 1 / (0.25 - tolerance)
    crossing = fsc(sharp, lowpass(sharp, 4.0)).resolution_at(0.143).resolution
    assert crossing is not None and low <= crossing <= high
    # d_min=4 in model_map itself band-limits the map the same way.
    band_limited = model_map(structure, like, d_min=4.0)
    crossing_dmin = fsc(sharp, band_limited).resolution_at(0.143).resolution
    assert crossing_dmin is not None and low <= crossing_dmin <= high
