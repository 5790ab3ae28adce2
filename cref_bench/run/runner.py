"""Evaluate a method over a split of a corpus: the engine behind ``cref-bench run``.

:func:`run_method` denoises every entry of a split with one method, scores it with the
whole metric set of :func:`cref_bench.metrics.scores.evaluate` (unmasked and masked; the truth
metrics where the entry has a truth map, the reference metrics where it has a reference map;
the model-map FSC where it has a fitted model) and writes a results folder (layout:
:mod:`cref_bench.results.folder`).

* **Methods.** A :class:`~cref_bench.methods.protocol.SingleMapMethod` yields denoised halves,
  so the half-map metrics (FSC-0.5 change, variance analysis) are computed; a pair method gives the
  full map only, and those metrics are reported as not applicable with the method's note.
* **The referee.** The runner never trusts a method. It reads each entry itself and scores
  against its own copy; the method gets read-only inputs whose digests are compared after
  the call, and its output must be a :class:`~cref_bench.methods.protocol.Denoised` of finite,
  non-constant maps on the input grid (:mod:`cref_bench.run.contract`). By default a method runs
  in a child process of its own (:mod:`cref_bench.run.isolation`) under a per-entry time and
  memory limit; only methods that declare ``safe_in_process`` (the classic filters) run in
  this process, where the limits cannot be enforced. ``isolation="process"`` forces a child
  process for those too.
* **Failures in plain sight.** An entry whose loading, denoising or scoring fails is recorded
  in ``failures.csv`` with its kind (the method raised, broke the output contract, changed
  its inputs, timed out, went over memory or crashed; or the entry could not be read or
  scored) and the run carries on; the tables are always written. :attr:`RunResult.exit_status`
  is 0 when every entry succeeded, 1 when some failed.
* **Resume.** Each finished entry is written at once to ``entries/<entry>.json`` (by the
  driver, atomically). A rerun reuses an entry's record when the resume key matches: the
  method's name, version and parameters (those given to the run merged with the method's
  own :meth:`~cref_bench.methods.protocol.Method.params`), a digest of the source file that defines
  the method's class, and the corpus content hash. A failed entry is not tried again unless
  ``retry_failed``: a method that hung or crashed on it would do so again.
* **Parallelism.** ``workers=1`` and no scheduler (or at most one entry to do): in this
  process. Otherwise dask: a ``LocalCluster(n_workers=min(workers, entries to do),
  threads_per_worker=1, dashboard_address=None)``, or the existing cluster at
  ``scheduler``. One entry per worker thread is in flight at a time; the method travels
  with each task; workers read their entry from the corpus location themselves (maps are
  never shipped) and keep one method process each. A worker that dies is not retried with
  its entry (the scheduler's ``allowed-failures`` is 0 on a local cluster): the entry is
  recorded as crashed. With ``save_maps`` the workers
  write ``maps/`` themselves, so on a remote cluster the results folder must be reachable at
  the same path from the workers (so must ``logs/``).
* **Reproducibility.** Before each entry the numpy, ``random`` and torch generators (of the
  process the method runs in) are seeded from ``(seed, entry id)``, so results do not depend
  on scheduling. ``provenance.json`` records the dataset (location, format version, content
  hash, split, entry count), the method (name, version, parameters, code digest, needs_gpu),
  the execution (workers, isolation, limits), package versions, hardware, the seed,
  start/end times and wall time, peak memory (of this process and of each worker process)
  and the command line.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
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

from cref_bench import atomic
from cref_bench.corpus.reader import Corpus, open_corpus
from cref_bench.errors import InputError, MethodError
from cref_bench.maps.io import write_map
from cref_bench.methods.protocol import Method, load_method
from cref_bench.metrics.scores import evaluate
from cref_bench.results import folder as results
from cref_bench.results import provenance
from cref_bench.run.cluster import dask_client
from cref_bench.run.contract import MethodFailure, call_method
from cref_bench.run.isolation import DEFAULT_TIMEOUT, ISOLATION, Limits, MethodProcess

DEFAULT_MEMORY_FRACTION = 0.8
"""Share of the machine's memory the method processes of a local run may use together."""

