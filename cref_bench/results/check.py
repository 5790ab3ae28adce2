"""Whether a results folder is fit to publish: the checks behind ``cref-bench check``.

:func:`check_results` reads a folder written by ``cref-bench run`` (layout:
:mod:`cref_bench.results.folder`) and lists every reason it is not fit, each a :class:`Finding`:

* ``corpus``: the corpus content hash is not that of a published corpus
  (:mod:`cref_bench.corpus.releases`), of the store given (``corpus``) or the hash expected
  (``expect_hash``); the split is not the one results are published on;
* ``entries``: an entry of the split was not scored (with the store given: which), the run
  was limited to its first entries, or the tables hold entries the split does not;
* ``failures``: entries that failed, each with its kind and message;
* ``provenance``: ``provenance.json`` lacks what makes the numbers reproducible (method
  version, parameters, code digest, isolation and limits, package versions, hardware), or
  an entry record was computed with another method version, parameters or corpus;
* ``tables``: a table of the folder (``scalars.csv``, ``notes.csv``, ``curves.csv``,
  ``failures.csv``) differs from what its entry records give (a value, a row, a column),
  or the provenance's counts differ from the tables.

The tables are rebuilt from the records with :func:`cref_bench.results.folder.assemble_tables`, so
the comparison follows the results schema when it changes. Numbers agree when equal to
:data:`RELATIVE_TOLERANCE` (the tables are written from the records at full precision).
"""

from __future__ import annotations

import ast
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cref_bench.corpus.releases import HASH_PATTERN, published_corpus
from cref_bench.errors import ResultsError
from cref_bench.results import folder as results
from cref_bench.results.folder import ResultsFolder

RELATIVE_TOLERANCE = 1e-9
"""Table values and record values agree when within this relative difference."""

DEFAULT_SPLIT = "test"
"""The split results are published on when the published corpus does not say."""

REQUIRED_PROVENANCE = {
    ("method", "name"): str, ("method", "version"): str, ("method", "params"): dict,
    ("method", "spec"): str, ("method", "code_digest"): str,
    ("execution", "isolation"): str, ("execution", "timeout_s"): None,
    ("execution", "memory_limit_bytes"): None, ("execution", "sandbox"): str,
    ("execution", "trusted"): None, ("execution", "network"): None,
    ("scoring", "cref_bench_version"): str, ("scoring", "scoring_digest"): str,
    ("dataset", "content_hash"): str, ("dataset", "split"): str, ("dataset", "entries"): int,
    ("packages",): dict, ("hardware",): dict, ("counts", "failed"): int,
}
"""The provenance fields a publishable folder must hold, with their type (``None``: any
value, ``null`` included, but the field must be there)."""

NON_EMPTY = {("packages",), ("hardware",), ("method", "name"), ("method", "version"),
             ("method", "spec"), ("method", "code_digest"), ("dataset", "content_hash")}
"""The provenance fields that must not be empty (a method may have no parameters)."""

ISOLATIONS = ("process", "in-process")
"""The values of ``execution.isolation``."""

SANDBOXES = ("bwrap", "none")
"""The values of ``execution.sandbox``."""

RECORD_KEY_SOURCES = {"method": ("method", "name"), "method_version": ("method", "version"),
                      "params": ("method", "params"), "corpus_hash": ("dataset", "content_hash"),
                      "code_digest": ("method", "code_digest"),
                      "cref_bench_version": ("scoring", "cref_bench_version"),
                      "scoring_digest": ("scoring", "scoring_digest")}
"""Where the provenance holds each field of an entry record's resume key."""

TABLE_KEYS = {"scalars": ("entry", "masking"), "notes": ("entry", "masking", "metric"),
              "curves": ("entry", "masking", "curve", "shell"), "failures": ("entry",)}
"""The columns that name a row of each table in messages."""

MAX_LISTED = 10
"""At most this many items (entries, cells) are named in one finding."""


