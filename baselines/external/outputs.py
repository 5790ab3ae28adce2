"""Reading an external program's output maps back, onto the grid of the input.

A map on the input's shape is taken on the input grid whatever its header says (programs that
do not carry the header over write 1 Å or nothing); one on another grid that spans the same
box (an upsampled or resampled output) is Fourier-resampled onto the input grid
(:func:`baselines.resampling.fourier_resample`), with a note; one spanning another box fails.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from baselines.external.program import ProgramFailed, quote_tail
from baselines.resampling import fourier_resample
from cref_bench.errors import MapError
from cref_bench.maps.volume import Volume

GRID_RTOL = 1e-4
"""Voxel sizes within this relative tolerance are equal (as :meth:`Volume.check_same_grid`)."""


def onto_grid(volume: Volume, like: Volume, what: str) -> tuple[Volume, str]:
    """Put a program's output map on the grid of the input.

    Same shape: the data as they are, with the input's geometry (another voxel size or origin
    in the program's header is noted). Another shape over the same box (each axis's extent
    within half a voxel, the larger of the two): Fourier-resampled, with a note.

    Args:
        volume: the map the program wrote.
        like: an input map (its grid is the target).
        what: the map's name for the note (``"full map"``, ``"half1"``, ...).

    Returns:
        ``(map on the input grid, note)``; the note is ``""`` when nothing was done.

    Raises:
        ProgramFailed: the map spans another box (cropped, padded or misread).
    """
    shape_out, shape_in = volume.shape, like.shape
    size_out, size_in = np.asarray(volume.voxel_size), np.asarray(like.voxel_size)
    if shape_out == shape_in:
        moved = np.any(np.abs(np.subtract(volume.origin, like.origin)) / size_in >= 0.5)
        scaled = not np.allclose(size_out, size_in, rtol=GRID_RTOL, atol=0)
        note = ""
        if moved or scaled:
            note = (f"the program's {what} has the input's shape but "
                    + " and ".join(w for w, on in (
                        (f"voxel size {_triple(volume.voxel_size)} Å", scaled),
                        (f"origin {_triple(volume.origin)} Å", moved)) if on)
                    + f" (the input: {_triple(like.voxel_size)} Å, origin "
                      f"{_triple(like.origin)} Å): taken on the input grid")
        return like.like(volume.data, source=volume.source), note
    extent_out = np.multiply(shape_out, size_out)
    extent_in = np.multiply(shape_in, size_in)
    tolerance = 0.5 * np.maximum(size_out, size_in) * (1 + 1e-3)
    grid_words = (f"{'x'.join(map(str, shape_out))} voxels of {_triple(volume.voxel_size)} Å "
                  f"(a box of {_triple(extent_out)} Å); the input is "
                  f"{'x'.join(map(str, shape_in))} voxels of {_triple(like.voxel_size)} Å "
                  f"({_triple(extent_in)} Å)")
    if np.any(np.abs(extent_out - extent_in) > tolerance):
        raise ProgramFailed(volume.source, f"the {what} is {grid_words}: another box, which "
                                           "Fourier cropping or padding cannot bring back")
    data = fourier_resample(volume.data, shape_in)
    scale = np.max(np.abs(extent_out / extent_in - 1))
    note = (f"the program's {what} is {grid_words}; it was Fourier-"
            f"{'cropped' if np.prod(shape_out) > np.prod(shape_in) else 'padded'} onto the "
            "input grid for scoring")
    if scale > 1e-6:
        note += f" (the two boxes differ by {100 * scale:.2g} % in size)"
    return like.like(data, source=volume.source), note


def _triple(values) -> str:
    return ", ".join(f"{v:.4g}" for v in values)


def read_output(path: Path, like: Volume, what: str, workdir: Path,
                tail: list[str], label: str) -> tuple[Volume, list[str]]:
    """A program's output map, on the input grid.

    Args:
        path: where the program was to write it.
        like: an input map (its grid is the target).
        what: the map's name for messages and notes (``"full map"``, ``"denoised half1"``).
        workdir: the program's working folder (listed when the map is missing).
        tail: the program's last lines of output (quoted in a failure).
        label: the program's name in messages.

    Returns:
        ``(map, notes)``: the notes say what was done (read permissively, resampled).

    Raises:
        ProgramFailed: the map is missing, unreadable even permissively, spans another box,
            or has non-finite voxels.
    """
    from cref_bench.maps.io import read_map

    if not path.is_file():
        present = sorted(p.name for p in workdir.iterdir()) if workdir.is_dir() else []
        listing = ", ".join(present[:20]) + (", ..." if len(present) > 20 else "") or "nothing"
        raise ProgramFailed(label, f"exited with status 0 but wrote no {what} at {path} (its "
                                   f"working folder holds: {listing}){quote_tail(tail)}")
    notes = []
    try:
        volume = read_map(path)
    except MapError as strict:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                volume = read_map(path, permissive=True)
        except MapError:
            raise ProgramFailed(label, f"wrote a {what} that cannot be read: "
                                       f"{strict}{quote_tail(tail)}") from strict
        notes.append(f"its {what} was read permissively ("
                     + "; ".join(str(w.message) for w in caught) + ")")
    try:
        volume, note = onto_grid(volume, like, what)
    except ProgramFailed as exc:
        raise ProgramFailed(label, f"{exc}{quote_tail(tail)}") from None
    bad = int(volume.data.size - np.count_nonzero(np.isfinite(volume.data)))
    if bad:
        raise ProgramFailed(label, f"its {what} has {bad} non-finite voxel(s){quote_tail(tail)}")
    return volume, notes + ([note] if note else [])


__all__ = ["GRID_RTOL", "onto_grid", "read_output"]
