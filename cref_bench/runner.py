"""Evaluate a method over a split of a corpus: the engine behind ``cref-bench run``.

:func:`run_method` denoises every entry of a split with one method, scores it with the
whole metric set of :func:`cref_bench.metrics.evaluate` (unmasked and masked; the truth
metrics where the entry has a truth map, the reference metrics where it has a reference map;
the model-map FSC where it has a fitted model) and writes a results folder (layout:
:mod:`cref_bench.results`).

* **Methods.** A :class:`~cref_bench.methods.SingleMapMethod` yields denoised halves, so the
  half-map metrics (FSC-0.5 change, variance analysis) are computed; a pair method gives the
  full map only, and those metrics are reported as not applicable with the method's note.
* **Entries in isolation.** An entry whose loading, denoising or scoring raises is recorded
  in ``failures.csv`` with the error, and the run carries on. :attr:`RunResult.exit_status`
  is 0 when every entry succeeded, 1 when some failed.
* **Resume.** Each finished entry is written at once to ``entries/<entry>.json`` (by the
  driver, atomically). A rerun skips an entry whose record finished ``ok`` for the same
  method name, version and parameters and the same corpus content hash; failed entries and
  records of another version, parameters or corpus are recomputed.
* **Parallelism.** ``workers=1`` and no scheduler (or at most one entry to do): in this
  process. Otherwise dask: a ``LocalCluster(n_workers=min(workers, entries to do),
  threads_per_worker=1, dashboard_address=None)``, or the existing cluster at
  ``scheduler``. The method is sent to each worker once; workers read their entry from the
  corpus location themselves (maps are never shipped). With ``save_maps`` the workers write
  ``maps/`` themselves, so on a remote cluster the results folder must be reachable at the
  same path from the workers.
* **Reproducibility.** Before each entry the numpy, ``random`` and torch generators are
  seeded from ``(seed, entry id)``, so results do not depend on scheduling.
  ``provenance.json`` records the dataset (location, format version, content hash, split,
  entry count), the method (name, version, parameters, needs_gpu), package versions,
  hardware, the seed, start/end times and wall time, peak memory (of this process and of
  each worker process) and the command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cref_bench import atomic, provenance, results
from cref_bench.cluster import dask_client
from cref_bench.dataset import Corpus, open_corpus
from cref_bench.errors import InputError, MethodError
from cref_bench.mapio import write_map
from cref_bench.methods import Denoised, Method, load_method
from cref_bench.metrics import evaluate

_CORPORA: dict[tuple[str, str], Corpus] = {}
"""Corpora opened by this process (a worker evaluates many entries of one corpus)."""


@dataclass
class RunResult:
    """What :func:`run_method` produced.

    Attributes:
        out: the results folder.
        scalars, notes, curves, failures: the tables written there (see
            :mod:`cref_bench.results`).
        summary: the end-of-run summary table (masking, metric, mean, std, median, n, failed).
        summary_text: the summary as printable text.
        provenance: the content of ``provenance.json``.
        counts: ``entries`` (selected), ``evaluated`` (this run), ``resumed`` (reused),
            ``failed``.
    """

    out: Path
    scalars: pd.DataFrame
    notes: pd.DataFrame
    curves: pd.DataFrame
    failures: pd.DataFrame
    summary: pd.DataFrame
    summary_text: str
    provenance: dict
    counts: dict = field(default_factory=dict)

    @property
    def exit_status(self) -> int:
        """0 when every entry succeeded, 1 when some failed."""
        return 1 if self.counts.get("failed", 0) else 0


def entry_seed(seed: int, entry_id: str) -> int:
    """The seed used for one entry: a hash of the run's seed and the entry id (32 bits).

    Args:
        seed: the run's seed.
        entry_id: the entry id.

    Returns:
        An int in ``[0, 2**32)``.
    """
    digest = hashlib.sha256(f"cref-bench/run/{seed}/{entry_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _seed_everything(value: int) -> None:
    random.seed(value)
    np.random.seed(value)
    import torch

    torch.manual_seed(value)


def _corpus(location: str, storage_options: dict | None) -> Corpus:
    key = (location, json.dumps(storage_options, sort_keys=True))
    if key not in _CORPORA:
        _CORPORA[key] = open_corpus(location, storage_options=storage_options, warn_stale=False)
    return _CORPORA[key]


def _first_model(entry):
    """The entry's first fitted model as a gemmi structure, or None."""
    if not entry.model_names:
        return None
    import gemmi

    block = gemmi.cif.read_string(entry.model(entry.model_names[0])).sole_block()
    return gemmi.make_structure_from_block(block)


