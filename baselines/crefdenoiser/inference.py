"""Running the crefDenoiser network on a whole map, in one piece or in overlapping tiles.

The published recipe (:func:`denoise_array`): standardise the map (mean and standard
deviation over the box), pad every axis *at its end* with zeros up to a multiple of 32, run
the network, keep ``[:n]`` of each axis, and rescale the output so that it has the input's
mean and standard deviation. (``padding="symmetric"`` instead splits the padding over both
ends, mirroring the map: numpy's ``'symmetric'`` mode, what cref-bench did before version 2
of the method.)

The network runs as :func:`~baselines.crefdenoiser.lean.lean_forward`, which needs about
:data:`~baselines.crefdenoiser.lean.BYTES_PER_VOXEL` bytes per voxel plus its slabs.

Tiling (:func:`run_network`) bounds the memory of a map larger than that. The padded map is
cut into *cores*, blocks of ``tile`` voxels per side (the last along an axis may be shorter),
each run with a *margin* of ``margin`` voxels of context on every side (clipped at the map's
edge), and only the core of each output is kept. Cores and margins are multiples of 32, so
every window starts on the network's pooling grid and its pooling cells are those of the
whole map; where a window meets the map's edge the network sees the same zero padding as in
one piece. Hence tiled inference equals whole-map inference exactly (to rounding) once
``margin`` reaches the network's receptive radius for such aligned cores
(:data:`~baselines.crefdenoiser.network.ALIGNED_RECEPTIVE_RADIUS`, 128 voxels): the default
margin does. Smaller margins trade a deviation at the seams for less work; see docs/methods.md for
measured values.

With ``tile=None`` the core sides are chosen from a memory budget (:func:`choose_cores`):
the least total work whose largest window fits in ``memory_budget`` bytes
(:func:`window_bytes`); a map that fits runs in one piece.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from baselines.crefdenoiser.lean import (
    BYTES_PER_VOXEL,
    DEFAULT_SLAB_BYTES,
    MIN_SLAB_PLANES,
    lean_forward,
)
from baselines.crefdenoiser.network import (
    SIZE_MULTIPLE,
    CrefUNet,
    check_input_shape,
    check_multiple,
)
from baselines.crefdenoiser.settings import (
    DEFAULT_MARGIN,
    DEFAULT_MEMORY_BUDGET,
    check_padding,
)


@dataclass(frozen=True)
class Tile:
    """One tile of a tiled pass: the window run through the network and the core kept.

    Attributes:
        window: slices of the (padded) map fed to the network.
        core: slices of the map whose output this tile provides.
    """

    window: tuple[slice, slice, slice]
    core: tuple[slice, slice, slice]

    def core_in_window(self) -> tuple[slice, slice, slice]:
        """The core's slices relative to the window."""
        return tuple(slice(c.start - w.start, c.stop - w.start)
                     for c, w in zip(self.core, self.window))


def check_tiling(tile: int | None, margin: int) -> None:
    """Refuse tiling settings the network cannot use.

    Args:
        tile: the core side, or ``None`` (chosen from the memory budget).
        margin: the context on each side of a core.

    Raises:
        ValueError: ``tile`` is not a positive multiple of 32, or ``margin`` not a
            non-negative one.
    """
    if tile is not None:
        check_multiple("tile", tile, positive=True)
    check_multiple("margin", margin)


def window_bytes(shape: tuple[int, int, int], slab_bytes: int = DEFAULT_SLAB_BYTES) -> int:
    """About how many bytes the lean forward pass of one window of ``shape`` needs.

    The whole-map tensors (:data:`~baselines.crefdenoiser.lean.BYTES_PER_VOXEL` per voxel)
    plus two slabs (one being built while the previous one's inputs are alive), a slab at
    least :data:`~baselines.crefdenoiser.lean.MIN_SLAB_PLANES` full-resolution planes of
    32 float32 channels.

    Args:
        shape: the window's shape.
        slab_bytes: the lean pass's slab size.

    Returns:
        The estimate in bytes.
    """
    plane = shape[1] * shape[2]
    slab = max(slab_bytes, MIN_SLAB_PLANES * plane * 32 * 4)
    return BYTES_PER_VOXEL * math.prod(shape) + 2 * slab


def _axis_windows(n: int, core: int, margin: int) -> list[int]:
    """Window lengths along one axis of ``n`` voxels cut into cores of ``core``."""
    return [min(n, start + core + margin) - max(0, start - margin) for start in range(0, n, core)]


