"""Evaluate a method over a split of a corpus: the engine behind ``cref-bench run``.

:func:`run_method` denoises every entry of a split with one method, scores it with the
whole metric set of :func:`cref_bench.metrics.scores.evaluate` (unmasked and masked; the truth
metrics where the entry has a truth map, the reference metrics where it has a reference map;
the model-map FSC where it has a fitted model) and writes a results folder (layout:
:mod:`cref_bench.results.folder`).

* **Methods.** A :class:`~cref_bench.methods.protocol.SingleMapMethod` is called three times
  per entry, by the runner, on one map per call: the average, ``M1`` alone and ``M2`` alone
  (:mod:`cref_bench.run.single_map`; the time limit holds per call), each kind of call in a
  box of its own, so that no box that denoises ``M1`` ever sees ``M2``. Its halves are held
  out, so the held-out scores (:mod:`cref_bench.metrics.heldout`) and the half-map metrics
  (FSC-0.5 change, variance analysis) are computed. A pair method is called once with both
  halves; its held-out scores are not applicable, and its half-map metrics are computed
  where it returns denoised halves (else not applicable, with the method's note).
* **The referee.** The runner never trusts a method. It reads each entry itself (every array
  checked against the store's digests) and scores against its own copy; the method gets
  read-only inputs labelled ``<entry>/<map>`` (never a path of the store), and its output
  must be a :class:`~cref_bench.methods.protocol.Denoised` of finite, non-constant maps on the
  input grid (:mod:`cref_bench.run.contract`). A method runs in its box
  (:mod:`cref_bench.run.isolation`, :mod:`cref_bench.run.sandbox`: its own namespaces, no
  store, no results folder, no network, every descendant killed with it) under a per-entry
  time and memory limit, and a method that is not cref-bench's own is built there and never
  imported here (:mod:`cref_bench.run.trust`). Only cref-bench's own methods that declare
  ``safe_in_process`` (the classic filters) run in this process, and any method the user
  trusts (``trust_method``, recorded); ``isolation="process"`` boxes those too.
* **Failures in plain sight.** An entry whose loading, denoising or scoring fails is recorded
  in ``failures.csv`` with its kind (the method raised, broke the output contract, changed
  its inputs, timed out, went over memory or crashed; or the entry could not be read or
  scored) and the run carries on; the tables are always written. :attr:`RunResult.exit_status`
  is 0 when every entry succeeded, 1 when some failed.
* **Resume.** Each finished entry is written at once to ``entries/<entry>.json`` (by the
  driver, atomically; a failed one's traceback also to ``logs/<entry>.log``). A folder that
  holds another setting's results (other values of the given parameters) is never replaced
  silently: see :func:`_folder_of`. A rerun reuses an entry's record when the resume key
  matches: the
  method's name, version and parameters (those given to the run merged with the method's
  own :meth:`~cref_bench.methods.protocol.Method.params`), a digest of all of the method's
  code (:mod:`cref_bench.methods.code`), the corpus content hash, cref-bench's version and a
  digest of its scoring code (:mod:`cref_bench.run.scoring`). A failed entry is not tried
  again unless ``retry_failed``: a method that hung or crashed on it would do so again.
* **Re-scoring.** With ``keep_outputs`` (the default) each checked output is kept in
  ``outputs/`` (compressed float32; its digests in the record), so that ``cref-bench check
  --recompute`` can re-score every record.
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
  the execution (isolation, sandbox, trust, network, limits), the scoring code (version and
  digest), the settings, package versions, hardware, the seed,
  start/end times and wall time, peak memory (of this process and of each worker process)
  and the command line.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import os
import random
import re
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cref_bench.corpus.reader import Corpus, open_corpus
from cref_bench.errors import InputError, MethodError
from cref_bench.maps.io import write_map
from cref_bench.maps.volume import Volume
from cref_bench.methods.code import code_roots
from cref_bench.methods.protocol import Method
from cref_bench.methods.registry import name_file_frames
from cref_bench.results import folder as results
from cref_bench.results import provenance
from cref_bench.results.folder import ResultsFolder
from cref_bench.run import sandbox, single_map
from cref_bench.run.cluster import dask_client
from cref_bench.run.contract import MethodFailure, call_method
from cref_bench.run.isolation import BoxSettings, Limits, MethodProcess, method_boxes
from cref_bench.run.scoring import read_entry, score_entry, scoring_facts
from cref_bench.run.settings import RunSettings
from cref_bench.run.trust import Subject, placement, subject

RESTART_SECONDS = 30.0
"""How long a parallel run waits for a dead worker's replacement before the next entry."""

