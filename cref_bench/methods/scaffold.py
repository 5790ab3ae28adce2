"""A ready package for a new method: what ``cref-bench new-method NAME`` writes.

:func:`write_method_package` writes, under ``<out>/<NAME>/``::

    pyproject.toml          the distribution, with NAME under the cref_bench.methods entry
                            points (so `cref-bench run --method NAME` finds it once installed)
    README.md               how to run, test and install it
    <package>/__init__.py
    <package>/method.py     a SingleMapMethod subclass with one declared parameter (an
                            example Gaussian blur to replace), params() and version
    tests/test_method.py    tests that hold for any denoiser (every entry of a two-entry
                            phantom corpus scored, the output contract kept), so they keep
                            passing when the example is replaced

The tests run from that folder without installing anything (``python -m pytest``: its
pyproject puts the folder on the import path), and the method runs at once as
``cref-bench run --method <package>/method.py:<Class>``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from string import Template

from cref_bench.errors import InputError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
"""Method names: lower-case words of letters and digits joined by hyphens (``my-denoiser``)."""

PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$name"
version = "0.1.0"
description = "The $name denoiser for cref-bench"
requires-python = ">=3.11"
dependencies = ["cref-bench", "scipy"]

# `cref-bench run --method $name` finds the method here once the package is installed
[project.entry-points."cref_bench.methods"]
$name = "$package.method:$cls"

[tool.setuptools]
packages = ["$package"]

[tool.pytest.ini_options]
pythonpath = ["."]     # the tests import $package without installing it
testpaths = ["tests"]
''')

README = Template('''\
# $name

A denoiser of cryo-EM maps for cref-bench. The method is `$cls` in `$package/method.py`:
replace the example (a Gaussian blur) with your denoiser.

Run it on a corpus (`cref-bench synth --out phantoms.zarr --entries 12` makes one), without
installing anything:

    cref-bench run --method $package/method.py:$cls --corpus phantoms.zarr --param sigma=1.5

Test it (a two-entry phantom corpus: every entry scored, the output on the input's grid, the
inputs unchanged; these hold for any denoiser, so add tests of your own below them):

    python -m pytest

Install it, and cref-bench finds it by name (`cref-bench methods` lists it):

    pip install -e .
    cref-bench run --method $name --corpus phantoms.zarr

Bump `version` in `$package/method.py` whenever a change of your code changes its results:
a rerun into the same results folder then recomputes every entry. Every parameter that
changes the result belongs in `params()`.
''')

METHOD = Template('''\
"""The $name denoiser, for cref-bench.

cref-bench calls ``denoise_map`` on the average of the two half-maps and on each half-map
(a single-map method: see ``cref_bench.methods.protocol.SingleMapMethod``), then scores the three
results against each other and against the half-maps.
"""

from __future__ import annotations

from cref_bench.methods.protocol import SingleMapMethod
from cref_bench.maps.volume import Volume


class $cls(SingleMapMethod):
    """Replace this example (a Gaussian blur) with your denoiser.

    Args:
        sigma: width of the Gaussian in voxels (0 leaves the map unchanged).

    Raises:
        ValueError: a negative sigma (cref-bench reports it as a bad parameter).
    """

    name = "$name"
    version = "1"  # bump it whenever a change of the code changes the results
    needs_gpu = False  # True when the method is impractical without a GPU

    def __init__(self, sigma: float = 1.0):
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma!r}")
        self.sigma = float(sigma)

    def params(self) -> dict:
        """Every parameter that changes the result: recorded with the results, and part of
        what decides whether a rerun may reuse them."""
        return {"sigma": self.sigma}

    def denoise_map(self, volume: Volume, mask: Volume | None = None) -> Volume:
        """Denoise one map.

        Args:
            volume: ``volume.data`` is a read-only float32 array in (z, y, x) order, with
                ``volume.voxel_size`` and ``volume.origin`` in Å.
            mask: the entry's mask (values in [0, 1]), for methods that use one.

        Returns:
            The denoised map on the same grid: ``volume.like(new_array)``.
        """
        # import heavy libraries (scipy, torch) where they are used: `cref-bench methods`
        # imports this module to list the method, and stays quick
        from scipy import ndimage

        if self.sigma == 0:
            return volume.like(volume.data.copy())
        return volume.like(ndimage.gaussian_filter(volume.data, self.sigma))
''')

TESTS = Template('''\
"""Tests that hold for any denoiser, so they keep passing when you replace the example: with
its default parameters $cls scores every entry of a two-entry phantom corpus and records its
parameters, and its output keeps cref-bench's contract (maps on the input's grid, finite, not
constant, inputs left unchanged). Add tests of your own method's behaviour below them."""

from __future__ import annotations

import pytest

from cref_bench.corpus.reader import open_corpus
from cref_bench.run.contract import call_method
from cref_bench.run.runner import run_method
from dataset_builder.synthetic import write_phantom_corpus
from $package.method import $cls

SPEC = "$package.method:$cls"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two small phantoms with known truth."""
    return write_phantom_corpus(tmp_path_factory.mktemp("phantoms") / "corpus.zarr", 2,
                                seed=0, boxes=(32, 40), voxel_sizes=(1.5, 2.0),
                                resolutions=(4.0, 8.0), progress=False)


def test_every_entry_is_scored(corpus, tmp_path):
    run = run_method(SPEC, corpus, split="all", out=tmp_path / "results", progress=False)
    assert run.exit_status == 0, run.failures.to_string()
    assert run.counts["entries"] == 2
    assert run.scalars["cref_rmse"].notna().all()
    assert run.provenance["method"]["params"] == $cls().params()


def test_the_output_keeps_the_contract(corpus):
    entry = next(iter(open_corpus(corpus)))
    denoised = call_method($cls(), entry.half1, entry.half2, entry.mask)  # raises if not
    assert denoised.full.data.shape == entry.half1.data.shape
''')


def names(name: str) -> dict[str, str]:
    """The names a method called ``name`` goes by.

    Args:
        name: the method name, e.g. ``my-denoiser``.

    Returns:
        ``{"name": "my-denoiser", "package": "my_denoiser", "cls": "MyDenoiser"}``.

    Raises:
        InputError: ``name`` is not lower-case words joined by hyphens.
    """
    if not NAME_PATTERN.fullmatch(name):
        raise InputError("NAME", f"{name!r} is not a method name: lower-case letters and "
                                 "digits, words joined by hyphens, starting with a letter "
                                 "(e.g. my-denoiser)")
    words = name.split("-")
    return {"name": name, "package": "_".join(words),
            "cls": "".join(w[:1].upper() + w[1:] for w in words)}


def write_method_package(name: str, out: str | os.PathLike = ".") -> Path:
    """Write the package of a new method (see the module docstring).

    Args:
        name: the method name (see :func:`names`).
        out: the folder to write ``<name>/`` into.

    Returns:
        The package folder ``<out>/<name>``.

    Raises:
        InputError: a bad name, or ``<out>/<name>`` exists and is not an empty folder.
        OSError: the folder cannot be written.
    """
    words = names(name)
    folder = Path(out) / name
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(str(folder), "exists already and is not an empty folder; choose "
                                      "another NAME or --out")
    files = {"pyproject.toml": PYPROJECT, "README.md": README,
             f"{words['package']}/__init__.py": Template(f'"""The {name} method for '
                                                         'cref-bench."""\n'),
             f"{words['package']}/method.py": METHOD, "tests/test_method.py": TESTS}
    for relative, template in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(words), encoding="utf-8")
    return folder
