"""Phantoms with known truth: half-maps, mask and noise-free map from an atomic model.

:func:`make_phantom` makes one phantom; :func:`write_phantom_corpus` writes many into a
corpus store. A phantom is built in five steps, all determined by the seed:

1. **Model.** A protein-like model built by :mod:`dataset_builder.phantom_models` (ideal
   helices and strands packed into domains, centred in the box), or a given model, whose
   box is then centred on it (its coordinates are left as they are; the box origin moves).
2. **Truth.** The model's density on the box grid (:func:`cref_bench.model_map.model_map`,
   electron scattering, per-atom B-factors, band-limited at Nyquist), times a global
   B-factor envelope ``exp(-B s² / 4)`` in Fourier space.
3. **Mask.** The truth low-passed (Gaussian, sigma 3 Å), thresholded where it holds 90 % of
   its positive mass, dilated by 3 Å, with a 5 Å raised-cosine soft edge: values in [0, 1].
4. **Noise.** Each half-map is ``truth + noise``. Noise starts as white Gaussian noise times
   a smooth spatial envelope: amplitude 1 inside the mask rising to ``noise_outside_ratio``
   (drawn in [1, 1.5]) outside it, so the solvent is noisier than the particle. In Fourier
   space, per shell of :func:`cref_bench.shells.fourier_shells`, each half's noise is then
   made orthogonal to the truth (and half 2's to half 1's) and scaled to the power
   ``N = S (1 - f) / f``, where ``S`` is the truth's own power in the shell and ``f`` the
   designed FSC. The projections remove 1-2 of the thousands of degrees of freedom in a
   shell; they take away the sampling scatter of the FSC (up to +-0.03 per shell in small
   boxes), so the half-map FSC *is* the designed curve and crosses 0.143 exactly where
   asked. Beyond the Nyquist shell (the corners) noise has the last shell's power; the
   mean (DC) carries no noise.
5. **Designed FSC.** ``f(s) = 1 / (1 + 6^u)``, ``u = (s - s_half) / (s_t - s_half)``:
   1 at low resolution, 0.5 at ``s_half = s_t / ratio`` (ratio drawn in [1.1, 1.3], the
   ratio of the 0.5 and 0.143 resolutions), 0.143 at ``s_t``, floored at 0.02. ``s_t`` is
   tuned so that the FSC interpolated linearly between shells (as
   :func:`cref_bench.fsc.resolution_at` does) crosses 0.143 at the requested resolution.
   Beyond the crossing the noise power never decreases with frequency (the truth's power
   falls with the B-factor; the noise levels off instead of following it).

Limits: boxes of 32 to 512 voxels a side; the resolution must be at least 2.5 voxels (so
the crossing is below the model map's band-limit roll-off) and at most 1/8 of the box
edge (at least 8 shells before the crossing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
import scipy.fft
from scipy import ndimage

from cref_bench.fsc import resolution_at
from cref_bench.model_map import model_map, read_model
from cref_bench.shells import fourier_shells, friedel_weights
from cref_bench.volume import Volume
from dataset_builder.phantom_models import build_model

PHANTOM_VERSION = 1
"""Version of the phantom recipe; stored with every phantom."""

FSC_THRESHOLD = 0.143
MIN_RESOLUTION_VOXELS = 2.5
MIN_SHELLS_TO_CROSSING = 8
FSC_FLOOR = 0.02
MASK_LOWPASS_SIGMA = 3.0
MASK_MASS_FRACTION = 0.9
MASK_DILATION = 3.0
MASK_SOFT_EDGE = 5.0
MODEL_MARGIN = 14.0
"""Å kept free between a procedural model and the box edge (low-pass, dilation, soft edge)."""
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
        raise ValueError(f"box must be an integer from 32 to 512 voxels, got {box!r}")
    if not (np.isfinite(voxel_size) and voxel_size > 0):
        raise ValueError(f"voxel_size must be a positive number of Å, got {voxel_size!r}")
    low, high = MIN_RESOLUTION_VOXELS * voxel_size, box * voxel_size / MIN_SHELLS_TO_CROSSING
    if not low <= resolution <= high:
        raise ValueError(f"resolution {resolution} Å is outside [{low:.3g}, {high:.3g}] Å, "
                         f"the range a {box}^3 box of {voxel_size} Å voxels can hold "
                         f"(>= {MIN_RESOLUTION_VOXELS} voxels, <= box edge / "
                         f"{MIN_SHELLS_TO_CROSSING})")


def _atom_positions(structure: gemmi.Structure) -> np.ndarray:
    return np.array([cra.atom.pos.tolist() for cra in structure[0].all()]).reshape(-1, 3)


def _given_model(model: gemmi.Structure | str | Path, edge: float) -> tuple[gemmi.Structure, np.ndarray]:
    """The model (a private copy) and the box origin (z, y, x) that centres it."""
    structure = model.clone() if isinstance(model, gemmi.Structure) else read_model(model)
    xyz = _atom_positions(structure)
    if xyz.size == 0:
        raise ValueError(f"model {structure.name or model!s} holds no atoms")
    low, high = xyz.min(axis=0), xyz.max(axis=0)
    extent = high - low
    if np.any(extent + 2 * GIVEN_MODEL_MARGIN > edge):
        raise ValueError(f"model {structure.name or model!s} spans {np.round(extent, 1)} Å "
                         f"(x, y, z); with {GIVEN_MODEL_MARGIN} Å margins it needs a box edge "
                         f"of {extent.max() + 2 * GIVEN_MODEL_MARGIN:.0f} Å, this box has "
                         f"{edge:.0f} Å")
    centre_xyz = (low + high) / 2
    return structure, (centre_xyz - edge / 2)[::-1]


def _shell_sum(values: np.ndarray, index: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """Friedel-weighted per-shell sums of a half-space array (corners left out)."""
    inside = index >= 0
    return np.bincount(index[inside], weights=(values * weights)[inside], minlength=n)


def _designed_fsc(frequency: np.ndarray, ratio: float, s_crossing: float) -> np.ndarray:
    u = (frequency * ratio / s_crossing - 1.0) / (ratio - 1.0)
    return np.maximum(1.0 / (1.0 + np.power(6.0, np.minimum(u, 60.0))), FSC_FLOOR)


def _tuned_fsc(frequency: np.ndarray, resolution: float, ratio: float) -> np.ndarray:
    """The designed FSC per shell, tuned so its interpolated 0.143 crossing is ``resolution``."""
    s_target = 1.0 / resolution
    low, high = 0.8 * s_target, 1.25 * s_target
    for _ in range(50):
        middle = 0.5 * (low + high)
        crossing = resolution_at(frequency, _designed_fsc(frequency, ratio, middle),
                                 FSC_THRESHOLD).resolution
        if crossing is not None and 1.0 / crossing < s_target:
            low = middle
        else:
            high = middle
    return _designed_fsc(frequency, ratio, 0.5 * (low + high))


def _noise_power(signal: np.ndarray, fsc: np.ndarray) -> np.ndarray:
    """Per-shell noise power giving ``fsc`` up to the 0.143 crossing; beyond it, the power
    that would give ``fsc`` had the signal stayed at its crossing level, or more (never
    decreasing), so the noise rises to a white plateau while the signal fades."""
    power = signal * (1.0 - fsc) / fsc
    crossed = int(np.argmax(fsc < FSC_THRESHOLD))
    plateau = signal[crossed] * (1.0 - fsc[crossed:]) / fsc[crossed:]
    power[crossed:] = np.maximum.accumulate(np.maximum(power[crossed:], plateau))
    return power


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


def _shaped_noise(rng: np.random.Generator, envelope: np.ndarray, against: list[np.ndarray],
                  power: np.ndarray, index: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Noise spectrum: white noise times ``envelope``, orthogonal per shell to each
    spectrum in ``against``, scaled to ``power`` per shell (corners: the last shell's)."""
    n = power.size
    counts = _shell_sum(np.ones(index.shape), index, weights, n)
    spectrum = scipy.fft.rfftn(rng.standard_normal(envelope.shape) * envelope, workers=-1)
    spectrum[0, 0, 0] = 0.0
    for other in against:
        dot = _shell_sum(spectrum.real * other.real + spectrum.imag * other.imag,
                         index, weights, n)
        norm = _shell_sum(other.real**2 + other.imag**2, index, weights, n)
        coefficient = np.append(np.divide(dot, norm, out=np.zeros(n), where=norm > 0), 0.0)
        spectrum -= coefficient[index] * other  # index -1 (corners) picks the appended 0
    current = _shell_sum(np.abs(spectrum) ** 2, index, weights, n) / np.maximum(counts, 1)
    corners = index < 0
    corner_power = np.mean(np.abs(spectrum[corners]) ** 2) if corners.any() else 1.0
    scale = np.sqrt(np.append(np.divide(power, current, out=np.zeros(n), where=current > 0),
                              power[-1] / corner_power if corner_power > 0 else 0.0))
    spectrum *= scale[index]
    return spectrum


