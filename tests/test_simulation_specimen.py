"""A user's own specimen (``synth --kind reconstruction --specimen``), the settings in RELION's
terms (noise per pixel, regulariser choice) and their record: tiny entries (32³-64³, a few
hundred particles)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cref_bench import cli
from cref_bench.corpus.reader import open_corpus
from cref_bench.errors import CorpusError, InputError
from cref_bench.maps.io import write_map
from cref_bench.maps.volume import Volume
from cref_bench.metrics.fsc import fsc
from dataset_builder.simulation import SimulationSettings, simulate_entry
from dataset_builder.simulation.corpus import specimen_overrides, write_reconstruction_corpus
from dataset_builder.simulation.entry import build_specimen
from dataset_builder.simulation.reconstruction import solvent_weight

MODEL_3J5P = Path(__file__).resolve().parents[2] / "shared" / "reference" / "models" / "3j5p.pdb"
SMALL = SimulationSettings(box=32, voxel_size=2.0, particles=300, batch_size=128,
                           reference_factor=2.0)


@pytest.fixture(scope="module")
def specimen_map(tmp_path_factory):
    """A 32³ map of 2 Å voxels (a procedural specimen's truth) written as MRC."""
    path = tmp_path_factory.mktemp("specimen") / "mine.mrc"
    truth = build_specimen(SMALL, 4).truth
    write_map(path, Volume(truth.data, 2.0, source="test specimen"))
    return path, truth.data


def test_a_map_specimen_is_the_truth_and_sets_the_box(specimen_map, tmp_path, capsys):
    path, data = specimen_map
    out = tmp_path / "mine.zarr"
    argv = ["synth", "--kind", "reconstruction", "--out", str(out), "--entries", "2",
            "--specimen", str(path), "--set", "particles=300", "--set", "batch_size=128",
            "--no-progress"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    reader = open_corpus(out)
    for entry_id in reader.ids():      # rigid-2.5A, then rigid-3.5A: each on the map's box
        entry = reader.entry(entry_id)
        meta = entry.metadata
        assert np.array_equal(entry.truth.data, data)
        assert entry.truth.shape == (32,) * 3 and entry.truth.voxel_size == (2.0,) * 3
        assert meta["settings"]["specimen"] == str(path.resolve())
        assert meta["model"] == str(path.resolve()) and meta["atoms"] is None
        assert meta["settings"]["flexible_fraction"] == 0.0
        assert fsc(entry.half1, entry.truth).value[:4].min() > 0.8
    # A box that disagrees with the map, and a model without a box, are refused.
    with pytest.raises(InputError, match="the map has box 32, --set gives 64"):
        specimen_overrides(path, {"box": 64})
    with pytest.raises(InputError, match="an atomic model; give the box"):
        specimen_overrides(_touch(tmp_path / "m.pdb"), {})
    with pytest.raises(InputError, match="no such file"):
        specimen_overrides(tmp_path / "absent.mrc")


def _touch(path: Path) -> Path:
    path.write_text("")
    return path


def test_a_map_specimen_must_be_cubic_and_rigid(tmp_path):
    flat = tmp_path / "flat.mrc"
    write_map(flat, Volume(np.zeros((32, 32, 40), np.float32), 2.0))
    with pytest.raises(InputError, match="must be cubic"):
        specimen_overrides(flat)
    cube = tmp_path / "cube.mrc"
    write_map(cube, Volume(np.ones((32,) * 3, np.float32), 2.0))
    with pytest.raises(ValueError, match="a map specimen is rigid"):
        SMALL.with_(specimen=str(cube), flexible_fraction=0.2)
    with pytest.raises(ValueError, match="but the settings ask for 48"):
        build_specimen(SMALL.with_(specimen=str(cube), box=48), 0)


@pytest.mark.slow
@pytest.mark.skipif(not MODEL_3J5P.is_file(),
                    reason=f"the reference model is absent: {MODEL_3J5P}")
def test_an_atomic_model_specimen_through_the_command(tmp_path, capsys):
    out = tmp_path / "model.zarr"
    argv = ["synth", "--kind", "reconstruction", "--out", str(out), "--entries", "1",
            "--preset", "rigid-3.5A", "--specimen", str(MODEL_3J5P), "--set", "box=64",
            "--set", "voxel_size=2.0", "--set", "particles=300", "--no-progress"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    entry = open_corpus(out).entry("SIM-0001")
    assert entry.metadata["atoms"] == 15820
    assert entry.metadata["settings"]["model"] == str(MODEL_3J5P.resolve())
    assert entry.truth.shape == (64,) * 3
    assert fsc(entry.half1, entry.half2).value[:4].min() > 0.8


def test_noise_sigma_is_the_noise_per_pixel_and_overrides_the_snr():
    specimen = build_specimen(SMALL.with_(noise_sigma=3.0), 0)
    assert specimen.noise == pytest.approx((32 * 3.0) ** 2)
    # The SNR it gives is recorded, and an SNR gives back the same noise.
    again = build_specimen(SMALL.with_(snr=specimen.snr), 0)
    assert again.noise == pytest.approx(specimen.noise, rel=1e-9)
    entry = simulate_entry(SMALL.with_(noise_sigma=3.0), 0)
    assert entry.metadata["noise_sigma_pixel"] == pytest.approx(3.0)
    assert entry.metadata["particle_snr"] == pytest.approx(specimen.snr)
    assert entry.metadata["regulariser"]["kind"] == "fsc"
    assert len(entry.metadata["regulariser"]["fsc_unregularised_halves"]) == 17
    with pytest.raises(ValueError, match="noise_sigma"):
        SMALL.with_(noise_sigma=-1.0)


def test_each_regulariser_and_the_flat_solvent():
    outside = solvent_weight(32) == 1
    corr = {}
    for regulariser in ("fsc", "oracle", "none"):
        entry = simulate_entry(SMALL.with_(regulariser=regulariser, reference_factor=1.0), 1)
        for half in (entry.half1, entry.half2, entry.reference):
            assert half.data[outside].std() < 1e-4 * half.data[~outside].std()
        corr[regulariser] = float(np.corrcoef(entry.half1.data.ravel(),
                                              entry.truth.data.ravel())[0, 1])
    # Regularised maps are closer to the truth than the unregularised one.
    assert min(corr["fsc"], corr["oracle"]) > corr["none"] + 0.1, corr
    with pytest.raises(ValueError, match="one of fsc, oracle, none"):
        SMALL.with_(regulariser="wiener")


def test_a_store_of_the_oracle_recipe_is_refused_under_the_new_default(tmp_path):
    tiny = {"box": 32, "voxel_size": 2.0, "particles": 100, "batch_size": 128}
    out = tmp_path / "old.zarr"
    write_reconstruction_corpus(out, 1, overrides={**tiny, "regulariser": "oracle"},
                                progress=False)
    with pytest.raises(CorpusError, match="regulariser: 'oracle' recorded, 'fsc' now"):
        write_reconstruction_corpus(out, 1, overrides=tiny, progress=False)
