"""The runner as a referee: no method can change what it is scored against, hide behind a
stale result, stall the run or vanish from the tables (issue: "a referee no method can fool").

The methods here misbehave on purpose; each test runs them through :func:`run_method` on the
small corpus of ``tests/test_runner.py`` and checks what lands in the results folder.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cref_bench import cli
from cref_bench.maps.volume import Volume
from cref_bench.methods.code import class_roots, code_digest
from cref_bench.methods.protocol import Denoised, Method, SingleMapMethod
from cref_bench.run.runner import run_method
from tests.runner_corpus import TEST_IDS


class Blur(SingleMapMethod):
    """Written as a method author would: parameters in ``__init__``, no ``params()``."""

    name = "plain-blur"

    def __init__(self, sigma: float = 1.0):
        self.sigma = float(sigma)

    def denoise_map(self, volume, mask=None):
        from scipy import ndimage

        return volume.like(ndimage.gaussian_filter(volume.data, self.sigma))


class InPlaceBlur(Blur):
    """The same filter, applied in place on its input."""

    name = "in-place-blur"

    def denoise_map(self, volume, mask=None):
        from scipy import ndimage

        ndimage.gaussian_filter(volume.data, self.sigma, output=volume.data)
        return volume


class AverageIntoHalves(Method):
    """Overwrites both halves with their average and returns it: FSC_FD = C_ref = 1."""

    name = "average-into-halves"

    def denoise(self, half1, half2, mask=None):
        average = (half1.data + half2.data) / 2
        for half in (half1, half2):
            half.data.flags.writeable = True
            half.data[...] = average
        return Denoised(full=half1.like(average), note="pair method")


class Wrong(Method):
    """Returns what ``how`` names: a bare array, a map off the grid, NaN, or a constant."""

    name = "wrong"

    def __init__(self, how: str):
        self.how = how

    def params(self):
        return {"how": self.how}

    def denoise(self, half1, half2, mask=None):
        data = (half1.data + half2.data) / 2
        return {"type": data,
                "grid": Denoised(full=Volume(data[1:], half1.voxel_size, half1.origin)),
                "voxel": Denoised(full=Volume(data, 2 * half1.voxel_size[0], half1.origin)),
                "nan": Denoised(full=half1.like(np.where(data > 1, np.nan, data))),
                "constant": Denoised(full=half1.like(np.full(data.shape, 3.0)))}[self.how]


class Misbehaves(Method):
    """Hangs, exits or kills itself on the entries named in ``on``; averages the others."""

    name = "misbehaves"

    def __init__(self, how: str, on: list[str]):
        self.how, self.on = how, list(on)

    def params(self):
        return {"how": self.how, "on": self.on}

    def denoise(self, half1, half2, mask=None):
        entry = half1.source.rstrip("/").split("/")[-2]
        if entry in self.on:
            if self.how == "hang":
                time.sleep(600)
            elif self.how == "exit":
                os._exit(3)
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return Denoised(full=half1.like((half1.data + half2.data) / 2))


def _run(spec, corpus, out, **kwargs):
    return run_method(spec, corpus, out=out, progress=False, **kwargs)


def test_the_scores_of_an_in_place_filter_cannot_differ_from_a_copying_one(corpus_path,
                                                                          tmp_path):
    honest = _run("tests.test_referee:Blur", corpus_path, tmp_path / "honest")
    in_place = _run("tests.test_referee:InPlaceBlur", corpus_path, tmp_path / "in-place")
    assert honest.exit_status == 0 and in_place.exit_status == 1
    assert set(in_place.failures["kind"]) == {"error"} and in_place.scalars.empty
    assert in_place.failures["message"].str.contains("in-place-blur").all()
    assert in_place.failures["message"].str.contains("read-only").all()


@pytest.mark.parametrize("isolation", ["process", "in-process"])
def test_a_method_that_overwrites_the_halves_is_caught_not_ranked(corpus_path, tmp_path,
                                                                  isolation):
    run = _run("tests.test_referee:AverageIntoHalves", corpus_path, tmp_path / isolation,
               isolation=isolation, limit=2, trust_method=isolation == "in-process")
    assert run.exit_status == 1 and run.scalars.empty and len(run.failures) == 2
    kinds = set(run.failures["kind"])
    # in process the digest catches it; in its own process the inputs cannot even be made
    # writable
    assert kinds == ({"inputs-modified"} if isolation == "in-process" else {"error"})
    assert run.failures["message"].str.contains("average-into-halves").all()


def test_a_param_change_recomputes_for_a_method_without_params(corpus_path, tmp_path):
    out = tmp_path / "p"
    first = _run("tests.test_referee:Blur", corpus_path, out, params={"sigma": 1.0}, limit=2)
    second = _run("tests.test_referee:Blur", corpus_path, out, params={"sigma": 2.0}, limit=2,
                  replace=True)
    assert second.counts["evaluated"] == 2 and second.counts["resumed"] == 0
    assert not np.allclose(first.scalars["truth_corr"], second.scalars["truth_corr"])
    assert second.provenance["method"]["params"] == {"sigma": 2.0}
    assert set(second.scalars["params"]) == {'{"sigma":2.0}'}
    same = _run("tests.test_referee:Blur", corpus_path, out, params={"sigma": 2.0}, limit=2)
    assert same.counts["resumed"] == 2


def test_an_edited_method_source_recomputes(corpus_path, tmp_path, monkeypatch):
    package = tmp_path / "mine"
    package.mkdir()
    source = package / "edited_method.py"
    body = ("from cref_bench.methods.protocol import SingleMapMethod\n\n"
            "class Scale(SingleMapMethod):\n    name = 'scale'\n\n"
            "    def denoise_map(self, volume, mask=None):\n"
            "        return volume.like(volume.data * {factor})\n")
    source.write_text(body.format(factor=0.5))
    monkeypatch.syspath_prepend(str(package))
    out = tmp_path / "e"
    first = _run("edited_method:Scale", corpus_path, out, limit=2)
    digest = first.provenance["method"]["code_digest"]
    assert digest and len(digest) == 64
    assert _run("edited_method:Scale", corpus_path, out, limit=2).counts["resumed"] == 2

    source.write_text(body.format(factor=0.25))
    sys.modules.pop("edited_method", None)
    again = _run("edited_method:Scale", corpus_path, out, limit=2)
    assert again.counts["evaluated"] == 2
    assert again.provenance["method"]["code_digest"] != digest


def test_code_digest_is_of_the_whole_package_of_the_defining_module(tmp_path):
    import shutil

    assert class_roots(Blur) == (Path(__file__).resolve().parent,)
    copy = tmp_path / "tests"
    shutil.copytree(Path(__file__).parent, copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    assert code_digest([copy]) == code_digest(class_roots(Blur))
    (copy / "helpers_fields.py").write_text("# a helper module the method may import\n")
    assert code_digest([copy]) != code_digest(class_roots(Blur))


@pytest.mark.parametrize("how, words", [
    ("type", "returned a ndarray, not a cref_bench.methods.protocol.Denoised"),
    ("grid", "not on the input grid"),
    ("voxel", "not on the input grid"),
    ("nan", "non-finite voxel"),
    ("constant", "is constant"),
])
def test_bad_outputs_are_the_methods_failure(corpus_path, tmp_path, how, words):
    run = _run("tests.test_referee:Wrong", corpus_path, tmp_path / how, params={"how": how},
               limit=1)
    [failure] = run.failures.to_dict("records")
    assert failure["kind"] == "output"
    assert failure["message"].startswith("method 'wrong': ") and words in failure["message"]
    assert failure["error_type"] == "MethodFailure"  # not a MapError of the input file


def _misbehaving_run(corpus, out, how, **kwargs):
    bad = TEST_IDS[1:3]
    run = _run("tests.test_referee:Misbehaves", corpus, out, params={"how": how, "on": bad},
               timeout=3, **kwargs)
    assert run.exit_status == 1
    assert sorted(run.failures["entry"]) == sorted(bad)
    assert sorted(set(run.scalars["entry"])) == sorted(set(TEST_IDS) - set(bad))
    for name in ("scalars", "notes", "curves", "failures"):
        assert (out / f"{name}.csv").exists()
    return run


@pytest.mark.parametrize("how, kind, words", [
    ("hang", "timeout", "stopped after"),
    ("exit", "crashed", "exited with status 3"),
    ("kill", "crashed", "killed by SIGKILL"),
])
def test_hanging_and_dying_methods_are_recorded_and_the_run_finishes(corpus_path, tmp_path,
                                                                     how, kind, words):
    out = tmp_path / how
    start = time.monotonic()
    run = _misbehaving_run(corpus_path, out, how)
    assert time.monotonic() - start < 120
    assert set(run.failures["kind"]) == {kind}
    assert run.failures["message"].str.contains(words).all()
    # a rerun keeps the failures instead of running into them again
    again = _run("tests.test_referee:Misbehaves", corpus_path, out,
                 params={"how": how, "on": TEST_IDS[1:3]}, timeout=3)
    assert again.counts["evaluated"] == 0 and again.counts["failed"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("how", ["hang", "kill"])
def test_misbehaving_methods_on_two_dask_workers(corpus_path, tmp_path, how):
    run = _misbehaving_run(corpus_path, tmp_path / how, how, workers=2)
    assert set(run.failures["kind"]) == {"timeout" if how == "hang" else "crashed"}
    assert run.provenance["execution"]["isolation"] == "process"


@pytest.mark.slow
def test_a_worker_killed_in_process_is_recorded_not_retried(corpus_path, tmp_path):
    run = _misbehaving_run(corpus_path, tmp_path / "w", "kill", workers=2,
                           isolation="in-process", trust_method=True)
    assert set(run.failures["kind"]) == {"crashed"}
    assert run.failures["message"].str.contains("worker").all()


def test_memory_limit_is_recorded(corpus_path, tmp_path):
    run = _run("tests.test_isolation:Hogs", corpus_path, tmp_path / "m",
               memory_limit=600 * 2**20, limit=1)
    assert run.failures["kind"].tolist() == ["memory"]
    assert run.provenance["execution"]["memory_limit_bytes"] == 600 * 2**20


def test_classic_filters_run_in_process_and_others_in_their_own(corpus_path, tmp_path):
    pytest.importorskip("baselines.classic")
    in_process = _run("noisy", corpus_path, tmp_path / "n", limit=2)
    assert in_process.provenance["execution"]["isolation"] == "in-process"
    # noisy returns its own inputs as the denoised halves: that must work in a process too
    separate = _run("noisy", corpus_path, tmp_path / "n2", limit=2, isolation="process")
    assert separate.provenance["execution"]["isolation"] == "process"
    assert in_process.exit_status == separate.exit_status == 0
    pd.testing.assert_frame_equal(in_process.scalars, separate.scalars)
    assert _run("tests.test_referee:Blur", corpus_path, tmp_path / "b", limit=1
                ).provenance["execution"]["isolation"] == "process"


def test_an_empty_split_is_refused(corpus_path, tmp_path, capsys):
    status = cli.main(["run", "--method", "tests.test_referee:Blur", "--corpus", corpus_path,
                       "--split", "train", "--out", str(tmp_path / "t"), "--no-progress"])
    assert status == 2
    err = capsys.readouterr().err
    assert "holds no entries" in err and len(err.strip().splitlines()) == 1


def test_cli_limits_and_failure_summary(corpus_path, tmp_path, capsys):
    out = tmp_path / "cli"
    status = cli.main(["run", "--method", "tests.test_referee:Misbehaves", "--corpus",
                       corpus_path, "--out", str(out), "--param", "how=exit",
                       "--param", json.dumps(TEST_IDS[:1]).join(["on=", ""]),
                       "--timeout", "30", "--memory-limit", "2G", "--no-progress"])
    assert status == 1
    printed = capsys.readouterr().out
    assert "1 entries failed (1 crashed)" in printed
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["execution"]["timeout_s"] == 30 and prov["execution"]["memory_limit_bytes"] == 2**31
    assert pd.read_csv(out / "failures.csv")["kind"].tolist() == ["crashed"]
    log = "".join(p.read_text() for p in (out / "logs").glob("*.log"))
    assert f"== {TEST_IDS[0]}" in log
