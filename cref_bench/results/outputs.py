"""The denoised maps a run keeps, so that anyone can re-score its records.

``<out>/outputs/<entry>.zarr`` is a zarr group holding the method's checked output for one
entry: ``full`` and, where the method made them, ``half1`` and ``half2`` (float32, Blosc lz4
with bit shuffle, as the corpus store), and attributes ``voxel_size``, ``origin`` (Å,
``(z, y, x)``), ``note`` and ``sha256`` (of each array's float32 little-endian bytes). It is
written under a temporary name and moved into place, so it is whole or absent. The entry
record keeps the same digests (``outputs``), so a kept output that was changed is named by
``cref-bench check --recompute`` (:func:`read_outputs` refuses it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from cref_bench.errors import ResultsError
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import Denoised

OUTPUTS_FOLDER = "outputs"
NAMES = ("full", "half1", "half2")


def outputs_path(out: str | os.PathLike, entry_id: str) -> Path:
    """Where the kept output of one entry lives: ``<out>/outputs/<entry>.zarr``."""
    return Path(out) / OUTPUTS_FOLDER / f"{entry_id}.zarr"


def _sha256(data: np.ndarray) -> str:
    data = np.ascontiguousarray(data, dtype="<f4")
    return hashlib.sha256(memoryview(data.reshape(-1)).cast("B")).hexdigest()


def write_outputs(out: str | os.PathLike, entry_id: str, denoised: Denoised) -> dict[str, str]:
    """Keep a method's checked output for one entry.

    Args:
        out: the results folder.
        entry_id: the entry.
        denoised: the checked output (its maps share one grid).

    Returns:
        The sha256 of each kept map, by name (for the entry record).

    Raises:
        OSError: the folder cannot be written.
    """
    target = outputs_path(out, entry_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    group = zarr.open_group(str(temporary), mode="w")
    digests = {}
    for name in NAMES:
        volume = getattr(denoised, name)
        if volume is None:
            continue
        group.create_array(name, data=np.ascontiguousarray(volume.data, dtype=np.float32),
                           chunks=volume.shape,
                           compressors=BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle"))
        digests[name] = _sha256(volume.data)
    group.attrs.update({"voxel_size": list(denoised.full.voxel_size),
                        "origin": list(denoised.full.origin), "note": denoised.note,
                        "sha256": digests})
    if target.exists():
        shutil.rmtree(target)
    os.replace(temporary, target)
    return digests


def read_outputs(out: str | os.PathLike, entry_id: str, expected: dict[str, str]) -> Denoised:
    """The kept output of one entry, checked against the digests its record holds.

    Args:
        out: the results folder.
        entry_id: the entry.
        expected: the record's ``outputs`` (sha256 by map name).

    Returns:
        The :class:`~cref_bench.methods.protocol.Denoised` that was scored.

    Raises:
        ResultsError: no kept output, another set of maps, or a map whose bytes differ from
            the record's digest.
    """
    path = outputs_path(out, entry_id)
    try:
        group = zarr.open_group(str(path), mode="r")
    except (FileNotFoundError, zarr.errors.NodeNotFoundError):
        raise ResultsError(str(path), "no kept output (the run was made with outputs "
                           "off, or the file was removed)") from None
    attrs = group.attrs.asdict()
    names = [n for n in NAMES if n in group]
    if set(names) != set(expected):
        raise ResultsError(str(path), f"holds {names}, but the record scored "
                           f"{sorted(expected)}")
    maps = {}
    for name in names:
        data = np.asarray(group[name][...], dtype=np.float32)
        if _sha256(data) != expected[name]:
            raise ResultsError(str(path), f"the kept {name} map differs from the one the "
                               "record was scored on (its digest does not match)")
        maps[name] = Volume(data, attrs["voxel_size"], attrs["origin"],
                            f"{path}/{name}")
    return Denoised(full=maps["full"], half1=maps.get("half1"), half2=maps.get("half2"),
                    note=str(attrs.get("note", "")))
