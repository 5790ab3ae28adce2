"""Downloading entry files from the EMDB archive mirrors, and fitted models from the PDB.

A download streams into ``<name>.part`` beside the destination and is renamed to its
final name only once complete, so a file at the final name is always whole. A partial
file left by a broken connection (in this run or an earlier one) is resumed with an HTTP
``Range`` request. Failures are handled by kind:

* HTTP 5xx and 429, refused or broken connections, time-outs: retried with exponential
  back-off (:class:`RetryPolicy`); an attempt that made the partial file grow is resumed
  at once and does not count against the budget.
* HTTP 404 / 410: final for that mirror (no retry); the next mirror is tried.
* other HTTP errors, or a size that contradicts ``Content-Length`` / ``Content-Range`` or
  the caller's expected size: final for that mirror; a contradicted partial file is deleted.

Mirrors of ``pub/databases/emdb/structures/`` (:data:`EMDB_MIRRORS`, or any base URL,
``file://`` for a local copy of the archive) are tried in the given order; a file on a local
mirror is copied like a download, or read where it lies (:func:`fetch_file` with
``copy_local=False``, as the builder does unless downloads are kept). Only the standard
library is used (``urllib``), so nothing more needs installing.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cref_bench.errors import InputError, UnavailableError
from dataset_builder.emdb.header import EntryHeader, choose_half_maps, choose_mask, read_header
from dataset_builder.emdb.layout import header_relpaths, normalize_id

logger = logging.getLogger(__name__)

EMDB_MIRRORS: dict[str, str] = {
    "ebi": "https://ftp.ebi.ac.uk/pub/databases/emdb/structures",
    "wwpdb": "https://files.wwpdb.org/pub/emdb/structures",
    "rcsb": "https://files.rcsb.org/pub/emdb/structures",
    "pdbj": "https://ftp.pdbj.org/pub/emdb/structures",
}
DEFAULT_EMDB_MIRRORS = ("ebi", "wwpdb", "pdbj")

MODEL_SOURCES: dict[str, str] = {
    "rcsb": "https://files.rcsb.org/download/{id}.cif.gz",
    "wwpdb": "https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF/{mid}/{id}.cif.gz",
    "pdbj": "https://ftp.pdbj.org/pub/pdb/data/structures/divided/mmCIF/{mid}/{id}.cif.gz",
}
DEFAULT_MODEL_SOURCES = ("rcsb", "wwpdb", "pdbj")

Progress = Callable[[int, "int | None"], None]
"""Called as ``progress(new_bytes, total_bytes_or_None)`` after every chunk written."""

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)
_PDB_ID = re.compile(r"^[0-9][A-Za-z0-9]{3}$")


class DownloadError(UnavailableError):
    """A file could not be downloaded; the message names the URL(s) or file and the fault."""


class NotFoundError(DownloadError):
    """The server says the file does not exist (HTTP 404 or 410); not retried."""


class SizeMismatchError(DownloadError):
    """The bytes received contradict the size the server declared or the caller expected."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a URL is retried after a transient failure.

    Attributes:
        attempts: failed attempts allowed per URL before moving to the next mirror.
        initial_delay: seconds to wait after the first failure.
        factor: each further wait is this many times longer ...
        max_delay: ... up to this many seconds.
    """

    attempts: int = 5
    initial_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1-based)."""
        return min(self.max_delay, self.initial_delay * self.factor ** (failures - 1))


@dataclass(frozen=True)
class DownloadResult:
    """The outcome of :meth:`Downloader.fetch`.

    Attributes:
        path: the complete file.
        url: the URL that completed it; ``None`` when it was already there.
        size: its size in bytes.
        transferred: bytes received by this call (all mirrors and attempts).
        resumed: whether the call started from a partial file left earlier.
    """

    path: Path
    url: str | None
    size: int
    transferred: int
    resumed: bool


class _Transient(Exception):
    """An attempt failed in a way worth retrying."""


class _Final(Exception):
    """An attempt failed in a way retrying the same URL will not fix."""

    def __init__(self, error: DownloadError):
        super().__init__(str(error))
        self.error = error


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


