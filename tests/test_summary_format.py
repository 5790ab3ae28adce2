"""The printed run summary: fixed significant figures in every column, no "± nan"."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from cref_bench.results.folder import format_summary, summarise
from cref_bench.results.format import significant


def _digits(text: str) -> int:
    """Significant figures of a number written in fixed-point or scientific notation."""
    mantissa = re.split("[eE]", text.lstrip("-"))[0].replace(".", "")
    return len(mantissa.lstrip("0"))


@pytest.mark.parametrize("value, digits, text", [
    (0.0691, 4, "0.06910"), (0.3326, 4, "0.3326"), (5.952, 2, "6.0"), (1234.56, 4, "1235"),
    (12345.6, 4, "1.235e+04"), (9.842e-09, 4, "9.842e-09"), (-0.044, 2, "-0.044"),
    (0.0, 4, "0"), (1.0, 4, "1.000"), (float("nan"), 4, "nan"),
])
def test_significant(value, digits, text):
    assert significant(value, digits) == text


def test_columns_have_fixed_significant_figures_and_single_values_no_spread():
    rng = np.random.default_rng(3)
    scalars = pd.DataFrame({
        "masking": ["masked"] * 6,
        "cref_rmse": rng.uniform(0.05, 0.09, 6),              # small values: 0.0xxxx
        "res_half_0143": rng.uniform(3, 12, 6),              # values above 1
        "fsc05_change": rng.normal(0, 1e-8, 6),               # tiny, of either sign
        "truth_corr": [0.93, np.nan, np.nan, np.nan, np.nan, np.nan],  # one value only
    })
    summary = summarise(scalars, failed=0)
    text = format_summary(summary, "title")
    assert "nan" not in text
    assert "res_half_0143 (Å)" in text and "fsc05_change (Å)" in text  # units beside names
    assert "cref_rmse (" not in text  # no unit
    bare = [re.sub(r" \([^)]*\)", "", line) for line in text.splitlines()[2:]]
    rows = {line.split()[1]: line.split() for line in bare}
    assert set(rows) == {"cref_rmse", "res_half_0143", "fsc05_change", "truth_corr"}
    for metric, cells in rows.items():
        if metric == "truth_corr":
            assert cells[2:] == ["0.9300", "0.9300", "1", "0"]  # mean, median, n, failed
            continue
        mean, plus, std, median = cells[2:6]
        assert plus == "±"
        assert (_digits(mean), _digits(std), _digits(median)) == (4, 2, 4), cells
        expected = summary.set_index("metric").loc[metric]
        assert float(mean) == pytest.approx(expected["mean"], rel=1e-3)
        assert float(std) == pytest.approx(expected["std"], rel=5e-2)