DEFAULT_MEMORY_FRACTION = 0.8
"""Share of the machine's memory the method processes of a local run may use together."""

Boxes = MethodProcess | single_map.HeldOutBoxes
"""Where a run's method denoises when it runs in a box: its box, or a single-map method's three
(one per kind of held-out call)."""


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
        messages: what to tell the user of the run: the folder chosen where the default one
            held another setting, and how many entries were reused and computed (and why).
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
    messages: list[str] = field(default_factory=list)

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


@dataclass(frozen=True)
class _Run:
    """One run as its entries' evaluations see it; sent to every worker.

    Attributes:
        settings: the run's settings, as given.
        corpus: the corpus (pickled as its location).
        isolation: ``"process"`` or ``"in-process"``, resolved for the method.
        limits: the method process's limits, resolved.
        box: what the method's box may see besides its code and inputs.
        token: the run's unique name (its dask keys and worker plugin).
        logs: the folder of the method's logs.
        maps_dir: where denoised maps are saved, or None.
        folder: the results folder (kept outputs are written there), or None to keep none.
        single_map: the method is single-map: the runner makes its held-out calls.
        not_held_out: why a pair method's scores are not held out.
    """

    settings: RunSettings
    corpus: Corpus
    isolation: str
    limits: Limits
    box: BoxSettings
    token: str
    logs: Path
    maps_dir: Path | None
    folder: ResultsFolder | None
    single_map: bool = False
    not_held_out: str = ""


def _failed(kind: str, exc: BaseException, detail: str = "") -> dict:
    error_type = exc.error_type if isinstance(exc, MethodFailure) else type(exc).__name__
    trace = detail or "".join(traceback.format_exception(exc))
    return {"status": "failed", "kind": kind, "error_type": error_type, "message": str(exc),
            "traceback": trace}


def _labelled(volume: Volume | None, entry_id: str, name: str) -> Volume | None:
    """An input as a method sees it in this process: its source a label, not a path."""
    if volume is None:
        return None
    return Volume(volume.data, volume.voxel_size, volume.origin, f"{entry_id}/{name}")


def _denoise(method: Method | None, entry_id: str, maps: dict, run: _Run,
             process: Boxes | None):
    """Denoise one entry: ``(Denoised, heldout_note)``, the note empty where the halves were
    held out (a single-map method, each half in a call of its own)."""
    seed = entry_seed(run.settings.seed, entry_id)
    if process is not None:
        inputs = maps["half1"], maps["half2"], maps["mask"]
        if run.single_map:
            call = single_map.process_caller(process, entry_id)
            return single_map.denoise_apart(call, *inputs, seed), ""
        return process.denoise(*inputs, seed=seed, label=entry_id), run.not_held_out
    inputs = tuple(_labelled(maps[n], entry_id, n) for n in ("half1", "half2", "mask"))
    if run.single_map:
        call = single_map.in_process_caller(method, _seed_everything)
        return single_map.denoise_apart(call, *inputs, seed), ""
    _seed_everything(seed)
    return call_method(method, *inputs), run.not_held_out


def _score(entry_id: str, maps: dict, denoised, heldout_note: str, run: _Run) -> dict:
    if run.maps_dir is not None:
        write_map(run.maps_dir / f"{entry_id}_denoised.mrc", denoised.full)
    outcome = score_entry(maps, denoised, heldout_note)
    if run.folder is not None:
        outcome["outputs"] = run.folder.keep_outputs(entry_id, denoised)
    return outcome


