"""Protein-like atomic models for phantoms: ideal helices and strands packed into domains.

The models are built from standard backbone geometry, not taken from any database, so a
phantom's truth is known exactly:

* A backbone is grown residue by residue from internal coordinates (bond lengths, bond
  angles, dihedrals; :func:`backbone`): N-CA 1.458 Å, CA-C 1.525 Å, C-N 1.329 Å, C=O
  1.231 Å; angles N-CA-C 111.2°, CA-C-N 116.2°, C-N-CA 121.7°, CA-C-O 120.5°; trans
  peptides (omega 180°). The CB of an L-residue is placed from N, CA and C with the usual
  ideal-geometry coefficients. Every residue is an alanine (N, CA, C, O, CB).
* An α-helix has phi -57.8°, psi -47.0° (1.5 Å rise and 3.6 residues per turn, CA on a
  2.3 Å radius); a β-strand has phi -120°, psi 130° (about 3.3 Å rise per residue).
  Consecutive CA atoms are 3.8 Å apart in both.
* A domain is an ellipsoid with a random orientation. 40 % of domains first get one or two
  antiparallel β-sheets (strands 4.8 Å apart, sheets stacked 10 Å apart); then helices
  are laid on a hexagonal lattice (about 10.5 Å between axes, as in packed helix bundles)
  across the domain, along its long axis (up or down, tilted by up to about 12°), as long as the
  domain's chord allows. A candidate is kept only when all its atoms lie at least 3 Å
  from every atom already placed and inside the particle's sphere (strands of one sheet
  are placed together). Domains touch their neighbours, so the particle is one connected
  body.
* Each element is one chain, named ``h<k>`` for a helix and ``s<k>`` for a strand.
  B-factors rise from the particle's core to its surface (plus 5 Å² on CB), as in real
  models.
"""

from __future__ import annotations

from functools import lru_cache

import gemmi
import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

HELIX_PHI_PSI = (-57.8, -47.0)
STRAND_PHI_PSI = (-120.0, 130.0)
STRAND_SPACING = 4.8
"""Å between neighbouring strands of a sheet."""
SHEET_SPACING = 10.0
"""Å between the two sheets of a β-sandwich."""
HELIX_SPACING = 10.5
"""Å between neighbouring helix axes of a bundle (drawn within +-0.5 Å of this)."""
MAX_DOMAINS = 16
MIN_ATOM_DISTANCE = 3.0
"""Smallest distance (Å) kept between atoms of different placed groups."""

_BOND = {"N-CA": 1.458, "CA-C": 1.525, "C-N": 1.329, "C-O": 1.231}
_ANGLE = {"N-CA-C": 111.2, "CA-C-N": 116.2, "C-N-CA": 121.7, "CA-C-O": 120.5}
# CB = CA + a * (b x c) + b_coef * b + c_coef * c with b = CA - N, c = C - CA (L-amino acids).
_CB_COEFFICIENTS = (-0.58273431, 0.56802827, -0.54067466)
_ATOMS = ("N", "CA", "C", "O", "CB")
_MAX_TRIES = 60


def _place(a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle: float,
           dihedral: float) -> np.ndarray:
    """The atom d bonded to c with |cd| = bond, angle bcd and dihedral abcd in degrees."""
    bc = (c - b) / np.linalg.norm(c - b)
    normal = np.cross(b - a, bc)
    normal /= np.linalg.norm(normal)
    theta, phi = np.radians(angle), np.radians(dihedral)
    local = np.array([-bond * np.cos(theta), bond * np.sin(theta) * np.cos(phi),
                      bond * np.sin(theta) * np.sin(phi)])
    return c + local[0] * bc + local[1] * np.cross(normal, bc) + local[2] * normal


