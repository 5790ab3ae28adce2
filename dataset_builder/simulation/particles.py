"""Particle images in Fourier space, by the central-slice theorem, batch by batch.

Image ``p`` of a particle with orientation ``R_p``, defocus ``Δf_p`` and (flexible specimens)
domain motion ``(Q_p, t_p)`` is, at each image frequency ``k = (kx, ky)`` inside the Nyquist
circle,

    X_p(k) = CTF_p(k) · [F_core(q) + e^{−2πi q·(c + t_p)/N} F_dom(Q_pᵀ q)] + n_p(k),
    q = kx R_p[0] + ky R_p[1]

with ``F_core`` and ``F_dom`` (centred on the pivot ``c``) read by trilinear interpolation
from oversampled transforms (:func:`.specimen.oversampled_transform`), and ``n_p`` white
complex Gaussian noise of power ``σ²`` per coefficient. Real images are Hermitian, so each
image is kept as one member of every Friedel pair: the points with ``kx > 0``, those with
``kx = 0, ky > 0``, and the mean (frequency 0). The noise of white real-space noise of
variance ``σ_px²`` per pixel has, in the transform of an ``N x N`` image, exactly this
distribution with ``σ² = N² σ_px²``; it is drawn in Fourier space directly (no image is
ever transformed). The noise is drawn with numpy (SFC64, the fastest of its generators),
in parallel chunks.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from dataset_builder.simulation import _kernels
from dataset_builder.simulation.ctf import Microscope
from dataset_builder.simulation.reconstruction import FourierReconstructor

NOISE_CHUNKS = 8
"""Chunks (each its own generator) a batch's noise is drawn in."""


@dataclass(frozen=True, eq=False)
class ImagePoints:
    """The Fourier points of an ``N x N`` image that a particle contributes.

    Attributes:
        n: image edge, pixels.
        voxel_size: Å per pixel.
        kx, ky: float64 integer frequencies (index units) of the points.
        s2: squared spatial frequency, 1/Å².
    """

    n: int
    voxel_size: float
    kx: np.ndarray
    ky: np.ndarray
    s2: np.ndarray

    @classmethod
    def of(cls, n: int, voxel_size: float) -> ImagePoints:
        """The points strictly inside the Nyquist circle: ``kx > 0``, or ``kx = 0`` and
        ``ky >= 0`` (the mean included)."""
        k = np.fft.fftfreq(n, 1.0 / n)
        ky, kx = np.meshgrid(k, np.arange(n // 2 + 1, dtype=np.float64), indexing="ij")
        keep = (kx**2 + ky**2 < (n / 2) ** 2) & ((kx > 0) | (ky >= 0))
        kx, ky = kx[keep], ky[keep]
        s2 = (kx**2 + ky**2) / (n * voxel_size) ** 2
        return cls(int(n), float(voxel_size), kx, ky, s2)

    @property
    def size(self) -> int:
        """How many points."""
        return int(self.kx.size)

    def full_grid_count(self) -> np.ndarray:
        """Weight of each point in the full ``N x N`` transform (2, the mean 1)."""
        return np.where((self.kx == 0) & (self.ky == 0), 1.0, 2.0)


@dataclass
class Batch:
    """What a batch of particles draws: orientations, defocus, domain motion."""

    rotations: np.ndarray
    defocus: np.ndarray
    domain_rotations: np.ndarray
    domain_shifts: np.ndarray


def children(seed: np.random.SeedSequence, count: int) -> list[np.random.SeedSequence]:
    """The first ``count`` children of ``seed`` (as its first ``spawn(count)`` gives), whatever
    it has spawned before: a function of ``seed``'s entropy and spawn key only."""
    return [np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, k),
                                   pool_size=seed.pool_size) for k in range(count)]


def standard_normals(seed: np.random.SeedSequence, shape: tuple[int, int],
                     executor: Executor | None = None) -> np.ndarray:
    """float32 standard normals of ``shape`` (rows split in :data:`NOISE_CHUNKS` chunks, each
    from its own generator (SFC64), a child of ``seed``, drawn in parallel when an executor is
    given;
    the values depend on ``seed`` only, not on the threads).

    Args:
        seed: the seed sequence of the draw.
        shape: ``(rows, columns)``.
        executor: threads to draw the chunks with (numpy releases the GIL while drawing).

    Returns:
        A new float32 array.
    """
    out = np.empty(shape, np.float32)
    bounds = np.linspace(0, shape[0], NOISE_CHUNKS + 1).astype(int)

    def fill(k_child):
        k, child = k_child
        np.random.Generator(np.random.SFC64(child)).standard_normal(
            out=out[bounds[k]:bounds[k + 1]], dtype=np.float32)

    chunks = list(enumerate(children(seed, NOISE_CHUNKS)))
    if executor is None:
        for chunk in chunks:
            fill(chunk)
    else:
        list(executor.map(fill, chunks))
    return out


def ctf_table(microscope: Microscope | None, points: ImagePoints,
              defocus: np.ndarray) -> np.ndarray:
    """The CTF of every point of every particle of a batch.

    Args:
        microscope: the optics, or None for no CTF (all ones).
        points: the image points.
        defocus: ``(B,)`` defocus per particle, Å.

    Returns:
        float32 ``(B, M)``: ``-sin(χ + arcsin A) · envelope`` (:mod:`.ctf`); the phase is
        computed in float64 and its sine in float32 (error below 1e-4 for phases up to
        1000 rad).
    """
    if microscope is None:
        return np.ones((defocus.size, points.size), np.float32)
    chi_a, chi_b = microscope.phase_terms(points.s2)
    phase = np.multiply.outer(np.asarray(defocus, np.float64), chi_a)
    phase -= chi_b
    table = np.sin(phase.astype(np.float32))
    table *= -microscope.envelope(points.s2).astype(np.float32)
    return table


