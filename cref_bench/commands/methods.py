"""List the registered denoising methods.

Shows each method of the entry-point group cref_bench.methods: its name (what
`cref-bench run --method NAME` takes), version, whether it needs a GPU, target
(package.module:Attribute) and parameters with their defaults (pass them to `cref-bench run`
as --param KEY=VALUE). Each method is imported, not built: method modules import their heavy
libraries (torch, numba) only when a method is built, so the list is quick. cref-bench's own
methods are imported here; any other is imported in a box (a sandbox of its own, as
`cref-bench run` does), never in this process. A method that
cannot run here (its module or a package it needs is missing, or it says why itself, as a
missing optional dependency) is listed as unavailable with the reason.

Examples:
    cref-bench methods
    cref-bench methods --json
"""

from __future__ import annotations

import json

from cref_bench.methods.registry import available_methods

HELP = "list the registered methods with their versions and parameters"


def format_methods(rows: list[dict]) -> str:
    """The method descriptions as an aligned text table.

    Args:
        rows: from :func:`cref_bench.methods.catalog.describe`.

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
        cells.append((row["name"], row["version"] or "?", gpu, row["target"],
                      row["parameters"] or "-"))
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads[:-1])]
    lines = []
    for line in (heads, *cells):
        lines.append("  ".join(f"{v:<{w}}" for v, w in zip(line, widths)) + "  " + line[-1])
    if any(row["status"] == "ok" and row["version"] is None for row in rows):
        lines += ["", "? a factory: its method says once built"]
    return "\n".join(lines)


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    parser.add_argument("--json", action="store_true", help="print the list as JSON")


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.methods.catalog import describe, describe_in_box

    methods = dict(sorted(available_methods().items()))
    own = {name: target for name, target in methods.items() if _is_own(target)}
    boxed = dict(zip((n for n in methods if n not in own),
                     describe_in_box({n: t for n, t in methods.items() if n not in own})))
    rows = [describe(name, target) if name in own else boxed[name]
            for name, target in methods.items()]
    print(json.dumps(rows, indent=2) if args.json else format_methods(rows))
    return 0


def _is_own(target: str) -> bool:
    """Whether a registered target is one of cref-bench's own methods (imported here)."""
    from cref_bench.errors import MethodError
    from cref_bench.methods.code import module_root
    from cref_bench.run.trust import is_own

    try:
        root = module_root(target.partition(":")[0])
    except MethodError:
        return False
    return root is not None and is_own((root,))
