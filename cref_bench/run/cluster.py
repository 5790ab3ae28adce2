"""The dask client that parallel work runs on: a local cluster, or an existing one.

The runner (:mod:`cref_bench.run.runner`) and the corpus builder
(:mod:`dataset_builder.emdb.build`) both take their client from :func:`dask_client`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def dask_client(workers: int = 1, scheduler: str | None = None,
                processes: bool = True, allowed_failures: int | None = None) -> Iterator:
    """A dask client: on an existing cluster, or on a local one made (and closed) here.

    Args:
        workers: local workers (one thread each, no dashboard).
        scheduler: the address of an existing scheduler (``tcp://host:8786``); ``None``
            starts a :class:`dask.distributed.LocalCluster`.
        processes: local workers are processes (else threads of this process).
        allowed_failures: how many workers a task may take down before the local
            scheduler gives up on it (dask's ``distributed.scheduler.allowed-failures``;
            ``None`` keeps dask's default). When given, the local scheduler also sends each
            worker only as many tasks as it has threads (``worker-saturation`` 1), so that a
            worker's death is charged to the task it was running, not to those queued on it.
            An existing cluster keeps its own settings.

    Yields:
        The :class:`dask.distributed.Client`.
    """
    import dask
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    settings = ({} if allowed_failures is None
                else {"distributed.scheduler.allowed-failures": allowed_failures,
                      "distributed.scheduler.worker-saturation": 1.0})
    with dask.config.set(settings), LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=processes,
            dashboard_address=None) as cluster, Client(cluster) as client:
        yield client
