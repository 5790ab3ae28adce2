"""Building the EMDB half-map corpus: the per-entry pipeline and the dask build driver.

:func:`process_entry` takes one entry from accession to store: download and parse its v3.0
header (``emd-N.xml``, else ``emd-N-v30.xml``), refuse a box over ``max_box`` (of the files
it downloads) before downloading them, download the half-map pair and the primary mask
(:func:`choose_mask`: ``msk_1``, else the lowest-numbered; recorded as ``mask_file``) and,
optionally, the fitted models into ``<download_dir>/EMD-N`` at once, each file read and
hashed in its own thread as soon as it is there (a local ``file://`` mirror is read in
place unless downloads are kept), validate them (:mod:`dataset_builder.emdb.validate`),
and write the entry with :func:`dataset_builder.store.write_entry` (which scans and writes
the maps in threads too) -- or record why not with
:func:`dataset_builder.store.record_rejection`. Its downloads are deleted afterwards unless
they are to be kept.

:func:`build` runs one such task per entry on a dask cluster (a local one by default, or
an existing one given by its scheduler address), each keyed by the entry id and retried by
dask if it raises, shows progress, and finalises the store. :func:`dry_run` says what a
build would do without downloading anything.

Resumption: a build killed at any moment and run again does only what is unfinished.
An entry is skipped when it is complete in the store (the writer marks completion last, so
a half-written entry is not complete and is rewritten) or when the manifest holds a
permanent rejection of it (status ``rejected``); entries that failed for a transient
reason (status ``failed``: a network failure, an unexpected error) are tried again, and so
is an entry rejected only for its box when ``max_box`` now allows it. Downloads kept with
``keep_downloads`` are reused, and partial ones resumed.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path

from tqdm import tqdm

from cref_bench.corpus.layout import list_complete_entries, read_manifest_rows
from cref_bench.errors import CorpusError, MapError
from cref_bench.maps.volume import Volume
from cref_bench.output_paths import cache_folder
from cref_bench.run.cluster import dask_client
from dataset_builder.emdb.download import (
    DEFAULT_EMDB_MIRRORS,
    DEFAULT_MODEL_SOURCES,
    Downloader,
    DownloadError,
    NotFoundError,
    RetryPolicy,
    fetch_file,
    fetch_header,
    fetch_model,
    local_path,
    mirror_urls,
)
from dataset_builder.emdb.header import (
    EntryHeader,
    HeaderError,
    MapInfo,
    choose_half_maps,
    choose_mask,
    read_header,
)
from dataset_builder.emdb.layout import header_relpaths, normalize_id
from dataset_builder.emdb.listing import ListedEntry
from dataset_builder.emdb.validate import (
    EntryMaps,
    Rejection,
    check_box,
    classify_map_error,
    expected_shape,
    load_maps,
    read_entry_map,
)
from dataset_builder.store import (
    Store,
    finalize,
    is_complete,
    open_store,
    record_rejection,
    write_entry,
)

logger = logging.getLogger(__name__)

__all__ = ["BuildOptions", "BuildReport", "DryRunReport", "EntryOutcome", "build", "choose_mask",
           "dry_run", "plan", "process_entry"]

SOURCE = "emdb"
"""The ``source`` recorded for every entry this builder writes or rejects."""

STORE_DESCRIPTION = "EMDB half-map pairs with masks (cref-bench build)"
"""The store description given when the build creates the store."""

TASK_PREFIX = "cref-bench-build"
"""Dask keys are ``<TASK_PREFIX>-<entry id>``."""


@dataclass(frozen=True)
class BuildOptions:
    """How each entry is fetched and checked.

    Attributes:
        mirrors: archive mirrors (names of :data:`~dataset_builder.emdb.download.EMDB_MIRRORS`
            or base URLs, ``file://`` included), tried in order for every file.
        model_sources: sources of fitted models (see
            :func:`~dataset_builder.emdb.download.model_urls`).
        download_dir: where downloads go (``<download_dir>/EMD-N/...``); ``None``: the
            ``downloads`` folder of the per-user cache of the worker's user
            (:func:`cref_bench.output_paths.cache_folder`).
        keep_downloads: keep the downloaded files (else each entry's are deleted once it is done).
        max_box: the largest box edge accepted, voxels; ``None`` for no limit.
        with_models: also fetch and store the fitted models (mmCIF).
        retry: the download retry policy.
        timeout: seconds a connection may stay silent.
        released_before: the selection's release cut-off, or ``None``: an entry listed
            without a release date is held to it with its header's date (status
            ``excluded`` when released on or after it; nothing is recorded).
    """

    mirrors: tuple[str, ...] = DEFAULT_EMDB_MIRRORS
    model_sources: tuple[str, ...] = DEFAULT_MODEL_SOURCES
    download_dir: str | None = None
    keep_downloads: bool = False
    max_box: int | None = None
    with_models: bool = False
    retry: RetryPolicy = RetryPolicy()
    timeout: float = 60.0
    released_before: date | None = None

    def cache_root(self) -> Path:
        """The download folder (see ``download_dir``)."""
        if self.download_dir is not None:
            return Path(self.download_dir)
        return cache_folder("downloads")


@dataclass(frozen=True)
class EntryOutcome:
    """What became of one entry.

    Attributes:
        entry_id: the accession.
        status: ``"ok"`` (written), ``"rejected"`` (permanently turned down), ``"failed"``
            (a transient failure: tried again next run), ``"skipped"`` (done by an earlier
            run) or ``"excluded"`` (outside the selection by its header's release date; not
            recorded in the store).
        code: the reason code (:data:`~dataset_builder.emdb.validate.REASONS`), or ``None``.
        detail: the reason in words, or ``None``.
        downloaded_bytes: bytes received for this entry.
        seconds: wall time spent on it.
        phases: wall seconds per phase reached, one after the other: ``fetch`` (the header,
            then the files and models, until the last is here), ``read`` (reading, hashing
            and validating the maps: each file is read and hashed as soon as it is here, so
            this is the part not hidden behind the downloads) and ``write`` (the checksums,
            statistics and the store write).
    """

    entry_id: str
    status: str
    code: str | None = None
    detail: str | None = None
    downloaded_bytes: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)


class _ByteCounter:
    """A download progress callback that adds up the bytes received (from several threads)."""

    def __init__(self):
        self.total = 0
        self._lock = threading.Lock()

    def __call__(self, count: int, _total: int | None) -> None:
        with self._lock:
            self.total += count


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _listing_metadata(listed: ListedEntry) -> dict:
    return {"source": SOURCE, "resolution": listed.resolution, "release_date": listed.release_date,
            "method": listed.method, "fitted_models": list(listed.fitted_pdbs)}


def _header_metadata(header: EntryHeader, listed: ListedEntry) -> dict:
    mask = choose_mask(header)
    return {"source": SOURCE, "resolution": header.resolution,
            "release_date": header.release_date or listed.release_date,
            "method": header.method, "fitted_models": list(header.fitted_pdbs),
            "contour_level": header.contour_level,
            "half_map_files": [m.file for m in choose_half_maps(header)],
            "mask_file": mask.file if mask is not None else None}


class _Excluded(Exception):
    """The entry is outside the selection (its header's release date is past the cut-off)."""


def _fetch(action: Callable):
    """Run a download, turning its failures into rejections (404: permanent; others: transient)."""
    try:
        return action()
    except NotFoundError as error:
        raise Rejection("missing_file", str(error)) from error
    except DownloadError as error:
        raise Rejection("download_failed", str(error)) from error


def _read_models(header: EntryHeader, cache: Path, options: BuildOptions, downloader: Downloader,
                 counter: _ByteCounter) -> tuple[dict[str, str], list[str]]:
    """The fitted models as ``{pdb id: mmCIF text}``, and the ids no source had or that were
    unreadable."""
    models, unavailable = {}, []
    for pdb_id in header.fitted_pdbs:
        try:
            path = fetch_model(pdb_id, cache, sources=options.model_sources, downloader=downloader,
                               progress=counter)
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                models[pdb_id] = handle.read()
        except NotFoundError:
            unavailable.append(pdb_id)
        except DownloadError as error:
            raise Rejection("download_failed", str(error)) from error
        except (OSError, EOFError, UnicodeDecodeError, ValueError) as error:
            logger.warning("%s: model %s unreadable: %s", header.emdb_id, pdb_id, error)
            unavailable.append(pdb_id)
    return models, unavailable


@contextmanager
def _timed(phases: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - start


@dataclass
class _Obtained:
    """One of an entry's map files, fetched, then read and hashed, in a thread of its own."""

    path: Path | None = None
    fetched_at: float = 0.0
    fetch_error: Rejection | None = None
    volume: Volume | None = None
    read_error: Rejection | None = None
    sha256: str | None = None

    def read(self, _path: Path) -> Volume:
        """The map read, or the rejection reading it raised (a ``read`` for
        :func:`~dataset_builder.emdb.validate.load_maps`)."""
        if self.read_error is not None:
            raise self.read_error
        return self.volume


def _obtain(fetch: Callable[[], Path]) -> _Obtained:
    """Fetch a map file, read it and hash it; the faults met are kept, not raised."""
    got = _Obtained()
    try:
        got.path = _fetch(fetch)
    except Rejection as rejection:
        got.fetch_error = rejection
        return got
    finally:
        got.fetched_at = time.perf_counter()
    try:
        got.volume = read_entry_map(got.path)
    except Rejection as rejection:
        got.read_error = rejection
        return got
    got.sha256 = _sha256(got.path)
    return got


def _fetch_and_read(header: EntryHeader, cache: Path, options: BuildOptions,
                    downloader: Downloader, counter: _ByteCounter, phases: dict[str, float]
                    ) -> tuple[EntryMaps, dict[str, str], tuple[dict[str, str], list[str]]]:
    """The entry's maps, read and validated, the sha256 of their files, and the models.

    The half-maps and the mask are fetched at once, each in a thread that reads and hashes
    its file as soon as it is here (gzip, numpy and hashlib release the GIL); the models
    too. The faults are then raised in the order of a sequential build: the downloads' (in
    file order), then the maps' checks (:func:`~dataset_builder.emdb.validate.load_maps`),
    then the models'.
    """
    halves, mask = choose_half_maps(header), choose_mask(header)
    files = (*halves, mask)
    start = time.perf_counter()
    models_done: list[float] = []

    def fetch_models() -> tuple[dict[str, str], list[str]]:
        try:
            return _read_models(header, cache, options, downloader, counter)
        finally:
            models_done.append(time.perf_counter())

    with ThreadPoolExecutor(max_workers=len(files) + 1) as pool:
        jobs = [pool.submit(_obtain, partial(
            fetch_file, info.relpath, cache, mirrors=options.mirrors, downloader=downloader,
            progress=counter, copy_local=options.keep_downloads)) for info in files]
        models_job = pool.submit(fetch_models) if options.with_models else None
    obtained = [job.result() for job in jobs]
    fetched = max(start, *models_done, *(got.fetched_at for got in obtained))
    phases["fetch"] = phases.get("fetch", 0.0) + fetched - start
    for got in obtained:
        if got.fetch_error is not None:
            raise got.fetch_error
    by_path = {got.path: got for got in obtained}
    maps = load_maps(header, [got.path for got in obtained[:2]], obtained[2].path,
                     options.max_box, read=lambda path: by_path[path].read(path),
                     half_map_infos=halves, mask_info=mask)
    models = models_job.result() if models_job is not None else ({}, [])
    phases["read"] = time.perf_counter() - fetched
    return maps, {got.path.name: got.sha256 for got in obtained}, models


def _ingest(listed: ListedEntry, store: Store, options: BuildOptions, cache: Path,
            counter: _ByteCounter, metadata: dict, phases: dict[str, float]) -> None:
    """Fetch, validate and write one entry; raises :class:`Rejection` when it is turned down.
    ``metadata`` is updated in place as more becomes known (for the rejection record), and
    ``phases`` with the seconds spent per phase."""
    downloader = Downloader(options.retry, timeout=options.timeout)
    try:
        with _timed(phases, "fetch"):
            header = _fetch(lambda: fetch_header(
                listed.emdb_id, cache, mirrors=options.mirrors, downloader=downloader,
                copy_local=options.keep_downloads, require_half_maps=False, require_mask=False))
    except HeaderError as error:
        raise Rejection("bad_header", str(error)) from error
    metadata.update(_header_metadata(header, listed))
    cutoff = options.released_before
    if (listed.release_date is None and cutoff is not None and header.release_date is not None
            and header.release_date >= cutoff):
        raise _Excluded(f"{header.emdb_id}: released {header.release_date} by its header, not "
                        f"before {cutoff}")
    if len(header.half_maps) < 2:
        raise Rejection("no_half_maps", f"{header.emdb_id}: the header lists "
                                        f"{len(header.half_maps)} half-map(s)")
    if not header.masks:
        raise Rejection("no_mask", f"{header.emdb_id}: the header lists no mask")
    first = choose_half_maps(header)[0]
    described = first if first.dimensions is not None else header.map
    metadata.update(box=list(expected_shape(described)),
                    voxel_size=list(reversed(described.pixel_spacing or header.map.pixel_spacing)))
    check_box(header, options.max_box)
    maps, source_sha256, (models, unavailable) = _fetch_and_read(header, cache, options,
                                                                 downloader, counter, phases)
    metadata.update(voxel_size=list(maps.half1.voxel_size), box=list(maps.half1.shape))
    if options.with_models:
        metadata["models_unavailable"] = unavailable
    written = {key: value for key, value in metadata.items() if key not in ("voxel_size", "box")}
    written["source_sha256"] = source_sha256
    with _timed(phases, "write"):
        try:
            write_entry(store, listed.emdb_id, half1=maps.half1, half2=maps.half2, mask=maps.mask,
                        models=models, metadata=written)
        except MapError as error:
            raise Rejection(classify_map_error(error), str(error)) from error


def process_entry(entry: ListedEntry | str, store: Store,
                  options: BuildOptions = BuildOptions()) -> EntryOutcome:
    """Take one entry from the archive into the store, or record why not (one dask task).

    Idempotent: an entry already complete in the store is skipped; one written halfway by an
    interrupted run is rewritten from scratch.

    Args:
        entry: the listed entry (its listing metadata is recorded if the header is unusable),
            or an accession.
        store: the store, opened for writing (:func:`dataset_builder.store.open_store`).
        options: see :class:`BuildOptions`.

    Returns:
        The :class:`EntryOutcome`; its verdict is also in the store's manifest.

    Raises:
        Exception: an unexpected error (a bug, a full disk, the store unreachable), for dask to
            retry; :func:`build` records it as ``failed`` / ``error`` when retries run out.
    """
    start = time.perf_counter()
    listed = entry if isinstance(entry, ListedEntry) else ListedEntry(normalize_id(entry))
    if is_complete(store, listed.emdb_id):
        return EntryOutcome(listed.emdb_id, "skipped", seconds=time.perf_counter() - start)
    cache = options.cache_root()
    counter = _ByteCounter()
    metadata = _listing_metadata(listed)
    phases: dict[str, float] = {}
    try:
        _ingest(listed, store, options, cache, counter, metadata, phases)
    except _Excluded as excluded:
        logger.info("%s excluded: %s", listed.emdb_id, excluded)
        return EntryOutcome(listed.emdb_id, "excluded", None, str(excluded), counter.total,
                            time.perf_counter() - start, phases)
    except Rejection as rejection:
        status = "rejected" if rejection.permanent else "failed"
        record_rejection(store, listed.emdb_id, str(rejection),
                         {**metadata, "reason_code": rejection.code}, status=status)
        logger.info("%s %s: %s", listed.emdb_id, status, rejection)
        return EntryOutcome(listed.emdb_id, status, rejection.code, rejection.detail, counter.total,
                            time.perf_counter() - start, phases)
    finally:
        if not options.keep_downloads:
            shutil.rmtree(cache / listed.emdb_id, ignore_errors=True)
    return EntryOutcome(listed.emdb_id, "ok", downloaded_bytes=counter.total,
                        seconds=time.perf_counter() - start, phases=phases)


# ----------------------------------------------------------------------------- the driver

@dataclass
class BuildReport:
    """The result of :func:`build`.

    Attributes:
        listed: entries asked for.
        outcomes: one per entry considered by this run (``skipped`` for those done earlier).
        content_hash: the store's content hash after finalisation.
        seconds: wall time of the run.
    """

    listed: int
    outcomes: list[EntryOutcome] = field(default_factory=list)
    content_hash: str | None = None
    seconds: float = 0.0

    def counts(self) -> Counter:
        """Entries per status (``ok``, ``rejected``, ``failed``, ``skipped``, ``excluded``)."""
        return Counter(o.status for o in self.outcomes)

    def reasons(self) -> Counter:
        """Rejected and failed entries per reason code."""
        return Counter(o.code for o in self.outcomes if o.code is not None)

    @property
    def downloaded_bytes(self) -> int:
        """Bytes downloaded by this run."""
        return sum(o.downloaded_bytes for o in self.outcomes)

    def format(self) -> str:
        """A few lines for the terminal: counts per status and reason, bytes, time, hash."""
        counts = self.counts()
        lines = [f"{self.listed} entries listed: " + ", ".join(
            f"{counts.get(s, 0)} {s}" for s in ("ok", "skipped", "rejected", "failed"))
            + (f", {counts['excluded']} excluded by the header's release date"
               if counts.get("excluded") else "")]
        lines += [f"  {code}: {n}" for code, n in sorted(self.reasons().items())]
        rate = self.downloaded_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0
        lines.append(f"{self.downloaded_bytes / 1e6:.1f} MB downloaded in {self.seconds:.1f} s "
                     f"({rate:.2f} MB/s)")
        phases = Counter()
        for outcome in self.outcomes:
            phases.update(outcome.phases)
        if phases:
            lines.append("worker time: " + ", ".join(
                f"{name} {phases[name]:.1f} s" for name in ("fetch", "read", "write")
                if name in phases))
        lines.append(f"content hash {self.content_hash}")
        return "\n".join(lines)


def plan(store: Store, entries: Sequence[ListedEntry], max_box: int | None = None
         ) -> tuple[list[ListedEntry], list[str]]:
    """Split the entries into those to process and those an earlier run finished.

    Args:
        store: the store.
        entries: the listed entries (duplicates dropped, first kept).
        max_box: the run's ``max_box``: entries rejected only for their box are tried again
            when their box fits it.

    Returns:
        ``(to_process, done_ids)``.
    """
    root = store.root("r")
    complete = set(list_complete_entries(root))
    rows = {row["id"]: row for row in read_manifest_rows(root)}
    todo, done, seen = [], [], set()
    for entry in entries:
        if entry.emdb_id in seen:
            continue
        seen.add(entry.emdb_id)
        row = rows.get(entry.emdb_id, {})
        box = row.get("box") or []
        box_now_fits = (row.get("reason_code") == "box_too_large" and box
                        and (max_box is None or max(box) <= max_box))
        if entry.emdb_id in complete or (row.get("status") == "rejected" and not box_now_fits):
            done.append(entry.emdb_id)
        else:
            todo.append(entry)
    return todo, done



def _record_lost(store: Store, entry: ListedEntry, error: BaseException) -> EntryOutcome:
    """Record a task that raised through all its retries (or whose worker died) as failed."""
    detail = f"{type(error).__name__}: {error}"
    record_rejection(store, entry.emdb_id, f"error: {detail}",
                     {**_listing_metadata(entry), "reason_code": "error"}, status="failed")
    logger.error("%s failed: %s", entry.emdb_id, detail)
    return EntryOutcome(entry.emdb_id, "failed", "error", detail)


def build(entries: Sequence[ListedEntry | str], out: str, *,
          options: BuildOptions = BuildOptions(), workers: int = 1, scheduler: str | None = None,
          processes: bool = True, task_retries: int = 2, storage_options: dict | None = None,
          progress: bool = True,
          on_outcome: Callable[[EntryOutcome], None] | None = None) -> BuildReport:
    """Build (or complete) the corpus store from EMDB entries, one dask task per entry.

    Args:
        entries: the entries (from :func:`~dataset_builder.emdb.listing.select_entries`) or
            accessions.
        out: the store: a local path or fsspec URL; created if absent, completed if present.
        options: see :class:`BuildOptions`.
        workers: local workers when no ``scheduler`` is given.
        scheduler: the address of an existing dask scheduler.
        processes: local workers are processes (else threads).
        task_retries: dask retries of a task that raises.
        storage_options: fsspec options for a URL store.
        progress: show a progress bar (done, failed, skipped, MB/s, ETA).
        on_outcome: called with each :class:`EntryOutcome` as it arrives, in this process.

    Returns:
        The :class:`BuildReport` (the store is finalised).

    Raises:
        CorpusError: ``out`` holds something that is not a corpus store of this version.
        Exception: whatever ``on_outcome`` raises (the cluster is shut down first; a rerun
            completes the build).
    """
    start = time.perf_counter()
    listed = [e if isinstance(e, ListedEntry) else ListedEntry(normalize_id(e)) for e in entries]
    if "://" not in str(out):
        out = str(Path(out).resolve())      # workers may run in another folder
    store = open_store(out, mode="a", source=STORE_DESCRIPTION, storage_options=storage_options)
    todo, done = plan(store, listed, options.max_box)
    report = BuildReport(listed=len({e.emdb_id for e in listed}),
                         outcomes=[EntryOutcome(i, "skipped") for i in done])
    logger.info("%d entries: %d done earlier, %d to process", report.listed, len(done), len(todo))
    bar = tqdm(total=report.listed, initial=len(done), unit="entry", desc="build",
               disable=not progress)
    with bar:
        if todo:
            tally = _Tally(report, bar, start, on_outcome)
            with dask_client(workers, scheduler, processes) as client:
                for outcome in _outcomes(client, todo, store, options, task_retries):
                    tally.add(outcome)
        report.content_hash = finalize(store)
    report.seconds = time.perf_counter() - start
    return report


def _outcomes(client, todo: Sequence[ListedEntry], store: Store, options: BuildOptions,
              task_retries: int) -> Iterator[EntryOutcome]:
    """Submit one task per entry and yield their outcomes as they complete."""
    from dask.distributed import as_completed

    futures = {client.submit(process_entry, entry, store, options,
                             key=f"{TASK_PREFIX}-{entry.emdb_id}", retries=task_retries,
                             pure=False): entry for entry in todo}
    for future in as_completed(futures):
        try:
            yield future.result()
        except Exception as error:  # retries exhausted, or the worker died
            yield _record_lost(store, futures[future], error)


@dataclass
class _Tally:
    """Gathers outcomes into the report as they arrive, and shows them on the progress bar."""

    report: BuildReport
    bar: tqdm
    start: float
    on_outcome: Callable[[EntryOutcome], None] | None

    def add(self, outcome: EntryOutcome) -> None:
        """Record one outcome (and pass it to ``on_outcome``)."""
        self.report.outcomes.append(outcome)
        counts = self.report.counts()
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix(ok=counts["ok"], failed=counts["failed"] + counts["rejected"],
                             skipped=counts["skipped"],
                             MBps=f"{self.report.downloaded_bytes / 1e6 / elapsed:.2f}")
        self.bar.update()
        if self.on_outcome is not None:
            self.on_outcome(outcome)


# ----------------------------------------------------------------------------- the dry run

@dataclass
class DryRunReport:
    """What a build would do, found without downloading anything (:func:`dry_run`).

    Attributes:
        listed: entries asked for.
        done: entries an earlier run finished (complete, or permanently rejected).
        todo: entries a build would process.
        headers_read: of those, entries whose header was found locally (a ``file://``
            mirror or the kept downloads) and read.
        refused: entries a build would turn down, per reason, judged from the local headers
            (``bad_header``, ``no_half_maps``, ``no_mask``, ``box_too_large``).
        fetch_bytes: bytes of the files the build would fetch for the other entries with a
            local header: the header's ``size_kbytes`` (uncompressed sizes, in kB of 1000
            bytes), so an upper estimate of the ``.gz`` downloads.
        unsized_files: of those files, how many the headers give no size for (masks listed
            without ``<mask_details>``).
    """

    listed: int
    done: int = 0
    todo: int = 0
    headers_read: int = 0
    refused: Counter = field(default_factory=Counter)
    fetch_bytes: int = 0
    unsized_files: int = 0

    def format(self) -> str:
        """A few lines for the terminal."""
        lines = [f"dry run: {self.listed} entries listed: {self.done} done earlier, {self.todo} "
                 "to process; nothing downloaded"]
        if self.headers_read:
            fetching = self.headers_read - sum(self.refused.values())
            lines.append(f"  headers found locally for {self.headers_read}: "
                         f"{sum(self.refused.values())} would be refused, {fetching} would "
                         f"fetch about {self.fetch_bytes / 1e6:.1f} MB (uncompressed sizes "
                         "stated by the headers"
                         + (f"; {self.unsized_files} files state none" if self.unsized_files
                            else "") + ")")
            lines += [f"    {code}: {n}" for code, n in sorted(self.refused.items())]
        unknown = self.todo - self.headers_read
        if unknown:
            lines.append(f"  {unknown} entries to process have no local header: their "
                         "verdicts and sizes are known only by downloading")
        return "\n".join(lines)


def _local_header(emdb_id: str, options: BuildOptions) -> Path | None:
    """The entry's header if it can be read without downloading: in the kept downloads or on
    a ``file://`` mirror (under either name)."""
    for relpath in header_relpaths(emdb_id):
        if options.keep_downloads and (options.cache_root() / relpath).is_file():
            return options.cache_root() / relpath
        for url in mirror_urls(relpath, options.mirrors):
            if url.startswith("file:") and local_path(url).is_file():
                return local_path(url)
    return None


def _predict(header_path: Path, emdb_id: str,
             options: BuildOptions) -> tuple[str | None, tuple[MapInfo, ...]]:
    """The verdict a build would reach from the header alone (a reason code or ``None``) and
    the files it would fetch."""
    try:
        header = read_header(header_path, emdb_id=emdb_id, require_half_maps=False,
                             require_mask=False)
    except HeaderError:
        return "bad_header", ()
    mask = choose_mask(header)
    if len(header.half_maps) < 2:
        return "no_half_maps", ()
    if mask is None:
        return "no_mask", ()
    files: tuple[MapInfo, ...] = (*choose_half_maps(header), mask)
    try:
        check_box(header, options.max_box, files)
    except Rejection as rejection:
        return rejection.code, ()
    return None, files


def dry_run(entries: Sequence[ListedEntry | str], out: str, *,
            options: BuildOptions = BuildOptions(),
            storage_options: dict | None = None) -> DryRunReport:
    """Say what :func:`build` would do, downloading nothing and writing nothing.

    The store at ``out``, if there is one, says which entries are done; headers that can be
    read without downloading (kept downloads, ``file://`` mirrors) say which of the others
    would be refused and how much the rest would fetch.

    Args:
        entries: the entries or accessions.
        out: the store a build would write (need not exist).
        options: the build's options (mirrors, download folder, ``max_box``).
        storage_options: fsspec options for a URL store.

    Returns:
        The :class:`DryRunReport`.

    Raises:
        CorpusError: ``out`` holds something that is not a corpus store of this version.
    """
    listed = [e if isinstance(e, ListedEntry) else ListedEntry(normalize_id(e)) for e in entries]
    distinct = list({e.emdb_id: e for e in listed}.values())
    try:
        store = open_store(out, mode="r+", storage_options=storage_options)
    except CorpusError:
        if _store_exists(out, storage_options):
            raise
        todo, done = distinct, []
    else:
        todo, done = plan(store, distinct, options.max_box)
    report = DryRunReport(listed=len(distinct), done=len(done), todo=len(todo))
    for entry in todo:
        path = _local_header(entry.emdb_id, options)
        if path is None:
            continue
        report.headers_read += 1
        code, files = _predict(path, entry.emdb_id, options)
        if code is not None:
            report.refused[code] += 1
        report.fetch_bytes += sum((info.size_kbytes or 0) * 1000 for info in files)
        report.unsized_files += sum(info.size_kbytes is None for info in files)
    return report


def _store_exists(out: str, storage_options: dict | None) -> bool:
    """Whether anything is at ``out`` (a store of another kind must not be taken for none)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(str(out), **(storage_options or {}))
    return fs.exists(path)
