"""A flexible domain: which atoms move, how each particle's copy moves, and the mean it leaves.

In every particle the domain moves rigidly about its pivot ``c`` (the domain's centroid,
rounded to the nearest voxel): a rotation ``Q = exp([ω]×)`` with rotation vector
``ω ~ N(0, σ_θ² I)`` (``σ_θ`` in degrees per axis), then a translation ``t ~ N(0, σ_t² I)``
(``σ_t`` in Å per axis): an atom at ``x`` goes to ``c + Q (x − c) + t``.

The truth is the mean over particles. To first order in ``ω`` an atom of the domain at
``x`` is smeared by a Gaussian of covariance ``Σ = σ_t² I + σ_θ² (|r|² I − r rᵀ)``,
``r = x − c``, so the truth is the model map with ``Σ`` added to each domain atom's ADP
(anisotropic ``U``, Å², :func:`ensemble_structure`). The second-order pull of the mean
towards the pivot (``σ_θ² |r|``: 0.05 Å at 3° and 20 Å) is neglected.

The domain is a gemmi selection, or chosen automatically (:func:`select_domain`): the
units (chains or residues) whose centroids lie farthest along a random direction, until
they hold the asked fraction of the atoms, i.e. one side of the particle.
"""

from __future__ import annotations

from dataclasses import dataclass

