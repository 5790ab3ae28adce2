"""The crefDenoiser trainer: its losses, schedule, step options (precision, compilation), a
short CPU run that denoises, resuming bit-identically, the metrics log, the checkpoints the
method loads, and the command line."""

import csv
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from baselines.crefdenoiser import step as step_module
from baselines.crefdenoiser.checkpoint import load_weights, read_weights_file
from baselines.crefdenoiser.cref_loss import cref_loss
from baselines.crefdenoiser.losses import network_input, patch_losses
from baselines.crefdenoiser.network import CrefUNet
from baselines.crefdenoiser.patches import PatchDataset
from baselines.crefdenoiser.step import TrainStep, step_options
from baselines.crefdenoiser.train import (
    METRICS_COLUMNS,
    NoValidationWarning,
    TrainConfig,
    evenly_spaced,
    holdout_split,
    initial_learning_rate,
    learning_rate,
    load_checkpoint,
    train,
)
from cref_bench import cli
from cref_bench.corpus.reader import open_corpus
from cref_bench.maps.volume import Volume
from cref_bench.metrics.scores import Spectra, reference_cref_loss
from cref_bench.metrics.shells import reference_shells
from tests.toy_corpus import ids_of, write_toy_corpus

TRAIN_IDS = ids_of("train", 2)
VALID_IDS = ids_of("valid", 1)
QUICK = dict(epochs=3, batch_size=4, lr=1e-3, steps_per_epoch=4, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_toy_corpus(tmp_path_factory.mktemp("corpus") / "toy.zarr", TRAIN_IDS + VALID_IDS)


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    """An uninterrupted three-epoch run."""
    out = tmp_path_factory.mktemp("run")
    return train(TrainConfig(corpus=corpus, out=str(out), **QUICK))


def _batch(corpus, n=3):
    data = PatchDataset(corpus, "train", progress=False)
    items = [data[i] for i in range(n)]
    return [torch.stack(parts) for parts in zip(*items)]


def test_cref_loss_is_the_reference_loss(corpus):
    half1, half2, _ = _batch(corpus)
    torch.manual_seed(0)
    model = CrefUNet()
    per_patch = patch_losses("cref", model, half1, half2)
    with torch.no_grad():
        denoised = model((half1 + half2) / 2).numpy()
    # The dataset's halves carry the mask already, so the reference is given no mask.
    expected = [reference_cref_loss(denoised[i, 0], half1.numpy()[i, 0], half2.numpy()[i, 0])
                for i in range(len(denoised))]
    np.testing.assert_allclose(per_patch.detach().numpy(), expected, rtol=1e-4, atol=1e-5)
    assert min(expected) > 0.01  # an untrained network is far from the target


def test_noise_to_noise_losses(corpus):
    half1, half2, _ = _batch(corpus, 2)
    model = CrefUNet()
    with torch.no_grad():
        denoised = model(half1).numpy()
        l2 = patch_losses("n2n-l2", model, half1, half2).numpy()
        fsc = patch_losses("n2n-fsc", model, half1, half2).numpy()
    np.testing.assert_allclose(l2, ((denoised - half2.numpy()) ** 2).mean(axis=(1, 2, 3, 4)),
                               rtol=1e-5)
    shells = reference_shells(half1.shape[-3:])
    for i in range(2):
        spectra = Spectra(Volume(half2.numpy()[i, 0]), shells=shells)
        spectra.add("D", Volume(denoised[i, 0]))
        spectra.add("M2", Volume(half2.numpy()[i, 0]))
        assert fsc[i] == pytest.approx(1 - spectra.fsc("D", "M2").value.mean(), abs=1e-5)
    assert torch.equal(network_input("n2n-fsc", half1, half2), half1)
    with pytest.raises(ValueError, match="unknown loss"):
        patch_losses("l1", model, half1, half2)


def test_learning_rate_decays_continuously():
    config = TrainConfig(corpus="c", out="o", lr=3e-4, lr_decay=0.7, lr_decay_epochs=10)
    assert learning_rate(config, 0, 0, 5) == 3e-4
    assert learning_rate(config, 10, 0, 5) == pytest.approx(3e-4 * 0.7)
    assert learning_rate(config, 20, 0, 5) == pytest.approx(3e-4 * 0.49)
    assert learning_rate(config, 4, 3, 6) == pytest.approx(3e-4 * 0.7 ** 0.45)
    rates = [learning_rate(config, e, k, 4) for e in range(3) for k in range(4)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert learning_rate(config, 10, 0, 5, processes=4) == pytest.approx(3e-4 * 0.7 * 2)


def test_learning_rate_follows_the_global_batch():
    """``lr`` is the rate of a batch of 6; the square-root rule by default."""
    def rate(batch, scaling="sqrt", processes=1):
        config = TrainConfig(corpus="c", out="o", lr=3e-4, batch_size=batch,
                             lr_scaling=scaling)
        return initial_learning_rate(config, processes)

    assert rate(6) == rate(6, "linear") == rate(6, "none") == 3e-4
    assert rate(24) == pytest.approx(6e-4) and rate(24, "linear") == pytest.approx(1.2e-3)
    assert rate(24, "none") == 3e-4
    assert rate(3, processes=8) == rate(24)  # the global batch counts
    with pytest.raises(ValueError, match="unknown lr_scaling"):
        TrainConfig(corpus="c", out="o", lr_scaling="cubic").check()


def test_step_options_resolve_per_device(monkeypatch):
    cpu = step_options(torch.device("cpu"))
    assert (cpu.precision, cpu.compile, cpu.memory_format) == (
        "float32", "none", torch.channels_last_3d)
    assert not (cpu.fused_adam or cpu.cudnn_benchmark or cpu.pin_memory) and cpu.workers == 0
    assert step_options(torch.device("cpu"), precision="bfloat16", workers=3).workers == 3
    with pytest.raises(ValueError, match="float16 autocast needs a CUDA device"):
        step_options(torch.device("cpu"), precision="float16")
    with pytest.raises(ValueError, match="unknown compile mode"):
        step_options(torch.device("cpu"), compile="fast")
    # A CUDA device, described without one: 12 usable CPUs, bfloat16 supported.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(12)), raising=False)
    cuda = torch.device("cuda", 0)
    gpu = step_options(cuda, compile="reduce-overhead")
    assert (gpu.precision, gpu.compile, gpu.memory_format) == (
        "bfloat16", "reduce-overhead", torch.contiguous_format)
    assert gpu.fused_adam and gpu.cudnn_benchmark and gpu.pin_memory and gpu.workers == 11
    assert step_options(cuda, local_processes=4).workers == 2
    assert step_options(cuda, precision="float32").precision == "float32"
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert step_options(cuda).workers == step_module.MAX_WORKERS
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert step_options(cuda).precision == "float32"
    assert step_options(cuda, precision="float16").precision == "float16"
    with pytest.raises(ValueError, match="does not support bfloat16"):
        step_options(cuda, precision="bfloat16")


def _short_run(half1, half2, steps=4, **options):
    """Per-step mean losses of ``steps`` steps from the same seed on the same batch."""
    torch.manual_seed(0)
    device = torch.device("cpu")
    runner = TrainStep(CrefUNet(), "cref", step_options(device, **options), device, lr=3e-4)
    return [float(runner(half1, half2, 3e-4).mean()) for _ in range(steps)], runner


def test_bfloat16_steps_follow_float32_with_the_loss_in_float32(corpus):
    """bfloat16 autocast runs the network in bfloat16 and the loss in float32; its losses
    follow the float32 steps' within bounds set by bfloat16's rounding.

    bfloat16 keeps 8 significant bits: each value the network computes is rounded to within
    2^-9 ≈ 2e-3 of itself, and a patch's loss, a mean over 48 shells of correlations over
    many voxels each, averages those errors down, so the first step's loss (same weights) is
    within 2e-3 of float32's (measured: 3e-6). The steps after it start from weights that
    Adam moved by ±lr in directions that bfloat16 sets differently wherever a gradient
    component is within bfloat16's error of zero, and drift apart (measured over 4 steps at
    lr 3e-4: 5e-3 at most); 2 % bounds them, 15 times less than the 30 % by which the
    untrained network's loss falls over those steps.
    """
    half1, half2, _ = _batch(corpus, 2)
    exact, _ = _short_run(half1, half2)
    fast, runner = _short_run(half1, half2, precision="bfloat16")
    assert fast[0] == pytest.approx(exact[0], rel=2e-3)
    np.testing.assert_allclose(fast, exact, rtol=2e-2)
    assert exact[-1] < 0.8 * exact[0]
    with runner.autocast:
        denoised = runner.net(network_input("cref", half1, half2).contiguous(
            memory_format=torch.channels_last_3d))
    assert denoised.dtype == torch.bfloat16
    losses = runner.losses(half1, half2)
    assert losses.dtype == torch.float32
    assert torch.equal(losses, cref_loss(denoised.float(), half1, half2, reduction="none"))


@pytest.mark.skipif(os.environ.get("CREF_BENCH_COMPILE_TESTS") != "1",
                    reason="torch.compile of the network takes about 150 s per mode on 2 CPU "
                           "cores (a minute with a warm compile cache); set "
                           "CREF_BENCH_COMPILE_TESTS=1 to run it")
def test_compiled_steps_equal_eager_steps(corpus):
    """A compiled step equals the eager one up to rounding: float32 to 1e-5 over 4 steps (the
    compiler may fuse the activations and reorder their sums; measured: equal), and a compiled
    bfloat16 first step to float32 eager within bfloat16's bound of the test above."""
    half1, half2, _ = _batch(corpus, 2)
    exact, _ = _short_run(half1, half2)
    compiled, _ = _short_run(half1, half2, compile="default")
    np.testing.assert_allclose(compiled, exact, rtol=1e-5)
    fast, _ = _short_run(half1, half2, steps=1, compile="default", precision="bfloat16")
    assert fast[0] == pytest.approx(exact[0], rel=2e-3)


def test_holdout_and_limits_are_deterministic():
    kept, held = holdout_split(25, 0.1)
    assert len(held) == 2 and len(kept) == 23
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(25))
    np.testing.assert_array_equal(holdout_split(25, 0.1)[1], held)
    assert len(holdout_split(2, 0.01)[1]) == 1
    with pytest.raises(ValueError, match="too few"):
        holdout_split(1, 0.1)
    assert evenly_spaced(10, 3).tolist() == [0, 4, 9]
    assert evenly_spaced(4, None).tolist() == [0, 1, 2, 3]


def test_bad_settings_are_refused(corpus, tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        train(TrainConfig(corpus=corpus, out=str(tmp_path), batch_size=0))
    with pytest.raises(ValueError, match="lr_decay"):
        train(TrainConfig(corpus=corpus, out=str(tmp_path), lr_decay=1.5))


def test_training_lowers_the_loss_and_denoises(run, corpus):
    valid = [row["valid_loss"] for row in run.history]
    assert len(valid) == 3 and valid[-1] < 0.7 * valid[0]
    entry = open_corpus(corpus).entry(VALID_IDS[0])
    mask = entry.mask.data
    halves = []
    for name in ("half1", "half2"):
        mean, std = entry.standardisation(name)
        halves.append((getattr(entry, name).data - mean) / std * mask)
    average = (halves[0] + halves[1]) / 2
    with torch.no_grad():
        denoised = load_weights(run.last)(torch.from_numpy(average)[None, None])[0, 0].numpy()
    inside = mask > 0.5
    truth = entry.truth.data[inside]
    noisy_cc = np.corrcoef(average[inside], truth)[0, 1]
    denoised_cc = np.corrcoef(denoised[inside], truth)[0, 1]
    assert denoised_cc > noisy_cc + 0.1, (noisy_cc, denoised_cc)


def test_metrics_log_and_checkpoints(run):
    with open(run.out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == METRICS_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    for row, logged in zip(run.history, rows):
        assert float(logged["valid_loss"]) == pytest.approx(row["valid_loss"], rel=1e-12)
    assert float(rows[-1]["lr"]) == pytest.approx(learning_rate(
        TrainConfig(corpus="c", out="o", lr=1e-3, batch_size=4), 2, 3, 4))
    assert sorted(p.name for p in run.out.glob("*.pt")) == [
        "best.pt", "epoch-0001.pt", "epoch-0002.pt", "epoch-0003.pt", "last.pt"]
    assert not list(run.out.glob(".*"))  # no temporary files left
    best = int(np.argmin([r["valid_loss"] for r in run.history])) + 1
    assert run.best_epoch == best
    # best.pt and last.pt are weights files the crefdenoiser method reads
    best_state, meta = read_weights_file(run.best)
    epoch_state, _ = read_weights_file(run.out / f"epoch-{best:04d}.pt")
    assert meta["epoch"] == best and meta["loss"] == "cref"
    assert all(torch.equal(best_state[k], epoch_state[k]) for k in best_state)
    assert load_checkpoint(run.last)["training"]["epoch"] == 3


def _weights(path):
    return read_weights_file(path)[0]


@pytest.mark.slow
def test_resume_matches_an_uninterrupted_run(run, corpus, tmp_path, capsys):
    out = str(tmp_path / "resumed")
    common = ["--corpus", corpus, "--out", out, "--batch-size", "4", "--lr", "1e-3",
              "--steps-per-epoch", "4", "--no-progress"]
    assert cli.main(["train", *common, "--epochs", "1"]) == 0
    assert cli.main(["train", *common, "--epochs", "2"]) == 2  # refuses to overwrite
    assert "--resume" in capsys.readouterr().err
    assert cli.main(["train", *common, "--epochs", "3", "--resume", "--seed", "5"]) == 2
    assert "seed" in capsys.readouterr().err
    assert cli.main(["train", *common, "--epochs", "3", "--resume"]) == 0
    resumed, uninterrupted = _weights(tmp_path / "resumed" / "last.pt"), _weights(run.last)
    assert all(torch.equal(resumed[key], value) for key, value in uninterrupted.items())
    history = load_checkpoint(tmp_path / "resumed" / "last.pt")["training"]["history"]
    for mine, theirs in zip(history, run.history):
        assert (mine["train_loss"], mine["valid_loss"]) == (theirs["train_loss"],
                                                             theirs["valid_loss"])
    with open(tmp_path / "resumed" / "metrics.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 3


def test_holdout_when_there_is_no_valid_split(tmp_path):
    """A train-only corpus warns and validates on held-out train patches (here also with
    bfloat16 autocast, an ablation loss and a loader worker, the other code paths of a
    step)."""
    corpus = write_toy_corpus(tmp_path / "train-only.zarr", TRAIN_IDS[:1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(TrainConfig(corpus=corpus, out=str(tmp_path / "out"), epochs=1,
                                   batch_size=2, steps_per_epoch=1, loss="n2n-fsc",
                                   precision="bfloat16", workers=1, progress=False))
    assert [str(w.message) for w in caught if w.category is NoValidationWarning] == [
        f"{corpus}: no valid patches; validating on 1 held-out train patch(es) instead"]
    (row,) = result.history
    assert row["step"] == 1 and 0 < row["valid_loss"] < 2 and np.isfinite(row["train_loss"])
    meta = read_weights_file(result.best)[1]
    assert (meta["loss"], meta["precision"]) == ("n2n-fsc", "bfloat16")


@pytest.mark.slow
def test_two_processes_match_one_with_the_whole_batch(run, corpus, tmp_path):
    """torchrun with two CPU processes (gloo) of batch 2 sees, step by step, the same four
    patches as one process of batch 4, so its first epoch moves the weights the same way up
    to rounding.

    The bounds come from what rounding can do here, not from one machine's numbers. Two
    processes sum each gradient component (n = 4 x 32³ = 131,072 terms) in another order
    than one process (and oneDNN's order changes with the SIMD width and thread count), so
    each component carries a rounding error of about u·sqrt(n) ≈ 2e-5 of its size (u = 2^-24).
    Adam's first step moves every weight by ±lr whatever its gradient's size, so the few
    components whose true value lies within that error (about N·2e-5 ≈ 5 of N = 322,881)
    may move by lr the other way: the weights then differ by 2·lr·sqrt(F) for F such flips,
    against the 2.26·lr·sqrt(N) every run moves them in 4 steps, i.e. by about sqrt(F / N),
    and the later steps' losses follow to first order. Measured on the 2-core development
    machine, other reduction orders (one process with 1 instead of 2 threads; the two
    processes): train loss 3.4e-5 and 2.7e-5 apart (relative), valid loss 3.3e-4 and 1.8e-4,
    weights' movement 9.1e-3 and 5.2e-3 (F = 19 and 0 weights off by more than lr); another
    machine's two processes: train loss 1.0e-4. The bounds below allow F a hundred times
    the estimate (about 2,000 flips: sqrt(F / N) ≈ 0.08, losses ten times the measured
    spread), and each stays at least 7x below what the test must catch: one process of batch
    2 alone is 1.0e-2 off in train loss, 3.8e-2 in valid loss and 0.97 in the weights.
    """
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "cref_bench.cli", "train", "--corpus", corpus,
               "--out", str(out), "--epochs", "1", "--batch-size", "2", "--lr", "1e-3",
               "--steps-per-epoch", "4", "--device", "cpu", "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (mine,) = load_checkpoint(out / "last.pt")["training"]["history"]
    theirs = run.history[0]
    assert mine["step"] == theirs["step"] == 4
    assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-3)
    assert mine["valid_loss"] == pytest.approx(theirs["valid_loss"], rel=5e-3)
    torch.manual_seed(0)
    initial = CrefUNet().state_dict()
    two, one = _weights(out / "last.pt"), _weights(run.out / "epoch-0001.pt")
    moved_two, moved_one = (torch.cat([(w[k] - initial[k]).flatten() for k in initial])
                            for w in (two, one))
    assert float((moved_two - moved_one).norm() / moved_one.norm()) < 0.1
