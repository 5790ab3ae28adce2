"""Training throughput, the patch loader and lean inference of crefDenoiser on one CUDA GPU.

A self-contained check (no pytest), one command: with random data and the real network it
times

* the trainer's step (:class:`baselines.crefdenoiser.step.TrainStep`: forward, C_ref loss,
  backward, Adam) on ``--batch`` patches of ``--patch``³, reporting patches per second (median
  of ``--steps`` steps after ``--warmup``) and peak GPU memory, for: today's float32 and
  bfloat16 steps before issue 25 (eager, Adam unfused, as this check timed them: cuDNN
  autotuning on; the baselines),
  float16 with a gradient scaler, the new default (:func:`~baselines.crefdenoiser.step.
  step_options`: bfloat16 where supported, cuDNN autotuning, fused Adam), and the new default
  compiled in each ``--compile-modes`` mode (``reduce-overhead`` adds CUDA graphs);
* how far each variant's losses are from today's float32 step over the same short run (same
  seed, same batch): the first step's and the largest relative difference;
* the new default at the larger batches ``--batches`` (with the square-root learning-rate
  rule, as the trainer) until one does not fit, for patches per second and peak memory;
* the patch loader alone (:mod:`benchmarks.loader_timing`) on a store of ``--loader-entries``
  192³ entries written to local disk, read ``--loader-passes`` times in batches of
  ``--loader-batch``: in the main process and with the trainer's workers (one per CPU but
  one, pinned memory, batches copied to the GPU), in patches per second and CPU seconds per
  patch, and against the fastest training step's rate;
* the lean inference pass (:func:`baselines.crefdenoiser.lean.lean_forward`) at
  ``--infer-side``³ against the plain forward of the same network (median time of a few runs,
  and the largest absolute and relative difference), in float32 and bfloat16.

It prints tables and then one JSON line (also written to ``--json`` if given); ratios are
against today's steps measured in the same run. Measurements stop early, marked as skipped,
once ``--budget-s`` seconds have passed. Without CUDA it refuses to run unless
``--allow-cpu`` (a smoke test: use a tiny ``--patch`` and ``--infer-side``; no compilation
unless ``--compile-modes`` names it).

Examples:
    python benchmarks/gpu_train_check.py
    python benchmarks/gpu_train_check.py --batches 4,8,16,32 --compile-modes default
    python benchmarks/gpu_train_check.py --allow-cpu --patch 32 --infer-side 64 --steps 2 \
        --batches 4 --loader-entries 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from baselines.crefdenoiser.lean import lean_forward
from baselines.crefdenoiser.network import CrefUNet
from baselines.crefdenoiser.patches import PatchDataset
from baselines.crefdenoiser.step import StepOptions, TrainStep, auto_workers, step_options
from baselines.crefdenoiser.train import REFERENCE_BATCH
from benchmarks.loader_timing import measure_loader, write_loader_store

LR = 3e-4
"""The learning rate at :data:`REFERENCE_BATCH` (the trainer's default)."""


class OutOfTime(Exception):
    """The time budget is spent."""


class Clock:
    """Wall time since the start, against a budget."""

    def __init__(self, budget: float):
        self.start, self.budget = time.perf_counter(), budget

    def check(self) -> None:
        if time.perf_counter() - self.start > self.budget:
            raise OutOfTime


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def variants(device: torch.device, compile_modes: list[str]) -> dict[str, StepOptions]:
    """The steps to time: today's float32 and bfloat16 (the baselines), float16, the new
    default, and the new default compiled in each mode."""
    new = step_options(device)
    today = dataclasses.replace(new, fused_adam=False, compile="none")
    half = "bfloat16" if device.type != "cuda" or torch.cuda.is_bf16_supported() else None
    steps = {"today float32": dataclasses.replace(today, precision="float32")}
    if half:
        steps["today bfloat16"] = dataclasses.replace(today, precision="bfloat16")
    if device.type == "cuda":
        steps["float16 + scaler"] = dataclasses.replace(new, precision="float16")
    steps[f"new default ({new.precision})"] = new
    for mode in compile_modes:
        steps[f"new, compile {mode}"] = dataclasses.replace(new, compile=mode)
    return steps


def train_rate(args, device: torch.device, name: str, options: StepOptions, batch: int,
               clock: Clock) -> dict:
    """Patches per second and peak memory of one step variant, and its losses."""
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = options.cudnn_benchmark
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    lr = LR * math.sqrt(batch / REFERENCE_BATCH)
    runner = TrainStep(CrefUNet(), "cref", options, device, lr=lr)
    generator = torch.Generator(device="cpu").manual_seed(1)
    shape = (batch, 1, args.patch, args.patch, args.patch)
    signal = torch.randn(shape, generator=generator)
    half1 = (signal + torch.randn(shape, generator=generator)).to(device)
    half2 = (signal + torch.randn(shape, generator=generator)).to(device)
    losses = []

    def step():
        losses.append(runner(half1, half2, lr).mean())

    for _ in range(args.warmup):
        clock.check()
        step()
    times = []
    for _ in range(args.steps):
        clock.check()
        times.append(_timed(step, device))
    seconds = statistics.median(times)
    values = [float(v) for v in losses]
    return {"step": name, "precision": options.precision, "compile": options.compile,
            "batch": batch, "step_s": seconds, "patches_per_s": batch / seconds,
            "finite_loss": all(math.isfinite(v) for v in values), "losses": values,
            "peak_gib": (torch.cuda.max_memory_allocated(device) / 2 ** 30
                         if device.type == "cuda" else None)}


def _agreement(rows: list[dict]) -> None:
    """Add each row's relative loss differences from today's float32 step (same batch)."""
    reference = {r["batch"]: r["losses"] for r in rows if r["step"] == "today float32"}
    for row in rows:
        base = reference.get(row["batch"])
        if base is None:
            continue
        n = min(len(base), len(row["losses"]))
        diffs = [abs(a / b - 1) for a, b in zip(row["losses"][:n], base[:n])]
        row["first_step_rel_diff"], row["max_rel_diff"] = diffs[0], max(diffs)


def loader_rates(args, device: torch.device, step_rate: float | None) -> list[dict]:
    """The patch loader alone, in the main process and with the trainer's workers."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="cref-loader-") as folder:
        store = write_loader_store(str(Path(folder) / "loader.zarr"), args.loader_entries)
        dataset = PatchDataset(store, "train", augment=True, progress=False, with_mask=False)
        cuda = device.type == "cuda"
        for workers in (0, auto_workers(device) if cuda else 2):
            row = measure_loader(dataset, batch_size=args.loader_batch, workers=workers,
                                 passes=args.loader_passes, pin_memory=cuda and workers > 0,
                                 device=device if cuda else None)
            row["vs_step"] = None if not step_rate else row["patches_per_s"] / step_rate
            rows.append(row)
    return rows


def inference(args, device: torch.device, clock: Clock) -> list[dict]:
    """The lean pass against the plain forward at ``--infer-side``³."""
    torch.manual_seed(0)
    model = CrefUNet().to(device).eval()
    n = args.infer_side
    x = torch.randn(1, 1, n, n, n, device=device)

    def plain():
        with torch.inference_mode():
            return model(x)

    reference = plain()
    rows = []
    plain_s = statistics.median(_timed(plain, device) for _ in range(args.infer_runs))
    scale = float(reference.abs().max())
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        clock.check()
        out = lean_forward(model, x, dtype=dtype)
        difference = (out - reference).abs()
        lean_s = statistics.median(_timed(lambda d=dtype: lean_forward(model, x, dtype=d),
                                          device) for _ in range(args.infer_runs))
        rows.append({"pass": f"lean {name}", "side": n, "seconds": lean_s,
                     "plain_seconds": plain_s, "ratio_to_plain": lean_s / plain_s,
                     "max_abs_diff": float(difference.max()),
                     "max_rel_diff": float(difference.max()) / scale,
                     "rel_l2": float(torch.linalg.norm(out - reference)
                                     / torch.linalg.norm(reference))})
        del out, difference
    return rows


def _print(result: dict) -> None:
    print(f"{result['device']}, torch {result['torch']}, TF32 {result['tf32']}: training "
          f"steps on {result['patch']}³ patches")
    base = next((r["patches_per_s"] for r in result["training"]
                 if r["step"] == "today bfloat16" and r["batch"] == result["batch"]), None)
    print(f"patches/s against today's bfloat16 step at batch {result['batch']} (x today bf16)")
    print(f"{'step':30} {'batch':>5} {'step s':>8} {'patches/s':>10} {'x today bf16':>12} "
          f"{'peak GiB':>9} {'loss diff 1st/max':>18}")
    for row in result["training"]:
        peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
        ratio = "-" if base is None else f"{row['patches_per_s'] / base:.2f}"
        agree = (f"{row['first_step_rel_diff']:.1e}/{row['max_rel_diff']:.1e}"
                 if "max_rel_diff" in row else "-")
        flag = "" if row["finite_loss"] else "  (non-finite loss!)"
        print(f"{row['step']:30} {row['batch']:5d} {row['step_s']:8.4f} "
              f"{row['patches_per_s']:10.2f} {ratio:>12} {peak:>9} {agree:>18}{flag}")
    for row in result["loader"]:
        versus = "" if row["vs_step"] is None else f", {row['vs_step']:.2f}x the fastest step"
        print(f"loader, {row['workers']} workers: {row['patches_per_s']:.1f} patches/s, "
              f"{row['cpu_s_per_patch'] * 1e3:.1f} ms CPU per patch{versus}")
    for row in result["inference"]:
        print(f"{row['pass']} {row['side']}³: {row['seconds']:.4f} s vs plain "
              f"{row['plain_seconds']:.4f} s (ratio {row['ratio_to_plain']:.2f}); max abs diff "
              f"{row['max_abs_diff']:.2e}, max rel {row['max_rel_diff']:.2e}, "
              f"rel L2 {row['rel_l2']:.2e}")
    for name in result["skipped"]:
        print(f"skipped: {name}")


def _training(args, device: torch.device, clock: Clock, result: dict) -> None:
    """Every step variant at ``--batch``, then the new default at ``--batches``."""
    steps = variants(device, args.compile_modes)
    new_name = next(name for name in steps if name.startswith("new default"))
    plan = [(name, options, args.batch) for name, options in steps.items()]
    plan += [(new_name, steps[new_name], b) for b in args.batches if b != args.batch]
    too_big = None
    for name, options, batch in plan:
        if too_big is not None and batch >= too_big:
            result["skipped"].append(f"{name} batch {batch}: batch {too_big} did not fit")
            continue
        try:
            result["training"].append(train_rate(args, device, name, options, batch, clock))
        except OutOfTime:
            result["skipped"].append(f"{name} batch {batch}: time budget")
        except torch.cuda.OutOfMemoryError:
            too_big = batch
            result["skipped"].append(f"{name} batch {batch}: out of GPU memory")
    _agreement(result["training"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2, help="patches per step (default 2)")
    parser.add_argument("--batches", default="4,8,16",
                        help="larger batches for the new default, comma-separated "
                             "(default 4,8,16; empty: none)")
    parser.add_argument("--patch", type=int, default=96, help="patch side (default 96)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed steps, compilation included (default 3)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--compile-modes", default=None,
                        help="torch.compile modes to time, comma-separated (default on CUDA: "
                             "default,reduce-overhead; on the CPU: none)")
    parser.add_argument("--loader-entries", type=int, default=12,
                        help="192³ entries (8 patches each) in the loader's store (default 12; "
                             "0: no loader measurement)")
    parser.add_argument("--loader-passes", type=int, default=3,
                        help="passes over the loader's store (default 3)")
    parser.add_argument("--loader-batch", type=int, default=8,
                        help="patches per batch of the loader (default 8)")
    parser.add_argument("--infer-side", type=int, default=256,
                        help="side of the inference map, a multiple of 32 (default 256)")
    parser.add_argument("--infer-runs", type=int, default=3,
                        help="timed inference runs per pass (default 3)")
    parser.add_argument("--budget-s", type=float, default=400.0,
                        help="stop measuring after this many seconds (default 400)")
    parser.add_argument("--no-tf32", action="store_true",
                        help="forbid TF32 in float32 convolutions and matmuls (PyTorch allows "
                             "it in cuDNN convolutions by default)")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="run on the CPU when there is no GPU (a smoke test)")
    parser.add_argument("--json", help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    if not torch.cuda.is_available():
        if not args.allow_cpu:
            print("gpu_train_check: no CUDA device (torch.cuda.is_available() is False); this "
                  "check is for a GPU. Pass --allow-cpu for a smoke test.", file=sys.stderr)
            return 2
        device = torch.device("cpu")
    else:
        device = torch.device("cuda")
        torch.backends.cudnn.allow_tf32 = not args.no_tf32
        torch.backends.cuda.matmul.allow_tf32 = not args.no_tf32
    if args.compile_modes is None:
        args.compile_modes = "default,reduce-overhead" if device.type == "cuda" else ""
    args.compile_modes = [m for m in args.compile_modes.split(",") if m.strip()]
    clock = Clock(args.budget_s)
    result = {"device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                         else "cpu"),
              "torch": torch.__version__,
              "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
              "tf32": device.type == "cuda" and not args.no_tf32,
              "batch": args.batch, "patch": args.patch, "training": [], "loader": [],
              "inference": [], "skipped": []}
    _training(args, device, clock, result)
    fastest = max((r["patches_per_s"] for r in result["training"]), default=None)
    if args.loader_entries > 0:
        result["loader"] = loader_rates(args, device, fastest)
    try:
        result["inference"] = inference(args, device, clock)
    except OutOfTime:
        result["skipped"].append("inference: time budget")
    result["seconds"] = time.perf_counter() - clock.start
    _print(result)
    line = json.dumps(result)
    print(line)
    if args.json:
        Path(args.json).write_text(line + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
