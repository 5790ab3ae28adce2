"""The embedded default: a phantom corpus, the baselines, the leaderboard and the report.

Builds a small corpus of procedural phantoms with known truth (a dozen entries of 64-96³ by
default; reused when it is already there), evaluates the baselines on its test split with the
whole metric set, prints the leaderboard table (masked rows, ranked by the truth correlation,
the phantoms' truth being known, C_ref RMSE beside it with its Kendall τ), writes
the report (cref-bench report) and prints the path of its index.html. The baselines are the
four classic filters and lafter; crefdenoiser joins when its weights are at hand (--weights,
else the environment variable CREFDENOISER_WEIGHTS), topaz3d when topaz-em is installed (run
whole, patch_size=0, on these small maps). Everything lands under --out: the corpus, one
results folder per method, the table as Markdown and LaTeX, and the report. The exit status
is 1 when a method failed entries (they are in the table and the report).

Example:
    cref-bench demo --out cref-bench-demo
"""

# This command ties the packages together (the phantom generator of dataset_builder, the
# runner of cref_bench, the methods found through the registry, the tables of leaderboard);
# it is the only module outside dataset_builder that imports it.

from __future__ import annotations

import os
import time
from pathlib import Path

from cref_bench.errors import InputError

HELP = "build a small phantom corpus, run the baselines, print the leaderboard, write the report"

CLASSIC_METHODS = ("noisy", "lowpass", "fsc-weight", "wiener", "lafter")
"""The methods the demo always runs."""

WEIGHTS_ENV = "CREFDENOISER_WEIGHTS"
"""The environment variable of the crefdenoiser weights (as the method reads it)."""

OPTIONAL_PARAMS = {"topaz3d": {"patch_size": 0}}
"""Parameters of the optional methods on the demo's small maps (Topaz whole, as its author
advised for maps this small)."""


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    parser.add_argument("--out", default="cref-bench-demo",
                        help="folder for the corpus, results, tables and report "
                             "(default: cref-bench-demo)")
    parser.add_argument("--entries", type=int, default=12,
                        help="phantoms in the corpus (default: 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the phantoms (default: 0)")
    parser.add_argument("--methods",
                        help="comma-separated methods to rank (default: "
                             f"{','.join(CLASSIC_METHODS)}, plus crefdenoiser with weights and "
                             "topaz3d when installed)")
    parser.add_argument("--weights", metavar="PATH",
                        help="crefdenoiser weights (.pt or the published .index); default "
                             f"${WEIGHTS_ENV}; without them crefdenoiser is left out")
    parser.add_argument("--workers", type=int, default=1,
                        help="dask workers for the runs (default: 1)")
    parser.add_argument("--no-report", action="store_true",
                        help="skip the report (figures and HTML page)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def default_methods(weights: str | None = None) -> tuple[list[str], dict[str, dict], list[str]]:
    """The demo's methods here: the classic ones, crefdenoiser with weights, topaz3d where
    installed.

    Args:
        weights: the crefdenoiser weights (default ``$CREFDENOISER_WEIGHTS``).

    Returns:
        ``(methods, params by method, why each optional method is left out)``.
    """
    from cref_bench.methods.registry import resolve

    methods, params, skipped = list(CLASSIC_METHODS), {}, []
    weights = weights or os.environ.get(WEIGHTS_ENV)
    if weights:
        methods.append("crefdenoiser")
        params["crefdenoiser"] = {"weights": weights}
    else:
        skipped.append(f"crefdenoiser: no weights (--weights PATH or ${WEIGHTS_ENV})")
    why = resolve("topaz3d").unavailable()
    if why is None:
        methods.append("topaz3d")
        params["topaz3d"] = dict(OPTIONAL_PARAMS["topaz3d"])
    else:
        skipped.append(f"topaz3d: {why}")
    return methods, params, skipped


def run_demo(out: str | Path, *, entries: int = 12, seed: int = 0, methods=CLASSIC_METHODS,
             params: dict[str, dict] | None = None, workers: int = 1, report: bool = True,
             progress: bool = True):
    """Build the phantom corpus, evaluate ``methods`` on its test split, rank them and write
    the report.

    Args:
        out: folder for everything the demo writes.
        entries: phantoms in the corpus (64-96³ boxes, 0.8-2 Å voxels, 2-8 Å resolutions).
        seed: seed of the phantoms.
        methods: registered method names.
        params: parameters by method name.
        workers: dask workers for the runs (1 runs in this process).
        report: also write the report under ``out/report``.
        progress: show progress bars.

    Returns:
        ``(table, report)``: the leaderboard table (see
        :func:`leaderboard.tables.leaderboard_table`) and the
        :class:`leaderboard.report.Report` (None without ``report``).

    Raises:
        InputError: no method given, or bad counts.
        CorpusError: the corpus at ``out`` was written with another seed.
        MethodError: a method cannot be built.
    """
    from cref_bench.atomic import write_text
    from cref_bench.run.runner import run_method
    from dataset_builder.synthetic import write_phantom_corpus
    from leaderboard import tables
    from leaderboard.loading import load

    methods, params = list(methods), params or {}
    if not methods:
        raise InputError("give at least one method")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = write_phantom_corpus(out / "corpus.zarr", entries, seed=seed, progress=progress)
    folders = [run_method(name, corpus, split="test", out=out / "results" / name,
                          params=params.get(name), workers=workers, progress=progress).out
               for name in methods]
    table = tables.leaderboard_table(load(folders), masking="masked")
    write_text(out / "leaderboard.md", tables.to_markdown(table))
    write_text(out / "leaderboard.tex", tables.to_latex(table))
    written = None
    if report:
        from leaderboard.report import write_report

        written = write_report(folders, out / "report")
    return table, written


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.output_paths import check_output_folder
    from leaderboard import tables

    check_output_folder(args.out, "--out")
    if args.methods is None:
        methods, params, skipped = default_methods(args.weights)
        for line in skipped:
            print(f"left out: {line}")
    else:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        params = {"crefdenoiser": {"weights": args.weights}} if args.weights else {}
        params.update({m: p for m, p in OPTIONAL_PARAMS.items() if m in methods})
    start = time.perf_counter()
    table, report = run_demo(args.out, entries=args.entries, seed=args.seed, methods=methods,
                             params=params, workers=args.workers, report=not args.no_report,
                             progress=not args.no_progress)
    print()
    print(tables.to_markdown(table))
    print(f"\n{len(methods)} methods on {table.attrs['n_entries']} test entries in "
          f"{time.perf_counter() - start:.0f} s; corpus, results and tables in {args.out}/")
    if report is not None:
        print(f"report: {report.index}")
    return 1 if table.attrs["failures"] else 0