class Downloader:
    """Fetches files over HTTP(S): resumable, retried, atomic. Safe to share between threads
    as long as no two threads fetch the same destination at once.

    Args:
        retry: the retry policy for transient failures.
        timeout: seconds a connection may stay silent before the attempt fails.
        chunk_size: bytes read and written at a time.
        user_agent: the ``User-Agent`` header sent.
        sleep: the function used to wait between attempts (tests pass a recorder).
    """

    def __init__(self, retry: RetryPolicy = RetryPolicy(), timeout: float = 60.0,
                 chunk_size: int = 1 << 20, user_agent: str = "cref-bench",
                 sleep: Callable[[float], None] = time.sleep):
        self.retry = retry
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.user_agent = user_agent
        self.sleep = sleep

    def fetch(self, urls: str | Sequence[str], dest: str | Path, *,
              progress: Progress | None = None,
              expected_size: int | None = None) -> DownloadResult:
        """Download the first URL that works to ``dest``; return at once if ``dest`` exists.

        Args:
            urls: one URL, or the same file on several mirrors, tried in order.
            dest: the final path; its folder is created. ``dest.part`` holds partial data.
            progress: called as ``progress(new_bytes, total_or_None)`` after every chunk.
            expected_size: the exact size in bytes, when known; a server declaring another fails.

        Returns:
            A :class:`DownloadResult`.

        Raises:
            NotFoundError: every mirror answered 404 / 410.
            SizeMismatchError: every mirror's size contradicted the data or ``expected_size``.
            DownloadError: otherwise when no mirror delivered the file (the message lists
                each mirror's failure). The partial file is kept for a later resume unless
                its size was contradicted; nothing appears at ``dest``.
            ValueError: no URL given.
        """
        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls:
            raise ValueError(f"{dest}: no URL to download from")
        dest = Path(dest)
        if dest.exists():
            return DownloadResult(dest, None, dest.stat().st_size, 0, False)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        resumed = part.exists()
        received = [0]

        def sink(count: int, total: int | None) -> None:
            received[0] += count
            if progress is not None:
                progress(count, total)

        failures: list[DownloadError] = []
        for url in urls:
            try:
                self._fetch_url(url, part, sink, expected_size)
            except _Final as exc:
                failures.append(exc.error)
                logger.warning("%s", exc.error)
                continue
            os.replace(part, dest)
            return DownloadResult(dest, url, dest.stat().st_size, received[0], resumed)
        faults = "; ".join(str(f) for f in failures)
        for kind in (NotFoundError, SizeMismatchError):
            if all(isinstance(f, kind) for f in failures):
                raise kind(dest, f"no mirror delivered the file: {faults}")
        raise DownloadError(dest, f"no mirror delivered the file: {faults}")

    def _fetch_url(self, url: str, part: Path, sink: Progress, expected_size: int | None) -> None:
        """Complete ``part`` from one URL, retrying transient failures; raises :class:`_Final`."""
        declared: list[int] = []
        best = _size(part)
        failures = 0
        while True:
            try:
                self._attempt(url, part, sink, expected_size, declared)
                return
            except _Transient as exc:
                reason = str(exc)
            now = _size(part)
            if now > best:
                best = now
                logger.info("%s: resuming at byte %d (%s)", url, now, reason)
                continue
            failures += 1
            if failures >= self.retry.attempts:
                raise _Final(DownloadError(url, f"gave up after {failures} failed attempts; "
                                                f"last: {reason}"))
            wait = self.retry.delay(failures)
            logger.info("%s: %s; retrying in %.3g s", url, reason, wait)
            self.sleep(wait)

    def _check_total(self, url: str, part: Path, total: int | None, expected_size: int | None,
                     declared: list[int]) -> None:
        """Fail (and drop the partial file) when ``total`` contradicts earlier answers or the
        caller."""
        if total is None:
            return
        if expected_size is not None and total != expected_size:
            _discard(part)
            raise _Final(SizeMismatchError(url, f"server declares {total} bytes, expected "
                                                f"{expected_size}"))
        if declared and declared[0] != total:
            _discard(part)
            raise _Final(SizeMismatchError(url, f"server declared {declared[0]} bytes, now "
                                                f"{total}"))
        declared[:1] = [total]

    def _attempt(self, url: str, part: Path, sink: Progress, expected_size: int | None,
                 declared: list[int]) -> None:
        """One request: append to (or restart) ``part`` and return when it is complete."""
        if url.startswith("file:"):
            self._copy_local(url, part, sink, expected_size, declared)
            return
        offset = _size(part)
        headers = {"User-Agent": self.user_agent, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and offset:
                self._range_not_satisfiable(url, part, offset, exc.headers.get("Content-Range"),
                                            expected_size, declared)
                return
            if exc.code in (404, 410):
                raise _Final(NotFoundError(url, f"HTTP {exc.code} {exc.reason}")) from None
            if exc.code == 429 or exc.code >= 500:
                raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
            raise _Final(DownloadError(url, f"HTTP {exc.code} {exc.reason}")) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        with response:
            if response.status == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range") or "")
                if not match or match.group(1) is None or int(match.group(1)) != offset:
                    _discard(part)
                    raise _Transient(f"server resumed with Content-Range "
                                     f"{response.headers.get('Content-Range')!r} for offset "
                                     f"{offset}")
                total = None if match.group(3) == "*" else int(match.group(3))
                mode = "ab"
            elif response.status == 200:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.strip().isdigit() else None
                mode = "wb"
            else:
                raise _Final(DownloadError(url, f"unexpected HTTP {response.status}"))
            self._check_total(url, part, total, expected_size, declared)
            try:
                with open(part, mode) as out:
                    while chunk := response.read(self.chunk_size):
                        out.write(chunk)
                        sink(len(chunk), total)
                    out.flush()
                    os.fsync(out.fileno())
            except (http.client.HTTPException, OSError) as exc:
                raise _Transient(f"connection broke at byte {_size(part)}: "
                                 f"{type(exc).__name__}: {exc}") from None
        size = _size(part)
        if total is not None and size < total:
            raise _Transient(f"connection closed at byte {size} of {total}")
        if total is not None and size > total:
            _discard(part)
            raise _Final(SizeMismatchError(url, f"received {size} bytes, {total} declared"))

    def _copy_local(self, url: str, part: Path, sink: Progress, expected_size: int | None,
                    declared: list[int]) -> None:
        """Complete ``part`` from a ``file://`` URL (a local mirror), resuming where it stops."""
        source = local_path(url)
        try:
            total = source.stat().st_size
        except FileNotFoundError:
            raise _Final(NotFoundError(url, "no such file")) from None
        except OSError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        self._check_total(url, part, total, expected_size, declared)
        offset = _size(part)
        if offset > total:
            _discard(part)
            offset = 0
        try:
            with open(source, "rb") as src, open(part, "ab" if offset else "wb") as out:
                src.seek(offset)
                while chunk := src.read(self.chunk_size):
                    out.write(chunk)
                    sink(len(chunk), total)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise _Transient(f"copy broke at byte {_size(part)}: {type(exc).__name__}: "
                             f"{exc}") from None
        if _size(part) != total:
            raise _Transient(f"{source} changed size while being copied")

    def _range_not_satisfiable(self, url: str, part: Path, offset: int, content_range: str | None,
                               expected_size: int | None, declared: list[int]) -> None:
        """HTTP 416 to a resume: the partial file is complete if it has exactly the file's size."""
        match = _CONTENT_RANGE.match(content_range or "")
        total = int(match.group(3)) if match and match.group(3) != "*" else None
        if total is not None and total == offset:
            self._check_total(url, part, total, expected_size, declared)
            return
        _discard(part)
        raise _Transient(f"partial file of {offset} bytes does not fit the server's "
                         f"({content_range or 'no Content-Range'}); restarting")


def local_path(url: str) -> Path:
    """The path a ``file://`` URL names."""
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))


