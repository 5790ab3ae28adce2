"""One simulated entry: :func:`simulate_entry` turns settings and a seed into half-maps,
truth, mask, reference map, model and a record of every parameter.

Recipe (all draws from ``numpy.random.SeedSequence(seed)``; the same settings and seed give
the same maps bit for bit, whatever the number of threads):

1. The specimen (:func:`build_specimen`): the model placed in the box, its flexible domain
   (if any), the truth (the mean density over the domain's motion), the noise power the
   particle SNR sets, and (when first needed) the oversampled transforms particles are cut
   from.
2. Three independent particle sets of ``particles`` each, simulated and gridded batch by
   batch (:mod:`.particles`, :mod:`.reconstruction`): half 1, half 2 and the reference,
   whose particles have ``reference_factor`` times the particle SNR (noise power divided by
   it). Per particle: orientation, defocus, domain motion, then the noisy CTF-modulated
   central slice. The spectral SNR of a reconstruction is linear in (particles x particle
   SNR) (:mod:`.ssnr`), so the reference has, voxel by voxel, the expected value and noise
   power of a reconstruction from ``reference_factor · particles`` particles at the halves'
   SNR (same specimen, views, defocus and domain motion) at the cost of one half-map.
3. Each set is reconstructed by direct Fourier inversion (:mod:`.reconstruction`): the two
   halves first without regulariser, their FSC (solvent-flattened, per shell), then each
   set with the settings' regulariser (``fsc``: the SSNR from that FSC, as RELION's
   refinement; the reference with ``reference_factor`` times it) and solvent-flattened.
4. The mask: :func:`dataset_builder.synthetic.soft_mask` of the truth (the phantoms' mask).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version

import gemmi
import numba
import numpy as np
import scipy
import scipy.fft
from tqdm.auto import tqdm

from cref_bench.maps.volume import Volume
from cref_bench.metrics.fsc import fsc
from cref_bench.metrics.shells import Shells, fourier_shells
from dataset_builder.simulation.flexibility import (
    ensemble_structure,
    pivot_of,
    select_domain,
    split_structure,
)
from dataset_builder.simulation.particles import (
    Batch,
    ImagePoints,
    add_particles,
    children,
    standard_normals,
)
from dataset_builder.simulation.reconstruction import (
    SOLVENT_EDGE,
    FourierReconstructor,
    Unregularised,
    shell_fsc,
    solvent_fraction,
)
from dataset_builder.simulation.settings import SimulationSettings
from dataset_builder.simulation.specimen import (
    density,
    map_particle_radius,
    oversampled_transform,
    particle_radius,
    place_model,
    read_specimen_map,
)
from dataset_builder.simulation.ssnr import (
    implied_fsc,
    implied_resolution,
    noise_power,
    shell_power,
)
from dataset_builder.synthetic import soft_mask

SIMULATION_VERSION = 3
"""Version of the simulation recipe; stored with every entry."""
PAD = 2
"""Oversampling of the specimen's transforms and of the reconstruction grids."""