_CORPORA: dict[tuple[str, str], Corpus] = {}
"""Corpora opened by this process (a worker evaluates many entries of one corpus)."""

_PROCESSES: dict[str, MethodProcess] = {}
"""The method processes this process (the driver or a dask worker) keeps, by run token."""


@dataclass
class RunResult:
    """What :func:`run_method` produced.

    Attributes:
        out: the results folder.
        scalars, notes, curves, failures: the tables written there (see
            :mod:`cref_bench.results.folder`).
        summary: the end-of-run summary table (see :func:`cref_bench.results.folder.summarise`).
        summary_text: the summary as printable text.
        provenance: the content of ``provenance.json``.
        counts: ``entries`` (selected), ``evaluated`` (this run), ``resumed`` (reused,
            ok or failed), ``failed`` (of all selected entries).
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
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(value)


def _corpus(location: str, storage_options: dict | None) -> Corpus:
    key = (location, json.dumps(storage_options, sort_keys=True))
    if key not in _CORPORA:
        _CORPORA[key] = open_corpus(location, storage_options=storage_options, warn_stale=False)
    return _CORPORA[key]


def first_model(entry):
    """The entry's first fitted model as a ``gemmi.Structure``, or None when it has none.

    Args:
        entry: a :class:`cref_bench.corpus.reader.Entry`.
    """
    if not entry.model_names:
        return None
    import gemmi

    block = gemmi.cif.read_string(entry.model(entry.model_names[0])).sole_block()
    return gemmi.make_structure_from_block(block)


@dataclass(frozen=True)
class _Execution:
    """How a run evaluates its entries (see :func:`run_method`); sent to every worker."""

    workers: int
    scheduler: str | None
    seed: int
    progress: bool
    isolation: str
    limits: Limits
    retry_failed: bool
    token: str
    logs: Path
    maps_dir: Path | None


def _failed(kind: str, exc: BaseException, detail: str = "") -> dict:
    error_type = exc.error_type if isinstance(exc, MethodFailure) else type(exc).__name__
    trace = detail or "".join(traceback.format_exception(exc))
    return {"status": "failed", "kind": kind, "error_type": error_type, "message": str(exc),
            "traceback": trace}


def _method_process(method: Method, execution: _Execution) -> MethodProcess:
    """This process's method process of the run (started on first use)."""
    if execution.token not in _PROCESSES:
        log = execution.logs / f"method-{provenance.process_identity()['pid']}.log"
        _PROCESSES[execution.token] = MethodProcess(method, execution.limits, log=log)
    return _PROCESSES[execution.token]


def close_method_processes(token: str) -> None:
    """Stop this process's method process of the run ``token`` (run on every dask worker
    when a run ends)."""
    process = _PROCESSES.pop(token, None)
    if process is not None:
        process.close()


def _read(entry) -> dict:
    """Everything of an entry that a run uses: its maps (``None`` where absent) and model."""
    return {"half1": entry.half1, "half2": entry.half2, "mask": entry.mask,
            "truth": entry.truth, "reference": entry.reference, "model": first_model(entry)}


def _denoise(method: Method, entry_id: str, maps: dict, execution: _Execution):
    seed = entry_seed(execution.seed, entry_id)
    inputs = maps["half1"], maps["half2"], maps["mask"]
    if execution.isolation == "process":
        return _method_process(method, execution).denoise(*inputs, seed=seed, label=entry_id)
    _seed_everything(seed)
    return call_method(method, *inputs)


def _score(entry_id: str, maps: dict, denoised, maps_dir: Path | None) -> dict:
    if maps_dir is not None:
        write_map(maps_dir / f"{entry_id}_denoised.mrc", denoised.full)
    report = evaluate(maps["half1"], maps["half2"], denoised.full,
                      denoised_half1=denoised.half1, denoised_half2=denoised.half2,
                      mask=maps["mask"], model=maps["model"], truth=maps["truth"],
                      reference=maps["reference"], halves_note=denoised.note)
    return {"status": "ok", "box": "x".join(map(str, maps["half1"].shape)),
            "scalars": report.scalars, "notes": report.notes,
            "bounds": report.bounds, "curves": results.curves_to_columns(report.curves)}