def _chunks(total: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ranges covering ``0 .. total - 1`` (some may be empty)."""
    edges = np.linspace(0, total, parts + 1).astype(int)
    return list(zip(edges[:-1], edges[1:]))


def _phase_tiles(tiles_y: int, tiles_z: int) -> list[np.ndarray]:
    """Tile ids of each of the four phases (by parity of the y and z tile indices)."""
    ty, tz = np.divmod(np.arange(tiles_y * tiles_z), tiles_z)
    return [np.flatnonzero((ty % 2 == a) & (tz % 2 == b)) for a in (0, 1) for b in (0, 1)]


def _balanced(selected: np.ndarray, bounds: np.ndarray, parts: int) -> list[np.ndarray]:
    """``selected`` cut into up to ``parts`` runs holding about equal numbers of points."""
    sizes = np.cumsum(bounds[selected + 1] - bounds[selected])
    if sizes.size == 0 or sizes[-1] == 0:
        return []
    cuts = np.searchsorted(sizes, np.linspace(0, sizes[-1], parts + 1)[1:-1], side="right")
    return [run for run in np.split(selected, cuts) if run.size]


def add_particles(reconstructor: FourierReconstructor, core: np.ndarray, domain: np.ndarray,
                  batch: Batch, points: ImagePoints, microscope: Microscope | None,
                  noise_sigma: float, noise: np.ndarray | None,
                  executor: Executor | None = None, threads: int = 1) -> None:
    """Simulate a batch of particles and grid them into ``reconstructor``.

    The three steps of :mod:`._kernels` run on ``threads`` threads of ``executor`` (each
    waits for the last to finish; waiting threads sleep), or in this thread. The sums do
    not depend on the threads.

    Args:
        reconstructor: the numerator and weight grids (oversampled like ``core``).
        core: oversampled transform of the rigid part (or of the whole specimen).
        domain: oversampled transform of the flexible domain, centred on its pivot, or an
            array of shape ``(1, 1, 1)`` when there is none.
        batch: the particles' draws; ``domain_shifts`` in voxels (pivot plus translation).
        points: the image points.
        microscope: the optics, or None for no CTF (CTF = 1).
        noise_sigma: ``σ``, noise amplitude per Fourier coefficient (0: no noise).
        noise: ``(B · M, 2)`` float32 standard normals (:func:`standard_normals`), or None
            without noise.
        executor: threads to run the kernels on (None: this thread).
        threads: how many of its threads to use.

    Raises:
        ValueError: the transform and the grids differ in shape, or the noise has the wrong
            shape.
    """
    b, m = batch.rotations.shape[0], points.size
    if core.shape != reconstructor.numerator.shape:
        raise ValueError(f"specimen transform {core.shape} and reconstruction grid "
                         f"{reconstructor.numerator.shape} differ")
    if noise is None or noise_sigma == 0:
        noise, noise_sigma = np.zeros((1, 2), np.float32), 0.0
    elif noise.shape != (b * m, 2):
        raise ValueError(f"noise of shape {noise.shape} for {b} particles of {m} points")
    threads = max(1, int(threads)) if executor is not None else 1

    def run(fn, jobs):
        if executor is None:
            for job in jobs:
                fn(*job)
        else:
            list(executor.map(lambda job: fn(*job), jobs))

    size = reconstructor.numerator.shape[0]
    tiles_y, tiles_z, tile_of_z = _kernels.tile_counts(size)
    pad = float(reconstructor.pad)
    rotations = np.ascontiguousarray(batch.rotations, dtype=np.float64)
    tiles = np.empty((b, m), np.int32)
    counts = np.zeros((b, tiles_y * tiles_z), np.int32)
    ranges = [r for r in _chunks(b, threads) if r[1] > r[0]]
    run(lambda lo, hi: _kernels.tile_points(rotations[lo:hi], points.kx, points.ky, pad,
                                             tile_of_z, tiles[lo:hi], counts[lo:hi]), ranges)
    offsets = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts.T, axis=None, dtype=np.int64, out=offsets[1:])
    order_p = np.empty(b * m, np.int32)
    order_m = np.empty(b * m, np.int32)
    run(lambda lo, hi: _kernels.order_points(tiles[lo:hi], offsets, lo, b, order_p, order_m),
        ranges)
    bounds = offsets[::b].copy()
    ctf = ctf_table(microscope, points, batch.defocus)
    grids = (core.view(np.float32), domain.view(np.float32),
             reconstructor.numerator.view(np.float32), reconstructor.weight, rotations,
             np.ascontiguousarray(batch.domain_rotations, dtype=np.float64),
             np.ascontiguousarray(batch.domain_shifts, dtype=np.float64), ctf, noise,
             points.kx, points.ky, pad, float(noise_sigma / np.sqrt(2.0)))
    for selected in _phase_tiles(tiles_y, tiles_z):
        runs = _balanced(selected, bounds, 2 * threads if threads > 1 else 1)
        run(lambda tiles_run: _kernels.insert_tiles(tiles_run, bounds, order_p, order_m,
                                                    *grids), [(r,) for r in runs])
    reconstructor.particles += b


__all__ = ["NOISE_CHUNKS", "Batch", "ImagePoints", "add_particles", "children", "ctf_table",
           "standard_normals"]
