"""What a run keeps on each dask worker: the method's process, started once per worker.

A parallel run registers one :class:`MethodProcesses` plugin under its token; each task asks
the plugin of the worker it runs on for the method's process (:func:`method_process`), and
the plugin stops that process when the run unregisters it or the worker closes. Imported only
by parallel runs (it imports ``distributed``).
"""

from __future__ import annotations

from pathlib import Path

from distributed import WorkerPlugin, get_worker

from cref_bench.methods.protocol import Method
from cref_bench.results import provenance
from cref_bench.run.isolation import Limits, MethodProcess


class MethodProcesses(WorkerPlugin):
    """One worker's method process of one run (started on first use).

    Args:
        limits: the per-entry limits of the method's process.
        logs: the folder of the method's logs (``method-<pid>.log`` per worker).
    """

    def __init__(self, limits: Limits, logs: Path):
        self.limits = limits
        self.logs = logs
        self.process: MethodProcess | None = None

    def get(self, method: Method) -> MethodProcess:
        """This worker's method process (started with ``method`` on first use)."""
        if self.process is None:
            log = self.logs / f"method-{provenance.process_identity()['pid']}.log"
            self.process = MethodProcess(method, self.limits, log=log)
        return self.process

    def teardown(self, worker) -> None:
        """Stop the method's process (the run ended or the worker closes)."""
        if self.process is not None:
            self.process.close()
            self.process = None


def method_process(token: str, method: Method) -> MethodProcess:
    """The method's process of run ``token`` on the worker running this task.

    Args:
        token: the run's token (the name its plugin was registered under).
        method: the method (used to start the process on first use).
    """
    return get_worker().plugins[token].get(method)
