"""Phantoms with known truth: half-maps, mask and noise-free map from an atomic model.

:func:`make_phantom` makes one phantom; :func:`write_phantom_corpus` writes many into a
corpus store. A phantom is built in four steps, all determined by the seed:

1. **Model.** A protein-like model built by :mod:`dataset_builder.phantom_models` (ideal
   helices and strands packed into domains, centred in the box), or a given model, whose
   box is then centred on it (its coordinates are left as they are; the box origin moves).
2. **Truth.** The model's density on the box grid (:func:`cref_bench.metrics.model_map.model_map`,
   electron scattering, per-atom B-factors, band-limited at Nyquist without a roll-off, as
   the model map of the model-map FSC is, so that FSC(truth, model map) is 1), times a global
   B-factor envelope ``exp(-B s² / 4)`` in Fourier space.
3. **Mask.** The truth low-passed (Gaussian, sigma 3 Å), thresholded where it holds 90 % of
   its positive mass, dilated by 3 Å, with a 5 Å raised-cosine soft edge: values in [0, 1].
4. **Noise.** Each half-map is ``truth + noise``: white Gaussian noise times a smooth
   spatial envelope (amplitude 1 inside the mask rising to ``noise_outside_ratio``, drawn in
   [1, 1.5], outside it: the solvent is noisier than the particle), then calibrated in
   Fourier space, shell by shell, so that FSC(half1, half2) follows a designed curve that
   is about 1 at low resolution, 0.5 at ``ratio`` times the requested resolution (``ratio``
   drawn in [1.1, 1.3]) and crosses 0.143 exactly at the requested resolution; the noise
   power is set from the truth's own power in each shell and levels off to a white plateau
   beyond the resolution. :mod:`dataset_builder.phantom_noise` describes how.

Limits: boxes of 32 to 512 voxels a side; the resolution must be at least 2.5 voxels (so
the crossing is below the model map's band-limit roll-off) and at most 1/8 of the box
edge (at least 8 shells before the crossing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
import scipy.fft
from scipy import ndimage

from cref_bench.corpus.layout import list_complete_entries
from cref_bench.errors import CorpusError, InputError, ModelError
from cref_bench.maps.volume import Volume
from cref_bench.metrics.model_map import model_map, read_model
from cref_bench.metrics.shells import fourier_shells
from dataset_builder import store
from dataset_builder.corpus_writer import open_known_truth_store, write_entries
from dataset_builder.phantom_models import build_model
from dataset_builder.phantom_noise import calibrated_noise, designed_fsc, noise_power, shell_sums

logger = logging.getLogger(__name__)

PHANTOM_VERSION = 2
"""Version of the phantom recipe; stored with every phantom."""

PATCH_SIZE = 96
"""Largest patch edge of a new phantom store's patch index (the crefDenoiser patches)."""
MIN_RESOLUTION_VOXELS = 2.5
MIN_SHELLS_TO_CROSSING = 8
MASK_LOWPASS_SIGMA = 3.0
MASK_MASS_FRACTION = 0.9
MASK_DILATION = 3.0
MASK_SOFT_EDGE = 5.0
MODEL_MARGIN = 14.0
"""Å kept free between a procedural model and the box edge (low-pass, dilation, soft edge)."""
MIN_PARTICLE_RADIUS = 10.0
MIN_BOX_EDGE = 2 * (MIN_PARTICLE_RADIUS + MODEL_MARGIN)
"""Smallest box edge (Å) of a procedural phantom."""
GIVEN_MODEL_MARGIN = 8.0
"""Å a given model must keep from the box edge (the mask's dilation and soft edge)."""


@dataclass(eq=False)
class Phantom:
    """A phantom: two noisy half-maps of a known truth, a mask, and the model.

    Attributes:
        half1, half2: the half-maps (truth + independent noise).
        mask: soft mask, values in [0, 1].
        truth: the noise-free map (model map times the B-factor envelope).
        resolution: the resolution (Å) at which FSC(half1, half2) crosses 0.143.
        structure: the atomic model the truth was computed from.
        metadata: JSON-like description for the corpus store (``resolution``,
            ``source="synthetic"``, ``seed``, ``phantom_box``, ``phantom_voxel_size``,
            ``b_factor``, ...; no key the store writer sets itself).
    """

    half1: Volume
    half2: Volume
    mask: Volume
    truth: Volume
    resolution: float
    structure: gemmi.Structure
    metadata: dict = field(default_factory=dict)


