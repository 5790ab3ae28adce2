"""The results folder of a run: per-entry records, the tidy tables and the summary.

Layout of ``<out>/`` (the schema other tools, such as the leaderboard, read)::

    entries/<entry>.json   one record per entry, written atomically as soon as the entry
                           finishes (ok or failed); the tables are assembled from these
    scalars.csv            method, method_version, params, entry, split, box, masking, then one
                           column per scalar metric (as named in cref_bench.metrics.facts),
                           empty where not computable; one row per (method, entry, masking)
    notes.csv              method, params, entry, masking, metric, reason, bound: why a metric
                           is empty, or that its value is a bound (``<``: the true value is
                           finer/lower, e.g. an FSC that never crosses up to Nyquist; ``>``:
                           coarser/higher); ``bound`` is empty for a missing value
    curves.csv             method, entry, masking, curve, shell, frequency, value
    failures.csv           method, method_version, params, entry, split, kind, error_type,
                           message, traceback: every entry that failed, ``kind`` saying
                           whose fault (see cref_bench.run.contract.FAILURE_KINDS), the
                           traceback ending in the method's own file and line
    logs/<entry>.log       per failed entry: what failed and the traceback
                           (``cref-bench failures`` prints them)
    provenance.json        see cref_bench.run.runner
    logs/method-*.log      the method process's output (see cref_bench.run.isolation)
    maps/<entry>_denoised.mrc   with --save-maps
    outputs/<entry>.zarr   the method's checked output (kept unless --no-keep-outputs; see
                           cref_bench.results.outputs), for cref-bench check --recompute

``params`` is the method's parameters as canonical JSON (sorted keys, no spaces), so that
results of several settings of one method can share a leaderboard. ``box`` is the entry's
grid, ``NZxNYxNX`` voxels (for breakdowns by box size).

An entry record is a JSON object: ``schema`` (:data:`RECORD_SCHEMA`), ``entry``,
``split``, ``box`` (for ``ok``), the resume key (:data:`KEY_FIELDS`: ``method``,
``method_version``, ``params`` (an object), ``code_digest`` (of all of the method's code),
``corpus_hash``, ``cref_bench_version``, ``scoring_digest`` (of the scoring code)),
``outputs`` (for ``ok`` where outputs are kept: the sha256 of each kept map), ``status``
(``"ok"`` or ``"failed"``), for ``ok`` the ``scalars``, ``notes`` and ``bounds``
(``{masking: {metric: ...}}``, as in :class:`cref_bench.metrics.scores.MetricReport`) and
``curves`` (column lists), for ``failed`` ``kind``, ``error_type``, ``message`` and
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
from cref_bench.errors import ResultsError
from cref_bench.metrics.facts import SUMMARY_METRICS

RECORD_SCHEMA = 3
"""Version of the entry-record layout; records of another version are recomputed."""

# The columns of each table. A column named like a field of the entry record is filled from
# it, so a new per-record column (e.g. a parameters label) is one line here and one field the
# runner writes into each record; readers (the leaderboard) take the lists from here.
ID_COLUMNS = ("method", "method_version", "params", "entry", "split", "box", "masking")
"""The identifying (text) columns of ``scalars.csv``; every other column is a metric."""
NOTE_COLUMNS = ("method", "params", "entry", "masking", "metric", "reason", "bound")
CURVE_COLUMNS = ("method", "entry", "masking", "curve", "shell", "frequency", "value")
FAILURE_COLUMNS = ("method", "method_version", "params", "entry", "split", "kind",
                   "error_type", "message", "traceback")
TABLE_COLUMNS = {"scalars": ID_COLUMNS, "notes": NOTE_COLUMNS, "curves": CURVE_COLUMNS,
                 "failures": FAILURE_COLUMNS}
"""The tables of a results folder (``<name>.csv``) and their fixed columns."""
NUMBER_COLUMNS = ("shell", "frequency", "value")
"""The fixed columns that hold numbers (the others hold text); metric columns are numbers."""

KEY_FIELDS = ("method", "method_version", "params", "code_digest", "corpus_hash",
              "cref_bench_version", "scoring_digest")
"""The fields of a record that must match for a rerun to reuse it."""

OPTIONAL_COLUMNS = ("box", "traceback")
"""Fixed columns that folders of older runs lack (read as empty)."""

SUMMARY_COLUMNS = ("masking", "metric", "mean", "std", "median", "n", "bounded", "failed")


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def curves_to_columns(curves: pd.DataFrame) -> dict[str, list]:
    """A curves table (masking, curve, shell, frequency, value) as JSON-ready column lists.

    Args:
        curves: the :attr:`cref_bench.metrics.scores.MetricReport.curves` table.

    Returns:
        ``{column: list}``, non-finite values as ``None``.
    """
    columns = {}
    for name in ("masking", "curve", "shell", "frequency", "value"):
        values = curves[name].tolist()
        finite = name in ("frequency", "value")
        columns[name] = [_finite_or_none(v) for v in values] if finite else values
    return columns


class ResultsFolder:
    """One results folder: the one reader and writer of its records, tables and provenance.

    The runner writes through it, and ``cref-bench check``, the leaderboard and the report
    read through it, so the layout (the module docstring) is known in one place.

    Args:
        path: the folder (it need not exist yet).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ResultsFolder({str(self.path)!r})"

    def create(self, save_maps: bool = False) -> Path | None:
        """Make ``entries/`` (and ``maps/`` with ``save_maps``); returns the maps folder,
        resolved, or None."""
        (self.path / "entries").mkdir(parents=True, exist_ok=True)
        if not save_maps:
            return None
        (self.path / "maps").mkdir(exist_ok=True)
        return (self.path / "maps").resolve()

    def entry_path(self, entry_id: str) -> Path:
        """Where the record of one entry lives: ``entries/<entry>.json``."""
        return self.path / "entries" / f"{entry_id}.json"

    def write_record(self, record: dict) -> Path:
        """Write one entry record atomically (see the module docstring for its fields).

        Args:
            record: the record; must hold ``entry``.

        Returns:
            The record's path.

        Raises:
            OSError: the folder is not writable.
            ValueError: the record holds something JSON cannot encode.
        """
        path = self.entry_path(record["entry"])
        path.parent.mkdir(parents=True, exist_ok=True)
        clean = dict(record)
        clean["scalars"] = {m: {k: _finite_or_none(v) for k, v in values.items()}
                            for m, values in record.get("scalars", {}).items()}
        return atomic.write_text(path, json.dumps(clean, allow_nan=False,
                                                  separators=(",", ":")))

    def record(self, entry_id: str) -> dict | None:
        """The stored record of an entry, or ``None`` if there is none or it cannot be read
        (not JSON, not an object, or of another :data:`RECORD_SCHEMA`: it is recomputed)."""
        try:
            record = json.loads(self.entry_path(entry_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return (record if isinstance(record, dict) and record.get("schema") == RECORD_SCHEMA
                else None)

    def records(self) -> tuple[dict[str, dict], list[str]]:
        """Every readable record by entry id, and the names of the record files that cannot
        be read."""
        records, unreadable = {}, []
        for path in sorted((self.path / "entries").glob("*.json")):
            record = self.record(path.stem)
            if record is None:
                unreadable.append(path.name)
            else:
                records[path.stem] = record
        return records, unreadable

    def write_tables(self, tables: dict[str, pd.DataFrame]) -> None:
        """Write each table as ``<name>.csv`` (no index), atomically."""
        for name, frame in tables.items():
            atomic.write_text(self.path / f"{name}.csv", frame.to_csv(index=False))

    def table(self, name: str, *, as_text: bool = False, usecols=None) -> pd.DataFrame:
        """One table of the folder.

        Args:
            name: ``scalars``, ``notes``, ``curves`` or ``failures``.
            as_text: every cell as text, missing ones as ``""`` (for exact comparison);
                else the fixed text columns as text and the others as numbers (NaN where
                empty), and a fixed column that older folders lack (``box``) as NaN.
            usecols: read only these columns.

        Returns:
            The DataFrame.

        Raises:
            ResultsError: the file is missing, unreadable or lacks a fixed column.
        """
        path = self.path / f"{name}.csv"
        fixed = list(TABLE_COLUMNS[name])
        dtype = str if as_text else {c: str for c in fixed if c not in NUMBER_COLUMNS}
        try:
            frame = pd.read_csv(path, dtype=dtype, keep_default_na=not as_text,
                                usecols=usecols)
        except FileNotFoundError:
            raise ResultsError(path, "missing") from None
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise ResultsError(path, f"unreadable ({exc})") from None
        if as_text:
            return frame
        wanted = fixed if usecols is None else [c for c in fixed if c in usecols]
        missing = [c for c in wanted if c not in frame.columns and c not in OPTIONAL_COLUMNS]
        if missing:
            raise ResultsError(path, f"missing column(s) {missing}")
        for column in wanted:
            if column not in frame.columns:
                frame[column] = np.nan
        if name == "scalars":
            for column in frame.columns.difference(ID_COLUMNS):
                frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
        return frame

    def provenance(self) -> dict:
        """The folder's ``provenance.json``.

        Raises:
            ResultsError: missing, unreadable or not a JSON object.
        """
        path = self.path / "provenance.json"
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ResultsError(path, "missing: not a results folder of cref-bench run") from None
        except (OSError, ValueError) as exc:
            raise ResultsError(path, f"cannot be read: {exc}") from None
        if not isinstance(value, dict):
            raise ResultsError(path, "is not a JSON object")
        return value

    def keep_outputs(self, entry_id: str, denoised) -> dict[str, str]:
        """Keep a method's checked output for one entry (``outputs/<entry>.zarr``; see
        :mod:`cref_bench.results.outputs`); returns the sha256 of each kept map."""
        from cref_bench.results.outputs import write_outputs

        return write_outputs(self.path, entry_id, denoised)

    def kept_outputs(self, entry_id: str, expected: dict[str, str]):
        """The kept output of one entry, checked against its record's digests (see
        :func:`cref_bench.results.outputs.read_outputs`)."""
        from cref_bench.results.outputs import read_outputs

        return read_outputs(self.path, entry_id, expected)

    def write_provenance(self, record: dict) -> None:
        """Write ``provenance.json`` atomically."""
        atomic.write_text(self.path / "provenance.json", json.dumps(record, indent=2))

    def log_path(self, entry_id: str) -> Path:
        """The log of one failed entry: ``logs/<entry>.log`` (what failed, the traceback)."""
        return self.path / "logs" / f"{entry_id}.log"

    def write_failure_log(self, record: dict) -> Path:
        """Write the log of a failed entry's record: its kind, message and traceback.

        Args:
            record: a ``failed`` record.

        Returns:
            The log's path.
        """
        path = self.log_path(record["entry"])
        path.parent.mkdir(parents=True, exist_ok=True)
        text = (f"entry {record['entry']}: {record.get('kind')} "
                f"({record.get('error_type')}): {record.get('message')}\n\n"
                f"{record.get('traceback') or '(no traceback)'}\n")
        return atomic.write_text(path, text)

    def failures(self) -> list[dict]:
        """The failed entries, in the order of ``failures.csv``.

        Returns:
            Per failed entry: ``entry``, ``kind``, ``error_type``, ``message``,
            ``traceback`` (from ``failures.csv``, else from the entry's record; ``""``
            where neither has one) and ``log`` (the path of the entry's log, or None).

        Raises:
            ResultsError: ``failures.csv`` is missing, unreadable or lacks a column.
        """
        rows = []
        for row in self.table("failures").to_dict("records"):
            trace = row.get("traceback")
            if not isinstance(trace, str) or not trace:
                trace = (self.record(row["entry"]) or {}).get("traceback") or ""
            log = self.log_path(row["entry"])
            rows.append({"entry": row["entry"], "kind": row["kind"],
                         "error_type": row["error_type"], "message": row["message"],
                         "traceback": trace, "log": log if log.is_file() else None})
        return rows

    def held_setting(self) -> dict | None:
        """The method setting whose results the folder holds: ``method``, ``params`` (all
        of them, as in the resume key) and ``given`` (those the run was given, as
        ``--param``; None where unknown), from ``provenance.json``, else from an entry
        record (a run stopped before its end); None where the folder holds no results."""
        try:
            provenance = self.provenance()
            method = provenance["method"]
            given = (provenance.get("settings") or {}).get("params")
            return {"method": method["name"], "params": method["params"],
                    "given": given if isinstance(given, dict) else None}
        except (ResultsError, KeyError, TypeError):
            pass
        for path in sorted((self.path / "entries").glob("*.json"))[:20]:
            record = self.record(path.stem)
            if record is not None and "method" in record:
                return {"method": record["method"], "params": record.get("params", {}),
                        "given": None}
        return None


def setting_folder(base: str | os.PathLike, params: dict) -> Path:
    """The folder of one setting of a method beside its default one: ``results/lowpass`` with
    ``{"threshold": 0.5}`` gives ``results/lowpass-threshold=0.5`` (parameters sorted;
    characters other than letters, digits and ``._=,+-`` become ``_``).

    Args:
        base: the method's default folder.
        params: the setting's parameters.

    Returns:
        The folder (``base`` itself without parameters).
    """
    base = Path(base)
    if not params:
        return base
    words = ",".join(f"{k}={json.dumps(v, sort_keys=True, separators=(',', ':'))}"
                     .replace('"', "") for k, v in sorted(params.items()))
    slug = "".join(c if c.isalnum() or c in "._=,+-" else "_" for c in words)[:120]
    return base.with_name(f"{base.name}-{slug}")


def params_text(params: dict) -> str:
    """Parameters as the canonical JSON text of the tables' ``params`` column.

    Args:
        params: a JSON-ready mapping.

    Returns:
        Compact JSON with sorted keys (``"{}"`` for no parameters).
    """
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def is_reusable(record: dict | None, key: dict, *, retry_failed: bool = False) -> bool:
    """Whether a stored record can stand in for a new evaluation (resume).

    Args:
        record: a stored record or ``None``.
        key: the run's values of :data:`KEY_FIELDS`.
        retry_failed: failed records are not reused (their entries are tried again).

    Returns:
        True when the record has the same method, version, parameters, code digest and
        corpus content hash, and finished ``ok`` (or failed, unless ``retry_failed``): an
        entry that timed out or crashed a method is not tried again unless asked.
    """
    return (record is not None and all(record.get(k) == key[k] for k in KEY_FIELDS)
            and (record.get("status") == "ok" or not retry_failed))


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
        fields = {**rec, "params": params_text(rec.get("params", {}))}
        if rec["status"] != "ok":
            failures.append(_from_record(fields, FAILURE_COLUMNS))
            continue
        for masking, values in rec["scalars"].items():
            metrics.update(dict.fromkeys(values))
            rows.append({**_from_record(fields, ID_COLUMNS), "masking": masking, **values})
            bounds = rec.get("bounds", {}).get(masking, {})
            for metric, reason in rec["notes"].get(masking, {}).items():
                notes.append({**_from_record(fields, NOTE_COLUMNS), "masking": masking,
                              "metric": metric, "reason": reason,
                              "bound": bounds.get(metric, "")})
        part = pd.DataFrame(rec["curves"])
        for name, value in _from_record(fields, CURVE_COLUMNS).items():
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


def aggregate(values, bounds=None) -> dict:
    """The summary of one metric over entries: what every table of the project reports.

    Args:
        values: the per-entry values (NaN where not computable: left out).
        bounds: per value, ``"<"``/``">"`` where it is a bound and ``""`` where it is a
            measurement (aligned with ``values``), or None.

    Returns:
        ``mean``, ``std`` (``ddof=1``; NaN below two values), ``median`` (NaN without a
        value), ``n`` (values present, bounds included) and ``bounded`` (how many of them
        are bounds).
    """
    numbers = np.asarray(values, dtype=np.float64)
    present = ~np.isnan(numbers)
    kept = numbers[present]
    marks = (np.zeros(present.sum(), bool) if bounds is None
             else np.asarray(bounds, dtype=object)[present] != "")
    return {"mean": float(kept.mean()) if kept.size else np.nan,
            "std": float(kept.std(ddof=1)) if kept.size > 1 else np.nan,
            "median": float(np.median(kept)) if kept.size else np.nan,
            "n": int(kept.size), "bounded": int(marks.sum())}


def summarise(scalars: pd.DataFrame, failed: int, metrics=SUMMARY_METRICS,
              notes: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`aggregate` of key metrics over a run's entries, per masking.

    Args:
        scalars: the scalars table of a run.
        failed: how many entries failed (repeated on every row).
        metrics: the metrics to summarise; those absent or with no value are left out.
        notes: the notes table of the run, to count the values that are bounds.

    Returns:
        Columns masking, metric, mean, std, median, n, bounded (see :func:`aggregate`),
        failed.
    """
    rows = []
    bound = (set() if notes is None else
             set(map(tuple, notes.loc[notes["bound"].fillna("") != "",
                                      ["entry", "masking", "metric"]].to_numpy())))
    for masking in dict.fromkeys(scalars["masking"]):
        part = scalars[scalars["masking"] == masking]
        for metric in metrics:
            if metric not in part or not part[metric].notna().any():
                continue
            marks = (["<" if (e, masking, metric) in bound else "" for e in part["entry"]]
                     if bound else None)
            rows.append({"masking": masking, "metric": metric,
                         **aggregate(part[metric], marks), "failed": int(failed)})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def format_summary(summary: pd.DataFrame, title: str = "") -> str:
    """The summary as an aligned text table (``mean ± std``, median, n, failed).

    Every mean and median has four significant figures and every standard deviation two
    (trailing zeros kept, so a column reads alike; see
    :func:`cref_bench.results.format.significant`); a metric with one value shows its mean
    without a spread.

    Args:
        summary: a table from :func:`summarise`.
        title: a first line (e.g. the method and corpus).

    Returns:
        The text, one line per (masking, metric).
    """
    from cref_bench.metrics.facts import metric_label
    from cref_bench.results.format import significant

    lines = [title] if title else []
    if summary.empty:
        lines.append("no entry was evaluated")
        return "\n".join(lines)
    labels = {m: metric_label(m) for m in summary["metric"]}
    width = max(len("metric"), *(len(label) for label in labels.values()))
    lines.append(f"{'masking':<9} {'metric':<{width}} {'mean ± std':>23} {'median':>10} "
                 f"{'n':>5} {'failed':>6}")
    for row in summary.itertuples(index=False):
        spread = significant(row.mean, 4)
        if math.isfinite(row.std):
            spread += f" ± {significant(row.std, 2)}"
        lines.append(f"{row.masking:<9} {labels[row.metric]:<{width}} {spread:>23} "
                     f"{significant(row.median, 4):>10} {row.n:>5d} "
                     f"{row.failed:>6d}")
    return "\n".join(lines)
