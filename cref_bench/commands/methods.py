"""List the registered denoising methods.

Shows each method of the entry-point group cref_bench.methods: its name (what
`cref-bench run --method NAME` takes), target (package.module:Attribute), version, whether
it needs a GPU, and its parameters with their defaults (pass them to `cref-bench run` as
--param KEY=VALUE). A method whose module fails to import, or whose class says through
`unavailable()` that it cannot run here (an optional dependency is missing), is listed
with the reason, and how to fix it, instead of its details. Nothing is instantiated
(no weights are loaded).

Example:
    cref-bench methods
    cref-bench methods --json
"""

from __future__ import annotations

import importlib
import inspect
import json

from cref_bench.methods import available_methods

HELP = "list the registered methods with their versions and parameters"


def _parameters(target) -> str:
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return "?"
    words = []
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            words.append(f"**{p.name}")
        elif p.kind is p.VAR_POSITIONAL:
            words.append(f"*{p.name}")
        else:
            words.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(words)


def describe(name: str, target: str) -> dict:
    """What is known of one method without building it.

    Args:
        name: the registry name.
        target: ``package.module:Attribute`` (a Method subclass or a factory).

    Returns:
        ``{"name", "target", "version", "needs_gpu", "parameters", "error"}``; ``version``
        and ``needs_gpu`` are ``None`` for a factory (known only once called). For a target
        that fails to import every field but ``error`` (``"Type: message"``) is ``None``; so
        for a class whose ``unavailable()`` returns a reason (``error`` is that reason).
    """
    found = {"name": name, "target": target, "version": None, "needs_gpu": None,
             "parameters": None, "error": None}
    module_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        check = getattr(obj, "unavailable", None) if inspect.isclass(obj) else None
        reason = check() if callable(check) else None
    except Exception as exc:  # a broken method must not hide the others
        found["error"] = f"{type(exc).__name__}: {exc}"
        return found
    if reason:
        found["error"] = str(reason)
        return found
    if inspect.isclass(obj):
        found["version"] = str(getattr(obj, "version", None))
        found["needs_gpu"] = bool(getattr(obj, "needs_gpu", False))
    found["parameters"] = _parameters(obj)
    return found


def format_methods(rows: list[dict]) -> str:
    """The method descriptions as an aligned text table (errors on their own line).

    Args:
        rows: from :func:`describe`.

    Returns:
        The text.
    """
    if not rows:
        return "no methods are registered (entry-point group cref_bench.methods)"
    heads = ("name", "version", "gpu", "target", "parameters")
    cells = []
    for row in rows:
        if row["error"]:
            cells.append((row["name"], "-", "-", row["target"], f"unavailable: {row['error']}"))
        else:
            gpu = "?" if row["needs_gpu"] is None else ("yes" if row["needs_gpu"] else "no")
            cells.append((row["name"], row["version"] or "?", gpu, row["target"],
                          row["parameters"] or "-"))
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads[:-1])]
    lines = []
    for line in (heads, *cells):
        lines.append("  ".join(f"{v:<{w}}" for v, w in zip(line, widths)) + "  " + line[-1])
    return "\n".join(lines)


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    parser.add_argument("--json", action="store_true", help="print the list as JSON")


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    rows = [describe(name, target) for name, target in sorted(available_methods().items())]
    print(json.dumps(rows, indent=2) if args.json else format_methods(rows))
    return 0
