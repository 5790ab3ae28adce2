"""Output paths are checked before any work; downloads go to the user's own cache."""

from __future__ import annotations

import pytest

from cref_bench import cli
from cref_bench.errors import InputError
from cref_bench.output_paths import cache_folder, check_output_file, check_output_folder


@pytest.fixture
def blocker(tmp_path):
    """A regular file, where a folder would be needed."""
    path = tmp_path / "a-file"
    path.write_text("")
    return path


def test_file_paths(tmp_path, blocker):
    check_output_file(tmp_path / "new.json")
    check_output_file(blocker)  # an existing file is replaced
    check_output_file(tmp_path / "deep" / "er" / "t.md", make_parents=True)
    check_output_file("s3://bucket/table.md")  # left to the storage layer
    with pytest.raises(InputError, match="the folder .*deep does not exist"):
        check_output_file(tmp_path / "deep" / "t.md", "--out")
    with pytest.raises(InputError, match="is a folder, not a file"):
        check_output_file(tmp_path, "--json")
    with pytest.raises(InputError, match=f"--out {blocker / 'x' / 't.md'}: .* is a file"):
        check_output_file(blocker / "x" / "t.md", "--out", make_parents=True)


def test_folder_paths(tmp_path, blocker):
    check_output_folder(tmp_path)
    check_output_folder(tmp_path / "new" / "deeper")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_folder(blocker, "--out")
    with pytest.raises(InputError, match="cannot be made: .*a-file is a file"):
        check_output_folder(blocker / "sub", "--out")


COMMANDS = {
    # command: arguments, {tmp} a scratch folder, {bad} an output path under a regular file
    "synth": ["--out", "{bad}", "--entries", "2", "--no-progress"],
    "build": ["--out", "{bad}", "--ids", "{tmp}/ids.txt", "--no-progress"],
    "build-downloads": ["--out", "{tmp}/b.zarr", "--ids", "{tmp}/ids.txt",
                        "--keep-downloads", "{bad}"],
    "leaderboard": ["{tmp}/no-results", "--out", "{bad}"],
    "leaderboard-figures": ["{tmp}/no-results", "--figures", "{bad}"],
    "import-weights": ["{tmp}/model.index", "--out", "{bad}"],
    "train": ["--corpus", "{tmp}/absent.zarr", "--out", "{bad}", "--no-progress"],
    "demo": ["--out", "{bad}", "--no-progress"],
    "metrics": ["{tmp}/h1.mrc", "{tmp}/h2.mrc", "--denoised", "{tmp}/d.mrc", "--json", "{bad}"],
}


@pytest.mark.parametrize("case", sorted(COMMANDS))
def test_every_writing_command_refuses_an_unwritable_output_first(case, tmp_path, blocker,
                                                                   capsys):
    (tmp_path / "ids.txt").write_text("EMD-1234\n")
    bad = blocker / "out"
    argv = [case.split("-downloads")[0].split("-figures")[0]]
    argv += [a.replace("{tmp}", str(tmp_path)).replace("{bad}", str(bad))
             for a in COMMANDS[case]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("cref-bench: error: ") and str(bad) in err[0]
    assert f"{blocker} is a file" in err[0]


def test_the_cache_is_the_users_own(tmp_path, monkeypatch):
    from dataset_builder.emdb.build import BuildOptions

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder("downloads") == tmp_path / "xdg" / "cref-bench" / "downloads"
    assert BuildOptions().cache_root() == tmp_path / "xdg" / "cref-bench" / "downloads"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG rule: absolute only
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert BuildOptions().cache_root() == tmp_path / "home" / ".cache" / "cref-bench" / "downloads"
    assert BuildOptions(download_dir=str(tmp_path / "kept")).cache_root() == tmp_path / "kept"
