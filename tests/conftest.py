"""Shared pytest fixtures (the EMDB stand-in server, ``emdb_server``; the runner's small
corpus, ``corpus_path``) and a closing line that says how many tests were skipped for want of
the reference data (docs/development.md, "Reference data")."""

from tests.emdb_server import emdb_server  # noqa: F401 -- re-exported as a fixture
from tests.runner_corpus import corpus_path  # noqa: F401 -- re-exported as a fixture

REFERENCE_MARK = "shared/reference"
"""Every skip for want of the reference data names its path, which holds this."""


def pytest_terminal_summary(terminalreporter):
    """Name the tests skipped because ``../shared/reference`` is absent, and where to get it."""
    skipped = terminalreporter.stats.get("skipped", [])
    missing = [r for r in skipped if REFERENCE_MARK in str(getattr(r, "longrepr", ""))]
    if missing:
        terminalreporter.write_line(
            f"{len(missing)} tests skipped: the reference data ({REFERENCE_MARK}, beside the "
            "checkout) are absent; see docs/development.md, section \"Reference data\", for "
            "what they are and where to get them", yellow=True)