def evaluate_entry(method: Method, location: str, entry_id: str, execution: _Execution, *,
                   storage_options: dict | None = None) -> dict:
    """Denoise and score one corpus entry; the unit of work of a run (runs on a worker).

    Every failure is caught and returned as a failed result of its kind: ``load`` (the entry
    cannot be read), the method's kinds of :mod:`cref_bench.run.contract` (it raised, broke the
    output contract, changed its inputs, ran over a limit or died) and ``metrics`` (scoring
    or saving the map failed). ``KeyboardInterrupt`` and ``SystemExit`` propagate.

    Args:
        method: the method.
        location: the corpus location (path or fsspec URL); the entry is read from there.
        entry_id: the entry.
        execution: the run's settings.
        storage_options: fsspec options of the corpus.

    Returns:
        A partial entry record: ``entry``, ``status`` and either ``box``, ``scalars``,
        ``notes``, ``bounds``, ``curves`` or ``kind``, ``error_type``, ``message``,
        ``traceback``; plus ``seconds`` and ``worker`` (host, pid, peak RSS in bytes).
    """
    start = time.perf_counter()
    try:
        maps = _read(_corpus(location, storage_options).entry(entry_id))
    except Exception as exc:  # an entry's failure is recorded, never fatal to the run
        maps = exc
    return _evaluate_read(method, entry_id, start, maps, execution)


def _evaluate_read(method: Method, entry_id: str, start: float, maps: dict | Exception,
                   execution: _Execution) -> dict:
    """:func:`evaluate_entry` once the entry is read (``maps``, or why it could not be)."""
    if isinstance(maps, Exception):
        return _finished(entry_id, start, _failed("load", maps))
    try:
        denoised = _denoise(method, entry_id, maps, execution)
    except MethodFailure as exc:
        return _finished(entry_id, start, _failed(exc.kind, exc, exc.detail))
    return _finished(entry_id, start, _score_safely(entry_id, maps, denoised, execution))


def _read_ahead(location, todo: list[str], storage_options) -> Iterator[tuple]:
    """``(entry id, start, maps)`` for each entry in turn, ``maps`` being why it could not be
    read where it could not; each entry is read in a thread while the one before is worked
    on (so two entries' maps are held at a time), ``start`` backdated by its read time."""
    from concurrent.futures import ThreadPoolExecutor

    def read(entry_id: str) -> tuple:
        began = time.perf_counter()
        try:
            maps = _read(_corpus(location, storage_options).entry(entry_id))
        except Exception as exc:  # an entry's failure is recorded, never fatal to the run
            maps = exc
        return entry_id, time.perf_counter() - began, maps

    entries = iter(todo)
    with ThreadPoolExecutor(1, thread_name_prefix="cref-bench-read") as pool:
        ahead = [pool.submit(read, e) for e in itertools.islice(entries, 1)]
        while ahead:
            following = next(entries, None)
            if following is not None:
                ahead.append(pool.submit(read, following))
            entry_id, seconds, maps = ahead.pop(0).result()
            yield entry_id, time.perf_counter() - seconds, maps


def _score_safely(entry_id: str, maps: dict, denoised, execution: _Execution) -> dict:
    try:
        return _score(entry_id, maps, denoised, execution.maps_dir)
    except Exception as exc:  # recorded as the entry's failure
        return _failed("metrics", exc)


def _finished(entry_id: str, start: float, outcome: dict) -> dict:
    """The partial entry record of an outcome (see :func:`evaluate_entry`)."""
    worker = {**provenance.process_identity(), "peak_rss_bytes": provenance.peak_rss_bytes()}
    return {"entry": entry_id, **outcome, "seconds": time.perf_counter() - start,
            "worker": worker}


