"""Write a corpus of phantoms with known truth (procedural atomic models) into a store.

Each entry (SYN-0001, SYN-0002, ...) holds two half-maps whose FSC crosses 0.143 at a
resolution drawn for it, the noise-free truth, a soft mask and the atomic model. Box,
voxel size and resolution are drawn per entry from the ranges given, deterministically
from --seed and the entry number: the same command writes bit-identical maps. Running it
again on the same store completes what is missing (an interrupted run resumes) or adds
entries (a larger --entries). An existing path that is not a store written with the same
seed and ranges is refused.

Entries that fail are recorded in the manifest (exit status 1).

Examples:
    cref-bench synth --out demo.zarr --entries 12
    cref-bench synth --out phantoms.zarr --entries 500 --seed 3 --workers 4 --box-range 96 192
"""

from __future__ import annotations

HELP = "write a corpus of phantoms with known truth into a store"


def add_args(parser) -> None:
    """Register the command's arguments on ``parser``."""
    parser.add_argument("--out", required=True, help="the store: a local path or fsspec URL")
    parser.add_argument("--entries", type=int, required=True, metavar="N", help="number of entries")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="corpus seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, metavar="W",
                        help="parallel processes (default 1)")
    parser.add_argument("--box-range", type=int, nargs=2, default=(64, 96), metavar=("LO", "HI"),
                        help="box edge range in voxels (default 64 96)")
    parser.add_argument("--voxel-range", type=float, nargs=2, default=(0.8, 2.0),
                        metavar=("LO", "HI"), help="voxel size range in Å (default 0.8 2.0)")
    parser.add_argument("--resolution-range", type=float, nargs=2, default=(2.0, 8.0),
                        metavar=("LO", "HI"), help="FSC 0.143 resolution range in Å (default 2 8)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _complete(location: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` are complete entries of the store (none when there is no store)."""
    from cref_bench.errors import CorpusError
    from cref_bench.store_layout import list_complete_entries
    from dataset_builder.store import Store

    try:
        return set(list_complete_entries(Store(location).root("r"))) & set(ids)
    except CorpusError:
        return set()


def main(args) -> int:
    """Write the corpus; returns the exit status."""
    from cref_bench.output_paths import check_output_folder
    from cref_bench.splits import SPLITS
    from dataset_builder.store import Store
    from dataset_builder.synthetic import phantom_id, write_phantom_corpus

    check_output_folder(args.out, "--out")
    ids = [phantom_id(k) for k in range(max(args.entries, 0))]
    before = _complete(str(args.out), ids)
    location = write_phantom_corpus(
        args.out, args.entries, seed=args.seed, boxes=tuple(args.box_range),
        voxel_sizes=tuple(args.voxel_range), resolutions=tuple(args.resolution_range),
        workers=args.workers, progress=not args.no_progress)
    after = _complete(location, ids)
    attrs = Store(location).attrs
    total = sum(attrs.get("counts", {}).get(split, 0) for split in SPLITS)
    failed = len(ids) - len(after)
    print(f"{location}: {len(after - before)} entries written now, {len(before)} already "
          f"there, {failed} failed, of the {len(ids)} asked for; the store holds {total} "
          f"entries; content hash {attrs.get('content_hash')}")
    return 1 if failed else 0
