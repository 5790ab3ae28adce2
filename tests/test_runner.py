"""Tests of the evaluation runner (cref_bench.run.runner, cref_bench.results.folder) and
`cref-bench run`.

The session fixture ``corpus_path`` (tests/runner_corpus.py) is a tiny corpus (32-40³ boxes:
a smooth random truth plus noise). The methods below are referenced by
``tests.test_runner:Name``; they log every entry they finish to a file, so tests can count
evaluations across runs, and a control file tells them to fail on an entry or to interrupt
the run (KeyboardInterrupt).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from cref_bench import cli
from cref_bench.corpus.reader import open_corpus
from cref_bench.errors import InputError, MethodError
from cref_bench.maps.io import read_map
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import Denoised, Method, SingleMapMethod
from cref_bench.metrics.scores import DenoisedMaps, evaluate
from cref_bench.results import folder as results
from cref_bench.run.runner import entry_seed, run_method
from tests.runner_corpus import TEST_IDS, VALID_IDS, ids_of_split, phantom_maps

SPEC = "tests.test_runner:Blur"


# --------------------------------------------------------------------------- test methods

def _entry_of(volume: Volume) -> str:
    return volume.source.rstrip("/").split("/")[-2]


class Blur(SingleMapMethod):
    """Gaussian smoothing; logs finished entries to ``log``; obeys the ``control`` file.

    The runner calls it on each map of an entry apart (the average, then half1, then half2);
    an entry is finished, and logged, with its half2. The control file (JSON) may hold
    ``fail_on`` (entry ids that raise RuntimeError), ``stop_after`` (raise KeyboardInterrupt
    when the log already has that many lines) and ``hang_after`` (sleep for a minute then,
    for a test to kill the process).
    """

    name = "blur-test"

    def __init__(self, sigma: float = 1.0, version: str = "1", log: str | None = None,
                 control: str | None = None):
        self.sigma, self.version, self.log, self.control = float(sigma), version, log, control

    def params(self) -> dict:
        return {"sigma": self.sigma, "log": self.log, "control": self.control}

    def _orders(self) -> dict:
        if self.control and Path(self.control).exists():
            return json.loads(Path(self.control).read_text())
        return {}

    def denoise_map(self, volume, mask=None):
        entry, orders = _entry_of(volume), self._orders()
        done = Path(self.log).read_text().split() if self.log and Path(self.log).exists() else []
        if "stop_after" in orders and len(done) >= orders["stop_after"]:
            raise KeyboardInterrupt
        if "hang_after" in orders and len(done) >= orders["hang_after"]:
            time.sleep(60)
        if entry in orders.get("fail_on", []):
            raise RuntimeError(f"refusing entry {entry}")
        result = volume.like(ndimage.gaussian_filter(volume.data, self.sigma))
        if self.log and volume.source.rstrip("/").endswith("half2"):
            with open(self.log, "a") as stream:
                stream.write(entry + "\n")
        return result


class PairOnly(Method):
    """A pair method: blurred average, no denoised halves."""

    name = "pair-test"
    version = "1"
    NOTE = "pair method: denoises the pair jointly, no denoised halves"

    def denoise(self, half1, half2, mask=None):
        average = half1.like(ndimage.gaussian_filter((half1.data + half2.data) / 2, 1.0))
        return Denoised(full=average, note=self.NOTE)


class RandomNoise(SingleMapMethod):
    """Adds noise from numpy's global generator (to check per-entry seeding)."""

    name = "random-test"

    def denoise_map(self, volume, mask=None):
        return volume.like(volume.data + np.random.standard_normal(volume.shape).astype(np.float32))


# --------------------------------------------------------------------------- corpus

@pytest.fixture
def files(tmp_path):
    """Paths of a log and a control file for the test methods."""
    return {"log": str(tmp_path / "log.txt"), "control": str(tmp_path / "control.json")}


def _logged(path: str) -> list[str]:
    return Path(path).read_text().split() if Path(path).exists() else []


# --------------------------------------------------------------------------- tables

