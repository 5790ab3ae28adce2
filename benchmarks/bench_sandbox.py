"""What the method's box and the corpus digests cost.

* **Box start-up.** A box (:func:`cref_bench.run.sandbox.start_box`: bubblewrap, its
  namespaces and mounts, and the memory cgroup where one can be made) running
  ``python -c pass``, against the same command as a bare process; both measured alternately
  in the same run, medians of nine. Target: the box adds at most 0.3 s per start.
* **Digest verification.** Reading every map of the demo's entries (64-96³) with the
  sha256 of each array checked against the one the store recorded, against reading them
  with ``verify=False``; alternately, medians of seven. Target: at most 1.2x.

Run: ``python -m pytest benchmarks/bench_sandbox.py --benchmark-enable -s``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

import pytest

from benchmarks.timing import median_seconds, report_ratio
from cref_bench.corpus.reader import open_corpus
from cref_bench.run import sandbox

ENTRIES = 6
BOX_TARGET_SECONDS = 0.3
DIGEST_TARGET_RATIO = 1.2
COMMAND = [sys.executable, "-c", "pass"]


def _bare() -> None:
    subprocess.run(COMMAND, check=True, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(sandbox.support().bwrap is None,
                    reason=f"no sandbox here: {sandbox.support().reason}")
def test_box_start_up_against_a_bare_process(benchmark, tmp_path):
    spec = sandbox.BoxSpec(inputs=tmp_path, memory=2**30)
    names = iter(range(10**6))

    def boxed():
        box = sandbox.start_box(spec, COMMAND, name=f"bench-{next(names)}")
        assert box.process.wait() == 0
        box.close()

    bare: list[float] = []

    def measure_bare():  # pedantic's untimed setup: the baseline interleaves with the runs
        bare.append(median_seconds(_bare, 1))

    boxed()  # warm-up: files in the page cache
    benchmark.pedantic(boxed, setup=measure_bare, rounds=9, warmup_rounds=0)
    baseline = statistics.median(bare)
    report_ratio(benchmark, "python -c pass in a box", "bare_process", baseline)
    added = benchmark.stats.stats.median - baseline
    print(f"the box adds {added:.3f} s per start (target {BOX_TARGET_SECONDS} s)")
    assert added <= BOX_TARGET_SECONDS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    from dataset_builder.synthetic import write_phantom_corpus

    path = tmp_path_factory.mktemp("bench-digests") / "corpus.zarr"
    return write_phantom_corpus(path, ENTRIES, seed=0, progress=False)


def _read_all(location: str, verify: bool) -> None:
    corpus = open_corpus(location, verify=verify, warn_stale=False)
    for entry in corpus.entries("all"):
        entry.maps()


def test_digest_verification_against_a_plain_read(benchmark, corpus):
    plain: list[float] = []

    def measure_plain():
        plain.append(median_seconds(lambda: _read_all(corpus, False), 1))

    _read_all(corpus, True)  # warm-up: the store in the page cache
    benchmark.pedantic(_read_all, args=(corpus, True), setup=measure_plain, rounds=7,
                       warmup_rounds=0)
    ratio = report_ratio(benchmark, f"reading {ENTRIES} entries, digests checked",
                         "plain_read", statistics.median(plain))
    assert ratio <= DIGEST_TARGET_RATIO
