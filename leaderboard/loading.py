"""Reading results folders for the leaderboard and the report: one :class:`ResultSet`.

A results folder (written by ``cref-bench run``, layout :mod:`cref_bench.results.folder`) holds one
run of one method setting: ``scalars.csv``, ``notes.csv``, ``curves.csv``, ``failures.csv``
and ``provenance.json``. :func:`load` reads any number of them into one :class:`ResultSet`:

* every row is tagged with its setting's **label** (:mod:`leaderboard.labels`), the name every
  table and figure shows: the method's name, plus the parameters (or version) that tell apart
  several settings of one method;
* values that are **bounds** (``notes.csv``'s ``bound``: ``<`` where the true value is lower,
  e.g. a resolution whose FSC never crosses up to Nyquist) are kept beside the scalars, cell
  by cell, so they are shown as bounds, never as missing values;
* **failures** are kept with their kind, so that a setting that failed every entry is still
  on the leaderboard;
* folders of different corpus content are refused unless allowed.

Which columns each file has comes from :mod:`cref_bench.results.folder`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cref_bench.errors import InputError, ResultsError
from cref_bench.metrics.facts import MASKINGS
from cref_bench.results.folder import CURVE_COLUMNS, ID_COLUMNS, ResultsFolder, params_text
from leaderboard.labels import Setting, setting_labels


def _folders(dirs) -> list[Path]:
    folders = [Path(d) for d in ([dirs] if isinstance(dirs, (str, os.PathLike)) else dirs)]
    if not folders:
        raise InputError("no results folder given")
    return folders


@dataclass
class ResultSet:
    """The results of several method settings on one corpus.

    Attributes:
        scalars: one row per (setting, entry, masking): the columns of ``scalars.csv``
            (identifying columns as text, metrics as float64, NaN where not computable),
            plus ``label``, ``corpus_hash`` and ``results_dir``.
        bounds: aligned with ``scalars`` (same index, the metric columns): ``"<"`` where the
            value is an upper bound of the true one (it is finer/lower), ``">"`` where it is
            a lower bound, ``""`` where it is a measurement.
        notes: ``notes.csv`` of every folder, plus ``label`` (why a value is empty or a bound).
        failures: ``failures.csv`` of every folder, plus ``label`` and ``results_dir``.
        settings: every setting, in the order of the folders given, by label.
        folders: the results folder of each label.
        provenance: the ``provenance.json`` of each label.
    """

    scalars: pd.DataFrame
    bounds: pd.DataFrame
    notes: pd.DataFrame
    failures: pd.DataFrame
    settings: dict[str, Setting] = field(default_factory=dict)
    folders: dict[str, Path] = field(default_factory=dict)
    provenance: dict[str, dict] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Every setting's label, in the order of the folders."""
        return list(self.settings)

    @property
    def metrics(self) -> list[str]:
        """The metric columns of the scalars."""
        return list(self.bounds.columns)

    def failure_counts(self) -> dict[str, dict[str, int]]:
        """Failed entries per label and kind: ``{label: {kind: count}}`` (every label)."""
        counts = {label: {} for label in self.settings}
        for (label, kind), n in self.failures.groupby(["label", "kind"], sort=True).size().items():
            counts[label][kind] = int(n)
        return counts

    def curves(self, names: Iterable[str] | None = None) -> pd.DataFrame:
        """The curves of every folder, in one long table with a ``label`` column.

        Args:
            names: keep only these curves (e.g. ``("fsc_fd", "c_ref")``); all by default.

        Returns:
            The columns of :data:`cref_bench.results.folder.CURVE_COLUMNS` plus ``label``.

        Raises:
            ResultsError: a ``curves.csv`` is missing or malformed.
        """
        wanted = None if names is None else set(names)
        frames = []
        for label, folder in self.folders.items():
            frame = ResultsFolder(folder).table("curves")
            if wanted is not None:
                frame = frame[frame["curve"].isin(wanted)]
            frame = frame[list(CURVE_COLUMNS)].copy()
            frame["label"] = label
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=[*CURVE_COLUMNS, "label"])
        return pd.concat(frames, ignore_index=True)


def _setting(folder: Path, provenance: dict, scalars: pd.DataFrame,
             failures: pd.DataFrame) -> Setting:
    """The method setting of one folder: from its provenance, checked against its tables."""
    method = provenance.get("method") or {}
    if not isinstance(method.get("name"), str):
        raise ResultsError(folder / "provenance.json", "has no method.name")
    params = method.get("params") if isinstance(method.get("params"), dict) else {}
    setting = Setting(method["name"], str(method.get("version", "")), params_text(params))
    for name, table in (("scalars", scalars), ("failures", failures)):
        found = set(zip(table["method"], table["params"]))
        other = found - {(setting.method, setting.params)}
        if other:
            raise ResultsError(folder / f"{name}.csv",
                               f"holds results of {sorted(other)[0]}, not of the method and "
                               f"parameters of provenance.json ({setting.method}, "
                               f"{setting.params}): give one folder per run")
    return setting


