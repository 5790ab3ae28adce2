"""The command line's one exit-status table: bad input ends every command with status 2 and
one line naming the fault; the error family is caught once, in cli.main; commands that do not
train do not import torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from cref_bench import cli
from cref_bench.commands import methods as methods_command
from cref_bench.errors import InputError, WorkFailed

README = Path(__file__).resolve().parents[1] / "README.md"

BAD_INPUT = {
    # command: (arguments after the command, with {tmp} for a scratch folder; words of the fault)
    "metrics": (["{tmp}/h1.mrc", "{tmp}/h2.mrc", "--denoised", "{tmp}/d.mrc"],
                "h1.mrc: file not found"),
    "run": (["--method", "no-such-method", "--corpus", "{tmp}/c.zarr"], "no method named"),
    "synth": (["--out", "{tmp}/s.zarr", "--entries", "0"], "entries must be a positive integer"),
    "build": (["--out", "{tmp}/b.zarr", "--ids", "{tmp}/ids.txt", "--workers", "0"],
              "--workers must be at least 1"),
    "leaderboard": (["{tmp}/no-results"], "provenance.json: missing"),
    "check": (["{tmp}/no-results"], "provenance.json: missing"),
    "failures": (["{tmp}/no-results"], "failures.csv: missing"),
    "report": (["{tmp}/no-results", "--out", "{tmp}/report"], "provenance.json: missing"),
    "new-method": (["Bad_Name", "--out", "{tmp}"], "is not a method name"),
    "train": (["--corpus", "{tmp}/absent.zarr", "--out", "{tmp}/run", "--no-progress"],
              "absent.zarr: no corpus store here"),
    "import-weights": (["{tmp}/model.index", "--out", "{tmp}/w.pt"], "model.index"),
    "demo": (["--out", "{tmp}/demo", "--entries", "0", "--no-progress"],
             "entries must be a positive integer"),
    "recipes": (["--recipes", "{tmp}/no-such-folder"], "is not a folder of recipes"),
}


def test_every_command_is_in_the_table():
    assert set(BAD_INPUT) | {"methods"} == set(cli.command_modules())


@pytest.mark.parametrize("command", sorted(BAD_INPUT))
def test_bad_input_exits_2_with_one_line(command, tmp_path, capsys):
    arguments, fault = BAD_INPUT[command]
    (tmp_path / "ids.txt").write_text("EMD-1234\n")
    argv = [command] + [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cref-bench: error: ") and fault in err[-1]


def _failing(exc: BaseException):
    def main(args):
        raise exc
    return main


@pytest.mark.parametrize("raised, status, line", [
    (InputError("some.map", "truncated"), 2, "cref-bench: error: some.map: truncated"),
    (WorkFailed("2 of 5 entries failed"), 1, "cref-bench: error: 2 of 5 entries failed"),
    (PermissionError(13, "Permission denied", "out.csv"), 2,
     "cref-bench: error: [Errno 13] Permission denied: 'out.csv'"),
    (KeyboardInterrupt(), 130, "cref-bench: interrupted"),
])
def test_errors_are_caught_once_in_main(raised, status, line, monkeypatch, capsys):
    monkeypatch.setattr(methods_command, "main", _failing(raised))
    assert cli.main(["methods"]) == status
    captured = capsys.readouterr()
    assert captured.err == line + "\n" and captured.out == ""


def test_warnings_are_one_line_without_their_source(monkeypatch, capsys):
    """As ``train`` warns of a corpus without valid patches: one line, no file and source
    line; -v keeps Python's own form."""
    def main(args):
        warnings.warn("corpus.zarr: no valid patches", stacklevel=1)
        warnings.warn("old API", FutureWarning, stacklevel=1)

    monkeypatch.setattr(methods_command, "main", main)
    assert cli.main(["methods"]) == 0
    assert capsys.readouterr().err == ("cref-bench: warning: corpus.zarr: no valid patches\n"
                                       "cref-bench: warning: FutureWarning: old API\n")
    with pytest.warns(FutureWarning), pytest.warns(UserWarning, match="no valid patches"):
        assert cli.main(["-v", "methods"]) == 0  # -v: Python's own handling


def test_unexpected_exceptions_keep_their_traceback(monkeypatch):
    monkeypatch.setattr(methods_command, "main", _failing(ZeroDivisionError("a bug")))
    with pytest.raises(ZeroDivisionError, match="a bug"):
        cli.main(["methods"])


def test_verbose_logs_the_traceback_of_an_error(monkeypatch, caplog):
    monkeypatch.setattr(methods_command, "main", _failing(InputError("x.map", "truncated")))
    caplog.set_level("DEBUG", logger="cref_bench.cli")
    assert cli.main(["-v", "methods"]) == 2
    [record] = [r for r in caplog.records if r.name == "cref_bench.cli"]
    assert record.exc_info[0] is InputError


def test_the_exit_statuses_are_documented_once_everywhere(capsys):
    table = cli.EXIT_STATUSES
    assert table in cli.__doc__
    for command in [[], *([name] for name in cli.command_modules())]:
        with pytest.raises(SystemExit):
            cli.main([*command, "--help"])
        assert table in capsys.readouterr().out
    readme = README.read_text(encoding="utf-8")
    for line in table.splitlines()[1:]:
        status, meaning = line.split(maxsplit=1)
        assert f"| {status} | {meaning} |" in readme


def test_commands_that_do_not_train_never_import_torch(tmp_path):
    script = (
        "import json, sys\n"
        "from cref_bench import cli\n"
        f"cli.main(['leaderboard', {str(tmp_path / 'none')!r}])\n"
        f"cli.main(['metrics', 'a.mrc', 'b.mrc', '--denoised', 'c.mrc'])\n"
        "import cref_bench.corpus.reader, dataset_builder.store, dataset_builder.synthetic\n"
        "import dataset_builder.emdb.build, leaderboard.tables, cref_bench.run.runner\n"
        "import leaderboard.report, leaderboard.figures\n"
        "print(json.dumps('torch' in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) is False


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_closed_pipe_ends_quietly(unbuffered):
    script = Path(sys.executable).with_name("cref-bench")
    if not script.exists():
        pytest.skip(f"no console script at {script} (pip install -e .)")
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    child = subprocess.Popen([str(script), "methods"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
    child.stdout.close()  # as `| head` does once it has read enough
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == cli.BROKEN_PIPE_STATUS
    assert err == ""


def test_dask_logs_are_kept_at_warning_unless_verbose(monkeypatch):
    import logging

    import distributed  # noqa: F401 -- imported: its loggers exist

    for variable in cli.DASK_LOG_SETTINGS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(methods_command, "main", lambda args: 0)
    previous = logging.getLogger("distributed").level
    try:
        assert cli.main(["methods"]) == 0
        assert logging.getLogger("distributed").level == logging.WARNING
        assert all(os.environ[v] == "warning" for v in cli.DASK_LOG_SETTINGS)
        monkeypatch.delenv(cli.DASK_LOG_SETTINGS[0])
        assert cli.main(["-v", "methods"]) == 0
        assert logging.getLogger("distributed").level == logging.INFO
        assert os.environ[cli.DASK_LOG_SETTINGS[0]] == "info"
    finally:
        logging.getLogger("distributed").setLevel(previous)
