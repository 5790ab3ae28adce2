"""The simulated reconstructions against RELION's (Debian's relion 3.1; .ci/run installs it).

The project's particle orientations and CTF parameters are written to STAR files;
``relion_project`` simulates the same particles (CTF, white noise of the same standard
deviation per pixel) from the same truth, ``relion_reconstruct --ctf`` reconstructs each half
unregularised, then again with ``--fsc`` from the FSC of those halves. The project's own
half-maps of the same truth and particles are compared with RELION's per shell: the half-map
FSC, the noise power, the signal gain, the noise near Nyquist and the flat solvent.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import scipy.fft

from dataset_builder.simulation import SimulationSettings
from dataset_builder.simulation.entry import (
    build_specimen,
    grid_particles,
    particle_parameters,
    regularise,
    unregularised_fsc,
)
from dataset_builder.simulation.reconstruction import (
    rounded_shells,
    shell_fsc,
    solvent_fraction,
    solvent_weight,
)
from dataset_builder.simulation.relion import (
    euler_angles,
    euler_matrices,
    write_fsc_star,
    write_particles_star,
)

RELION = shutil.which("relion_project") and shutil.which("relion_reconstruct")
needs_relion = pytest.mark.skipif(
    not RELION, reason="relion_project/relion_reconstruct are not installed "
                       "(apt-get install relion; .ci/run installs it)")

# 64³ of 1.5 Å, 1500 particles per half, defocus 1-3 µm, B 60, 300 kV, Cs 2.7, Q0 0.1.
SETTINGS = SimulationSettings(box=64, voxel_size=1.5, particles=1500, noise_sigma=2.5,
                              defocus_um=(1.0, 3.0), envelope_b=60.0, reference_factor=1.0)
PREFERRED = SETTINGS.with_(preferred_kappa=5.0, preferred_fraction=0.8)


def _run(*args: str, cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): "
                           f"{result.stderr[-2000:]}{result.stdout[-2000:]}")


def _read(path: Path) -> np.ndarray:
    with mrcfile.open(path, permissive=True) as handle:
        return np.asarray(handle.data, dtype=np.float32).copy()


def relion_fsc_input(fsc: np.ndarray) -> np.ndarray:
    """The FSC to give ``relion_reconstruct --fsc`` so that it regularises a half-map as the
    refinement does (``SSNR = FSC / (1 − FSC)``): relion_reconstruct takes its input as the
    halves' FSC of a whole map and uses ``C = sqrt(2 FSC' / (1 + FSC'))`` in its place
    (measured: its signal gain is ``C`` for uniform views), so ``FSC' = FSC² / (2 − FSC²)``."""
    f = np.clip(fsc, 0.0, 0.999)
    return f**2 / (2.0 - f**2)


@cache
def side_by_side(settings: SimulationSettings, seed: int, folder: str):
    """The truth and, per pipeline (``ours``, ``relion``), the unregularised and regularised
    half-maps (float32 arrays) of the same particles, and the regularised maps of the same
    particles without noise (``clean``: the gain without its sampling scatter)."""
    work = Path(folder)
    specimen = build_specimen(settings, seed)
    streams = np.random.SeedSequence(seed).spawn(2)
    ours = [grid_particles(specimen, settings, settings.particles, s) for s in streams]
    half_fsc = unregularised_fsc(*ours)
    clean_settings = settings.with_(noise_sigma=0.0)
    clean = grid_particles(specimen, clean_settings, settings.particles, streams[0])
    clean.noise_power = ours[0].noise_power       # regularise it as the noisy one
    out = {"truth": specimen.truth.data, "fsc": half_fsc,
           "ours": {"unregularised": [u.map().data for u in ours],
                    "regularised": [regularise(u, specimen, settings, half_fsc).data
                                    for u in ours],
                    "clean": [regularise(clean, specimen, settings, half_fsc).data]}}
    with mrcfile.new(work / "truth.mrc", overwrite=True) as handle:
        handle.set_data(specimen.truth.data)
        handle.voxel_size = settings.voxel_size
    relion = {"unregularised": [], "regularised": [], "clean": []}
    angpix = ["--angpix", str(settings.voxel_size)]
    for k, stream in enumerate(streams):
        rotations, defocus = particle_parameters(specimen, settings, settings.particles, stream)
        write_particles_star(work / f"ang{k}.star", rotations, defocus, settings)
        _run("relion_project", "--i", "truth.mrc", "--o", f"half{k}", "--ang", f"ang{k}.star",
             *angpix, "--ctf", "--add_noise", "--white_noise", str(settings.noise_sigma),
             cwd=work)
        _run("relion_reconstruct", "--i", f"half{k}.star", "--o", f"unreg{k}.mrc", "--ctf",
             *angpix, cwd=work)
        relion["unregularised"].append(_read(work / f"unreg{k}.mrc"))
    _run("relion_project", "--i", "truth.mrc", "--o", "clean", "--ang", "ang0.star", *angpix,
         "--ctf", cwd=work)
    spectra = [scipy.fft.rfftn(m) for m in relion["unregularised"]]
    relion_fsc = shell_fsc(*spectra)
    out["relion_fsc"] = relion_fsc
    write_fsc_star(work / "fsc.star", relion_fsc_input(relion_fsc))
    write_fsc_star(work / "ours.star", relion_fsc_input(half_fsc))
    for k in range(2):
        _run("relion_reconstruct", "--i", f"half{k}.star", "--o", f"reg{k}.mrc", "--ctf",
             *angpix, "--fsc", "fsc.star", cwd=work)
        relion["regularised"].append(_read(work / f"reg{k}.mrc"))
    _run("relion_reconstruct", "--i", "clean.star", "--o", "clean.mrc", "--ctf", *angpix,
         "--fsc", "ours.star", cwd=work)
    relion["clean"].append(_read(work / "clean.mrc"))
    out["relion"] = relion
    return out


def shell_stats(maps: list[np.ndarray], truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per rounded shell ``0 .. N/2``: the signal gain ``Re Σ M T* / Σ |T|²`` (mean of the
    halves), the noise power of one half ``Σ |M1 − M2|² / 2n`` (signal cancels; one map:
    ``Σ |M − g T|² / n``) and the halves' FSC."""
    n = truth.shape[0]
    shells = rounded_shells(n).ravel()
    bins = n // 2 + 1
    w = np.broadcast_to(np.where(np.arange(n // 2 + 1) % (n // 2) == 0, 1.0, 2.0),
                        (n, n, n // 2 + 1)).ravel()
    t = scipy.fft.rfftn(truth).ravel()
    counts = np.bincount(shells, w, bins)
    t_power = np.bincount(shells, w * np.abs(t) ** 2, bins)
    gains, noises, spectra = [], [], []
    for m in maps:
        f = scipy.fft.rfftn(m).ravel()
        spectra.append(f)
        gain = np.bincount(shells, w * np.real(f * np.conj(t)), bins) / t_power
        residual = f - gain[shells] * t
        gains.append(gain)
        noises.append(np.bincount(shells, w * np.abs(residual) ** 2, bins) / counts)
    if len(spectra) == 2:
        noises = [np.bincount(shells, w * np.abs(spectra[0] - spectra[1]) ** 2, bins)
                  / (2 * counts)]
    return {"gain": np.mean(gains, axis=0), "noise": np.mean(noises, axis=0),
            "fsc": shell_fsc(*(s.reshape(n, n, n // 2 + 1) for s in spectra))
            if len(spectra) == 2 else None,
            "counts": counts}


def test_euler_angles_give_back_the_rotations():
    from dataset_builder.simulation.orientations import ViewDistribution

    rotations = ViewDistribution().sample(np.random.default_rng(0), 1000)
    special = np.array([np.eye(3), np.diag([-1.0, 1.0, -1.0]),
                        [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    for r in (rotations, special):
        np.testing.assert_allclose(euler_matrices(euler_angles(r)), r, atol=1e-9)


def test_star_files_hold_every_particle(tmp_path):
    settings = SETTINGS.with_(particles=5)
    rotations = euler_matrices(np.array([[10.0, 20.0, 30.0]] * 5))
    write_particles_star(tmp_path / "p.star", rotations, np.full(5, 15000.0), settings)
    text = (tmp_path / "p.star").read_text()
    assert "data_optics" in text and "data_particles" in text
    assert text.count("@particles.mrcs") == 5 and "10.000000 20.000000 30.000000" in text
    write_fsc_star(tmp_path / "f.star", np.linspace(1, 0, 33))
    assert "_rlnGoldStandardFsc" in (tmp_path / "f.star").read_text()


def _fsc_z(ours: np.ndarray, relion: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Difference of two independent FSC estimates in units of its scatter,
    ``sqrt(2) (1 − F²) / sqrt(n_eff)``, ``n_eff`` the shell's points the flattening keeps."""
    mean = (ours + relion) / 2
    return (ours - relion) / (np.sqrt(2) * (1 - mean**2) / np.sqrt(solvent_fraction(n) * counts))


BAND_POINTS = 6500
"""Points per band of the noise comparison: ``3 sqrt(2 · 2 / (kept · n)) <= 0.1`` (two
estimates, Hermitian pairs, the share of the box the flattening keeps, 0.55)."""


def _bands(counts: np.ndarray, least: float, first: int = 1) -> list[slice]:
    """Consecutive shells from ``first`` pooled until each band holds ``least`` points (the
    last band takes what is left)."""
    bands, start, total = [], first, 0.0
    for k in range(first, counts.size):
        total += counts[k]
        if total >= least:
            bands.append(slice(start, k + 1))
            start, total = k + 1, 0.0
    if start < counts.size and bands:
        bands[-1] = slice(bands[-1].start, counts.size)
    return bands


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("relion")


@pytest.mark.slow
@needs_relion
@pytest.mark.parametrize("settings", [SETTINGS, PREFERRED], ids=["uniform", "preferred"])
def test_reconstructions_agree_with_relion(settings, work):
    folder = work / ("preferred" if settings.preferred_kappa else "uniform")
    folder.mkdir(exist_ok=True)
    result = side_by_side(settings, 0, str(folder))
    n, truth = settings.box, result["truth"]
    ours = {k: shell_stats(v, truth) for k, v in result["ours"].items()}
    relion = {k: shell_stats(v, truth) for k, v in result["relion"].items()}
    counts = ours["unregularised"]["counts"]
    band = slice(1, int(0.9 * n / 2) + 1)
    report = {}
    # 1. Noise through CTF, slices and inversion: the same power per shell (unregularised, to
    # 0.9 Nyquist). A shell's estimate scatters as 1 / sqrt(its independent points), so the
    # low shells are pooled into bands of at least BAND_POINTS (the 10 % then 3 standard
    # errors); from about 0.7 Nyquist on every shell is its own band.
    upto = int(0.9 * n / 2)
    ratios = [ours["unregularised"]["noise"][b].mean() / relion["unregularised"]["noise"][b].mean()
              for b in _bands(counts[:upto + 1], BAND_POINTS, first=1)]
    report["noise ratio"] = (min(ratios), max(ratios), len(ratios))
    assert np.all(np.abs(np.array(ratios) - 1) < 0.10), ratios
    # 2. The half-map FSC per shell to 0.9 Nyquist, unregularised and regularised: the same
    # within the scatter of two independent estimates.
    for kind in ("unregularised", "regularised"):
        where = band
        z = _fsc_z(ours[kind]["fsc"], relion[kind]["fsc"], counts, n)[where]
        report[f"fsc z {kind}"] = (round(z.mean(), 2), round(z.std(), 2))
        # neighbouring shells correlate (flattening): about 14 independent of 28, so 0.75 is
        # about 3 standard errors of the mean
        assert abs(z.mean()) < 0.75 and z.std() < 1.6, (kind, z)
    # 3. The signal gain of the regulariser, from the same FSC without noise: within 0.03 per
    # shell from the second to 0.9 Nyquist (beyond it the band-limited truth has almost no
    # power to measure a gain with). Preferred views: 0.04 (how each program spreads the
    # weights next to the unsampled cone differs; measured up to 0.038 at 6 Å).
    above = (np.arange(n // 2 + 1) >= 2) & (np.arange(n // 2 + 1) <= 0.9 * n / 2)
    difference = ours["clean"]["gain"] - relion["clean"]["gain"]
    report["gain difference"] = (difference[above].min(), difference[above].max(),
                                 int(above.sum()))
    tolerance = 0.03 if settings.views().uniform else 0.04
    assert np.all(np.abs(difference[above]) <= tolerance), difference[above]
    # 4. Noise near Nyquist (0.9 to 1): regularised, not removed.
    edge = (np.arange(n // 2 + 1) >= 0.9 * n / 2) & (np.arange(n // 2 + 1) < n // 2)
    kept = ours["regularised"]["noise"][edge] / ours["unregularised"]["noise"][edge]
    report["noise kept near Nyquist"] = kept.mean()
    assert kept.mean() > 1e-5
    # 5. Flat solvent beyond the reconstruction sphere and its edge, in both.
    outside = solvent_weight(n) == 1
    for name in ("ours", "relion"):
        for half in result[name]["regularised"]:
            assert half[outside].std() < 0.01 * half[~outside].std(), name
    print(f"\n{settings.views().as_dict()['kind']}: " + "; ".join(
        f"{k}: {np.round(v, 4).tolist() if isinstance(v, tuple) else round(float(v), 6)}"
        for k, v in report.items()))
