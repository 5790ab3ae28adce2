"""Every help text tells the truth about flags: each flag that `cref-bench --help` and each
`cref-bench COMMAND --help` mention, and each flag the README and the pages of docs/ give to a
cref-bench command, exists on the command it is given to."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from cref_bench import cli

README = Path(__file__).resolve().parents[1] / "README.md"
PAGES = [README, *sorted((README.parent / "docs").glob("*.md"))]
COMMANDS = sorted(cli.command_modules())

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
OURS = re.compile(r"(?:cref-bench|cref_bench\.cli)(?:\s+-v)?\s+([a-z][a-z0-9-]*)")
FOREIGN = re.compile(r"\b(?:torchrun|pip|python3?|topaz|apt-get|git|pytest)\b")
CLAUSE_END = re.compile(r"[;()]|\.\s|:\s")


def _flags_of(command: str | None) -> set[str]:
    """Every option string of a command (with the program's own), from its parser."""
    parser = cli.build_parser(command)
    found = {s for a in parser._actions for s in a.option_strings}
    if command is not None:
        [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        found |= {s for a in sub.choices[command]._actions for s in a.option_strings}
    return found


def mentions(text: str, default: str | None) -> list[tuple[str | None, str, str]]:
    """Every flag a text mentions, with the command it is given to.

    Each line of a fenced code block is read alone; prose is read a clause at a time
    (clauses end at ``;``, ``:``, a parenthesis or a full stop; a paragraph's lines are read
    as one, lines ending in a backslash too). A flag belongs to the nearest
    ``cref-bench COMMAND`` before it in its clause, or, inside an inline code span, in that
    span; with none, to ``default``. Flags given to another program (pip, torchrun, ...)
    are left out.

    Returns:
        ``(command, flag, clause)`` triples; ``command`` is ``"?"`` for an unknown command.
    """
    found = []
    prose = []
    for k, part in enumerate(text.split("```")):
        if k % 2:  # a fenced code block: one command a line
            for line in part.replace("\\\n", " ").splitlines()[1:]:
                found += _attributed(line.split("#")[0], default)
        else:
            prose.append(part)
    for paragraph in re.split(r"\n\s*\n", "\n\n".join(prose)):
        joined = re.sub(r"\s+", " ", paragraph.replace("\\\n", " "))
        for clause in CLAUSE_END.split(joined):
            found += _attributed(clause, default)
    return found


def _attributed(clause: str, default: str | None) -> list[tuple[str | None, str, str]]:
    """The flags of one clause with their owners (see :func:`mentions`)."""
    clause = clause.strip()
    spans = [m.span() for m in re.finditer(r"`[^`]*`", clause)]

    def span_of(position: int):
        return next((s for s in spans if s[0] <= position < s[1]), None)

    events = sorted([(m.start(), "ours", m.group(1)) for m in OURS.finditer(clause)]
                    + [(m.start(), "foreign", None) for m in FOREIGN.finditer(clause)])
    found = []
    for flag in FLAG.finditer(clause):
        where = span_of(flag.start())
        before = [e for e in events if e[0] < flag.start()
                  and (where is None or span_of(e[0]) == where)]
        if not before:
            owner = default
        elif before[-1][1] == "foreign":
            owner = None
        else:
            owner = before[-1][2] if before[-1][2] in COMMANDS else "?"
        if owner is not None:
            found.append((owner, flag.group(0), clause))
    return found


def _help_text(command: str | None, capsys) -> str:
    with pytest.raises(SystemExit):
        cli.main(([command] if command else []) + ["--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_flag_a_help_text_mentions_exists(command, capsys):
    text = _help_text(command, capsys)
    wrong = [(owner, flag, clause) for owner, flag, clause in mentions(text, command)
             if owner != "?" and flag.split("=")[0] not in _flags_of(owner)]
    assert not wrong, f"cref-bench {command or ''} --help mentions flags that do not exist: {wrong}"
    assert "``" not in text, "reStructuredText markup in a help text"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_flag_the_documentation_gives_a_command_exists(page):
    wrong = [(owner, flag, clause) for owner, flag, clause in mentions(page.read_text(), None)
             if owner != "?" and flag.split("=")[0] not in _flags_of(owner)]
    assert not wrong, f"{page.name} gives flags that do not exist: {wrong}"


def test_the_documentation_pages_are_checked():
    assert {"README.md", "adding-a-method.md", "methods.md"} <= {page.name for page in PAGES}


def test_the_attribution_rule_in_markdown():
    text = ("Once installed `cref-bench methods` lists it and `--method x` finds it; "
            "`cref-bench run --out r` works.\n\n```bash\ncref-bench check r --corpus c  "
            "# --nothing\npip install --no-deps x\n```\n")
    assert sorted(mentions(text, None)) == [
        ("check", "--corpus", "cref-bench check r --corpus c"),
        ("run", "--out", "`cref-bench run --out r` works.")]


def test_the_attribution_rule():
    text = ("best.pt plugs into the method (--weights DIR/best.pt); --resume continues.\n"
            "Several GPUs: torchrun --nproc_per_node=N -m cref_bench.cli train --amp; see\n"
            "cref-bench run --method x \\\n    --param a=1 and pip install --no-deps topaz")
    assert mentions(text, "train") == [
        ("train", "--weights", "--weights DIR/best.pt"),
        ("train", "--resume", "--resume continues"),
        ("train", "--amp", "torchrun --nproc_per_node=N -m cref_bench.cli train --amp"),
        ("run", "--method", "see cref-bench run --method x --param a=1 and pip install "
                            "--no-deps topaz"),
        ("run", "--param", "see cref-bench run --method x --param a=1 and pip install "
                           "--no-deps topaz"),
    ]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_texts_read_cleanly(command):
    """No example with a lost line continuation (a backslash-newline in a docstring joins
    the lines into one with a gap) and no sentence said twice (six words in a row repeated
    in the prose)."""
    doc = cli.command_modules()[command].__doc__ or ""
    for line in doc.splitlines():
        assert not re.search(r"\S {3,}\S", line.strip()), (command, line)
    prose = doc.split("Examples:")[0] if "Examples:" in doc else doc.split("Example:")[0]
    words = re.findall(r"[\w'-]+", prose.lower())
    first = {}
    for i in range(len(words) - 5):
        run = tuple(words[i:i + 6])
        first.setdefault(run, i)
        assert i - first[run] < 6, (command, " ".join(run))
