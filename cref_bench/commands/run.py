"""Evaluate a denoising method on every entry of a corpus split.

Each entry's half-maps are denoised by the method and scored with the whole metric set
(unmasked and masked; truth and reference metrics where the entry has those maps). The
results folder (default results/<method>) gets scalars.csv, notes.csv, curves.csv,
failures.csv, provenance.json and, per entry, entries/<entry>.json; with --save-maps also
maps/<entry>_denoised.mrc. An entry that fails is listed in failures.csv and the others are
scored (exit status 1). A rerun skips the entries already finished for the same method
version, parameters and corpus content; failed entries are retried. A summary table
(mean ± std, median, n per metric) is printed at the end.

Examples:
    cref-bench run --method lowpass --corpus corpus.zarr
    cref-bench run --method mypkg.denoiser:MyDenoiser --corpus corpus.zarr --split test-50 \\
        --workers 4 --param sigma=1.5
    cref-bench run --method wiener --corpus s3://bucket/corpus.zarr --scheduler tcp://10.0.0.5:8786
"""

from __future__ import annotations

import json

from cref_bench.errors import InputError

HELP = "evaluate a method on a corpus split and write the results tables"


def parse_param(text: str) -> tuple[str, object]:
    """One ``KEY=VALUE`` parameter; the value is read as JSON when it can be, else as text.

    Args:
        text: e.g. ``sigma=1.5``, ``tag=fast``, ``sizes=[1,2]``, ``flag=true``.

    Returns:
        ``(key, value)``.

    Raises:
        InputError: no ``=`` or an empty key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise InputError(f"a parameter must look like KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    parser.add_argument("--method", required=True,
                        help="a registered method name (see `cref-bench methods`), "
                             "package.module:Attribute or path/to/file.py:Attribute")
    parser.add_argument("--corpus", required=True, help="the corpus store (path or fsspec URL)")
    parser.add_argument("--split", default="test",
                        choices=("test", "test-50", "valid", "train", "all"),
                        help="which entries to evaluate (default: test)")
    parser.add_argument("--out", help="results folder (default: results/<method>)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes of a local dask cluster (default 1: in process)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="use the dask cluster at this scheduler address instead")
    parser.add_argument("--save-maps", action="store_true",
                        help="write each denoised full map to maps/<entry>_denoised.mrc")
    parser.add_argument("--limit", type=int, metavar="K", help="evaluate only the first K entries")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a method parameter (repeatable; VALUE read as JSON if it parses)")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.runner import run_method

    params = dict(parse_param(p) for p in args.param)
    result = run_method(args.method, args.corpus, split=args.split, out=args.out,
                        workers=args.workers, scheduler=args.scheduler, limit=args.limit,
                        save_maps=args.save_maps, params=params,
                        progress=not args.no_progress, seed=args.seed,
                        command_line=command_line(args))
    print(result.summary_text)
    print(f"results: {result.out}")
    if result.exit_status:
        print(f"{result.counts['failed']} entries failed; see {result.out / 'failures.csv'}")
    return result.exit_status


def command_line(args) -> list[str]:
    """The effective command line of parsed ``args`` (every option that matters), for the
    provenance; the same whether the command came from a console or from :func:`cli.main`.

    Args:
        args: the parsed arguments of this command.

    Returns:
        ``["cref-bench", "run", ...]``.
    """
    words = ["cref-bench", "run", "--method", args.method, "--corpus", str(args.corpus),
             "--split", args.split, "--seed", str(args.seed)]
    for flag, value in (("--out", args.out), ("--limit", args.limit),
                        ("--scheduler", args.scheduler)):
        if value is not None:
            words += [flag, str(value)]
    if args.workers != 1:
        words += ["--workers", str(args.workers)]
    words += [w for p in args.param for w in ("--param", p)]
    return words + (["--save-maps"] if args.save_maps else [])
