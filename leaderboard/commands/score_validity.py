"""Measure how far each truth-free score can be trusted, on results from a corpus with truth.

Reads results folders of cref-bench run on one corpus with truth (phantoms, simulated
reconstructions; --corpus names it, and every folder must be of its content) and judges every
truth-free score (C_ref RMSE and L1, the FSC-0.5 change, the held-out scores, the model-map
and reference-map FSC) by the truth metrics: Kendall's τ between the methods within each entry,
averaged over entries with a 95 % bootstrap interval, and over all rows pooled; over every
method and over the methods that are not probes. With adversarial probes among the results
(methods named probe-..., e.g. cref-bench run --method probe-inject) it lists, for each
score, the probes it ranks above an honest filter (--honest, default fsc-weight). Prints the
summary against --truth as Markdown; --out also writes tau.csv (every score against every
truth metric), probes.csv and score-validity.md there.

Example:
    cref-bench score-validity results/phantom/* --corpus phantom.zarr --out validity/phantom
"""

from __future__ import annotations

import sys

HELP = "Kendall's τ of every truth-free score against the truth, and the probes each one ranks"


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    parser.add_argument("results", nargs="+", metavar="RESULTS_DIR",
                        help="results folders of cref-bench run on the corpus")
    parser.add_argument("--corpus", required=True, metavar="KNOWN_TRUTH",
                        help="the corpus the results are of; it must hold truth maps")
    parser.add_argument("--masking", choices=("masked", "unmasked"), default="masked",
                        help="which rows to judge (default: masked)")
    parser.add_argument("--truth", default="truth_corr",
                        help="the truth metric of the printed summary (default: truth_corr)")
    parser.add_argument("--honest", default="fsc-weight",
                        help="the honest method the probes are compared with "
                             "(default: fsc-weight)")
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default: 0)")
    parser.add_argument("--out", metavar="DIR", help="also write the tables to this folder")


def render(summary, tau_text: str, corpus: str, masking: str, truth: str) -> str:
    """The Markdown of the summary table with its caption.

    Args:
        summary: from :func:`leaderboard.validity.summary`.
        tau_text: what the entries are (``"30 entries, 9 methods"``).
        corpus: the corpus location.
        masking: the rows judged.
        truth: the truth metric.

    Returns:
        The Markdown text.
    """
    from leaderboard.tables import markdown_grid

    def number(x, digits=3):
        return "n/a" if x != x else f"{x:+.{digits}f}"

    headers = ["score", f"τ vs {truth} (mean within entries)", "95 % CI", "entries",
               "τ pooled", "τ without probes", "probes ranked above the honest filter"]
    cells = [[r.score, number(r.tau), f"[{number(r.ci_low)}, {number(r.ci_high)}]",
              str(r.entries), number(r.tau_pooled), number(r.honest_tau),
              r.probes_above or "none"] for r in summary.itertuples()]
    caption = (f"Score validity on {corpus} ({masking} rows; {tau_text}). τ: Kendall's τ-b "
               f"between each score and {truth}, both oriented so that higher is better, per "
               "entry over the methods, averaged over entries (95 % bootstrap interval), and "
               "over every (method, entry) row pooled; 1 orders methods as the truth does, 0 "
               "is unrelated.\n")
    return caption + "\n" + markdown_grid(headers, cells, align="l")


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from pathlib import Path

    from cref_bench.atomic import write_text
    from cref_bench.corpus.reader import open_corpus
    from cref_bench.errors import InputError
    from cref_bench.metrics.facts import SCORES, TRUTH_METRICS, metric_facts
    from cref_bench.output_paths import check_output_folder
    from leaderboard import validity
    from leaderboard.loading import load

    check_output_folder(args.out, "--out")
    metric_facts(args.truth)
    if args.truth not in TRUTH_METRICS:
        raise InputError(f"--truth must be a truth metric ({', '.join(TRUTH_METRICS)}), "
                         f"not {args.truth!r}")
    corpus = open_corpus(args.corpus)
    first = corpus.ids("all")[:1]
    if not first or corpus.entry(first[0]).truth is None:
        raise InputError(args.corpus, "holds no truth maps: score validity needs a corpus with "
                         "truth (cref-bench synth)")
    results = load(args.results)
    for label, record in results.provenance.items():
        found = (record.get("dataset") or {}).get("content_hash")
        if found != corpus.content_hash:
            raise InputError(str(results.folders[label]),
                             f"holds results of corpus content {found}, not of {args.corpus} "
                             f"({corpus.content_hash})")
    tau = validity.agreement(results, args.masking, seed=args.seed)
    probes = None
    if any(validity.is_probe(s.method) for s in results.settings.values()):
        probes = validity.probes_above(results, args.honest, args.masking,
                                       scores=(*SCORES, *TRUTH_METRICS))
    summary = validity.summary(tau, probes, args.truth)
    entries = results.scalars["entry"].nunique()
    text = render(summary, f"{entries} entries, {len(results.labels)} method settings",
                  args.corpus, args.masking, args.truth)
    sys.stdout.write(text)
    if args.out:
        out = Path(args.out)
        write_text(out / "tau.csv", tau.to_csv(index=False), make_parents=True)
        if probes is not None:
            write_text(out / "probes.csv", probes.to_csv(index=False))
        write_text(out / "score-validity.md", text)
    return 0
