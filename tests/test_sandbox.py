"""The method's box: each attack of a method author on the referee fails inside the box.

Every test here would have succeeded as an attack before the box (the method ran as a plain
child process that could see the store, the referee and the network, and the referee
unpickled what it sent). The tests that need a box skip, with the reason, where this machine
cannot make one (no bubblewrap, or user namespaces disabled).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import socket
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from cref_bench.errors import MethodError
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import Denoised, Method
from cref_bench.run import sandbox
from cref_bench.run.contract import MethodFailure
from cref_bench.run.isolation import (
    BoxSettings,
    ChannelError,
    Limits,
    MethodProcess,
    check_reply,
    describe_method,
    read_npy,
)

needs_box = pytest.mark.skipif(sandbox.support().bwrap is None,
                               reason=f"no sandbox here: {sandbox.support().reason}")


def _halves(n=16):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((n, n, n)).astype(np.float32)
    return (Volume(base + rng.standard_normal((n, n, n)), 1.0),
            Volume(base + rng.standard_normal((n, n, n)), 1.0))


@pytest.fixture(scope="module")
def halves():
    return _halves()


@pytest.fixture
def store(tmp_path):
    """A stand-in for the corpus store: a folder holding a truth file the method wants."""
    folder = tmp_path / "corpus.zarr" / "entries" / "E1"
    folder.mkdir(parents=True)
    (folder / "truth").write_bytes(b"THE-TRUTH")
    return folder.parent.parent


class Probe(Method):
    """Runs ``attack(half1)`` in the box and returns its text as the note of a valid map."""

    name = "probe"

    def __init__(self, attack):
        self.attack = attack

    def denoise(self, half1, half2, mask=None):
        try:
            note = str(self.attack(half1))
        except Exception as exc:  # the attack's failure is what the test looks at
            note = f"{type(exc).__name__}: {exc}"
        return Denoised(full=half1.like(half1.data * np.float32(0.5)), note=note)


def _note(attack, halves, settings=None) -> str:
    with MethodProcess(Probe(attack), Limits(timeout=60), settings=settings) as process:
        return process.denoise(*halves, None, label="E1").note


# ---- reading the truth -------------------------------------------------------------------


@needs_box
def test_inputs_carry_a_label_not_a_store_path(halves):
    assert _note(lambda h: h.source, halves) == "E1/half1"


def _read(path):
    return lambda h: Path(path).read_bytes()


@needs_box
def test_the_store_cannot_be_read_by_its_path(store, halves):
    note = _note(_read(store / "entries" / "E1" / "truth"), halves)
    assert note.startswith("FileNotFoundError")


def _parents_view(h):
    """What the referee's process shows through /proc: its working folder, command line
    and environment (the old route to the store's path)."""
    seen = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for what in ("cmdline", "environ"):
                try:
                    seen.append(Path(f"/proc/{pid}/{what}").read_bytes().decode(errors="replace"))
                except OSError:
                    pass
            try:
                seen.append(os.readlink(f"/proc/{pid}/cwd"))
            except OSError:
                pass
    return json.dumps({"ppid": os.getppid(), "seen": seen})


@needs_box
def test_the_referee_is_invisible_through_proc(store, halves, monkeypatch):
    monkeypatch.chdir(store)  # the referee works in the store: /proc/<ppid>/cwd would show it
    note = json.loads(_note(_parents_view, halves))
    assert note["ppid"] != os.getpid()
    assert not any(str(store) in text or str(os.getpid()) == text for text in note["seen"])
    assert not any("pytest" in text for text in note["seen"])


def _walk(marker):
    def attack(h):
        found = []
        for top in ("/",):
            for folder, dirs, files in os.walk(top):
                dirs[:] = [d for d in dirs if os.path.join(folder, d) not in
                           ("/proc", "/sys", "/dev", "/usr")]
                found += [os.path.join(folder, f) for f in files if f == marker]
        return json.dumps(found)
    return attack


@needs_box
def test_walking_the_file_system_finds_no_store(store, halves):
    assert json.loads(_note(_walk("truth"), halves)) == []


@needs_box
def test_a_store_inside_a_read_only_folder_is_hidden(store, halves):
    (store.parent / "weights.bin").write_bytes(b"w")
    settings = BoxSettings(forbidden=(store,), read_only=(store.parent,))
    seen = json.loads(_note(lambda h: json.dumps([sorted(os.listdir(store)),
                                                  sorted(os.listdir(store.parent))]),
                            halves, settings))
    assert seen[0] == [] and "weights.bin" in seen[1]


def test_a_read_only_path_inside_the_store_is_refused(store, halves):
    settings = BoxSettings(forbidden=(store,), read_only=(store / "entries",))
    with pytest.raises(sandbox.SandboxError, match="would see"):
        with MethodProcess(Probe(str), settings=settings) as process:
            process.start()


# ---- the referee never runs the method's code ----------------------------------------------

PATCHER = '''
import cref_bench.metrics.scores as scores
from cref_bench.methods.protocol import Denoised, Method

scores.evaluate = lambda *a, **k: "patched"
open({marker!r}, "w").write("imported")


class Cheat(Method):
    name = "cheat"
    version = "6"

    def params(self):
        return {{"size": 3}}

    def denoise(self, half1, half2, mask=None):
        return Denoised(full=half1.like(half1.data * 2))
'''


@needs_box
def test_a_method_that_patches_the_scorer_at_import_is_never_imported_here(tmp_path, halves):
    from cref_bench.metrics import scores

    original = scores.evaluate
    code = tmp_path / "code"
    code.mkdir()
    marker = tmp_path / "imported-here"
    (code / "cheat.py").write_text(PATCHER.format(marker=str(marker)))
    before = set(sys.modules)
    facts = describe_method(f"{code / 'cheat.py'}:Cheat")
    assert facts["name"] == "cheat" and facts["version"] == "6"
    assert facts["params"] == {"size": 3} and facts["class"].endswith(":Cheat")
    assert scores.evaluate is original
    assert not marker.exists()  # the import ran only in the box, which cannot write here
    assert not [m for m in set(sys.modules) - before if "cheat" in m]
    with MethodProcess(f"{code / 'cheat.py'}:Cheat") as process:
        out = process.denoise(*halves, None)
    np.testing.assert_allclose(out.full.data, halves[0].data * 2)


def test_a_method_that_cannot_be_built_is_a_method_error(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('no weights here')\n")
    with pytest.raises(MethodError, match="no weights here"):
        describe_method(f"{tmp_path / 'broken.py'}:Anything")


# ---- the channel carries data only --------------------------------------------------------


class Gadget:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class SendsGadget(Method):
    """Writes a pickle gadget on the channel as its reply (the referee used to unpickle it)."""

    name = "sends-gadget"

    def __init__(self, marker, how):
        self.marker, self.how = marker, how

    def denoise(self, half1, half2, mask=None):
        from multiprocessing.connection import Connection

        conn = Connection(int(sys.argv[1]))
        if self.how == "reply":
            conn.send_bytes(pickle.dumps(Gadget(self.marker)))
        else:  # a valid reply whose map is an object array holding the gadget
            header = {"status": "ok", "outputs": {"full": {"voxel_size": [1, 1, 1],
                                                           "origin": [0, 0, 0]}}}
            buffer = io.BytesIO()
            np.save(buffer, np.array([Gadget(self.marker)] * 8, dtype=object).reshape(2, 2, 2),
                    allow_pickle=True)
            conn.send_bytes(json.dumps(header).encode() + b"\n" + buffer.getvalue())
        time.sleep(30)


@pytest.mark.parametrize("how", ["reply", "map"])
def test_a_pickle_gadget_on_the_channel_is_refused_not_run(tmp_path, halves, how):
    marker = tmp_path / "pwned"
    with MethodProcess(SendsGadget(str(marker), how), Limits(timeout=20)) as process:
        with pytest.raises(MethodFailure) as info:
            process.denoise(*halves, None)
    assert info.value.kind == "output" and not marker.exists()
    assert ("not JSON" if how == "reply" else "float32") in info.value.fault


@pytest.mark.parametrize("raw, words", [
    (b"\x80\x04K\x01.", "not JSON"),
    (b"[1, 2]", "not an object"),
    (b'{"status": "failed", "kind": "lucky"}', "unknown failure kind"),
    (b'{"status": "ok", "outputs": {"full": {"voxel_size": [1, 1], "origin": [0, 0, 0]}}}',
     "three finite numbers"),
    (b'{"status": "ok", "outputs": {"truth": {}}}', "must name 'full'"),
    (b'{"status": "ready", "method": {"name": ""}}', "is not a str"),
])
def test_malformed_replies_are_refused(raw, words):
    with pytest.raises(ChannelError, match=words):
        check_reply(raw)


def test_a_map_must_be_float32_of_the_input_shape():
    good = io.BytesIO()
    np.save(good, np.ones((2, 3, 4), np.float32))
    array, end = read_npy(good.getvalue(), 0, (2, 3, 4))
    assert array.shape == (2, 3, 4) and end == len(good.getvalue())
    for bad, words in ((np.ones((2, 3, 4)), "float32"), (np.ones((2, 3, 5), np.float32), "shape"),
                       (np.asfortranarray(np.ones((2, 3, 4), np.float32)), "Fortran")):
        buffer = io.BytesIO()
        np.save(buffer, bad)
        with pytest.raises(ChannelError, match=words):
            read_npy(buffer.getvalue(), 0, (2, 3, 4))
    with pytest.raises(ChannelError, match="bytes of data"):
        read_npy(good.getvalue()[:-4], 0, (2, 3, 4))


# ---- writing what it is scored against, and what it was scored ------------------------------


def _write(paths):
    def attack(h):
        outcome = {}
        for path in paths:
            try:
                with open(path, "ab") as handle:
                    handle.write(b"rewritten")
                outcome[path] = "written"
            except OSError as exc:
                outcome[path] = type(exc).__name__
        return json.dumps(outcome)
    return attack


@needs_box
def test_the_store_the_results_the_inputs_and_the_code_cannot_be_written(store, tmp_path,
                                                                         halves):
    results = tmp_path / "results"
    results.mkdir()
    (results / "scalars.csv").write_text("a,b\n")
    truth = store / "entries" / "E1" / "truth"
    targets = [str(truth), str(results / "scalars.csv"), "/box/in/x.npy",
               str(Path(__file__)), "/tmp/mine"]
    outcome = json.loads(_note(_write(targets), halves))
    assert truth.read_bytes() == b"THE-TRUTH"
    assert (results / "scalars.csv").read_text() == "a,b\n"
    assert outcome[str(truth)] == outcome[str(results / "scalars.csv")] == "FileNotFoundError"
    assert outcome["/box/in/x.npy"] == outcome[str(Path(__file__))] == "OSError"
    assert outcome["/tmp/mine"] == "written"  # its one writable folder


# ---- descendants die with the box and count against its limits -----------------------------


class Spawns(Method):
    """Leaves a double-forked ``setsid`` daemon behind (holding ``hold`` bytes), then sleeps
    ``sleep`` seconds and returns."""

    name = "spawns"

    def __init__(self, token, hold=0, sleep=0.0):
        self.token, self.hold, self.sleep = token, hold, sleep

    def denoise(self, half1, half2, mask=None):
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:  # the daemon holds its memory for as long as it lives
                hold = (f"hoard = bytearray({self.hold}); hoard[::4096] = "
                        "b'x' * len(hoard[::4096]); import time; time.sleep(300)")
                os.execvp(sys.executable, [sys.executable, "-c", hold, self.token])
            os._exit(0)
        time.sleep(self.sleep)
        return Denoised(full=half1.like(half1.data * 2))


def _survivors(token):
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if token in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


@needs_box
def test_a_double_forked_daemon_dies_with_the_box(halves):
    token = f"daemon-{os.getpid()}-{time.time_ns()}"
    with MethodProcess(Spawns(token, sleep=1.0), Limits(timeout=30)) as process:
        process.denoise(*halves, None)
        assert _survivors(token), "the daemon should run while the box does"
    deadline = time.monotonic() + 5
    while _survivors(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _survivors(token)


@needs_box
def test_a_setsid_grandchild_holding_memory_is_charged_to_the_box(halves):
    token = f"hoard-{os.getpid()}-{time.time_ns()}"
    limits = Limits(timeout=60, memory=400 * 2**20)
    with MethodProcess(Spawns(token, hold=600 * 2**20, sleep=30), limits) as process:
        with pytest.raises(MethodFailure) as info:
            process.denoise(*halves, None)
    assert info.value.kind == "memory"
    time.sleep(0.5)
    assert not _survivors(token)


# ---- the referee's clock --------------------------------------------------------------------


class StopsReferee(Method):
    """SIGSTOPs the referee (whose process id it was told), overruns, then SIGCONTs it."""

    name = "stops-referee"

    def __init__(self, referee, sleep):
        self.referee, self.sleep = referee, sleep

    def denoise(self, half1, half2, mask=None):
        try:
            os.kill(self.referee, signal.SIGSTOP)
            note = "stopped"
        except OSError as exc:
            note = type(exc).__name__
        time.sleep(self.sleep)
        try:
            os.kill(self.referee, signal.SIGCONT)
        except OSError:
            pass
        return Denoised(full=half1.like(half1.data * 2), note=note)


@needs_box
def test_the_box_cannot_stop_the_referee(halves):
    with MethodProcess(StopsReferee(os.getpid(), 0.0), Limits(timeout=30)) as process:
        assert process.denoise(*halves, None).note == "ProcessLookupError"


@needs_box
def test_the_time_limit_holds_against_a_box_that_stops_the_referee(halves):
    with MethodProcess(StopsReferee(os.getpid(), 8.0), Limits(timeout=1.5)) as process:
        process.start()
        assert process.facts["name"] == "stops-referee"
        start = time.monotonic()
        with pytest.raises(MethodFailure) as info:
            process.denoise(*halves, None)
    assert info.value.kind == "timeout" and time.monotonic() - start < 5


# ---- no network ---------------------------------------------------------------------------


def _connect(port):
    def attack(h):
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return "connected"
    return attack


@needs_box
def test_the_box_has_no_network_unless_given(halves):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert _note(_connect(port), halves).startswith(("OSError", "ConnectionRefused"))
        assert _note(_connect(port), halves, BoxSettings(network=True)) == "connected"


@needs_box
def test_methods_imports_a_third_party_method_only_in_a_box(tmp_path, monkeypatch, capsys):
    from cref_bench import cli
    from cref_bench.commands import methods as methods_cmd
    from cref_bench.metrics import scores

    original = scores.evaluate
    marker = tmp_path / "imported-here"
    (tmp_path / "sneaky_mod.py").write_text(PATCHER.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(methods_cmd, "available_methods", lambda: {"sneaky": "sneaky_mod:Cheat"})
    assert cli.main(["methods", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "ok" and row["version"] == "6" and row["name"] == "sneaky"
    assert "sneaky_mod" not in sys.modules and scores.evaluate is original
    assert not marker.exists()


def test_without_a_sandbox_the_method_runs_plain_with_one_warning(halves, monkeypatch):
    monkeypatch.setattr(sandbox, "support",
                        lambda: sandbox.Support(None, "no bubblewrap here", False, None))
    sandbox._warn_once.cache_clear()
    with pytest.warns(sandbox.SandboxUnavailableWarning, match="no bubblewrap here") as caught:
        with MethodProcess(Probe(lambda h: h.source), Limits(timeout=60)) as process:
            first = process.denoise(*halves, None, label="E1")
            process.denoise(*halves, None, label="E2")
            assert process.sandbox == "none"
    assert first.note == "E1/half1"  # the inputs are labelled all the same
    assert len([w for w in caught if w.category is sandbox.SandboxUnavailableWarning]) == 1
    sandbox._warn_once.cache_clear()


@needs_box
def test_the_bwrap_command_binds_no_home_and_no_store(tmp_path, store):
    spec = sandbox.BoxSpec(inputs=tmp_path, read_only=(Path(__file__).resolve().parent,),
                           forbidden=(store,), scratch_bytes=2**20)
    argv = sandbox.bwrap_command(spec, ["true"], sandbox.support())
    bound = {argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")}
    assert str(store) not in " ".join(argv) and str(Path.home()) not in bound
    assert "--unshare-all" in argv and "--die-with-parent" in argv and "--share-net" not in argv
    assert argv[argv.index("--size") + 1] == str(2**20)
