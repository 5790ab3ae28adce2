"""Results that can be re-scored: kept outputs, the scoring code's digest, ``check
--recompute`` naming a record that differs from its re-score."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cref_bench.corpus.reader import open_corpus
from cref_bench.errors import ResultsError
from cref_bench.methods.code import code_digest
from cref_bench.methods.protocol import Denoised, average_halves
from cref_bench.results.folder import ResultsFolder
from cref_bench.results.outputs import outputs_path, read_outputs
from cref_bench.run import scoring
from tests.runner_corpus import TEST_IDS


@pytest.fixture
def folder(corpus_path, tmp_path):
    """A results folder of two entries scored from kept outputs (a 0.8 x average)."""
    corpus = open_corpus(corpus_path)
    out = ResultsFolder(tmp_path / "results")
    for entry_id in TEST_IDS[:2]:
        maps = scoring.read_entry(corpus.entry(entry_id))
        full = average_halves(maps["half1"], maps["half2"])
        denoised = Denoised(full=full.like(full.data * np.float32(0.8)), note="halves: none")
        record = {"entry": entry_id, **scoring.score_entry(maps, denoised),
                  "outputs": out.keep_outputs(entry_id, denoised), "schema": 3}
        out.write_record(record)
    return out.path


def test_kept_outputs_read_back_as_scored(folder, corpus_path):
    record = ResultsFolder(folder).record(TEST_IDS[0])
    assert set(record["outputs"]) == {"full"}
    kept = read_outputs(folder, TEST_IDS[0], record["outputs"])
    assert kept.half1 is None and kept.note == "halves: none"
    maps = scoring.read_entry(open_corpus(corpus_path).entry(TEST_IDS[0]))
    expected = (maps["half1"].data + maps["half2"].data) * np.float32(0.5) * np.float32(0.8)
    np.testing.assert_array_equal(kept.full.data, expected)
    assert kept.full.voxel_size == maps["half1"].voxel_size


def test_recompute_agrees_with_honest_records(folder, corpus_path):
    assert scoring.recompute(folder, open_corpus(corpus_path)) == []


def test_recompute_names_an_edited_record(folder, corpus_path):
    record = ResultsFolder(folder).record(TEST_IDS[1])
    record["scalars"]["masked"]["cref_rmse"] = 0.001
    ResultsFolder(folder).write_record(record)
    (fault,) = scoring.recompute(folder, open_corpus(corpus_path))
    assert fault.startswith(f"entry {TEST_IDS[1]}: the record differs from its re-score")
    assert "cref_rmse (masked) recorded 0.001" in fault


def test_an_edited_kept_output_is_refused(folder, corpus_path):
    import zarr

    array = zarr.open_group(str(outputs_path(folder, TEST_IDS[0])), mode="r+")["full"]
    array[0, 0, 0] = 99.0
    with pytest.raises(ResultsError, match="differs from the one the record was scored on"):
        read_outputs(folder, TEST_IDS[0], ResultsFolder(folder).record(TEST_IDS[0])["outputs"])
    (fault,) = scoring.recompute(folder, open_corpus(corpus_path))
    assert f"entry {TEST_IDS[0]}: cannot be re-scored" in fault


def test_check_recompute_needs_the_corpus(folder, capsys):
    from cref_bench.cli import main

    assert main(["check", str(folder), "--recompute"]) == 2
    assert "--recompute: needs the corpus store" in capsys.readouterr().err


def test_the_scoring_digest_covers_the_metric_code(tmp_path, monkeypatch):
    copy = tmp_path / "cref_bench"
    for part in scoring.SCORING_CODE:
        source = scoring._PACKAGE / part
        target = copy / part
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    roots = [copy / part for part in scoring.SCORING_CODE]
    before = code_digest(roots)
    assert before == scoring.scoring_digest()
    shells = copy / "metrics" / "shells.py"
    shells.write_text(shells.read_text() + "\n# a changed scoring module\n")
    assert code_digest(roots) != before
