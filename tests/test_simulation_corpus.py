"""Tests for the corpus of simulated reconstructions (dataset_builder.simulation.corpus) and
``cref-bench synth --kind reconstruction``: tiny entries (32³, a few hundred particles)."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from cref_bench import cli
from cref_bench.corpus.reader import open_corpus
from cref_bench.errors import CorpusError, InputError
from cref_bench.metrics.model_map import model_map
from dataset_builder.simulation import PRESETS, simulate_entry
from dataset_builder.simulation.corpus import (
    PRESET_CYCLE,
    corpus_settings,
    entry_job,
    write_reconstruction_corpus,
)

TINY = {"box": 32, "voxel_size": 2.0, "particles": 200, "batch_size": 128}
TINY_ARGS = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three entries of seed 5, written in two runs (two entries, then one more)."""
    out = tmp_path_factory.mktemp("sim") / "c.zarr"
    first = open_corpus(write_reconstruction_corpus(out, 2, seed=5, overrides=TINY,
                                                    progress=False))
    written = {i: first.entry(i).metadata["written_at"] for i in first.ids()}
    return out, written, first.content_hash


def test_entries_cycle_the_presets_and_equal_the_simulation(corpus):
    out, _, _ = corpus
    reader = open_corpus(write_reconstruction_corpus(out, 3, seed=5, overrides=TINY,
                                                     progress=False))
    assert reader.ids() == ["SIM-0001", "SIM-0002", "SIM-0003"]
    cycle = corpus_settings(None, TINY)
    for k, entry_id in enumerate(reader.ids()):
        entry = reader.entry(entry_id)
        job_id, settings, seed = entry_job(5, k, cycle)
        assert job_id == entry_id and settings.name == PRESET_CYCLE[k]
        assert settings == PRESETS[PRESET_CYCLE[k]].with_(**TINY)
        meta = entry.metadata
        assert meta["preset"] == PRESET_CYCLE[k] and meta["seed"] == seed
        assert meta["corpus_seed"] == 5 and meta["corpus_index"] == k
        assert meta["settings"] == settings.as_dict()      # every parameter recorded
        assert meta["source"] == "simulated" and meta["particles_half"] == 200
        if k == 0:   # bit for bit what simulate_entry gives
            expected = simulate_entry(settings, seed)
            for name in ("half1", "half2", "truth", "mask", "reference"):
                assert np.array_equal(getattr(entry, name).data,
                                      getattr(expected, name).data), name
            assert entry.model("model") == expected.model
            assert meta["resolution"] == expected.metadata["resolution"]
    # Preset 2 (flexible) records its moving domain; preset 4 its preferred view.
    assert reader.entry("SIM-0003").metadata["flexibility"]["domain_atoms"] > 0
    assert reader.entry("SIM-0002").metadata["flexibility"]["domain_atoms"] == 0


def test_reference_and_model_are_read_back_in_the_maps_frame(corpus):
    out, _, _ = corpus
    entry = open_corpus(out).entry("SIM-0001")
    truth, reference, half = entry.truth, entry.reference, entry.half1
    assert reference.shape == truth.shape and reference.voxel_size == truth.voxel_size

    def corr(a, b):
        return float(np.corrcoef(a.data.ravel(), b.data.ravel())[0, 1])

    assert corr(reference, truth) > corr(half, truth) + 0.02
    structure = gemmi.make_structure_from_block(
        gemmi.cif.read_string(entry.model("model")).sole_block())
    assert structure[0].count_atom_sites() == entry.metadata["atoms"]
    # The stored model, mapped on the entry's grid, is where the truth is.
    assert corr(model_map(structure, truth), truth) > 0.95


def test_a_rerun_resumes_and_appends_without_rewriting(corpus):
    out, written, digest = corpus
    reader = open_corpus(write_reconstruction_corpus(out, 3, seed=5, overrides=TINY,
                                                     progress=False))
    assert {i: reader.entry(i).metadata["written_at"] for i in written} == written
    assert reader.ids()[-1] == "SIM-0003" and reader.content_hash != digest
    assert reader.entry("SIM-0001").split in ("train", "valid", "test")


def test_parallel_workers_write_the_same_corpus(tmp_path):
    one = write_reconstruction_corpus(tmp_path / "one.zarr", 2, seed=1, overrides=TINY,
                                      progress=False)
    two = write_reconstruction_corpus(tmp_path / "two.zarr", 2, seed=1, overrides=TINY,
                                      workers=2, progress=False)
    assert open_corpus(one).content_hash == open_corpus(two).content_hash