def _check_grid(box: int, voxel_size: float, resolution: float) -> None:
    if not isinstance(box, (int, np.integer)) or not 32 <= box <= 512:
        raise InputError(f"box must be an integer from 32 to 512 voxels, got {box!r}")
    if not (np.isfinite(voxel_size) and voxel_size > 0):
        raise InputError(f"voxel_size must be a positive number of Å, got {voxel_size!r}")
    low, high = MIN_RESOLUTION_VOXELS * voxel_size, box * voxel_size / MIN_SHELLS_TO_CROSSING
    if not low <= resolution <= high:
        raise InputError(f"resolution {resolution} Å is outside [{low:.3g}, {high:.3g}] Å, "
                         f"the range a {box}^3 box of {voxel_size} Å voxels can hold "
                         f"(>= {MIN_RESOLUTION_VOXELS} voxels, <= box edge / "
                         f"{MIN_SHELLS_TO_CROSSING})")


def _atom_positions(structure: gemmi.Structure) -> np.ndarray:
    return np.array([cra.atom.pos.tolist() for cra in structure[0].all()]).reshape(-1, 3)


def _given_model(model: gemmi.Structure | str | Path,
                 edge: float) -> tuple[gemmi.Structure, np.ndarray]:
    """The model (a private copy) and the box origin (z, y, x) that centres it."""
    structure = model.clone() if isinstance(model, gemmi.Structure) else read_model(model)
    xyz = _atom_positions(structure)
    if xyz.size == 0:
        raise ModelError(structure.name or str(model), "the model holds no atoms")
    low, high = xyz.min(axis=0), xyz.max(axis=0)
    extent = high - low
    if np.any(extent + 2 * GIVEN_MODEL_MARGIN > edge):
        raise InputError(f"model {structure.name or model!s} spans {np.round(extent, 1)} Å "
                         f"(x, y, z); with {GIVEN_MODEL_MARGIN} Å margins it needs a box edge "
                         f"of {extent.max() + 2 * GIVEN_MODEL_MARGIN:.0f} Å, this box has "
                         f"{edge:.0f} Å")
    centre_xyz = (low + high) / 2
    return structure, (centre_xyz - edge / 2)[::-1]


def soft_mask(truth: Volume) -> Volume:
    """The phantom mask of a truth map (see the module docstring, step 3).

    Args:
        truth: the noise-free map.

    Returns:
        A Volume on the truth's grid with values in [0, 1].

    Raises:
        ValueError: the truth has no positive density.
    """
    voxel = np.asarray(truth.voxel_size)
    smooth = ndimage.gaussian_filter(truth.data, MASK_LOWPASS_SIGMA / voxel, mode="constant")
    positive = np.sort(smooth[smooth > 0])[::-1]
    if positive.size == 0:
        raise ValueError(f"{truth.source}: no positive density to mask")
    cumulative = np.cumsum(positive, dtype=np.float64)
    threshold = positive[np.searchsorted(cumulative, MASK_MASS_FRACTION * cumulative[-1])]
    core = smooth >= threshold
    # Distances matter only within the mask's reach of the core: work in that bounding box.
    reach = np.ceil((MASK_DILATION + MASK_SOFT_EDGE) / voxel).astype(int) + 1
    where = np.nonzero(core)
    crop = tuple(slice(max(0, int(w.min()) - r), min(n, int(w.max()) + r + 1))
                 for w, r, n in zip(where, reach, core.shape))
    distance = ndimage.distance_transform_edt(~core[crop], sampling=voxel)
    fraction = np.clip((distance - MASK_DILATION) / MASK_SOFT_EDGE, 0.0, 1.0)
    mask = np.zeros(truth.shape, np.float32)
    mask[crop] = 0.5 + 0.5 * np.cos(np.pi * fraction)
    return truth.like(mask, source=f"mask of {truth.source}")


