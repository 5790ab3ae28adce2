"""Rank methods from their results folders and write the leaderboard table (and figures).

Reads the scalars (and, for figures, the curves) of one or more results folders written by
cref-bench run, typically one per method on one corpus; results of different corpus
content are refused unless --allow-mixed-corpora is given. Methods are compared on the
entries every one of them finished (the count dropped is reported) and ranked by the
primary metric; each cell is mean ± std (median). The table goes to standard output or
--out; --figures writes the distribution of the primary metric and the mean FSC_FD²
against C_ref² curves, as PNG and PDF.

Example:
    cref-bench leaderboard results/noisy results/wiener results/mine --format latex --out table.tex
"""

from __future__ import annotations

import sys

HELP = "rank methods from results folders: Markdown/LaTeX/CSV/HTML table and figures"


FORMATS = ("md", "latex", "csv", "html")


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    from cref_bench.metric_facts import DEFAULT_METRICS

    parser.add_argument("results", nargs="+", metavar="RESULTS_DIR",
                        help="results folder(s) of cref-bench run")
    parser.add_argument("--masking", choices=("masked", "unmasked"), default="masked",
                        help="which rows to compare (default: masked)")
    parser.add_argument("--format", choices=FORMATS, default="md",
                        help="table format (default: md)")
    parser.add_argument("--out", metavar="FILE",
                        help="write the table here (default: standard output)")
    parser.add_argument("--figures", metavar="DIR",
                        help="write the figures (PNG and PDF) to this folder")
    parser.add_argument("--primary", default="cref_rmse",
                        help="the metric that ranks (default: cref_rmse)")
    parser.add_argument("--metrics", help="comma-separated metrics to show (default: "
                        f"{', '.join(DEFAULT_METRICS)}, where they have values)")
    parser.add_argument("--reference", default="noisy",
                        help="the method marked as reference (default: noisy)")
    parser.add_argument("--allow-mixed-corpora", action="store_true",
                        help="compare results of different corpus content hashes")


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.atomic import write_text
    from cref_bench.metric_facts import DEFAULT_METRICS
    from cref_bench.output_paths import check_output_file, check_output_folder
    from leaderboard import tables

    check_output_file(args.out, "--out", make_parents=True)
    check_output_folder(args.figures, "--figures")
    metrics = (DEFAULT_METRICS if args.metrics is None
               else [m.strip() for m in args.metrics.split(",") if m.strip()])
    frame = tables.load_results(args.results, allow_mixed_corpora=args.allow_mixed_corpora)
    table = tables.leaderboard_table(frame, metrics=metrics, masking=args.masking,
                                     primary=args.primary, reference=args.reference)
    text = tables.RENDERERS[args.format](table)
    if args.out:
        write_text(args.out, text, make_parents=True)
    else:
        sys.stdout.write(text)
    if args.figures:
        from leaderboard.figures import write_figures

        curves = tables.load_curves(args.results, curves=("fsc_fd", "c_ref"),
                                    allow_mixed_corpora=args.allow_mixed_corpora)
        for path in write_figures(frame, curves, table, args.figures):
            print(f"wrote {path}", file=sys.stderr)
    return 0
