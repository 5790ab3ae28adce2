"""Tests for ``cref-bench metrics``: every metric for one map pair from files on disk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cref_bench.cli import main
from cref_bench.mapio import write_map
from cref_bench.metrics import evaluate
from cref_bench.volume import Volume
from tests.helpers_fields import field

SHAPE, VOXEL, ORIGIN = (32, 36, 40), (1.1, 1.2, 1.3), (5.0, -3.0, 12.5)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Truth, noisy halves, a smoothed 'denoised' map and a mask, written as MRC files."""
    rng = np.random.default_rng(7)
    truth = field(rng, SHAPE, VOXEL, lambda k: np.exp(-(k / 0.12) ** 2))
    truth /= truth.std()
    noise = [field(rng, SHAPE, VOXEL, lambda k: 0.05 + 3 * k) for _ in range(2)]
    z, y, x = np.meshgrid(*[np.arange(n) - n / 2 for n in SHAPE], indexing="ij")
    mask = (np.sqrt(z**2 + y**2 + x**2) < 12).astype(np.float32)
    denoised = field(rng, SHAPE, VOXEL, lambda k: 0.01) + truth

    def vol(a):
        return Volume(np.asarray(a, np.float32), VOXEL, ORIGIN)

    maps = {"half1": vol(truth + noise[0]), "half2": vol(truth + noise[1]),
            "denoised": vol(denoised), "d1": vol(truth + 0.5 * noise[0]),
            "d2": vol(truth + 0.5 * noise[1]), "mask": vol(mask), "truth": vol(truth)}
    folder = tmp_path_factory.mktemp("maps")
    paths = {name: write_map(folder / f"{name}.mrc", v) for name, v in maps.items()}
    return maps, paths


def _parse_table(text: str) -> dict[str, dict[str, str]]:
    lines = text.splitlines()
    header = lines[0].split()[1:]
    table = {}
    for line in lines[1:]:
        if not line.strip():
            break
        name, *cells = line.split()
        table[name] = dict(zip(header, cells))
    return table


def test_metrics_cli_prints_and_writes_what_evaluate_computes(case, tmp_path, capsys):
    maps, paths = case
    out_json, out_csv = tmp_path / "m.json", tmp_path / "curves.csv"
    status = main(["metrics", str(paths["half1"]), str(paths["half2"]),
                   "--denoised", str(paths["denoised"]), "--denoised-half1", str(paths["d1"]),
                   "--denoised-half2", str(paths["d2"]),
                   "--mask", str(paths["mask"]), "--truth", str(paths["truth"]),
                   "--json", str(out_json), "--curves", str(out_csv)])
    assert status == 0
    expected = evaluate(maps["half1"], maps["half2"], maps["denoised"], denoised_half1=maps["d1"],
                        denoised_half2=maps["d2"], mask=maps["mask"], truth=maps["truth"])
    table = _parse_table(capsys.readouterr().out)
    written = json.loads(out_json.read_text())
    for masking in ("unmasked", "masked"):
        for name, value in expected.scalars[masking].items():
            if value is None:
                assert written["scalars"][masking][name] is None
                assert table[name][masking] == "n/a"
            else:
                assert written["scalars"][masking][name] == pytest.approx(value, rel=1e-6, abs=1e-9)
                assert float(table[name][masking]) == pytest.approx(value, rel=1e-3, abs=1e-9)
    curves = pd.read_csv(out_csv)
    pd.testing.assert_frame_equal(curves, expected.curves.reset_index(drop=True), check_dtype=False)


def test_metrics_cli_explains_what_cannot_be_computed(case, capsys):
    _, paths = case
    assert main(["metrics", str(paths["half1"]), str(paths["half2"]),
                 "--denoised", str(paths["denoised"])]) == 0
    out = capsys.readouterr().out
    table = _parse_table(out)
    assert set(table["cref_rmse"]) == {"unmasked"}  # no mask, no model: no masked column
    assert table["fsc05_change"]["unmasked"] == "n/a"
    assert table["truth_corr"]["unmasked"] == "n/a"
    assert "no denoised half-maps given" in out


def test_metrics_cli_names_the_bad_file(case, tmp_path, capsys):
    _, paths = case
    missing = tmp_path / "nowhere.mrc"
    assert main(["metrics", str(paths["half1"]), str(missing),
                 "--denoised", str(paths["denoised"])]) == 2
    assert str(missing) in capsys.readouterr().err

    other = tmp_path / "other_grid.mrc"
    write_map(other, Volume(np.zeros((32, 36, 40), np.float32), 2.0, ORIGIN))
    assert main(["metrics", str(paths["half1"]), str(paths["half2"]),
                 "--denoised", str(other)]) == 2
    err = capsys.readouterr().err
    assert "voxel" in err.lower()