def make_phantom(seed: int, *, box: int = 64, voxel_size: float = 1.2,
                 resolution: float = 4.0, b_factor: float | None = None,
                 model: gemmi.Structure | str | Path | None = None) -> Phantom:
    """One phantom: half-maps whose FSC crosses 0.143 at ``resolution``, mask and truth.

    The same arguments always give bit-identical maps.

    Args:
        seed: the random seed (non-negative integer).
        box: edge of the cubic box, voxels (32 to 512).
        voxel_size: Å per voxel.
        resolution: where FSC(half1, half2) crosses 0.143, Å; from 2.5 voxels to 1/8 of the
            box edge.
        b_factor: the global B-factor envelope, Å²; None draws it in ``[2, 6] * resolution²``.
        model: an atomic model (gemmi Structure or file) to use instead of a procedural one;
            it must fit in the box with 8 Å to spare on every side.

    Returns:
        A :class:`Phantom`.

    Raises:
        ValueError: a bad box, voxel size, resolution, B-factor or seed, or a model that
            does not fit in the box.
        MapError: the model file cannot be read or holds no atoms.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _check_grid(box, voxel_size, resolution)
    if b_factor is not None and not (np.isfinite(b_factor) and b_factor >= 0):
        raise ValueError(f"b_factor must be a non-negative number of Å², got {b_factor!r}")
    model_rng, param_rng, noise1_rng, noise2_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4))
    edge = box * voxel_size
    if model is None:
        radius = max(10.0, min(0.3 * edge, 0.5 * edge - MODEL_MARGIN))
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
    density = model_map(structure, like).data
    shells = fourier_shells(like.shape, like.voxel_size)
    index, n = shells.index, shells.n
    weights = friedel_weights(box)[None, None, :]
    freq = np.fft.fftfreq(box, voxel_size)
    s2 = freq[:, None, None] ** 2 + freq[None, :, None] ** 2 + np.abs(freq[: box // 2 + 1]) ** 2
    truth_spectrum = scipy.fft.rfftn(density, workers=-1) * np.exp(-b_factor / 4.0 * s2)
    del density, s2
    truth = like.like(scipy.fft.irfftn(truth_spectrum, s=like.shape, workers=-1),
                      source=f"phantom {seed} truth")
    signal = (_shell_sum(np.abs(truth_spectrum) ** 2, index, weights, n)
              / np.maximum(shells.counts, 1))
    fsc = _tuned_fsc(shells.frequency, resolution, ratio)
    power = _noise_power(signal, fsc)

    mask = soft_mask(truth)
    envelope = outside_ratio - (outside_ratio - 1.0) * mask.data.astype(np.float64)
    noise1 = _shaped_noise(noise1_rng, envelope, [truth_spectrum], power, index, weights)
    noise2 = _shaped_noise(noise2_rng, envelope, [truth_spectrum, noise1], power, index,
                           weights)
    del truth_spectrum, envelope
    halves = [like.like(truth.data + scipy.fft.irfftn(noise, s=like.shape, workers=-1),
                        source=f"phantom {seed} half{k}") for k, noise in ((1, noise1), (2, noise2))]
    metadata = {
        "resolution": float(resolution), "source": "synthetic", "seed": int(seed),
        "phantom_version": PHANTOM_VERSION, "phantom_box": int(box),
        "phantom_voxel_size": float(voxel_size), "b_factor": float(b_factor),
        "model": model_name, "atoms": int(structure[0].count_atom_sites()),
        "fsc_half_ratio": ratio, "noise_outside_ratio": outside_ratio,
    }
    return Phantom(halves[0], halves[1], mask, truth, float(resolution), structure, metadata)


__all__ = ["PHANTOM_VERSION", "Phantom", "make_phantom", "soft_mask"]
