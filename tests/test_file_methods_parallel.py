"""A method given as path/to/file.py:Class on two dask workers: shipped to the workers and
scored, or, where a worker cannot load it, refused before any work with the worker and the
reason named; never a hang (each run under a time limit). A failure's traceback names the
method's file and line, in failures.csv and in the entry's log."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pandas as pd

SOURCE = '''
import sys
from pathlib import Path

from scipy import ndimage

from cref_bench.methods.protocol import SingleMapMethod
{extra}

class Blur(SingleMapMethod):
    name = "file-blur"
    version = "1"

    def denoise_map(self, volume, mask=None):
        {body}
        return volume.like(ndimage.gaussian_filter(volume.data, 1.0))
'''


def _run(tmp_path, corpus_path, source, *extra):
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "cref_bench.cli", "run", "--method",
                           f"{path}:Blur", "--corpus", corpus_path, "--out",
                           str(tmp_path / "out"), "--workers", "2", "--limit", "3",
                           "--no-progress", *extra], capture_output=True, text=True, env=env,
                          timeout=300)


def test_a_file_method_is_shipped_to_the_workers(corpus_path, tmp_path):
    done = _run(tmp_path, corpus_path, SOURCE.format(extra="", body="pass"))
    assert done.returncode == 0, done.stdout + done.stderr
    scalars = pd.read_csv(tmp_path / "out" / "scalars.csv")
    assert scalars["entry"].nunique() == 3 and scalars["cref_rmse"].notna().all()
    assert "CRITICAL" not in done.stderr


def test_a_method_the_workers_cannot_load_is_refused_before_any_work(corpus_path, tmp_path):
    """It imports a module that cannot be imported on the workers (as one not installed
    there: it refuses to load in any process started by another). Trusted, the method is
    shipped to the workers by value (in its box, each worker's box builds it from its file)."""
    (tmp_path / "only_here").mkdir()
    (tmp_path / "only_here" / "helper_only_here.py").write_text(
        "import multiprocessing\n"
        "if multiprocessing.parent_process() is not None:\n"
        "    raise ModuleNotFoundError(\"No module named 'helper_only_here'\")\n"
        "WIDTH = 1.0\n")
    extra = ("sys.path.insert(0, str(Path(__file__).parent / 'only_here'))\n"
             "import helper_only_here")
    done = _run(tmp_path, corpus_path,
                SOURCE.format(extra=extra, body="assert helper_only_here.WIDTH"),
                "--trust-method")
    assert done.returncode == 2, done.stdout + done.stderr
    # one line of ours (a loaded machine may add dask's own warnings about slow workers)
    [line] = [x for x in done.stderr.splitlines() if x.startswith("cref-bench:")]
    assert line.startswith("cref-bench: error: file-blur: cannot be loaded on dask worker tcp://")
    assert "ModuleNotFoundError: No module named 'helper_only_here'" in line
    assert line.endswith("install what it imports on the workers, or run it with --workers 1")
    assert not list((tmp_path / "out" / "entries").glob("*.json"))


def test_a_failure_names_the_method_file_and_line(corpus_path, tmp_path):
    done = _run(tmp_path, corpus_path,
                SOURCE.format(extra="", body="raise RuntimeError('kaboom')"), "--limit", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    [trace] = failures["traceback"]
    assert f'File "{tmp_path / "mine.py"}", line 15, in denoise_map\n' \
           "    raise RuntimeError('kaboom')\n" in trace
    assert "<dynamic-code>" not in trace
    [entry] = failures["entry"]
    log = (tmp_path / "out" / "logs" / f"{entry}.log").read_text()
    assert log.startswith(f"entry {entry}: error (RuntimeError): ") and trace in log
    assert f"cref-bench failures {tmp_path / 'out'}" in done.stdout
