"""A run into a folder that holds the results of other parameters: the default folder gives
way to results/<method>-<parameters>, a folder given is refused unless replace; every run
says how many entries it reused and computed, and why."""

from __future__ import annotations

import pytest

from cref_bench.cli import main
from cref_bench.errors import InputError
from cref_bench.run.runner import run_method


def _lowpass(corpus, threshold, **settings):
    return run_method("lowpass", corpus, params={"threshold": threshold}, progress=False,
                      limit=2, **settings)


def test_the_default_folder_gives_way_to_another_setting(corpus_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = _lowpass(corpus_path, 0.143)
    assert str(first.out) == "results/lowpass"
    assert first.messages == ["2 entries: 0 reused from an earlier run, 2 computed (2 new)"]
    second = _lowpass(corpus_path, 0.5)
    assert str(second.out) == "results/lowpass-threshold=0.5"
    assert second.messages == [
        'results/lowpass holds the results of lowpass {"threshold":0.143}: this setting\'s go '
        "to results/lowpass-threshold=0.5",
        "2 entries: 0 reused from an earlier run, 2 computed (2 new)"]
    again = _lowpass(corpus_path, 0.5)
    assert again.out == second.out and again.counts["resumed"] == 2
    assert again.messages[-1] == "2 entries: 2 reused from an earlier run, 0 computed"
    assert _lowpass(corpus_path, 0.143).counts["resumed"] == 2  # the first is untouched
    # the default value given by name is the same setting as none given
    assert run_method("lowpass", corpus_path, progress=False, limit=2).counts["resumed"] == 2


def test_a_folder_given_is_refused_unless_replaced(corpus_path, tmp_path, capsys):
    out = tmp_path / "mine"
    _lowpass(corpus_path, 0.143, out=out)
    with pytest.raises(InputError, match='holds the results of lowpass {"threshold":0.143}, '
                                         'not of lowpass {"threshold":0.5}; give another '
                                         "--out, or --replace to replace them"):
        _lowpass(corpus_path, 0.5, out=out)
    assert _lowpass(corpus_path, 0.143, out=out).counts["resumed"] == 2  # nothing was touched
    assert main(["run", "--method", "lowpass", "--corpus", corpus_path, "--out", str(out),
                 "--param", "threshold=0.5", "--limit", "2", "--no-progress",
                 "--replace"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == [
        f'{out}: replacing the results of lowpass {{"threshold":0.143}}',
        "2 entries: 0 reused from an earlier run, 2 computed (2 other parameters)"]