def test_tables_match_direct_evaluation(corpus_path, tmp_path):
    out = tmp_path / "res"
    run = run_method(SPEC, corpus_path, out=out, params={"sigma": 1.2}, progress=False)
    assert run.exit_status == 0 and run.failures.empty
    assert run.counts == {"entries": 5, "evaluated": 5, "resumed": 0, "failed": 0}

    scalars = run.scalars
    ids = len(results.ID_COLUMNS)
    assert list(scalars.columns[:ids]) == list(results.ID_COLUMNS)
    assert sorted(scalars["entry"].unique()) == sorted(TEST_IDS)  # default split: test only
    assert len(scalars) == 10
    assert set(map(tuple, scalars[["entry", "masking"]].values)) == \
        {(e, m) for e in TEST_IDS for m in ("unmasked", "masked")}
    assert (scalars["method"] == "blur-test").all() and (scalars["method_version"] == "1").all()
    assert (scalars["split"] == "test").all()
    # the entry's grid, for breakdowns by box size (the runner corpus alternates 40³ and 32³)
    boxes = dict(zip(scalars["entry"], scalars["box"]))
    assert {e: boxes[e] for e in TEST_IDS} == {
        e: "x".join([str(32 if k % 2 else 40)] * 3) for k, e in enumerate(TEST_IDS)}

    corpus = open_corpus(corpus_path)
    entry = corpus.entry(TEST_IDS[0])
    method = Blur(sigma=1.2)
    den = method.denoise(entry.half1, entry.half2, entry.mask)
    direct = evaluate(entry.half1, entry.half2,
                      DenoisedMaps(den.full, half1=den.half1, half2=den.half2,
                                   heldout1=den.half1, heldout2=den.half2),
                      mask=entry.mask, truth=entry.truth)
    for masking, values in direct.scalars.items():
        row = scalars[(scalars["entry"] == entry.id) & (scalars["masking"] == masking)].iloc[0]
        assert list(values) == [c for c in scalars.columns[ids:] if c in values]
        for name, value in values.items():
            if value is None:
                assert np.isnan(row[name])
            else:
                assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-15)
    curves = run.curves[run.curves["entry"] == entry.id].drop(columns=["method", "entry"])
    pd.testing.assert_frame_equal(curves.reset_index(drop=True),
                                  direct.curves.reset_index(drop=True), check_dtype=False)
    notes = run.notes[run.notes["entry"] == entry.id]
    expected = {(m, k, r) for m, d in direct.notes.items() for k, r in d.items()}
    assert set(map(tuple, notes[["masking", "metric", "reason"]].values)) == expected

    # the entry with a reference map is scored against it; the others say they have none
    referenced = corpus.entry(TEST_IDS[2])
    den = method.denoise(referenced.half1, referenced.half2, referenced.mask)
    direct = evaluate(referenced.half1, referenced.half2, den.full, mask=referenced.mask,
                      reference=referenced.reference)
    theirs = direct.curves[direct.curves["curve"] == "fsc_reference"]
    ours = run.curves[run.curves["curve"] == "fsc_reference"]  # that entry's only
    assert len(ours) == len(theirs) > 0 and set(ours["entry"]) == {TEST_IDS[2]}
    np.testing.assert_allclose(ours["value"], theirs["value"], rtol=1e-12)
    assert (run.notes["reason"] == "no reference map").sum() == 2 * 2 * (len(TEST_IDS) - 1)

    # the entry without truth: truth metrics empty, with the reason
    no_truth = scalars[scalars["entry"] == TEST_IDS[1]]
    assert no_truth["truth_corr"].isna().all()
    assert scalars[scalars["entry"] != TEST_IDS[1]]["truth_corr"].notna().all()
    assert ((run.notes["entry"] == TEST_IDS[1]) & (run.notes["metric"] == "truth_corr")
            & (run.notes["reason"] == "no truth map")).sum() == 2

    # the files hold the same tables
    on_disk = pd.read_csv(out / "scalars.csv", dtype={"method_version": str})
    pd.testing.assert_frame_equal(on_disk, scalars, check_dtype=False)
    assert list(pd.read_csv(out / "notes.csv").columns) == list(results.NOTE_COLUMNS)
    assert list(pd.read_csv(out / "curves.csv").columns) == list(results.CURVE_COLUMNS)
    assert len(pd.read_csv(out / "curves.csv")) == len(run.curves)
    assert list(pd.read_csv(out / "failures.csv").columns) == list(results.FAILURE_COLUMNS)
    assert sorted(p.name for p in (out / "entries").iterdir()) == sorted(f"{i}.json"
                                                                         for i in TEST_IDS)
    assert not list(out.glob(".*tmp"))


