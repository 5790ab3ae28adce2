"""The results folder of a run: per-entry records, the tidy tables and the summary.

Layout of ``<out>/`` (the schema other tools, such as the leaderboard, read)::

    entries/<entry>.json   one record per entry, written atomically as soon as the entry
                           finishes (ok or failed); the tables are assembled from these
    scalars.csv            method, method_version, entry, split, masking, then one column
                           per scalar metric (as named in cref_bench.metric_facts), empty
                           where not computable; one row per (method, entry, masking)
    notes.csv              method, entry, masking, metric, reason (why a metric is empty)
    curves.csv             method, entry, masking, curve, shell, frequency, value
    failures.csv           method, method_version, entry, error_type, message
    provenance.json        see cref_bench.runner
    maps/<entry>_denoised.mrc   with --save-maps

An entry record is a JSON object: ``schema`` (:data:`RECORD_SCHEMA`), ``entry``,
``split``, the resume key (``method``, ``method_version``, ``params``, ``corpus_hash``),
``status`` (``"ok"`` or ``"failed"``), for ``ok`` the ``scalars`` and ``notes``
(``{masking: {metric: value or reason}}``, as in :class:`cref_bench.metrics.MetricReport`)
and ``curves`` (column lists), for ``failed`` ``error_type``, ``message`` and
``traceback``; and ``seconds``, ``worker`` (host, pid, peak RSS) and ``finished_at``.
Non-finite numbers are stored as ``null``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cref_bench import atomic
from cref_bench.metric_facts import SUMMARY_METRICS

RECORD_SCHEMA = 1
"""Version of the entry-record layout; records of another version are recomputed."""

# The columns of each table. A column named like a field of the entry record is filled from
# it, so a new per-record column (e.g. a parameters label) is one line here and one field the
# runner writes into each record; readers (the leaderboard) take the lists from here.
ID_COLUMNS = ("method", "method_version", "entry", "split", "masking")
"""The identifying columns of ``scalars.csv``; every other column is a metric."""
NOTE_COLUMNS = ("method", "entry", "masking", "metric", "reason")
CURVE_COLUMNS = ("method", "entry", "masking", "curve", "shell", "frequency", "value")
FAILURE_COLUMNS = ("method", "method_version", "entry", "error_type", "message")
TABLE_COLUMNS = {"scalars": ID_COLUMNS, "notes": NOTE_COLUMNS, "curves": CURVE_COLUMNS,
                 "failures": FAILURE_COLUMNS}
"""The tables of a results folder (``<name>.csv``) and their fixed columns."""
NUMBER_COLUMNS = ("shell", "frequency", "value")
"""The fixed columns that hold numbers (the others hold text); metric columns are numbers."""

KEY_FIELDS = ("method", "method_version", "params", "corpus_hash")
"""The fields of a record that must match for a rerun to reuse it."""

SUMMARY_COLUMNS = ("masking", "metric", "mean", "std", "median", "n", "failed")


def write_table(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV (no index), atomically.

    Args:
        path: the target ``.csv`` file.
        frame: the table.

    Returns:
        The target path.

    Raises:
        OSError: as :func:`cref_bench.atomic.write_text`.
    """
    return atomic.write_text(path, frame.to_csv(index=False))


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def curves_to_columns(curves: pd.DataFrame) -> dict[str, list]:
    """A curves table (masking, curve, shell, frequency, value) as JSON-ready column lists.

    Args:
        curves: the :attr:`cref_bench.metrics.MetricReport.curves` table.

    Returns:
        ``{column: list}``, non-finite values as ``None``.
    """
    columns = {}
    for name in ("masking", "curve", "shell", "frequency", "value"):
        values = curves[name].tolist()
        finite = name in ("frequency", "value")
        columns[name] = [_finite_or_none(v) for v in values] if finite else values
    return columns


def entry_path(out: str | os.PathLike, entry_id: str) -> Path:
    """Where the record of one entry lives: ``<out>/entries/<entry>.json``."""
    return Path(out) / "entries" / f"{entry_id}.json"


def write_record(out: str | os.PathLike, record: dict) -> Path:
    """Write one entry record atomically (see the module docstring for its fields).

    Args:
        out: the results folder (``entries/`` is created if needed).
        record: the record; must hold ``entry``.

    Returns:
        The record's path.

    Raises:
        OSError: the folder is not writable.
        ValueError: the record holds something JSON cannot encode.
    """
    path = entry_path(out, record["entry"])
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = dict(record)
    clean["scalars"] = {m: {k: _finite_or_none(v) for k, v in values.items()}
                        for m, values in record.get("scalars", {}).items()}
    return atomic.write_text(path, json.dumps(clean, allow_nan=False, separators=(",", ":")))


def read_record(out: str | os.PathLike, entry_id: str) -> dict | None:
    """The stored record of an entry, or ``None`` if there is none or it cannot be read.

    A record that is not valid JSON (it cannot be half-written, but may have been edited) is
    treated as absent, so the entry is recomputed.

    Args:
        out: the results folder.
        entry_id: the entry id.

    Returns:
        The record dict, or ``None``.
    """
    path = entry_path(out, entry_id)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("schema") == RECORD_SCHEMA else None


