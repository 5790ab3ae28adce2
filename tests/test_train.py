"""The crefDenoiser trainer: its losses, schedule, a short CPU run that denoises, resuming
bit-identically, the metrics log, the checkpoints the method loads, and the command line."""

import csv
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from baselines.crefdenoiser.checkpoint import load_weights, read_weights_file
from baselines.crefdenoiser.losses import network_input, patch_losses
from baselines.crefdenoiser.network import CrefUNet
from baselines.crefdenoiser.patches import PatchDataset
from baselines.crefdenoiser.train import (
    METRICS_COLUMNS,
    NoValidationWarning,
    TrainConfig,
    evenly_spaced,
    holdout_split,
    learning_rate,
    load_checkpoint,
    train,
)
from cref_bench import cli
from cref_bench.corpus import splits
from cref_bench.corpus.reader import open_corpus
from cref_bench.maps.volume import Volume
from cref_bench.metrics.scores import Spectra, reference_cref_loss
from cref_bench.metrics.shells import reference_shells
from dataset_builder.store import create_store, finalize, write_entry

BOX, PATCH, NOISE = 64, 32, 1.0
TRAIN_IDS = [f"toy-{i}" for i in range(100) if splits.split_of(f"toy-{i}") == "train"][:2]
VALID_IDS = [f"toy-{i}" for i in range(100) if splits.split_of(f"toy-{i}") == "valid"][:1]
QUICK = dict(epochs=3, batch_size=4, lr=1e-3, steps_per_epoch=4, progress=False)


def _write_corpus(path, ids):
    """A store of smooth random particles (soft sphere) plus white noise in each half."""
    store = create_store(path, source="trainer test phantoms", patch_size=PATCH)
    radius = np.sqrt(((np.indices((BOX,) * 3) - (BOX - 1) / 2) ** 2).sum(axis=0))
    particle = 1 / (1 + np.exp((radius - 22) / 1.5))
    mask = Volume((1 / (1 + np.exp((radius - 26) / 1.5))).astype(np.float32))
    for seed, entry_id in enumerate(ids):
        rng = np.random.default_rng(seed)
        truth = ndimage.gaussian_filter(rng.standard_normal((BOX,) * 3), 2.0)
        truth = (truth / truth.std() * particle).astype(np.float32)
        halves = [Volume((truth + NOISE * rng.standard_normal(truth.shape)).astype(np.float32))
                  for _ in range(2)]
        write_entry(store, entry_id, half1=halves[0], half2=halves[1], mask=mask,
                    truth=Volume(truth))
    finalize(store)
    return str(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _write_corpus(tmp_path_factory.mktemp("corpus") / "toy.zarr", TRAIN_IDS + VALID_IDS)


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
        TrainConfig(corpus="c", out="o", lr=1e-3), 2, 3, 4))
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
    bfloat16 autocast and an ablation loss, the other code paths of a step)."""
    corpus = _write_corpus(tmp_path / "train-only.zarr", TRAIN_IDS[:1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(TrainConfig(corpus=corpus, out=str(tmp_path / "out"), epochs=1,
                                   batch_size=2, steps_per_epoch=1, loss="n2n-fsc", amp=True,
                                   progress=False))
    assert [str(w.message) for w in caught if w.category is NoValidationWarning] == [
        f"{corpus}: no valid patches; validating on 1 held-out train patch(es) instead"]
    (row,) = result.history
    assert row["step"] == 1 and 0 < row["valid_loss"] < 2 and np.isfinite(row["train_loss"])
    assert read_weights_file(result.best)[1]["loss"] == "n2n-fsc"


@pytest.mark.slow
def test_two_processes_match_one_with_the_whole_batch(run, corpus, tmp_path):
    """torchrun with two CPU processes (gloo) of batch 2 sees, step by step, the same four
    patches as one process of batch 4, so its first epoch moves the weights the same way up
    to rounding (a process of batch 2 alone differs by ~100 %)."""
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
    assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)
    assert mine["valid_loss"] == pytest.approx(theirs["valid_loss"], rel=3e-3)
    torch.manual_seed(0)
    initial = CrefUNet().state_dict()
    two, one = _weights(out / "last.pt"), _weights(run.out / "epoch-0001.pt")
    moved_two, moved_one = (torch.cat([(w[k] - initial[k]).flatten() for k in initial])
                            for w in (two, one))
    assert float((moved_two - moved_one).norm() / moved_one.norm()) < 0.05
