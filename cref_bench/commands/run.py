"""Evaluate a denoising method on every entry of a corpus split.

Each entry's half-maps are denoised by the method and scored with the whole metric set
(unmasked and masked; truth and reference metrics where the entry has those maps). The
results folder (default results/<method>) gets scalars.csv, notes.csv, curves.csv,
failures.csv, provenance.json and, per entry, entries/<entry>.json; with --save-maps also
maps/<entry>_denoised.mrc; the method's own output goes to logs/.

The method runs in its box (a sandbox of its own made with bubblewrap: read-only inputs
labelled by entry, one scratch folder, no store, no results folder, no network unless
--allow-network, every process it starts killed with it), with --timeout seconds and
--memory-limit bytes per entry; a method that is not part of cref-bench is built there and
never imported by this process. cref-bench's own classic filters run in this process (unless
--isolation process), and so does any method given --trust-method (recorded in the
provenance and marked by check, the leaderboard and the report). Where no sandbox can be
made the run goes on with a warning and the provenance records sandbox: none. An entry that
fails -- the method raised, returned a map
off the grid, non-finite or constant, changed its inputs, timed out, went over memory or
crashed -- is listed in failures.csv with the kind of failure, the others are scored, and
the exit status is 1; `cref-bench failures RESULTS_DIR` prints each one's traceback (also
in logs/<entry>.log). A rerun skips the entries already finished for the same method,
version, parameters (those of --param and the method's own), all of the method's code,
corpus content, cref-bench version and scoring code, and says how many it reused and
computed, and why; failed entries are tried again only with --retry-failed. A folder that
holds the results of other parameters is not replaced: the default folder gives way to
results/<method>-<parameters>, and a folder given with --out is refused (--replace replaces
them). Each denoised output is kept in outputs/ (compressed float32; turn off with
--no-keep-outputs) so that `cref-bench check --recompute` can re-score the records. A
summary table (mean ± std, median, n per metric) is printed at the end.

Examples:
    cref-bench run --method lowpass --corpus corpus.zarr
    cref-bench run --method mypkg.denoiser:MyDenoiser --corpus corpus.zarr --split test-50 \\
        --workers 4 --param sigma=1.5
    cref-bench run --method wiener --corpus s3://bucket/corpus.zarr --scheduler tcp://10.0.0.5:8786
    cref-bench run --method crefdenoiser --corpus corpus.zarr --timeout 600 --memory-limit 8G
    cref-bench run --method recipe:relion-postprocess --corpus corpus.zarr  # see cref-bench recipes
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


def parse_memory(text: str) -> int | str | None:
    """A memory limit: bytes, or with a suffix K, M, G or T (powers of 1024); ``auto`` or
    ``none``.

    Args:
        text: e.g. ``8G``, ``512M``, ``1000000``, ``auto``, ``none``.

    Returns:
        Bytes, ``"auto"`` or None.

    Raises:
        InputError: not a positive size.
    """
    word = text.strip().lower()
    if word in ("auto", "none"):
        return None if word == "none" else "auto"
    scale = 1024 ** ("kmgt".index(word[-1]) + 1) if word[-1:] in ("k", "m", "g", "t") else 1
    number = word[:-1] if scale > 1 else word
    try:
        value = float(number) * scale
    except ValueError:
        value = 0.0
    if not value >= 1:
        raise InputError("--memory-limit", f"expected a size such as 8G, 512M, auto or none, "
                         f"got {text!r}")
    return int(value)


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    from cref_bench.run.settings import DEFAULT_TIMEOUT, ISOLATION, SPLITS

    parser.add_argument("--method", required=True,
                        help="a registered method name (see `cref-bench methods`), "
                             "package.module:Attribute or path/to/file.py:Attribute")
    parser.add_argument("--corpus", required=True, help="the corpus store (path or fsspec URL)")
    parser.add_argument("--split", default="test",
                        choices=SPLITS,
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
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"time limit of the method on one entry (default "
                             f"{DEFAULT_TIMEOUT:g}; 0: none)")
    parser.add_argument("--memory-limit", default="auto", metavar="SIZE",
                        help="resident memory limit of the method's process on one entry, "
                             "e.g. 8G (default auto: 80%% of the machine's memory shared by "
                             "the workers; none: no limit)")
    parser.add_argument("--isolation", default="auto", choices=ISOLATION,
                        help="run the method in its box (process), in this process "
                             "(in-process: no limits; cref-bench's own methods, or with "
                             "--trust-method), or in process only for cref-bench's own "
                             "methods known safe there (auto, default)")
    parser.add_argument("--trust-method", action="store_true",
                        help="let a method that is not part of cref-bench be imported and "
                             "run in this process (recorded, and marked by check)")
    parser.add_argument("--allow-network", action="store_true",
                        help="let the method's box use the network (recorded)")
    parser.add_argument("--no-keep-outputs", action="store_true",
                        help="do not keep the denoised outputs (for large corpora; then "
                             "`cref-bench check --recompute` cannot re-score)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="evaluate again the entries that failed in an earlier run")
    parser.add_argument("--replace", action="store_true",
                        help="replace the results of another setting (other parameters) in "
                             "the results folder (default: a folder given with --out that "
                             "holds another setting is refused, and the default folder "
                             "gives way to results/<method>-<parameters>)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.output_paths import check_output_folder
    from cref_bench.run.runner import run_method

    check_output_folder(args.out or "results", "--out")
    result = run_method(args.method, args.corpus, settings(args),
                        command_line=getattr(args, "command_line", None))
    print("\n".join([*result.messages, result.summary_text]))
    print(f"results: {result.out}")
    if result.exit_status:
        kinds = ", ".join(f"{n} {kind}" for kind, n in
                          result.provenance["failures_by_kind"].items())
        print(f"{result.counts['failed']} entries failed ({kinds}); see "
              f"{result.out / 'failures.csv'}, or their tracebacks with: cref-bench failures "
              f"{result.out}")
    return result.exit_status


def settings(args):
    """The run's :class:`~cref_bench.run.settings.RunSettings` from the parsed ``args``.

    Raises:
        InputError: a bad parameter or setting.
    """
    from cref_bench.run.settings import RunSettings

    return RunSettings(split=args.split, out=args.out, workers=args.workers,
                       scheduler=args.scheduler, limit=args.limit, save_maps=args.save_maps,
                       params=dict(parse_param(p) for p in args.param),
                       progress=not args.no_progress, seed=args.seed,
                       isolation=args.isolation, timeout=args.timeout or None,
                       memory_limit=parse_memory(args.memory_limit),
                       retry_failed=args.retry_failed, replace=args.replace,
                       trust_method=args.trust_method, network=args.allow_network,
                       keep_outputs=not args.no_keep_outputs)