def choose_cores(shape: tuple[int, int, int], margin: int = DEFAULT_MARGIN,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET) -> tuple[int, int, int]:
    """The core sides for a map of ``shape`` that need the least work within a memory budget.

    Every combination of core sides (multiples of 32, one per axis) is considered; among
    those whose largest window fits ``memory_budget`` (:func:`window_bytes`) the one with the
    fewest window voxels in all (the network's work) wins, ties going to fewer tiles. The
    whole map is one core when it fits. When nothing fits, the smallest cores (32) are
    returned.

    Args:
        shape: the padded map's shape, sides multiples of 32.
        margin: the context on each side of a core, a multiple of 32.
        memory_budget: bytes allowed for one window's forward pass.

    Returns:
        The core side along each axis (multiples of 32).

    Raises:
        ValueError: a side or the margin is not a multiple of 32.
    """
    check_input_shape(tuple(shape))
    check_multiple("margin", margin)
    options = []
    for n in shape:
        axis = []
        for core in range(SIZE_MULTIPLE, n + 1, SIZE_MULTIPLE):
            windows = _axis_windows(n, core, margin)
            axis.append((core, sum(windows), max(windows), len(windows)))
        options.append(axis)
    best, best_key = (SIZE_MULTIPLE,) * 3, None
    for combo in itertools.product(*options):
        if window_bytes(tuple(o[2] for o in combo)) > memory_budget:
            continue
        key = (math.prod(o[1] for o in combo), math.prod(o[3] for o in combo))
        if best_key is None or key < best_key:
            best, best_key = tuple(o[0] for o in combo), key
    return best


def plan_tiles(shape: tuple[int, int, int], cores: tuple[int, int, int] | int,
               margin: int = DEFAULT_MARGIN) -> list[Tile]:
    """Cut a map into cores with their context windows.

    Args:
        shape: the padded map's shape, sides multiples of 32.
        cores: the core side, one for all axes or one per axis, multiples of 32.
        margin: context voxels on each side of a core (clipped at the map's edge), a
            multiple of 32.

    Returns:
        The tiles; their cores partition the map.

    Raises:
        ValueError: a side, core or the margin is not a positive multiple of 32.
    """
    check_input_shape(tuple(shape))
    check_multiple("margin", margin)
    cores = (cores,) * 3 if isinstance(cores, int) else tuple(cores)
    for core in cores:
        check_multiple("tile", core, positive=True)
    per_axis = []
    for n, core in zip(shape, cores):
        axis = []
        for start in range(0, n, core):
            stop = min(n, start + core)
            axis.append((slice(max(0, start - margin), min(n, stop + margin)), slice(start, stop)))
        per_axis.append(axis)
    return [Tile(window=tuple(w for w, _ in combo), core=tuple(c for _, c in combo))
            for combo in itertools.product(*per_axis)]


def run_tiles(forward: Callable[[torch.Tensor], torch.Tensor], data: np.ndarray,
              tiles: list[Tile], *, device: str | torch.device = "cpu",
              progress: bool = True) -> np.ndarray:
    """Run ``forward`` on each tile's window and keep each core's output.

    Args:
        forward: maps a ``(1, 1, D, H, W)`` float32 tensor on ``device`` to one of the same
            shape.
        data: the map, 3D.
        tiles: the tiles, their cores a partition of the map.
        device: where to run.
        progress: show a progress bar (when there is more than one tile).

    Returns:
        A new float32 array of ``data``'s shape.
    """
    out = None
    for item in tqdm(tiles, desc="crefDenoiser tiles", unit="tile",
                     disable=not progress or len(tiles) == 1):
        window = torch.from_numpy(np.ascontiguousarray(data[item.window], dtype=np.float32))
        with torch.inference_mode():
            result = forward(window[None, None].to(device))[0, 0][item.core_in_window()]
            if len(tiles) == 1:  # the whole map: the result is the output
                return np.ascontiguousarray(result.cpu().numpy(), dtype=np.float32)
            if out is None:
                out = np.empty(data.shape, dtype=np.float32)
            out[item.core] = result.cpu().numpy()
        del window, result
    return out


