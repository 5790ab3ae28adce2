"""The C_ref family of metrics (crefDenoiser, Agarwal et al., IUCrJ 2024) and their companions.

Notation: half-maps ``M1``, ``M2``; their average ``M = (M1 + M2) / 2``; the denoised full
map ``D = D(M)``; denoised half-maps ``D1``, ``D2``; the noise-free truth ``T`` (phantoms);
an atomic model; a reference map (a higher-resolution map of the same specimen).

* ``FSC_half = FSC(M1, M2)`` and ``C_ref = sqrt(2 f / (1 + f))`` (Rosenthal & Henderson
  2003), the FSC between the full map and the noise-free map. Here ``f`` is ``FSC_half``
  clipped to [0, 1]: a negative half-map FSC means no signal, so ``C_ref = 0``. (The
  reference trainer keeps ``|f|`` instead; see :mod:`baselines.crefdenoiser.cref_loss`.)
* ``FSC_FD = FSC(D, M)``. A good denoiser keeps ``FSC_FD`` equal to ``C_ref``: above it is
  noise left in, below it is signal lost. Scores: ``cref_rmse``, the RMSE between
  ``max(FSC_FD, 0)²`` and ``C_ref²`` over the shells up to Nyquist (the benchmark score;
  a negative FSC_FD counts as 0, as in the paper's anchors), and
  ``cref_l1``, the mean ``|C_ref - FSC_FD|`` (the training loss, on our shells). A shell
  where ``D`` keeps no power above float32 rounding (mean power per voxel below
  :data:`NO_POWER` times ``D``'s mean over all shells) has ``FSC_FD = 0``: the denoiser
  removed everything there, signal included, and is scored for it (a filter that zeroes
  shells would otherwise leave rounding noise there, or NaN, and skip them).
* ``fsc05_change = res_0.5(FSC(D2, M1)) - res_0.5(FSC(M1, M2))`` in Å; negative is better.
* The per-shell variance analysis (paper eqs. 12-16, Palovcak et al. 2020), with
  ``cov[F1, F2](s) = (1/n) Σ Re(F1 F2*)`` over shell ``s``:
  ``var(S) = cov(M1, M2)``, ``var(N) = sqrt(cov(M1, M1) cov(M2, M2)) - cov(M1, M2)``,
  ``var(B) = cov(D1, D2) + sqrt(cov(M1, M1) cov(M2, M2)) - 2 cov(M1, D2) - var(N)``,
  ``var(N^d) = sqrt(cov(D1, D1) cov(D2, D2)) - cov(D1, D2)``; curves S/N, S/B and
  ``cov(D1, D2)`` itself (the diagnostic of the independence assumption: with denoised halves
  that share no noise it estimates the signal the denoiser kept, plus its bias).
* Model-map FSC (like phenix.mtriage): ``d_fsc_model`` at 0.143 and 0.5 between a map and
  the model map computed on its grid (band-limited without a roll-off, which would bias the
  last shells); unmasked, and masked with a soft mask around the atoms.
* With a reference map: ``FSC(D, reference)`` and its crossings.
* With the truth: ``FSC(D, T)`` and its crossings, and the correlation and RMSE to ``T``
  (inside the mask, weighted by it, in the masked row; over the box in the unmasked row).

:func:`evaluate` computes the whole set for one case, unmasked and masked, each map's
transform made once per masking. Metrics that cannot be computed are ``None``, with the
reason in the report's notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gemmi
import numpy as np
import pandas as pd

from cref_bench.errors import InputError
from cref_bench.maps.volume import Volume
from cref_bench.metrics.facts import MASKINGS
from cref_bench.metrics.fsc import Crossing, FSCCurve, Spectra, resolution_change

THRESHOLDS = (0.143, 0.5)


def c_ref(fsc_half: np.ndarray) -> np.ndarray:
    """``C_ref = sqrt(2 f / (1 + f))`` with ``f`` the half-map FSC clipped to [0, 1].

    Args:
        fsc_half: the half-map FSC per shell (NaN stays NaN).

    Returns:
        The FSC expected between the full map and the noise-free map, per shell.
    """
    f = np.clip(np.asarray(fsc_half, dtype=np.float64), 0.0, 1.0)
    return np.sqrt(2.0 * f / (1.0 + f))


NO_POWER = 1e-12
"""Relative per-voxel power below which a shell of the denoised map counts as empty
(float32 rounding leaves about 1e-14 of the map's power in every shell)."""


def fsc_fd_curve(spectra: Spectra, denoised: str = "D", average: str = "M") -> FSCCurve:
    """``FSC_FD = FSC(D, M)``, with shells where ``D`` holds no power (see :data:`NO_POWER`)
    set to 0.

    Args:
        spectra: spectra holding the denoised map and the average of the half-maps.
        denoised, average: their names in ``spectra``.

    Returns:
        The curve.
    """
    curve = spectra.fsc(denoised, average)
    (power,) = spectra.cov((denoised, denoised))
    counts = curve.counts.astype(np.float64)
    mean_power = float(np.sum(power * counts) / np.sum(counts))
    empty = power <= NO_POWER * mean_power
    return FSCCurve(curve.frequency, np.where(empty, 0.0, curve.value), curve.counts)


def cref_rmse(fsc_fd: np.ndarray, cref: np.ndarray) -> float:
    """The benchmark score: RMSE between ``max(FSC_FD, 0)²`` and ``C_ref²`` over the shells.

    A negative ``FSC_FD`` (the denoised map anti-correlated with the input in a shell, as
    after a contrast inversion) counts as 0, as in the paper's anchors: squaring it unclipped
    would score an inverted shell like a correct one.
    """
    fd = np.maximum(np.asarray(fsc_fd, dtype=np.float64), 0.0)
    diff = fd ** 2 - np.asarray(cref, dtype=np.float64) ** 2
    return float(np.sqrt(np.nanmean(diff ** 2)))


def cref_l1(fsc_fd: np.ndarray, cref: np.ndarray) -> float:
    """The training loss on our shells: the mean ``|C_ref - FSC_FD|`` over the shells."""
    return float(np.nanmean(np.abs(np.asarray(cref, np.float64) - np.asarray(fsc_fd, np.float64))))


def variance_analysis(spectra: Spectra, m1: str = "M1", m2: str = "M2",
                      d1: str = "D1", d2: str = "D2") -> dict[str, np.ndarray]:
    """Per-shell variances of signal, noise, bias and leftover noise (paper eqs. 12-16).

    Args:
        spectra: spectra holding the noisy halves ``m1``, ``m2`` and denoised halves ``d1``, ``d2``.

    Returns:
        Curves ``var_signal``, ``var_noise``, ``var_bias``, ``var_leftover_noise``,
        ``snr`` (S/N), ``sbr`` (S/B) and ``cov_d1d2`` (``cov(D1, D2)``), one value per shell.
    """
    c12, c11, c22, e12, e11, e22, c1e2 = spectra.cov(
        (m1, m2), (m1, m1), (m2, m2), (d1, d2), (d1, d1), (d2, d2), (m1, d2))
    total = np.sqrt(c11 * c22)
    var_s = c12
    var_n = total - c12
    var_b = e12 + total - 2.0 * c1e2 - var_n
    var_nd = np.sqrt(e11 * e22) - e12
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(var_n > 0, var_s / var_n, np.nan)
        sbr = np.where(var_b > 0, var_s / var_b, np.nan)
    return {"var_signal": var_s, "var_noise": var_n, "var_bias": var_b,
            "var_leftover_noise": var_nd, "snr": snr, "sbr": sbr, "cov_d1d2": e12}


def weighted_agreement(a: np.ndarray, b: np.ndarray,
                       weight: np.ndarray | None) -> tuple[float, float]:
    """Pearson correlation and RMSE between two arrays, optionally weighted per voxel.

    Args:
        a, b: arrays of one shape.
        weight: non-negative weights (a soft mask) or ``None`` for equal weights.

    Returns:
        ``(correlation, rmse)``.
    """
    a = a.astype(np.float64, copy=False).ravel()
    b = b.astype(np.float64, copy=False).ravel()
    w = np.ones_like(a) if weight is None else weight.astype(np.float64, copy=False).ravel()
    total = w.sum()
    ma, mb = (w @ a) / total, (w @ b) / total
    da, db = a - ma, b - mb
    cov = (w * da) @ db
    corr = cov / np.sqrt(((w * da) @ da) * ((w * db) @ db))
    diff = a - b
    rmse = np.sqrt(((w * diff) @ diff) / total)
    return float(corr), float(rmse)


@dataclass
class MetricReport:
    """Scalars, curves and notes for one case.

    Attributes:
        scalars: ``{masking: {metric: value or None}}`` for masking in ``("unmasked", "masked")``.
        curves: long table with columns masking, curve, shell, frequency, value.
        notes: ``{masking: {metric: reason}}`` for every metric that is ``None`` or a bound.
        bounds: ``{masking: {metric: "<" or ">"}}`` for every metric whose value is a bound,
            not a measurement: a resolution whose FSC never falls below the threshold up to
            Nyquist is reported as the Nyquist resolution with ``"<"`` (it is finer), one
            below the threshold already at the first shell as that shell's with ``">"``.
    """

    scalars: dict[str, dict[str, float | None]] = field(default_factory=dict)
    curves: pd.DataFrame | None = None
    notes: dict[str, dict[str, str]] = field(default_factory=dict)
    bounds: dict[str, dict[str, str]] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """One flat dict per masking: ``masked`` (bool), every scalar, and ``notes`` (text)."""
        out = []
        for masking, values in self.scalars.items():
            notes = "; ".join(f"{k}: {v}" for k, v in self.notes.get(masking, {}).items())
            out.append({"masked": masking == "masked", **values, "notes": notes})
        return out


class _Recorder:
    """Collects one masking's scalars, curves and notes."""

    def __init__(self, masking: str, shells_frequency: np.ndarray):
        self.masking = masking
        self.frequency = shells_frequency
        self.scalars: dict[str, float | None] = {}
        self.notes: dict[str, str] = {}
        self.bounds: dict[str, str] = {}
        self.curves: list[pd.DataFrame] = []

    def curve(self, name: str, values: np.ndarray) -> None:
        self.curves.append(pd.DataFrame({
            "masking": self.masking, "curve": name, "shell": np.arange(1, values.size + 1),
            "frequency": self.frequency, "value": np.asarray(values, dtype=np.float64)}))

    def value(self, name: str, value: float | None, note: str = "", bound: str = "") -> None:
        self.scalars[name] = None if value is None else float(value)
        if value is None or bound:
            self.notes[name] = note
        if bound and value is not None:
            self.bounds[name] = bound

    def crossing(self, name: str, crossing: Crossing) -> None:
        if crossing.resolution is None and crossing.bound:
            self.value(name, crossing.limit, crossing.note, crossing.bound)
        else:
            self.value(name, crossing.resolution, crossing.note)

    def crossings(self, prefix: str, curve: FSCCurve) -> None:
        for t in THRESHOLDS:
            self.crossing(f"{prefix}_{_tag(t)}", curve.resolution_at(t))

    def missing(self, names, note: str) -> None:
        for name in names:
            self.value(name, None, note)


def _change(rec: _Recorder, after: Crossing, before: Crossing) -> None:
    """``fsc05_change``: after minus before; a bound where ``after`` is one (``before`` must be
    a crossing, else the change is unknown)."""
    if before.resolution is None:
        rec.value("fsc05_change", None, f"half-map FSC {before.note}")
    elif after.resolution is not None:
        rec.value("fsc05_change", resolution_change(after.resolution, before.resolution))
    else:
        rec.value("fsc05_change", after.limit - before.resolution,
                  f"FSC(D2, M1) {after.note}", after.bound)


def _tag(threshold: float) -> str:
    return f"{threshold:g}".replace("0.", "0")


MODEL_METRICS = tuple(f"d_fsc_model_{_tag(t)}{s}" for s in ("", "_input") for t in THRESHOLDS)
HALF_METRICS = ("res_d2m1_05", "fsc05_change")
TRUTH_METRICS = tuple(f"truth_res_{_tag(t)}" for t in THRESHOLDS) + ("truth_corr", "truth_rmse")
REFERENCE_METRICS = tuple(f"reference_res_{_tag(t)}" for t in THRESHOLDS)


def _model_part(rec: _Recorder, spectra: Spectra, model_volume: Volume | None,
                why_not: str) -> None:
    if model_volume is None:
        rec.missing(MODEL_METRICS, why_not)
        return
    spectra.add("Model", model_volume)
    for target, suffix in (("D", ""), ("M", "_input")):
        curve = spectra.fsc(target, "Model")
        rec.curve(f"fsc_model{suffix}", curve.value)
        for t in THRESHOLDS:
            rec.crossing(f"d_fsc_model_{_tag(t)}{suffix}", curve.resolution_at(t))


def _evaluate_masking(rec: _Recorder, spectra: Spectra, maps: dict[str, Volume | None],
                      weight: np.ndarray | None, why_no_halves: str) -> None:
    fsc_half = spectra.fsc("M1", "M2")
    cref = c_ref(fsc_half.value)
    fsc_fd = fsc_fd_curve(spectra)
    rec.curve("fsc_half", fsc_half.value)
    rec.curve("c_ref", cref)
    rec.curve("fsc_fd", fsc_fd.value)
    rec.crossings("res_half", fsc_half)
    rec.value("cref_rmse", cref_rmse(fsc_fd.value, cref))
    rec.value("cref_l1", cref_l1(fsc_fd.value, cref))

    if maps["D1"] is not None:
        fsc_d2m1 = spectra.fsc("D2", "M1")
        rec.curve("fsc_d2m1", fsc_d2m1.value)
        after, before = fsc_d2m1.resolution_at(0.5), fsc_half.resolution_at(0.5)
        rec.crossing("res_d2m1_05", after)
        _change(rec, after, before)
        for name, values in variance_analysis(spectra).items():
            rec.curve(name, values)
    else:
        rec.missing(HALF_METRICS, why_no_halves)

    if maps["T"] is not None:
        for target, suffix in (("D", ""), ("M", "_input")):
            curve = spectra.fsc(target, "T")
            rec.curve(f"fsc_truth{suffix}", curve.value)
        rec.crossings("truth_res", spectra.fsc("D", "T"))
        corr, rmse = weighted_agreement(maps["D"].data, maps["T"].data, weight)
        rec.value("truth_corr", corr)
        rec.value("truth_rmse", rmse)
    else:
        rec.missing(TRUTH_METRICS, "no truth map")

    if maps["R"] is not None:
        curve = spectra.fsc("D", "R")
        rec.curve("fsc_reference", curve.value)
        rec.crossings("reference_res", curve)
    else:
        rec.missing(REFERENCE_METRICS, "no reference map")

CORE_METRICS = tuple(f"res_half_{_tag(t)}" for t in THRESHOLDS) + ("cref_rmse", "cref_l1")


def evaluate(half1: Volume, half2: Volume, denoised: Volume, *,
             denoised_half1: Volume | None = None, denoised_half2: Volume | None = None,
             mask: Volume | None = None, model=None, truth: Volume | None = None,
             reference: Volume | None = None, model_resolution: float | None = None,
             halves_note: str = "") -> MetricReport:
    """Every metric for one case, unmasked and masked.

    Args:
        half1, half2: the noisy half-maps (one grid).
        denoised: the denoised full map ``D(M)``.
        denoised_half1, denoised_half2: the denoised half-maps, both or neither.
        mask: the real-space mask applied to every map for the masked row.
        model: an atomic model (``gemmi.Structure`` or a path) for the model-map FSC; its
            masked row uses a soft mask around the atoms, as phenix.mtriage does.
        truth: the noise-free map, where known (phantoms).
        reference: a reference map (e.g. a higher-resolution map of the same specimen).
        model_resolution: the ``d_min`` of the model map, Å (default: see
            :func:`cref_bench.metrics.model_map.model_map`).
        halves_note: why denoised halves are absent (shown in the notes).

    Returns:
        A :class:`MetricReport`. The masked row is there when a mask or a model is given.

    Raises:
        GeometryMismatch: a map is not on the grid of ``half1``.
        MapError: a map has non-finite voxels.
        InputError: only one of the denoised halves is given.
    """
    if (denoised_half1 is None) != (denoised_half2 is None):
        raise InputError("give both denoised half-maps or neither")
    maps = {"M1": half1, "M2": half2, "D": denoised, "D1": denoised_half1, "D2": denoised_half2,
            "T": truth, "R": reference}
    why_no_halves = halves_note or "no denoised half-maps given"
    model_volume = model_mask = None
    if model is not None:
        from cref_bench.metrics import model_map as mm

        structure = model if isinstance(model, gemmi.Structure) else mm.read_model(model)
        model_volume = mm.model_map(structure, half1, d_min=model_resolution, taper=False)
        model_mask = mm.atom_mask(structure, half1)

    report = MetricReport()
    frames = []
    for masking in MASKINGS:
        masked = masking == "masked"
        if masked and mask is None and model is None:
            continue
        rec = _Recorder(masking, Spectra(half1).shells.frequency)
        if masked and mask is None:
            rec.missing(CORE_METRICS + HALF_METRICS + TRUTH_METRICS + REFERENCE_METRICS,
                        "no mask given")
        else:
            spectra = Spectra(half1, mask if masked else None)
            for name, volume in maps.items():
                if volume is not None:
                    spectra.add(name, volume)
            spectra.combine("M", {"M1": 0.5, "M2": 0.5})
            _evaluate_masking(rec, spectra, maps, mask.data if masked else None, why_no_halves)
            if not masked:
                _model_part(rec, spectra, model_volume, "no model given")
            spectra.release()
        if masked:
            if model_mask is None:
                rec.missing(MODEL_METRICS, "no model given")
            else:
                spectra = Spectra(half1, model_mask)
                for name in ("M1", "M2", "D"):
                    spectra.add(name, maps[name])
                spectra.combine("M", {"M1": 0.5, "M2": 0.5})
                _model_part(rec, spectra, model_volume, "")
                spectra.release()
        report.scalars[masking] = rec.scalars
        report.notes[masking] = rec.notes
        report.bounds[masking] = rec.bounds
        frames.extend(rec.curves)
    report.curves = pd.concat(frames, ignore_index=True)
    return report


def reference_cref_loss(denoised: np.ndarray, half1: np.ndarray, half2: np.ndarray,
                        mask: np.ndarray | None = None) -> float:
    """The reference crefDenoiser loss of one patch, in numpy (the value
    the reference trainer's loss in ``baselines.crefdenoiser.cref_loss`` computes; see there).

    Args:
        denoised: the network output ``D(M)``, a 3D array.
        half1, half2: the half-map patches.
        mask: optional mask patch.

    Returns:
        The trapezoid-rule mean of ``|C_ref - FSC_FD|`` over the reference shells.
    """
    from cref_bench.metrics.shells import reference_shells

    if mask is not None:
        half1, half2 = half1 * mask, half2 * mask
    like = Volume(half1)
    spectra = Spectra(like, shells=reference_shells(like.shape))
    for name, data in (("M1", half1), ("M2", half2), ("D", denoised)):
        spectra.add(name, like.like(data))
    spectra.combine("M", {"M1": 0.5, "M2": 0.5})
    f = np.abs(spectra.fsc("M1", "M2").value)
    target = np.sqrt(2 * f / (1 + f))
    fsc_fd = np.abs(spectra.fsc("D", "M").value)
    return float(np.trapezoid(np.abs(target - fsc_fd), dx=1.0 / (f.size - 1)))