def is_reusable(record: dict | None, key: dict) -> bool:
    """Whether a stored record can stand in for a new evaluation (resume).

    Args:
        record: a stored record or ``None``.
        key: the run's values of :data:`KEY_FIELDS`.

    Returns:
        True when the record finished ``ok`` with the same method, version, parameters and
        corpus content hash. Failed records are never reused (they are retried).
    """
    return (record is not None and record.get("status") == "ok"
            and all(record.get(k) == key[k] for k in KEY_FIELDS))


def assemble_tables(records: list[dict]) -> dict[str, pd.DataFrame]:
    """The four tables of a run from its entry records (in the given order).

    Args:
        records: entry records, ``ok`` and ``failed``.

    Returns:
        ``{"scalars", "notes", "curves", "failures"}`` DataFrames with the columns of
        :data:`TABLE_COLUMNS`. Metric columns appear in the order the metrics library reports
        them; a metric with no value is NaN.
    """
    rows, notes, curves, failures = [], [], [], []
    metrics: dict[str, None] = {}
    for rec in records:
        if rec["status"] != "ok":
            failures.append(_from_record(rec, FAILURE_COLUMNS))
            continue
        for masking, values in rec["scalars"].items():
            metrics.update(dict.fromkeys(values))
            rows.append({**_from_record(rec, ID_COLUMNS), "masking": masking, **values})
            for metric, reason in rec["notes"].get(masking, {}).items():
                notes.append({**_from_record(rec, NOTE_COLUMNS), "masking": masking,
                              "metric": metric, "reason": reason})
        part = pd.DataFrame(rec["curves"])
        for name, value in _from_record(rec, CURVE_COLUMNS).items():
            if name not in part:
                part[name] = value
        curves.append(part[list(CURVE_COLUMNS)])
    scalars = pd.DataFrame(rows, columns=list(ID_COLUMNS) + list(metrics))
    for name in metrics:
        scalars[name] = pd.to_numeric(scalars[name], errors="coerce").astype(np.float64)
    curve_table = (pd.concat(curves, ignore_index=True) if curves
                   else pd.DataFrame(columns=list(CURVE_COLUMNS)))
    for name in ("frequency", "value"):
        curve_table[name] = pd.to_numeric(curve_table[name], errors="coerce").astype(np.float64)
    return {"scalars": scalars,
            "notes": pd.DataFrame(notes, columns=list(NOTE_COLUMNS)),
            "curves": curve_table,
            "failures": pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))}


def _from_record(record: dict, columns: tuple[str, ...]) -> dict:
    """The values of ``columns`` that are fields of the record."""
    return {name: record[name] for name in columns if name in record}


def summarise(scalars: pd.DataFrame, failed: int, metrics=SUMMARY_METRICS) -> pd.DataFrame:
    """Mean, sample standard deviation, median and count of key metrics, per masking.

    Args:
        scalars: the scalars table of a run.
        failed: how many entries failed (repeated on every row).
        metrics: the metrics to summarise; those absent or with no value are left out.

    Returns:
        Columns masking, metric, mean, std (``ddof=1``; NaN for fewer than two values),
        median, n (entries with a value), failed.
    """
    rows = []
    for masking in dict.fromkeys(scalars["masking"]):
        part = scalars[scalars["masking"] == masking]
        for metric in metrics:
            if metric not in part:
                continue
            values = part[metric].dropna()
            if values.empty:
                continue
            rows.append({"masking": masking, "metric": metric, "mean": values.mean(),
                         "std": values.std(ddof=1), "median": values.median(),
                         "n": int(values.size), "failed": int(failed)})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def format_summary(summary: pd.DataFrame, title: str = "") -> str:
    """The summary as an aligned text table (``mean ± std``, median, n, failed).

    Every mean and median has four significant figures and every standard deviation two
    (trailing zeros kept, so a column reads alike; see
    :func:`cref_bench.number_format.significant`); a metric with one value shows its mean
    without a spread.

    Args:
        summary: a table from :func:`summarise`.
        title: a first line (e.g. the method and corpus).

    Returns:
        The text, one line per (masking, metric).
    """
    from cref_bench.number_format import significant

    lines = [title] if title else []
    if summary.empty:
        lines.append("no entry was evaluated")
        return "\n".join(lines)
    width = max(len("metric"), *(len(m) for m in summary["metric"]))
    lines.append(f"{'masking':<9} {'metric':<{width}} {'mean ± std':>23} {'median':>10} "
                 f"{'n':>5} {'failed':>6}")
    for row in summary.itertuples(index=False):
        spread = significant(row.mean, 4)
        if math.isfinite(row.std):
            spread += f" ± {significant(row.std, 2)}"
        lines.append(f"{row.masking:<9} {row.metric:<{width}} {spread:>23} "
                     f"{significant(row.median, 4):>10} {row.n:>5d} "
                     f"{row.failed:>6d}")
    return "\n".join(lines)
