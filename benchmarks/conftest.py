"""Pytest hooks of the benchmarks: the ratios they record go onto the performance page.

After each benchmark that recorded a ratio (:func:`benchmarks.timing.record_ratio`), its row
is kept; at the end of the run, ``docs/performance.md`` is rewritten with those rows (the
others on the page stay) by :func:`benchmarks.performance_page.update_page`. With the
benchmarks disabled (pytest's default here, ``--benchmark-disable``) nothing is measured and
the page is left alone.
"""

from __future__ import annotations

import datetime
import shlex
from pathlib import Path

import pytest

from benchmarks.performance_page import (
    benchmark_tests,
    machine_description,
    row_from_ratio,
    update_page,
)

PAGE = Path(__file__).resolve().parents[1] / "docs" / "performance.md"

_ROWS = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[_ROWS] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep the row of a benchmark whose body ran, enabled, and recorded a ratio."""
    report = (yield).get_result()
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if (report.when != "call" or fixture is None or fixture.disabled
            or "ratio" not in fixture.extra_info):
        return
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    item.config.stash[_ROWS].append(row_from_ratio(
        item.nodeid, fixture.extra_info["ratio"], machine_description(), today, report.failed))


def pytest_sessionfinish(session):
    rows = session.config.stash.get(_ROWS, [])
    if rows:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        words = shlex.join(session.config.invocation_params.args)
        update_page(PAGE, rows, f"`python3 -m pytest {words}` ({now})",
                    benchmark_tests(Path(__file__).parent))