def test_pair_method_reports_half_metrics_not_applicable(corpus_path, tmp_path):
    run = run_method("tests.test_runner:PairOnly", corpus_path, split="all",
                     out=tmp_path / "pair", progress=False)
    assert run.exit_status == 0
    assert sorted(run.scalars["entry"].unique()) == sorted(TEST_IDS + VALID_IDS)
    assert run.scalars["fsc05_change"].isna().all()
    assert run.scalars["cref_rmse"].notna().all()
    reasons = run.notes[run.notes["metric"] == "fsc05_change"]["reason"]
    assert len(reasons) == 2 * 6 and (reasons == PairOnly.NOTE).all()


def test_summary_matches_pandas(corpus_path, tmp_path):
    run = run_method(SPEC, corpus_path, out=tmp_path / "s", progress=False)
    summary = run.summary.set_index(["masking", "metric"])
    for masking in ("unmasked", "masked"):
        part = run.scalars[run.scalars["masking"] == masking]
        for metric in ("cref_rmse", "cref_l1", "fsc05_change", "res_half_0143", "truth_corr"):
            values = part[metric].dropna()
            row = summary.loc[(masking, metric)]
            assert row["mean"] == pytest.approx(values.mean())
            assert row["std"] == pytest.approx(values.std(ddof=1))
            assert row["std"] != pytest.approx(values.std(ddof=0))
            assert row["median"] == pytest.approx(values.median())
            assert row["n"] == len(values) and row["failed"] == 0
    assert summary.loc[("masked", "truth_corr"), "n"] == 4
    text = run.summary_text
    assert "cref_rmse" in text and "±" in text and "5 of 5 entries ok" in text


def test_provenance_fields(corpus_path, tmp_path):
    out = tmp_path / "p"
    run = run_method(SPEC, corpus_path, out=out, params={"sigma": 0.8}, progress=False,
                     seed=3, command_line=["cref-bench", "run", "x"])
    prov = json.loads((out / "provenance.json").read_text())
    assert prov == json.loads(json.dumps(run.provenance))
    corpus = open_corpus(corpus_path)
    assert prov["dataset"] == {"location": corpus.location, "format_version": 1,
                               "content_hash": corpus.content_hash, "version": corpus.version,
                               "split": "test", "entries": 5, "limit": None}
    assert prov["method"]["name"] == "blur-test" and prov["method"]["version"] == "1"
    assert prov["method"]["params"]["sigma"] == 0.8 and prov["method"]["needs_gpu"] is False
    assert prov["packages"]["numpy"] == np.__version__
    assert prov["packages"]["pandas"] == pd.__version__
    assert {"cref-bench", "scipy", "torch", "zarr", "dask", "gemmi", "mrcfile"} <= set(
        prov["packages"])
    assert prov["hardware"]["cpu_cores"] >= 1 and prov["hardware"]["memory_bytes"] > 0
    assert isinstance(prov["hardware"]["gpus"], list)
    assert prov["settings"] == {
        "split": "test", "out": str(out), "workers": 1, "scheduler": None, "limit": None,
        "save_maps": False, "params": {"sigma": 0.8}, "progress": False, "seed": 3,
        "isolation": "auto", "timeout": 3600.0, "memory_limit": "auto", "retry_failed": False,
        "trust_method": False, "network": False, "keep_outputs": True, "replace": False}
    assert prov["wall_seconds"] > 0
    assert prov["started_at"] <= prov["finished_at"]
    assert prov["peak_memory"]["driver_rss_bytes"] > 10 * 2 ** 20
    assert prov["command_line"] == ["cref-bench", "run", "x"]