def _hand_over(process: MethodProcess, entry_id: str, start: float, maps: dict | Exception,
               execution: _Execution):
    """Hand a read entry to the method's process; returns ``(state, None)``, or
    ``(None, record)`` where the entry failed already (unreadable, or the process would not
    start)."""
    if isinstance(maps, Exception):
        return None, _finished(entry_id, start, _failed("load", maps))
    try:
        process.submit(maps["half1"], maps["half2"], maps["mask"],
                       seed=entry_seed(execution.seed, entry_id), label=entry_id)
    except MethodFailure as exc:
        return None, _finished(entry_id, start, _failed(exc.kind, exc, exc.detail))
    return (entry_id, start, maps), None


def _pipelined(method, location, todo, execution, storage_options) -> Iterator[dict]:
    """Evaluate ``todo`` in this process with the method in its own: the method's process
    denoises entry k + 1 while this one scores entry k and reads entry k + 2, so that a run
    takes about the largest of the three times, not their sum."""
    process = _method_process(method, execution)
    process.start()  # its start overlaps reading the first entry
    handed = None
    for read in itertools.chain(_read_ahead(location, todo, storage_options), [None]):
        outcome = None
        if handed is not None:
            try:
                denoised = process.collect()
            except MethodFailure as exc:
                outcome = _failed(exc.kind, exc, exc.detail)
        following = None
        if read is not None:
            following, failed = _hand_over(process, *read, execution)
            if failed is not None:
                yield failed
        if handed is not None:
            previous, start, maps = handed
            if outcome is None:
                outcome = _score_safely(previous, maps, denoised, execution)
                del denoised
            yield _finished(previous, start, outcome)
        handed = following


def _in_process(method, location, todo, execution, storage_options) -> Iterator[dict]:
    try:
        if execution.isolation == "process":
            yield from _pipelined(method, location, todo, execution, storage_options)
        else:
            for entry_id, start, maps in _read_ahead(location, todo, storage_options):
                yield _evaluate_read(method, entry_id, start, maps, execution)
    finally:
        close_method_processes(execution.token)


def _lost(entry_id: str, exc: BaseException) -> dict:
    """The record of an entry whose dask task was lost (its worker died, say)."""
    return {"entry": entry_id, "status": "failed", "kind": "crashed",
            "error_type": type(exc).__name__,
            "message": f"the worker evaluating it was lost ({type(exc).__name__}: {exc}); "
                       "often the method killed its process or ran out of memory",
            "traceback": "".join(traceback.format_exception(exc)), "seconds": None,
            "worker": None}


def _on_dask(method, location, todo, execution, storage_options) -> Iterator[dict]:
    """Evaluate ``todo`` on a dask cluster, one entry in flight per worker thread (so that a
    worker's death is charged to the entry it was running, and the method travels with each
    task rather than living on workers that may die)."""
    from dask.distributed import as_completed

    waiting = iter(todo)
    with dask_client(min(execution.workers, len(todo)), execution.scheduler,
                     allowed_failures=0) as client:
        slots = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values()) or 1
        flight: dict = {}

        def submit(entry_id: str):
            future = client.submit(evaluate_entry, method, location, entry_id, execution,
                                   storage_options=storage_options, pure=False,
                                   key=f"cref-bench-{entry_id}-{execution.token}")
            flight[future] = entry_id
            return future

        done = as_completed([submit(e) for e in itertools.islice(waiting, slots)])
        try:
            for future in done:
                entry_id = flight.pop(future)
                try:
                    yield future.result()
                except Exception as exc:  # the task, not the entry, was lost
                    yield _lost(entry_id, exc)
                future.release()
                following = next(waiting, None)
                if following is not None:
                    done.add(submit(following))
        finally:
            client.run(close_method_processes, execution.token)


def _params(method: Method, given: dict | None) -> dict:
    """The parameters of the resume key: those given, overridden by the method's own."""
    merged = {**(given or {}), **method.params()}
    return json.loads(json.dumps(merged, sort_keys=True, default=str))


