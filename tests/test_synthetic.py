"""Tests for the phantom corpus: procedural models, phantoms (FSC calibration, truth, mask,
determinism), the corpus writer and the ``cref-bench synth`` command."""

from __future__ import annotations

import time
from pathlib import Path

import gemmi
import numpy as np
import pytest
import scipy.fft
from scipy.spatial.distance import cdist

from cref_bench import cli
from cref_bench.corpus import splits
from cref_bench.corpus.reader import open_corpus
from cref_bench.errors import CorpusError
from cref_bench.metrics.fsc import Spectra, fsc
from dataset_builder.phantom_models import build_model
from dataset_builder.synthetic import entry_parameters, make_phantom, write_phantom_corpus

MODEL_3J5P = Path(__file__).resolve().parents[2] / "shared" / "reference" / "models" / "3j5p.pdb"


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(11, box=64, voxel_size=1.2, resolution=4.0)


def _crossing(p) -> float:
    return fsc(p.half1, p.half2).resolution_at(0.143).resolution


# --------------------------------------------------------------------------- FSC calibration

@pytest.mark.parametrize("seed, box, voxel, resolution", [
    (0, 64, 1.2, 4.0),
    (1, 64, 2.0, 8.0),
    (2, 64, 0.8, 2.0),
    (3, 80, 0.9, 3.1),
    (4, 48, 1.5, 6.5),
])
def test_half_map_fsc_crosses_at_target(seed, box, voxel, resolution):
    p = make_phantom(seed, box=box, voxel_size=voxel, resolution=resolution)
    assert p.half1.shape == (box,) * 3 and p.half1.voxel_size == (voxel,) * 3
    assert abs(_crossing(p) - resolution) <= 0.3
    assert p.resolution == resolution and p.metadata["resolution"] == resolution
    curve = fsc(p.half1, p.half2)
    low = curve.frequency < 1.0 / (3.0 * resolution)
    assert low.sum() >= 2 and np.all(curve.value[low] > 0.95)
    # Well beyond the crossing the halves share (almost) nothing.
    assert np.all(curve.value[curve.frequency > 1.5 / resolution] < 0.05)


def test_fsc_curve_has_the_designed_shape(phantom):
    curve = fsc(phantom.half1, phantom.half2)
    ratio = phantom.metadata["fsc_half_ratio"]
    half = curve.resolution_at(0.5).resolution
    assert half == pytest.approx(ratio * phantom.resolution, rel=0.03)
    # Noise power over signal power rises with frequency up to the crossing (then plateaus).
    spectra = Spectra(phantom.truth)
    spectra.add("t", phantom.truth)
    spectra.add("n", phantom.half1.like(phantom.half1.data - phantom.truth.data))
    power_t, power_n = spectra.cov(("t", "t"), ("n", "n"))
    below = spectra.shells.frequency < 1.0 / phantom.resolution
    assert np.all(np.diff((power_n / power_t)[below]) > 0)


def test_given_b_factor_is_the_envelope_of_the_truth():
    sharp = make_phantom(5, b_factor=0.0)
    blurred = make_phantom(5, b_factor=120.0)
    assert blurred.metadata["b_factor"] == 120.0
    a = scipy.fft.rfftn(sharp.truth.data.astype(np.float64))
    b = scipy.fft.rfftn(blurred.truth.data.astype(np.float64))
    freq = np.fft.fftfreq(64, 1.2)
    s2 = freq[:, None, None] ** 2 + freq[None, :, None] ** 2 + np.abs(freq[:33]) ** 2
    strong = (np.abs(a) > 1e-2 * np.abs(a).max()) & (s2 < 0.2**2)
    assert strong.sum() > 100
    np.testing.assert_allclose(b[strong] / a[strong], np.exp(-30.0 * s2[strong]), rtol=2e-3,
                               atol=2e-4)


# --------------------------------------------------------------------------- truth and noise

