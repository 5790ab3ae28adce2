"""What a run records of the machine: the GPUs without importing torch for them."""

from __future__ import annotations

import os
import subprocess
import sys

from cref_bench.results import provenance


def _fake_smi(folder, text: str, status: int = 0):
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{text}'\nexit {status}\n")
    script.chmod(0o755)


def test_gpus_come_from_nvidia_smi_when_torch_is_not_loaded(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    _fake_smi(tmp_path, "NVIDIA H200\\nNVIDIA H200\\n")
    assert provenance.hardware()["gpus"] == ["NVIDIA H200", "NVIDIA H200"]
    assert "torch" not in sys.modules  # asking did not import it
    _fake_smi(tmp_path, "NVIDIA-SMI has failed", status=9)  # a driver that does not answer
    assert provenance.hardware()["gpus"] == []


def test_a_run_records_the_machine_without_importing_torch():
    code = ("import sys; from cref_bench.results import provenance; h = provenance.hardware(); "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert h['cpu_cores'] and h['python'] and isinstance(h['gpus'], list)")
    subprocess.run([sys.executable, "-c", code], check=True)
