"""Train the crefDenoiser network on a corpus store with the C_ref loss (or an ablation loss).

Patches come from the store's patch index: the train split, with random cube rotations;
the valid split is scored after every epoch (a deterministic hold-out of the train patches
when the corpus has no valid split). Adam with a learning rate that decays continuously by
--lr-decay every --lr-decay-epochs epochs. The output folder gets epoch-NNNN.pt after every
epoch, last.pt, best.pt (lowest validation loss) and metrics.csv (epoch, step, train_loss,
valid_loss, lr, seconds). best.pt plugs into the crefdenoiser method (cref-bench run
--method crefdenoiser --param weights=DIR/best.pt ...); --resume continues from last.pt with
the same result as an uninterrupted run.

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
    from baselines.crefdenoiser.train import TrainConfig as D

    parser.add_argument("--corpus", required=True, help="corpus store (path or fsspec URL)")
    parser.add_argument("--out", required=True, help="output folder for checkpoints and metrics")
    parser.add_argument("--epochs", type=int, default=D.epochs,
                        help=f"total epochs (default {D.epochs})")
    parser.add_argument("--batch-size", type=int, default=D.batch_size,
                        help=f"patches per step and process (default {D.batch_size})")
    parser.add_argument("--lr", type=float, default=D.lr,
                        help=f"initial Adam learning rate (default {D.lr})")
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
                        help="data-loading worker processes (default: read in the main process)")
    parser.add_argument("--device", default=D.device,
                        help="auto (CUDA when available), cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--amp", action="store_true",
                        help="mixed precision (float16 on CUDA, bfloat16 on the CPU)")
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
        lr=args.lr, lr_decay=args.lr_decay, lr_decay_epochs=args.lr_decay_epochs,
        loss=args.loss, seed=args.seed, patch_limit=args.patch_limit,
        steps_per_epoch=args.steps_per_epoch, valid_limit=args.valid_limit,
        workers=args.workers, device=args.device, amp=args.amp, progress=args.progress,
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
