"""Rank methods from their results folders and write the leaderboard table (and figures).

Reads the scalars (and, for figures, the curves) of one or more results folders written by
cref-bench run, one per method setting on one corpus; results of different corpus content are
refused unless --allow-mixed-corpora is given. Several settings of one method are separate
rows, labelled by the parameters that differ (lowpass (threshold=0.5)). Methods are compared
on the entries every one of them scored (the entries dropped are listed) and ranked by the
primary metric; each cell is mean ± std (median). A value that is a bound (an FSC that never
falls below its threshold up to Nyquist) is shown as one ("< 2.40") and ranks as at least as
good as its value; the best mean of each metric is bolded only among the rows with the most
values of it ([n=k]: only k entries had a value; such a mean is never bolded over a row with
more). A method with failures shows how many entries failed, by kind; one that failed every
entry is listed last. The table goes to standard output or --out; --figures writes the
distribution of the primary metric and the mean FSC_FD² against C_ref² curves (PNG, PDF and
the data as CSV). Only results fit to publish (as cref-bench check says) are ranked; the
others are listed under the table with the reasons (--include-unfit ranks them too, still
listed); --corpus or --expect-hash names the corpus they must be of. Results made without a
sandbox, or with the method trusted to run in process (`cref-bench run --trust-method`), are
marked under the table. The exit status
is 1 when the results hold failed entries (the table is written all the same); cref-bench
report writes the full report.

Example:
    cref-bench leaderboard results/noisy results/wiener results/mine --format latex --out table.tex
"""

from __future__ import annotations

import sys

HELP = "rank methods from results folders: Markdown/LaTeX/CSV/HTML table and figures"


FORMATS = ("md", "latex", "csv", "html")


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    from cref_bench.metrics.facts import DEFAULT_METRICS

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
    parser.add_argument("--primary",
                        help="the metric that ranks (default: truth_corr where the "
                             "corpus has truth, else heldout_corr where single-map methods "
                             "have it, else cref_rmse)")
    parser.add_argument("--metrics", help="comma-separated metrics to show (default: "
                        f"{', '.join(DEFAULT_METRICS)}, where they have values)")
    parser.add_argument("--reference", default="noisy",
                        help="the method marked as reference (default: noisy)")
    add_corpus_args(parser)


def add_corpus_args(parser) -> None:
    """The options that say which corpus the ranked results must be of (``leaderboard`` and
    ``report``)."""
    parser.add_argument("--allow-mixed-corpora", action="store_true",
                        help="compare results of different corpus content hashes")
    parser.add_argument("--corpus", metavar="PATH",
                        help="the corpus store the results must be of, for the check of each "
                             "folder (see cref-bench check)")
    parser.add_argument("--expect-hash", metavar="HASH",
                        help="the corpus content hash the results must have, for the check")
    parser.add_argument("--include-unfit", action="store_true",
                        help="rank also the results that are not fit to publish (they are "
                             "listed all the same)")


def fit_folders(args, reports) -> list[str]:
    """The results folders to rank: those fit to publish, or all with ``--include-unfit``.

    Args:
        args: the parsed arguments (``results``, ``include_unfit``).
        reports: the :class:`cref_bench.results.check.CheckReport` of each folder, in order.

    Returns:
        The folders.

    Raises:
        InputError: no folder is fit (the reasons are printed to standard error first).
    """
    from cref_bench.errors import InputError

    if args.include_unfit:
        return list(args.results)
    fit = [folder for folder, report in zip(args.results, reports) if report.fit]
    if not fit:
        for report in reports:
            print(report.format(), file=sys.stderr)
        raise InputError("results", "no results folder is fit to publish (the reasons are "
                         "above; see cref-bench check); --include-unfit ranks them anyway")
    return fit