def code_digest(method: Method) -> str | None:
    """The SHA-256 of the source file that defines the method's class (of the class's source
    where the file cannot be read), or None where Python holds no source for it.

    Args:
        method: the method.

    Returns:
        A hex digest, or None.
    """
    cls = type(method)
    try:
        path = inspect.getsourcefile(cls)
        data = Path(path).read_bytes() if path else inspect.getsource(cls).encode()
    except (OSError, TypeError):
        return None
    return hashlib.sha256(data).hexdigest()


def _method_key(method: Method, params: dict, corpus: Corpus) -> dict:
    return {"method": method.name, "method_version": str(method.version), "params": params,
            "code_digest": code_digest(method),
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
                          "cref_bench.methods.protocol.Method")
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


def _isolation(method: Method, isolation: str, limits: Limits) -> str:
    """The isolation a run uses: ``"process"`` or ``"in-process"``."""
    if isolation not in ISOLATION:
        raise InputError("isolation", f"must be one of {', '.join(ISOLATION)}, got {isolation!r}")
    if isolation == "auto":
        return "in-process" if getattr(method, "safe_in_process", False) else "process"
    return isolation


def _limits(timeout: float | None, memory_limit: int | str | None, workers: int) -> Limits:
    if memory_limit == "auto":
        import psutil

        memory_limit = int(DEFAULT_MEMORY_FRACTION * psutil.virtual_memory().total / workers)
    try:
        return Limits(timeout=timeout, memory=memory_limit)
    except ValueError as exc:
        raise InputError("limits", str(exc)) from None


