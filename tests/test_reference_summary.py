"""The test run says how many tests skipped for want of ../shared/reference, and why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_skips_for_want_of_reference_data_are_counted(tmp_path):
    (tmp_path / "test_fake.py").write_text(
        "import pytest\n"
        "def test_needs_it():\n"
        "    pytest.skip('reference model absent: /x/shared/reference/models/3j5p.pdb')\n"
        "def test_other():\n"
        "    pytest.skip('no GPU')\n"
        "def test_runs():\n"
        "    pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "tests.conftest", "--rootdir", str(tmp_path),
                           str(tmp_path / "test_fake.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "1 passed, 2 skipped" in done.stdout, done.stdout + done.stderr
    assert "1 tests skipped: the reference data (shared/reference, beside the checkout) " \
           "are absent" in done.stdout
