"""Where the shared reference data lie: the first ``shared/reference`` folder found beside the
checkout or beside a folder above it (a worktree under ``wt/`` finds the same one as the main
checkout)."""

from __future__ import annotations

from pathlib import Path


def reference_dir(*parts: str) -> Path:
    """The reference folder (or a path inside it), whether or not it exists.

    Args:
        *parts: path components inside ``shared/reference``.

    Returns:
        The first existing ``shared/reference`` above the tests, joined with ``parts``; the
        one beside the checkout when none exists (tests then skip, naming it).
    """
    here = Path(__file__).resolve()
    for folder in here.parents[1:]:
        candidate = folder / "shared" / "reference"
        if candidate.is_dir():
            return candidate.joinpath(*parts)
    return here.parents[2].joinpath("shared", "reference", *parts)
