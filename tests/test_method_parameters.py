"""Parameters checked against the signature of what builds a method: a misspelt name or a
value of the wrong type ends in one line naming the parameter, its type and its default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cref_bench.errors import MethodError
from cref_bench.methods.parameters import check_params


class Target:
    def __init__(self, sigma: float = 1.0, steps: int = 3, sharpen: bool = False,
                 model: str = "small", weights: str | os.PathLike | None = None,
                 sizes: list | None = None, untyped=0.5, anything=None):
        pass


def factory(name, /, **params):
    return name, params


@pytest.mark.parametrize("params", [
    {"sigma": 2}, {"sigma": 0.5}, {"steps": 4}, {"sharpen": True}, {"model": "big"},
    {"weights": "run1/best.pt"}, {"weights": None}, {"weights": Path("w.pt")},
    {"sizes": [1, 2]}, {"untyped": 3},
    {"anything": "x"}, {"anything": [1]},
])
def test_values_of_the_right_type_pass_unchanged(params):
    assert check_params("t", Target, params) == params


@pytest.mark.parametrize("params, message", [
    ({"sigma": "abc"}, "t: parameter sigma (a number, default 1.0) cannot be the text 'abc'"),
    ({"steps": 2.5}, "t: parameter steps (an integer, default 3) cannot be 2.5"),
    ({"sharpen": 1}, "t: parameter sharpen (true or false, default False) cannot be 1"),
    ({"sigma": True}, "t: parameter sigma (a number, default 1.0) cannot be true"),
    ({"sizes": "x"}, "cannot be the text 'x'"),
    ({"untyped": "fast"}, "parameter untyped (a number, default 0.5) cannot be the text"),
])
def test_values_of_the_wrong_type_are_refused_in_one_line(params, message):
    with pytest.raises(MethodError) as caught:
        check_params("t", Target, params)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_unknown_name_lists_the_parameters():
    with pytest.raises(MethodError, match=r"t: takes no parameter 'sigmaa'; its parameters: "
                                          r"sigma \(a number, default 1.0\), steps \(an "
                                          r"integer, default 3\)"):
        check_params("t", Target, {"sigmaa": 1})


def test_a_number_for_text_becomes_its_text_and_open_factories_take_any_name():
    assert check_params("t", Target, {"model": 2}) == {"model": "2"}
    import functools

    assert check_params("t", functools.partial(factory, "n"), {"x": 1}) == {"x": 1}


def test_the_command_line_refuses_a_bad_value_in_one_line(corpus_path, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cref_bench.cli", "run", "--method", "lowpass", "--corpus",
         corpus_path, "--out", str(tmp_path / "r"), "--param", "threshold=abc"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 2
    assert result.stderr == ("cref-bench: error: lowpass: parameter threshold (a number, "
                             "default 0.143) cannot be the text 'abc'\n")
    assert not (tmp_path / "r").exists()
