"""List the recipes of the external method: programs that cref-bench can run as methods.

A recipe is a TOML file saying how to run a program on a half-map pair (or on one map) and
where it writes its output; `cref-bench run --method recipe:NAME` runs it. Recipes are found
in the folder given with --recipes, then in $XDG_CONFIG_HOME/cref-bench/recipes (else
~/.config/cref-bench/recipes), then among those shipped with cref-bench; the first holding a
name wins. For each the table gives its input (the pair, or each map on its own), whether its
program is found here (without running it), and its file.

Examples:
    cref-bench recipes
    cref-bench recipes --recipes ~/my-recipes
    cref-bench run --method recipe:relion-postprocess --corpus corpus.zarr --param sharpening=[]
"""

from __future__ import annotations

HELP = "list the recipes of the external method (programs run as methods)"


def add_args(parser) -> None:
    """Register the command's arguments.

    Args:
        parser: the sub-command's ``argparse.ArgumentParser``.
    """
    parser.add_argument("--recipes", metavar="DIR", help="a folder of recipes searched first")


def program_status(recipe) -> tuple[str, str]:
    """Whether a recipe's program is found here, without running it.

    Args:
        recipe: a :class:`baselines.external.recipes.Recipe`.

    Returns:
        ``("found", "")``, ``("missing", "<file> not found; <how to install it>")`` or
        ``("unchecked", "<why>")``.
    """
    import shutil
    from pathlib import Path

    from baselines.external.method import PLACEHOLDERS
    from baselines.external.program import default_threads
    from baselines.external.template import render

    program = recipe.settings.get("program")
    if program is None:
        return "unchecked", "the recipe names no program"
    values = {**{k: k for k in PLACEHOLDERS}, **recipe.params, "threads": default_threads()}
    for word in [program] if isinstance(program, str) else program:
        try:
            path = render(word, values, quote=False)
        except ValueError as exc:
            return "unchecked", str(exc)
        if not (shutil.which(path) if "/" not in path else Path(path).expanduser().is_file()):
            return "missing", f"{path} not found" + (f"; {recipe.install}" if recipe.install
                                                    else "")
    return "found", ""


def main(args) -> int:
    """Print the table of recipes, then how to install the programs that are missing.

    Args:
        args: parsed arguments (``recipes``).

    Returns:
        0 (a recipe folder that is not a folder, or a recipe file that cannot be read,
        raises :class:`~cref_bench.errors.MethodError`).
    """
    from baselines.external.recipes import available_recipes, read_recipe

    rows, advice = [], []
    for name, path in available_recipes(args.recipes).items():
        recipe = read_recipe(path)
        status, detail = program_status(recipe)
        rows.append((name, recipe.input, status, recipe.description, str(path)))
        if detail:
            advice.append(f"{name}: {detail}")
    header = ("recipe", "input", "program", "what it does", "file")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    if advice:
        print()
        print("\n".join(advice))
    return 0
