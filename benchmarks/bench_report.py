"""The report's time against loading the result tables it needs.

Four classic methods are run on a 4-entry phantom corpus (64-96³, ``split="all"``); each
results folder is then grown to 50 entries by replicating its entry records under new ids
with every scalar scaled by a small per-entry factor (deterministic), and its tables are
assembled from those records exactly as the runner does, so ``cref-bench check`` agrees with
them. The baseline, measured in the same run just before, is reading what the report needs:
every folder's ``scalars.csv``, ``notes.csv``, ``failures.csv``, ``curves.csv`` (pandas) and
``provenance.json``. Target: the whole report at most 2x the baseline. The parts are timed
too (loading and ranking with the statistics, the check of every folder, the figures), each
as a ratio to the same baseline.

Run: ``python -m pytest benchmarks/bench_report.py --benchmark-enable -s``.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from benchmarks.timing import median_seconds, report_ratio
from cref_bench.results import folder as schema
from cref_bench.run.runner import run_method

METHODS = ("noisy", "lowpass", "fsc-weight", "wiener")
ENTRIES = 50
RUN_ENTRIES = 4


def _grow(folder, entries: int) -> None:
    """Replicate a results folder's records to ``entries`` entries and rewrite its tables."""
    records = [json.loads(p.read_text()) for p in sorted((folder / "entries").glob("*.json"))]
    rng = np.random.default_rng(len(records))
    grown = []
    for k in range(entries):
        record = json.loads(json.dumps(records[k % len(records)]))
        record["entry"] = f"SYN-{k + 1:04d}"
        factor = float(1.0 + 0.02 * rng.standard_normal())
        record["scalars"] = {m: {name: (v * factor if isinstance(v, float) else v)
                                 for name, v in values.items()}
                             for m, values in record["scalars"].items()}
        grown.append(record)
    for path in (folder / "entries").glob("*.json"):
        path.unlink()
    results = schema.ResultsFolder(folder)
    for record in grown:
        results.write_record(record)
    results.write_tables(schema.assemble_tables(grown))
    provenance = results.provenance()
    provenance["dataset"]["entries"] = entries
    provenance["counts"].update(entries=entries, evaluated=entries, failed=0)
    results.write_provenance(provenance)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from dataset_builder.synthetic import write_phantom_corpus

    root = tmp_path_factory.mktemp("bench-report")
    corpus = write_phantom_corpus(root / "corpus.zarr", RUN_ENTRIES, seed=1, progress=False)
    out = []
    for name in METHODS:
        result = run_method(name, corpus, split="all", out=root / name, progress=False)
        _grow(result.out, ENTRIES)
        out.append(result.out)
    return out


def _load_tables(folders) -> None:
    for folder in folders:
        for name in ("scalars", "notes", "failures", "curves"):
            pd.read_csv(folder / f"{name}.csv")
        json.loads((folder / "provenance.json").read_text())


def test_report_vs_loading_its_tables(benchmark, folders, tmp_path):
    from leaderboard import statistics, tables
    from leaderboard.figures import PAPER_FIGURES
    from leaderboard.figures.common import Context
    from leaderboard.loading import load
    from leaderboard.report import _checks, write_report

    write_report(folders, tmp_path / "warm")  # imports and font caches, not timed
    baselines = []

    def report():
        baselines.append(median_seconds(lambda: _load_tables(folders), rounds=5))
        write_report(folders, tmp_path / "report")

    benchmark.pedantic(report, rounds=3, iterations=1)
    baseline = float(np.median(baselines))
    ratio = report_ratio(benchmark, f"report of {len(METHODS)} methods x {ENTRIES} entries",
                         "loading its tables", baseline)

    def ranked():
        results = load(folders)
        table = tables.leaderboard_table(results)
        values = statistics.paired_values(results, table)
        pairs = statistics.pairwise_tests(values)
        statistics.annotate(table, values, pairs)
        statistics.breakdown(results, table)
        return results, table

    results, table = ranked()
    parts = {"load, rank, statistics": median_seconds(ranked, rounds=3),
             "check of every folder": median_seconds(lambda: _checks(results, None, None),
                                                     rounds=3)}

    def figures():
        ctx = Context(results, table, ["SYN-0001", "SYN-0002"])
        for module in PAPER_FIGURES:
            module.make(ctx, tmp_path / "figures")

    start = time.perf_counter()
    figures()
    parts["figures (PNG + PDF + CSV)"] = time.perf_counter() - start
    for name, seconds in parts.items():
        print(f"  {name}: {seconds:.3f} s, {seconds / baseline:.2f}x the loading")
    benchmark.extra_info.update({f"{k}_s": v for k, v in parts.items()})
    assert (tmp_path / "report" / "index.html").stat().st_size > 100_000
    print(f"  target: at most 2x; {'met' if ratio <= 2 else 'NOT met'}")
