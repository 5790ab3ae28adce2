"""Training throughput and lean inference of the crefDenoiser network on one CUDA GPU.

A self-contained check (no pytest): with random data and the real network it times

* the training step of the cref-bench trainer (forward, C_ref loss, backward, Adam) on a batch
  of ``--batch`` patches of ``--patch``³, in float32, bfloat16 autocast and float16 autocast
  (with a gradient scaler), each with the default layout (NCDHW) and ``channels_last_3d``,
  reporting patches per second (median of ``--steps`` steps after ``--warmup``);
* the lean inference pass (:func:`baselines.crefdenoiser.lean.lean_forward`) at
  ``--infer-side``³ against the plain forward of the same network (median time of a few runs,
  and the largest absolute and relative difference), in float32 and bfloat16.

It prints a table and then one JSON line (also written to ``--json`` if given). Measurements
stop early, marked as skipped, once ``--budget-s`` seconds have passed (the defaults take about
a minute on an H200). Without CUDA it refuses to run unless ``--allow-cpu`` (a smoke test: use
a tiny ``--patch`` and ``--infer-side``).

Examples:
    python benchmarks/gpu_train_check.py
    python benchmarks/gpu_train_check.py --allow-cpu --patch 32 --infer-side 64 --steps 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from baselines.crefdenoiser.lean import lean_forward
from baselines.crefdenoiser.losses import patch_losses
from baselines.crefdenoiser.network import CrefUNet

PRECISIONS = ("fp32", "bf16", "fp16")
LAYOUTS = {"ncdhw": torch.contiguous_format, "channels_last_3d": torch.channels_last_3d}


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


def train_rate(args, device: torch.device, precision: str, layout: str, clock: Clock) -> dict:
    """Patches per second of the trainer's step in one precision and layout."""
    torch.manual_seed(0)
    fmt = LAYOUTS[layout]
    model = CrefUNet().to(device, memory_format=fmt).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    autocast = None if dtype is None else torch.autocast(device.type, dtype=dtype)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    shape = (args.batch, 1, args.patch, args.patch, args.patch)
    signal = torch.randn(shape, device=device)
    half1 = (signal + torch.randn(shape, device=device)).contiguous(memory_format=fmt)
    half2 = (signal + torch.randn(shape, device=device)).contiguous(memory_format=fmt)
    losses = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = patch_losses("cref", model, half1, half2, autocast).mean()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.detach())

    for _ in range(args.warmup):
        clock.check()
        step()
    times = []
    for _ in range(args.steps):
        clock.check()
        times.append(_timed(step, device))
    seconds = statistics.median(times)
    finite = bool(torch.isfinite(torch.stack(losses)).all())
    return {"precision": precision, "layout": layout, "step_s": seconds,
            "patches_per_s": args.batch / seconds, "finite_loss": finite,
            "peak_gib": (torch.cuda.max_memory_allocated(device) / 2 ** 30
                         if device.type == "cuda" else None)}


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2, help="patches per step (default 2)")
    parser.add_argument("--patch", type=int, default=96, help="patch side (default 96)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (default 3)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--infer-side", type=int, default=256,
                        help="side of the inference map, a multiple of 32 (default 256)")
    parser.add_argument("--infer-runs", type=int, default=3,
                        help="timed inference runs per pass (default 3)")
    parser.add_argument("--budget-s", type=float, default=200.0,
                        help="stop measuring after this many seconds (default 200)")
    parser.add_argument("--no-tf32", action="store_true",
                        help="forbid TF32 in float32 convolutions and matmuls (PyTorch allows "
                             "it in cuDNN convolutions by default)")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="run on the CPU when there is no GPU (a smoke test)")
    parser.add_argument("--json", help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        if not args.allow_cpu:
            print("gpu_train_check: no CUDA device (torch.cuda.is_available() is False); this "
                  "check is for a GPU. Pass --allow-cpu for a smoke test.", file=sys.stderr)
            return 2
        device = torch.device("cpu")
    else:
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = not args.no_tf32
        torch.backends.cuda.matmul.allow_tf32 = not args.no_tf32
    clock = Clock(args.budget_s)
    result = {"device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                         else "cpu"),
              "torch": torch.__version__,
              "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
              "tf32": device.type == "cuda" and not args.no_tf32,
              "batch": args.batch, "patch": args.patch, "training": [], "inference": [],
              "skipped": []}
    for precision in PRECISIONS:
        for layout in LAYOUTS:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            try:
                result["training"].append(train_rate(args, device, precision, layout, clock))
            except OutOfTime:
                result["skipped"].append(f"training {precision} {layout}")
    try:
        result["inference"] = inference(args, device, clock)
    except OutOfTime:
        result["skipped"].append("inference")
    result["seconds"] = time.perf_counter() - clock.start
    print(f"{result['device']}, torch {result['torch']}, TF32 {result['tf32']}: training "
          f"steps on {args.batch} x {args.patch}³ patches")
    print(f"{'precision':9} {'layout':16} {'step s':>8} {'patches/s':>10} {'peak GiB':>9}")
    for row in result["training"]:
        peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
        flag = "" if row["finite_loss"] else "  (non-finite loss!)"
        print(f"{row['precision']:9} {row['layout']:16} {row['step_s']:8.4f} "
              f"{row['patches_per_s']:10.2f} {peak:>9}{flag}")
    for row in result["inference"]:
        print(f"{row['pass']} {row['side']}³: {row['seconds']:.4f} s vs plain "
              f"{row['plain_seconds']:.4f} s (ratio {row['ratio_to_plain']:.2f}); max abs diff "
              f"{row['max_abs_diff']:.2e}, max rel {row['max_rel_diff']:.2e}, "
              f"rel L2 {row['rel_l2']:.2e}")
    for name in result["skipped"]:
        print(f"skipped (time budget): {name}")
    line = json.dumps(result)
    print(line)
    if args.json:
        Path(args.json).write_text(line + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
