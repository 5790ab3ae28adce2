"""One writer for the corpora the project makes itself (phantoms, simulated reconstructions).

:func:`open_known_truth_store` opens (or creates) a store that holds one kind of entry and
refuses any other; :func:`write_entries` writes the entries still missing, in this process or
in worker processes, records each failure in the manifest and goes on, shows progress and
finalises the store. What an entry is and how it is made stays with its module
(:mod:`dataset_builder.synthetic`, :mod:`dataset_builder.simulation.corpus`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

from cref_bench.errors import CorpusError
from dataset_builder import store

logger = logging.getLogger(__name__)


def open_known_truth_store(out, source: str, patch_size: int) -> store.Store:
    """The store at ``out``, created if absent; refuses a store of another source.

    Args:
        out: a local path or fsspec URL.
        source: what the store holds (its ``source`` attribute, versioned by its maker).
        patch_size: the patch edge of a new store's patch index.

    Returns:
        The opened store.

    Raises:
        CorpusError: ``out`` holds a store of another source.
    """
    location = str(out) if "://" in str(out) else str(Path(out).resolve())
    handle = store.open_store(location, mode="a", source=source, patch_size=patch_size)
    found = handle.attrs.get("source")
    if found != source:
        raise CorpusError(location, f"a store of {found!r}, not of {source!r}; choose another "
                          "output")
    return handle


def write_entries(handle: store.Store, jobs: Sequence[tuple], write_one: Callable, *,
                  total: int, desc: str, workers: int = 1, progress: bool = True,
                  initializer: Callable | None = None, initargs: tuple = ()) -> None:
    """Write entries with ``write_one(location, *job)``, then finalise the store.

    Args:
        handle: the store.
        jobs: one tuple per entry to write, its entry id first (complete entries left out).
        write_one: a module-level function (workers import it) that makes and stores one
            entry, records its failure in the manifest, and returns the error text or None.
        total: the entries asked for (the progress bar starts at those already complete).
        desc: the progress bar's label.
        workers: parallel processes (1: in this process).
        progress: show a progress bar.
        initializer, initargs: run once in each worker process.
    """
    bar = tqdm(total=total, initial=total - len(jobs), desc=desc, unit="entry",
               disable=not progress)
    with bar:
        if workers == 1:
            for job in jobs:
                _report(job[0], write_one(handle.location, *job))
                bar.update()
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                     initializer=initializer, initargs=initargs) as pool:
                futures = {pool.submit(write_one, handle.location, *job): job[0]
                           for job in jobs}
                for future in as_completed(futures):
                    _report(futures[future], future.result())
                    bar.update()
    handle.finalize()


def _report(entry_id: str, error: str | None) -> None:
    if error is not None:
        logger.warning("%s failed (recorded in the manifest): %s", entry_id, error)
