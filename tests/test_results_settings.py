"""Which method setting a results folder holds, and the folder of another setting beside it
(what a run into a folder of other parameters decides with)."""

from __future__ import annotations

import json
from pathlib import Path

from cref_bench.results.folder import RECORD_SCHEMA, ResultsFolder, setting_folder


def test_the_setting_comes_from_provenance_else_from_a_record(tmp_path):
    assert ResultsFolder(tmp_path / "absent").held_setting() is None
    folder = tmp_path / "r"
    (folder / "entries").mkdir(parents=True)
    assert ResultsFolder(folder).held_setting() is None
    (folder / "entries" / "e1.json").write_text(json.dumps(
        {"schema": RECORD_SCHEMA, "entry": "e1", "method": "m", "params": {"cutoff": 6}}))
    # a run stopped before its end: from a record
    assert ResultsFolder(folder).held_setting() == {"method": "m", "params": {"cutoff": 6},
                                                    "given": None}
    (folder / "provenance.json").write_text(json.dumps(
        {"method": {"name": "m", "params": {"cutoff": 8, "width": 1}},
         "settings": {"params": {"cutoff": 8}}}))
    assert ResultsFolder(folder).held_setting() == {
        "method": "m", "params": {"cutoff": 8, "width": 1}, "given": {"cutoff": 8}}


def test_setting_folders_name_their_parameters():
    base = Path("results/lowpass")
    assert setting_folder(base, {}) == base
    assert setting_folder(base, {"threshold": 0.5, "edge_shells": 3}) == Path(
        "results/lowpass-edge_shells=3,threshold=0.5")
    assert setting_folder(base, {"weights": "runs/a b/best.pt", "sizes": [1, 2]}) == Path(
        "results/lowpass-sizes=_1,2_,weights=runs_a_b_best.pt")
