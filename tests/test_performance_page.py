"""The performance page writer (benchmarks/performance_page.py) and the benchmark hooks that
feed it (benchmarks/conftest.py), with recorded ratios made up here: no benchmark runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks import conftest as hooks
from benchmarks.performance_page import (
    COLUMNS,
    Row,
    benchmark_tests,
    machine_description,
    row_from_ratio,
    table_rows,
    update_page,
)

RECORDED = {"name": "FSC 256³", "baseline": "two_rfftn", "seconds": 0.123456,
            "baseline_seconds": 0.1, "ratio": 1.23456}


def test_a_row_shows_the_recorded_ratio():
    row = row_from_ratio("benchmarks/bench_metrics.py::test_fsc", RECORDED, "cpu, 2 CPUs",
                         "2026-12-06")
    assert row.cells() == ("`benchmarks/bench_metrics.py::test_fsc`", "FSC 256³ vs two_rfftn",
                           "0.1235 s", "0.1 s", "1.23", "cpu, 2 CPUs", "2026-12-06")
    failed = row_from_ratio("x", RECORDED, "m", "d", failed=True)
    assert failed.cells()[4] == "1.23 (failed)"


def test_a_recorded_ratio_without_its_baseline_is_refused():
    with pytest.raises(KeyError):
        row_from_ratio("x", {"name": "FSC", "seconds": 1.0}, "m", "d")


def test_a_run_replaces_its_rows_and_keeps_the_others(tmp_path):
    page = tmp_path / "performance.md"
    first = [Row("b.py::two", "a | b vs c", 2.0, 1.0, 2.0, "m1", "2026-01-01"),
             Row("a.py::one", "x vs y", 3.0, 1.5, 2.0, "m1", "2026-01-01")]
    update_page(page, first, "`run one`")
    update_page(page, [Row("b.py::two", "a | b vs c", 1.0, 1.0, 1.0, "m2", "2026-02-02")],
                "`run two`")
    text = page.read_text()
    rows = table_rows(text)
    assert list(rows) == ["`a.py::one`", "`b.py::two`"]           # sorted by benchmark
    assert rows["`a.py::one`"] == first[1].cells()                 # kept as it was
    assert rows["`b.py::two`"] == ("`b.py::two`", "a | b vs c", "1 s", "1 s", "1.00", "m2",
                                   "2026-02-02")                   # the pipe survives
    assert "| " + " | ".join(COLUMNS) + " |" in text
    assert text.endswith("Last updated by `run two`; the rows it did not measure come from "
                         "earlier runs.\n") and "run one" not in text
    assert text.startswith("# Performance\n")


def test_the_benchmarks_without_a_row_are_listed(tmp_path):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "bench_b.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.parametrize('n', [1, 2])\n"
        "def test_timed(benchmark, n):\n    pass\n\n"
        "def test_memory_only(tmp_path):\n    pass\n\n"
        "def test_other(benchmark):\n    pass\n")
    (folder / "helpers.py").write_text("def test_not_a_benchmark(benchmark):\n    pass\n")
    expected = benchmark_tests(folder)
    assert expected == ["benchmarks/bench_b.py::test_timed", "benchmarks/bench_b.py::test_other"]
    page = tmp_path / "performance.md"
    update_page(page, [Row("benchmarks/bench_b.py::test_timed[1]", "x vs y", 1.0, 1.0, 1.0, "m",
                           "d")], "r", expected)
    assert "Not measured here yet (or recording no ratio): `benchmarks/bench_b.py::test_other`." \
        in page.read_text()
    update_page(page, [Row("benchmarks/bench_b.py::test_other", "x vs y", 1.0, 1.0, 1.0, "m",
                           "d")], "r", expected)
    assert "Not measured" not in page.read_text()
    assert len(table_rows(page.read_text())) == 2


def test_the_real_benchmarks_are_found():
    found = benchmark_tests(Path(hooks.__file__).parent)
    assert "benchmarks/bench_metrics.py::test_fsc_256_vs_two_rfftn" in found
    assert "benchmarks/bench_metrics.py::test_metric_set_peak_memory_512" not in found


def test_a_malformed_row_is_named(tmp_path):
    page = tmp_path / "performance.md"
    update_page(page, [Row("a", "x vs y", 1.0, 1.0, 1.0, "m", "d")], "r")
    page.write_text(page.read_text().replace("| m | d |", "| m |"))
    with pytest.raises(ValueError, match="6 cells, not 7"):
        update_page(page, [], "r")


def test_the_machine_is_described():
    assert ", load " in machine_description() and " CPUs" in machine_description()


def _report_of(item, when="call", failed=False):
    """Drive the makereport hook wrapper as pytest does, with a report of the given phase."""
    wrapper = hooks.pytest_runtest_makereport(item, None)
    next(wrapper)
    report = SimpleNamespace(when=when, failed=failed)
    with pytest.raises(StopIteration):
        wrapper.send(SimpleNamespace(get_result=lambda: report))


def test_the_hooks_write_the_rows_of_benchmarks_that_recorded_a_ratio(tmp_path, monkeypatch):
    config = SimpleNamespace(stash=pytest.Stash(),
                             invocation_params=SimpleNamespace(args=("benchmarks/x.py", "-s")))
    hooks.pytest_configure(config)
    measured = SimpleNamespace(extra_info={"ratio": RECORDED}, disabled=False)

    def item(nodeid, fixture):
        return SimpleNamespace(nodeid=nodeid, config=config, funcargs={"benchmark": fixture})

    _report_of(item("x.py::measured", measured), when="setup")     # not the test's body
    _report_of(item("x.py::measured", measured), failed=True)
    _report_of(item("x.py::no-ratio", SimpleNamespace(extra_info={}, disabled=False)))
    _report_of(item("x.py::disabled", SimpleNamespace(extra_info={"ratio": RECORDED},
                                                       disabled=True)))
    _report_of(SimpleNamespace(nodeid="x.py::plain", config=config, funcargs={}))
    monkeypatch.setattr(hooks, "PAGE", tmp_path / "performance.md")
    hooks.pytest_sessionfinish(SimpleNamespace(config=config))
    text = hooks.PAGE.read_text()
    assert list(table_rows(text)) == ["`x.py::measured`"]
    assert table_rows(text)["`x.py::measured`"][4] == "1.23 (failed)"
    assert "Last updated by `python3 -m pytest benchmarks/x.py -s` (" in text


def test_a_run_that_measured_nothing_leaves_the_page_alone(tmp_path, monkeypatch):
    config = SimpleNamespace(stash=pytest.Stash())
    hooks.pytest_configure(config)
    monkeypatch.setattr(hooks, "PAGE", tmp_path / "performance.md")
    hooks.pytest_sessionfinish(SimpleNamespace(config=config))
    assert not hooks.PAGE.exists()
