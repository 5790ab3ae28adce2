"""Tests of the one owner of a results folder (ResultsFolder), the one aggregation, the run
settings and the picklable corpus."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from cref_bench.corpus.reader import open_corpus
from cref_bench.errors import InputError, ResultsError
from cref_bench.results.folder import RECORD_SCHEMA, ResultsFolder, aggregate
from cref_bench.run.settings import RunSettings


def test_aggregate_agrees_with_numpy_and_counts_bounds():
    values = [1.0, np.nan, 4.0, 2.5, 7.0]
    marks = ["", "<", "<", "", ">"]
    got = aggregate(values, marks)
    kept = np.array([1.0, 4.0, 2.5, 7.0])
    assert got["mean"] == pytest.approx(kept.mean())
    assert got["std"] == pytest.approx(kept.std(ddof=1))
    assert got["median"] == pytest.approx(np.median(kept))
    assert got["n"] == 4 and got["bounded"] == 2  # the NaN's mark does not count
    one = aggregate([3.0])
    assert one["mean"] == one["median"] == 3.0 and np.isnan(one["std"]) and one["bounded"] == 0
    empty = aggregate([np.nan])
    assert empty["n"] == 0 and np.isnan(empty["mean"]) and np.isnan(empty["median"])


def test_results_folder_round_trip(tmp_path):
    folder = ResultsFolder(tmp_path / "r")
    assert folder.create(save_maps=True) == (tmp_path / "r" / "maps").resolve()
    record = {"schema": RECORD_SCHEMA, "entry": "E-1", "status": "ok",
              "scalars": {"masked": {"cref_rmse": float("inf"), "truth_corr": 0.5}}}
    folder.write_record(record)
    assert folder.record("E-1")["scalars"]["masked"] == {"cref_rmse": None, "truth_corr": 0.5}
    (folder.path / "entries" / "E-2.json").write_text("{not json")
    records, unreadable = folder.records()
    assert list(records) == ["E-1"] and unreadable == ["E-2.json"]
    assert folder.record("E-2") is None and folder.record("E-3") is None
    folder.write_provenance({"method": {"name": "x"}})
    assert folder.provenance() == {"method": {"name": "x"}}


def test_results_folder_tables_name_the_file_and_fault(tmp_path):
    folder = ResultsFolder(tmp_path)
    with pytest.raises(ResultsError, match=r"scalars\.csv: missing"):
        folder.table("scalars")
    with pytest.raises(ResultsError, match="provenance.json: missing"):
        folder.provenance()
    folder.write_tables({"failures": pd.DataFrame({"method": ["m"], "entry": ["E-1"]})})
    with pytest.raises(ResultsError, match=r"failures\.csv: missing column\(s\)"):
        folder.table("failures")
    as_text = folder.table("failures", as_text=True)
    assert as_text.to_dict("list") == {"method": ["m"], "entry": ["E-1"]}


def test_run_settings_are_checked_once_and_recorded_as_given(tmp_path):
    settings = RunSettings(split="all", out=str(tmp_path), params={"sigma": 1})
    assert settings.out == tmp_path
    record = settings.as_record()
    assert record["out"] == str(tmp_path) and record["params"] == {"sigma": 1}
    changed = RunSettings.of(settings, workers=3)
    assert changed.workers == 3 and changed.split == "all" and settings.workers == 1
    with pytest.raises(InputError, match="unknown cores"):
        RunSettings.of(settings, cores=2)
    assert pickle.loads(pickle.dumps(changed)) == changed


def test_a_corpus_pickles_as_its_location(corpus_path):
    corpus = open_corpus(corpus_path)
    blob = pickle.dumps(corpus)
    assert len(blob) < 1000  # the location, not the arrays or the open store
    again = pickle.loads(blob)
    assert again.location == corpus.location and again.ids("all") == corpus.ids("all")
    assert again.content_hash == corpus.content_hash