def test_entries_are_seeded_by_run_seed_and_id(corpus_path, tmp_path):
    a = run_method("tests.test_runner:RandomNoise", corpus_path, out=tmp_path / "a",
                   progress=False, seed=5, limit=2)
    b = run_method("tests.test_runner:RandomNoise", corpus_path, out=tmp_path / "b",
                   progress=False, seed=5, limit=2)
    c = run_method("tests.test_runner:RandomNoise", corpus_path, out=tmp_path / "c",
                   progress=False, seed=6, limit=2)
    assert len(a.scalars) == 4
    pd.testing.assert_frame_equal(a.scalars, b.scalars)
    assert not np.allclose(a.scalars["cref_rmse"], c.scalars["cref_rmse"])
    assert entry_seed(5, "x") == entry_seed(5, "x") != entry_seed(5, "y")


# --------------------------------------------------------------------------- failures, resume

def test_failing_entry_is_recorded_and_retried_when_asked(corpus_path, tmp_path, files):
    out = tmp_path / "f"
    bad = TEST_IDS[2]
    Path(files["control"]).write_text(json.dumps({"fail_on": [bad]}))
    run = run_method(SPEC, corpus_path, out=out, params=files, progress=False, trust_method=True)
    assert run.exit_status == 1
    assert run.counts["failed"] == 1
    params = results.params_text({"sigma": 1.0, **files})
    assert "RuntimeError: refusing entry" in run.failures["traceback"].iloc[0]
    assert run.failures.drop(columns="traceback").to_dict("records") == [{
        "method": "blur-test", "method_version": "1", "params": params, "entry": bad,
        "split": "test", "kind": "error", "error_type": "RuntimeError",
        "message": f"method 'blur-test': raised RuntimeError: refusing entry {bad}"}]
    assert bad not in set(run.scalars["entry"]) and run.scalars["entry"].nunique() == 4
    assert pd.read_csv(out / "failures.csv")["entry"].tolist() == [bad]
    assert "RuntimeError" in json.loads((out / "entries" / f"{bad}.json").read_text())["traceback"]
    assert run.summary["failed"].eq(1).all() and "4 of 5 entries ok" in run.summary_text

    Path(files["control"]).write_text("{}")  # the fault is gone, but failures are kept...
    kept = run_method(SPEC, corpus_path, out=out, params=files, progress=False, trust_method=True)
    assert kept.exit_status == 1 and kept.counts["evaluated"] == 0
    assert kept.failures["entry"].tolist() == [bad]
    # ... until asked: then only the failed entry reruns
    again = run_method(SPEC, corpus_path, out=out, params=files, progress=False, trust_method=True,
                       retry_failed=True)
    assert again.exit_status == 0 and again.failures.empty
    assert again.counts == {"entries": 5, "evaluated": 1, "resumed": 4, "failed": 0}
    assert sorted(_logged(files["log"])) == sorted(TEST_IDS)
    assert len(again.scalars) == 10


def test_resume_after_interrupt_evaluates_each_entry_once(corpus_path, tmp_path, files):
    out = tmp_path / "r"
    Path(files["control"]).write_text(json.dumps({"stop_after": 2}))
    with pytest.raises(KeyboardInterrupt):  # in process, the method's interrupt is the user's
        run_method(SPEC, corpus_path, out=out, params=files, progress=False,
                   isolation="in-process", trust_method=True)
    assert len(_logged(files["log"])) == 2
    assert len(list((out / "entries").glob("*.json"))) == 2
    assert not (out / "scalars.csv").exists()

    Path(files["control"]).write_text("{}")
    run = run_method(SPEC, corpus_path, out=out, params=files, progress=False, trust_method=True)
    assert run.counts == {"entries": 5, "evaluated": 3, "resumed": 2, "failed": 0}
    logged = _logged(files["log"])
    assert sorted(logged) == sorted(TEST_IDS)  # every entry exactly once across both runs
    assert len(run.scalars) == 10


