"""Tests for ``cref-bench demo``: phantoms, baselines, the leaderboard and the report, end to
end."""

from __future__ import annotations

import pandas as pd

from cref_bench.cli import main


def test_demo_ranks_the_baselines_and_fsc_weighting_beats_noisy(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--entries", "7", "--methods", "noisy,fsc-weight",
            "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| noisy (reference) |" in printed and "| fsc-weight |" in printed
    for name in ("leaderboard.md", "leaderboard.tex"):
        assert (out / name).stat().st_size > 0
    index = out / "report" / "index.html"
    assert printed.strip().endswith(f"report: {index}")
    assert "fsc-weight" in index.read_text() and any((out / "report" / "figures").glob("*.png"))

    scalars = pd.concat(pd.read_csv(out / "results" / m / "scalars.csv",
                                    dtype={"method_version": str})
                        for m in ("noisy", "fsc-weight"))
    masked = scalars[scalars.masking == "masked"].pivot(index="entry", columns="method")
    assert sorted(masked.index) == ["SYN-0001", "SYN-0007"]  # the test split of 7 phantoms
    # Closer to the truth, entry by entry: correlation inside the mask, and the masked FSC to
    # the truth over the band where it falls (0.2-0.99 for the noisy map). Unmasked, a
    # per-shell weight leaves the FSC to the truth unchanged; masked, it keeps the noise of
    # the high shells from leaking into the band through the mask.
    assert (masked["truth_corr"]["fsc-weight"] > masked["truth_corr"]["noisy"]).all()
    curves = pd.concat(pd.read_csv(out / "results" / m / "curves.csv")
                       for m in ("noisy", "fsc-weight"))
    curves = curves[(curves.masking == "masked") & (curves.curve == "fsc_truth")]
    fsc_truth = curves.pivot_table(index=["entry", "shell"], columns="method", values="value")
    band = fsc_truth[(fsc_truth["noisy"] > 0.2) & (fsc_truth["noisy"] < 0.99)]
    gain = band.groupby("entry").mean()
    assert len(gain) == 2 and (gain["fsc-weight"] > gain["noisy"]).all()

    # A rerun reuses the corpus and every finished entry.
    assert main([*args, "--no-report"]) == 0
    printed = capsys.readouterr().out
    assert "2 test entries" in printed and "report:" not in printed


def test_demo_methods_by_default(monkeypatch):
    """The classic filters and lafter always; crefdenoiser with weights; topaz3d when its
    package is there (as Topaz3D.unavailable() says)."""
    from baselines.topaz3d import Topaz3D
    from leaderboard.commands.demo import CLASSIC_METHODS, default_methods

    monkeypatch.delenv("CREFDENOISER_WEIGHTS", raising=False)
    methods, params, skipped = default_methods()
    topaz = Topaz3D.unavailable() is None
    assert methods == [*CLASSIC_METHODS, *(["topaz3d"] if topaz else [])]
    assert "lafter" in methods and ("topaz3d" in params) == topaz
    assert any(line.startswith("crefdenoiser: no weights") for line in skipped)
    if topaz:
        assert params["topaz3d"] == {"patch_size": 0}
    monkeypatch.setenv("CREFDENOISER_WEIGHTS", "/somewhere/model.pt")
    methods, params, _ = default_methods()
    assert "crefdenoiser" in methods and params["crefdenoiser"] == {"weights":
                                                                    "/somewhere/model.pt"}
    assert default_methods("/mine.pt")[1]["crefdenoiser"] == {"weights": "/mine.pt"}
