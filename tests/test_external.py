"""The external-program method: programs of the tests' own (Python scripts) with known
answers, every way a program can fail, the runner's limits reaching the program, and named
recipes. RELION's own program is tested in test_external_relion.py."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from scipy import ndimage

from baselines.external import method as external
from baselines.external.method import External
from baselines.external.outputs import onto_grid
from baselines.external.program import ProgramFailed
from baselines.external.recipes import SHIPPED, available_recipes, find_recipe, read_recipe
from baselines.external.template import render
from baselines.resampling import fourier_resample
from cref_bench.errors import MapError, MethodError, UnavailableError
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import load_method
from cref_bench.run.contract import call_method
from cref_bench.run.runner import run_method

PYTHON = sys.executable

# A single-map program: OUT = FACTOR * IN (a copy of the input's header geometry).
SCALE = """
import sys
from cref_bench.maps.io import read_map, write_map
src, out, factor = sys.argv[1], sys.argv[2], float(sys.argv[3])
m = read_map(src)
print(f"scaling {m.shape} by {factor}", flush=True)
write_map(out, m.like(m.data * factor))
"""

# A pair program: writes the average (full), and each half times 0.5 (halves); or fails.
PAIR = """
import os, sys
from cref_bench.maps.io import read_map, write_map
h1, h2, workdir, mode = read_map(sys.argv[1]), read_map(sys.argv[2]), sys.argv[3], sys.argv[4]
print("MARKER pair program on box", h1.shape[0], "threads", os.environ["OMP_NUM_THREADS"])
if mode == "fail-on-40" and h1.shape[0] == 40:
    print("box 40 is not supported", file=sys.stderr)
    sys.exit(2)
if mode == "exit-3":
    print("reading maps\\nbad thing happened", flush=True)
    sys.exit(3)
if mode == "silent":
    print("done")
    sys.exit(0)
if mode == "garbage":
    open(os.path.join(workdir, "full.mrc"), "wb").write(b"not a map at all" * 100)
    sys.exit(0)
if mode == "scribble":  # overwrite the input copies after reading them
    for path in sys.argv[1:3]:
        write_map(path, h1.like(h1.data * 0 + 7))
write_map(os.path.join(workdir, "full.mrc"), h1.like((h1.data + h2.data) / 2))
write_map(os.path.join(workdir, "d1.mrc"), h1.like(h1.data * 0.5))
write_map(os.path.join(workdir, "d2.mrc"), h2.like(h2.data * 0.5))
"""

# Writes the average resampled onto another grid: "up" 2x finer (LAFTER), "angstrom" onto
# 1 Å voxels over the same box, "crop" a smaller box at the same voxel size.
REGRID = """
import sys
import numpy as np
from scipy.signal import resample
from cref_bench.maps.io import read_map, write_map
from cref_bench.maps.volume import Volume
h1, h2, out, how = read_map(sys.argv[1]), read_map(sys.argv[2]), sys.argv[3], sys.argv[4]
avg = (h1.data + h2.data) / 2
if how == "crop":
    write_map(out, Volume(avg[2:-2, 2:-2, 2:-2], h1.voxel_size, h1.origin))
    sys.exit(0)