def test_average_of_halves_is_truth_plus_average_noise(phantom):
    average_noise = (phantom.half1.data.astype(np.float64) + phantom.half2.data) / 2 \
        - phantom.truth.data
    difference = (phantom.half1.data.astype(np.float64) - phantom.half2.data) / 2
    assert abs(average_noise.mean()) < 1e-3 * average_noise.std()
    # Equal-power noises orthogonal to each other within the Nyquist sphere (not in the
    # corners beyond it): (N1 + N2)/2 and (N1 - N2)/2 have (nearly) one power.
    assert average_noise.std() == pytest.approx(difference.std(), rel=1e-2)
    assert average_noise.std() > 0.1 * phantom.truth.data.std()


def test_noise_is_stronger_outside_the_particle():
    p = make_phantom(3)
    ratio = p.metadata["noise_outside_ratio"]
    noise = p.half1.data - p.truth.data
    inside, outside = noise[p.mask.data > 0.99].std(), noise[p.mask.data < 0.01].std()
    assert 1.0 <= ratio <= 1.5
    assert outside / inside == pytest.approx(ratio, rel=0.15)


def test_mask_is_soft_covers_the_particle_and_is_small(phantom):
    mask, truth = phantom.mask.data, phantom.truth.data
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert np.any((mask > 0.05) & (mask < 0.95))  # a soft edge
    assert truth[mask > 0.5].sum() > 0.99 * truth.sum()
    assert (mask > 0.5).mean() < 0.35


def test_same_seed_same_maps_other_seed_other_maps(phantom):
    again = make_phantom(11, box=64, voxel_size=1.2, resolution=4.0)
    for name in ("half1", "half2", "mask", "truth"):
        assert np.array_equal(getattr(phantom, name).data, getattr(again, name).data), name
    assert again.metadata == phantom.metadata
    other = make_phantom(12, box=64, voxel_size=1.2, resolution=4.0)
    assert not np.array_equal(other.truth.data, phantom.truth.data)
    assert not np.array_equal(other.half1.data - other.truth.data,
                              phantom.half1.data - phantom.truth.data)


def test_metadata_for_the_store(phantom):
    meta = phantom.metadata
    assert meta["source"] == "synthetic" and meta["seed"] == 11
    assert meta["phantom_box"] == 64 and meta["phantom_voxel_size"] == 1.2
    assert meta["b_factor"] > 0 and meta["model"] == "procedural"
    assert meta["atoms"] == phantom.structure[0].count_atom_sites() > 0
    assert not {"id", "shape", "voxel_size", "box", "origin", "stats"} & set(meta)


def test_one_small_phantom_is_fast():
    make_phantom(0)  # warm caches
    start = time.perf_counter()
    make_phantom(1)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("kwargs, fault", [
    ({"resolution": 2.0}, "resolution"),          # below 2.5 voxels of 1.2 Å
    ({"resolution": 12.0}, "resolution"),         # above a 76.8 Å box / 8
    ({"box": 16}, "box"),
    ({"voxel_size": -1.0}, "voxel_size"),
    ({"b_factor": -5.0}, "b_factor"),
])
def test_bad_arguments_are_refused(kwargs, fault):
    with pytest.raises(ValueError, match=fault):
        make_phantom(0, **kwargs)


def test_negative_seed_is_refused():
    with pytest.raises(ValueError, match="seed"):
        make_phantom(-1)


# --------------------------------------------------------------------------- a given model