def _score(method: Method, entry, maps_dir: str | None) -> dict:
    half1, half2, mask = entry.half1, entry.half2, entry.mask
    denoised = method.denoise(half1, half2, mask)
    if not isinstance(denoised, Denoised):
        raise TypeError(f"method {method.name!r} returned {type(denoised).__name__}, "
                        "not a cref_bench.methods.Denoised")
    if maps_dir is not None:
        write_map(Path(maps_dir) / f"{entry.id}_denoised.mrc", denoised.full)
    report = evaluate(half1, half2, denoised.full, denoised_half1=denoised.half1,
                      denoised_half2=denoised.half2, mask=mask, model=_first_model(entry),
                      truth=entry.truth, reference=entry.reference, halves_note=denoised.note)
    return {"status": "ok", "scalars": report.scalars, "notes": report.notes,
            "curves": results.curves_to_columns(report.curves)}


def evaluate_entry(method: Method, location: str, entry_id: str, *,
                   storage_options: dict | None = None, maps_dir: str | None = None,
                   seed: int = 0) -> dict:
    """Denoise and score one corpus entry; the unit of work of a run (runs on a worker).

    Exceptions (``Exception`` subclasses) from reading the entry, the method or the metrics
    are caught and returned as a failed result; ``KeyboardInterrupt`` and ``SystemExit``
    propagate.

    Args:
        method: the method.
        location: the corpus location (path or fsspec URL); the entry is read from there.
        entry_id: the entry.
        storage_options: fsspec options of the corpus.
        maps_dir: a folder to write ``<entry>_denoised.mrc`` into, or None.
        seed: the run's seed (see :func:`entry_seed`).

    Returns:
        A partial entry record: ``entry``, ``status`` and either ``scalars``, ``notes``,
        ``curves`` or ``error_type``, ``message``, ``traceback``; plus ``seconds`` and
        ``worker`` (host, pid, peak RSS in bytes).
    """
    start = time.perf_counter()
    _seed_everything(entry_seed(seed, entry_id))
    try:
        outcome = _score(method, _corpus(location, storage_options).entry(entry_id), maps_dir)
    except Exception as exc:  # an entry's failure is recorded, never fatal to the run
        outcome = {"status": "failed", "error_type": type(exc).__name__, "message": str(exc),
                   "traceback": traceback.format_exc()}
    worker = {**provenance.process_identity(), "peak_rss_bytes": provenance.peak_rss_bytes()}
    return {"entry": entry_id, **outcome, "seconds": time.perf_counter() - start,
            "worker": worker}


def _in_process(method, location, todo, options) -> Iterator[dict]:
    for entry_id in todo:
        yield evaluate_entry(method, location, entry_id, **options)


def _on_dask(method, location, todo, options, workers: int,
             scheduler: str | None) -> Iterator[dict]:
    from dask.distributed import as_completed

    with dask_client(workers, scheduler) as client:
        [shared_method] = client.scatter([method], broadcast=True, hash=False)
        token = hashlib.sha256(f"{time.time_ns()}/{os.getpid()}".encode()).hexdigest()[:10]
        futures = {client.submit(evaluate_entry, shared_method, location, entry_id,
                                 key=f"cref-bench-{entry_id}-{token}", pure=False,
                                 **options): entry_id
                   for entry_id in todo}
        for future in as_completed(futures):
            if future.status == "error":  # the worker itself died or the task was lost
                exc = future.exception()
                yield {"entry": futures[future], "status": "failed",
                       "error_type": type(exc).__name__, "message": str(exc),
                       "traceback": "".join(traceback.format_exception(exc)),
                       "seconds": None, "worker": None}
            else:
                yield future.result()
            future.release()


