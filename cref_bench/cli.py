"""The ``cref-bench`` command line, assembled from command modules.

A command module defines ``HELP`` (one line), ``add_args(parser)``, ``main(args) -> int``
and a module docstring (the command's description). Commands come from two places:

* the modules of :mod:`cref_bench.commands` (``import_weights`` becomes ``import-weights``);
* the entry-point group ``cref_bench.commands`` (name -> module), through which the other
  packages (``dataset_builder``, ``baselines``, ``leaderboard``) and third parties add
  commands without ``cref_bench`` importing them. A command whose module fails to import is
  left out with a warning, so one broken plug-in does not disable the rest.

Only the chosen command's arguments are added to the parser, so a command never pays for
another's imports (``train`` imports torch; ``metrics`` does not), and ``cref-bench --help``
imports no command's dependencies at all. Dask's logs are kept at WARNING (in this process and
in the workers it starts) unless ``--verbose`` is given. Standard output closed early (``cref-bench
metrics ... | head``) ends the command quietly with status 141.

Errors are caught here, once: a command's ``main`` lets them rise. An error of the
project's family (:class:`cref_bench.errors.CrefBenchError`) or of the operating system
(:class:`OSError`: a file missing or unwritable, a full disk) ends the command with one line,
``cref-bench: error: <message>``, on standard error (``--verbose`` adds the traceback) and
the exit status of the table below (:attr:`~cref_bench.errors.CrefBenchError.exit_status`);
argparse refuses malformed arguments with status 2 itself. Any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import warnings

import cref_bench
from cref_bench import commands
from cref_bench.errors import CrefBenchError
from cref_bench.methods.registry import registered

COMMAND_GROUP = "cref_bench.commands"
"""Entry-point group of commands contributed by other packages."""

EXIT_STATUSES = """\
exit status:
  0    success
  1    some of the work failed and was recorded as such; the rest was done
  2    bad input or an unusable environment (one line on standard error says why)
  130  interrupted (Ctrl-C)
  141  standard output was closed early (e.g. piped into head); the output stops there
"""
"""The exit-status table of every command: this module's docstring and each ``--help``."""

__doc__ += "\n" + EXIT_STATUSES  # the documented table is the one the commands print

DASK_LOG_SETTINGS = ("DASK_LOGGING__DISTRIBUTED", "DASK_LOGGING__DASK")
"""Environment variables of dask's logging configuration set to ``warning`` unless
``--verbose``: dask reads them on import, and the worker processes it starts inherit them."""

BROKEN_PIPE_STATUS = 141
"""The exit status when standard output is closed early (128 + SIGPIPE, as a shell reports)."""

logger = logging.getLogger(__name__)


def command_modules() -> dict:
    """Every command, by name: its module (see the module docstring for where they come from).

    Returns:
        ``{name: module}``, the commands of :mod:`cref_bench.commands` first, each group in
        name order.
    """
    found = {}
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{commands.__name__}.{info.name}")
            found[info.name.replace("_", "-")] = module
    for ep in sorted(registered(COMMAND_GROUP), key=lambda e: e.name):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a broken plug-in must not take the whole CLI down
            warnings.warn(f"command {ep.name!r} ({ep.value}) is unavailable: {exc}", stacklevel=2)
    return found


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered.

    Args:
        command: add the arguments of this command only (the others are listed without
            theirs); ``None`` adds no command's arguments (the top-level help lists the
            commands only).

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog="cref-bench", epilog=EXIT_STATUSES,
        description="Benchmark denoisers of cryo-EM maps with the C_ref family of metrics.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"cref-bench {cref_bench.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug messages (and the traceback of an error)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in command_modules().items():
        doc = (module.__doc__ or "").strip()
        cmd = sub.add_parser(name, help=module.HELP, description=doc, epilog=EXIT_STATUSES,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == command:
            module.add_args(cmd)
        cmd.set_defaults(_main=module.main)
    return parser


def _chosen_command(argv: list[str]) -> str | None:
    """The command named in ``argv``: its first word that is not an option."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Run ``cref-bench`` with ``argv`` (default: ``sys.argv[1:]``).

    Args:
        argv: the command line after the program name.

    Returns:
        The exit status (see the module docstring).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_chosen_command(argv))
    args = parser.parse_args(argv)
    args.command_line = ["cref-bench", *argv]  # for provenance, as typed
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    _quiet_dask(args.verbose)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    with warnings.catch_warnings():
        if not args.verbose:
            warnings.showwarning = _one_line_warning
        return _run(args)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one line, ``cref-bench: warning: <message>`` (the category too where
    it is not a plain :class:`UserWarning`), without the source line Python adds."""
    kind = "" if category is UserWarning else f"{category.__name__}: "
    print(f"cref-bench: warning: {kind}{message}", file=file or sys.stderr)


def _run(args) -> int:
    """The chosen command's ``main``, its errors turned into an exit status."""
    try:
        status = int(args._main(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE_STATUS
    except KeyboardInterrupt:
        print("cref-bench: interrupted", file=sys.stderr)
        return 130
    except (CrefBenchError, OSError) as exc:
        logger.debug("the error's traceback:", exc_info=True)
        print(f"cref-bench: error: {exc}", file=sys.stderr)
        return exc.exit_status if isinstance(exc, CrefBenchError) else 2


def _quiet_dask(verbose: bool) -> None:
    """Keep dask's INFO logs out of the output unless ``verbose`` (a user's own setting of the
    environment variables wins)."""
    for variable in DASK_LOG_SETTINGS:
        os.environ.setdefault(variable, "info" if verbose else "warning")
    for name in ("distributed", "dask"):  # where dask is already imported (tests, scripts)
        if name in sys.modules:
            logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)


def _silence_stdout() -> None:
    """Point standard output at the null device, so that the interpreter's last flush of a
    closed pipe does not print a second error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout replaced by an object without a descriptor
        pass


if __name__ == "__main__":
    sys.exit(main())