def test_given_model_file():
    if not MODEL_3J5P.is_file():
        pytest.skip(f"reference model not found at {MODEL_3J5P} (../shared/reference absent)")
    p = make_phantom(0, box=64, voxel_size=2.0, resolution=6.0, model=MODEL_3J5P)
    assert p.structure[0].count_atom_sites() == p.metadata["atoms"] > 10000
    assert abs(_crossing(p) - 6.0) <= 0.3
    assert p.truth.data[p.mask.data > 0.5].sum() > 0.99 * p.truth.data.sum()
    xyz = np.array([cra.atom.pos.tolist() for cra in p.structure[0].all()])
    centre_zyx = np.asarray(p.truth.origin) + 32 * 2.0
    np.testing.assert_allclose((xyz.min(0) + xyz.max(0))[::-1] / 2, centre_zyx, atol=1e-6)
    with pytest.raises(ValueError, match="box edge"):
        make_phantom(0, box=40, voxel_size=2.0, resolution=6.0, model=MODEL_3J5P)


def test_given_structure_anywhere_in_space():
    structure = build_model(np.random.default_rng(8), 20.0, centre=(100.0, -250.0, 40.0))
    before = structure.make_pdb_string()
    p = make_phantom(2, box=64, voxel_size=1.0, resolution=3.0, model=structure)
    assert structure.make_pdb_string() == before  # the caller's model is left alone
    xyz = np.array([cra.atom.pos.tolist() for cra in p.structure[0].all()])
    np.testing.assert_allclose((xyz.min(0) + xyz.max(0))[::-1] / 2,
                               np.asarray(p.truth.origin) + 32.0, atol=1e-6)
    assert p.truth.data[p.mask.data > 0.5].sum() > 0.99 * p.truth.data.sum()
    assert abs(_crossing(p) - 3.0) <= 0.3


# --------------------------------------------------------------------------- models

def _chains(structure):
    return [(chain.name[0], np.array([res["CA"][0].pos.tolist() for res in chain]))
            for chain in structure[0]]


def _distances(ca: np.ndarray, k: int) -> np.ndarray:
    return np.linalg.norm(ca[k:] - ca[:-k], axis=1)


def _dihedral(p0, p1, p2, p3) -> float:
    b1 = (p2 - p1) / np.linalg.norm(p2 - p1)
    v = (p0 - p1) - np.dot(p0 - p1, b1) * b1
    w = (p3 - p2) - np.dot(p3 - p2, b1) * b1
    return float(np.degrees(np.arctan2(np.dot(np.cross(b1, v), w), np.dot(v, w))))


def test_helices_are_right_handed_and_residues_are_l():
    structure = build_model(np.random.default_rng(0), 30.0)
    for chain in structure[0]:
        atoms = {name: np.array([res[name][0].pos.tolist() for res in chain])
                 for name in ("N", "CA", "C", "CB")}
        n, ca, c, cb = atoms["N"], atoms["CA"], atoms["C"], atoms["CB"]
        # Signed volume (N - CA) . ((C - CA) x (CB - CA)): about +2.5 Å^3 for L residues.
        volume = np.einsum("ij,ij->i", n - ca, np.cross(c - ca, cb - ca))
        np.testing.assert_allclose(volume, 2.5, atol=0.2)
        if chain.name.startswith("h"):  # CA pseudo-torsion of a right-handed α-helix: ~ +50°
            assert 45.0 < _dihedral(*ca[:4]) < 55.0


def test_model_geometry_and_packing():
    kinds = set()
    for seed, radius in [(0, 25.0), (1, 40.0), (2, 40.0), (4, 25.0), (7, 60.0)]:
        structure = build_model(np.random.default_rng(seed), radius, centre=(5.0, -3.0, 2.0))
        chains = _chains(structure)
        for kind, ca in chains:
            kinds.add(kind)
            np.testing.assert_allclose(_distances(ca, 1), 3.8, atol=0.1)
            if kind == "h":
                assert np.all((_distances(ca, 3) > 5.0) & (_distances(ca, 3) < 5.4))
            else:
                assert np.all((_distances(ca, 2) > 6.4) & (_distances(ca, 2) < 7.0))
        for i in range(len(chains)):
            for j in range(i):
                assert cdist(chains[i][1], chains[j][1]).min() >= 3.0
        atoms = [cra.atom for cra in structure[0].all()]
        xyz = np.array([a.pos.tolist() for a in atoms])
        assert np.linalg.norm(xyz - [5.0, -3.0, 2.0], axis=1).max() <= radius
        b = np.array([a.b_iso for a in atoms])
        assert b.min() > 0 and b.std() > 1.0
        assert {a.name for a in atoms} == {"N", "CA", "C", "O", "CB"}
    assert kinds == {"h", "s"}


