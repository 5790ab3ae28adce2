"""A run's method lives only in its box: the runner never imports a third-party method, the
resume key covers all of its code and the scoring code, kept outputs re-score, and the
trust flag is recorded and marked (issue 20). Tests that need a box skip where none can be
made."""

from __future__ import annotations

import json
import sys
import time

import pytest

from cref_bench import cli
from cref_bench.errors import InputError
from cref_bench.results.check import check_results
from cref_bench.results.folder import ResultsFolder
from cref_bench.run import sandbox, scoring
from cref_bench.run.runner import run_method
from tests.test_sandbox import PATCHER, Probe

needs_box = pytest.mark.skipif(sandbox.support().bwrap is None,
                               reason=f"no sandbox here: {sandbox.support().reason}")

PACKAGE = {
    "__init__.py": "",
    "helper.py": "FACTOR = 0.5\n",
    "method.py": '''
import numpy as np
from cref_bench.methods.protocol import Method, Denoised
from . import helper


class Scaled(Method):
    name = "scaled"
    version = "1"

    def denoise(self, half1, half2, mask=None):
        average = (half1.data + half2.data) * np.float32(helper.FACTOR)
        return Denoised(full=half1.like(average))
''',
}


def _run(method, corpus, out, **kwargs):
    return run_method(method, corpus, out=out, progress=False, limit=2, **kwargs)


@pytest.fixture
def package(tmp_path, monkeypatch):
    root = tmp_path / "code"
    (root / "mypkg").mkdir(parents=True)
    for name, text in PACKAGE.items():
        (root / "mypkg" / name).write_text(text)
    monkeypatch.syspath_prepend(str(root))
    return root / "mypkg"


@needs_box
def test_a_third_party_method_is_built_in_its_box_never_here(package, corpus_path, tmp_path):
    from cref_bench.metrics import scores

    original = scores.evaluate
    (package / "cheat.py").write_text(PATCHER.format(marker=str(tmp_path / "imported-here")))
    run = _run("mypkg.cheat:Cheat", corpus_path, tmp_path / "out")
    assert run.exit_status == 0 and scores.evaluate is original
    assert not [m for m in sys.modules if m.startswith("mypkg")]
    assert not (tmp_path / "imported-here").exists()
    assert run.provenance["method"]["name"] == "cheat"
    assert run.provenance["method"]["params"] == {"size": 3}
    execution = run.provenance["execution"]
    assert execution["isolation"] == "process" and execution["sandbox"] == "bwrap"
    assert execution["trusted"] is False
    assert check_results(run.out).marks == []


def test_in_process_needs_the_trust_flag_for_a_method_not_our_own(corpus_path, tmp_path):
    with pytest.raises(InputError, match="--trust-method"):
        _run(Probe(str), corpus_path, tmp_path / "out", isolation="in-process")


def test_a_trusted_method_runs_here_recorded_and_marked(corpus_path, tmp_path):
    run = _run(Probe(lambda h: h.source), corpus_path, tmp_path / "out", trust_method=True)
    assert run.provenance["execution"]["isolation"] == "in-process"
    assert run.provenance["execution"]["trusted"] is True and run.exit_status == 0
    report = check_results(run.out)
    assert any(mark.startswith("trusted") for mark in report.marks)


@needs_box
def test_inputs_carry_labels_in_a_box_and_in_process(corpus_path, tmp_path):
    for how, kwargs in (("box", {}), ("trusted", {"trust_method": True})):
        run = _run(Probe(lambda h: h.source), corpus_path, tmp_path / how, **kwargs)
        entry = run.scalars["entry"].iloc[0]
        reasons = " ".join(run.notes.loc[run.notes["entry"] == entry, "reason"].astype(str))
        assert f"{entry}/half1" in reasons and corpus_path not in reasons


@needs_box
def test_a_changed_helper_module_recomputes(package, corpus_path, tmp_path):
    out = tmp_path / "out"
    first = _run("mypkg.method:Scaled", corpus_path, out)
    assert first.counts["evaluated"] == 2
    assert _run("mypkg.method:Scaled", corpus_path, out).counts["resumed"] == 2
    (package / "helper.py").write_text("FACTOR = 0.25\n")
    again = _run("mypkg.method:Scaled", corpus_path, out)
    assert again.counts["evaluated"] == 2 and again.counts["resumed"] == 0
    assert (again.provenance["method"]["code_digest"]
            != first.provenance["method"]["code_digest"])