def unfit_note(reports, fmt: str) -> str:
    """The note listing results folders that are not fit to publish, and those marked (no
    sandbox, trusted, network), in a table format.

    Args:
        reports: :class:`cref_bench.results.check.CheckReport` of every folder.
        fmt: ``md``, ``latex`` or ``html`` (``csv`` has no place for a note: empty).

    Returns:
        The note (empty when every folder is fit and unmarked).
    """
    import html

    unfit = [r for r in reports if not r.fit]
    marked = [r for r in reports if r.marks]
    if not (unfit or marked) or fmt == "csv":
        return ""
    parts = []
    if unfit:
        parts.append(("Not fit to publish (cref-bench check FOLDER says why):",
                      [f"{r.facts.get('method')} ({r.folder}): "
                       + ", ".join(dict.fromkeys(f.topic for f in r.findings)) for r in unfit]))
    if marked:
        parts.append(("Marked (how the method ran; see cref-bench check FOLDER):",
                      [f"{r.facts.get('method')} ({r.folder}): " + "; ".join(r.marks)
                       for r in marked]))
    if fmt == "md":
        return "".join("\n" + head + "\n\n" + "".join(f"- {i}\n" for i in items)
                       for head, items in parts)
    if fmt == "latex":
        return "".join(f"% {line}\n" for head, items in parts for line in [head, *items])
    return "".join(f'<div class="cref-bench-unfit"><p>{html.escape(head)}</p><ul>'
                   + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul></div>\n"
                   for head, items in parts)


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.atomic import write_text
    from cref_bench.metrics.facts import DEFAULT_METRICS
    from cref_bench.output_paths import check_output_file, check_output_folder
    from leaderboard import tables
    from leaderboard.loading import load

    check_output_file(args.out, "--out", make_parents=True)
    check_output_folder(args.figures, "--figures")
    metrics = (DEFAULT_METRICS if args.metrics is None
               else [m.strip() for m in args.metrics.split(",") if m.strip()])
    reports = check_all(args)
    results = load(fit_folders(args, reports), allow_mixed_corpora=args.allow_mixed_corpora)
    table = tables.leaderboard_table(results, metrics=metrics, masking=args.masking,
                                     primary=args.primary, reference=args.reference)
    text = tables.RENDERERS[args.format](table) + unfit_note(reports, args.format)
    if args.out:
        write_text(args.out, text, make_parents=True)
    else:
        sys.stdout.write(text)
    if args.format == "csv":
        for report in reports:
            if not report.fit:
                print(f"not fit to publish: {report.format()}", file=sys.stderr)
    if args.figures:
        for path in write_figures(results, table, args.figures):
            print(f"wrote {path}", file=sys.stderr)
    if len(results.failures):
        print(f"the results hold {len(results.failures)} failed entries (see the table's "
              "note)", file=sys.stderr)
        return 1
    return 0


def write_figures(results, table, out_dir) -> list:
    """The leaderboard's figures: the distribution of the primary metric and the mean
    FSC_FD² against C_ref² curves, over the table's compared entries.

    Args:
        results: the :class:`leaderboard.loading.ResultSet`.
        table: its ranked table.
        out_dir: the folder.

    Returns:
        The paths written (PNG, PDF and CSV of each figure drawn).

    Raises:
        OSError: a figure cannot be written.
    """
    from leaderboard.figures import cref_curves, distribution
    from leaderboard.figures.common import Context, Drawn

    ctx = Context(results, table)
    a = table.attrs
    paths = distribution.plot(ctx, out_dir, a["primary"],
                              f"distribution_{a['primary']}_{a['masking']}")
    curves = cref_curves.make(ctx, out_dir, f"cref_curves_{a['masking']}")
    return paths + (curves.paths if isinstance(curves, Drawn) else [])


def check_all(args) -> list:
    """The verdict of ``cref-bench check`` on every results folder of the leaderboard."""
    from cref_bench.results.check import check_results

    corpus = None
    if args.corpus is not None:
        from cref_bench.corpus.reader import open_corpus

        corpus = open_corpus(args.corpus)
    return [check_results(folder, corpus=corpus, expect_hash=args.expect_hash)
            for folder in args.results]
