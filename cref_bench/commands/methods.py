"""List the registered denoising methods.

Shows each method of the entry-point group cref_bench.methods: its name (what
`cref-bench run --method NAME` takes), version, whether it needs a GPU, target
(package.module:Attribute) and parameters with their defaults (pass them to `cref-bench run`
as --param KEY=VALUE). Nothing is imported: the facts are read from each method's source, so
the list is quick even where a method needs torch. A method that cannot be imported here (its
module or a package it imports is missing, or its source does not parse) is listed as
unavailable with the reason. What only importing can tell is marked: a version computed on
import shows "?", and a method that decides on import whether it can run here (an optional
dependency) is marked "unchecked". --check imports every method (slower) and answers both;
it imports them in a box (a sandbox of their own, as `cref-bench run` does), never here.

Examples:
    cref-bench methods
    cref-bench methods --check
    cref-bench methods --json
"""

from __future__ import annotations

import json

from cref_bench.methods.registry import available_methods

HELP = "list the registered methods with their versions and parameters"


def format_methods(rows: list[dict]) -> str:
    """The method descriptions as an aligned text table, with a note on unchecked methods.

    Args:
        rows: from :func:`cref_bench.methods.catalog.describe_statically` or
            :func:`~cref_bench.methods.catalog.describe_by_import`.

    Returns:
        The text.
    """
    if not rows:
        return "no methods are registered (entry-point group cref_bench.methods)"
    heads = ("name", "version", "gpu", "target", "parameters")
    cells = []
    for row in rows:
        if row["status"] == "unavailable":
            cells.append((row["name"], "-", "-", row["target"], f"unavailable: {row['error']}"))
            continue
        gpu = "?" if row["needs_gpu"] is None else ("yes" if row["needs_gpu"] else "no")
        name = row["name"] + ("*" if row["status"] == "unchecked" else "")
        cells.append((name, row["version"] or "?", gpu, row["target"], row["parameters"] or "-"))
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads[:-1])]
    lines = []
    for line in (heads, *cells):
        lines.append("  ".join(f"{v:<{w}}" for v, w in zip(line, widths)) + "  " + line[-1])
    if any(row["status"] == "unchecked" for row in rows):
        lines += ["", "* unchecked: decides on import whether it can run here (an optional "
                      "dependency); `cref-bench methods --check` imports it and says"]
    if any(row["status"] != "unavailable" and row["version"] is None for row in rows):
        lines.append("? known once imported: `cref-bench methods --check` shows it")
    return "\n".join(lines)


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    parser.add_argument("--check", action="store_true",
                        help="import every method to check that it can run here, and show what "
                             "only importing tells (slower: may import torch)")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.methods import catalog as method_catalog

    methods = dict(sorted(available_methods().items()))
    if args.check:
        rows = method_catalog.describe_in_box(methods)
    else:
        rows = [method_catalog.describe_statically(n, t) for n, t in methods.items()]
    print(json.dumps(rows, indent=2) if args.json else format_methods(rows))
    return 0
