"""The ``cref-bench`` command line, assembled from command modules.

A command module defines ``HELP`` (one line), ``add_args(parser)``, ``main(args) -> int``
and a module docstring (the command's description). Commands come from two places:

* the modules of :mod:`cref_bench.commands` (``import_weights`` becomes ``import-weights``);
* the entry-point group ``cref_bench.commands`` (name -> module), through which the other
  packages (``dataset_builder``, ``baselines``, ``leaderboard``) and third parties add
  commands without ``cref_bench`` importing them. A command whose module fails to import is
  left out with a warning, so one broken plug-in does not disable the rest.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import warnings
from importlib.metadata import entry_points

import cref_bench
from cref_bench import commands


COMMAND_GROUP = "cref_bench.commands"
"""Entry-point group of commands contributed by other packages."""


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield info.name.replace("_", "-"), importlib.import_module(f"{commands.__name__}.{info.name}")
    for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        try:
            module = ep.load()
        except Exception as exc:  # a broken plug-in must not take the whole CLI down
            warnings.warn(f"command {ep.name!r} ({ep.value}) is unavailable: {exc}", stacklevel=2)
            continue
        yield ep.name, module


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="cref-bench",
        description="Benchmark denoisers of cryo-EM maps with the C_ref family of metrics.")
    parser.add_argument("--version", action="version", version=f"cref-bench {cref_bench.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _command_modules():
        doc = (module.__doc__ or "").strip()
        cmd = sub.add_parser(name, help=module.HELP, description=doc,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_args(cmd)
        cmd.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``cref-bench`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    return int(args._main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