@dataclass(frozen=True)
class Finding:
    """One reason a results folder is not fit to publish.

    Attributes:
        topic: ``corpus``, ``entries``, ``failures``, ``provenance``, ``tables`` or
            ``recompute`` (a record that differs from its re-score, see
            :func:`cref_bench.run.scoring.recompute`).
        message: what is wrong, in words.
    """

    topic: str
    message: str


@dataclass
class CheckReport:
    """The verdict on one results folder.

    Attributes:
        folder: the results folder.
        findings: every reason it is not fit (empty: fit to publish).
        facts: what was checked: ``method``, ``version``, ``params``, ``corpus_hash``,
            ``corpus`` (the published corpus's name, or None), ``split``, ``entries``
            (scored or failed), ``failed``.
        marks: what a reader must know of how the numbers were made, fit or not: the
            method ran without a sandbox, in the referee's process by the user's trust, or
            with the network.
    """

    folder: Path
    findings: list[Finding] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    marks: list[str] = field(default_factory=list)

    @property
    def fit(self) -> bool:
        """Whether the folder is fit to publish (no finding)."""
        return not self.findings

    def add(self, topic: str, message: str) -> None:
        """Record one finding."""
        self.findings.append(Finding(topic, message))

    def format(self) -> str:
        """The verdict as text: a first line, then one line per finding."""
        f = self.facts
        what = (f"{f.get('method')} {f.get('version')} on corpus "
                f"{str(f.get('corpus_hash'))[:12]} [{f.get('split')}], "
                f"{f.get('entries', 0)} entries")
        marks = [f"  marked: {mark}" for mark in self.marks]
        if self.fit:
            return "\n".join([f"{self.folder}: fit to publish ({what})", *marks])
        lines = [f"{self.folder}: NOT fit to publish ({what}):"]
        lines += [f"  {x.topic}: {x.message}" for x in self.findings]
        return "\n".join(lines + marks)


def _listed(items) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _get(mapping: dict, path: tuple[str, ...]):
    """The value at ``path`` in nested dicts, or ``KeyError``."""
    value = mapping
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise KeyError(".".join(path))
        value = value[key]
    return value


