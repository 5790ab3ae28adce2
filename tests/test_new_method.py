"""`cref-bench new-method`: the package it writes passes its own tests from a fresh folder,
registers the method under the entry points, and runs as path/to/method.py:Class."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

from cref_bench import cli
from cref_bench.errors import InputError
from cref_bench.methods.scaffold import names


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    out = tmp_path_factory.mktemp("fresh")
    assert cli.main(["new-method", "edge-keeper2", "--out", str(out)]) == 0
    return out / "edge-keeper2"


def test_the_package_holds_a_registered_single_map_method(package):
    assert sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file()) == [
        "README.md", "edge_keeper2/__init__.py", "edge_keeper2/method.py", "pyproject.toml",
        "tests/test_method.py"]
    project = tomllib.loads((package / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["cref_bench.methods"] == {
        "edge-keeper2": "edge_keeper2.method:EdgeKeeper2"}
    assert project["tool"]["pytest"]["ini_options"]["pythonpath"] == ["."]


def test_its_own_tests_pass_from_a_fresh_folder(package):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=package, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


REPLACED = """
import numpy as np

from cref_bench.methods.protocol import SingleMapMethod


class EdgeKeeper2(SingleMapMethod):
    name = "edge-keeper2"
    version = "2"

    def __init__(self, strength: float = 0.5):
        self.strength = strength

    def params(self):
        return {"strength": self.strength}

    def denoise_map(self, volume, mask=None):
        data = volume.data
        return volume.like((1 - self.strength) * data + self.strength * np.tanh(data))
"""


def test_its_tests_hold_for_another_denoiser(package, tmp_path):
    """The scaffold's tests name nothing of the example: with the example replaced by a
    denoiser of other parameters they pass unchanged."""
    import shutil

    tests = (package / "tests" / "test_method.py").read_text()
    assert "sigma" not in tests
    mine = shutil.copytree(package, tmp_path / "mine")
    (mine / "edge_keeper2" / "method.py").write_text(REPLACED)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=mine, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_it_runs_as_a_file_and_travels_by_value(package, tmp_path):
    import cloudpickle

    from cref_bench.maps.volume import Volume
    from cref_bench.methods.protocol import load_method

    spec = f"{package}/edge_keeper2/method.py:EdgeKeeper2"
    method = load_method(spec, sigma=0.0)
    assert method.name == "edge-keeper2" and method.params() == {"sigma": 0.0}
    volume = Volume(__import__("numpy").arange(27, dtype="float32").reshape(3, 3, 3), 1.0)
    assert (method.denoise_map(volume).data == volume.data).all()
    script = ("import sys, cloudpickle\n"
              "m = cloudpickle.loads(sys.stdin.buffer.read())\n"
              "print(type(m).__name__, m.params())\n")
    done = subprocess.run([sys.executable, "-c", script], input=cloudpickle.dumps(method),
                          capture_output=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "EdgeKeeper2 {'sigma': 0.0}"


def test_names_and_refusals(tmp_path, capsys):
    assert names("my-denoiser") == {"name": "my-denoiser", "package": "my_denoiser",
                                    "cls": "MyDenoiser"}
    for bad in ("My-Denoiser", "2fast", "a_b", "a--b", ""):
        with pytest.raises(InputError, match="is not a method name"):
            names(bad)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert cli.main(["new-method", "taken", "--out", str(tmp_path)]) == 2
    assert "exists already and is not an empty folder" in capsys.readouterr().err
    assert cli.main(["new-method", "lowpass", "--out", str(tmp_path)]) == 2
    assert "a method named 'lowpass' is registered already" in capsys.readouterr().err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
