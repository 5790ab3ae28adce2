"""Tests of `cref-bench methods`: the listing read from the methods' source (nothing imported)
agrees with what importing them says, broken methods are listed with the reason, and what only
importing can tell is marked as unchecked."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from cref_bench import cli
from cref_bench.commands import methods as methods_cmd
from cref_bench.methods import catalog as method_catalog
from cref_bench.methods.catalog import describe_by_import, describe_statically
from cref_bench.methods.protocol import Method, SingleMapMethod, available_methods

FAKE = {"pair": "tests.test_runner:PairOnly", "blur": "tests.test_runner:Blur",
        "broken": "no_such_module_xyz:Thing", "missing-attr": "tests.test_runner:Nope"}


@pytest.mark.parametrize("describe", [describe_statically, describe_by_import])
def test_describe_a_class_without_building_it(describe):
    row = describe("pair", FAKE["pair"])
    assert {k: row[k] for k in ("version", "needs_gpu", "parameters", "status", "error")} == {
        "version": "1", "needs_gpu": False, "parameters": "", "status": "ok", "error": None}
    blur = describe("blur", FAKE["blur"])
    assert blur["parameters"] == "sigma=1.0, version='1', log=None, control=None"
    assert blur["version"] == "1"  # set by __init__ from its parameter's default


def test_describe_reports_import_errors():
    row = describe_by_import("broken", FAKE["broken"])
    assert row["error"].startswith("ModuleNotFoundError") and "no_such_module_xyz" in row["error"]
    assert row["status"] == "unavailable" and row["parameters"] is None
    assert describe_by_import("m", FAKE["missing-attr"])["error"].startswith("AttributeError")
    assert "no module 'no_such_module_xyz'" in describe_statically("b", FAKE["broken"])["error"]
    assert "defines no 'Nope'" in describe_statically("m", FAKE["missing-attr"])["error"]


def test_protocol_defaults_are_the_base_class_attributes():
    for key, value in method_catalog.PROTOCOL_DEFAULTS.items():
        assert getattr(Method, key) == getattr(SingleMapMethod, key) == value


def test_the_source_agrees_with_importing_for_every_installed_method():
    for name, target in sorted(available_methods().items()):
        static, imported = describe_statically(name, target), describe_by_import(name, target)
        if imported["status"] == "unavailable":
            assert static["status"] in ("unavailable", "unchecked"), name
            continue
        assert static["status"] in ("ok", "unchecked"), (name, static["error"])
        assert static["parameters"] == imported["parameters"], name
        assert static["needs_gpu"] == imported["needs_gpu"], name
        assert static["version"] in (None, imported["version"]), name


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A package ``plugin_xyz`` in a folder on the import path; returns a writer of its files."""
    package = tmp_path / "plugin_xyz"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, text: str) -> str:
        (package / f"{name}.py").write_text(textwrap.dedent(text))
        return f"plugin_xyz.{name}"

    yield write
    for name in [m for m in sys.modules if m.split(".")[0] == "plugin_xyz"]:
        del sys.modules[name]  # imported by a test: the next test's package is another one


def test_missing_dependencies_are_found_in_the_source(plugin):
    plugin("helpers", """
        import numpy as np
        import not_installed_pkg_abc.sub
    """)
    module = plugin("meth", """
        from __future__ import annotations
        from typing import TYPE_CHECKING
        from cref_bench.methods.protocol import SingleMapMethod
        from plugin_xyz import helpers
        if TYPE_CHECKING:
            import also_absent_but_typing_only
        try:
            import optional_absent_thing
        except ImportError:
            optional_absent_thing = None

        SCALE = 2 * 1.5
        class Mine(SingleMapMethod):
            version = "3"
            needs_gpu = True
            def __init__(self, width=SCALE, names=("a", "b")[1], *, tag: str = "x"):
                pass
    """)
    row = describe_statically("mine", f"{module}:Mine")
    assert row["status"] == "unavailable"
    assert "needs 'not_installed_pkg_abc'" in row["error"] and "helpers.py:3" in row["error"]

    plugin("helpers", "import numpy as np\n")
    row = describe_statically("mine", f"{module}:Mine")
    assert row["status"] == "ok", row["error"]
    assert row["parameters"] == "width=3.0, names='b', tag='x'"
    assert (row["version"], row["needs_gpu"]) == ("3", True)
    assert not any(name.startswith("plugin_xyz") for name in sys.modules)  # nothing was run


