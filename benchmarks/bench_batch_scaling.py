"""Larger batches and the learning-rate rule: the loss curve's shape at batch 2 and batch 8.

The trainer scales ``lr`` (given for a global batch of 6) by the square root of the batch's
ratio to 6. On a toy corpus (``tests/toy_corpus.py``: 4 train entries, 32 patches of 32³)
three CPU runs see the same patches for the same number of epochs: batch 2 and batch 8 with
the square-root rule, and batch 8 with ``lr`` unscaled. Each epoch's validation loss is
printed divided by the untrained network's (so the curves' shapes compare), with each
run's largest gap from the batch-2 curve. Training at batch 8 takes 4x fewer steps.

Run: ``python -m pytest benchmarks/bench_batch_scaling.py --benchmark-enable -s``.
"""

from __future__ import annotations

import pytest
import torch

from baselines.crefdenoiser.losses import patch_losses
from baselines.crefdenoiser.network import CrefUNet
from baselines.crefdenoiser.patches import PatchDataset
from baselines.crefdenoiser.train import TrainConfig, initial_learning_rate, train
from tests.toy_corpus import ids_of, write_toy_corpus

EPOCHS = 6
LR = 1e-3
RUNS = {"batch 2, sqrt rule": (2, "sqrt"), "batch 8, sqrt rule": (8, "sqrt"),
        "batch 8, lr unscaled": (8, "none")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_toy_corpus(tmp_path_factory.mktemp("scaling") / "toy.zarr",
                            ids_of("train", 4) + ids_of("valid", 1))


def _untrained_loss(corpus: str) -> float:
    """The validation loss of the seed's initial network (the curves' common start)."""
    torch.manual_seed(0)
    model = CrefUNet().eval()
    valid = PatchDataset(corpus, "valid", progress=False, with_mask=False)
    half1, half2 = (torch.stack(parts) for parts in zip(*(valid[i] for i in range(len(valid)))))
    with torch.no_grad():
        return float(patch_losses("cref", model, half1, half2).mean())


def test_batch_scaling(benchmark, corpus, tmp_path):
    start = _untrained_loss(corpus)
    curves, steps = {}, {}

    def runs():
        for name, (batch, scaling) in RUNS.items():
            config = TrainConfig(corpus=corpus, out=str(tmp_path / name.replace(" ", "-")),
                                 epochs=EPOCHS, batch_size=batch, lr=LR, lr_scaling=scaling,
                                 progress=False)
            result = train(config)
            curves[name] = [row["valid_loss"] / start for row in result.history]
            steps[name] = (result.history[-1]["step"], initial_learning_rate(config))

    benchmark.pedantic(runs, rounds=1, iterations=1)
    reference = curves["batch 2, sqrt rule"]
    print(f"\nvalid loss / untrained ({start:.4f}) after each of {EPOCHS} epochs:")
    for name, curve in curves.items():
        gap = max(abs(a - b) for a, b in zip(curve, reference))
        benchmark.extra_info[name] = {"curve": curve, "max_gap": gap}
        print(f"{name:22} ({steps[name][0]:3d} steps, lr {steps[name][1]:.2e}): "
              + " ".join(f"{v:.3f}" for v in curve) + f"  largest gap {gap:.3f}")
    assert all(curve[-1] < 1 for curve in curves.values())