def _canonical(value) -> str:
    """A text cell as a comparable string: dicts and lists (or their JSON or Python text) as
    canonical JSON, missing values as the empty string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in "{[":
            for parse in (json.loads, ast.literal_eval):
                try:
                    value = parse(text)
                    break
                except (ValueError, SyntaxError):
                    continue
            else:
                return value
        else:
            return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return str(value)


def _canonical_column(column: pd.Series) -> pd.Series | list[str]:
    """:func:`_canonical` of every cell, worked out once per distinct value (a table repeats
    its method, parameters, entries and curve names on many rows)."""
    try:
        lookup = {value: _canonical(value) for value in pd.unique(column)}
    except TypeError:  # unhashable cells (dicts, lists): one by one
        return [_canonical(value) for value in column]
    return column.map(lookup).astype(object)  # object even when empty, as the slow path


def _numbers(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column.replace("", np.nan), errors="coerce").to_numpy(np.float64)


def _compare_table(report: CheckReport, name: str, table: pd.DataFrame,
                   expected: pd.DataFrame) -> None:
    """Where a table read from CSV differs from the one its records give."""
    extra = [c for c in table.columns if c not in expected.columns]
    lacking = [c for c in expected.columns if c not in table.columns]
    if extra or lacking:
        words = ([f"has columns not in the records: {_listed(extra)}"] if extra else []) + \
                ([f"lacks columns: {_listed(lacking)}"] if lacking else [])
        report.add("tables", f"{name}.csv " + "; ".join(words))
        return
    fixed = results.TABLE_COLUMNS[name]
    numeric = [c for c in table.columns
               if c in results.NUMBER_COLUMNS or (name == "scalars" and c not in fixed)]
    text = [c for c in table.columns if c not in numeric]

    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[list(table.columns)].copy()
        for column in text:
            frame[column] = _canonical_column(frame[column])
        for column in numeric:
            frame[column] = _numbers(frame[column])
        order = [c for c in TABLE_KEYS[name] if c in frame] + text + numeric
        return frame.sort_values(order, kind="stable").reset_index(drop=True)

    mine, theirs = keyed(table), keyed(expected)
    key = [c for c in TABLE_KEYS[name] if c in mine]
    identity = text + [c for c in key if c in numeric]  # what names a row
    if len(mine) != len(theirs) or not mine[identity].equals(theirs[identity]):
        in_table = pd.MultiIndex.from_frame(mine[identity])
        in_records = pd.MultiIndex.from_frame(theirs[identity])
        places = [identity.index(k) for k in key]
        detail = []
        for words, only in (("rows not in the records", in_table.difference(in_records)),
                            ("rows of the records missing", in_records.difference(in_table))):
            if len(only):
                named = [tuple(row[i] for i in places) for row in only[:MAX_LISTED]]
                more = f" and {len(only) - MAX_LISTED} more" if len(only) > MAX_LISTED else ""
                detail.append(f"{words}: {', '.join(map(str, named))}{more}")
        report.add("tables", f"{name}.csv ({len(mine)} rows) differs from its entry records "
                             f"({len(theirs)} rows): " + ("; ".join(detail) or "a row is "
                                                          "repeated"))
        return
    wrong, count = [], 0
    for column in numeric:
        a, b = mine[column].to_numpy(), theirs[column].to_numpy()
        differ = np.flatnonzero(~np.isclose(a, b, rtol=RELATIVE_TOLERANCE, atol=0,
                                            equal_nan=True))
        count += differ.size
        for i in differ[:MAX_LISTED - len(wrong)]:
            where = " ".join(str(mine.at[i, k]) for k in key)
            wrong.append(f"{where} {column} is {a[i]:.10g} in the table, {b[i]:.10g} in "
                         "its record")
    if count:
        more = f" and {count - len(wrong)} more" if count > len(wrong) else ""
        report.add("tables", f"{name}.csv disagrees with the entry records: "
                             f"{', '.join(wrong)}{more}")


@dataclass
class _Case:
    """One results folder as the checks see it, read once.

    Attributes:
        folder: the folder.
        provenance: its ``provenance.json``.
        tables: each table as text (None where it cannot be read).
        records: the readable entry records by entry id.
        run_entries: the entries the tables hold (scored or failed).
        corpus, expect_hash, split: what the results must be of (see :func:`check_results`).
    """

    folder: ResultsFolder
    provenance: dict
    tables: dict[str, pd.DataFrame | None]
    records: dict[str, dict]
    run_entries: list[str]
    corpus: object = None
    expect_hash: str | None = None
    split: str | None = None


def _check_provenance(case: _Case, report: CheckReport) -> None:
    """The provenance holds what makes the numbers reproducible, with usable values."""
    provenance = case.provenance
    missing, wrong = [], []
    for path, kind in REQUIRED_PROVENANCE.items():
        try:
            value = _get(provenance, path)
        except KeyError:
            missing.append(".".join(path))
            continue
        if kind is not None and (not isinstance(value, kind) or isinstance(value, bool)
                                 or (path in NON_EMPTY and not value)):
            wrong.append(f"{'.'.join(path)} ({'empty' if value in ({}, '') else value!r})")
    if missing:
        report.add("provenance", f"provenance.json lacks {_listed(missing)}")
    if wrong:
        report.add("provenance", f"provenance.json has no usable {_listed(wrong)}")
    digest = provenance.get("method", {}).get("code_digest")
    if isinstance(digest, str) and not HASH_PATTERN.fullmatch(digest):
        report.add("provenance", f"method.code_digest {digest!r} is not a sha256 hex digest")
    isolation = provenance.get("execution", {}).get("isolation")
    if isinstance(isolation, str) and isolation not in ISOLATIONS:
        report.add("provenance", f"execution.isolation {isolation!r} is not one of "
                                 f"{', '.join(ISOLATIONS)}")
    packages = provenance.get("packages")
    if isinstance(packages, dict) and packages and not packages.get("cref-bench"):
        report.add("provenance", "packages lacks the cref-bench version")
    _mark_execution(provenance.get("execution", {}), report)


def _mark_execution(execution: dict, report: CheckReport) -> None:
    """The marks of how the method ran (no sandbox, trusted, network), and a sandbox value
    that is not one."""
    sandbox = execution.get("sandbox")
    if isinstance(sandbox, str) and sandbox not in SANDBOXES:
        report.add("provenance", f"execution.sandbox {sandbox!r} is not one of "
                                 f"{', '.join(SANDBOXES)}")
    if execution.get("trusted"):
        report.marks.append("trusted: the method ran in the referee's own process because "
                            "the user trusted it (--trust-method); nothing kept it from "
                            "changing its scores")
    elif sandbox == "none" and execution.get("isolation") == "process":
        report.marks.append("sandbox: none: the method's process ran without a sandbox (it "
                            "could read the store and write the results)")
    if execution.get("network"):
        report.marks.append("network: the method's box shared the machine's network")


def _check_corpus(case: _Case, report: CheckReport) -> None:
    """The results are of the corpus and split they must be of, not limited."""
    dataset = case.provenance.get("dataset", {})
    recorded, run_split = dataset.get("content_hash"), dataset.get("split")
    published = published_corpus(recorded)
    report.facts["corpus"] = published.name if published else None
    if case.corpus is not None:
        store_hash = case.corpus.content_hash or case.corpus.current_hash()
        if recorded != store_hash:
            report.add("corpus", f"the results are of corpus {recorded}, not of "
                                 f"{case.corpus.location} ({store_hash})")
    if case.expect_hash is not None and recorded != case.expect_hash:
        report.add("corpus", f"the results are of corpus {recorded}, not of the expected "
                             f"{case.expect_hash}")
    if case.corpus is None and case.expect_hash is None and published is None:
        report.add("corpus", f"corpus {recorded} is not a published corpus (none of "
                             "cref_bench.corpus.releases.PUBLISHED); give the store with "
                             "--corpus or its hash with --expect-hash")
    wanted = case.split or (published.split if published else DEFAULT_SPLIT)
    if run_split != wanted:
        report.add("corpus", f"the results are of split {run_split!r}, not {wanted!r}")
    if dataset.get("limit") is not None:
        report.add("entries", f"the run was limited to its first {dataset['limit']} entries "
                              "(--limit)")


def _check_entries(case: _Case, report: CheckReport) -> None:
    """Every entry of the split was scored (the store given), or as many as the provenance
    counts."""
    dataset, run_entries = case.provenance.get("dataset", {}), case.run_entries
    same_corpus = (case.corpus is not None and dataset.get("content_hash")
                   == (case.corpus.content_hash or case.corpus.current_hash()))
    if same_corpus and dataset.get("split") is not None:
        expected_ids = case.corpus.ids(dataset["split"])
        missing = [e for e in expected_ids if e not in set(run_entries)]
        extra = [e for e in run_entries if e not in set(expected_ids)]
        if missing:
            report.add("entries", f"{len(missing)} of the {len(expected_ids)} entries of the "
                                  f"split were not scored: {_listed(missing)}")
        if extra:
            report.add("entries", f"entries not in the split: {_listed(extra)}")
    elif isinstance(dataset.get("entries"), int) and dataset["entries"] != len(run_entries):
        report.add("entries", f"provenance.json counts {dataset['entries']} entries in the "
                              f"split, the tables hold {len(run_entries)}")
    if not run_entries:
        report.add("entries", "no entry was scored")


def _check_records(case: _Case, report: CheckReport) -> None:
    """Every run entry has a record computed with the provenance's method and corpus."""
    absent = [e for e in case.run_entries if e not in case.records]
    if absent:
        report.add("tables", f"entries in the tables without a record: {_listed(absent)}")
    for field_name in results.KEY_FIELDS:
        try:
            wanted = _get(case.provenance, RECORD_KEY_SOURCES[field_name])
        except KeyError:  # a key field the provenance does not hold
            continue
        odd = [e for e in case.run_entries if e in case.records
               and _canonical(case.records[e].get(field_name)) != _canonical(wanted)]
        if odd:
            report.add("provenance", f"entries whose record has another {field_name} than "
                                     f"provenance.json ({_canonical(wanted)}): {_listed(odd)}")