def resolve_sources(sources: Sequence[str], known: Mapping[str, str]) -> list[str]:
    """Turn mirror names (keys of ``known``) into base URLs; URLs given as such are kept.

    Raises:
        ValueError: a name is neither known nor an ``http(s)://`` or ``file://`` URL.
    """
    resolved = []
    for source in sources:
        if source in known:
            resolved.append(known[source])
        elif source.startswith(("http://", "https://", "file://")):
            resolved.append(source)
        else:
            raise InputError(f"unknown mirror {source!r}; give a URL or one of "
                             f"{', '.join(known)}")
    return resolved


def mirror_urls(relpath: str, mirrors: Sequence[str] = DEFAULT_EMDB_MIRRORS) -> list[str]:
    """The URLs of one archive path (e.g. ``'EMD-1234/header/emd-1234.xml'``) on each mirror."""
    return [f"{base.rstrip('/')}/{relpath}" for base in resolve_sources(mirrors, EMDB_MIRRORS)]


def fetch_file(relpath: str, cache_dir: str | Path, *,
               mirrors: Sequence[str] = DEFAULT_EMDB_MIRRORS,
               downloader: Downloader | None = None, progress: Progress | None = None,
               copy_local: bool = True) -> Path:
    """One archive file: downloaded (unless cached) to ``cache_dir/relpath``, or, with
    ``copy_local=False``, the file itself on a local (``file://``) mirror where one of those
    that come before the first remote mirror has it (read in place, no copy).

    Args:
        relpath: the archive path, e.g. ``'EMD-1234/other/emd_1234_half_map_1.map.gz'``.
        cache_dir: the download folder.
        mirrors: mirror names or base URLs, tried in order.
        downloader: the :class:`Downloader` to use (default: a new one).
        progress: passed to :meth:`Downloader.fetch` (not called for a file read in place).
        copy_local: copy files from local mirrors into ``cache_dir`` like downloads.

    Returns:
        The local path of the complete file.

    Raises:
        DownloadError: no mirror delivered the file (``NotFoundError`` if none has it).
    """
    urls = mirror_urls(relpath, mirrors)
    if not copy_local:
        for url in urls:
            if not url.startswith("file:"):
                break
            if local_path(url).is_file():
                return local_path(url)
    return (downloader or Downloader()).fetch(urls, Path(cache_dir) / relpath,
                                              progress=progress).path