def evaluate_entry(method: Method | str, run: _Run, entry_id: str, params: dict) -> dict:
    """Denoise and score one corpus entry: a parallel run's task (runs on a dask worker, with
    the worker's method process where the method runs in its own).

    Every failure is caught and returned as a failed result of its kind: ``load`` (the entry
    cannot be read), the method's kinds of :mod:`cref_bench.run.contract` (it raised, broke the
    output contract, changed its inputs, ran over a limit or died) and ``metrics`` (scoring
    or saving the map failed). ``KeyboardInterrupt`` and ``SystemExit`` propagate.

    Args:
        method: the method in this process (it runs here), or the spec or instance its box
            builds on the worker.
        run: the run (its corpus is read on the worker).
        entry_id: the entry.
        params: the parameters of a spec.

    Returns:
        A partial entry record: ``entry``, ``status`` and either ``box``, ``scalars``,
        ``notes``, ``bounds``, ``curves`` or ``kind``, ``error_type``, ``message``,
        ``traceback``; plus ``seconds`` and ``worker`` (host, pid, peak RSS in bytes).
    """
    start = time.perf_counter()
    try:
        maps = read_entry(run.corpus.entry(entry_id))
    except Exception as exc:  # an entry's failure is recorded, never fatal to the run
        maps = exc
    process = None
    if run.isolation == "process":
        from cref_bench.run.workers import method_process

        process = method_process(run.token, method, params, run.single_map)
    return _evaluate_read(method, entry_id, start, maps, run, process)


def _evaluate_read(method: Method | None, entry_id: str, start: float, maps: dict | Exception,
                   run: _Run, process: Boxes | None = None) -> dict:
    """:func:`evaluate_entry` once the entry is read (``maps``, or why it could not be)."""
    if isinstance(maps, Exception):
        return _finished(entry_id, start, _failed("load", maps))
    try:
        denoised, heldout_note = _denoise(method, entry_id, maps, run, process)
    except MethodFailure as exc:
        return _finished(entry_id, start, _failed(exc.kind, exc, exc.detail))
    return _finished(entry_id, start,
                     _score_safely(entry_id, maps, denoised, heldout_note, run))


def _read_ahead(corpus: Corpus, todo: list[str]) -> Iterator[tuple]:
    """``(entry id, start, maps)`` for each entry in turn, ``maps`` being why it could not be
    read where it could not; each entry is read in a thread while the one before is worked
    on (so two entries' maps are held at a time), ``start`` backdated by its read time."""
    from concurrent.futures import ThreadPoolExecutor

    def read(entry_id: str) -> tuple:
        began = time.perf_counter()
        try:
            maps = read_entry(corpus.entry(entry_id))
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


def _score_safely(entry_id: str, maps: dict, denoised, heldout_note: str, run: _Run) -> dict:
    try:
        return _score(entry_id, maps, denoised, heldout_note, run)
    except Exception as exc:  # recorded as the entry's failure
        return _failed("metrics", exc)


def _finished(entry_id: str, start: float, outcome: dict) -> dict:
    """The partial entry record of an outcome (see :func:`evaluate_entry`)."""
    worker = {**provenance.process_identity(), "peak_rss_bytes": provenance.peak_rss_bytes()}
    return {"entry": entry_id, **outcome, "seconds": time.perf_counter() - start,
            "worker": worker}


def _hand_over(process: Boxes, entry_id: str, start: float, maps: dict | Exception,
               run: _Run):
    """Hand a read entry to the method's process (a single-map method's three calls are made
    from a thread); returns ``(state, None)``, state ending in what to ``collect`` from and
    the held-out note, or ``(None, record)`` where the entry failed already (unreadable, or
    the process would not start)."""
    if isinstance(maps, Exception):
        return None, _finished(entry_id, start, _failed("load", maps))
    inputs = maps["half1"], maps["half2"], maps["mask"]
    seed = entry_seed(run.settings.seed, entry_id)
    if run.single_map:
        call = single_map.process_caller(process, entry_id)
        return (entry_id, start, maps, single_map.Apart(call, *inputs, seed), ""), None
    try:
        process.submit(*inputs, seed=seed, label=entry_id)
    except MethodFailure as exc:
        return None, _finished(entry_id, start, _failed(exc.kind, exc, exc.detail))
    return (entry_id, start, maps, process, run.not_held_out), None


def _pipelined(process: Boxes, todo: list[str], run: _Run) -> Iterator[dict]:
    """Evaluate ``todo`` in this process with the method in its own: the method's process
    denoises entry k + 1 while this one scores entry k and reads entry k + 2, so that a run
    takes about the largest of the three times, not their sum."""
    process.start()  # its start overlaps reading the first entry
    handed = None
    for read in itertools.chain(_read_ahead(run.corpus, todo), [None]):
        outcome = None
        if handed is not None:
            previous, start, maps, pending, heldout_note = handed
            try:
                denoised = pending.collect()
            except MethodFailure as exc:
                outcome = _failed(exc.kind, exc, exc.detail)
        following = None
        if read is not None:
            following, failed = _hand_over(process, *read, run)
            if failed is not None:
                yield failed
        if handed is not None:
            if outcome is None:
                outcome = _score_safely(previous, maps, denoised, heldout_note, run)
                del denoised
            yield _finished(previous, start, outcome)
        handed = following