def test_one_preset_for_every_entry(tmp_path):
    out = write_reconstruction_corpus(tmp_path / "p.zarr", 2, preset="preferred-4.5A",
                                      overrides=TINY, progress=False)
    reader = open_corpus(out)
    assert {reader.entry(i).metadata["preset"] for i in reader.ids()} == {"preferred-4.5A"}
    assert reader.entry("SIM-0001").metadata["orientations"]["kappa"] == 5.0


def test_other_settings_are_refused_naming_what_differs(corpus, tmp_path):
    out, _, _ = corpus
    with pytest.raises(CorpusError, match=r"seed: 5 recorded, 6 now"):
        write_reconstruction_corpus(out, 1, seed=6, overrides=TINY, progress=False)
    with pytest.raises(CorpusError, match=r"particles: 200 recorded, 300 now \(.*low-8A"):
        write_reconstruction_corpus(out, 1, seed=5, overrides={**TINY, "particles": 300},
                                    progress=False)
    with pytest.raises(CorpusError, match="presets: 'cycle' recorded, 'low-8A' now"):
        write_reconstruction_corpus(out, 1, seed=5, preset="low-8A", overrides=TINY,
                                    progress=False)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("keep me")
    with pytest.raises(CorpusError, match="not a corpus store"):
        write_reconstruction_corpus(tmp_path / "notes", 1, overrides=TINY, progress=False)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "keep me"


@pytest.mark.parametrize("preset, overrides, message", [
    ("nope", {}, "no simulation preset named 'nope'; the presets are rigid-2.5A"),
    (None, {"colour": 1}, "no simulation setting named 'colour'"),
    (None, {"name": "x"}, "no simulation setting named 'name'"),
    (None, {"box": 33}, "box = 33; it must be an even integer"),
    (None, {"box": 64.5}, "box=64.5: it must be an integer"),
    (None, {"snr": "loud"}, "snr='loud': it must be a number"),
    (None, {"ctf": 1}, "ctf=1: it must be true or false"),
    (None, {"defocus_um": [1.0]}, "defocus_um=.*a list of 2 numbers"),
])
def test_bad_presets_and_settings_are_refused(preset, overrides, message):
    with pytest.raises(InputError, match=message):
        corpus_settings(preset, overrides)


def test_overrides_take_the_settings_types():
    settings = corpus_settings("low-8A", {"snr": "inf", "defocus_um": [1, 2], "particles": 50,
                                          "ctf": False})[0]
    assert np.isinf(settings.snr) and settings.defocus_um == (1.0, 2.0)
    assert settings.particles == 50 and settings.ctf is False and settings.box == 256


def test_synth_command_writes_resumes_and_refuses(tmp_path, capsys):
    out = tmp_path / "sim.zarr"
    argv = ["synth", "--kind", "reconstruction", "--out", str(out), "--entries", "1",
            *TINY_ARGS, "--no-progress"]
    assert cli.main(argv) == 0
    assert "1 entries written now, 0 already there, 0 failed" in capsys.readouterr().out
    assert open_corpus(out).entry("SIM-0001").metadata["preset"] == PRESET_CYCLE[0]
    assert cli.main(argv) == 0                                  # nothing left to do
    assert "0 entries written now, 1 already there, 0 failed" in capsys.readouterr().out
    refusals = [
        (argv + ["--seed", "1"], "seed: 0 recorded, 1 now"),
        (argv + ["--set", "particles=100"], "particles: 200 recorded, 100 now"),
        (argv + ["--box-range", "32", "40"], "--box-range: phantom options"),
        (argv + ["--set", "nonsense"], "expected FIELD=VALUE"),
        (argv + ["--preset", "huge"], "no simulation preset named 'huge'"),
        (["synth", "--out", str(out), "--entries", "1", "--no-progress"],
         "a store of 'simulated reconstructions v3', not of 'synthetic phantoms"),
        (["synth", "--out", str(tmp_path / "p.zarr"), "--entries", "1", "--set", "box=64"],
         "--preset, --set and --specimen apply to --kind reconstruction only"),
        (argv[:6] + ["0"] + argv[7:], "entries must be an integer >= 1"),
    ]
    for arguments, message in refusals:
        assert cli.main(arguments) == 2, arguments
        assert message in capsys.readouterr().err, arguments


def test_a_failing_entry_is_recorded_and_the_rest_written(tmp_path, capsys):
    # A 32-voxel box of 0.7 Å voxels (22 Å) cannot hold a procedural specimen.
    out = tmp_path / "bad.zarr"
    status = cli.main(["synth", "--kind", "reconstruction", "--out", str(out), "--entries",
                       "1", "--set", "box=32", "--set", "voxel_size=0.7", "--no-progress"])
    assert status == 1
    assert "0 entries written now, 0 already there, 1 failed" in capsys.readouterr().out
    rows = open_corpus(out).manifest
    assert list(rows["status"]) == ["failed"] and "too small" in rows["reason"].iloc[0]