@needs_box
def test_a_changed_scoring_module_recomputes(package, corpus_path, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert _run("mypkg.method:Scaled", corpus_path, out).counts["evaluated"] == 2
    monkeypatch.setattr(scoring, "scoring_digest", lambda: "0" * 64)
    again = _run("mypkg.method:Scaled", corpus_path, out)
    assert again.counts["evaluated"] == 2
    assert again.provenance["scoring"]["scoring_digest"] == "0" * 64


@needs_box
def test_kept_outputs_re_score_and_an_edited_record_is_named(package, corpus_path, tmp_path,
                                                            capsys):
    run = _run("mypkg.method:Scaled", corpus_path, tmp_path / "out")
    folder = ResultsFolder(run.out)
    assert cli.main(["check", str(run.out), "--corpus", corpus_path, "--recompute",
                     "--split", "test"]) in (0, 1)
    assert "recompute:" not in capsys.readouterr().out
    entry = run.scalars["entry"].iloc[0]
    record = folder.record(entry)
    record["scalars"]["masked"]["cref_rmse"] = 0.0001
    folder.write_record(record)
    cli.main(["check", str(run.out), "--corpus", corpus_path, "--recompute"])
    assert f"recompute: entry {entry}: the record differs" in capsys.readouterr().out


class Daemon(Probe):
    """Leaves a double-forked daemon that, a moment after the run, rewrites the results
    folder's tables (it was told where they are)."""

    name = "daemon"

    def __init__(self, out):
        self.out = out
        super().__init__(self.spawn)

    def spawn(self, h):
        import os

        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(2)
                with open(f"{self.out}/scalars.csv", "w") as handle:
                    handle.write("forged\n")
            os._exit(0)
        return "spawned"


@needs_box
def test_a_daemon_cannot_rewrite_the_results_after_the_run(corpus_path, tmp_path):
    out = tmp_path / "out"
    run = _run(Daemon(str(out)), corpus_path, out)
    assert run.exit_status == 0
    time.sleep(3)
    assert (out / "scalars.csv").read_text().startswith("method,")
    report = check_results(out)
    assert not [f for f in report.findings if f.topic == "tables"]


@needs_box
def test_the_box_cannot_write_the_store_or_the_results(corpus_path, tmp_path):
    out = tmp_path / "out"
    targets = [f"{corpus_path}/zarr.json", f"{out}/provenance.json", f"{out}/entries/x.json"]

    def attack(h):
        outcome = []
        for path in targets:
            try:
                open(path, "a").close()
                outcome.append("written")
            except OSError as exc:
                outcome.append(type(exc).__name__)
        return json.dumps(outcome)

    run = _run(Probe(attack), corpus_path, out)
    assert run.exit_status == 0
    assert not (out / "entries" / "x.json").exists()
    reasons = set(run.notes["reason"].astype(str))
    outcomes = [json.loads(r) for r in reasons if r.startswith("[")]
    assert outcomes and all(o == ["FileNotFoundError"] * 3 for o in outcomes)


def test_without_a_sandbox_the_run_goes_on_recorded_and_marked(corpus_path, tmp_path,
                                                               monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "support",
                        lambda: sandbox.Support(None, "no user namespaces here", False, None))
    sandbox._warn_once.cache_clear()
    with pytest.warns(sandbox.SandboxUnavailableWarning, match="no user namespaces here"):
        run = _run(Probe(str), corpus_path, tmp_path / "out")
    sandbox._warn_once.cache_clear()
    assert run.exit_status == 0
    assert run.provenance["execution"]["sandbox"] == "none"
    report = check_results(run.out)
    assert any(mark.startswith("sandbox: none") for mark in report.marks)
    cli.main(["check", str(run.out)])
    assert "marked: sandbox: none" in capsys.readouterr().out