def _in_process(subject_: Subject, process: Boxes | None, todo: list[str],
                run: _Run) -> Iterator[dict]:
    if process is None:
        for entry_id, start, maps in _read_ahead(run.corpus, todo):
            yield _evaluate_read(subject_.instance, entry_id, start, maps, run)
        return
    yield from _pipelined(process, todo, run)


def _lost(entry_id: str, exc: BaseException) -> dict:
    """The record of an entry whose dask task was lost (its worker died, say)."""
    return {"entry": entry_id, "status": "failed", "kind": "crashed",
            "error_type": type(exc).__name__,
            "message": f"the worker evaluating it was lost ({type(exc).__name__}: {exc}); "
                       "often the method killed its process or ran out of memory",
            "traceback": "".join(traceback.format_exception(exc)), "seconds": None,
            "worker": None}


@functools.lru_cache(maxsize=4)
def _landed(shipped: bytes) -> Method:
    """A method shipped by :func:`_on_dask`, unpickled once per worker process."""
    import cloudpickle

    return cloudpickle.loads(shipped)


def _landing_fault(shipped: bytes) -> str | None:
    """Why a shipped method cannot be unpickled on this worker (None: it can)."""
    try:
        _landed(shipped)
    except Exception as exc:  # reported to the driver, which refuses the run
        return f"{type(exc).__name__}: {exc}"
    return None


def _evaluate_shipped(shipped: bytes | str, run: _Run, entry_id: str, params: dict) -> dict:
    """:func:`evaluate_entry` of a shipped method, or of a spec its box builds (a parallel
    run's task)."""
    method = shipped if isinstance(shipped, str) else _landed(shipped)
    return evaluate_entry(method, run, entry_id, params)


def _ship(method: Method, client) -> bytes:
    """The method pickled for the workers, checked to unpickle on every one of them.

    cloudpickle sends a method loaded from a file (``path/file.py:Class``, registered to
    travel by value) with its code; dask's own pickling would send it by reference, which a
    worker cannot import. Each worker unpickles it once before any entry is given out.

    Raises:
        MethodError: a worker cannot unpickle the method (a package its code imports is not
            installed there, say); the message names the worker and the error.
    """
    import cloudpickle

    shipped = cloudpickle.dumps(method)
    faults = {address: fault for address, fault in
              client.run(_landing_fault, shipped, on_error="return").items() if fault}
    if faults:
        address, fault = next(iter(faults.items()))
        raise MethodError(method.name, f"cannot be loaded on dask worker {address} "
                          f"({fault}){' and others' if len(faults) > 1 else ''}; install "
                          "what it imports on the workers, or run it with --workers 1")
    return shipped


def _on_dask(subject_: Subject, todo: list[str], run: _Run) -> Iterator[dict]:
    """Evaluate ``todo`` on a dask cluster, one entry in flight per worker thread (so that a
    worker's death is charged to the entry it was running, and the method travels with each
    task rather than living on workers that may die)."""
    from dask.distributed import as_completed

    waiting = iter(todo)
    with dask_client(min(run.settings.workers, len(todo)), run.settings.scheduler,
                     allowed_failures=0) as client:
        if run.isolation == "process":
            from cref_bench.run.workers import MethodProcesses

            client.register_plugin(MethodProcesses(run.limits, run.logs, run.box),
                                   name=run.token)
        method = subject_.source if run.isolation == "process" else subject_.instance
        shipped = method if isinstance(method, str) else _ship(method, client)
        slots = _threads(client) or 1
        flight: dict = {}

        def submit(entry_id: str):
            future = client.submit(_evaluate_shipped, shipped, run, entry_id, subject_.params,
                                   pure=False, key=f"cref-bench-{entry_id}-{run.token}")
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
                    _await_threads(client, slots)
                future.release()
                following = next(waiting, None)
                if following is not None:
                    done.add(submit(following))
        finally:
            if run.isolation == "process":
                client.unregister_worker_plugin(run.token)


def _threads(client) -> int:
    return sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())