def test_version_or_params_change_recomputes(corpus_path, tmp_path, files):
    out = tmp_path / "v"
    run_method(SPEC, corpus_path, out=out, params=files, progress=False, limit=3,
               trust_method=True)
    assert len(_logged(files["log"])) == 3
    same = run_method(SPEC, corpus_path, out=out, params=files, progress=False, limit=3,
               trust_method=True)
    assert same.counts["evaluated"] == 0 and len(_logged(files["log"])) == 3
    newer = run_method(SPEC, corpus_path, out=out, params={**files, "version": "2"},
                       progress=False, limit=3, trust_method=True)
    assert newer.counts == {"entries": 3, "evaluated": 3, "resumed": 0, "failed": 0}
    assert (newer.scalars["method_version"] == "2").all()
    other = run_method(SPEC, corpus_path, out=out, params={**files, "version": "2", "sigma": 2.0},
                       progress=False, limit=3, trust_method=True,
                       replace=True)  # another setting: replace
    assert other.counts["evaluated"] == 3
    assert len(_logged(files["log"])) == 9


def test_corpus_change_recomputes(corpus_path, tmp_path, files):
    import shutil

    from dataset_builder.store import finalize, write_entry

    copy = tmp_path / "copy.zarr"
    shutil.copytree(corpus_path, copy)
    out = tmp_path / "c"
    run_method(SPEC, copy, out=out, params=files, progress=False, limit=2,
               trust_method=True)
    extra = ids_of_split("test", 6)[-1]
    write_entry(str(copy), extra, **phantom_maps(np.random.default_rng(1), 32, True))
    finalize(str(copy))
    run = run_method(SPEC, copy, out=out, params=files, progress=False, limit=2,
                     trust_method=True)
    assert run.counts["resumed"] == 0 and run.counts["evaluated"] == 2


def test_save_maps(corpus_path, tmp_path):
    out = tmp_path / "m"
    run_method(SPEC, corpus_path, out=out, progress=False, limit=1, save_maps=True)
    entry = open_corpus(corpus_path).entry(TEST_IDS[0])
    saved = read_map(out / "maps" / f"{entry.id}_denoised.mrc")
    expected = Blur().denoise(entry.half1, entry.half2).full
    np.testing.assert_allclose(saved.data, expected.data, rtol=1e-6, atol=1e-6)
    assert saved.voxel_size == pytest.approx(entry.voxel_size)


def test_registered_noisy_baseline_known_answers(corpus_path, tmp_path, monkeypatch):
    pytest.importorskip("baselines.classic", reason="classic baselines not installed")
    monkeypatch.chdir(tmp_path)
    run = run_method("noisy", corpus_path, progress=False, limit=2)
    assert run.out == Path("results") / "noisy"
    assert (tmp_path / "results" / "noisy" / "scalars.csv").exists()
    # D = M and D2 = M2: FSC(D, M) = 1, so cref_l1 = mean(1 - C_ref); the FSC-0.5 change is 0
    assert (run.scalars["fsc05_change"] == 0).all()
    for (entry, masking), part in run.curves.groupby(["entry", "masking"]):
        cref = part[part["curve"] == "c_ref"]["value"].to_numpy()
        fsc_fd = part[part["curve"] == "fsc_fd"]["value"].to_numpy()
        np.testing.assert_allclose(fsc_fd, 1.0, atol=1e-6)
        row = run.scalars[(run.scalars["entry"] == entry) & (run.scalars["masking"] == masking)]
        assert row["cref_l1"].item() == pytest.approx(np.mean(1 - cref), abs=1e-6)


def test_bad_arguments(corpus_path, tmp_path):
    with pytest.raises(MethodError, match="no method named"):
        run_method("no-such-method", corpus_path, out=tmp_path / "x", progress=False)
    with pytest.raises(MethodError, match="params"):
        run_method(Blur(), corpus_path, out=tmp_path / "x", params={"sigma": 1}, progress=False)
    with pytest.raises(MethodError, match="sigma"):  # the method refuses the parameter's value
        run_method(SPEC, corpus_path, out=tmp_path / "x", params={"sigma": "wide"},
                   progress=False)
    with pytest.raises(MethodError, match="takes no parameter 'radius'; its parameters: sigma"):
        run_method(SPEC, corpus_path, out=tmp_path / "x", params={"radius": 2}, progress=False)
    with pytest.raises(MethodError, match="no module 'no_such_package.methods'"):
        run_method("no_such_package.methods:Thing", corpus_path, out=tmp_path / "x",
                   progress=False)
    with pytest.raises(MethodError, match="no attribute 'Sharpen'"):
        run_method("tests.test_runner:Sharpen", corpus_path, out=tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="split: must be one of test, test-50"):
        run_method(SPEC, corpus_path, split="nope", out=tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="unknown worker; the settings are split, out"):
        run_method(SPEC, corpus_path, worker=2, out=tmp_path / "x", progress=False)
    for bad in ({"workers": 0}, {"limit": 0}, {"timeout": -1.0}, {"memory_limit": "lots"},
                {"isolation": "thread"}):
        with pytest.raises(InputError, match=next(iter(bad)).split("_")[0]):
            run_method(SPEC, corpus_path, out=tmp_path / "x", progress=False, **bad)


