"""Results folders in the runner's schema, written by the leaderboard's and the report's tests
from tables they construct (values known by construction)."""

from __future__ import annotations

import json

import pandas as pd

from cref_bench.results.folder import CURVE_COLUMNS, FAILURE_COLUMNS, NOTE_COLUMNS, params_text


def write_folder(folder, method, scalars: pd.DataFrame, *, content_hash="abc123", curves=None,
                 version="1", params=None, failures=(), bounds=(), box="64x64x64"):
    """A results folder of one method setting.

    Args:
        folder: the folder (created).
        method: the method's name.
        scalars: entry, masking and metric columns.
        content_hash: the corpus content hash of provenance.json.
        curves: entry, masking, curve, shell, frequency, value (None: no curves).
        version: the method's version.
        params: the method's parameters (a dict).
        failures: ``(entry, kind)`` pairs of failed entries.
        bounds: ``(entry, masking, metric, bound)`` of values that are bounds.
        box: the ``box`` column (a text, or a dict by entry).

    Returns:
        The folder.
    """
    params = params or {}
    text = params_text(params)
    folder.mkdir(parents=True)
    scalars = scalars.copy()
    scalars.insert(0, "method", method)
    scalars.insert(1, "method_version", version)
    scalars.insert(2, "params", text)
    scalars.insert(4, "split", "test")
    scalars.insert(5, "box", scalars["entry"].map(box) if isinstance(box, dict) else box)
    scalars.to_csv(folder / "scalars.csv", index=False)
    if curves is None:
        curves = pd.DataFrame(columns=[c for c in CURVE_COLUMNS if c != "method"])
    curves = curves.copy()
    curves.insert(0, "method", method)
    curves.to_csv(folder / "curves.csv", index=False)
    pd.DataFrame([{"method": method, "method_version": version, "params": text, "entry": e,
                   "split": "test", "kind": kind, "error_type": "RuntimeError",
                   "message": f"{kind} on {e}"} for e, kind in failures],
                 columns=list(FAILURE_COLUMNS)).to_csv(folder / "failures.csv", index=False)
    pd.DataFrame([{"method": method, "params": text, "entry": e, "masking": m, "metric": metric,
                   "reason": "never crosses 0.143 up to Nyquist", "bound": b}
                  for e, m, metric, b in bounds],
                 columns=list(NOTE_COLUMNS)).to_csv(folder / "notes.csv", index=False)
    (folder / "provenance.json").write_text(json.dumps(
        {"dataset": {"content_hash": content_hash, "split": "test"},
         "method": {"name": method, "version": version, "params": params},
         "counts": {"entries": int(scalars["entry"].nunique()) + len(failures),
                    "failed": len(failures)}}))
    return folder