def _await_threads(client, threads: int) -> None:
    """After a worker died, wait (up to :data:`RESTART_SECONDS`) for the cluster to have
    ``threads`` worker threads again, so that the next entry is not queued behind a worker
    that is about to die too (its death would be charged to that entry as well)."""
    deadline = time.monotonic() + RESTART_SECONDS
    while _threads(client) < threads and time.monotonic() < deadline:
        time.sleep(0.1)


def _params(subject_: Subject) -> dict:
    """The parameters of the resume key: those given, overridden by the method's own."""
    merged = {**subject_.params, **subject_.facts["params"]}
    return json.loads(json.dumps(merged, sort_keys=True, default=str))


def _method_key(subject_: Subject, corpus: Corpus) -> dict:
    """The run's resume key (:data:`cref_bench.results.folder.KEY_FIELDS`)."""
    facts = subject_.facts
    return {"method": facts["name"], "method_version": facts["version"],
            "params": _params(subject_), "code_digest": subject_.code_digest,
            "corpus_hash": corpus.content_hash or corpus.current_hash(), **scoring_facts()}


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


def _record_all(stream: Iterable[dict], folder: ResultsFolder, header: dict,
                split_of: dict[str, str], total: int, desc: str, progress: bool) -> list[dict]:
    """Write each outcome as its entry record as soon as it arrives; returns the records."""
    fresh, failed = [], 0
    with tqdm(total=total, unit="entry", desc=desc, disable=not progress) as bar:
        for outcome in stream:
            record = {**header, "split": split_of[outcome["entry"]], **outcome,
                      "finished_at": provenance.now_utc()}
            folder.write_record(record)
            if record["status"] == "ok":
                folder.log_path(record["entry"]).unlink(missing_ok=True)
            else:
                folder.write_failure_log(record)
            fresh.append(record)
            failed += record["status"] != "ok"
            bar.set_postfix(failed=failed, refresh=False)
            bar.update()
    return fresh


def _box_settings(settings: RunSettings, corpus: Corpus, folder: ResultsFolder,
                  named: dict) -> BoxSettings:
    """What the method's box may see: read-only, the files that ``named`` names (see
    :func:`_files_named`); never the store or the results folder (``folder``)."""
    forbidden = [folder.path.resolve()]
    if "://" not in corpus.location:
        forbidden.append(Path(corpus.location).resolve())
    paths = {Path(p).resolve() for text in _strings(named) for p in _path_words(text)}
    return BoxSettings(forbidden=tuple(forbidden), read_only=tuple(sorted(paths)),
                       network=settings.network)


def _files_named(source: str | Method, params: dict, own: dict) -> dict:
    """What names the files a method's box may see: its spec (a recipe file, say), the
    parameters the user gave, and ``own``: the method's own ``params()`` where this process
    built it (a box's report is not trusted for that)."""
    return {"spec": source if isinstance(source, str) else "", "given": params, "own": own}


def _named_by(subject_: Subject) -> dict:
    """:func:`_files_named` of a resolved method."""
    own = subject_.facts["params"] if subject_.instance is not None else {}
    return _files_named(subject_.source, subject_.params, own)


PATH_WORD = re.compile(r"(?:(?<=^)|(?<=[\s\"'=:,(\[]))(/[^\s\"'{}(),;]+|[^\s\"'{}(),;/=:]+"
                       r"(?:/[^\s\"'{}(),;]+)+|[\w.-]+\.\w+)")
"""A word of a parameter's text that may name a file: an absolute or relative path, or a
file name with an extension."""


def _path_words(text: str) -> list[str]:
    """The words of ``text`` that name files or folders that exist (not the working folder
    itself)."""
    found = []
    for word in PATH_WORD.findall(text):
        if word not in (".", "..") and os.path.exists(word):
            found.append(word)
    return found


