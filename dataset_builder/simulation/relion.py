"""A simulated particle set in RELION's terms: Euler angles and STAR files.

RELION (3.1) describes a particle's orientation by Euler angles ``(rot, tilt, psi)`` in
degrees, ZYZ, in the convention of Heymann, Chagoyen and Belnap (2005, J. Struct. Biol. 151,
196): the matrix ``A(rot, tilt, psi)`` whose rows ``A[0]`` and ``A[1]`` are the directions, in
the map's ``(x, y, z)`` frame, of the image's ``x`` and ``y`` axes, so that the image's
transform at ``(kx, ky)`` is the map's at ``kx A[0] + ky A[1]``. That is this package's
rotation matrix (:mod:`.orientations`): :func:`euler_angles` turns one into the other.

:func:`write_particles_star` writes a particle set's orientations and CTF parameters as a
RELION 3.1 particle STAR file (one optics group); ``relion_project --ang`` simulates its
images and ``relion_reconstruct`` reconstructs them. :func:`write_fsc_star` writes an FSC
curve as ``relion_reconstruct --fsc`` reads it (``rlnSpectralIndex``, ``rlnGoldStandardFsc``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataset_builder.simulation.settings import SimulationSettings


def euler_matrices(angles: np.ndarray) -> np.ndarray:
    """``A(rot, tilt, psi)`` for ``(n, 3)`` angles in degrees: ``(n, 3, 3)``."""
    rot, tilt, psi = np.radians(np.asarray(angles, dtype=np.float64)).T
    ca, sa, cb, sb, cg, sg = (np.cos(rot), np.sin(rot), np.cos(tilt), np.sin(tilt),
                              np.cos(psi), np.sin(psi))
    return np.stack([
        np.stack([cg * cb * ca - sg * sa, cg * cb * sa + sg * ca, -cg * sb], axis=-1),
        np.stack([-sg * cb * ca - cg * sa, -sg * cb * sa + cg * ca, sg * sb], axis=-1),
        np.stack([sb * ca, sb * sa, cb], axis=-1)], axis=-2)


def euler_angles(rotations: np.ndarray) -> np.ndarray:
    """``(rot, tilt, psi)`` in degrees with ``A(rot, tilt, psi) = R`` for ``(n, 3, 3)``
    rotations (``psi = 0`` where ``tilt`` is 0 or 180°)."""
    r = np.asarray(rotations, dtype=np.float64)
    tilt = np.arccos(np.clip(r[:, 2, 2], -1.0, 1.0))
    general = np.sin(tilt) > 1e-9
    rot = np.where(general, np.arctan2(r[:, 2, 1], r[:, 2, 0]),
                   np.where(r[:, 2, 2] > 0, np.arctan2(r[:, 0, 1], r[:, 0, 0]),
                            np.arctan2(-r[:, 0, 1], -r[:, 0, 0])))
    psi = np.where(general, np.arctan2(r[:, 1, 2], -r[:, 0, 2]), 0.0)
    return np.degrees(np.stack([rot, tilt, psi], axis=1))


def write_particles_star(path: str | Path, rotations: np.ndarray, defocus: np.ndarray,
                         settings: SimulationSettings, stack: str = "particles.mrcs") -> Path:
    """A RELION 3.1 particle STAR file for a simulated particle set.

    Args:
        path: the file to write.
        rotations: ``(n, 3, 3)`` orientations (:func:`.entry.particle_parameters`).
        defocus: ``(n,)`` defocus, Å (underfocus positive; no astigmatism).
        settings: the optics (voltage, Cs, amplitude contrast, envelope B-factor as
            ``rlnCtfBfactor``), the box and the pixel size.
        stack: the image stack named in ``rlnImageName`` (``relion_project`` names its own).

    Returns:
        The path.
    """
    path = Path(path)
    angles = euler_angles(rotations)
    lines = ["", "# version 30001", "", "data_optics", "", "loop_"]
    labels = ["rlnOpticsGroup", "rlnOpticsGroupName", "rlnVoltage", "rlnSphericalAberration",
              "rlnAmplitudeContrast", "rlnImagePixelSize", "rlnImageSize",
              "rlnImageDimensionality"]
    lines += [f"_{label} #{k + 1}" for k, label in enumerate(labels)]
    lines.append(f"1 opticsGroup1 {settings.voltage_kv:.6f} {settings.cs_mm:.6f} "
                 f"{settings.amplitude_contrast:.6f} {settings.voxel_size:.6f} {settings.box} 2")
    lines += ["", "", "# version 30001", "", "data_particles", "", "loop_"]
    labels = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst",
              "rlnOriginYAngst", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle",
              "rlnCtfBfactor", "rlnOpticsGroup", "rlnImageName"]
    lines += [f"_{label} #{k + 1}" for k, label in enumerate(labels)]
    b_factor = settings.envelope_b if settings.ctf else 0.0
    for k, ((rot, tilt, psi), df) in enumerate(zip(angles, defocus)):
        lines.append(f"{rot:.6f} {tilt:.6f} {psi:.6f} 0 0 {df:.3f} {df:.3f} 0 {b_factor:.3f} 1 "
                     f"{k + 1:06d}@{stack}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_fsc_star(path: str | Path, fsc: np.ndarray) -> Path:
    """An FSC curve per shell index ``0 .. N/2`` as ``relion_reconstruct --fsc`` reads it."""
    path = Path(path)
    lines = ["", "data_fsc", "", "loop_", "_rlnSpectralIndex #1", "_rlnGoldStandardFsc #2"]
    lines += [f"{k} {float(v):.6f}" for k, v in enumerate(fsc)]
    path.write_text("\n".join(lines) + "\n")
    return path


__all__ = ["euler_angles", "euler_matrices", "write_fsc_star", "write_particles_star"]
