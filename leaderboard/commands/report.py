"""Write the report of results folders: every figure of the paper's evaluation, statistics and
one self-contained HTML page.

Reads one or more results folders of cref-bench run (one per method setting, on one corpus;
several settings of one method are separate rows, labelled by the parameters that differ)
and writes under --out: index.html (open it in any browser, offline: figures embedded, no
network), tables/ (the ranked table with bootstrap confidence intervals, the pairwise
Wilcoxon signed-rank tests with Holm's correction, the breakdown by resolution and box size,
every entry's values, the failures and the provenance, each as CSV, Markdown and LaTeX) and
figures/ (PNG and PDF, with the data drawn as CSV beside each). Figures that the results
cannot give (no reference map, no model, no denoised half-maps) are listed with the reason.
Only results fit to publish (as cref-bench check says) go into the report; the others are
named with the reasons (--include-unfit takes them too). The path of index.html is printed.
The exit status is 1 when the results hold failed entries (the report is written all the
same and lists them).

Example:
    cref-bench report results/noisy results/wiener results/mine --out report
"""

from __future__ import annotations

HELP = "write the HTML report, figures, statistics and tables of results folders"


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    from cref_bench.metrics.facts import DEFAULT_METRICS
    from leaderboard.commands.leaderboard import add_corpus_args

    parser.add_argument("results", nargs="+", metavar="RESULTS_DIR",
                        help="results folder(s) of cref-bench run")
    parser.add_argument("--out", default="report", metavar="DIR",
                        help="the report folder (default: report)")
    parser.add_argument("--masking", choices=("masked", "unmasked"), default="masked",
                        help="which rows to rank and draw (default: masked)")
    parser.add_argument("--primary",
                        help="the metric that ranks and is tested (default: truth_corr where the "
                             "corpus has truth, else heldout_corr where single-map methods "
                             "have it, else cref_rmse)")
    parser.add_argument("--metrics", help="comma-separated metrics of the tables (default: "
                        f"{', '.join(DEFAULT_METRICS)}, where they have values)")
    parser.add_argument("--reference", default="noisy",
                        help="the method marked as reference (default: noisy)")
    parser.add_argument("--entry", action="append", metavar="ID",
                        help="an entry of the single-entry figures (repeat for more; default: "
                             "the one of median half-map resolution and the coarsest)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the bootstrap intervals (default: 0)")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="family-wise error rate of the pairwise tests (default: 0.05)")
    add_corpus_args(parser)


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.metrics.facts import DEFAULT_METRICS
    from cref_bench.output_paths import check_output_folder
    from leaderboard.commands.leaderboard import check_all, fit_folders
    from leaderboard.report import write_report

    check_output_folder(args.out, "--out")
    metrics = (DEFAULT_METRICS if args.metrics is None
               else [m.strip() for m in args.metrics.split(",") if m.strip()])
    corpus = None
    if args.corpus is not None:
        from cref_bench.corpus.reader import open_corpus

        corpus = open_corpus(args.corpus)
    reports = check_all(args)
    for unfit in (r for r in reports if not r.fit):
        print(("ranked all the same (--include-unfit): " if args.include_unfit else
               "left out of the report: ") + unfit.format())
    report = write_report(fit_folders(args, reports), args.out, masking=args.masking,
                          primary=args.primary, metrics=metrics, reference=args.reference,
                          entries=args.entry, seed=args.seed, alpha=args.alpha,
                          allow_mixed_corpora=args.allow_mixed_corpora, corpus=corpus,
                          expect_hash=args.expect_hash)
    failed = len(report.results.failures)
    if failed:
        print(f"the results hold {failed} failed entries; the report lists them")
    print(report.index)
    return report.exit_status