# --------------------------------------------------------------------------- command line

def test_cli_run(corpus_path, tmp_path, capsys, files):
    out = tmp_path / "cli"
    Path(files["control"]).write_text(json.dumps({"fail_on": [TEST_IDS[0]]}))
    status = cli.main(["run", "--method", SPEC, "--corpus", corpus_path, "--out", str(out),
                       "--limit", "3", "--param", "sigma=1.5", "--param", f"log={files['log']}",
                       "--param", f"control={files['control']}", "--no-progress",
                       "--trust-method"])
    assert status == 1
    printed = capsys.readouterr().out
    assert "cref_rmse" in printed and "2 of 3 entries ok" in printed
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["method"]["params"]["sigma"] == 1.5
    assert prov["command_line"][:2] == ["cref-bench", "run"]
    assert len(pd.read_csv(out / "scalars.csv")) == 4


def test_cli_run_refuses_unknown_method(corpus_path, tmp_path, capsys):
    status = cli.main(["run", "--method", "no-such-method", "--corpus", corpus_path,
                       "--out", str(tmp_path / "x"), "--no-progress"])
    assert status == 2
    assert "no method named" in capsys.readouterr().err


# --------------------------------------------------------------------------- dask

@pytest.mark.slow
def test_existing_dask_scheduler_gives_same_results(corpus_path, tmp_path):
    from dask.distributed import LocalCluster

    local = run_method(SPEC, corpus_path, out=tmp_path / "local", progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, processes=True) as cluster:
        remote = run_method(SPEC, corpus_path, out=tmp_path / "dask", progress=False,
                            scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(remote.scalars, local.scalars)
    pd.testing.assert_frame_equal(remote.curves, local.curves)
    workers = remote.provenance["peak_memory"]["workers_rss_bytes"]
    assert 1 <= len(workers) <= 2 and all(v > 0 for v in workers.values())
    assert remote.provenance["settings"]["scheduler"] == cluster.scheduler_address


@pytest.mark.slow
def test_local_cluster_workers(corpus_path, tmp_path):
    local = run_method(SPEC, corpus_path, out=tmp_path / "one", progress=False, limit=3)
    two = run_method(SPEC, corpus_path, out=tmp_path / "two", progress=False, limit=3, workers=2)
    pd.testing.assert_frame_equal(two.scalars, local.scalars)
    assert len(two.provenance["peak_memory"]["workers_rss_bytes"]) >= 1
    assert two.provenance["settings"]["workers"] == 2


@pytest.mark.slow
def test_resume_after_the_process_is_killed(corpus_path, tmp_path, files):
    out = tmp_path / "killed"
    Path(files["control"]).write_text(json.dumps({"hang_after": 2}))
    command = [sys.executable, "-m", "cref_bench.cli", "run", "--method", SPEC, "--corpus",
               corpus_path, "--out", str(out), "--no-progress",
               "--param", f"log={files['log']}", "--param", f"control={files['control']}",
               "--trust-method"]
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(list((out / "entries").glob("*.json"))) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run did not get through two entries"
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert len(_logged(files["log"])) == 2 and not (out / "scalars.csv").exists()

    Path(files["control"]).write_text("{}")
    run = run_method(SPEC, corpus_path, out=out, params=files, progress=False, trust_method=True)
    assert run.counts == {"entries": 5, "evaluated": 3, "resumed": 2, "failed": 0}
    assert sorted(_logged(files["log"])) == sorted(TEST_IDS)
