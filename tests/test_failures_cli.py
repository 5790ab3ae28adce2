"""`cref-bench failures RESULTS_DIR`: every failed entry with its kind, message, traceback
and log; filters; a folder that is not one is refused in one line."""

from __future__ import annotations

import json

import pandas as pd

from cref_bench.cli import main
from cref_bench.results.folder import RECORD_SCHEMA
from tests.results_folders import write_folder

TRACE = ('Traceback (most recent call last):\n  File "/home/me/boom.py", line 9, in denoise_map\n'
         '    raise RuntimeError("kaboom")\nRuntimeError: kaboom\n')


def _folder(tmp_path):
    folder = write_folder(tmp_path / "boom", "boom",
                          pd.DataFrame({"entry": ["e09"], "masking": ["masked"],
                                        "cref_rmse": [0.3]}),
                          failures=[("e01", "error"), ("e02", "timeout")])
    (folder / "entries").mkdir()
    (folder / "entries" / "e01.json").write_text(json.dumps(
        {"schema": RECORD_SCHEMA, "entry": "e01", "status": "failed", "traceback": TRACE}))
    (folder / "logs").mkdir()
    (folder / "logs" / "e01.log").write_text("e01 failed\n" + TRACE)
    return folder


def test_failures_are_printed_with_their_tracebacks(tmp_path, capsys):
    folder = _folder(tmp_path)
    assert main(["failures", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("e01  error  error on e01\n    Traceback (most recent call last):\n"
                          '      File "/home/me/boom.py", line 9, in denoise_map\n')
    assert f"    log: {folder / 'logs' / 'e01.log'}\n" in out
    assert "e02  timeout  timeout on e02\n    (no traceback recorded)\n" in out
    assert out.endswith(f"{folder}: 2 failed entries (error 1, timeout 1)\n")


def test_a_traceback_column_wins_and_filters_keep_some(tmp_path, capsys):
    folder = _folder(tmp_path)
    table = pd.read_csv(folder / "failures.csv")
    table["traceback"] = ["from the table\n", ""]
    table.to_csv(folder / "failures.csv", index=False)
    assert main(["failures", str(folder), "--entry", "e01"]) == 0
    out = capsys.readouterr().out
    assert "    from the table\n" in out and "e02" not in out.split("\n\n")[0]
    assert out.endswith("2 failed entries (error 1, timeout 1); 1 shown\n")
    assert main(["failures", str(folder), "--kind", "timeout", "--brief"]) == 0
    assert capsys.readouterr().out == (f"e02  timeout  timeout on e02\n{folder}: 2 failed "
                                       "entries (error 1, timeout 1); 1 shown\n")


def test_not_a_results_folder(tmp_path, capsys):
    assert main(["failures", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"cref-bench: error: {tmp_path / 'failures.csv'}: "
                                       "missing\n")
