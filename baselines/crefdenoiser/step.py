"""One training step of the crefDenoiser network, set up for the device it runs on.

:func:`step_options` resolves the trainer's settings for a device into :class:`StepOptions`
and :class:`TrainStep` runs steps with them (the trainer and ``benchmarks/gpu_train_check.py``
use the same code):

* **Precision.** ``auto`` is bfloat16 autocast on a CUDA GPU that supports it and float32
  elsewhere: the CPU keeps float32, which reproduces bit for bit and is the faster one on
  CPUs without bfloat16 units (``bfloat16`` on CPUs with them, e.g. AMX: ``bench_crefdenoiser``
  measures both). ``float16`` (CUDA only) adds a gradient scaler. The network's
  output is cast to float32 before the loss, so the loss and its FFTs are float32 always.
* **Layout.** ``channels_last_3d`` on the CPU, the default layout on a GPU
  (:func:`memory_format`, measured).
* **cuDNN autotuning** (``torch.backends.cudnn.benchmark``) on CUDA: patches have one shape,
  so the fastest convolution algorithms are searched once.
* **Compilation** (``compile``): ``none``, or a ``torch.compile`` mode for the network:
  ``default``, ``max-autotune``, or ``reduce-overhead`` (which adds CUDA graphs on a GPU).
  Off by default: whether it pays depends on the GPU and is measured by
  ``benchmarks/gpu_train_check.py``.
* **Optimiser.** Adam, fused into one kernel on CUDA; the CPU keeps the default
  implementation (so CPU runs reproduce bit for bit).
* **Loader.** ``workers=None`` resolves to background reading on CUDA (one worker per CPU
  of this process's share, minus one for the main process, at most :data:`MAX_WORKERS`) and
  to reading in the main process on the CPU, where the step itself uses every core; batches
  go to pinned memory on CUDA only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from baselines.crefdenoiser.losses import patch_losses

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
"""Accepted ``precision`` settings (``auto`` resolves per device, see the module docstring)."""

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
"""Accepted ``compile`` settings: ``none`` or a ``torch.compile`` mode."""

MAX_WORKERS = 16
"""Most DataLoader workers ``workers=None`` gives one process."""

_AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def memory_format(device: torch.device) -> torch.memory_format:
    """The layout of the network and its patches on ``device``: ``channels_last_3d`` on the
    CPU (oneDNN's fast paths: a step in 0.64 of the default layout's time), the default
    layout elsewhere (cuDNN ran it faster on an H200)."""
    return torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format


@dataclass(frozen=True)
class StepOptions:
    """How training runs on one device (see the module docstring).

    Attributes:
        precision: ``float32``, ``bfloat16`` or ``float16`` (resolved, never ``auto``).
        compile: ``none`` or a ``torch.compile`` mode.
        memory_format: layout of the parameters and patches.
        fused_adam: use the fused Adam kernel.
        cudnn_benchmark: let cuDNN search the fastest convolution algorithms.
        workers: DataLoader worker processes (0: read in the main process).
        pin_memory: batches go to pinned (page-locked) memory for fast copies to the GPU.
    """

    precision: str
    compile: str
    memory_format: torch.memory_format
    fused_adam: bool
    cudnn_benchmark: bool
    workers: int
    pin_memory: bool


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a setting means on ``device``.

    Args:
        precision: one of :data:`PRECISIONS`.
        device: where the network runs.

    Returns:
        ``float32``, ``bfloat16`` or ``float16``.

    Raises:
        ValueError: an unknown setting, float16 off CUDA, or bfloat16 on a GPU without it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of "
                         f"{', '.join(PRECISIONS)}")
    cuda = device.type == "cuda"
    bf16 = cuda and torch.cuda.is_bf16_supported()
    if precision == "auto":
        return "bfloat16" if bf16 else "float32"
    if precision == "float16" and not cuda:
        raise ValueError(f"float16 autocast needs a CUDA device, not {device}; use bfloat16")
    if precision == "bfloat16" and cuda and not bf16:
        raise ValueError(f"{device} does not support bfloat16; use float16 or float32")
    return precision


def auto_workers(device: torch.device, local_processes: int = 1) -> int:
    """The DataLoader workers of ``workers=None``.

    Args:
        device: where the network runs.
        local_processes: training processes on this machine (torchrun's
            ``LOCAL_WORLD_SIZE``), which share its CPUs.

    Returns:
        0 on the CPU; on CUDA the process's share of the usable CPUs minus one (the main
        process), at least 1 and at most :data:`MAX_WORKERS`.
    """
    if device.type != "cuda":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_WORKERS, (cpus or 1) // max(1, local_processes) - 1))


def step_options(device: torch.device, *, precision: str = "auto", compile: str = "none",
                 workers: int | None = None, local_processes: int = 1) -> StepOptions:
    """Resolve the step settings for ``device``.

    Args:
        device: where the network runs.
        precision: one of :data:`PRECISIONS`.
        compile: one of :data:`COMPILE_MODES`.
        workers: DataLoader workers, or None for :func:`auto_workers`.
        local_processes: training processes on this machine.

    Returns:
        The :class:`StepOptions`.

    Raises:
        ValueError: as :func:`resolve_precision`, an unknown compile mode or negative workers.
    """
    if compile not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {compile!r}; expected one of "
                         f"{', '.join(COMPILE_MODES)}")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    cuda = device.type == "cuda"
    return StepOptions(
        precision=resolve_precision(precision, device), compile=compile,
        memory_format=memory_format(device), fused_adam=cuda, cudnn_benchmark=cuda,
        workers=auto_workers(device, local_processes) if workers is None else workers,
        pin_memory=cuda)


class TrainStep:
    """Optimiser steps of the network with the C_ref loss (or an ablation) on one device.

    Holds the network as trained (wrapped in DistributedDataParallel when ``distributed``,
    then compiled when asked), its Adam optimiser, the gradient scaler (enabled for float16
    only) and the autocast context. The network is moved to ``device`` in the options'
    layout.

    Args:
        model: the network (its parameters are the ones trained and saved).
        loss: one of :data:`baselines.crefdenoiser.losses.LOSSES`.
        options: the resolved :class:`StepOptions`.
        device: where the network runs.
        lr: the optimiser's initial learning rate.
        distributed: wrap the network in DistributedDataParallel (the process group is up).

    Attributes:
        model, net, optimizer, scaler, autocast, options, device, loss: as described.
    """

    def __init__(self, model: nn.Module, loss: str, options: StepOptions,
                 device: torch.device, *, lr: float, distributed: bool = False):
        self.model = model.to(device, memory_format=options.memory_format)
        self.loss, self.options, self.device = loss, options, device
        net: nn.Module = self.model
        if distributed:
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None)
        if options.compile != "none":
            net = torch.compile(net, mode=options.compile)
        self.net = net
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr,
                                          fused=options.fused_adam or None)
        self.scaler = torch.amp.GradScaler(device.type,
                                           enabled=options.precision == "float16")
        dtype = _AUTOCAST_DTYPES.get(options.precision)
        self.autocast = None if dtype is None else torch.autocast(device.type, dtype=dtype)

    def losses(self, half1: torch.Tensor, half2: torch.Tensor) -> torch.Tensor:
        """The per-patch losses of a batch (float32), moved to the device in the layout.

        Args:
            half1, half2: masked, standardised half-map patches ``(B, 1, P, P, P)``.

        Returns:
            ``(B,)`` float32 losses, differentiable.
        """
        move = {"device": self.device, "non_blocking": True,
                "memory_format": self.options.memory_format}
        return patch_losses(self.loss, self.net, half1.to(**move), half2.to(**move),
                            self.autocast)

    def __call__(self, half1: torch.Tensor, half2: torch.Tensor, lr: float) -> torch.Tensor:
        """One optimiser step on a batch at learning rate ``lr``.

        Args:
            half1, half2: masked, standardised half-map patches ``(B, 1, P, P, P)``.
            lr: the learning rate of this step.

        Returns:
            ``(B,)`` float32 per-patch losses before the step (detached, on the device).
        """
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        losses = self.losses(half1, half2)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses.mean()).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return losses.detach()
