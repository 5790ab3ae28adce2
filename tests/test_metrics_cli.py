"""Tests for ``cref-bench metrics``: every metric for one map pair from files on disk."""

from __future__ import annotations

import json
import os
import stat
import warnings

import numpy as np
import pandas as pd
import pytest

from cref_bench.cli import main
from cref_bench.maps.io import write_map
from cref_bench.maps.volume import Volume
from cref_bench.metrics.scores import evaluate
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
    """``{metric: {masking: cell}}`` of the printed table (right-aligned cells of 10
    characters, two spaces apart; the name is the first word of its label)."""
    lines = text.splitlines()
    header = lines[0].split()[1:]
    start = len(lines[0]) - 12 * len(header) + 2
    table = {}
    for line in lines[1:]:
        if not line.strip():
            break
        cells = [line[start + 12 * i: start + 12 * i + 10].strip() for i in range(len(header))]
        table[line.split()[0]] = dict(zip(header, cells))
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
                bound = expected.bounds.get(masking, {}).get(name, "")
                assert table[name][masking].startswith(f"{bound} " if bound else "")
                number = float(table[name][masking].split()[-1])
                assert number == pytest.approx(value, rel=1e-3, abs=1e-9)
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


def test_bounds_units_and_the_same_half_twice(case, capsys):
    """Halves without noise (the truth twice): the half-map FSC never falls below 0.143, so
    res_half_0143 is the Nyquist resolution as an upper bound, shown with '<' as in the
    results tables; every row names its unit; the same map as both halves is warned about."""
    maps, paths = case
    assert main(["metrics", str(paths["truth"]), str(paths["truth"]),
                 "--denoised", str(paths["truth"])]) == 0
    captured = capsys.readouterr()
    expected = evaluate(maps["truth"], maps["truth"], maps["truth"])
    nyquist = expected.scalars["unmasked"]["res_half_0143"]
    assert expected.bounds["unmasked"]["res_half_0143"] == "<"
    lines = {line.split()[0]: line for line in captured.out.splitlines() if line.strip()}
    assert lines["res_half_0143"].startswith("res_half_0143 (Å)")
    assert lines["res_half_0143"].endswith(f"< {nyquist:.3f}")
    assert lines["cref_rmse"].startswith("cref_rmse  ")  # no unit
    assert f"< never crosses 0.143 up to {nyquist:.3g} Å (Nyquist): res_half_0143 (unmasked)" \
        in captured.out
    assert captured.err == (f"cref-bench: warning: {paths['truth']} and {paths['truth']} hold "
                            "the same map: their FSC is 1 on every shell, so C_ref is 1 "
                            "everywhere and the scores say nothing; give the two "
                            "independently refined half-maps\n")
    assert main(["metrics", str(paths["half1"]), str(paths["half2"]),
                 "--denoised", str(paths["denoised"])]) == 0
    assert capsys.readouterr().err == ""


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


# --------------------------------------------------------------------------- bad input refused


def _metrics_argv(paths, **extra) -> list[str]:
    argv = ["metrics", str(paths["half1"]), str(paths["half2"]),
            "--denoised", str(extra.pop("denoised", paths["denoised"]))]
    for flag, value in extra.items():
        argv += [f"--{flag.replace('_', '-')}", str(value)]
    return argv


@pytest.mark.parametrize("values, fault", [
    (lambda m: m * 2.0, "mask values must lie in [0, 1], found [0, 2]"),
    (lambda m: m - 0.5, "mask values must lie in [0, 1], found [-0.5, 0.5]"),
    (lambda m: m * 0.4, "mask is empty (no voxel > 0.5; the largest value is 0.4)"),
    (lambda m: m * 0.0, "mask is empty"),
])
def test_bad_masks_are_refused_as_the_builder_refuses_them(case, tmp_path, capsys, values, fault):
    maps, paths = case
    bad = write_map(tmp_path / "bad_mask.mrc", maps["mask"].like(values(maps["mask"].data)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(_metrics_argv(paths, mask=bad)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and fault in err[0]


@pytest.mark.parametrize("role", ["denoised", "truth", "denoised_half1"])
def test_an_all_zero_map_gets_a_reason_not_nan(case, tmp_path, capsys, role):
    maps, paths = case
    zero = write_map(tmp_path / "zero.mrc", maps["half1"].like(np.zeros(SHAPE, np.float32)))
    extra = {role: zero}
    if role == "denoised_half1":
        extra["denoised_half2"] = paths["d2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warnings either
        assert main(_metrics_argv(paths, **extra)) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and str(zero) in err[0] and "every voxel is 0" in err[0]
    assert "nan" not in captured.out.lower()


def test_json_is_standard_json_with_null_for_non_finite_values(case, tmp_path, monkeypatch):
    from cref_bench.metrics import scores as metrics

    _, paths = case
    real = metrics.evaluate

    def with_non_finite(*args, **kwargs):
        report = real(*args, **kwargs)
        report.scalars["unmasked"]["cref_rmse"] = float("nan")
        report.scalars["unmasked"]["res_half_0143"] = float("inf")
        report.scalars["unmasked"]["truth_corr"] = np.float32(0.5)
        return report

    monkeypatch.setattr(metrics, "evaluate", with_non_finite)
    out = tmp_path / "m.json"
    assert main(_metrics_argv(paths, json=out)) == 0

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    written = json.loads(out.read_text(), parse_constant=refuse)
    assert written["scalars"]["unmasked"]["cref_rmse"] is None
    assert written["scalars"]["unmasked"]["res_half_0143"] is None
    assert written["scalars"]["unmasked"]["truth_corr"] == 0.5


@pytest.mark.parametrize("flag", ["json", "curves"])
def test_an_unwritable_output_is_refused_before_any_work(case, tmp_path, capsys, flag):
    _, paths = case
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    missing = tmp_path / "missing-half.mrc"  # the work would fail on it first
    argv = ["metrics", str(paths["half1"]), str(missing), "--denoised", str(paths["denoised"]),
            f"--{flag}", str(blocker / "out.txt")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--{flag} {blocker / 'out.txt'}" in err[0]
    assert "is a file, not a folder" in err[0]

    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert main(argv[:-1] + [str(folder)]) == 2
    assert "is a folder, not a file" in capsys.readouterr().err


def test_written_files_follow_the_umask(case, tmp_path):
    _, paths = case
    previous = os.umask(0o022)
    try:
        assert main(_metrics_argv(paths, json=tmp_path / "m.json",
                                  curves=tmp_path / "c.csv")) == 0
    finally:
        os.umask(previous)
    for name in ("m.json", "c.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
