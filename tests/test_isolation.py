"""The method contract and the method process: every misbehaviour ends as a named failure."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import Denoised, Method, SingleMapMethod
from cref_bench.run.contract import MethodFailure, call_method, check_output, digest
from cref_bench.run.isolation import Limits, MethodProcess


def _halves(n=24, seed=0):
    rng = np.random.default_rng(seed)
    signal_ = rng.standard_normal((n, n, n)).astype(np.float32)
    return (Volume(signal_ + rng.standard_normal((n, n, n)), 1.2, (1.0, 2.0, 3.0)),
            Volume(signal_ + rng.standard_normal((n, n, n)), 1.2, (1.0, 2.0, 3.0)))


class Halve(SingleMapMethod):
    name = "halve"

    def denoise_map(self, volume, mask=None):
        return volume.like(volume.data * np.float32(0.5))


class InPlace(SingleMapMethod):
    name = "in-place"

    def denoise_map(self, volume, mask=None):
        volume.data[...] *= 0.5
        return volume


class OverwriteHalves(Method):
    """Makes the halves equal to their average, then returns the average: C_ref RMSE 0."""

    name = "overwrite-halves"

    def denoise(self, half1, half2, mask=None):
        average = (half1.data + half2.data) / 2
        for half in (half1, half2):
            half.data.flags.writeable = True
            half.data[...] = average
        return Denoised(full=half1.like(average))


class Returns(Method):
    """Returns whatever ``make(half1)`` builds."""

    name = "returns"

    def __init__(self, make):
        self.make = make

    def denoise(self, half1, half2, mask=None):
        return self.make(half1)


class SleepsWithMask(Halve):
    """Hangs on an entry with a mask, works on one without."""

    name = "sleeps-with-mask"

    def denoise(self, half1, half2, mask=None):
        if mask is not None:
            time.sleep(60)
        return super().denoise(half1, half2, mask)


class Exits(Method):
    name = "exits"

    def denoise(self, half1, half2, mask=None):
        print("about to leave", flush=True)
        os._exit(7)


class KillsItself(Method):
    name = "kills-itself"

    def denoise(self, half1, half2, mask=None):
        os.kill(os.getpid(), signal.SIGKILL)


class Hogs(Method):
    name = "hogs"

    def denoise(self, half1, half2, mask=None):
        hoard = []
        while True:
            hoard.append(np.ones(2**24))


class SeedEcho(Method):
    name = "seed-echo"

    def denoise(self, half1, half2, mask=None):
        return Denoised(full=half1.like(half1.data + np.float32(np.random.random())))


WRONG_OUTPUTS = {
    "not a Denoised": (lambda h: h.data, "not a cref_bench.methods.protocol.Denoised"),
    "bare array": (lambda h: Denoised(full=h.data), "is a ndarray, not a cref_bench.Volume"),
    "wrong shape": (lambda h: Denoised(full=Volume(h.data[:-1])), "not on the input grid"),
    "wrong voxel": (lambda h: Denoised(full=Volume(h.data, 1.0, h.origin)),
                    "not on the input grid"),
    "NaN": (lambda h: Denoised(full=h.like(np.where(h.data > 2, np.nan, h.data))), "non-finite"),
    "inf": (lambda h: Denoised(full=h.like(np.full(h.shape, np.inf))), "non-finite"),
    "constant": (lambda h: Denoised(full=h.like(np.zeros(h.shape))), "is constant"),
    "one half": (lambda h: Denoised(full=h, half1=h), "one denoised half-map without the other"),
}


@pytest.mark.parametrize("case", sorted(WRONG_OUTPUTS))
def test_wrong_outputs_are_blamed_on_the_method(case):
    half1, half2 = _halves()
    make, words = WRONG_OUTPUTS[case]
    with pytest.raises(MethodFailure) as info:
        call_method(Returns(make), half1, half2, None)
    assert info.value.kind == "output" and info.value.method == "returns"
    assert words in str(info.value)


def test_in_place_writes_are_refused_and_named():
    half1, half2 = _halves()
    before = digest(half1)
    with pytest.raises(MethodFailure) as info:
        call_method(InPlace(), half1, half2, None)
    assert info.value.kind == "error" and "read-only" in str(info.value)
    assert digest(half1) == before


def test_overwriting_the_halves_is_caught_by_the_digest():
    half1, half2 = _halves()
    with pytest.raises(MethodFailure) as info:
        call_method(OverwriteHalves(), half1, half2, None)
    assert info.value.kind == "inputs-modified"
    assert "half1, half2" in str(info.value)


def test_a_good_method_passes_with_inputs_unchanged():
    half1, half2 = _halves()
    out = call_method(Halve(), half1, half2, None)
    assert check_output("halve", out, half1) is out
    np.testing.assert_allclose(out.full.data, (half1.data + half2.data) / 4, rtol=1e-6)
    assert half1.data.flags.writeable  # the caller's own arrays keep their flags


@pytest.fixture(scope="module")
def halves():
    return _halves()


def _fails(method, halves, limits=None):
    with MethodProcess(method, limits or Limits(timeout=20)) as process:
        with pytest.raises(MethodFailure) as info:
            process.denoise(*halves, None, label="entry")
    return info.value


def test_method_process_returns_what_the_method_made(halves):
    with MethodProcess(Halve()) as process:
        out = process.denoise(*halves, None)
        again = process.denoise(*halves, None)
    expected = (halves[0].data + halves[1].data) / 4
    np.testing.assert_allclose(out.full.data, expected, rtol=1e-6)
    np.testing.assert_array_equal(again.half2.data, halves[1].data * np.float32(0.5))
    assert out.full.voxel_size == halves[0].voxel_size and out.full.origin == halves[0].origin


def test_method_process_seeds_each_entry(halves):
    with MethodProcess(SeedEcho()) as process:
        a = process.denoise(*halves, None, seed=5).full.data
        b = process.denoise(*halves, None, seed=6).full.data
        c = process.denoise(*halves, None, seed=5).full.data
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)


def test_inputs_in_the_method_process_cannot_be_written(halves):
    for method in (InPlace(), OverwriteHalves()):
        failure = _fails(method, halves)
        assert failure.kind in ("error", "inputs-modified")
        assert "read-only" in failure.fault or "WRITEABLE" in failure.fault


def test_timeout_stops_a_hanging_method_and_the_next_entry_runs(halves):
    mask = halves[0].like(np.ones(halves[0].shape))
    with MethodProcess(SleepsWithMask(), Limits(timeout=1.0)) as process:
        start = time.monotonic()
        with pytest.raises(MethodFailure) as info:
            process.denoise(*halves, mask)
        assert info.value.kind == "timeout" and time.monotonic() - start < 10
        assert process.denoise(*halves, None).full.shape == halves[0].shape


@pytest.mark.parametrize("method, words", [(Exits(), "exited with status 7"),
                                           (KillsItself(), "killed by SIGKILL")])
def test_a_dying_method_is_recorded_with_its_last_output(method, halves, words):
    failure = _fails(method, halves)
    assert failure.kind == "crashed" and words in failure.fault
    if isinstance(method, Exits):
        assert "about to leave" in failure.fault


def test_memory_limit_stops_a_hoarding_method(halves):
    failure = _fails(Hogs(), halves, Limits(timeout=60, memory=600 * 2**20))
    assert failure.kind == "memory" and "limit is 0.59 GiB" in failure.fault


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        Limits(timeout=0)
    with pytest.raises(ValueError):
        Limits(memory=-1)


@pytest.mark.parametrize("method, limits, kind", [
    (Hogs(), Limits(timeout=60, memory=600 * 2**20), "memory"),
    (SleepsWithMask(), Limits(timeout=1.0), "timeout")], ids=["memory", "timeout"])
def test_limits_hold_while_the_parent_is_busy_elsewhere(method, limits, kind, halves):
    """Between submit and collect the parent scores another entry: the watcher thread
    enforces the limits meanwhile, killing the child before the parent asks for it."""
    mask = halves[0].like(np.ones(halves[0].shape))
    with MethodProcess(method, limits) as process:
        process.submit(*halves, mask)
        child = process._box.process
        deadline = time.monotonic() + 30
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # busy elsewhere: nobody waits for the child here
        assert child.poll() is not None, "the child outlived its limit unattended"
        with pytest.raises(MethodFailure) as info:
            process.collect()
        assert info.value.kind == kind


def test_submit_then_collect_one_entry_at_a_time(halves):
    with MethodProcess(Halve()) as process:
        with pytest.raises(RuntimeError, match="no entry"):
            process.collect()
        process.submit(*halves, None)
        with pytest.raises(RuntimeError, match="collect"):
            process.submit(*halves, None)
        average = (halves[0].data + halves[1].data) / 2
        np.testing.assert_allclose(process.collect().full.data, average * 0.5, rtol=1e-6)


class Chatty(Method):
    """Prints ``megabytes`` MiB to its standard output and as many to its standard error, then
    doubles the map."""

    name = "chatty"

    def __init__(self, megabytes: int):
        self.megabytes = megabytes

    def denoise(self, half1, half2, mask=None):
        import sys

        line = "x" * 1023 + "\n"
        for stream in (sys.stdout, sys.stderr):
            for _ in range(self.megabytes * 1024):
                stream.write(line)
            stream.flush()
        return Denoised(full=half1.like(half1.data * 2))


def test_a_box_that_prints_without_end_fills_its_log_only_to_the_limit(halves, tmp_path,
                                                                       monkeypatch):
    from cref_bench.run import box_log

    monkeypatch.setattr(box_log, "LOG_LIMIT_BYTES", 2**20)
    log = tmp_path / "method.log"
    with MethodProcess(Chatty(3), Limits(timeout=60), log=log) as process:
        out = process.denoise(*halves, None)
        np.testing.assert_array_equal(out.full.data, halves[0].data * 2)
    text = log.read_bytes()
    assert 2**20 <= len(text) < 2**20 + 1000
    assert text.rstrip().endswith(b"a box's log keeps at most 1048576 bytes]")
    dropped = int(text.rsplit(b"[cref-bench: ", 1)[1].split()[0])
    assert dropped == 6 * 2**20 + len("== \n") - 2**20
