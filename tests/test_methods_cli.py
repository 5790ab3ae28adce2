"""Tests of `cref-bench methods`: each method imported (not built) says its version, GPU need and
parameters, broken methods are listed with the reason, a method can say why it cannot run
here, and the listing imports no heavy library (torch, numba, scipy, pandas)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from cref_bench import cli
from cref_bench.commands import methods as methods_cmd
from cref_bench.methods.catalog import describe
from cref_bench.methods.protocol import Method, available_methods

FAKE = {"pair": "tests.test_runner:PairOnly", "blur": "tests.test_runner:Blur",
        "broken": "no_such_module_xyz:Thing", "missing-attr": "tests.test_runner:Nope"}


def test_describe_a_class_without_building_it():
    row = describe("pair", FAKE["pair"])
    assert {k: row[k] for k in ("version", "needs_gpu", "parameters", "status", "error")} == {
        "version": "1", "needs_gpu": False, "parameters": "", "status": "ok", "error": None}
    blur = describe("blur", FAKE["blur"])
    assert blur["parameters"] == "sigma=1.0, version='1', log=None, control=None"
    assert blur["version"] == "0"  # inherited from Method


def test_describe_reports_import_errors():
    row = describe("broken", FAKE["broken"])
    assert row["error"].startswith("ModuleNotFoundError") and "no_such_module_xyz" in row["error"]
    assert row["status"] == "unavailable" and row["parameters"] is None
    assert describe("m", FAKE["missing-attr"])["error"].startswith("AttributeError")


def test_every_installed_method_is_described_as_its_class_says():
    for name, target in sorted(available_methods().items()):
        row = describe(name, target)
        if row["status"] == "unavailable":
            continue
        module, _, attr = target.partition(":")
        cls = getattr(__import__(module, fromlist=[attr]), attr)
        assert (row["version"], row["needs_gpu"]) == (str(cls.version), cls.needs_gpu), name


def test_crefdenoiser_shows_its_recipe_version():
    from baselines.crefdenoiser.method import RECIPE_VERSION

    row = describe("crefdenoiser", "baselines.crefdenoiser.method:CrefDenoiser")
    assert row["status"] == "ok" and row["version"] == RECIPE_VERSION == "2"


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A package ``plugin_xyz`` in a folder on the import path; returns a writer of its files."""
    package = tmp_path / "plugin_xyz"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield lambda name, text: _write(package, name, text)
    for name in [m for m in sys.modules if m.startswith("plugin_xyz")]:
        del sys.modules[name]


def _write(package, name: str, text: str) -> str:
    (package / f"{name}.py").write_text(textwrap.dedent(text))
    return f"plugin_xyz.{name}"


def test_a_method_whose_module_fails_is_listed_with_the_reason(plugin):
    module = plugin("needs_absent", """
        import not_installed_pkg_abc
        from cref_bench.methods.protocol import SingleMapMethod
        class Mine(SingleMapMethod):
            pass
    """)
    row = describe("mine", f"{module}:Mine")
    assert row["status"] == "unavailable"
    assert row["error"] == "ModuleNotFoundError: No module named 'not_installed_pkg_abc'"
    row = describe("bad", f"{plugin('bad', 'def broken(:')}:Thing")
    assert row["status"] == "unavailable" and row["error"].startswith("SyntaxError")


def test_facts_computed_on_import_and_factories(plugin):
    module = plugin("computed", """
        from cref_bench.methods.protocol import Method
        SCALE = 2 * 1.5
        def made():
            return "9"
        class Base(Method):
            needs_gpu = True
        class Late(Base):
            version = made()
            def __init__(self, width=SCALE, names=("a", "b")[1], *, tag: str = "x"):
                pass
        def factory(sigma=1.0):
            return Late()
    """)
    row = describe("late", f"{module}:Late")
    assert (row["status"], row["version"], row["needs_gpu"]) == ("ok", "9", True)
    assert row["parameters"] == "width=3.0, names='b', tag='x'"
    row = describe("f", f"{module}:factory")
    assert (row["status"], row["parameters"], row["version"], row["needs_gpu"]) == (
        "ok", "sigma=1.0", None, None)


def test_listing_shows_good_and_broken_methods(monkeypatch, capsys):
    monkeypatch.setattr(methods_cmd, "available_methods", lambda: FAKE)
    assert cli.main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "version", "gpu", "target"]
    by_name = {line.split()[0]: line for line in lines[1:] if line}
    assert set(by_name) == set(FAKE)
    assert ("unavailable: ModuleNotFoundError: No module named 'no_such_module_xyz'"
            in by_name["broken"])
    assert by_name["pair"].split()[:4] == ["pair", "1", "no", FAKE["pair"]]
    assert "sigma=1.0" in by_name["blur"]

    assert cli.main(["methods", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == sorted(FAKE)
    assert {r["status"] for r in rows} == {"ok", "unavailable"}


def test_installed_registry_is_listed(capsys):
    assert cli.main(["methods", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(available_methods())
    for row in rows:
        assert (row["status"] == "unavailable") == (row["parameters"] is None)


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
    row = describe("needs", "tests.test_methods_cli:NeedsExtra")
    assert row["error"] == "needs the extra: pip install 'thing[x]'"
    assert row["version"] is None and row["parameters"] is None
    ready = describe("has", "tests.test_methods_cli:HasExtra")
    assert ready["error"] is None and ready["version"] == "7" and ready["parameters"] == ""
    monkeypatch.setattr(methods_cmd, "available_methods",
                        lambda: {"needs": "tests.test_methods_cli:NeedsExtra"})
    assert cli.main(["methods"]) == 0
    [line] = capsys.readouterr().out.splitlines()[1:]
    assert line.startswith("needs ")
    assert line.endswith("unavailable: needs the extra: pip install 'thing[x]'")


def test_listing_and_help_import_no_heavy_library():
    """Method modules import torch, numba, scipy and the metrics (pandas) when a method is
    built or run: listing every installed method, or the help, imports none of them."""
    script = ("import sys, json, contextlib, io\n"
              "from cref_bench import cli\n"
              "with contextlib.redirect_stdout(io.StringIO()):\n"
              "    cli.main(['methods'])\n"
              "    try:\n"
              "        cli.main(['--help'])\n"
              "    except SystemExit:\n"
              "        pass\n"
              "heavy = ('torch', 'numba', 'scipy', 'pandas', 'zarr', 'dask', 'mrcfile', 'topaz',\n"
              "         'cref_bench.metrics.fsc')\n"
              "print(json.dumps([sorted(m for m in heavy if m in sys.modules),\n"
              "                  sorted(m for m in sys.modules if m.startswith('baselines.'))]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    heavy, methods = json.loads(done.stdout.splitlines()[-1])
    assert heavy == []
    assert {target.partition(":")[0] for target in available_methods().values()} <= set(methods)