@dataclass(eq=False)
class Specimen:
    """The specimen of an entry and everything particles need from it.

    Attributes:
        structure: the model in its rest conformation.
        model_name: where the model came from.
        truth: the noise-free map (mean over the domain's motion).
        spectrum: the truth's ``rfftn``.
        shells: the map's Fourier shells.
        power: the truth's mean power per voxel in each shell.
        core_density: density of the rigid part (the whole specimen if rigid).
        domain_density: density of the flexible domain at rest, or None.
        pivot_index: the domain's pivot, voxel ``(z, y, x)``.
        domain_atoms: atoms in the flexible domain (0 if rigid).
        radius: the particle's radius, Å.
        noise: ``σ²``, noise power per image Fourier coefficient.
        snr: the particle SNR this noise gives (:func:`.ssnr.noise_power`; inf: no noise).
    """

    structure: gemmi.Structure | None
    model_name: str
    truth: Volume
    spectrum: np.ndarray
    shells: Shells
    power: np.ndarray
    core_density: np.ndarray
    domain_density: np.ndarray | None
    pivot_index: tuple[int, int, int]
    domain_atoms: int
    radius: float
    noise: float
    snr: float

    @property
    def pivot(self) -> np.ndarray:
        """The pivot in voxels from the box centre, ``(x, y, z)``."""
        n = self.truth.shape[0]
        return (np.asarray(self.pivot_index) - n // 2)[::-1].astype(np.float64)

    @cached_property
    def transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """The oversampled transforms particles are cut from: the core (or the whole
        specimen) and the domain centred on its pivot (shape ``(1, 1, 1)`` if rigid)."""
        core = oversampled_transform(self.core_density, PAD)
        if self.domain_density is None:
            return core, np.zeros((1, 1, 1), np.complex64)
        return core, oversampled_transform(self.domain_density, PAD, centre=self.pivot_index)


def _streams(seed: int) -> dict[str, np.random.SeedSequence]:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    names = ("model", "domain", "half1", "half2", "reference")
    return dict(zip(names, children(np.random.SeedSequence(int(seed)), len(names))))


def build_specimen(settings: SimulationSettings, seed: int) -> Specimen:
    """The specimen of an entry (step 1 of the module docstring).

    Args:
        settings: the settings.
        seed: the entry's seed (non-negative integer).

    Returns:
        A :class:`Specimen`.

    Raises:
        ValueError: a bad seed, a box too small for the model, or a bad flexible domain.
        Exception: what :func:`cref_bench.metrics.model_map.read_model` raises for a model file that
            cannot be read or holds no atoms.
    """
    streams = _streams(seed)
    n, a = settings.box, settings.voxel_size
    flexibility = settings.flexibility()
    pivot_index = (n // 2,) * 3
    domain_atoms = 0
    domain_density = None
    if settings.specimen is not None:
        given = read_specimen_map(settings.specimen, n, a)
        structure, name = None, str(settings.specimen)
        truth = given.like(given.data, source=f"simulated entry {seed} truth")
        core_density = truth.data
        radius = map_particle_radius(truth)
    else:
        structure, origin, name = place_model(settings.model, n, a,
                                              np.random.default_rng(streams["model"]))
        like = Volume(np.zeros((n,) * 3, np.float32), a, origin,
                      source=f"simulated entry {seed}")
        if flexibility.active:
            mask = select_domain(structure, flexibility,
                                 np.random.default_rng(streams["domain"]))
            core_part, domain_part = split_structure(structure, mask)
            pivot_xyz = pivot_of(domain_part, origin, a)
            pivot_index = tuple(np.rint((pivot_xyz[::-1] - np.asarray(origin)) / a).astype(int))
            core_density = density(core_part, like)
            domain_density = density(domain_part, like)
            truth_data = core_density + density(
                ensemble_structure(domain_part, pivot_xyz, flexibility), like)
            domain_atoms = int(mask.sum())
        else:
            core_density = truth_data = density(structure, like)
        truth = like.like(truth_data, source=f"simulated entry {seed} truth")
        radius = particle_radius(structure, like)
    spectrum = scipy.fft.rfftn(truth.data, workers=-1)
    shells = fourier_shells(truth.shape, truth.voxel_size)
    power = shell_power(spectrum, shells)
    points = ImagePoints.of(n, a)
    unit = noise_power(1.0, power, points, settings.microscope(), settings.defocus_range,
                       radius)
    if settings.noise_sigma is not None:
        # White noise of σ_px per pixel has power N² σ_px² per (unnormalised) coefficient.
        noise = float((n * settings.noise_sigma) ** 2)
        snr = unit / noise if noise > 0 else float("inf")
    else:
        noise = noise_power(settings.snr, power, points, settings.microscope(),
                            settings.defocus_range, radius)
        snr = float(settings.snr)
    return Specimen(structure, name, truth, spectrum, shells, power, core_density,
                    domain_density, pivot_index, domain_atoms, radius, noise, snr)


def implied_half_fsc(specimen: Specimen, settings: SimulationSettings,
                     shells: Shells | None = None, particles: int | None = None) -> np.ndarray:
    """The half-map FSC the settings imply for this specimen (:func:`.ssnr.implied_fsc`),
    with the noise the solvent flattening leaves (if on).

    Args:
        specimen: the specimen.
        settings: the settings.
        shells: shells to report on (default: the map's).
        particles: particles per half (default: ``settings.particles``).

    Returns:
        One value per shell.
    """
    kept = solvent_fraction(settings.box) if settings.flatten_solvent else 1.0
    regularised = settings.regulariser != "none"
    return implied_fsc(specimen.spectrum, shells or specimen.shells,
                       settings.particles if particles is None else particles,
                       specimen.noise * kept, settings.microscope(), settings.defocus_range,
                       settings.views(), settings.tau2_fudge if regularised else np.inf,
                       "fsc" if settings.regulariser == "fsc" else "oracle")


def grid_particles(specimen: Specimen, settings: SimulationSettings, n_particles: int,
                   stream: np.random.SeedSequence, progress: bool = False,
                   label: str = "particles", snr_factor: float = 1.0) -> Unregularised:
    """Simulate ``n_particles`` particles and reconstruct them without regulariser (step 2).

    Args:
        specimen: the specimen.
        settings: the settings.
        n_particles: how many particles.
        stream: the seed sequence of this particle set: batch ``k`` draws from its child
            ``k`` (orientations, defocus, motions, then the noise from a child of that).
        progress: show a progress bar.
        label: the progress bar's label.
        snr_factor: the particles' SNR is ``snr_factor`` times the settings' (their noise
            power ``specimen.noise / snr_factor``).

    Returns:
        The unregularised map (:class:`.reconstruction.Unregularised`).
    """
    points = ImagePoints.of(settings.box, settings.voxel_size)
    microscope = settings.microscope()
    reconstructor = FourierReconstructor(settings.box, PAD)
    particle_noise = specimen.noise / snr_factor
    sigma = float(np.sqrt(particle_noise))
    core, domain = specimen.transforms
    bar = tqdm(total=n_particles, desc=label, unit="particle", disable=not progress)
    threads = numba.get_num_threads()
    with bar, ThreadPoolExecutor(threads) as executor:
        for batch, noise_seed in particle_batches(specimen, settings, n_particles, stream):
            size = batch.rotations.shape[0]
            noise = standard_normals(noise_seed, (size * points.size, 2), executor) \
                if sigma > 0 else None
            add_particles(reconstructor, core, domain, batch, points, microscope, sigma, noise,
                          executor, threads)
            bar.update(size)
    return reconstructor.unregularised(specimen.truth, particle_noise)


def particle_batches(specimen: Specimen, settings: SimulationSettings, n_particles: int,
                     stream: np.random.SeedSequence):
    """The draws of a particle set, batch by batch: ``(Batch, noise seed)`` (orientations,
    defocus and domain motions from child ``k`` of ``stream`` for batch ``k``)."""
    views, flexibility = settings.views(), settings.flexibility()
    low, high = settings.defocus_range
    sizes = [min(settings.batch_size, n_particles - k)
             for k in range(0, n_particles, settings.batch_size)]
    for size, child in zip(sizes, children(stream, len(sizes))):
        draws, noise_seed = children(child, 2)
        rng = np.random.default_rng(draws)
        rotations = views.sample(rng, size)
        defocus = rng.uniform(low, high, size)
        if specimen.domain_density is not None:
            domain_rotations, shifts = flexibility.motions(rng, size)
            shifts = specimen.pivot + shifts / settings.voxel_size
        else:
            domain_rotations, shifts = np.zeros((size, 3, 3)), np.zeros((size, 3))
        yield Batch(rotations, defocus, domain_rotations, shifts), noise_seed


def particle_parameters(specimen: Specimen, settings: SimulationSettings, n_particles: int,
                        stream: np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """The orientations ``(n, 3, 3)`` and defoci ``(n,)`` (Å) of a particle set, as
    :func:`grid_particles` draws them (e.g. to write them for RELION: :mod:`.relion`)."""
    batches = [batch for batch, _ in particle_batches(specimen, settings, n_particles, stream)]
    return (np.concatenate([b.rotations for b in batches]),
            np.concatenate([b.defocus for b in batches]))


def unregularised_fsc(first: Unregularised, second: Unregularised,
                      flatten: bool = True) -> np.ndarray:
    """FSC of two unregularised maps per rounded shell ``0 .. N/2``
    (:func:`.reconstruction.shell_fsc`), each solvent-flattened first if asked (as the
    unregularised half-maps RELION's refinement compares are)."""
    spectra = [scipy.fft.rfftn(u.map(flatten=flatten).data, workers=-1) if flatten
               else u.spectrum for u in (first, second)]
    return shell_fsc(*spectra)


def regularise(unregularised: Unregularised, specimen: Specimen, settings: SimulationSettings,
               half_fsc: np.ndarray | None = None, ssnr_factor: float = 1.0) -> Volume:
    """The map from an unregularised one, with the settings' regulariser and solvent
    flattening (step 3).

    Args:
        unregularised: the map before its regulariser.
        specimen: the specimen (its signal power for ``oracle``).
        settings: the settings (``regulariser``, ``tau2_fudge``, ``flatten_solvent``).
        half_fsc: ``fsc``: the FSC between the two unregularised half-maps per rounded shell
            (:func:`unregularised_fsc`).
        ssnr_factor: ``fsc``: this map's SSNR relative to a half-map's (a reference of
            ``f`` times the particle SNR: ``f``).

    Returns:
        The map on the truth's grid.

    Raises:
        ValueError: ``fsc`` without ``half_fsc``.
    """
    lam = None
    if unregularised.noise_power > 0 and settings.regulariser == "oracle":
        lam = unregularised.oracle_lambda(specimen.power, settings.tau2_fudge)
    elif unregularised.noise_power > 0 and settings.regulariser == "fsc":
        if half_fsc is None:
            raise ValueError("the fsc regulariser needs the FSC of the two unregularised "
                             "half-maps")
        lam = unregularised.fsc_lambda(half_fsc, settings.tau2_fudge, ssnr_factor)
    return unregularised.map(lam, settings.flatten_solvent)


def reconstruct_halves(specimen: Specimen, settings: SimulationSettings,
                       streams: tuple[np.random.SeedSequence, np.random.SeedSequence],
                       progress: bool = False) -> tuple[Volume, Volume, np.ndarray]:
    """Two half-maps of ``settings.particles`` particles each, regularised as the settings
    say (steps 2 and 3).

    Returns:
        ``(half1, half2, fsc)``: the maps and the FSC of their unregularised versions per
        rounded shell (:func:`unregularised_fsc`).
    """
    first, second = (grid_particles(specimen, settings, settings.particles, stream, progress,
                                    label=label)
                     for stream, label in zip(streams, ("half1", "half2")))
    half_fsc = unregularised_fsc(first, second, settings.flatten_solvent)
    return (regularise(first, specimen, settings, half_fsc),
            regularise(second, specimen, settings, half_fsc), half_fsc)


def reconstruct_particles(specimen: Specimen, settings: SimulationSettings, n_particles: int,
                          stream: np.random.SeedSequence, progress: bool = False,
                          label: str = "particles", snr_factor: float = 1.0,
                          half_fsc: np.ndarray | None = None) -> Volume:
    """Simulate ``n_particles`` particles and reconstruct them (:func:`grid_particles`, then
    :func:`regularise` with ``ssnr_factor = snr_factor · n_particles / settings.particles``).
    The ``fsc`` regulariser needs ``half_fsc`` (:func:`reconstruct_halves` gives it)."""
    unregularised = grid_particles(specimen, settings, n_particles, stream, progress, label,
                                   snr_factor)
    return regularise(unregularised, specimen, settings, half_fsc,
                      snr_factor * n_particles / settings.particles)


@dataclass(eq=False)
class SimulatedEntry:
    """A simulated entry.

    Attributes:
        half1, half2: reconstructions from two disjoint particle sets.
        truth: the noise-free map (mean over the flexible domain's motion).
        mask: soft mask of the truth, values in [0, 1].
        reference: reconstruction with the spectral SNR of ``reference_factor`` times more
            particles (module docstring, step 2).
        model: the model, mmCIF text (rest conformation, box coordinates), or None for a
            map specimen.
        metadata: JSON-ready record of every parameter (see :func:`simulate_entry`).
        timings: ``{"wall": {step: s}, "cpu": {step: s}}``, wall-clock and process CPU
            seconds (all threads) of each step: ``specimen``, ``half1``, ``half2``,
            ``reference`` (not part of the record: they vary run to run).
    """

    half1: Volume
    half2: Volume
    truth: Volume
    mask: Volume
    reference: Volume
    model: str | None
    metadata: dict
    timings: dict = field(default_factory=dict)


def _versions() -> dict:
    try:
        ours = version("cref-bench")
    except PackageNotFoundError:
        ours = "unknown"
    return {"cref-bench": ours, "simulation": SIMULATION_VERSION, "numpy": np.__version__,
            "scipy": scipy.__version__, "numba": numba.__version__, "gemmi": gemmi.__version__}


def simulate_entry(settings: SimulationSettings, seed: int, *,
                   progress: bool = False) -> SimulatedEntry:
    """Simulate one entry (module docstring).

    Args:
        settings: the settings (e.g. a preset from :data:`.settings.PRESETS`).
        seed: non-negative integer; with ``settings`` it determines every map bit for bit.
        progress: show progress bars.

    Returns:
        A :class:`SimulatedEntry` whose ``metadata`` holds ``source``, ``seed``,
        ``simulation_version``, ``settings`` (every field), ``model``, ``atoms``,
        ``particle_radius``, ``noise_sigma_pixel`` (noise standard deviation per image
        pixel), ``particles_half``, ``particles_reference`` (simulated),
        ``reference_snr`` (their particle SNR), ``reference_equivalent_particles``
        (``reference_factor · particles``), ``orientations``,
        ``flexibility`` (domain atoms, pivot, motion), ``implied_resolution`` (Å, from the
        SSNR the settings imply for a rigid specimen; None if the FSC never crosses 0.143),
        ``resolution`` (the half-maps' FSC 0.143 crossing, Å, or None) and ``versions``.

    Raises:
        ValueError: a bad seed, a box too small for the model, or a bad flexible domain.
        Exception: what :func:`cref_bench.metrics.model_map.read_model` raises for a model file that
            cannot be read or holds no atoms.
    """
    timings = {"wall": {}, "cpu": {}}

    def clock(step: str, since: tuple[float, float]) -> None:
        timings["wall"][step] = time.perf_counter() - since[0]
        timings["cpu"][step] = time.process_time() - since[1]

    start = (time.perf_counter(), time.process_time())
    specimen = build_specimen(settings, seed)
    _ = specimen.transforms    # computed here, so that its time counts as the specimen's
    mask = soft_mask(specimen.truth)
    clock("specimen", start)
    streams = _streams(seed)
    maps, unregularised = {}, {}
    for name in ("half1", "half2"):
        start = (time.perf_counter(), time.process_time())
        unregularised[name] = grid_particles(specimen, settings, settings.particles,
                                             streams[name], progress, label=name)
        clock(name, start)
    start = (time.perf_counter(), time.process_time())
    half_fsc = unregularised_fsc(unregularised["half1"], unregularised["half2"],
                                 settings.flatten_solvent)
    for name in ("half1", "half2"):
        maps[name] = regularise(unregularised.pop(name), specimen, settings, half_fsc)
    clock("regularise", start)
    start = (time.perf_counter(), time.process_time())
    maps["reference"] = reconstruct_particles(specimen, settings, settings.particles,
                                              streams["reference"], progress,
                                              label="reference",
                                              snr_factor=settings.reference_factor,
                                              half_fsc=half_fsc)
    clock("reference", start)
    crossing = fsc(maps["half1"], maps["half2"]).resolution_at(0.143).resolution
    implied = implied_resolution(implied_half_fsc(specimen, settings), specimen.shells)
    n = settings.box
    flexibility = settings.flexibility()
    metadata = {
        "source": "simulated", "seed": int(seed), "simulation_version": SIMULATION_VERSION,
        "settings": settings.as_dict(), "model": specimen.model_name,
        "atoms": None if specimen.structure is None
        else int(specimen.structure[0].count_atom_sites()),
        "particle_radius": specimen.radius,
        "noise_sigma_pixel": float(np.sqrt(specimen.noise)) / n,
        "particle_snr": None if np.isinf(specimen.snr) else float(specimen.snr),
        "particles_half": int(settings.particles),
        "particles_reference": int(settings.particles),
        "reference_snr": None if np.isinf(specimen.snr)
        else float(settings.reference_factor * specimen.snr),
        "reference_equivalent_particles": int(round(settings.reference_factor
                                                    * settings.particles)),
        "orientations": settings.views().as_dict(),
        "flexibility": {"domain_atoms": specimen.domain_atoms,
                        "pivot_voxels_from_centre_xyz": specimen.pivot.tolist(),
                        "shift_sd": flexibility.shift_sd, "angle_sd": flexibility.angle_sd,
                        "selection": flexibility.selection or
                        ("automatic" if specimen.domain_atoms else None)},
        "regulariser": {"kind": settings.regulariser, "tau2_fudge": settings.tau2_fudge,
                        "fsc_unregularised_halves": [round(float(v), 6) for v in half_fsc]},
        "solvent_flattening": {"radius_voxels": n / 2, "edge_voxels": SOLVENT_EDGE}
        if settings.flatten_solvent else None,
        "implied_resolution": implied, "resolution": crossing,
        "versions": _versions(),
    }
    model = None if specimen.structure is None else \
        specimen.structure.make_mmcif_document().as_string()
    return SimulatedEntry(maps["half1"], maps["half2"], specimen.truth, mask, maps["reference"],
                          model, metadata, timings)


__all__ = ["SIMULATION_VERSION", "SimulatedEntry", "Specimen", "build_specimen", "grid_particles",
           "implied_half_fsc", "particle_batches", "particle_parameters", "reconstruct_halves",
           "reconstruct_particles", "regularise", "simulate_entry", "unregularised_fsc"]