shape = {"up": [2 * n for n in avg.shape], "down": [n // 2 for n in avg.shape],
         "angstrom": [round(n * v) for n, v in zip(avg.shape, h1.voxel_size)]}[how]
data = avg
for axis in range(3):
    data = resample(data, shape[axis], axis=axis)
voxel = [n * v / m for n, v, m in zip(avg.shape, h1.voxel_size, shape)]
write_map(out, Volume(data.astype(np.float32), voxel, h1.origin))
"""


def _script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _pair(n=24, seed=0, voxel=1.5):
    rng = np.random.default_rng(seed)
    truth = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), 1.5).astype(np.float32)
    z, y, x = np.ogrid[:n, :n, :n]
    radius = np.sqrt((z - n / 2) ** 2 + (y - n / 2) ** 2 + (x - n / 2) ** 2)
    origin = (3.0, 0.0, -4.5)
    mask = Volume(np.clip((0.4 * n - radius) / 2, 0, 1), voxel, origin)
    return (Volume(truth + 0.5 * rng.standard_normal(truth.shape), voxel, origin),
            Volume(truth + 0.5 * rng.standard_normal(truth.shape), voxel, origin), mask)


def _pair_method(tmp_path, mode="ok", **kw):
    script = _script(tmp_path, "pair.py", PAIR)
    settings = {"command": f"{PYTHON} {script} {{half1}} {{half2}} {{workdir}} {{mode}}",
                "output": "full.mrc", "mode": mode, **kw}
    return External(**settings), script


# ------------------------------------------------------------------------------ templates

def test_render_quotes_every_word_and_expands_lists():
    values = {"a": "two words", "b": ["-p", "x y"], "c": 1.23456789, "d": 3, "e": []}
    assert render("prog {a} {b} {c} {c:.2f} {d} {e}{{lit}}", values, quote=True) == \
        "prog 'two words' -p 'x y' 1.23457 1.23 3 {lit}"
    assert render("{a}/out.mrc", values, quote=False) == "two words/out.mrc"
    with pytest.raises(ValueError, match="one word"):
        render("{b}.mrc", values, quote=False)
    with pytest.raises(ValueError, match="has no value"):
        render("{zzz}", values, quote=True)


def test_the_settings_are_checked_before_any_entry(tmp_path):
    script = _script(tmp_path, "pair.py", PAIR)
    base = f"{PYTHON} {script} {{half1}} {{half2}} {{workdir}}"
    with pytest.raises(MethodError, match="needs a command"):
        External()
    with pytest.raises(MethodError, match=r"unknown placeholder \{hlaf1\}.*known: average"):
        External(command=base + " {hlaf1}", output="x.mrc")
    with pytest.raises(MethodError, match=r"\{map\}, which exists only with per_map"):
        External(command=base + " {map}", output="x.mrc")
    with pytest.raises(MethodError, match="needs output"):
        External(command=base)
    with pytest.raises(MethodError, match="go together"):
        External(command=base, half1_output="a.mrc")
    with pytest.raises(MethodError, match=r"unknown parameter\(s\) colour"):
        External(command=base, output="x.mrc", colour="red")
    with pytest.raises(MethodError, match="workdir cannot be given"):
        External(command=base, output="x.mrc", workdir="/tmp")
    with pytest.raises(ValueError, match="per_map must be of type bool"):
        External(command=base, output="x.mrc", per_map="yes")
    with pytest.raises(UnavailableError, match="not found on PATH"):
        External(command="no-such-program-anywhere {half1}", output="x.mrc")
    with pytest.raises(MethodError, match="first word is a shell word"):
        External(command="cd {workdir} && prog", output="x.mrc")
    with pytest.raises(UnavailableError, match="exited with status 3: nope"):
        External(command=base, output="x.mrc", version_command="echo nope; exit 3")
    with pytest.raises(MethodError, match="give recipe=NAME"):
        External(command=base, output="x.mrc", recipes=str(tmp_path))
    with pytest.raises(ValueError, match="env values"):
        External(command=base, output="x.mrc", env={"A": ["x"]})


def test_the_program_is_identified_in_the_parameters(tmp_path):
    method, script = _pair_method(tmp_path)
    files = method.params()["program"]["files"]
    # the interpreter and its script, each by its SHA-256
    assert files[str(script.resolve())] == hashlib.sha256(script.read_bytes()).hexdigest()
    assert str(Path(PYTHON).resolve()) in files
    versioned = External(command=f"{PYTHON} {script} {{half1}} {{half2}} {{workdir}} ok",
                         output="full.mrc", version_command=f"{PYTHON} --version")
    assert versioned.params()["program"]["version"] == f"Python {sys.version.split()[0]}"
    script.write_text(script.read_text() + "\n# changed\n")
    again = External(command=method.command, output="full.mrc", mode="ok")
    assert again.params() != method.params()  # a changed program is another method


# --------------------------------------------------------------------------- known answers

def test_a_pair_program_gives_its_full_map_and_halves(tmp_path):
    half1, half2, mask = _pair()
    method, _ = _pair_method(tmp_path, half1_output="d1.mrc", half2_output="d2.mrc",
                             threads=3)
    out = call_method(method, half1, half2, mask)
    np.testing.assert_allclose(out.full.data, (half1.data + half2.data) / 2, atol=1e-6)
    np.testing.assert_allclose(out.half1.data, half1.data * 0.5, atol=1e-6)
    assert out.full.origin == half1.origin and out.full.voxel_size == half1.voxel_size
    # without output, the full map is the mean of the denoised halves, and the note says so
    method, _ = _pair_method(tmp_path, output=None, half1_output="d1.mrc",
                             half2_output="d2.mrc")
    out = call_method(method, half1, half2, mask)
    np.testing.assert_allclose(out.full.data, (half1.data + half2.data) / 4, atol=1e-6)
    assert "mean of the two denoised half-maps" in out.note
    # a full map only: no halves, with the reason
    method, _ = _pair_method(tmp_path)
    out = call_method(method, half1, half2, mask)
    assert out.half1 is None and "makes no denoised half-maps" in out.note


def test_a_single_map_program_runs_on_the_average_and_on_each_half(tmp_path):
    half1, half2, mask = _pair()
    script = _script(tmp_path, "scale.py", SCALE)
    method = External(command=f"{PYTHON} {script} {{map}} {{workdir}}/out.mrc {{factor}}",
                      output="out.mrc", per_map=True, factor=3)
    out = call_method(method, half1, half2, None)
    np.testing.assert_allclose(out.full.data, 1.5 * (half1.data + half2.data), rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(out.half2.data, 3 * half2.data, rtol=1e-6, atol=1e-6)
    assert External(command=method.command, output="out.mrc", per_map=True, factor=2.5,
                    denoise_halves=False).denoise(half1, half2).half1 is None


def test_resolution_and_voxel_size_reach_the_program(tmp_path):
    half1, half2, mask = _pair(voxel=1.25)
    record = tmp_path / "args.json"
    script = _script(tmp_path, "record.py", f"""
        import json, sys
        from cref_bench.maps.io import read_map, write_map
        json.dump(sys.argv[1:], open({str(record)!r}, "w"))
        m = read_map(sys.argv[3])
        write_map("out.mrc", m.like(m.data))
        """)
    method = External(command=f"{PYTHON} {script} {{voxel_size}} {{resolution:.4f}} {{mask}}",
                      output="out.mrc")
    out = method.denoise(half1, half2, mask)
    voxel, resolution, _ = json.loads(record.read_text())
    from cref_bench.metrics.fsc import fsc

    expected = fsc(half1, half2, mask).resolution_at(0.143)
    assert float(voxel) == 1.25
    assert float(resolution) == pytest.approx(expected.resolution, abs=1e-4)
    np.testing.assert_array_equal(out.full.data, mask.data)  # the mask copy, read back
    with pytest.raises(MapError, match="has no mask"):
        method.denoise(half1, half2, None)


@pytest.mark.parametrize("how, word", [("up", "cropped"), ("angstrom", "cropped"),
                                       ("down", "padded")])
def test_an_output_on_another_grid_is_fourier_resampled_back(tmp_path, how, word):
    half1, half2, mask = _pair(n=30, voxel=1.3)  # 39 Å: 60 voxels of 0.65 Å, 39 of 1 Å
    script = _script(tmp_path, "regrid.py", REGRID)
    method = External(command=f"{PYTHON} {script} {{half1}} {{half2}} {{workdir}}/o.mrc {how}",
                      output="o.mrc")
    out = call_method(method, half1, half2, mask)
    average = (half1.data + half2.data) / 2
    # onto a finer grid and back is exact (the band limit is kept); onto a coarser one and
    # back keeps what the coarser grid holds
    expected = fourier_resample(fourier_resample(average, (15, 15, 15)), average.shape) \
        if how == "down" else average
    np.testing.assert_allclose(out.full.data, expected, atol=2e-4)
    assert f"Fourier-{word} onto the input grid" in out.note


def test_an_output_on_another_box_fails_with_both_grids(tmp_path):
    half1, half2, mask = _pair()
    script = _script(tmp_path, "regrid.py", REGRID)
    method = External(command=f"{PYTHON} {script} {{half1}} {{half2}} {{workdir}}/o.mrc crop",
                      output="o.mrc")
    with pytest.raises(ProgramFailed, match=r"20x20x20 voxels .* another box"):
        method.denoise(half1, half2, mask)


def test_an_output_of_the_inputs_shape_keeps_the_input_grid():
    like = Volume(np.zeros((10, 10, 10)), 2.0, (1.0, 1.0, 1.0))
    moved = Volume(np.arange(1000.0).reshape(10, 10, 10), 2.0, (9.0, 1.0, 1.0), "o.mrc")
    placed, note = onto_grid(moved, like, "full map")
    assert placed.origin == like.origin and "origin 9, 1, 1 Å" in note
    assert "voxel size" not in note
    np.testing.assert_array_equal(placed.data, moved.data)
    assert onto_grid(Volume(moved.data, 2.0, (1.2, 1, 1)), like, "full map")[1] == ""


def test_an_output_without_the_inputs_header_is_taken_on_the_input_grid(tmp_path):
    """A program that writes its map with mrcfile and no voxel size (cell 0): read
    permissively (1 Å assumed), then taken on the input grid, both noted."""
    half1, half2, mask = _pair()
    script = _script(tmp_path, "bare.py", """
        import sys
        import mrcfile
        from cref_bench.maps.io import read_map
        m = read_map(sys.argv[1])
        with mrcfile.new("out.mrc") as out:
            out.set_data(m.data * 2)
        """)
    out = call_method(External(command=f"{PYTHON} {script} {{half1}}", output="out.mrc"),
                      half1, half2, mask)
    np.testing.assert_allclose(out.full.data, 2 * half1.data, rtol=1e-6)
    assert out.full.voxel_size == half1.voxel_size
    assert "read permissively" in out.note and "voxel size 1, 1, 1 Å" in out.note


# -------------------------------------------------------------------------------- failures

@pytest.mark.parametrize("mode, words", [
    ("exit-3", ["exited with status 3", "bad thing happened"]),
    ("silent", ["exited with status 0 but wrote no full map", "holds: nothing", "done"]),
    ("garbage", ["wrote a full map that cannot be read", "full.mrc", "MARKER"]),
])
def test_a_failing_program_is_named_with_its_last_lines(tmp_path, mode, words):
    half1, half2, mask = _pair()
    method, _ = _pair_method(tmp_path, mode)
    with pytest.raises(ProgramFailed) as caught:
        method.denoise(half1, half2, mask)
    for word in words:
        assert word in str(caught.value)


def test_a_program_may_write_to_its_input_copies(tmp_path):
    half1, half2, mask = _pair()
    method, _ = _pair_method(tmp_path, "scribble")
    out = call_method(method, half1, half2, mask)  # the runner's digests: inputs unchanged
    np.testing.assert_allclose(out.full.data, (half1.data + half2.data) / 2, atol=1e-6)


def test_the_working_folder_is_removed_after_each_entry(tmp_path, monkeypatch):
    monkeypatch.setenv(external.SCRATCH_ENV, str(tmp_path))
    half1, half2, mask = _pair()
    method, _ = _pair_method(tmp_path)
    method.denoise(half1, half2, mask)
    with pytest.raises(ProgramFailed):
        _pair_method(tmp_path, "exit-3")[0].denoise(half1, half2, mask)
    assert not list(tmp_path.glob("external-*"))


# ------------------------------------------------------------------------- through the runner

def test_the_runner_records_failures_with_the_programs_lines_and_keeps_its_output(
        corpus_path, tmp_path):
    from cref_bench.corpus.reader import open_corpus

    script = _script(tmp_path, "pair.py", PAIR)
    out = tmp_path / "results"
    result = run_method("external", corpus_path, out=out, progress=False,
                        params={"command": f"{PYTHON} {script} {{half1}} {{half2}} {{workdir}} "
                                           "fail-on-40", "output": "full.mrc",
                                "name": "pair-script"})
    corpus = open_corpus(corpus_path)
    big = {e for e in corpus.ids("test") if corpus.entry(e).half1.shape[0] == 40}
    failures = pd.read_csv(out / "failures.csv")
    assert set(failures["entry"]) == big and set(failures["kind"]) == {"error"}
    assert all("exited with status 2" in m and "box 40 is not supported" in m
               for m in failures["message"])
    scored = set(result.scalars.dropna(subset=["cref_rmse"])["entry"])
    assert scored == set(corpus.ids("test")) - big and len(scored) == 2
    log = "".join(p.read_text() for p in (out / "logs").glob("method-*.log"))  # its output
    assert log.count("MARKER pair program on box") == 5 and log.count("[pair-script]") == 10
    facts = json.loads((out / "provenance.json").read_text())["method"]
    assert facts["name"] == "pair-script" and facts["params"]["program"]["files"]


def test_a_hanging_program_and_its_children_are_killed_by_the_timeout(corpus_path, tmp_path):
    """The program's child is found by its own command line (a unique sleep): the program
    runs in the method's box, which writes nowhere this test could read."""
    seconds = f"{300 + time.time_ns() % 10**6 / 10**6:.6f}"
    out = tmp_path / "results"
    start = time.monotonic()
    result = run_method("external", corpus_path, out=out, limit=1, progress=False, timeout=3,
                        params={"command": f"sleep {seconds} & wait", "output": "never.mrc",
                                "program": "sleep"})
    assert time.monotonic() - start < 60
    assert list(result.failures["kind"]) == ["timeout"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [p for p in psutil.process_iter(["cmdline", "status"])
                 if p.info["cmdline"] == ["sleep", seconds]
                 and p.info["status"] != psutil.STATUS_ZOMBIE]
        if not alive:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the program's child (sleep {seconds}) survived the timeout")


def test_the_memory_limit_reaches_the_program(corpus_path, tmp_path):
    hog = _script(tmp_path, "hog.py", """
        import time
        block = b"x" * (600 * 2**20)
        print("holding", len(block), flush=True)
        time.sleep(60)
        """)
    result = run_method("external", corpus_path, out=tmp_path / "r", limit=1, progress=False,
                        timeout=120, memory_limit=400 * 2**20,
                        params={"command": f"{PYTHON} {hog}", "output": "never.mrc"})
    assert list(result.failures["kind"]) == ["memory"]


def test_a_rerun_reuses_entries_until_the_recipe_changes(corpus_path, tmp_path):
    script = _script(tmp_path, "pair.py", PAIR)
    recipe = tmp_path / "mine.toml"
    recipe.write_text(f'command = "{PYTHON} {script} {{half1}} {{half2}} {{workdir}} {{mode}}"\n'
                      'output = "full.mrc"\n[params]\nmode = "ok"\n')
    out = tmp_path / "results"
    first = run_method(f"recipe:{recipe}", corpus_path, out=out, limit=1, progress=False)
    again = run_method(f"recipe:{recipe}", corpus_path, out=out, limit=1, progress=False)
    recipe.write_text(recipe.read_text() + "# the same, but the text changed\n")
    changed = run_method(f"recipe:{recipe}", corpus_path, out=out, limit=1, progress=False)
    assert (first.counts["evaluated"], again.counts["resumed"], changed.counts["evaluated"]) \
        == (1, 1, 1)
    assert changed.provenance["method"]["params"]["recipe_text"].endswith("text changed\n")


# -------------------------------------------------------------------------------- recipes

def _recipe(folder: Path, name: str, factor: float, script: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""
        description = "scale by a factor"
        per_map = true
        command = "{PYTHON} {script} {{map}} out.mrc {{factor}}"
        output = "out.mrc"
        [params]
        factor = {factor}
        """))
    return path


def test_recipes_are_found_by_name_user_folders_first(tmp_path, monkeypatch):
    script = _script(tmp_path, "scale.py", SCALE)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    _recipe(tmp_path / "config" / "cref-bench" / "recipes", "scale", 2.0, script)
    _recipe(tmp_path / "mine", "scale", 5.0, script)
    half1, half2, _ = _pair()
    user = load_method("recipe:scale")
    assert user.name == "scale" and user.values == {"factor": 2.0}
    assert user.params()["factor"] == 2.0  # each placeholder value under its own name
    assert load_method("recipe:scale", recipes=str(tmp_path / "mine")).values["factor"] == 5.0
    out = load_method("recipe:scale", factor=-1).denoise(half1, half2)
    np.testing.assert_allclose(out.half1.data, -half1.data, atol=1e-6)
    names = available_recipes()
    assert names["scale"] == tmp_path / "config" / "cref-bench" / "recipes" / "scale.toml"
    assert names["relion-postprocess"].parent == SHIPPED
    assert load_method("external", recipe="scale").params() == user.params()
    with pytest.raises(MethodError, match="no such recipe .*recipes: cryoten, .*scale"):
        load_method("recipe:scael")
    with pytest.raises(MethodError, match="names no recipe"):
        load_method("recipe:")
    with pytest.raises(MethodError, match=r"unknown parameter\(s\) factr.*recipe: factor"):
        load_method("recipe:scale", factr=3)


@pytest.mark.parametrize("text, fault", [
    ('output = "x.mrc"\n', "needs a command"),
    ('command = "x"\ncolour = "red"\n', "unknown key"),
    ('command = "x"\nper_map = "yes"\n', "per_map must be true or false"),
    ('command = "x\n', "not valid TOML"),
])
def test_a_bad_recipe_names_its_file_and_fault(tmp_path, text, fault):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(MethodError, match=fault) as caught:
        read_recipe(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("name", sorted(p.stem for p in SHIPPED.glob("*.toml")))
def test_every_shipped_recipe_is_consistent(name):
    """Each shipped recipe builds (its program replaced by this Python, which exists here):
    known placeholders only, outputs that fit its input kind, a program that identifies it,
    and words for the user."""
    recipe = read_recipe(find_recipe(name))
    assert recipe.description and recipe.install and recipe.licence and recipe.note
    assert "program" in recipe.settings
    method = External(recipe=name, program=PYTHON, version_command="true")
    assert method.name == name and method.params()["recipe_text"] == recipe.text
    assert ("{map}" in method.command) == method.per_map
    assert method.needs_gpu == (name in ("deepemhancer", "emready", "cryoten"))


def test_the_recipes_command_lists_them(tmp_path, capsys):
    from cref_bench import cli

    script = _script(tmp_path, "scale.py", SCALE)
    _recipe(tmp_path / "mine", "scale", 2.0, script)
    assert cli.main(["recipes", "--recipes", str(tmp_path / "mine")]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:] if line and ":" not in line.split()[0]}
    assert set(rows) >= {"scale", "relion-postprocess", "lafter", "deepemhancer", "cryoten"}
    assert rows["scale"].split()[1:4] == ["single", "map", "unchecked"]
    assert rows["lafter"].split()[1:3] == ["pair", "missing" if not _which("lafter")
                                           else "found"]
    assert any(line.startswith("lafter: lafter not found; build it") for line in lines) \
        or _which("lafter")


def _which(name):
    import shutil

    return shutil.which(name)


def test_the_recipe_scheme_is_a_registered_spec_form():
    from cref_bench.methods.registry import available_schemes, resolve

    assert available_schemes() == {"recipe": "baselines.external.method:from_recipe"}
    target = resolve("recipe:relion-postprocess")
    assert target.func is external.from_recipe and target.args == ("relion-postprocess",)
    with pytest.raises(MethodError, match=r"path/to/file.py:Attribute, recipe:NAME"):
        load_method("no-such-method")
    with pytest.raises(MethodError, match="names its recipe already"):
        load_method("recipe:relion-postprocess", recipe="lafter")