def fetch_header_file(emdb_id: str, cache_dir: str | Path, *,
                      mirrors: Sequence[str] = DEFAULT_EMDB_MIRRORS,
                      downloader: Downloader | None = None, copy_local: bool = True) -> Path:
    """An entry's XML header file, under either of its names: ``emd-N.xml`` (the archive's
    official name since 2022) on every mirror, then ``emd-N-v30.xml``.

    Args:
        emdb_id: the accession, any form :func:`~dataset_builder.emdb.layout.normalize_id` takes.
        cache_dir, mirrors, downloader, copy_local: see :func:`fetch_file`.

    Returns:
        The local path of the header.

    Raises:
        NotFoundError: no mirror has the header under either name (a permanent verdict).
        DownloadError: neither name could be fetched and at least one failure was not a
            plain 404 (a transient verdict: a later run tries again).
    """
    failures: list[DownloadError] = []
    for relpath in header_relpaths(emdb_id):
        try:
            return fetch_file(relpath, cache_dir, mirrors=mirrors, downloader=downloader,
                              copy_local=copy_local)
        except DownloadError as error:
            failures.append(error)
    faults = "; ".join(str(f) for f in failures)
    if all(isinstance(f, NotFoundError) for f in failures):
        raise NotFoundError(normalize_id(emdb_id), f"no header under either name: {faults}")
    raise DownloadError(normalize_id(emdb_id), f"the header could not be fetched: {faults}")


def fetch_header(emdb_id: str, cache_dir: str | Path, *,
                 mirrors: Sequence[str] = DEFAULT_EMDB_MIRRORS,
                 downloader: Downloader | None = None, copy_local: bool = True,
                 **options) -> EntryHeader:
    """Download (unless cached) and parse an entry's v3.0 header (see
    :func:`fetch_header_file` for the two names tried).

    Args:
        emdb_id: the accession, any form :func:`~dataset_builder.emdb.layout.normalize_id` takes.
        cache_dir: the local mirror; the header lands at ``cache_dir/EMD-N/header/<name>``.
        mirrors: mirror names of :data:`EMDB_MIRRORS` or base URLs, tried in order.
        downloader: the :class:`Downloader` to use (default: a new one with default settings).
        copy_local: see :func:`fetch_file`.
        **options: passed to :func:`~dataset_builder.emdb.header.parse_header`
            (``require_half_maps``, ``require_mask``).

    Returns:
        The parsed :class:`~dataset_builder.emdb.header.EntryHeader`.

    Raises:
        DownloadError: the header could not be downloaded (``NotFoundError`` if no mirror has it
            under either name).
        HeaderError: the header is malformed or lacks what is required (names the entry and file;
            delete the cached file to fetch it again).
    """
    emdb_id = normalize_id(emdb_id)
    path = fetch_header_file(emdb_id, cache_dir, mirrors=mirrors, downloader=downloader,
                             copy_local=copy_local)
    return read_header(path, emdb_id=emdb_id, **options)