def _method_key(method: Method, corpus: Corpus) -> dict:
    params = json.loads(json.dumps(method.params(), sort_keys=True, default=str))
    return {"method": method.name, "method_version": str(method.version), "params": params,
            "corpus_hash": corpus.content_hash or corpus.current_hash()}


def _peak_memory(records: Iterable[dict]) -> dict:
    here = provenance.process_identity()
    workers: dict[str, int] = {}
    for rec in records:
        worker = rec.get("worker")
        if worker and (worker["host"], worker["pid"]) != (here["host"], here["pid"]):
            name = f"{worker['host']}:{worker['pid']}"
            workers[name] = max(workers.get(name, 0), worker["peak_rss_bytes"])
    driver = provenance.peak_rss_bytes()
    return {"driver_rss_bytes": driver, "workers_rss_bytes": workers,
            "max_rss_bytes": max([driver, *workers.values()])}


def _build(method: str | Method, params: dict | None) -> Method:
    if isinstance(method, str):
        return load_method(method, **(params or {}))
    if params:
        raise MethodError(method.name, "params can only be given with a method given by name")
    if not isinstance(method, Method):
        raise MethodError(repr(method), "expected a method name or a "
                          "cref_bench.methods.Method")
    return method


def _record_all(stream: Iterable[dict], out: Path, header: dict, split_of: dict[str, str],
                total: int, desc: str, progress: bool) -> list[dict]:
    """Write each outcome as its entry record as soon as it arrives; returns the records."""
    fresh, failed = [], 0
    with tqdm(total=total, unit="entry", desc=desc, disable=not progress) as bar:
        for outcome in stream:
            record = {**header, "split": split_of[outcome["entry"]], **outcome,
                      "finished_at": provenance.now_utc()}
            results.write_record(out, record)
            fresh.append(record)
            failed += record["status"] != "ok"
            bar.set_postfix(failed=failed, refresh=False)
            bar.update()
    return fresh


def run_method(method: str | Method, corpus: str | os.PathLike | Corpus, split: str = "test",
               out: str | os.PathLike | None = None, *, workers: int = 1,
               scheduler: str | None = None, limit: int | None = None,
               save_maps: bool = False, params: dict | None = None, progress: bool = True,
               seed: int = 0, storage_options: dict | None = None,
               command_line: list[str] | None = None) -> RunResult:
    """Evaluate a method on every entry of a corpus split and write the results folder.

    Args:
        method: a registered method name or ``package.module:Attribute`` (built with
            ``load_method(method, **params)``), or a :class:`Method` instance.
        corpus: the corpus location (path or fsspec URL) or an opened :class:`Corpus`.
        split: ``test`` (default), ``test-50``, ``valid``, ``train`` or ``all``.
        out: the results folder (default ``results/<method name>``).
        workers: dask worker processes of a local cluster; 1 (default) runs in this process.
        scheduler: address of an existing dask scheduler (``tcp://host:port``); overrides
            ``workers``.
        limit: evaluate only the first ``limit`` entries of the split.
        save_maps: write every denoised full map to ``maps/<entry>_denoised.mrc``.
        params: the method's parameters (only with a method given by name).
        progress: show a progress bar.
        seed: the run's seed (each entry gets :func:`entry_seed` of it).
        storage_options: fsspec options of the corpus location.
        command_line: recorded in the provenance (default ``sys.argv``).

    Returns:
        A :class:`RunResult`.

    Raises:
        MethodError: the method cannot be built (see
            :func:`cref_bench.methods.load_method`), or ``params`` given with a method
            instance.
        InputError: a bad ``workers`` or ``limit``.
        CorpusError: the corpus cannot be opened or the split is unknown.
        OSError: the results folder cannot be written.
    """
    started_at, start = provenance.now_utc(), time.perf_counter()
    spec = method if isinstance(method, str) else None
    method = _build(method, params)
    if workers < 1:
        raise InputError("workers", f"must be at least 1, got {workers}")
    if limit is not None and limit < 0:
        raise InputError("limit", f"must not be negative, got {limit}")
    if not isinstance(corpus, Corpus):
        corpus = open_corpus(corpus, storage_options=storage_options)
    ids = corpus.ids(split)[:limit]
    out = Path(out if out is not None else Path("results") / method.name)
    execution = _Execution(workers=workers, scheduler=scheduler, seed=seed, progress=progress,
                           maps_dir=_make_folders(out, save_maps))
    key = _method_key(method, corpus)
    records, fresh = _evaluate(method, corpus, ids, out, key, execution)

    tables = results.assemble_tables([records[i] for i in ids])
    counts = {"entries": len(ids), "evaluated": len(fresh), "resumed": len(ids) - len(fresh),
              "failed": len(tables["failures"])}
    summary = results.summarise(tables["scalars"], counts["failed"])
    title = (f"{method.name} {method.version} on {corpus.location} [{split}]: "
             f"{len(ids) - counts['failed']} of {len(ids)} entries ok")
    record_of_run = {
        "dataset": {"location": corpus.location, "format_version": corpus.format_version,
                    "content_hash": corpus.content_hash, "version": corpus.version,
                    "split": split, "entries": len(ids), "limit": limit},
        "method": _method_facts(method, key, spec),
        "packages": provenance.package_versions(),
        "hardware": provenance.hardware(),
        "execution": {"workers": workers, "scheduler": scheduler, "save_maps": save_maps},
        "seed": seed,
        "counts": counts,
        "started_at": started_at,
        "finished_at": provenance.now_utc(),
        "wall_seconds": time.perf_counter() - start,
        "peak_memory": _peak_memory(fresh),
        "command_line": list(sys.argv if command_line is None else command_line),
    }
    _write_results(out, tables, record_of_run)
    return RunResult(out=out, summary=summary,
                     summary_text=results.format_summary(summary, title),
                     provenance=record_of_run, counts=counts, **tables)