def run_network(model: CrefUNet, data: np.ndarray, *, tile: int | None = None,
                margin: int = DEFAULT_MARGIN, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                progress: bool = True) -> np.ndarray:
    """The network's raw output for a map whose sides are multiples of 32, tile by tile.

    Args:
        model: the network (its parameters are copied to ``device`` for the pass).
        data: the standardised, padded map, 3D, sides multiples of 32.
        tile: the core side (a multiple of 32); ``None`` chooses it from ``memory_budget``.
            A tile at least as large as the map runs it in one piece.
        margin: context voxels around each core, a multiple of 32.
        memory_budget: bytes allowed per window when ``tile`` is ``None``.
        device: where to run the network.
        dtype: the computation's type (see :func:`~baselines.crefdenoiser.lean.lean_forward`).
        progress: show a progress bar over the tiles (when there is more than one).

    Returns:
        A new float32 array of ``data``'s shape.

    Raises:
        ValueError: a side, the tile or the margin is not a multiple of 32.
    """
    check_tiling(tile, margin)
    shape = tuple(data.shape)
    cores = choose_cores(shape, margin, memory_budget) if tile is None else (tile,) * 3
    tiles = plan_tiles(shape, cores, margin)
    return run_tiles(lambda window: lean_forward(model, window, dtype=dtype), data, tiles,
                     device=device, progress=progress)


def standardise(data: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Standardise a map to mean 0 and standard deviation 1 over the box.

    Args:
        data: the map.

    Returns:
        ``(standardised float32 copy, mean, standard deviation)``.

    Raises:
        ValueError: the map is constant or not finite (no standard deviation to divide by).
    """
    mean = float(np.mean(data, dtype=np.float64))
    std = float(np.std(data, dtype=np.float64))
    if not (np.isfinite(mean) and np.isfinite(std)) or std == 0:
        raise ValueError(f"cannot standardise a map with mean {mean} and standard deviation {std}")
    out = np.subtract(data, np.float32(mean), dtype=np.float32)
    out *= np.float32(1.0 / std)
    return out, mean, std


def pad_to_multiple(data: np.ndarray, multiple: int = SIZE_MULTIPLE, padding: str = "end"
                    ) -> tuple[np.ndarray, tuple[slice, slice, slice]]:
    """Pad each axis to a multiple of ``multiple``.

    Args:
        data: a 3D map.
        multiple: the side multiple wanted.
        padding: ``"end"``: zeros after the map on each axis (the published recipe);
            ``"symmetric"``: split evenly over both ends (the extra voxel of an odd amount
            after the map), mirrored with the edge voxel repeated (numpy ``'symmetric'``).

    Returns:
        ``(padded, crop)``: the padded map (``data`` itself when no padding is needed) and
        the slices that cut the original box back out of it.

    Raises:
        ValueError: ``padding`` is not one of
            :data:`~baselines.crefdenoiser.settings.PADDINGS`.
    """
    check_padding(padding)
    extra = [(-n) % multiple for n in data.shape]
    pads = [(0, e) if padding == "end" else (e // 2, e - e // 2) for e in extra]
    crop = tuple(slice(before, before + n) for (before, _), n in zip(pads, data.shape))
    if not any(extra):
        return data, crop
    if padding == "end":
        out = np.zeros([n + e for n, e in zip(data.shape, extra)], dtype=data.dtype)
        out[crop] = data
        return out, crop
    return np.pad(data, pads, mode="symmetric"), crop


def denoise_array(model: CrefUNet, data: np.ndarray, *, padding: str = "end",
                  tile: int | None = None, margin: int = DEFAULT_MARGIN,
                  memory_budget: int = DEFAULT_MEMORY_BUDGET,
                  device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                  progress: bool = True) -> np.ndarray:
    """Denoise one map with the published recipe (see the module docstring).

    Args:
        model: the network.
        data: the map, any 3D shape.
        padding: how to reach a multiple of 32 (:func:`pad_to_multiple`).
        tile, margin, memory_budget, device, dtype, progress: as for :func:`run_network`.

    Returns:
        The denoised map, float32, ``data``'s shape, with ``data``'s mean and standard
        deviation.

    Raises:
        ValueError: the map is not 3D, is constant or not finite; an unknown padding; the
            tile or margin is not a multiple of 32.
    """
    if data.ndim != 3:
        raise ValueError(f"a map must be 3D, got shape {data.shape}")
    check_tiling(tile, margin)
    standardised, mean, std = standardise(data)
    padded, crop = pad_to_multiple(standardised, padding=padding)
    del standardised
    raw = run_network(model, padded, tile=tile, margin=margin, memory_budget=memory_budget,
                      device=device, dtype=dtype, progress=progress)
    del padded
    out = raw if raw.shape == data.shape else np.ascontiguousarray(raw[crop])
    del raw
    out_mean = float(np.mean(out, dtype=np.float64))
    out_std = float(np.std(out, dtype=np.float64))
    if out_std == 0:  # a constant output cannot be given the input's spread
        out.fill(np.float32(mean))
        return out
    out -= np.float32(out_mean)
    out *= np.float32(std / out_std)
    out += np.float32(mean)
    return out