def _corpus_hashes(folders: list[Path], provenances: list[dict],
                   allow_mixed_corpora: bool) -> list[str | None]:
    hashes = [(p.get("dataset") or {}).get("content_hash") for p in provenances]
    if len(set(hashes)) > 1 and not allow_mixed_corpora:
        listing = "; ".join(f"{f}: {h or 'unknown'}" for f, h in zip(folders, hashes))
        raise ResultsError(", ".join(map(str, folders)),
                           "results of different corpus content cannot be compared "
                           f"({listing}); pass allow_mixed_corpora=True "
                           "(--allow-mixed-corpora) to override")
    return hashes


def _bounds(scalars: pd.DataFrame, notes: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The bound marks of every scalar cell (see :attr:`ResultSet.bounds`)."""
    bounds = pd.DataFrame("", index=scalars.index, columns=metrics, dtype=object)
    marked = notes[notes["bound"].fillna("").isin(["<", ">"])]
    if marked.empty:
        return bounds
    row_of = pd.Series(scalars.index, index=pd.MultiIndex.from_frame(
        scalars[["label", "entry", "masking"]]))
    for note in marked.itertuples(index=False):
        row = row_of.get((note.label, note.entry, note.masking))
        if row is not None and note.metric in bounds.columns:
            bounds.at[row, note.metric] = note.bound
    return bounds


def load(dirs, *, allow_mixed_corpora: bool = False) -> ResultSet:
    """Read results folders (typically one per method setting) into a :class:`ResultSet`.

    Args:
        dirs: a results folder or an iterable of them.
        allow_mixed_corpora: accept folders whose corpus content hashes differ.

    Returns:
        The :class:`ResultSet` (curves are read on demand, :meth:`ResultSet.curves`).

    Raises:
        ResultsError: a file is missing or malformed, a folder holds another method than its
            provenance says, the corpora differ (and that is not allowed), or one setting's
            result for an entry appears twice.
        InputError: no folder given.
    """
    folders = _folders(dirs)
    provenances = [ResultsFolder(f).provenance() for f in folders]
    hashes = _corpus_hashes(folders, provenances, allow_mixed_corpora)
    parts = []
    for folder, provenance, content_hash in zip(folders, provenances, hashes):
        tables = ResultsFolder(folder)
        scalars = tables.table("scalars")
        bad = sorted(set(scalars["masking"].dropna()) - set(MASKINGS))
        if bad:
            raise ResultsError(folder / "scalars.csv", f"unknown masking value(s) {bad}")
        scalars["params"] = scalars["params"].fillna("{}")
        failures = tables.table("failures")
        failures["params"] = failures["params"].fillna("{}")
        notes = tables.table("notes")
        setting = _setting(folder, provenance, scalars, failures)
        scalars["corpus_hash"] = content_hash
        scalars["results_dir"] = str(folder)
        failures["results_dir"] = str(folder)
        parts.append((folder, provenance, setting, scalars, notes, failures))

    labels = setting_labels([p[2] for p in parts])
    settings, by_folder, by_provenance = {}, {}, {}
    for (folder, provenance, setting, scalars, notes, failures), label in zip(parts, labels):
        if label in settings:
            raise ResultsError(f"{by_folder[label]}, {folder}",
                               f"both hold results of {label} (method {setting.method!r}, "
                               f"version {setting.version!r}, parameters {setting.params}); "
                               "give each setting's results once")
        settings[label], by_folder[label], by_provenance[label] = setting, folder, provenance
        for table in (scalars, notes, failures):
            table["label"] = label
    scalars = pd.concat([p[3] for p in parts], ignore_index=True)
    twice = scalars[scalars.duplicated(["label", "entry", "masking"], keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        raise ResultsError(first["results_dir"], f"{first['label']} has more than one result "
                           f"for entry {first['entry']!r} ({first['masking']})")
    notes = pd.concat([p[4] for p in parts], ignore_index=True)
    failures = pd.concat([p[5] for p in parts], ignore_index=True)
    metrics = [c for c in scalars.columns
               if c not in ID_COLUMNS and c not in ("label", "corpus_hash", "results_dir")]
    return ResultSet(scalars=scalars, bounds=_bounds(scalars, notes, metrics), notes=notes,
                     failures=failures, settings=settings, folders=by_folder,
                     provenance=by_provenance)