@dataclass(frozen=True)
class _Execution:
    """How a run evaluates its entries (see :func:`run_method`)."""

    workers: int
    scheduler: str | None
    seed: int
    progress: bool
    maps_dir: Path | None


def _make_folders(out: Path, save_maps: bool) -> Path | None:
    """Create ``out/entries`` (and ``out/maps`` with ``save_maps``, returned, else None)."""
    (out / "entries").mkdir(parents=True, exist_ok=True)
    if not save_maps:
        return None
    (out / "maps").mkdir(exist_ok=True)
    return out / "maps"


def _evaluate(method: Method, corpus: Corpus, ids: list[str], out: Path, key: dict,
              execution: _Execution) -> tuple[dict[str, dict], list[dict]]:
    """The record of every entry of ``ids``: the stored one where it can be reused (same
    :data:`~cref_bench.results.KEY_FIELDS`, finished ok), else evaluated now and written at
    once. Returns every record by entry id, and the records made now."""
    records = {i: results.read_record(out, i) for i in ids}
    todo = [i for i in ids if not results.is_reusable(records[i], key)]
    maps_dir = execution.maps_dir
    options = {"storage_options": corpus.storage_options, "seed": execution.seed,
               "maps_dir": None if maps_dir is None else str(maps_dir.resolve())}
    if execution.scheduler is None and (execution.workers == 1 or len(todo) <= 1):
        stream = _in_process(method, corpus.location, todo, options)
    else:
        stream = _on_dask(method, corpus.location, todo, options,
                          min(execution.workers, len(todo)), execution.scheduler)
    header = {"schema": results.RECORD_SCHEMA, **key}
    desc = method.name + (f" ({len(ids) - len(todo)} resumed)" if len(todo) < len(ids) else "")
    fresh = _record_all(stream, out, header, {i: corpus.entry(i).split for i in todo},
                        len(todo), desc, execution.progress)
    records.update((rec["entry"], rec) for rec in fresh)
    return records, fresh


def _method_facts(method: Method, key: dict, spec: str | None) -> dict:
    """The provenance's description of the method."""
    return {"name": method.name, "version": str(method.version), "params": key["params"],
            "needs_gpu": bool(method.needs_gpu), "spec": spec,
            "class": f"{type(method).__module__}:{type(method).__qualname__}"}


def _write_results(out: Path, tables: dict[str, pd.DataFrame], record_of_run: dict) -> None:
    """The tables and ``provenance.json`` of a run, each written atomically."""
    for name, frame in tables.items():
        results.write_table(out / f"{name}.csv", frame)
    atomic.write_text(out / "provenance.json", json.dumps(record_of_run, indent=2))
