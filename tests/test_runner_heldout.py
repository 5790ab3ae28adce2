"""The runner's held-out calls (cref_bench.run.single_map): a single-map method is called on
one map at a time, the average, M1 alone and M2 alone, never on both halves (a method that
receives both fails these tests), in this process and in its own; in its box, each kind of
call in a box of its own, so that a method that keeps what it was given (in memory or in its
scratch files) never has M2 when it denoises M1; a pair method's held-out scores are "not
applicable", never a number."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from cref_bench.corpus.reader import open_corpus
from cref_bench.methods.protocol import SingleMapMethod, average_halves
from cref_bench.metrics.scores import HELDOUT_METRICS
from cref_bench.run import sandbox
from cref_bench.run.runner import run_method
from cref_bench.run.single_map import OneMap, denoise_apart, in_process_caller

SPY = "tests.test_runner_heldout:Spy"


def _digest(data: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(data, np.float32).tobytes()).hexdigest()


class Spy(SingleMapMethod):
    """Blurs the map it is given and records a digest of it: one JSON line per call, in the
    file ``record``, or (``record`` empty: in its box, which cannot write the referee's files)
    on its standard output, which the runner keeps in ``logs/``; refuses to be handed both
    halves at once."""

    name = "spy-test"
    version = "1"

    def __init__(self, record: str = ""):
        self.record = record

    def params(self) -> dict:
        return {"record": self.record}

    def denoise_map(self, volume, mask=None):
        line = json.dumps({"digest": _digest(volume.data)})
        if self.record:
            with open(self.record, "a") as stream:
                stream.write(line + "\n")
        else:
            print(f"SPY {line}", flush=True)
        return volume.like(ndimage.gaussian_filter(volume.data, 1.0))

    def denoise(self, half1, half2, mask=None):
        raise AssertionError("the runner handed a single-map method both halves")


class Hoarder(SingleMapMethod):
    """A cheat: keeps every map it is given, in memory and as a file in its scratch folder,
    and returns the map it is given averaged with any kept map that correlates with it (the
    other half, or the average, of the same entry); else the map itself."""

    name = "hoarder-test"
    version = "1"

    def __init__(self):
        self.kept: list[np.ndarray] = []

    def _all_kept(self) -> list[np.ndarray]:
        files = sorted(Path(tempfile.gettempdir()).glob("hoard-*.npy"))
        return self.kept + [np.load(f) for f in files]

    def denoise_map(self, volume, mask=None):
        data = np.array(volume.data, dtype=np.float32)
        out = data
        for other in self._all_kept():
            if other.shape == data.shape and np.corrcoef(other.ravel(), data.ravel())[0, 1] > 0.5:
                out = (data + other) / 2
                break
        self.kept.append(data)
        np.save(Path(tempfile.gettempdir()) / f"hoard-{len(self.kept)}.npy", data)
        return volume.like(out)


def test_the_hoarder_cheats_where_one_box_makes_every_call(corpus_path, tmp_path, monkeypatch):
    """What the boxes must prevent: given the average first, the hoarder's D1 depends on M2."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    entry = open_corpus(corpus_path).entry(open_corpus(corpus_path).ids("test")[0])
    out = denoise_apart(in_process_caller(Hoarder(), lambda seed: None),
                        entry.half1, entry.half2, entry.mask, seed=0)
    assert not np.array_equal(out.half1.data, entry.half1.data)


@pytest.mark.skipif(sandbox.support().bwrap is None,
                    reason=f"no sandbox here: {sandbox.support().reason}")
def test_a_method_that_keeps_what_it_saw_gains_nothing_from_the_other_calls(corpus_path,
                                                                          tmp_path):
    """Each kind of call has its own box (own memory, own scratch): the hoarder's held-out
    scores are those of the unfiltered map (its calls return the map they were given)."""
    runs = {name: run_method(method, corpus_path, out=tmp_path / name, isolation="process",
                             limit=3, progress=False)
            for name, method in (("hoarder", "tests.test_runner_heldout:Hoarder"),
                                 ("noisy", "noisy"))}
    assert runs["hoarder"].exit_status == 0, runs["hoarder"].failures
    columns = ["entry", "masking", *HELDOUT_METRICS]
    hoarder, noisy = (runs[n].scalars[columns].sort_values(["entry", "masking"])
                      .reset_index(drop=True) for n in ("hoarder", "noisy"))
    assert np.allclose(hoarder[list(HELDOUT_METRICS)].to_numpy(float),
                       noisy[list(HELDOUT_METRICS)].to_numpy(float), rtol=1e-6, atol=1e-9)
    logs = sorted(p.name for p in (tmp_path / "hoarder" / "logs").glob("method-*.log"))
    assert len(logs) == 3 and any(n.endswith("-half1.log") for n in logs), logs


def _calls(record: Path) -> list[str]:
    return [json.loads(line)["digest"] for line in record.read_text().splitlines()]


@pytest.mark.parametrize("isolation", ["in-process", "process"])
def test_each_call_gets_one_map_and_the_halves_are_held_out(corpus_path, tmp_path, isolation):
    record = tmp_path / "calls.jsonl"
    boxed = isolation == "process"
    run = run_method(SPY, corpus_path, out=tmp_path / "res",
                     params={"record": "" if boxed else str(record)},
                     isolation=isolation, limit=2, progress=False, trust_method=not boxed)
    assert run.exit_status == 0, run.failures
    if boxed:  # the calls as the box printed them
        printed = "".join(p.read_text() for p in (tmp_path / "res" / "logs").glob("method-*"))
        record.write_text("".join(line[4:] + "\n" for line in printed.splitlines()
                                  if line.startswith("SPY ")))
    corpus = open_corpus(corpus_path)
    expected = []
    for entry_id in run.scalars["entry"].unique():
        entry = corpus.entry(entry_id)
        average = average_halves(entry.half1, entry.half2)
        expected += [_digest(v.data) for v in (average, entry.half1, entry.half2)]
    assert sorted(_calls(record)) == sorted(expected)
    assert run.scalars[list(HELDOUT_METRICS)].notna().all().all()
    assert run.scalars["fsc05_change"].notna().all()


def test_a_pair_method_is_not_applicable_never_zero(corpus_path, tmp_path):
    run = run_method("tests.test_runner:PairOnly", corpus_path, out=tmp_path / "pair",
                     limit=2, progress=False)
    assert run.scalars[list(HELDOUT_METRICS)].isna().all().all()
    reasons = run.notes[run.notes["metric"] == "heldout_corr"]["reason"]
    assert len(reasons) == 4 and reasons.str.startswith("not applicable: pair-test").all()


def test_one_map_refuses_two_different_maps(corpus_path):
    entry = open_corpus(corpus_path).entry(open_corpus(corpus_path).ids("test")[0])
    box = OneMap(Spy(record="/dev/null"))
    assert box.denoise(entry.half1, entry.half1).full.shape == entry.half1.shape
    with pytest.raises(Exception, match="two different maps"):
        box.denoise(entry.half1, entry.half2)


def test_denoise_apart_seeds_each_call_apart(corpus_path):
    entry = open_corpus(corpus_path).entry(open_corpus(corpus_path).ids("test")[0])
    seen = []

    def call(volume, mask, seed, what):
        seen.append((what, seed))
        return volume

    out = denoise_apart(call, entry.half1, entry.half2, entry.mask, seed=2 ** 32 - 1)
    assert seen == [("average", 2 ** 32 - 1), ("half1", 0), ("half2", 1)]
    assert out.half1 is entry.half1 and out.half2 is entry.half2


def test_boxes_that_share_the_network_are_warned_of(corpus_path, tmp_path):
    shared = run_method("gaussian", corpus_path, out=tmp_path / "net", isolation="process",
                        network=True, limit=1, progress=False)
    apart = run_method("gaussian", corpus_path, out=tmp_path / "apart", isolation="process",
                       limit=1, progress=False)
    boxed = apart.provenance["execution"]["sandbox"] == "bwrap"
    warned = [m for m in shared.messages if "held-out calls shared" in m]
    assert len(warned) == 1 and ("the network" if boxed else "the file system") in warned[0]
    assert any("held-out calls shared" in m for m in apart.messages) is not boxed
