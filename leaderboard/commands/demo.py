"""The embedded default: a phantom corpus, the classic baselines, the leaderboard.

Builds a small corpus of procedural phantoms with known truth (a dozen entries of 64-96³ by
default; reused when it is already there), evaluates the classic baselines on its test split
with the whole metric set, and prints the leaderboard table (masked rows, ranked by the
C_ref RMSE). Everything lands under --out: the corpus, one results folder per method, the
table as Markdown and LaTeX, and the figures.

Example:
    cref-bench demo --out cref-bench-demo
"""

# This command ties the packages together (the phantom generator of dataset_builder, the
# runner of cref_bench, the methods found through the registry, the tables of leaderboard);
# it is the only module outside dataset_builder that imports it.

from __future__ import annotations

import time
from pathlib import Path

from cref_bench.errors import InputError, WorkFailed

HELP = "build a small phantom corpus, run the classic baselines and print the leaderboard"

DEFAULT_METHODS = ("noisy", "lowpass", "fsc-weight", "wiener")


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    parser.add_argument("--out", default="cref-bench-demo",
                        help="folder for the corpus, results, tables and figures "
                             "(default: cref-bench-demo)")
    parser.add_argument("--entries", type=int, default=12,
                        help="phantoms in the corpus (default: 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the phantoms (default: 0)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help="comma-separated methods to rank (default: "
                             f"{','.join(DEFAULT_METHODS)})")
    parser.add_argument("--workers", type=int, default=1,
                        help="dask workers for the runs (default: 1)")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run_demo(out: str | Path, *, entries: int = 12, seed: int = 0, methods=DEFAULT_METHODS,
             workers: int = 1, figures: bool = True, progress: bool = True):
    """Build the phantom corpus, evaluate ``methods`` on its test split and rank them.

    Args:
        out: folder for everything the demo writes.
        entries: phantoms in the corpus (64-96³ boxes, 0.8-2 Å voxels, 2-8 Å resolutions).
        seed: seed of the phantoms.
        methods: registered method names.
        workers: dask workers for the runs (1 runs in this process).
        figures: also write the figures.
        progress: show progress bars.

    Returns:
        The leaderboard table (a DataFrame, see :func:`leaderboard.tables.leaderboard_table`).

    Raises:
        InputError: no method given, or bad counts.
        CorpusError: the corpus at ``out`` was written with another seed.
        MethodError: a method cannot be built.
        WorkFailed: a method failed on every entry (its failures are recorded).
    """
    from cref_bench.atomic import write_text
    from cref_bench.runner import run_method
    from dataset_builder.synthetic import write_phantom_corpus
    from leaderboard import tables

    methods = list(methods)
    if not methods:
        raise InputError("give at least one method")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = write_phantom_corpus(out / "corpus.zarr", entries, seed=seed, progress=progress)
    results = []
    for name in methods:
        result = run_method(name, corpus, split="test", out=out / "results" / name,
                            workers=workers, progress=progress)
        if result.counts["failed"] and result.counts["failed"] == result.counts["entries"]:
            raise WorkFailed(f"method {name!r} failed on every entry; see "
                             f"{result.out / 'failures.csv'}")
        results.append(result.out)
    frame = tables.load_results(results)
    table = tables.leaderboard_table(frame, masking="masked")
    write_text(out / "leaderboard.md", tables.to_markdown(table))
    write_text(out / "leaderboard.tex", tables.to_latex(table))
    if figures:
        from leaderboard.figures import write_figures

        curves = tables.load_curves(results, curves=("fsc_fd", "c_ref"))
        write_figures(frame, curves, table, out / "figures")
    return table


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.output_paths import check_output_folder
    from leaderboard import tables

    check_output_folder(args.out, "--out")

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    start = time.perf_counter()
    table = run_demo(args.out, entries=args.entries, seed=args.seed, methods=methods,
                     workers=args.workers, figures=not args.no_figures,
                     progress=not args.no_progress)
    print()
    print(tables.to_markdown(table))
    print(f"\n{len(methods)} methods on {table.attrs['n_entries']} test entries in "
          f"{time.perf_counter() - start:.0f} s; corpus, results, tables and figures in "
          f"{args.out}/")
    return 0