def test_model_is_deterministic():
    one = build_model(np.random.default_rng(3), 30.0)
    two = build_model(np.random.default_rng(3), 30.0)
    assert one.make_pdb_string() == two.make_pdb_string()


# --------------------------------------------------------------------------- corpus

TINY = {"boxes": (32, 40), "voxel_sizes": (1.5, 2.0), "resolutions": (4.0, 8.0)}


def test_entry_parameters_respect_ranges_and_limits():
    for k in range(200):
        p = entry_parameters(9, k, (64, 96), (0.8, 2.0), (2.0, 8.0))
        assert p["box"] in (64, 72, 80, 88, 96)
        assert 0.8 <= p["voxel_size"] <= 2.0 and 2.0 <= p["resolution"] <= 8.0
        assert 2.5 * p["voxel_size"] <= p["resolution"] + 1e-9
        assert p["resolution"] <= p["box"] * p["voxel_size"] / 8 + 1e-9
        assert p["box"] * p["voxel_size"] >= 48.0 - 1e-9
    assert entry_parameters(9, 5) == entry_parameters(9, 5) != entry_parameters(9, 6)
    with pytest.raises(ValueError, match="no phantom"):
        entry_parameters(0, 0, (64, 64), (0.8, 0.85), (7.5, 8.0))  # needs edge >= 8 x 7.5 Å
    with pytest.raises(ValueError, match="boxes"):
        entry_parameters(0, 0, (96, 64))


def test_corpus_is_written_readable_and_resumable(tmp_path):
    location = write_phantom_corpus(tmp_path / "c.zarr", 3, seed=2, progress=False, **TINY)
    corpus = open_corpus(location)
    ids = corpus.ids()
    assert ids == ["SYN-0001", "SYN-0002", "SYN-0003"]
    assert sorted(corpus.ids("train") + corpus.ids("valid") + corpus.ids("test")) == ids
    assert corpus.patch_size == 32  # the smallest box: every entry has patches
    for k, entry_id in enumerate(ids):
        entry = corpus.entry(entry_id)
        assert entry.split == splits.split_of(entry_id)
        params = entry_parameters(2, k, **TINY)
        phantom = make_phantom(**params)
        for name in ("half1", "half2", "mask", "truth"):
            assert np.array_equal(getattr(entry, name).data, getattr(phantom, name).data), name
        assert entry.resolution == params["resolution"]
        assert len(entry.patches) >= 1
        assert entry.metadata["source"] == "synthetic"
        assert entry.metadata["corpus_seed"] == 2 and entry.metadata["corpus_index"] == k
        assert abs(fsc(entry.half1, entry.half2).resolution_at(0.143).resolution
                   - params["resolution"]) <= 0.3
        model = gemmi.cif.read_string(entry.model("model"))
        assert gemmi.make_structure_from_block(model.sole_block())[0].count_atom_sites() \
            == phantom.metadata["atoms"]
    written = {i: corpus.entry(i).metadata["written_at"] for i in ids}
    digest = corpus.content_hash
    again = write_phantom_corpus(tmp_path / "c.zarr", 4, seed=2, progress=False, **TINY)
    grown = open_corpus(again)
    assert grown.ids() == ids + ["SYN-0004"]
    assert {i: grown.entry(i).metadata["written_at"] for i in ids} == written
    assert grown.content_hash != digest


