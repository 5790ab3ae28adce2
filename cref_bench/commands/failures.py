"""Print the failed entries of a results folder, each with the method's traceback.

Reads failures.csv of a folder written by cref-bench run and prints, per failed entry, its
kind (whose fault: see cref_bench.run.contract), the error and the traceback that ends in
the method's own file and line, and the entry's log (logs/<entry>.log) where there is one.
--brief prints one line per entry; --entry and --kind keep some. The exit status is 0 when
the folder could be read, failures or not.

Examples:
    cref-bench failures results/mine
    cref-bench failures results/mine --entry SYN-0007
    cref-bench failures results/mine --kind timeout --brief
"""

from __future__ import annotations

HELP = "print the failed entries of a results folder with the method's tracebacks"


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    parser.add_argument("results", metavar="RESULTS_DIR", help="a results folder of cref-bench run")
    parser.add_argument("--entry", action="append", default=[], metavar="ID",
                        help="only this entry (repeatable)")
    parser.add_argument("--kind", action="append", default=[],
                        help="only failures of this kind (repeatable): error, output, "
                             "inputs-modified, timeout, memory, crashed, load, metrics")
    parser.add_argument("--brief", action="store_true",
                        help="one line per failed entry, without tracebacks")


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.results.folder import ResultsFolder

    failures = ResultsFolder(args.results).failures()
    shown = [f for f in failures if (not args.entry or f["entry"] in args.entry)
             and (not args.kind or f["kind"] in args.kind)]
    for failure in shown:
        print(f"{failure['entry']}  {failure['kind']}  {failure['message']}")
        if args.brief:
            continue
        for line in (failure["traceback"] or "(no traceback recorded)").rstrip().splitlines():
            print(f"    {line}")
        if failure["log"]:
            print(f"    log: {failure['log']}")
        print()
    kinds = {}
    for failure in failures:
        kinds[failure["kind"]] = kinds.get(failure["kind"], 0) + 1
    listing = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items(), key=lambda x: -x[1]))
    print(f"{args.results}: {len(failures)} failed entries" + (f" ({listing})" if listing else "")
          + (f"; {len(shown)} shown" if len(shown) != len(failures) else ""))
    return 0