def _strings(value) -> Iterator[str]:
    """Every string in a JSON-like value (keys too)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _limits(settings: RunSettings) -> Limits:
    memory = settings.memory_limit
    if memory == "auto":
        import psutil

        memory = int(DEFAULT_MEMORY_FRACTION * psutil.virtual_memory().total / settings.workers)
    return Limits(timeout=settings.timeout, memory=memory)


def run_method(method: str | Method, corpus: str | os.PathLike | Corpus,
               settings: RunSettings | None = None, *, command_line: list[str] | None = None,
               **changes) -> RunResult:
    """Evaluate a method on every entry of a corpus split and write the results folder.

    Args:
        method: a registered method name, ``package.module:Attribute`` or
            ``path/file.py:Attribute`` (built with ``settings.params``: in its box, or here
            for cref-bench's own methods and with ``trust_method``), or a :class:`Method`
            instance (sent to its box unless it may run here).
        corpus: the corpus location (path or fsspec URL) or an opened :class:`Corpus`
            (open it with :func:`~cref_bench.corpus.reader.open_corpus` to give fsspec
            options).
        settings: how to run (default :class:`RunSettings`'s defaults: the test split, in
            this process, results in ``results/<method name>``).
        command_line: recorded in the provenance (default ``sys.argv``).
        **changes: fields of :class:`RunSettings` to change (``split="all"``,
            ``workers=2``, ...), a shorthand for ``RunSettings.of(settings, **changes)``.

    Returns:
        A :class:`RunResult`.

    Raises:
        MethodError: the method cannot be located or built (in its box or here), or
            ``params`` given with a method instance.
        InputError: a bad setting, ``in-process`` for a method neither cref-bench's own nor
            trusted, or nothing to evaluate (an empty split).
        SandboxError: the method's box would see the store or the results folder.
        CorpusError: the corpus cannot be opened.
        OSError: the results folder cannot be written.
    """
    started_at, start = provenance.now_utc(), time.perf_counter()
    settings = RunSettings.of(settings, **changes)
    if isinstance(method, str):
        code_roots(method)  # an unknown method is named before the corpus is opened
    if not isinstance(corpus, Corpus):
        corpus = open_corpus(corpus)
    ids = corpus.ids(settings.split)[:settings.limit]
    if not ids:
        raise InputError(corpus.location, f"the {settings.split!r} split holds no entries; "
                         "nothing to evaluate (choose another --split)")
    limits = _limits(settings)
    opened: list[Boxes] = []
    try:
        subject_ = _subject(method, settings, corpus, limits, opened)
        name = subject_.facts["name"]
        key = _method_key(subject_, corpus)
        folder, messages = _folder_of(name, key, settings)
        isolation = placement(subject_, settings.isolation)
        process = _method_process(subject_, settings, corpus, folder, limits, opened,
                                  isolation)
        run = _Run(settings=settings, corpus=corpus, isolation=isolation, limits=limits,
                   box=_box_settings(settings, corpus, folder,
                                     _named_by(subject_)),
                   logs=(folder.path / "logs").resolve(),
                   token=hashlib.sha256(f"{time.time_ns()}/{os.getpid()}".encode()
                                        ).hexdigest()[:10],
                   maps_dir=folder.create(settings.save_maps),
                   folder=folder if settings.keep_outputs else None,
                   single_map=bool(subject_.facts.get("single_map")),
                   not_held_out=single_map.not_held_out(name))
        records, fresh, reasons = _evaluate(subject_, process, run, ids, folder, key)
    finally:
        for each in opened:
            each.close()

    tables = results.assemble_tables([records[i] for i in ids])
    counts = {"entries": len(ids), "evaluated": len(fresh), "resumed": len(ids) - len(fresh),
              "failed": len(tables["failures"])}
    messages.append(_reuse_note(counts, reasons))
    box_kind = _sandbox(run, process)
    if run.single_map and run.isolation == "process" and (box_kind == "none" or
                                                          settings.network):
        messages.append(_shared_boxes_note(box_kind))
    summary = results.summarise(tables["scalars"], counts["failed"], notes=tables["notes"])
    title = (f"{name} {subject_.facts['version']} on {corpus.location} [{settings.split}]: "
             f"{len(ids) - counts['failed']} of {len(ids)} entries ok")
    record_of_run = provenance.RunProvenance(
        dataset=provenance.DatasetFacts(
            location=corpus.location, format_version=corpus.format_version,
            content_hash=corpus.content_hash, version=corpus.version, split=settings.split,
            entries=len(ids), limit=settings.limit),
        method=_method_facts(subject_, key),
        settings=settings.as_record(),
        execution=provenance.ExecutionFacts(
            isolation=run.isolation, timeout_s=limits.timeout,
            memory_limit_bytes=limits.memory, sandbox=box_kind,
            trusted=subject_.trusted and run.isolation == "in-process",
            network=settings.network and run.isolation == "process"),
        scoring=scoring_facts(),
        counts=counts,
        failures_by_kind=tables["failures"]["kind"].value_counts().to_dict(),
        started_at=started_at, finished_at=provenance.now_utc(),
        wall_seconds=time.perf_counter() - start, peak_memory=_peak_memory(fresh),
        command_line=list(sys.argv if command_line is None else command_line),
    ).to_json()
    folder.write_tables(tables)
    folder.write_provenance(record_of_run)
    return RunResult(out=folder.path, summary=summary,
                     summary_text=results.format_summary(summary, title),
                     provenance=record_of_run, counts=counts, messages=messages,
                     **tables)


def _subject(method: str | Method, settings: RunSettings, corpus: Corpus, limits: Limits,
             opened: list) -> Subject:
    """The run's method; a method known only by spec is built in a box (kept in ``opened``
    for the run) that reports its facts."""

    def describe() -> dict:
        out = ResultsFolder(settings.out if settings.out is not None else Path("results"))
        named = _files_named(method, settings.params, {})
        process = MethodProcess(method, limits, params=settings.params,
                                settings=_box_settings(settings, corpus, out, named))
        opened.append(process)
        return process.facts

    return subject(method, settings.params, settings.trust_method, describe)


def _method_process(subject_: Subject, settings: RunSettings, corpus: Corpus,
                    folder: ResultsFolder, limits: Limits, opened: list,
                    isolation: str) -> Boxes | None:
    """The method's box of a single-process run (the one that described the method, its log
    moved into the results folder), or None where the method runs here or on dask."""
    parallel = settings.scheduler is not None or settings.workers > 1
    if isolation != "process" or parallel:
        for process in opened:  # the box that described the method is not needed
            process.close()
        return None
    log = (folder.path / "logs").resolve() / f"method-{os.getpid()}.log"
    boxes = method_boxes(subject_.source, limits, log, params=_spec_params(subject_),
                         settings=_box_settings(settings, corpus, folder, _named_by(subject_)),
                         held_out=bool(subject_.facts.get("single_map")),
                         first=opened.pop() if opened else None)
    opened.append(boxes)
    return boxes


def _spec_params(subject_: Subject) -> dict | None:
    """The parameters a box builds the method with: those of a spec (an instance has its own)."""
    return subject_.params if isinstance(subject_.source, str) else None


def _setting_text(method: str, params: dict) -> str:
    return f"{method} {results.params_text(params)}"


def _folder_of(name: str, key: dict, settings: RunSettings
               ) -> tuple[ResultsFolder, list[str]]:
    """The run's results folder, and what to say of it: ``settings.out``, or by default
    ``results/<method>``. Where that folder holds the results of another setting -- another
    method, or other values of the parameters either run was given (``--param``; those
    both runs record) -- the
    default one gives way to ``results/<method>-<parameters>`` and a folder given is refused,
    unless ``settings.replace``. A change of the method's own parameters alone (a recipe's
    text, say) is not another setting: its entries are recomputed in place.

    Raises:
        InputError: the folder holds another setting's results (and may not replace them).
    """
    default = Path("results") / name
    folder = ResultsFolder(settings.out if settings.out is not None else default)
    held = folder.held_setting()
    if held is None:
        return folder, []
    chosen = sorted(k for k in {*(held["given"] or {}), *settings.params}
                    if k in held["params"] and k in key["params"])
    ours = {k: key["params"][k] for k in chosen}
    theirs = {k: held["params"][k] for k in chosen}
    if (held["method"], theirs) == (key["method"], ours):
        return folder, []
    other = _setting_text(held["method"], theirs)
    if settings.replace:
        return folder, [f"{folder.path}: replacing the results of {other}"]
    if settings.out is not None:
        raise InputError(folder.path, f"holds the results of {other}, not of "
                         f"{_setting_text(key['method'], ours)}; give another --out, or "
                         "--replace to replace them")
    beside = ResultsFolder(results.setting_folder(default, ours))
    held = beside.held_setting()
    if held is not None and (held["method"], {k: held["params"].get(k) for k in chosen}) \
            != (key["method"], ours):
        taken = _setting_text(held["method"], held["params"])
        raise InputError(beside.path, f"holds the results of {taken}; give --out")
    return beside, [f"{default} holds the results of {other}: this setting's go to "
                    f"{beside.path}"]


_CHANGES = (("method", "another method"), ("params", "other parameters"),
            ("method_version", "another version of the method"),
            ("code_digest", "the method's code changed"), ("corpus_hash", "the corpus changed"),
            ("cref_bench_version", "another cref-bench version"),
            ("scoring_digest", "the scoring code changed"))


def _recompute_reason(record: dict | None, key: dict) -> str:
    """Why an entry is evaluated although the folder may hold a record of it."""
    if record is None:
        return "new"
    for name, words in _CHANGES:
        if record.get(name) != key[name]:
            return words
    return "failed before, tried again (--retry-failed)"


def _reuse_note(counts: dict, reasons: dict[str, int]) -> str:
    """``12 entries: 9 reused from an earlier run, 3 computed (2 new, 1 ...)``."""
    text = (f"{counts['entries']} entries: {counts['resumed']} reused from an earlier run, "
            f"{counts['evaluated']} computed")
    if reasons:
        text += " (" + ", ".join(f"{n} {why}" for why, n in reasons.items()) + ")"
    return text


def _evaluate(subject_: Subject, process: Boxes | None, run: _Run, ids: list[str],
              folder: ResultsFolder, key: dict
              ) -> tuple[dict[str, dict], list[dict], dict[str, int]]:
    """The record of every entry of ``ids``: the stored one where it can be reused (see
    :func:`cref_bench.results.folder.is_reusable`), else evaluated now and written at once
    (a failure's traceback with the frames of a method file named,
    :func:`~cref_bench.methods.registry.name_file_frames`). Returns every record by entry
    id, the records made now, and how many entries were computed for each reason."""
    settings = run.settings
    records = {i: folder.record(i) for i in ids}
    todo = [i for i in ids if not results.is_reusable(records[i], key,
                                                      retry_failed=settings.retry_failed)]
    reasons: dict[str, int] = {}
    for entry_id in todo:
        why = _recompute_reason(records[entry_id], key)
        reasons[why] = reasons.get(why, 0) + 1
    if settings.scheduler is None and (settings.workers == 1 or len(todo) <= 1):
        if run.isolation == "process" and process is None:  # a parallel run with one to do
            process = method_boxes(subject_.source, run.limits,
                                   run.logs / f"method-{os.getpid()}.log",
                                   params=_spec_params(subject_), settings=run.box,
                                   held_out=run.single_map)
        with process if process is not None else contextlib.nullcontext():
            stream = _in_process(subject_, process, todo, run)
            fresh = _record_stream(stream, folder, key, ids, todo, run, subject_)
    else:
        fresh = _record_stream(_on_dask(subject_, todo, run), folder, key, ids, todo, run,
                               subject_)
    records.update((rec["entry"], rec) for rec in fresh)
    return records, fresh, reasons


def _record_stream(stream, folder: ResultsFolder, key: dict, ids: list[str], todo: list[str],
                   run: _Run, subject_: Subject) -> list[dict]:
    """Write the records of ``stream`` (the entries of ``todo``) as they come; returns them."""
    spec = subject_.source if isinstance(subject_.source, str) else None
    stream = ({**o, "traceback": name_file_frames(o["traceback"], spec)}
              if o.get("traceback") else o for o in stream)
    header = {"schema": results.RECORD_SCHEMA, **key}
    name = subject_.facts["name"]
    desc = name + (f" ({len(ids) - len(todo)} resumed)" if len(todo) < len(ids) else "")
    return _record_all(stream, folder, header, {i: run.corpus.entry(i).split for i in todo},
                       len(todo), desc, run.settings.progress)


def _sandbox(run: _Run, process: Boxes | None) -> str:
    """``bwrap`` where the method ran in boxes of bubblewrap, else ``none``."""
    if run.isolation != "process":
        return "none"
    if process is not None and process.sandbox is not None:
        return process.sandbox
    return "bwrap" if sandbox.support().bwrap else "none"


def _shared_boxes_note(box_kind: str) -> str:
    """The warning of a run whose held-out calls were made in boxes that could reach one
    another (no sandbox, or the network allowed)."""
    shared = "the file system (no sandbox here)" if box_kind == "none" else "the network"
    return (f"warning: the boxes of the held-out calls shared {shared}, so a method could have "
            "passed a map from one call to another; its held-out scores rest on its honesty")


def _method_facts(subject_: Subject, key: dict) -> provenance.MethodFacts:
    """The provenance's description of the method."""
    facts = subject_.facts
    return provenance.MethodFacts(
        name=facts["name"], version=facts["version"], params=key["params"],
        code_digest=key["code_digest"], needs_gpu=facts["needs_gpu"],
        spec=subject_.source if isinstance(subject_.source, str) else None,
        cls=facts["class"])
