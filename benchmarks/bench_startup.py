"""Start-up time of the command line: ``cref-bench --help`` and ``cref-bench methods``.

Each is run as a new process through the installed console script, as a user runs it; the
baseline is the interpreter starting and doing nothing (``python -c pass``), measured before
each timed run (so both see the same load on a shared machine) and taken as the median. The
difference is what cref-bench's imports and work cost. Target: under 0.5 s each. Both run
with Python's bytecode cache allowed (``PYTHONDONTWRITEBYTECODE`` removed from their
environment), as an installed cref-bench runs: the warm-up run writes the cache.

Run: ``python -m pytest benchmarks/bench_startup.py --benchmark-enable -s``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.timing import median_seconds, report_ratio

SCRIPT = Path(sys.executable).with_name("cref-bench")
TARGET_SECONDS = 0.5
ENVIRONMENT = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=120, env=ENVIRONMENT)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not SCRIPT.exists(), reason=f"no console script at {SCRIPT} "
                    "(install the project: pip install -e .)")
@pytest.mark.parametrize("words", [["--help"], ["methods"]], ids=["help", "methods"])
def test_start_up_against_a_bare_interpreter(benchmark, words):
    bare: list[float] = []

    def measure_bare():  # pedantic's untimed setup: the baseline interleaves with the runs
        bare.append(median_seconds(lambda: _run([sys.executable, "-c", "pass"]), 1))

    _run([str(SCRIPT), *words])  # warm-up: files in the page cache, bytecode compiled
    benchmark.pedantic(_run, args=([str(SCRIPT), *words],), setup=measure_bare, rounds=9,
                       warmup_rounds=0)
    baseline = statistics.median(bare)
    report_ratio(benchmark, f"cref-bench {' '.join(words)}", "python_c_pass", baseline)
    assert benchmark.stats.stats.median < TARGET_SECONDS