def test_syntax_errors_and_computed_facts(plugin):
    module = plugin("bad", "def broken(:\n")
    row = describe_statically("bad", f"{module}:Thing")
    assert row["status"] == "unavailable" and "SyntaxError" in row["error"]

    module = plugin("computed", """
        from cref_bench.methods.protocol import Method
        def made():
            return "9"
        class Base(Method):
            needs_gpu = True
        class Late(Base):
            version = made()
            @classmethod
            def unavailable(cls):
                return "never here"
        def factory(sigma=1.0):
            return Late()
    """)
    row = describe_statically("late", f"{module}:Late")
    assert (row["status"], row["version"], row["needs_gpu"]) == ("unchecked", None, True)
    assert describe_by_import("late", f"{module}:Late")["error"] == "never here"
    row = describe_statically("f", f"{module}:factory")
    assert (row["status"], row["parameters"], row["version"]) == ("ok", "sigma=1.0", None)


@pytest.mark.parametrize("describe", [describe_statically, describe_by_import])
def test_a_version_set_by_init_is_read_from_the_source(plugin, describe):
    """As crefdenoiser's: ``self.version = f"{RECIPE}+{self.sha}"`` shows ``2+<sha>``, not
    the protocol's default ``0``."""
    module = plugin("versioned", """
        from cref_bench.methods.protocol import SingleMapMethod
        RECIPE = "2"
        class Weighted(SingleMapMethod):
            def __init__(self, weights=None):
                self.sha = "abc"
                self.version = f"{RECIPE}+{self.sha}"
        class Opaque(SingleMapMethod):
            def __init__(self):
                self.version = str(len("xyz"))
    """)
    row = describe("w", f"{module}:Weighted")
    assert row["version"] == "2+<sha>", row
    assert describe_statically("o", f"{module}:Opaque")["version"] is None  # unknown: "?"


def test_listing_shows_good_and_broken_methods(monkeypatch, capsys):
    monkeypatch.setattr(methods_cmd, "available_methods", lambda: FAKE)
    assert cli.main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "version", "gpu", "target"]
    by_name = {line.split()[0]: line for line in lines[1:] if line}
    assert set(by_name) == set(FAKE)
    assert "unavailable: no module 'no_such_module_xyz'" in by_name["broken"]
    assert by_name["pair"].split()[:4] == ["pair", "1", "no", FAKE["pair"]]
    assert "sigma=1.0" in by_name["blur"]

    assert cli.main(["methods", "--check"]) == 0
    by_name = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "unavailable: ModuleNotFoundError" in by_name["broken"]

    assert cli.main(["methods", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == sorted(FAKE)
    assert {r["checked"] for r in rows} == {"source"}


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
    row = describe_by_import("needs", "tests.test_methods_cli:NeedsExtra")
    assert row["error"] == "needs the extra: pip install 'thing[x]'"
    assert row["version"] is None and row["parameters"] is None
    ready = describe_by_import("has", "tests.test_methods_cli:HasExtra")
    assert ready["error"] is None and ready["version"] == "7" and ready["parameters"] == ""
    monkeypatch.setattr(methods_cmd, "available_methods",
                        lambda: {"needs": "tests.test_methods_cli:NeedsExtra"})
    assert cli.main(["methods"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("name") and out.splitlines()[1].startswith("needs* ")
    assert "--check` imports it and says" in out
    assert cli.main(["methods", "--check"]) == 0
    assert "unavailable: needs the extra: pip install 'thing[x]'" in capsys.readouterr().out


def test_listing_and_help_import_neither_numpy_nor_the_methods():
    script = ("import sys, json, contextlib, io\n"
              "from cref_bench import cli\n"
              "with contextlib.redirect_stdout(io.StringIO()):\n"
              "    cli.main(['methods'])\n"
              "    try:\n"
              "        cli.main(['--help'])\n"
              "    except SystemExit:\n"
              "        pass\n"
              "heavy = ('numpy', 'torch', 'numba', 'pandas', 'zarr', 'dask', 'baselines.classic')\n"
              "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []
