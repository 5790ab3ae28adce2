"""Training the crefDenoiser network on a corpus store: the C_ref trainer.

:func:`train` fits :class:`~baselines.crefdenoiser.network.CrefUNet` to the patch index of a
corpus (:class:`cref_bench.corpus.reader.PatchDataset`, ``train`` split with random cube rotations)
with one of the losses of :mod:`baselines.crefdenoiser.losses` (the published C_ref loss by
default), and validates on the ``valid`` split after every epoch.

* **Optimiser.** Adam. ``lr`` (3e-4 by default) is the rate for a batch of
  :data:`REFERENCE_BATCH` patches; the global batch ``B`` (``batch_size`` times the processes)
  gets ``lr0 = lr * sqrt(B / REFERENCE_BATCH)`` (``lr_scaling="sqrt"``, the square-root rule
  for Adam: the update's noise stays the same as the batch grows), ``lr * B /
  REFERENCE_BATCH`` (``"linear"``) or ``lr`` (``"none"``). The rate then decays continuously,
  step by step: ``lr(t) = lr0 * lr_decay ** (t / lr_decay_epochs)`` with ``t = epoch + k / K``
  (``epoch`` counted from 0, ``k`` the step within the epoch, ``K`` the steps per epoch),
  so it is multiplied by 0.7 every 10 epochs without jumps. It is a pure function of the
  step counters, which the checkpoint keeps.
* **The step** (:mod:`baselines.crefdenoiser.step`): bfloat16 autocast by default on GPUs that
  support it, float32 on the CPU (``precision``), the loss and its FFTs in float32, cuDNN
  autotuning, the layout measured fastest on each device, fused Adam on CUDA, and
  ``torch.compile`` on request (``compile``).
* **Loading.** Patches are read, standardised, masked and rotated by ``workers`` DataLoader
  processes (by default several on CUDA, none on the CPU; see
  :func:`~baselines.crefdenoiser.step.auto_workers`), each keeping two batches ready, into
  pinned memory on CUDA.
* **Validation.** The mean per-patch loss over the ``valid`` patches, without
  augmentation. When the corpus has no ``valid`` patches (tiny corpora) a warning is given
  and a deterministic hold-out of the ``train`` patches replaces it: a fraction
  ``holdout_fraction`` (at least one patch) chosen by a permutation seeded with
  :data:`HOLDOUT_SEED` (independent of the training seed), left out of training and read
  without augmentation. Patches of one entry may overlap, so that hold-out is only a rough
  guide.
* **Output folder.** ``epoch-NNNN.pt`` after each epoch, ``last.pt`` (a copy of the latest),
  ``best.pt`` (the lowest validation loss so far) and ``metrics.csv`` (one row per epoch:
  ``epoch, step, train_loss, valid_loss, lr, seconds``; ``lr`` is the rate of the epoch's
  last step). Every file is written under a temporary name and renamed into place.
* **Checkpoints** are the weights file of :mod:`baselines.crefdenoiser.checkpoint`
  (``{"format": "cref-bench-weights", "format_version", "architecture", "state_dict",
  "metadata"}``, read by ``load_weights`` and so by the ``crefdenoiser`` method's
  ``--weights``), plus a ``"training"`` dictionary that lets :func:`train` resume:
  optimiser and gradient-scaler states, completed epochs, global step, the configuration,
  the metrics history, the best epoch and the RNG states (torch CPU and CUDA, numpy, python).
  Every value loads with ``torch.load(..., weights_only=True)``.
* **Resuming** (``resume=True``) continues from ``last.pt`` and gives the same weights as an
  uninterrupted run of the same length: the data order depends only on ``(seed, epoch)``
  (a :class:`~torch.utils.data.DistributedSampler`, also used with one process) and the
  rotations only on ``(seed, epoch, index)``; everything else is restored. Settings that
  change the result must equal those of the checkpoint; ``epochs`` may grow.
* **Determinism.** On the CPU, with ``torch.use_deterministic_algorithms`` (restored
  afterwards), two runs with the same seed and configuration give the same weights (on one
  machine, same thread count; DataLoader workers change nothing). GPU runs are not
  bit-reproducible (3D max-pooling has no deterministic CUDA backward).
* **Layout.** The saved weights are contiguous whatever the layout of training.
* **Several GPUs**: start with ``torchrun --nproc_per_node=N -m cref_bench.cli train ...``.
  When ``WORLD_SIZE`` > 1 the process group is initialised (NCCL on CUDA, else gloo), the
  model is wrapped in DistributedDataParallel, each process reads its share of every epoch
  (``batch_size`` is per process), losses are averaged over all processes, and only rank 0
  writes files. Nothing of this is touched with one process.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm.auto import tqdm

from baselines.crefdenoiser.checkpoint import read_payload, save_payload, weights_payload
from baselines.crefdenoiser.errors import CheckpointError
from baselines.crefdenoiser.losses import check_loss
from baselines.crefdenoiser.network import CrefUNet, check_input_shape
from baselines.crefdenoiser.patches import PatchDataset
from baselines.crefdenoiser.step import (
    COMPILE_MODES,
    PRECISIONS,
    StepOptions,
    TrainStep,
    step_options,
)
from cref_bench import atomic
from cref_bench.corpus.reader import open_corpus
from cref_bench.errors import CorpusError

log = logging.getLogger(__name__)

REFERENCE_BATCH = 6
"""The global batch for which ``lr`` is given (the default ``batch_size`` of one process)."""

LR_SCALINGS = ("sqrt", "linear", "none")
"""Rules that scale ``lr`` from :data:`REFERENCE_BATCH` to the global batch."""

HOLDOUT_SEED = 20240
"""Seed of the permutation that picks the hold-out patches when there is no valid split."""

METRICS_COLUMNS = ("epoch", "step", "train_loss", "valid_loss", "lr", "seconds")
"""Columns of ``metrics.csv``."""

_RESULT_FIELDS = ("loss", "batch_size", "lr", "lr_scaling", "lr_decay", "lr_decay_epochs",
                  "seed", "patch_limit", "steps_per_epoch", "valid_limit", "holdout_fraction",
                  "precision")
"""Configuration fields that change the trained weights: a resumed run must keep them."""


class NoValidationWarning(UserWarning):
    """The corpus has no ``valid`` patches; a hold-out of the ``train`` patches is used."""


@dataclass
class TrainConfig:
    """Everything :func:`train` needs.

    Attributes:
        corpus: the corpus store (path or fsspec URL).
        out: the output folder (created if needed).
        epochs: total number of epochs (a resumed run stops there too).
        batch_size: patches per step (per process under torchrun).
        lr: initial learning rate of Adam for a global batch of :data:`REFERENCE_BATCH`.
        lr_scaling: how ``lr`` follows the global batch, one of :data:`LR_SCALINGS`.
        lr_decay: factor applied to the learning rate every ``lr_decay_epochs`` epochs
            (continuously, see the module docstring).
        lr_decay_epochs: epochs over which the rate is multiplied by ``lr_decay``.
        loss: one of :data:`baselines.crefdenoiser.losses.LOSSES`.
        seed: seeds the initial weights, the data order and the rotations.
        patch_limit: use at most this many training patches (evenly spaced in the index).
        steps_per_epoch: stop each epoch after this many steps (at most one pass).
        valid_limit: validate on at most this many patches (evenly spaced).
        holdout_fraction: share of the train patches held out when there is no valid split.
        workers: DataLoader worker processes (0: read in the main process; None: several on
            CUDA, none on the CPU).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: one of :data:`baselines.crefdenoiser.step.PRECISIONS` (``auto``: bfloat16
            autocast on GPUs that support it, float32 elsewhere).
        compile: one of :data:`baselines.crefdenoiser.step.COMPILE_MODES`.
        progress: show progress bars.
        resume: continue from ``out/last.pt``.
        storage_options: fsspec options for a corpus URL.
    """

    corpus: str
    out: str
    epochs: int = 50
    batch_size: int = 6
    lr: float = 3e-4
    lr_scaling: str = "sqrt"
    lr_decay: float = 0.7
    lr_decay_epochs: float = 10.0
    loss: str = "cref"
    seed: int = 0
    patch_limit: int | None = None
    steps_per_epoch: int | None = None
    valid_limit: int | None = None
    holdout_fraction: float = 0.1
    workers: int | None = None
    device: str = "auto"
    precision: str = "auto"
    compile: str = "none"
    progress: bool = True
    resume: bool = False
    storage_options: dict | None = field(default=None, repr=False)

    def check(self) -> None:
        """Refuse values that cannot work.

        Raises:
            ValueError: a non-positive count or rate, a decay outside ``(0, 1]``, a hold-out
                fraction outside ``(0, 1)``, negative workers, or an unknown loss, rate
                scaling, precision or compile mode.
        """
        check_loss(self.loss)
        for name, value, choices in (("lr_scaling", self.lr_scaling, LR_SCALINGS),
                                     ("precision", self.precision, PRECISIONS),
                                     ("compile", self.compile, COMPILE_MODES)):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; expected one of "
                                 f"{', '.join(choices)}")
        for name in ("epochs", "batch_size", "patch_limit", "steps_per_epoch", "valid_limit"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0 or not self.lr_decay_epochs > 0:
            raise ValueError(f"lr and lr_decay_epochs must be positive, got {self.lr}, "
                             f"{self.lr_decay_epochs}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        out: the output folder.
        history: one dict per epoch with the :data:`METRICS_COLUMNS`.
        best_epoch: the epoch (1-based) with the lowest validation loss.
        best_valid_loss: that loss.
    """

    out: Path
    history: list[dict]
    best_epoch: int
    best_valid_loss: float

    @property
    def best(self) -> Path:
        """Path of ``best.pt``."""
        return self.out / "best.pt"

    @property
    def last(self) -> Path:
        """Path of ``last.pt``."""
        return self.out / "last.pt"


def initial_learning_rate(config: TrainConfig, processes: int = 1) -> float:
    """The first step's learning rate: ``lr`` scaled to the global batch.

    Args:
        config: the configuration (``lr``, ``lr_scaling``, ``batch_size``).
        processes: training processes (each with ``batch_size`` patches per step).

    Returns:
        ``lr * sqrt(B / REFERENCE_BATCH)``, ``lr * B / REFERENCE_BATCH`` or ``lr``, for
        ``lr_scaling`` ``sqrt``, ``linear`` or ``none``, with ``B = batch_size * processes``.
    """
    ratio = config.batch_size * processes / REFERENCE_BATCH
    return config.lr * {"sqrt": math.sqrt(ratio), "linear": ratio, "none": 1.0}[
        config.lr_scaling]


def learning_rate(config: TrainConfig, epoch: int, step: int, steps: int,
                  processes: int = 1) -> float:
    """The learning rate of one step (continuous exponential decay).

    Args:
        config: the configuration (``lr``, ``lr_scaling``, ``batch_size``, ``lr_decay``,
            ``lr_decay_epochs``).
        epoch: the epoch, counted from 0.
        step: the step within the epoch, from 0.
        steps: steps in the epoch.
        processes: training processes.

    Returns:
        ``lr0 * lr_decay ** ((epoch + step / steps) / lr_decay_epochs)``, ``lr0`` from
        :func:`initial_learning_rate`.
    """
    return (initial_learning_rate(config, processes)
            * config.lr_decay ** ((epoch + step / steps) / config.lr_decay_epochs))


def evenly_spaced(n: int, limit: int | None) -> np.ndarray:
    """Indices ``0 .. n - 1``, or ``limit`` of them spread evenly over that range.

    Args:
        n: how many there are.
        limit: how many to keep (None: all).

    Returns:
        Sorted unique int64 indices.
    """
    if limit is None or limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def holdout_split(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The deterministic hold-out of ``n`` train patches used when there is no valid split.

    Args:
        n: number of train patches.
        fraction: share held out (at least one patch).

    Returns:
        ``(train indices, held-out indices)``, each sorted.

    Raises:
        ValueError: fewer than two patches (nothing would be left to train on).
    """
    if n < 2:
        raise ValueError(f"{n} train patch(es) and no valid split: too few to hold any out")
    order = np.random.default_rng(HOLDOUT_SEED).permutation(n)
    k = min(n - 1, max(1, round(n * fraction)))
    return np.sort(order[k:]), np.sort(order[:k])


@dataclass
class _Data:
    train: torch.utils.data.Dataset
    valid: torch.utils.data.Dataset
    augmenting: PatchDataset  # the dataset whose epoch seeds the rotations
    holdout: bool
    corpus_version: str


def _datasets(config: TrainConfig) -> _Data:
    corpus = open_corpus(config.corpus, storage_options=config.storage_options)
    check_input_shape((corpus.patch_size,) * 3)
    train = PatchDataset(corpus, "train", augment=True, seed=config.seed,
                         progress=config.progress, with_mask=False)
    if len(train) == 0:
        raise CorpusError(corpus.location, "no training patches (the train split is empty or "
                          "its masks select no patch)")
    valid = PatchDataset(corpus, "valid", progress=config.progress, with_mask=False)
    train_idx = np.arange(len(train))
    holdout = len(valid) == 0
    if holdout:
        train_idx, valid_idx = holdout_split(len(train), config.holdout_fraction)
        warnings.warn(f"{corpus.location}: no valid patches; validating on {len(valid_idx)} "
                      f"held-out train patch(es) instead", NoValidationWarning, stacklevel=3)
        valid = Subset(PatchDataset(corpus, "train", progress=False, with_mask=False),
                       valid_idx.tolist())
    train_idx = train_idx[evenly_spaced(len(train_idx), config.patch_limit)]
    valid_sub = evenly_spaced(len(valid), config.valid_limit)
    return _Data(train=Subset(train, train_idx.tolist()),
                 valid=Subset(valid, valid_sub.tolist()), augmenting=train, holdout=holdout,
                 corpus_version=corpus.version)


def _pick_device(config: TrainConfig, local_rank: int) -> torch.device:
    if config.device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {config.device!r} asked for, but CUDA is not available")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def write_metrics(path: str | os.PathLike, history: list[dict]) -> None:
    """Write the metrics history as CSV (:data:`METRICS_COLUMNS`), atomically.

    Args:
        path: the CSV file.
        history: one dict per epoch.

    Raises:
        OSError: the file cannot be written.
    """
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRICS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in METRICS_COLUMNS} for row in history)
    atomic.write_text(path, text.getvalue())


def _rng_states() -> dict:
    np_state = np.random.get_state(legacy=False)
    states = {"torch": torch.get_rng_state(),
              "numpy": {"bit_generator": np_state["bit_generator"],
                        "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                        "pos": int(np_state["state"]["pos"]),
                        "has_gauss": int(np_state["has_gauss"]),
                        "gauss": float(np_state["gauss"])},
              "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]]}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"],
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a training checkpoint written by :func:`train`.

    Args:
        path: ``last.pt``, ``best.pt`` or ``epoch-NNNN.pt``.

    Returns:
        The checkpoint dictionary (CPU tensors): the weights-file keys plus ``"training"``.

    Raises:
        CheckpointError: missing, unreadable, of another format, or without training state
            (e.g. a weights file from ``import-weights``).
    """
    payload = read_payload(path)
    if "training" not in payload:
        raise CheckpointError(path, "weights only, no training state to resume from")
    return payload


def _config_record(config: TrainConfig) -> dict:
    record = asdict(config)
    record.pop("storage_options")
    return record


def _check_resumable(config: TrainConfig, saved: dict, source: Path) -> None:
    differ = [f"{k}: checkpoint {saved.get(k)!r}, now {getattr(config, k)!r}"
              for k in _RESULT_FIELDS if saved.get(k) != getattr(config, k)]
    if differ:
        raise ValueError(f"{source}: cannot resume with different settings ("
                         + "; ".join(differ) + ")")


class _Distributed:
    """The torchrun environment: world size, ranks, and whether we set the group up."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        self.owned = False

    def start(self, device: torch.device) -> None:
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self.owned = True

    def stop(self) -> None:
        if self.owned:
            dist.destroy_process_group()

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        if self.world == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()


@dataclass
class _Loop:
    """What every step of a run uses.

    Attributes:
        step: the network, its optimiser and the step's settings.
        config: the run's settings.
        env: the torchrun processes.
    """

    step: TrainStep
    config: TrainConfig
    env: _Distributed


@torch.no_grad()
def _validate(loop: _Loop, loader: DataLoader) -> float:
    loop.step.net.eval()
    total, count = 0.0, 0
    for half1, half2 in loader:
        losses = loop.step.losses(half1, half2)
        total += float(losses.double().sum())
        count += len(losses)
    total, count = loop.env.sum([total, float(count)], loop.step.device)
    return total / count


def _train_epoch(loop: _Loop, loader: DataLoader, steps: int, epoch: int
                 ) -> tuple[float, float]:
    """One epoch of ``steps`` optimiser steps; returns (mean patch loss, last rate)."""
    config, device = loop.config, loop.step.device
    loop.step.net.train()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count, lr = 0, config.lr
    bar = tqdm(islice(loader, steps), total=steps, desc=f"epoch {epoch + 1}/{config.epochs}",
               disable=not (config.progress and loop.env.rank == 0), leave=False)
    for k, (half1, half2) in enumerate(bar):
        lr = learning_rate(config, epoch, k, steps, loop.env.world)
        losses = loop.step(half1, half2, lr)
        total += losses.double().sum()
        count += len(losses)
        if k % 10 == 9:
            bar.set_postfix(loss=f"{float(total) / count:.4f}")
    total, count = loop.env.sum([float(total), float(count)], device)
    if not math.isfinite(total):
        raise FloatingPointError(f"the training loss became {total / count} in epoch "
                                 f"{epoch + 1}; lower --lr (or use --precision float32)")
    return total / count, lr


def train(config: TrainConfig) -> TrainResult:
    """Train the crefDenoiser network (see the module docstring for every rule).

    Args:
        config: the run's settings.

    Returns:
        The :class:`TrainResult` (history of every epoch, resumed ones included).

    Raises:
        ValueError: bad settings, a resume with different settings, or a train split with
            fewer than two patches and no valid split.
        FloatingPointError: the training loss became NaN or infinite.
        FileExistsError: ``out`` holds a run already and ``resume`` is false.
        CorpusError: the corpus cannot be opened or has no training patches.
        CheckpointError: ``resume`` and ``out/last.pt`` is missing or unusable.
    """
    config.check()
    out = Path(config.out)
    last = out / "last.pt"
    if not config.resume and last.exists():
        raise FileExistsError(f"{out}: holds a training run already (last.pt); resume it "
                              "with --resume or choose another output folder")
    env = _Distributed()
    device = _pick_device(config, env.local_rank)
    options = step_options(device, precision=config.precision, compile=config.compile,
                           workers=config.workers, local_processes=env.local_world)
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_benchmark = torch.backends.cudnn.benchmark
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = options.cudnn_benchmark
    env.start(device)
    try:
        return _run(config, out, env, device, options)
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = cudnn_benchmark
        env.stop()


def _loader(dataset, config: TrainConfig, options: StepOptions, sampler=None) -> DataLoader:
    """Batches of ``dataset`` read by the options' workers (two batches ahead each)."""
    return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler,
                      num_workers=options.workers, pin_memory=options.pin_memory,
                      prefetch_factor=2 if options.workers else None)


def _run(config: TrainConfig, out: Path, env: _Distributed, device: torch.device,
         options: StepOptions) -> TrainResult:
    saved = None
    if config.resume:
        saved = load_checkpoint(out / "last.pt")
        _check_resumable(config, saved["training"]["config"], out / "last.pt")
    data = _datasets(config)
    torch.manual_seed(config.seed)
    model = CrefUNet()
    step_runner = TrainStep(model, config.loss, options, device,
                            lr=initial_learning_rate(config, env.world),
                            distributed=env.world > 1)
    optimizer, scaler = step_runner.optimizer, step_runner.scaler
    history, best, start_epoch, step = [], {"epoch": 0, "valid_loss": math.inf}, 0, 0
    if saved is not None:
        training = saved["training"]
        model.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(training["optimizer"])
        scaler.load_state_dict(training["scaler"])
        history, best = list(training["history"]), dict(training["best"])
        start_epoch, step = training["epoch"], training["step"]
        _set_rng_states(training["rng"])
        log.info("resuming %s after epoch %d (step %d)", out, start_epoch, step)
    sampler = DistributedSampler(data.train, num_replicas=env.world, rank=env.rank,
                                 shuffle=True, seed=config.seed)
    loader = _loader(data.train, config, options, sampler)
    valid_part = Subset(data.valid, list(range(env.rank, len(data.valid), env.world)))
    valid_loader = _loader(valid_part, config, options)
    steps = len(loader) if config.steps_per_epoch is None else min(config.steps_per_epoch,
                                                                   len(loader))
    loop = _Loop(step=step_runner, config=config, env=env)
    is_main = env.rank == 0
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        log.info("training on %d patches (%d steps of %d per epoch), validating on %d%s; "
                 "%s, %d loader workers, compile %s", len(data.train), steps,
                 config.batch_size, len(data.valid),
                 " held-out train patches" if data.holdout else "", options.precision,
                 options.workers, options.compile)
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        sampler.set_epoch(epoch)
        data.augmenting.set_epoch(epoch)
        train_loss, lr = _train_epoch(loop, loader, steps, epoch)
        step += steps
        valid_loss = _validate(loop, valid_loader)
        row = {"epoch": epoch + 1, "step": step, "train_loss": train_loss,
               "valid_loss": valid_loss, "lr": lr, "seconds": time.perf_counter() - started}
        history.append(row)
        improved = valid_loss < best["valid_loss"]
        if improved:
            best = {"epoch": epoch + 1, "valid_loss": valid_loss}
        if is_main:
            payload = _checkpoint(model, optimizer, scaler, config, history, best, epoch + 1,
                                  step, data.corpus_version, options.precision)
            save_payload(payload, out / f"epoch-{epoch + 1:04d}.pt")
            save_payload(payload, out / "last.pt")
            if improved:
                save_payload(payload, out / "best.pt")
            write_metrics(out / "metrics.csv", history)
            log.info("epoch %d: train %.5f, valid %.5f, lr %.3g, %.1f s", epoch + 1,
                     row["train_loss"], valid_loss, lr, row["seconds"])
    return TrainResult(out=out, history=history, best_epoch=best["epoch"],
                       best_valid_loss=best["valid_loss"])


def _checkpoint(model, optimizer, scaler, config, history, best, epoch, step,
                corpus_version, precision) -> dict:
    record = _config_record(config)
    payload = weights_payload(model, {
        "source": "cref-bench train", "corpus": config.corpus, "corpus_version": corpus_version,
        "loss": config.loss, "epoch": epoch, "step": step, "precision": precision,
        "valid_loss": history[-1]["valid_loss"], "config": record})
    payload["training"] = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                           "epoch": epoch, "step": step, "config": record,
                           "history": [dict(r) for r in history], "best": dict(best),
                           "rng": _rng_states()}
    return payload