def backbone(n_residues: int, phi: float, psi: float) -> np.ndarray:
    """Coordinates of an ideal alanine chain with constant backbone dihedrals.

    Args:
        n_residues: number of residues (at least 1).
        phi, psi: backbone dihedrals in degrees (omega is 180°).

    Returns:
        ``(n_residues, 5, 3)`` float64 coordinates (Å) of N, CA, C, O, CB, in that order.

    Raises:
        ValueError: ``n_residues`` < 1.
    """
    if n_residues < 1:
        raise ValueError(f"a chain needs at least one residue, got {n_residues}")
    n = [np.zeros(3)]
    ca = [np.array([_BOND["N-CA"], 0.0, 0.0])]
    t = np.radians(180.0 - _ANGLE["N-CA-C"])
    c = [ca[0] + _BOND["CA-C"] * np.array([np.cos(t), np.sin(t), 0.0])]
    for _ in range(n_residues - 1):
        n.append(_place(n[-1], ca[-1], c[-1], _BOND["C-N"], _ANGLE["CA-C-N"], psi))
        ca.append(_place(ca[-1], c[-1], n[-1], _BOND["N-CA"], _ANGLE["C-N-CA"], 180.0))
        c.append(_place(c[-1], n[-1], ca[-1], _BOND["CA-C"], _ANGLE["N-CA-C"], phi))
    n, ca, c = np.array(n), np.array(ca), np.array(c)
    o = np.array([_place(n[i], ca[i], c[i], _BOND["C-O"], _ANGLE["CA-C-O"], psi + 180.0)
                  for i in range(n_residues)])
    b, cc = ca - n, c - ca
    ka, kb, kc = _CB_COEFFICIENTS
    cb = ca + ka * np.cross(b, cc) + kb * b + kc * cc
    return np.stack([n, ca, c, o, cb], axis=1)


def _principal_axes(points: np.ndarray) -> np.ndarray:
    """Rows: principal directions of ``points`` by decreasing variance."""
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return vt