def test_corpus_refuses_what_it_must_not_overwrite(tmp_path):
    (tmp_path / "file").write_text("not a store")
    with pytest.raises(CorpusError, match="not a corpus store"):
        write_phantom_corpus(tmp_path / "file", 1, progress=False, **TINY)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("keep me")
    with pytest.raises(CorpusError, match="not a corpus store"):
        write_phantom_corpus(tmp_path / "folder", 1, progress=False, **TINY)
    assert (tmp_path / "folder" / "notes.txt").read_text() == "keep me"
    write_phantom_corpus(tmp_path / "c.zarr", 1, seed=0, progress=False, **TINY)
    with pytest.raises(ValueError, match="seed 0"):
        write_phantom_corpus(tmp_path / "c.zarr", 1, seed=1, progress=False, **TINY)


def test_parallel_workers_write_the_same_corpus(tmp_path):
    one = write_phantom_corpus(tmp_path / "one.zarr", 2, seed=4, progress=False, **TINY)
    two = write_phantom_corpus(tmp_path / "two.zarr", 2, seed=4, workers=2, progress=False,
                               **TINY)
    assert open_corpus(one).content_hash == open_corpus(two).content_hash


def test_synth_command(tmp_path, capsys):
    out = tmp_path / "demo.zarr"
    argv = ["synth", "--out", str(out), "--entries", "2", "--box-range", "32", "40",
            "--voxel-range", "1.5", "2.0", "--resolution-range", "4", "8", "--no-progress"]
    assert cli.main(argv) == 0
    assert ("2 entries written now, 0 already there, 0 failed, of the 2 asked for; the store "
            "holds 2 entries") in capsys.readouterr().out
    assert open_corpus(out).ids() == ["SYN-0001", "SYN-0002"]
    fewer = ["synth", "--out", str(out), "--entries", "1"] + argv[5:]
    assert cli.main(fewer) == 0
    assert ("0 entries written now, 1 already there, 0 failed, of the 1 asked for; the store "
            "holds 2 entries") in capsys.readouterr().out
    assert cli.main(argv[:-1] + ["--seed", "3", "--no-progress"]) == 2
    assert "not of" in capsys.readouterr().err
    (tmp_path / "file.txt").write_text("x")
    assert cli.main(["synth", "--out", str(tmp_path / "file.txt"), "--entries", "1",
                     "--no-progress"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_resuming_with_other_ranges_is_refused(tmp_path, capsys):
    out = tmp_path / "c.zarr"
    argv = ["synth", "--out", str(out), "--entries", "1", "--box-range", "32", "40",
            "--voxel-range", "1.5", "2.0", "--resolution-range", "4", "8", "--no-progress"]
    assert cli.main(argv) == 0
    digest = open_corpus(out).content_hash
    other = argv[:4] + ["2", "--box-range", "32", "48"] + argv[8:]
    assert cli.main(other) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0]
    assert "written with --box-range 32 40, not --box-range 32 48" in err[0]
    assert open_corpus(out).ids() == ["SYN-0001"] and open_corpus(out).content_hash == digest
    assert cli.main(argv[:4] + ["2"] + argv[5:]) == 0  # the same ranges add entries


def test_a_store_without_recorded_ranges_is_checked_entry_by_entry(tmp_path):
    from dataset_builder.store import Store
    from dataset_builder.synthetic import SETTINGS_ATTRIBUTE

    location = write_phantom_corpus(tmp_path / "c.zarr", 1, seed=5, progress=False, **TINY)
    del Store(location).root().attrs[SETTINGS_ATTRIBUTE]  # as written before they were
    wider = {**TINY, "resolutions": (4.0, 6.0)}
    with pytest.raises(CorpusError, match="entry SYN-0001 was drawn with other settings"):
        write_phantom_corpus(location, 2, seed=5, progress=False, **wider)
    write_phantom_corpus(location, 2, seed=5, progress=False, **TINY)
    assert Store(location).attrs[SETTINGS_ATTRIBUTE]["resolutions"] == list(TINY["resolutions"])