@dataclass(frozen=True)
class EntryFiles:
    """Local paths of an entry's downloaded files.

    Attributes:
        half_maps: the half-map pair (:func:`~dataset_builder.emdb.header.choose_half_maps`).
        masks: the masks fetched: the primary one
            (:func:`~dataset_builder.emdb.header.choose_mask`) first.
        map: the primary map, when asked for.
    """

    half_maps: tuple[Path, ...]
    masks: tuple[Path, ...]
    map: Path | None = None


def fetch_entry_files(header: EntryHeader, cache_dir: str | Path, *,
                      mirrors: Sequence[str] = DEFAULT_EMDB_MIRRORS,
                      downloader: Downloader | None = None, progress: Progress | None = None,
                      masks: int = 1, include_map: bool = False,
                      copy_local: bool = True) -> EntryFiles:
    """Download (unless cached) the half-map pair and masks an entry's header names.

    Args:
        header: the parsed header; file names come from it.
        cache_dir: the local mirror (files land at ``cache_dir/EMD-N/other/...`` etc.).
        mirrors: mirror names or base URLs, tried in order for every file.
        downloader: the :class:`Downloader` to use (default: a new one).
        progress: passed to :meth:`Downloader.fetch` for every file.
        masks: how many masks to fetch: the primary one (``msk_1``, see
            :func:`~dataset_builder.emdb.header.choose_mask`), then others in header order.
        include_map: also fetch the primary map.
        copy_local: see :func:`fetch_file`.

    Returns:
        The :class:`EntryFiles`.

    Raises:
        ValueError: the header lists fewer than two half-maps or fewer masks than asked for.
        DownloadError: a file could not be downloaded.
    """
    if len(header.half_maps) < 2:
        raise ValueError(f"{header.emdb_id}: the header lists {len(header.half_maps)} "
                         "half-map(s), need 2")
    if len(header.masks) < masks:
        raise ValueError(f"{header.emdb_id}: the header lists {len(header.masks)} mask(s), "
                         f"asked for {masks}")
    downloader = downloader or Downloader()

    def get(relpath: str) -> Path:
        return fetch_file(relpath, cache_dir, mirrors=mirrors, downloader=downloader,
                          progress=progress, copy_local=copy_local)

    primary = choose_mask(header)
    ordered = [primary, *(m for m in header.masks if m is not primary)] if primary else []
    return EntryFiles(
        half_maps=tuple(get(m.relpath) for m in choose_half_maps(header)),
        masks=tuple(get(m.relpath) for m in ordered[:masks]),
        map=get(header.map.relpath) if include_map else None)


def model_urls(pdb_id: str, sources: Sequence[str] = DEFAULT_MODEL_SOURCES) -> list[str]:
    """URLs of a PDB entry's mmCIF file (gzip) on each source.

    Args:
        pdb_id: a four-character PDB id, e.g. ``'3j5p'``.
        sources: names of :data:`MODEL_SOURCES` or URL templates with ``{id}`` (lower-case id)
            and optionally ``{mid}`` (its middle two characters, the archive's folder).

    Raises:
        ValueError: the id is not a four-character PDB id, or a source is unknown.
    """
    if not _PDB_ID.match(pdb_id or ""):
        raise ValueError(f"not a PDB id: {pdb_id!r}")
    pdb_id = pdb_id.lower()
    templates = resolve_sources(sources, MODEL_SOURCES)
    return [t.format(id=pdb_id, mid=pdb_id[1:3]) for t in templates]


def fetch_model(pdb_id: str, cache_dir: str | Path, *,
                sources: Sequence[str] = DEFAULT_MODEL_SOURCES,
                downloader: Downloader | None = None, progress: Progress | None = None) -> Path:
    """Download (unless cached) a fitted model as gzip'd mmCIF to ``cache_dir/models/<id>.cif.gz``.

    Args:
        pdb_id: a four-character PDB id.
        cache_dir: the local cache.
        sources: see :func:`model_urls`.
        downloader: the :class:`Downloader` to use (default: a new one).
        progress: passed to :meth:`Downloader.fetch`.

    Returns:
        The local path.

    Raises:
        ValueError: see :func:`model_urls`.
        DownloadError: no source delivered the file.
    """
    urls = model_urls(pdb_id, sources)
    dest = Path(cache_dir) / "models" / f"{pdb_id.lower()}.cif.gz"
    return (downloader or Downloader()).fetch(urls, dest, progress=progress).path