def _check_failures(case: _Case, report: CheckReport) -> None:
    """No entry failed, and the provenance counts the failures the table lists."""
    records = case.records
    failed = [e for e in case.run_entries if records.get(e, {}).get("status") == "failed"]
    report.facts["failed"] = len(failed)
    if failed:
        described = [f"{e} ({records[e].get('kind') or records[e].get('error_type')}: "
                     f"{records[e].get('message')})" for e in failed]
        report.add("failures", f"{len(failed)} entr{'y' if len(failed) == 1 else 'ies'} "
                               f"failed: {_listed(described)}")
    counted = case.provenance.get("counts", {}).get("failed")
    listed = case.tables["failures"]
    if isinstance(counted, int) and listed is not None and counted != len(listed):
        report.add("tables", f"provenance.json counts {counted} failed entries, failures.csv "
                             f"lists {len(listed)}")


def _check_tables(case: _Case, report: CheckReport) -> None:
    """Each table is what its entry records give."""
    present = [case.records[e] for e in case.run_entries if e in case.records]
    try:
        expected = results.assemble_tables(present)
    except (KeyError, TypeError, ValueError) as exc:  # a record without a field it needs
        report.add("tables", f"the entry records cannot be made into tables: "
                             f"{type(exc).__name__}: {exc}")
        return
    for name, table in case.tables.items():
        if table is not None:
            _compare_table(report, name, table, expected[name])


