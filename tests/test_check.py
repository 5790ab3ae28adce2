"""`cref-bench check`: a results folder is fit to publish only when its corpus and split are
the published ones, every entry was scored, none failed, its provenance is complete and its
tables agree with its entry records.

The folders are written by the runner; the provenance fields the isolated runner adds
(code digest, isolation and limits) are added here where the runner does not write them yet.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from cref_bench import cli
from cref_bench.corpus import releases as corpora
from cref_bench.corpus.reader import open_corpus
from cref_bench.corpus.splits import split_of
from cref_bench.errors import ResultsError
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import SingleMapMethod
from cref_bench.results.check import check_results
from cref_bench.run.runner import run_method

SPEC = "tests.test_check:Smooth"
TEST_IDS = [i for i in (f"CK-{k:04d}" for k in range(200)) if split_of(i) == "test"][:4]


class Smooth(SingleMapMethod):
    """A Gaussian blur that raises on the entries named in ``fail_on``."""

    name = "smooth-test"
    version = "1"

    def __init__(self, sigma: float = 1.0, fail_on: tuple = ()):
        self.sigma, self.fail_on = float(sigma), list(fail_on)

    def params(self) -> dict:
        return {"sigma": self.sigma, "fail_on": self.fail_on}

    def denoise_map(self, volume, mask=None):
        entry = volume.source.split("/")[0].split()[0]  # "<entry> <call>/<map>", a label
        if entry in self.fail_on:
            raise RuntimeError(f"refusing entry {entry}")
        return volume.like(ndimage.gaussian_filter(volume.data, self.sigma))


def _maps(rng, n: int) -> dict:
    """Half-maps of a smooth random truth with noise, a soft spherical mask, the truth."""
    truth = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), 1.5)
    truth = (truth / truth.std()).astype(np.float32)
    radius = np.sqrt(((np.indices((n, n, n)) - n / 2) ** 2).sum(axis=0))
    maps = {h: Volume(truth + 0.8 * rng.standard_normal(truth.shape).astype(np.float32), 1.5)
            for h in ("half1", "half2")}
    maps["mask"] = Volume(np.clip((0.38 * n - radius) / 3, 0, 1).astype(np.float32), 1.5)
    maps["truth"] = Volume(truth, 1.5)
    return maps


def _write_corpus(path: Path, seed: int) -> str:
    from dataset_builder.store import create_store, finalize, write_entry

    store = create_store(path, source="check test phantoms", patch_size=16)
    rng = np.random.default_rng(seed)
    for k, entry_id in enumerate(TEST_IDS):
        write_entry(store, entry_id, **_maps(rng, 32 if k % 2 else 36))
    finalize(store)
    return str(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return _write_corpus(tmp_path_factory.mktemp("check") / "corpus.zarr", seed=5)


def publishable(folder: Path) -> Path:
    """Add to provenance.json what the isolated runner records (where it is missing)."""
    path = folder / "provenance.json"
    provenance = json.loads(path.read_text())
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    provenance["method"].setdefault("code_digest", digest)
    provenance["method"]["spec"] = provenance["method"].get("spec") or SPEC
    for key, value in (("isolation", "process"), ("timeout_s", None),
                       ("memory_limit_bytes", None)):
        provenance["execution"].setdefault(key, value)
    path.write_text(json.dumps(provenance, indent=2))
    return folder


@pytest.fixture(scope="module")
def complete(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("check-results") / "blur"
    run = run_method(SPEC, corpus, out=out, params={"sigma": 1.2}, progress=False)
    assert run.exit_status == 0 and run.counts["entries"] == 4
    return publishable(out)


@pytest.fixture
def copy(complete, tmp_path) -> Path:
    """A copy of the complete folder, to spoil."""
    return Path(shutil.copytree(complete, tmp_path / "copy"))


def _topics(report) -> list[str]:
    return [f.topic for f in report.findings]


def test_a_complete_folder_is_fit(complete, corpus, capsys):
    report = check_results(complete, corpus=open_corpus(corpus))
    assert report.fit, report.format()
    assert report.facts["entries"] == 4 and report.facts["failed"] == 0
    digest = open_corpus(corpus).content_hash
    assert check_results(complete, expect_hash=digest).fit
    assert cli.main(["check", str(complete), "--corpus", corpus]) == 0
    assert "fit to publish" in capsys.readouterr().out


def test_an_unpublished_corpus_is_not_fit_until_named(complete, monkeypatch):
    report = check_results(complete)
    assert _topics(report) == ["corpus"]
    assert "is not a published corpus" in report.findings[0].message
    digest = json.loads((complete / "provenance.json").read_text())["dataset"]["content_hash"]
    row = corpora.PublishedCorpus("phantoms 1", digest, "test", "https://example.org/c.zarr")
    monkeypatch.setattr(corpora, "PUBLISHED", (row,))
    report = check_results(complete)
    assert report.fit and report.facts["corpus"] == "phantoms 1"
    monkeypatch.setattr(corpora, "PUBLISHED", (row.__class__(**{**row.__dict__,
                                                                 "split": "test-50"}),))
    assert "not 'test-50'" in check_results(complete).findings[0].message


def test_published_rows_are_well_formed():
    for row in corpora.PUBLISHED:
        assert corpora.HASH_PATTERN.fullmatch(row.content_hash), row
        assert row.split in ("test", "test-50") and row.name and "://" in row.location
    assert len({row.content_hash for row in corpora.PUBLISHED}) == len(corpora.PUBLISHED)


def test_a_missing_entry_is_named(copy, corpus):
    gone = TEST_IDS[2]
    (copy / "entries" / f"{gone}.json").unlink()
    for name in ("scalars", "notes", "curves"):
        table = pd.read_csv(copy / f"{name}.csv", dtype=str, keep_default_na=False)
        table[table["entry"] != gone].to_csv(copy / f"{name}.csv", index=False)
    report = check_results(copy, corpus=open_corpus(corpus))
    assert _topics(report) == ["entries"]
    assert report.findings[0].message == f"1 of the 4 entries of the split were not scored: {gone}"
    assert "counts 4 entries in the split, the tables hold 3" in \
        check_results(copy, expect_hash=open_corpus(corpus).content_hash).findings[0].message


def test_a_failed_entry_is_listed(corpus, tmp_path):
    run = run_method(SPEC, corpus, out=tmp_path / "failing", progress=False,
                     params={"fail_on": [TEST_IDS[1]]})
    assert run.counts["failed"] == 1
    report = check_results(publishable(run.out), corpus=open_corpus(corpus))
    assert _topics(report) == ["failures"]
    assert report.findings[0].message.startswith(f"1 entry failed: {TEST_IDS[1]} (")
    assert f"refusing entry {TEST_IDS[1]}" in report.findings[0].message
    assert cli.main(["check", str(run.out), "--corpus", corpus]) == 1


@pytest.mark.parametrize("table, column", [("scalars", "cref_rmse"), ("curves", "value"),
                                           ("scalars", "truth_corr")])
def test_a_tampered_value_is_found(copy, corpus, table, column):
    frame = pd.read_csv(copy / f"{table}.csv", dtype=str, keep_default_na=False)
    row = frame.index[(frame["masking"] == "masked") & (frame["entry"] == TEST_IDS[3])][0]
    frame.loc[row, column] = repr(float(frame.loc[row, column]) * 0.9)
    frame.to_csv(copy / f"{table}.csv", index=False)
    report = check_results(copy, corpus=open_corpus(corpus))
    assert _topics(report) == ["tables"]
    message = report.findings[0].message
    assert message.startswith(f"{table}.csv disagrees with the entry records: "
                              f"{TEST_IDS[3]} masked")
    assert column in message


def test_removed_rows_columns_and_a_changed_record_are_found(copy, corpus):
    opened = open_corpus(corpus)
    notes = pd.read_csv(copy / "notes.csv", dtype=str, keep_default_na=False)
    notes.iloc[1:].to_csv(copy / "notes.csv", index=False)
    scalars = pd.read_csv(copy / "scalars.csv", dtype=str, keep_default_na=False)
    scalars.drop(columns=["truth_corr"]).to_csv(copy / "scalars.csv", index=False)
    curves = pd.read_csv(copy / "curves.csv", dtype=str, keep_default_na=False)
    gone = curves.index[(curves["entry"] == TEST_IDS[1]) & (curves["curve"] == "fsc_fd")][-1]
    curves.drop(index=gone).to_csv(copy / "curves.csv", index=False)
    record_path = copy / "entries" / f"{TEST_IDS[0]}.json"
    record = json.loads(record_path.read_text())
    record["params"]["sigma"] = 9.0
    record_path.write_text(json.dumps(record))
    messages = [f.message for f in check_results(copy, corpus=opened).findings]
    assert any(m.startswith("notes.csv (") and "rows of the records missing" in m
               for m in messages)
    assert "scalars.csv lacks columns: truth_corr" in messages
    shell = float(curves.loc[gone, "shell"])
    [missing] = [m for m in messages if m.startswith("curves.csv (")]
    assert missing.endswith(f"rows of the records missing: ('{TEST_IDS[1]}', "
                            f"'{curves.loc[gone, 'masking']}', 'fsc_fd', {shell})")
    assert any(m.startswith("entries whose record has another params") and TEST_IDS[0] in m
               for m in messages)


def test_a_foreign_corpus_is_named(complete, corpus, tmp_path):
    other = open_corpus(_write_corpus(tmp_path / "other.zarr", seed=6))
    report = check_results(complete, corpus=other)
    assert _topics(report) == ["corpus"]
    assert f"not of {other.location} ({other.content_hash})" in report.findings[0].message
    report = check_results(complete, expect_hash="0" * 64)
    assert "not of the expected " + "0" * 64 in report.findings[0].message
    with pytest.raises(ResultsError, match="not a sha256 hex digest"):
        check_results(complete, expect_hash="abc")


def test_incomplete_provenance_and_a_limited_run(corpus, tmp_path, capsys):
    run = run_method(SPEC, corpus, out=tmp_path / "limited", limit=2, progress=False)
    report = check_results(run.out, corpus=open_corpus(corpus))
    messages = [f.message for f in report.findings]
    if "code_digest" not in run.provenance.get("method", {}):  # a runner without isolation
        assert any("lacks method.code_digest" in m for m in messages)
    assert "the run was limited to its first 2 entries (--limit)" in messages
    assert any(m.startswith("2 of the 4 entries of the split were not scored") for m in messages)
    assert cli.main(["check", str(tmp_path / "nothing")]) == 2
    assert "provenance.json: missing" in capsys.readouterr().err


def test_json_verdicts(complete, copy, corpus, capsys):
    (copy / "failures.csv").unlink()
    assert cli.main(["check", str(complete), str(copy), "--corpus", corpus, "--json"]) == 1
    verdicts = json.loads(capsys.readouterr().out)
    assert [v["fit"] for v in verdicts] == [True, False]
    assert verdicts[1]["findings"] == [{"topic": "tables", "message": "failures.csv is missing"}]


def test_the_leaderboard_lists_results_that_are_not_fit(complete, corpus, tmp_path, capsys):
    noisy = publishable(run_method("noisy", corpus, out=tmp_path / "noisy", progress=False).out)
    frame = pd.read_csv(noisy / "scalars.csv", dtype=str, keep_default_na=False)
    frame.loc[0, "cref_rmse"] = "0.001"  # a better score than it earned
    frame.to_csv(noisy / "scalars.csv", index=False)
    argv = ["leaderboard", str(complete), str(noisy), "--corpus", corpus]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "Not fit to publish (cref-bench check FOLDER says why):\n\n" \
           f"- noisy ({noisy}): tables\n" in out
    assert "| noisy" not in out and "| smooth-test" in out  # only the fit folder is ranked
    assert cli.main(argv + ["--include-unfit"]) == 0
    assert "| noisy" in capsys.readouterr().out  # asked for explicitly: ranked, still listed
    assert cli.main(argv[:-2]) == 2  # without the corpus: no folder is of a published corpus
    assert f"{complete}: NOT fit to publish" in capsys.readouterr().err
    assert cli.main(argv[:-2] + ["--include-unfit"]) == 0
    listed = capsys.readouterr().out.split("says why):")[1]
    assert f"- smooth-test ({complete}): corpus" in listed and "- noisy" in listed
    assert cli.main(argv + ["--format", "html"]) == 0
    assert f"<li>noisy ({noisy}): tables</li>" in capsys.readouterr().out


def test_each_missing_provenance_fact_is_named(copy, corpus):
    path = copy / "provenance.json"
    provenance = json.loads(path.read_text())
    del provenance["hardware"]
    provenance["packages"] = {}
    provenance["execution"]["isolation"] = "thread"
    provenance["method"]["code_digest"] = "xyz"
    del provenance["method"]["version"]
    path.write_text(json.dumps(provenance))
    messages = [f.message for f in check_results(copy, corpus=open_corpus(corpus)).findings]
    assert "provenance.json lacks method.version, hardware" in messages
    assert "provenance.json has no usable packages ('empty')" in messages
    assert "method.code_digest 'xyz' is not a sha256 hex digest" in messages
    assert "execution.isolation 'thread' is not one of process, in-process" in messages


@pytest.mark.parametrize("as_text", [json.dumps, str], ids=["json", "python-repr"])
def test_check_compares_the_params_column_with_the_records(copy, corpus, as_text):
    """The params column (after method_version) is compared with the records, whether the
    table holds it as JSON or as Python text; a changed setting is a row not in the records."""
    scalars = pd.read_csv(copy / "scalars.csv", dtype=str, keep_default_na=False)
    assert list(scalars.columns[:3]) == ["method", "method_version", "params"]
    params = json.loads((copy / "provenance.json").read_text())["method"]["params"]
    scalars["params"] = as_text(params)
    scalars.to_csv(copy / "scalars.csv", index=False)
    assert check_results(copy, corpus=open_corpus(corpus)).fit
    scalars.loc[0, "params"] = as_text({**params, "sigma": 3.0})
    scalars.to_csv(copy / "scalars.csv", index=False)
    [finding] = check_results(copy, corpus=open_corpus(corpus)).findings
    assert finding.topic == "tables" and "rows not in the records" in finding.message