def _frame_to(direction: np.ndarray, spin: float) -> np.ndarray:
    """A rotation taking the x axis to ``direction``, then spun by ``spin`` rad about it."""
    x = direction / np.linalg.norm(direction)
    helper = np.array([0.0, 0.0, 1.0]) if abs(x[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    y = np.cross(helper, x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    frame = np.stack([x, y, z], axis=1)
    return frame @ Rotation.from_rotvec([spin, 0.0, 0.0]).as_matrix()


@lru_cache(maxsize=64)
def _ideal_element(n_residues: int, phi: float, psi: float) -> np.ndarray:
    """:func:`backbone` moved to its CA centroid, CA axis along x (pleat along y); cached."""
    coords = backbone(n_residues, phi, psi)
    ca = coords[:, 1]
    axes = _principal_axes(ca)
    if np.dot(ca[-1] - ca[0], axes[0]) < 0:
        axes[0] = -axes[0]
    axes[2] = np.cross(axes[0], axes[1])
    element = (coords - ca.mean(axis=0)) @ axes.T
    element.setflags(write=False)
    return element


def _sheet(rng: np.random.Generator, n_strands: int) -> list[np.ndarray]:
    """Canonical antiparallel sheet: strands along x, neighbours along z, pleat along y."""
    strands = []
    for k in range(n_strands):
        strand = _ideal_element(int(rng.integers(5, 10)), *STRAND_PHI_PSI)
        flip = np.array([-1.0, 1.0, -1.0]) if k % 2 else np.ones(3)  # 180° about normal y
        strand = strand * flip + np.array([0.0, 0.0, (k - (n_strands - 1) / 2) * STRAND_SPACING])
        strands.append(strand)
    return strands


class _Packer:
    """Places groups of elements, refusing any that come within 3 Å of those placed."""

    def __init__(self, limit_radius: float):
        self.limit_radius = limit_radius
        self.elements: list[tuple[str, np.ndarray]] = []
        self._atoms = np.zeros((0, 3))
        self._tree: cKDTree | None = None

    def try_place(self, kind: str, group: list[np.ndarray], rotation: np.ndarray,
                  centre: np.ndarray) -> bool:
        placed = [g @ rotation.T + centre for g in group]
        atoms = np.concatenate([p.reshape(-1, 3) for p in placed])
        if np.linalg.norm(atoms, axis=1).max() > self.limit_radius:
            return False
        if self._tree is not None and self._tree.query(atoms)[0].min() < MIN_ATOM_DISTANCE:
            return False
        self.elements.extend((kind, p) for p in placed)
        self._atoms = np.concatenate([self._atoms, atoms])
        self._tree = cKDTree(self._atoms)
        return True


def _bundle_axes(rng: np.random.Generator,
                 semi_axes: np.ndarray) -> list[tuple[float, float, float]]:
    """Helix axes of a bundle filling an ellipsoid: ``(y, z, half-length)`` in the domain
    frame, on a hexagonal lattice of the (y, z) cross-section, in random order."""
    spacing = rng.uniform(HELIX_SPACING - 0.5, HELIX_SPACING + 0.5)
    _, b, c = semi_axes
    rows = int(np.ceil(c / (spacing * np.sqrt(3) / 2)))
    columns = int(np.ceil(b / spacing)) + 1
    axes = []
    for j in range(-rows, rows + 1):
        for i in range(-columns, columns + 1):
            y, z = (i + 0.5 * (j % 2)) * spacing, j * spacing * np.sqrt(3) / 2
            inside = 1.0 - (y / b) ** 2 - (z / c) ** 2
            if inside > 0:
                axes.append((y, z, semi_axes[0] * np.sqrt(inside)))
    return [axes[k] for k in rng.permutation(len(axes))]


def _fill_domain(rng: np.random.Generator, packer: _Packer, centre: np.ndarray,
                 semi_axes: np.ndarray) -> None:
    """Pack one domain: one or two β-sheets (40 % of domains), then helices on a
    hexagonal lattice across the domain (roughly along its long axis, up or down, tilted
    by about 10°) wherever they do not clash."""
    orientation = Rotation.random(random_state=rng).as_matrix()
    if rng.uniform() < 0.4:
        n_sheets = 1 + int(rng.uniform() < 0.5)
        for s in range(n_sheets):
            offset = orientation @ np.array([0.0, (s - (n_sheets - 1) / 2) * SHEET_SPACING, 0.0])
            for _ in range(_MAX_TRIES):
                strands = _sheet(rng, int(rng.integers(3, 7)))
                twist = Rotation.from_rotvec([rng.normal(0, 0.15), 0.0, 0.0]).as_matrix()
                if packer.try_place("s", strands, orientation @ twist, centre + offset):
                    break
    for y, z, half_length in _bundle_axes(rng, semi_axes):
        residues = int(np.clip(2.0 * half_length * rng.uniform(0.7, 1.0) / 1.5, 7, 40))
        helix = _ideal_element(residues, *HELIX_PHI_PSI)
        sense = rng.choice([-1.0, 1.0])
        for attempt in range(6):  # ever straighter: a tilted long helix may not fit
            spread = np.radians(12.0) * (1.0 - attempt / 6)
            tilt = Rotation.from_rotvec(rng.normal(size=3) * spread).as_matrix()
            direction = orientation @ tilt @ np.array([sense, 0.0, 0.0])
            position = orientation @ np.array([rng.normal(0, 1.5), y, z])
            if packer.try_place("h", [helix], _frame_to(direction, rng.uniform(0, 2 * np.pi)),
                                centre + position):
                break


def _domain_centres(rng: np.random.Generator, radii: list[float],
                    particle_radius: float) -> list[np.ndarray]:
    """Centres of touching domains (each next to an earlier one) inside the particle."""
    centres = [np.zeros(3)]
    for r in radii[1:]:
        for _ in range(_MAX_TRIES):
            k = int(rng.integers(len(centres)))
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            candidate = centres[k] + direction * 0.9 * (radii[k] + r)
            clear = all(np.linalg.norm(candidate - c) >= 0.85 * (radii[j] + r)
                        for j, c in enumerate(centres))
            if clear and np.linalg.norm(candidate) + r <= particle_radius:
                centres.append(candidate)
                break
    return centres


def _structure(elements: list[tuple[str, np.ndarray]], b_core: float, b_surface: float,
               rng: np.random.Generator) -> gemmi.Structure:
    structure = gemmi.Structure()
    structure.name = "phantom"
    model = gemmi.Model("1")
    atoms = np.concatenate([coords.reshape(-1, 3) for _, coords in elements])
    centre = atoms.mean(axis=0)
    reach = np.linalg.norm(atoms - centre, axis=1).max() or 1.0
    counts = {"h": 0, "s": 0}
    for kind, coords in elements:
        counts[kind] += 1
        chain = gemmi.Chain(f"{kind}{counts[kind]}")
        for i, residue_xyz in enumerate(coords):
            residue = gemmi.Residue()
            residue.name = "ALA"
            residue.seqid = gemmi.SeqId(i + 1, " ")
            residue.entity_type = gemmi.EntityType.Polymer
            depth = np.linalg.norm(residue_xyz[1] - centre) / reach
            b_residue = b_core + (b_surface - b_core) * depth**2 + rng.normal(0, 2.0)
            for name, xyz in zip(_ATOMS, residue_xyz):
                atom = gemmi.Atom()
                atom.name = name
                atom.element = gemmi.Element(name[0])
                atom.pos = gemmi.Position(*xyz)
                atom.occ = 1.0
                atom.b_iso = float(max(2.0, b_residue + (5.0 if name == "CB" else 0.0)))
                residue.add_atom(atom)
            chain.add_residue(residue)
        model.add_chain(chain)
    structure.add_model(model)
    structure.setup_entities()
    return structure


def build_model(rng: np.random.Generator, particle_radius: float,
                centre: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> gemmi.Structure:
    """A protein-like model of 1 to 16 domains that fits in a sphere.

    Args:
        rng: the random generator (the model is a deterministic function of its state).
        particle_radius: Å; every atom lies within this distance of ``centre``.
        centre: the sphere's centre, (x, y, z) Å.

    Returns:
        A gemmi Structure (one model; one chain per helix ``h<k>`` or strand ``s<k>``;
        alanine residues N, CA, C, O, CB with B-factors set per atom).

    Raises:
        ValueError: ``particle_radius`` below 10 Å (too small to hold a helix).
    """
    if particle_radius < 10.0:
        raise ValueError(f"a phantom particle needs a radius of at least 10 Å, "
                         f"got {particle_radius:.3g} Å")
    largest = min(float(rng.uniform(12.0, 25.0)), particle_radius)
    crowd = (particle_radius / largest) ** 3 * rng.uniform(0.6, 1.2)
    n_domains = int(np.clip(round(crowd), 1, MAX_DOMAINS))
    radii = [largest] + [float(rng.uniform(0.6, 1.0) * largest) for _ in range(n_domains - 1)]
    centres = _domain_centres(rng, radii, particle_radius)
    packer = _Packer(particle_radius)
    for c, r in zip(centres, radii):
        semi_axes = np.sort(r * rng.uniform(0.6, 1.0, size=3))[::-1] * np.array([1.4, 1, 1])
        _fill_domain(rng, packer, c, np.minimum(semi_axes, r * 1.4))
    if not packer.elements:  # nothing fitted: a short helix at the centre always does
        packer.try_place("h", [_ideal_element(8, *HELIX_PHI_PSI)], np.eye(3), np.zeros(3))
    structure = _structure(packer.elements, float(rng.uniform(15, 30)),
                           float(rng.uniform(40, 80)), rng)
    shift = gemmi.Transform()
    shift.vec.fromlist(list(centre))
    structure[0].transform_pos_and_adp(shift)
    return structure


__all__ = ["HELIX_PHI_PSI", "STRAND_PHI_PSI", "backbone", "build_model"]