import gemmi
import numpy as np
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class Flexibility:
    """How much the flexible domain moves, per particle (see the module docstring).

    Attributes:
        fraction: share of the atoms in an automatically chosen domain (0: rigid specimen).
        selection: a gemmi selection (e.g. ``"//A/111-360"``) naming the domain instead.
        shift_sd: ``σ_t``, Å per axis.
        angle_sd: ``σ_θ``, degrees per axis.
        by_chain: the automatic domain takes whole chains (the procedural models' chains
            are single helices or strands) rather than single residues.
    """

    fraction: float = 0.0
    selection: str | None = None
    shift_sd: float = 0.0
    angle_sd: float = 0.0
    by_chain: bool = True

    def __post_init__(self):
        if not 0.0 <= self.fraction < 1.0:
            raise ValueError(f"the flexible fraction must be in [0, 1), got {self.fraction}")
        if not (self.shift_sd >= 0.0 and self.angle_sd >= 0.0):
            raise ValueError(f"flexibility needs shift_sd >= 0 Å and angle_sd >= 0°, got "
                             f"{self.shift_sd} and {self.angle_sd}")

    @property
    def active(self) -> bool:
        """Whether some domain moves."""
        return (self.fraction > 0.0 or self.selection is not None) and \
            (self.shift_sd > 0.0 or self.angle_sd > 0.0)

    def motions(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` rigid-body motions: rotations ``(n, 3, 3)`` and translations ``(n, 3)`` Å."""
        omega = rng.normal(0.0, np.radians(self.angle_sd), size=(n, 3))
        shift = rng.normal(0.0, self.shift_sd, size=(n, 3))
        return Rotation.from_rotvec(omega).as_matrix(), shift


def _atom_xyz(model: gemmi.Model) -> np.ndarray:
    return np.array([cra.atom.pos.tolist() for cra in model.all()]).reshape(-1, 3)


def select_domain(structure: gemmi.Structure, flexibility: Flexibility,
                  rng: np.random.Generator) -> np.ndarray:
    """The atoms of the flexible domain, as a boolean mask in ``structure[0].all()`` order.

    Args:
        structure: the model.
        flexibility: the domain's definition (selection or automatic fraction).
        rng: draws the direction of an automatic domain.

    Returns:
        A boolean array, True for the domain's atoms.

    Raises:
        ValueError: the selection is malformed, selects no atom, or selects them all; an
            automatic domain would hold every atom.
    """
    model = structure[0]
    n_atoms = model.count_atom_sites()
    if flexibility.selection is not None:
        try:
            selection = gemmi.Selection(flexibility.selection)
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"flexible domain selection {flexibility.selection!r}: {error}") \
                from error
        numbered = gemmi.Structure()
        numbered.add_model(model)
        for k, cra in enumerate(numbered[0].all()):
            cra.atom.serial = k
        mask = np.zeros(n_atoms, dtype=bool)
        for chain in selection.chains(numbered[0]):
            for residue in selection.residues(chain):
                for atom in selection.atoms(residue):
                    mask[atom.serial] = True
    else:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        xyz = _atom_xyz(model)
        unit_of = []
        for i, chain in enumerate(model):
            for j, residue in enumerate(chain):
                unit_of.extend([(i, 0 if flexibility.by_chain else j)] * len(residue))
        units = {u: k for k, u in enumerate(dict.fromkeys(unit_of))}
        label = np.array([units[u] for u in unit_of])
        sizes = np.bincount(label)
        centroid = np.stack([np.bincount(label, weights=xyz[:, a]) for a in range(3)], 1)
        depth = (centroid / sizes[:, None]) @ direction
        taken = np.cumsum(sizes[np.argsort(-depth)])
        n_units = int(np.searchsorted(taken, flexibility.fraction * n_atoms)) + 1
        mask = np.isin(label, np.argsort(-depth)[:n_units])
    if not mask.any():
        raise ValueError(f"flexible domain {flexibility.selection or 'automatic'!r} holds "
                         f"no atom of {structure.name or 'the model'}")
    if mask.all():
        raise ValueError(f"flexible domain {flexibility.selection or 'automatic'!r} holds "
                         f"every atom of {structure.name or 'the model'}; nothing stays rigid")
    return mask


def split_structure(structure: gemmi.Structure, mask: np.ndarray
                    ) -> tuple[gemmi.Structure, gemmi.Structure]:
    """Two copies of the first model: the atoms where ``mask`` is False, and those where it
    is True (empty residues and chains removed)."""
    parts = []
    for keep in (False, True):
        copy = gemmi.Structure()
        copy.name = structure.name
        copy.cell = structure.cell
        copy.add_model(structure[0])
        flags = iter(mask)
        for chain in copy[0]:
            for residue in chain:
                drop = [i for i, _ in enumerate(residue) if bool(next(flags)) != keep]
                for i in reversed(drop):
                    del residue[i]
        copy.remove_empty_chains()
        copy.setup_entities()
        parts.append(copy)
    return parts[0], parts[1]


def pivot_of(domain: gemmi.Structure, origin_zyx, voxel_size: float) -> np.ndarray:
    """The domain's centroid rounded to the nearest voxel: ``(x, y, z)`` in Å."""
    xyz = _atom_xyz(domain[0]).mean(axis=0)
    origin_xyz = np.asarray(origin_zyx, dtype=np.float64)[::-1]
    return origin_xyz + np.round((xyz - origin_xyz) / voxel_size) * voxel_size


def ensemble_structure(domain: gemmi.Structure, pivot_xyz: np.ndarray,
                       flexibility: Flexibility) -> gemmi.Structure:
    """A copy of the domain whose ADPs carry the smear of its motion (module docstring).

    Each atom gets the anisotropic ``U = U_iso I + Σ`` (its own ADP, if anisotropic, in place
    of ``U_iso I``) and ``B_iso = 8π² λ_max(U)`` so that map margins cover its reach.

    Args:
        domain: the domain's atoms (rest position).
        pivot_xyz: the pivot, Å.
        flexibility: the motion's spread.

    Returns:
        A new structure.
    """
    copy = domain.clone()
    s_t2 = flexibility.shift_sd**2
    s_a2 = np.radians(flexibility.angle_sd) ** 2
    for cra in copy[0].all():
        atom = cra.atom
        r = np.array(atom.pos.tolist()) - pivot_xyz
        sigma = s_t2 * np.eye(3) + s_a2 * (r @ r * np.eye(3) - np.outer(r, r))
        if atom.aniso.nonzero():
            own = np.array(atom.aniso.as_mat33().tolist())
        else:
            own = atom.b_iso / (8 * np.pi**2) * np.eye(3)
        u = own + sigma
        atom.aniso = gemmi.SMat33f(u[0, 0], u[1, 1], u[2, 2], u[0, 1], u[0, 2], u[1, 2])
        atom.b_iso = float(8 * np.pi**2 * np.linalg.eigvalsh(u)[-1])
    return copy


__all__ = ["Flexibility", "ensemble_structure", "pivot_of", "select_domain", "split_structure"]
