"""Convert the published crefDenoiser TensorFlow checkpoint into a cref-bench weights file.

Reads the checkpoint's .index file and its .data-00000-of-00001 (beside it) with numpy
alone -- TensorFlow is not needed -- and writes the weights of the PyTorch network as a .pt
file that the crefdenoiser method (cref-bench run --method crefdenoiser --param
weights=FILE.pt) and the trainer load. The published weights are not shipped with
cref-bench (the authors' repository carries no licence); get them from the crefDenoiser
repository (models/saved-model-epoch-192.*).

Example:
    cref-bench import-weights models/saved-model-epoch-192.index --out crefdenoiser.pt
"""

from __future__ import annotations

from pathlib import Path

HELP = "convert the published crefDenoiser TensorFlow checkpoint to a .pt weights file"


def add_args(parser) -> None:
    """Register the command's arguments.

    Args:
        parser: the sub-command's ``argparse.ArgumentParser``.
    """
    parser.add_argument("index",
                        help="the checkpoint's .index file (its .data-00000-of-00001 beside it)")
    parser.add_argument("--out", required=True, help="the .pt weights file to write")


def main(args) -> int:
    """Import the checkpoint and write the weights file.

    Args:
        args: parsed arguments (``index``, ``out``).

    Returns:
        0 (a checkpoint that cannot be used raises
        :class:`~baselines.crefdenoiser.errors.CheckpointError`).
    """
    from cref_bench.output_paths import check_output_file

    check_output_file(args.out, "--out")  # before torch is imported
    from baselines.crefdenoiser.checkpoint import save_weights, tf_state_dict, weights_digest
    from baselines.crefdenoiser.network import CrefUNet

    state = tf_state_dict(args.index)
    digest = weights_digest(args.index)
    model = CrefUNet()
    model.load_state_dict(state)
    count = sum(p.numel() for p in model.parameters())
    out = save_weights(model, args.out, metadata={"source": str(Path(args.index).resolve()),
                                                  "source_sha256_prefix": digest,
                                                  "imported_from": "tensorflow-checkpoint"})
    print(f"wrote {out} ({count:,} parameters, from checkpoint {digest})")
    return 0