def run_method(method: str | Method, corpus: str | os.PathLike | Corpus, split: str = "test",
               out: str | os.PathLike | None = None, *, workers: int = 1,
               scheduler: str | None = None, limit: int | None = None,
               save_maps: bool = False, params: dict | None = None, progress: bool = True,
               seed: int = 0, storage_options: dict | None = None,
               isolation: str = "auto", timeout: float | None = DEFAULT_TIMEOUT,
               memory_limit: int | str | None = "auto", retry_failed: bool = False,
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
        params: the method's parameters (only with a method given by name); part of the
            resume key and the provenance, merged with the method's own ``params()``.
        progress: show a progress bar.
        seed: the run's seed (each entry gets :func:`entry_seed` of it).
        storage_options: fsspec options of the corpus location.
        isolation: ``"auto"`` (default), ``"process"`` or ``"in-process"`` (see
            :data:`ISOLATION`).
        timeout: seconds a method may spend on one entry (None: no limit); enforced on
            methods that run in their own process.
        memory_limit: bytes of resident memory a method's process may use (None: no limit;
            ``"auto"``: :data:`DEFAULT_MEMORY_FRACTION` of the machine's memory shared by
            the workers); enforced on methods that run in their own process.
        retry_failed: evaluate again the entries that failed in an earlier run.
        command_line: recorded in the provenance (default ``sys.argv``).

    Returns:
        A :class:`RunResult`.

    Raises:
        MethodError: the method cannot be built (see
            :func:`cref_bench.methods.protocol.load_method`), or ``params`` given with a method
            instance.
        InputError: a bad ``workers``, ``limit``, ``isolation`` or limit, or nothing to
            evaluate (an empty split).
        CorpusError: the corpus cannot be opened or the split is unknown.
        OSError: the results folder cannot be written.
    """
    started_at, start = provenance.now_utc(), time.perf_counter()
    spec = method if isinstance(method, str) else None
    method = _build(method, params)
    if workers < 1:
        raise InputError("workers", f"must be at least 1, got {workers}")
    if limit is not None and limit < 1:
        raise InputError("limit", f"must be at least 1, got {limit}")
    limits = _limits(timeout, memory_limit, workers)
    if not isinstance(corpus, Corpus):
        corpus = open_corpus(corpus, storage_options=storage_options)
    ids = corpus.ids(split)[:limit]
    if not ids:
        raise InputError(corpus.location, f"the {split!r} split holds no entries; nothing to "
                         "evaluate (choose another --split)")
    out = Path(out if out is not None else Path("results") / method.name)
    token = hashlib.sha256(f"{time.time_ns()}/{os.getpid()}".encode()).hexdigest()[:10]
    execution = _Execution(workers=workers, scheduler=scheduler, seed=seed, progress=progress,
                           isolation=_isolation(method, isolation, limits), limits=limits,
                           retry_failed=retry_failed, token=token, logs=(out / "logs").resolve(),
                           maps_dir=_make_folders(out, save_maps))
    key = _method_key(method, _params(method, params), corpus)
    records, fresh = _evaluate(method, corpus, ids, out, key, execution)

    tables = results.assemble_tables([records[i] for i in ids])
    counts = {"entries": len(ids), "evaluated": len(fresh), "resumed": len(ids) - len(fresh),
              "failed": len(tables["failures"])}
    summary = results.summarise(tables["scalars"], counts["failed"], notes=tables["notes"])
    title = (f"{method.name} {method.version} on {corpus.location} [{split}]: "
             f"{len(ids) - counts['failed']} of {len(ids)} entries ok")
    record_of_run = {
        "dataset": {"location": corpus.location, "format_version": corpus.format_version,
                    "content_hash": corpus.content_hash, "version": corpus.version,
                    "split": split, "entries": len(ids), "limit": limit},
        "method": _method_facts(method, key, spec),
        "packages": provenance.package_versions(),
        "hardware": provenance.hardware(),
        "execution": {"workers": workers, "scheduler": scheduler, "save_maps": save_maps,
                      "isolation": execution.isolation, "timeout_s": limits.timeout,
                      "memory_limit_bytes": limits.memory, "retry_failed": retry_failed},
        "seed": seed,
        "counts": counts,
        "failures_by_kind": tables["failures"]["kind"].value_counts().to_dict(),
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


def _make_folders(out: Path, save_maps: bool) -> Path | None:
    """Create ``out/entries`` (and ``out/maps`` with ``save_maps``, returned resolved, else
    None)."""
    (out / "entries").mkdir(parents=True, exist_ok=True)
    if not save_maps:
        return None
    (out / "maps").mkdir(exist_ok=True)
    return (out / "maps").resolve()


def _evaluate(method: Method, corpus: Corpus, ids: list[str], out: Path, key: dict,
              execution: _Execution) -> tuple[dict[str, dict], list[dict]]:
    """The record of every entry of ``ids``: the stored one where it can be reused (see
    :func:`cref_bench.results.folder.is_reusable`), else evaluated now and written at once. Returns
    every record by entry id, and the records made now."""
    records = {i: results.read_record(out, i) for i in ids}
    todo = [i for i in ids if not results.is_reusable(records[i], key,
                                                      retry_failed=execution.retry_failed)]
    if execution.scheduler is None and (execution.workers == 1 or len(todo) <= 1):
        stream = _in_process(method, corpus.location, todo, execution, corpus.storage_options)
    else:
        stream = _on_dask(method, corpus.location, todo, execution, corpus.storage_options)
    header = {"schema": results.RECORD_SCHEMA, **key}
    desc = method.name + (f" ({len(ids) - len(todo)} resumed)" if len(todo) < len(ids) else "")
    fresh = _record_all(stream, out, header, {i: corpus.entry(i).split for i in todo},
                        len(todo), desc, execution.progress)
    records.update((rec["entry"], rec) for rec in fresh)
    return records, fresh


def _method_facts(method: Method, key: dict, spec: str | None) -> dict:
    """The provenance's description of the method."""
    return {"name": method.name, "version": str(method.version), "params": key["params"],
            "code_digest": key["code_digest"], "needs_gpu": bool(method.needs_gpu),
            "spec": spec, "class": f"{type(method).__module__}:{type(method).__qualname__}"}


def _write_results(out: Path, tables: dict[str, pd.DataFrame], record_of_run: dict) -> None:
    """The tables and ``provenance.json`` of a run, each written atomically."""
    for name, frame in tables.items():
        results.write_table(out / f"{name}.csv", frame)
    atomic.write_text(out / "provenance.json", json.dumps(record_of_run, indent=2))