def make_phantom(seed: int, *, box: int = 64, voxel_size: float = 1.2,
                 resolution: float = 4.0, b_factor: float | None = None,
                 model: gemmi.Structure | str | Path | None = None) -> Phantom:
    """One phantom: half-maps whose FSC crosses 0.143 at ``resolution``, mask and truth.

    The same arguments always give bit-identical maps.

    Args:
        seed: the random seed (non-negative integer).
        box: edge of the cubic box, voxels (32 to 512); with a procedural model the box
            must be at least 48 Å wide.
        voxel_size: Å per voxel.
        resolution: where FSC(half1, half2) crosses 0.143, Å; from 2.5 voxels to 1/8 of the
            box edge.
        b_factor: the global B-factor envelope, Å²; None draws it in ``[2, 6] * resolution²``.
        model: an atomic model (gemmi Structure or file) to use instead of a procedural one;
            it must fit in the box with 8 Å to spare on every side.

    Returns:
        A :class:`Phantom`.

    Raises:
        InputError: a bad box, voxel size, resolution, B-factor or seed, or a model that
            does not fit in the box.
        ModelError: the model file cannot be read or holds no atoms.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    _check_grid(box, voxel_size, resolution)
    if b_factor is not None and not (np.isfinite(b_factor) and b_factor >= 0):
        raise InputError(f"b_factor must be a non-negative number of Å², got {b_factor!r}")
    model_rng, param_rng, noise1_rng, noise2_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4))
    edge = box * voxel_size
    if model is None:
        if edge < MIN_BOX_EDGE:
            raise InputError(f"box edge {edge:.1f} Å ({box} x {voxel_size} Å) is below the "
                             f"{MIN_BOX_EDGE:.0f} Å a procedural phantom needs")
        radius = max(MIN_PARTICLE_RADIUS, min(0.3 * edge, 0.5 * edge - MODEL_MARGIN))
        structure = build_model(model_rng, radius, centre=(edge / 2,) * 3)
        origin = np.zeros(3)
        model_name = "procedural"
    else:
        structure, origin = _given_model(model, edge)
        model_name = str(model) if isinstance(model, (str, Path)) else (structure.name or "given")
    if b_factor is None:
        b_factor = float(param_rng.uniform(2.0, 6.0) * resolution**2)
    ratio = float(param_rng.uniform(1.1, 1.3))
    outside_ratio = float(param_rng.uniform(1.0, 1.5))

    like = Volume(np.zeros((box,) * 3, np.float32), voxel_size, tuple(origin),
                  source=f"phantom {seed}")
    density = model_map(structure, like, taper=False).data
    shells = fourier_shells(like.shape, like.voxel_size)
    freq = np.fft.fftfreq(box, voxel_size)
    s2 = freq[:, None, None] ** 2 + freq[None, :, None] ** 2 + np.abs(freq[: box // 2 + 1]) ** 2
    truth_spectrum = scipy.fft.rfftn(density, workers=-1) * np.exp(-b_factor / 4.0 * s2)
    del density, s2
    truth = like.like(scipy.fft.irfftn(truth_spectrum, s=like.shape, workers=-1),
                      source=f"phantom {seed} truth")
    signal = shell_sums(np.abs(truth_spectrum) ** 2, shells) / np.maximum(shells.counts, 1)
    power = noise_power(signal, designed_fsc(shells.frequency, resolution, ratio))

    mask = soft_mask(truth)
    envelope = outside_ratio - (outside_ratio - 1.0) * mask.data.astype(np.float64)
    noise1 = calibrated_noise(noise1_rng, envelope, [truth_spectrum], power, shells)
    noise2 = calibrated_noise(noise2_rng, envelope, [truth_spectrum, noise1], power, shells)
    del truth_spectrum, envelope
    halves = [like.like(truth.data + scipy.fft.irfftn(noise, s=like.shape, workers=-1),
                        source=f"phantom {seed} half{k}")
              for k, noise in ((1, noise1), (2, noise2))]
    metadata = {
        "resolution": float(resolution), "source": "synthetic", "seed": int(seed),
        "phantom_version": PHANTOM_VERSION, "phantom_box": int(box),
        "phantom_voxel_size": float(voxel_size), "b_factor": float(b_factor),
        "model": model_name, "atoms": int(structure[0].count_atom_sites()),
        "fsc_half_ratio": ratio, "noise_outside_ratio": outside_ratio,
    }
    return Phantom(halves[0], halves[1], mask, truth, float(resolution), structure, metadata)


# --------------------------------------------------------------------------- corpus

def _range(name: str, values, kind=float) -> tuple:
    low, high = (kind(v) for v in values)
    if not 0 < low <= high:
        raise InputError(f"{name} must be (low, high) with 0 < low <= high, got "
                         f"{tuple(values)}")
    return low, high


def entry_parameters(seed: int, index: int, boxes=(64, 96), voxel_sizes=(0.8, 2.0),
                     resolutions=(2.0, 8.0)) -> dict:
    """The :func:`make_phantom` arguments of corpus entry ``index``, drawn from ``(seed, index)``.

    The box is drawn among the multiples of 8 in ``boxes`` (all integers there if none);
    then the resolution, within ``resolutions`` and what the box can hold at some voxel size
    in ``voxel_sizes``; then the voxel size, within ``voxel_sizes`` and what the box and
    resolution allow (see :func:`make_phantom`).

    Args:
        seed: the corpus seed.
        index: the entry index (0-based).
        boxes, voxel_sizes, resolutions: (low, high) ranges, voxels, Å, Å.

    Returns:
        ``{"seed", "box", "voxel_size", "resolution"}``.

    Raises:
        InputError: a bad range, or ranges no phantom can satisfy.
    """
    box_low, box_high = _range("boxes", boxes, int)
    v_low, v_high = _range("voxel_sizes", voxel_sizes)
    r_low, r_high = _range("resolutions", resolutions)
    rng = np.random.default_rng([seed, index])
    choices = [b for b in range(box_low, box_high + 1) if b % 8 == 0] or \
        list(range(box_low, box_high + 1))
    box = int(rng.choice(choices))
    v_floor = max(v_low, MIN_BOX_EDGE / box)
    low = max(r_low, MIN_RESOLUTION_VOXELS * v_floor)
    high = min(r_high, box * v_high / MIN_SHELLS_TO_CROSSING)
    if low > high or v_floor > v_high:
        raise InputError(f"no phantom of box {box} can have a resolution in [{r_low}, {r_high}] "
                         f"Å with voxels in [{v_low}, {v_high}] Å (it needs resolution >= "
                         f"{MIN_RESOLUTION_VOXELS} voxels and <= box edge / "
                         f"{MIN_SHELLS_TO_CROSSING}, and a box edge >= {MIN_BOX_EDGE:.0f} Å)")
    resolution = round(float(rng.uniform(low, high)), 2)
    resolution = min(max(resolution, low), high)
    v_min = max(v_floor, resolution * MIN_SHELLS_TO_CROSSING / box)
    v_max = min(v_high, resolution / MIN_RESOLUTION_VOXELS)
    voxel = min(max(round(float(rng.uniform(v_min, v_max)), 3), v_min), v_max)
    phantom_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    return {"seed": phantom_seed, "box": box, "voxel_size": voxel, "resolution": resolution}


def _write_one(location: str, entry_id: str, parameters: dict, extra: dict) -> str | None:
    """Make and store one phantom, or record why not; returns the error text or None."""
    try:
        phantom = make_phantom(**parameters)
        text = phantom.structure.make_mmcif_document().as_string()
        store.write_entry(location, entry_id, half1=phantom.half1, half2=phantom.half2,
                          mask=phantom.mask, truth=phantom.truth, models={"model": text},
                          metadata={**phantom.metadata, **extra})
        return None
    except Exception as error:  # recorded per entry; the build carries on
        store.record_rejection(location, entry_id, error, {**parameters, **extra,
                                                           "source": "synthetic"},
                               status="failed")
        return f"{type(error).__name__}: {error}"


SETTINGS_ATTRIBUTE = "phantom_settings"
"""The root attribute recording the settings a phantom corpus is drawn with."""

SETTING_FLAGS = {"boxes": "--box-range", "voxel_sizes": "--voxel-range",
                 "resolutions": "--resolution-range"}
"""The command-line flag of each drawing setting (for messages)."""


def phantom_id(index: int) -> str:
    """The id of corpus entry ``index`` (0-based): ``SYN-0001`` for 0."""
    return f"SYN-{index + 1:04d}"


def _check_settings(handle: store.Store, seed: int, settings: dict) -> None:
    """Refuse to add to a store drawn with other settings; record them in a new store.

    A store written before the settings were recorded is accepted when every complete
    entry has the box, voxel size and resolution the settings draw for it.
    """
    root = handle.root()
    recorded = root.attrs.get(SETTINGS_ATTRIBUTE)
    if recorded is None:
        for entry_id, group in list_complete_entries(root).items():
            meta = group.attrs.asdict()
            if meta.get("corpus_seed") != seed or "corpus_index" not in meta:
                continue
            drawn = entry_parameters(seed, meta["corpus_index"], **settings)
            if (meta.get("phantom_box"), meta.get("phantom_voxel_size"),
                    meta.get("resolution")) != (drawn["box"], drawn["voxel_size"],
                                                drawn["resolution"]):
                raise CorpusError(handle.location, f"entry {entry_id} was drawn with other "
                                  "settings than " + _describe(settings) + "; give the "
                                  "settings it was written with, or another output")
        root.attrs[SETTINGS_ATTRIBUTE] = settings
        return
    differ = {k: v for k, v in settings.items() if list(recorded.get(k, ())) != list(v)}
    if differ:
        raise CorpusError(handle.location, "written with " + _describe(recorded, differ)
                          + ", not " + _describe(differ) + "; give the same settings to add "
                          "entries, or another output")


def _describe(settings: dict, keys=None) -> str:
    """Settings as the command line gives them: ``--box-range 64 96, ...``."""
    return ", ".join(f"{SETTING_FLAGS[k]} {' '.join(f'{v:g}' for v in settings[k])}"
                     for k in (keys or settings))


def _open_corpus_store(out, seed: int, patch_size: int) -> store.Store:
    """The store at ``out``, created if absent; refuses anything else there."""
    source = f"synthetic phantoms v{PHANTOM_VERSION} (seed {seed})"
    return open_known_truth_store(out, source, patch_size)


def write_phantom_corpus(out, entries: int, *, seed: int = 0, boxes=(64, 96),
                         voxel_sizes=(0.8, 2.0), resolutions=(2.0, 8.0), workers: int = 1,
                         progress: bool = True) -> str:
    """Write ``entries`` phantoms ``SYN-0001``, ``SYN-0002``, ... into a corpus store.

    Entry ``k`` (1-based) is ``make_phantom(**entry_parameters(seed, k - 1, ...))`` with its
    model stored as ``models/model`` (mmCIF) and metadata extended by ``corpus_seed`` and
    ``corpus_index``. Resumable: entries already complete are skipped, so a killed run
    continues where it stopped; the ranges are recorded in the store (root attribute
    :data:`SETTINGS_ATTRIBUTE`), and adding to it with other ranges is refused. An entry
    that fails is recorded as failed in the manifest and the others go on. The store is
    finalised at the end. The patches of a new store's patch index are 96³, or as large as
    the smallest box when that is smaller.

    Args:
        out: the store, a local path or fsspec URL: absent, an empty folder, or a store
            written by an earlier call with the same seed.
        entries: number of entries (at least 1).
        seed: the corpus seed.
        boxes, voxel_sizes, resolutions: (low, high) ranges of box edge (voxels), voxel
            size (Å) and resolution (Å) the entries are drawn from.
        workers: parallel processes (1: in this process).
        progress: show a progress bar.

    Returns:
        The store location.

    Raises:
        InputError: bad ranges or counts.
        CorpusError: ``out`` exists and is not a corpus store, or is a store of another seed
            or other ranges.
    """
    if not isinstance(entries, (int, np.integer)) or entries < 1:
        raise InputError(f"entries must be a positive integer, got {entries!r}")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    jobs = [(phantom_id(k), entry_parameters(seed, k, boxes, voxel_sizes, resolutions),
             {"corpus_seed": int(seed), "corpus_index": k}) for k in range(entries)]
    settings = {"boxes": list(_range("boxes", boxes, int)),
                "voxel_sizes": list(_range("voxel_sizes", voxel_sizes)),
                "resolutions": list(_range("resolutions", resolutions))}
    handle = _open_corpus_store(out, seed, min(PATCH_SIZE, settings["boxes"][0]))
    _check_settings(handle, int(seed), settings)
    jobs = [job for job in jobs if not handle.is_complete(job[0])]
    write_entries(handle, jobs, _write_one, total=entries, desc="phantoms", workers=workers,
                  progress=progress)
    return handle.location


__all__ = ["PHANTOM_VERSION", "Phantom", "entry_parameters", "make_phantom", "phantom_id",
           "soft_mask", "write_phantom_corpus"]
