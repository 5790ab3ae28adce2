"""Tests of `cref-bench methods`: the listing of registered methods, broken ones included."""

from __future__ import annotations

import json

from cref_bench import cli
from cref_bench.commands import methods as methods_cmd
from cref_bench.methods import Method, available_methods

FAKE = {"pair": "tests.test_runner:PairOnly", "blur": "tests.test_runner:Blur",
        "broken": "no_such_module_xyz:Thing", "missing-attr": "tests.test_runner:Nope"}


def test_describe_a_class_without_building_it():
    row = methods_cmd.describe("pair", FAKE["pair"])
    assert row == {"name": "pair", "target": FAKE["pair"], "version": "1", "needs_gpu": False,
                   "parameters": "", "error": None}
    blur = methods_cmd.describe("blur", FAKE["blur"])
    assert blur["parameters"] == "sigma=1.0, version='1', log=None, control=None"


def test_describe_reports_import_errors():
    row = methods_cmd.describe("broken", FAKE["broken"])
    assert row["error"].startswith("ModuleNotFoundError") and "no_such_module_xyz" in row["error"]
    assert row["version"] is None and row["parameters"] is None
    assert methods_cmd.describe("m", FAKE["missing-attr"])["error"].startswith("AttributeError")


def test_listing_shows_good_and_broken_methods(monkeypatch, capsys):
    monkeypatch.setattr(methods_cmd, "available_methods", lambda: FAKE)
    assert cli.main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "version", "gpu", "target"]
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert set(by_name) == set(FAKE)
    assert "unavailable: ModuleNotFoundError" in by_name["broken"]
    assert by_name["pair"].split()[:4] == ["pair", "1", "no", FAKE["pair"]]
    assert "sigma=1.0" in by_name["blur"]

    assert cli.main(["methods", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == sorted(FAKE)


def test_installed_registry_is_listed(capsys):
    assert cli.main(["methods", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(available_methods())
    for row in rows:
        assert (row["error"] is None) == (row["parameters"] is not None)


def test_empty_registry(monkeypatch, capsys):
    monkeypatch.setattr(methods_cmd, "available_methods", lambda: {})
    assert cli.main(["methods"]) == 0
    assert "no methods are registered" in capsys.readouterr().out


class NeedsExtra(Method):
    """A method whose optional dependency is missing."""

    version = "7"

    @classmethod
    def unavailable(cls):
        return "needs the extra: pip install 'thing[x]'"


class HasExtra(NeedsExtra):
    """The same method once its optional dependency is there."""

    @classmethod
    def unavailable(cls):
        return None


def test_a_method_can_say_it_is_unavailable_and_why(monkeypatch, capsys):
    row = methods_cmd.describe("needs", "tests.test_methods_cli:NeedsExtra")
    assert row["error"] == "needs the extra: pip install 'thing[x]'"
    assert row["version"] is None and row["parameters"] is None
    ready = methods_cmd.describe("has", "tests.test_methods_cli:HasExtra")
    assert ready["error"] is None and ready["version"] == "7" and ready["parameters"] == ""
    monkeypatch.setattr(methods_cmd, "available_methods",
                        lambda: {"needs": "tests.test_methods_cli:NeedsExtra"})
    assert cli.main(["methods"]) == 0
    assert "unavailable: needs the extra: pip install 'thing[x]'" in capsys.readouterr().out
