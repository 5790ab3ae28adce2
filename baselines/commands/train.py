"""Train the crefDenoiser network on a corpus store with the C_ref loss (or an ablation loss).

Patches come from the store's patch index: the train split, with random cube rotations;
the valid split is scored after every epoch (a deterministic hold-out of the train patches
when the corpus has no valid split). Adam with a learning rate that decays continuously by
--lr-decay every --lr-decay-epochs epochs. The output folder gets epoch-NNNN.pt after every
epoch, last.pt, best.pt (lowest validation loss) and metrics.csv (epoch, step, train_loss,
valid_loss, lr, seconds). best.pt plugs into the crefdenoiser method (cref-bench run
--method crefdenoiser --param weights=DIR/best.pt ...); --resume continues from last.pt with
the same result as an uninterrupted run.

On a GPU the step runs in bfloat16 autocast where the GPU supports it (--precision float32
to keep float32; the loss is float32 either way), with cuDNN autotuning and fused Adam; patches
are read by background workers into pinned memory. --lr is the rate for a global batch of 6
patches: other batches get it scaled by the square root of their ratio to 6 (--lr-scaling).

Several GPUs: torchrun --nproc_per_node=N -m cref_bench.cli train ... (or the path of the
cref-bench script instead of -m cref_bench.cli); --batch-size is per process.

Example:
    cref-bench train --corpus corpus.zarr --out runs/cref --epochs 50
"""

from __future__ import annotations

from cref_bench.errors import CrefBenchError, InputError, WorkFailed

HELP = "train the crefDenoiser network on a corpus (C_ref loss)"


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    from baselines.crefdenoiser.losses import LOSSES
    from baselines.crefdenoiser.step import COMPILE_MODES, PRECISIONS
    from baselines.crefdenoiser.train import LR_SCALINGS, REFERENCE_BATCH
    from baselines.crefdenoiser.train import TrainConfig as D

    parser.add_argument("--corpus", required=True, help="corpus store (path or fsspec URL)")
    parser.add_argument("--out", required=True, help="output folder for checkpoints and metrics")
    parser.add_argument("--epochs", type=int, default=D.epochs,
                        help=f"total epochs (default {D.epochs})")
    parser.add_argument("--batch-size", type=int, default=D.batch_size,
                        help=f"patches per step and process (default {D.batch_size})")
    parser.add_argument("--lr", type=float, default=D.lr,
                        help=f"initial Adam learning rate for a global batch of "
                             f"{REFERENCE_BATCH} patches (default {D.lr})")
    parser.add_argument("--lr-scaling", choices=LR_SCALINGS, default=D.lr_scaling,
                        help=f"how --lr follows the global batch B: sqrt(B / {REFERENCE_BATCH}) "
                             f"(default), B / {REFERENCE_BATCH}, or none")
    parser.add_argument("--lr-decay", type=float, default=D.lr_decay,
                        help=f"learning-rate factor per --lr-decay-epochs, applied continuously "
                             f"(default {D.lr_decay})")
    parser.add_argument("--lr-decay-epochs", type=float, default=D.lr_decay_epochs,
                        help=f"epochs per --lr-decay factor (default {D.lr_decay_epochs:g})")
    parser.add_argument("--loss", choices=LOSSES, default=D.loss,
                        help="cref (published), n2n-l2 or n2n-fsc (noise-to-noise ablations)")
    parser.add_argument("--seed", type=int, default=D.seed,
                        help="seed of weights, order, rotations")
    parser.add_argument("--patch-limit", type=int,
                        help="train on at most this many patches (evenly spaced; quick runs)")
    parser.add_argument("--steps-per-epoch", type=int,
                        help="at most this many steps per epoch (quick runs)")
    parser.add_argument("--valid-limit", type=int,
                        help="validate on at most this many patches (evenly spaced)")
    parser.add_argument("--workers", type=int, default=D.workers,
                        help="data-loading worker processes (default: one per CPU but one on "
                             "CUDA, at most 16; none on the CPU)")
    parser.add_argument("--device", default=D.device,
                        help="auto (CUDA when available), cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default=D.precision,
                        help="auto (default: bfloat16 autocast on GPUs that support it, float32 "
                             "elsewhere), float32, bfloat16, or float16 (CUDA, gradient scaler)")
    parser.add_argument("--compile", choices=COMPILE_MODES, default=D.compile,
                        help="torch.compile the network in this mode (reduce-overhead adds CUDA "
                             "graphs; default none)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide progress bars")


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.output_paths import check_output_folder

    check_output_folder(args.out, "--out")  # before torch is imported
    from baselines.crefdenoiser.train import TrainConfig, train

    config = TrainConfig(
        corpus=args.corpus, out=args.out, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, lr_scaling=args.lr_scaling, lr_decay=args.lr_decay,
        lr_decay_epochs=args.lr_decay_epochs, loss=args.loss, seed=args.seed,
        patch_limit=args.patch_limit, steps_per_epoch=args.steps_per_epoch,
        valid_limit=args.valid_limit, workers=args.workers, device=args.device,
        precision=args.precision, compile=args.compile, progress=args.progress,
        resume=args.resume)
    try:
        result = train(config)
    # The trainer still refuses settings with a builtin ValueError and reports a diverged
    # loss with FloatingPointError; these two clauses go once it raises the project's errors.
    except CrefBenchError:
        raise
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    except FloatingPointError as exc:
        raise WorkFailed(f"{exc} (the epochs before are saved in {args.out})") from exc
    if result.history:
        print(f"best epoch {result.best_epoch}: valid loss {result.best_valid_loss:.5f} "
              f"({result.best})")
    return 0
