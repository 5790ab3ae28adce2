"""The performance page, ``docs/performance.md``: one table row per benchmark ratio.

``benchmarks/conftest.py`` collects the ratio each benchmark records
(:func:`benchmarks.timing.record_ratio`) and calls :func:`update_page` at the end of a
benchmark run. A run rewrites the rows of the benchmarks it ran and keeps the others, each
with its own machine and date; everything outside the table is written anew each time.
"""

from __future__ import annotations

import ast
import os
import platform
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cref_bench.atomic import write_text

COLUMNS = ("benchmark", "what it compares", "median", "baseline median", "ratio", "machine",
           "date")

HEADER = """\
# Performance

<!-- Written by benchmarks/conftest.py (benchmarks/performance_page.py) when the benchmarks
run; edits by hand are lost. -->

Each benchmark times a part of cref-bench against a baseline measured in the same run, on the
same machine and under the same load, and records the ratio of the medians. Absolute times
depend on the machine and on what else runs on it; the ratio is what carries over. The
benchmarks and their baselines are described at the top of each `benchmarks/bench_*.py`.

Run them all with `python3 -m pytest benchmarks/ --benchmark-enable -s -p no:cacheprovider`,
or one file with `python3 -m pytest benchmarks/bench_startup.py --benchmark-enable -s`. A run
rewrites the rows of the benchmarks it ran and keeps the others (each row says on which
machine and on which date it was measured). A ratio marked "(failed)" missed the target its
benchmark asserts. Figures a benchmark only prints (peak memory, speed-ups, rates) are not
here: run it with `-s` to see them.

"""

_SEPARATOR = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True)
class Row:
    """One measured ratio.

    Attributes:
        benchmark: the test's id, e.g. ``benchmarks/bench_fsc.py::test_fsc``.
        compares: what was timed and its baseline, in words.
        seconds: the median of what was timed.
        baseline_seconds: the median of the baseline.
        ratio: ``seconds / baseline_seconds``.
        machine: the processor, its CPU count and the load average when measured.
        date: the day it was measured (ISO, UTC).
        failed: whether the benchmark failed the target it asserts.
    """

    benchmark: str
    compares: str
    seconds: float
    baseline_seconds: float
    ratio: float
    machine: str
    date: str
    failed: bool = False

    def cells(self) -> tuple[str, ...]:
        """The row's table cells, in the order of :data:`COLUMNS`."""
        ratio = f"{self.ratio:.2f}" + (" (failed)" if self.failed else "")
        return (f"`{self.benchmark}`", self.compares, _seconds(self.seconds),
                _seconds(self.baseline_seconds), ratio, self.machine, self.date)


def row_from_ratio(benchmark: str, recorded: dict, machine: str, date: str,
                   failed: bool = False) -> Row:
    """The row of a ratio as :func:`benchmarks.timing.record_ratio` records it.

    Args:
        benchmark: the test's id.
        recorded: the benchmark's ``extra_info["ratio"]`` (keys ``name``, ``baseline``,
            ``seconds``, ``baseline_seconds``, ``ratio``).
        machine: see :func:`machine_description`.
        date: the day measured (ISO).
        failed: whether the test failed.

    Returns:
        the row.

    Raises:
        KeyError: a key is missing from ``recorded``.
    """
    return Row(benchmark, f"{recorded['name']} vs {recorded['baseline']}",
               float(recorded["seconds"]), float(recorded["baseline_seconds"]),
               float(recorded["ratio"]), machine, date, failed)


def machine_description() -> str:
    """The processor's model (``/proc/cpuinfo`` on Linux), CPU count and 1-minute load."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if found:
            model = re.sub(r"\s+", " ", found.group(1)).strip()
    return f"{model}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"


def _seconds(value: float) -> str:
    return f"{value:.4g} s"


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def table_rows(text: str) -> dict[str, tuple[str, ...]]:
    """The rows of the table of a page written by :func:`render_page`, by benchmark cell.

    Args:
        text: the page.

    Returns:
        benchmark cell -> the row's cells (unescaped); empty when the page has no table.

    Raises:
        ValueError: a table row has another number of cells than :data:`COLUMNS`.
    """
    rows = {}
    lines = text.splitlines()
    header = "| " + " | ".join(COLUMNS) + " |"
    if header not in lines:
        return rows
    for line in lines[lines.index(header) + 2:]:
        if not line.startswith("|"):
            break
        cells = tuple(c.strip().replace("\\|", "|") for c in _SEPARATOR.split(line)[1:-1])
        if len(cells) != len(COLUMNS):
            raise ValueError(f"a row of the performance table has {len(cells)} cells, not "
                             f"{len(COLUMNS)}: {line!r}")
        rows[cells[0]] = cells
    return rows


def benchmark_tests(folder: Path) -> list[str]:
    """The id of every benchmark test function (one that takes the ``benchmark`` fixture).

    Args:
        folder: the ``benchmarks`` folder; its ``bench_*.py`` files are read, not imported.

    Returns:
        ``benchmarks/bench_x.py::test_y`` for each, in file and then source order (without
        the ids of parameters).
    """
    found = []
    for path in sorted(folder.glob("bench_*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
                    and any(arg.arg == "benchmark" for arg in node.args.args)):
                found.append(f"{folder.name}/{path.name}::{node.name}")
    return found


def render_page(rows: dict[str, tuple[str, ...]], last_run: str,
                expected: Iterable[str] = ()) -> str:
    """The whole page: the introduction, the table (sorted by benchmark), the benchmarks
    without a row, and the last run.

    Args:
        rows: benchmark cell -> the row's cells.
        last_run: the command of the last run and its date, in words.
        expected: every benchmark test's id (:func:`benchmark_tests`); those with no row
            (under any parameters) are listed under the table.

    Returns:
        the Markdown text.
    """
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(_escape(c) for c in rows[key]) + " |" for key in sorted(rows)]
    measured = {key.strip("`").split("[")[0] for key in rows}
    missing = [test for test in expected if test not in measured]
    if missing:
        lines += ["", "Not measured here yet (or recording no ratio): "
                  + ", ".join(f"`{test}`" for test in missing) + "."]
    return (HEADER + "\n".join(lines) + f"\n\nLast updated by {last_run}; the rows it did not "
            "measure come from earlier runs.\n")


def update_page(path: Path, measured: list[Row], last_run: str,
                expected: Iterable[str] = ()) -> None:
    """Write the page at ``path`` with the rows measured, keeping the other rows it holds.

    Args:
        path: the page (created when absent).
        measured: the rows of this run; each replaces the page's row of its benchmark.
        last_run: the command of this run and its date, in words.
        expected: every benchmark test's id, as :func:`render_page` takes it.

    Raises:
        ValueError: the page holds a malformed table row (see :func:`table_rows`).
    """
    rows = table_rows(path.read_text(encoding="utf-8")) if path.exists() else {}
    rows.update({row.cells()[0]: row.cells() for row in measured})
    write_text(path, render_page(rows, last_run, expected))
