"""Say whether a results folder is fit to publish.

Checks a folder written by cref-bench run: its corpus is a published one (listed in
cref_bench.corpus.releases, or the store given with --corpus, or the hash given with --expect-hash)
and its split the one results are published on (--split; default: the published corpus's,
else test); every entry of the split was scored (named where --corpus is given) and none
failed (each failure is listed); provenance.json is complete (method version, parameters,
code digest, isolation and limits, package versions, hardware); every table agrees with the
entry records it is made from. Prints the verdict and every reason it is not fit.

With --corpus, the store itself is verified first: every array of every entry against the
sha256 recorded when the store was written, and the entries against the content hash; a
changed store makes every folder unfit (each changed entry and array is named). Without a
results folder, only the store is verified. --recompute (with --corpus) re-scores every
record from the denoised maps the run kept (outputs/) and names each record that differs.

Exit status 0: fit to publish; 1: not fit (the reasons are printed); 2: the folder is not a
results folder, or the corpus cannot be read.

Examples:
    cref-bench check --corpus corpus.zarr
    cref-bench check results/mine --corpus corpus.zarr
    cref-bench check results/mine --corpus corpus.zarr --recompute
    cref-bench check results/mine --expect-hash 3f0c...e9 --split test-50
    cref-bench check results/* --json
"""

from __future__ import annotations

import json

HELP = "say whether a results folder is fit to publish (corpus, entries, provenance, tables)"


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    from cref_bench.run.settings import SPLITS

    parser.add_argument("results", nargs="*", metavar="RESULTS_DIR",
                        help="results folder(s) of cref-bench run (none: verify the store "
                             "given with --corpus only)")
    parser.add_argument("--corpus", metavar="PATH",
                        help="the corpus store the results must be of (path or fsspec URL), "
                             "verified array by array")
    parser.add_argument("--expect-hash", metavar="HASH",
                        help="the corpus content hash the results must have")
    parser.add_argument("--split", choices=SPLITS,
                        help="the split that must have been evaluated (default: the "
                             "published corpus's, else test)")
    parser.add_argument("--recompute", action="store_true",
                        help="re-score every record from the kept denoised maps (needs "
                             "--corpus) and name those that differ")
    parser.add_argument("--json", action="store_true",
                        help="print the verdicts as JSON (folder, fit, findings, facts)")


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.errors import InputError
    from cref_bench.results.check import check_results

    corpus, faults = None, []
    if args.corpus is not None:
        from cref_bench.corpus.reader import open_corpus, verify_store

        corpus = open_corpus(args.corpus, warn_stale=False)
        faults = verify_store(corpus)
    elif not args.results:
        raise InputError("check", "give a results folder, or a store with --corpus")
    if args.recompute and corpus is None:
        raise InputError("--recompute", "needs the corpus store: give it with --corpus")
    reports = [check_results(folder, corpus=corpus, expect_hash=args.expect_hash,
                             split=args.split) for folder in args.results]
    for report in reports:
        for fault in faults:
            report.add("corpus", fault)
        if args.recompute and not faults:
            from cref_bench.run.scoring import recompute

            for difference in recompute(report.folder, corpus):
                report.add("recompute", difference)
    if not args.results:
        verdict = "as written" if not faults else "CHANGED since it was written"
        print(f"corpus store {corpus.location}: {verdict}" +
              "".join(f"\n  - {fault}" for fault in faults))
        return 1 if faults else 0
    if args.json:
        print(json.dumps([{"folder": str(r.folder), "fit": r.fit, "facts": r.facts,
                           "marks": r.marks,
                           "findings": [{"topic": f.topic, "message": f.message}
                                        for f in r.findings]} for r in reports],
                         indent=2, default=str))
    else:
        print("\n".join(r.format() for r in reports))
    return 0 if all(r.fit for r in reports) else 1