CHECKS = (_check_provenance, _check_corpus, _check_entries, _check_records, _check_failures,
          _check_tables)
"""The checks of :func:`check_results`, in order; each adds its findings to the report."""


def _read(folder: ResultsFolder, report: CheckReport) -> _Case:
    """The folder's provenance, tables and records (what cannot be read is a finding)."""
    provenance = folder.provenance()
    tables = {}
    for name in results.TABLE_COLUMNS:
        try:
            tables[name] = folder.table(name, as_text=True)
        except ResultsError as exc:
            report.add("tables", f"{name}.csv is {exc.fault}")
            tables[name] = None
    records, unreadable = folder.records()
    for name in unreadable:
        report.add("tables", f"entries/{name} cannot be read (not JSON, or another record "
                             "schema)")
    run_entries = sorted({e for name in ("scalars", "failures") if tables[name] is not None
                          for e in tables[name].get("entry", [])})
    return _Case(folder, provenance, tables, records, run_entries)


def check_results(folder: str | os.PathLike, *, corpus=None, expect_hash: str | None = None,
                  split: str | None = None) -> CheckReport:
    """Check whether a results folder is fit to publish (see the module docstring).

    Args:
        folder: a results folder of ``cref-bench run``.
        corpus: the corpus store the results must be of (an opened
            :class:`cref_bench.corpus.reader.Corpus`), or None; with it, the entries of the
            split are known and every one must be scored.
        expect_hash: the content hash the results' corpus must have, or None.
        split: the split that must have been evaluated (default: the published corpus's,
            else :data:`DEFAULT_SPLIT`).

    Returns:
        The :class:`CheckReport`.

    Raises:
        ResultsError: the folder has no readable ``provenance.json``, or ``expect_hash`` is
            not a sha256 hex digest.
    """
    if expect_hash is not None and not HASH_PATTERN.fullmatch(expect_hash):
        raise ResultsError("--expect-hash", f"{expect_hash!r} is not a sha256 hex digest "
                                            "(64 lower-case hex digits)")
    results_folder = ResultsFolder(folder)
    report = CheckReport(results_folder.path)
    case = _read(results_folder, report)
    case.corpus, case.expect_hash, case.split = corpus, expect_hash, split
    method, dataset = case.provenance.get("method", {}), case.provenance.get("dataset", {})
    report.facts.update({
        "method": method.get("name"), "version": method.get("version"),
        "params": method.get("params"), "corpus_hash": dataset.get("content_hash"),
        "split": dataset.get("split"), "entries": len(case.run_entries)})
    for check in CHECKS:
        check(case, report)
    return report
