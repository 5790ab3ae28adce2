"""What a run keeps on each dask worker: the method's box (a single-map method's three boxes,
one per kind of held-out call), started once per worker.

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
from cref_bench.run.isolation import BoxSettings, Limits, MethodProcess, method_boxes
from cref_bench.run.single_map import HeldOutBoxes


class MethodProcesses(WorkerPlugin):
    """One worker's method process (its box) of one run (started on first use).

    Args:
        limits: the per-entry limits of the method's process.
        logs: the folder of the method's logs (``method-<pid>.log`` per worker).
        box: what the method's box may see besides its code and inputs.
    """

    def __init__(self, limits: Limits, logs: Path, box: BoxSettings):
        self.limits = limits
        self.logs = logs
        self.box = box
        self.process: MethodProcess | HeldOutBoxes | None = None

    def get(self, method: str | Method, params: dict, held_out: bool = False
            ) -> MethodProcess | HeldOutBoxes:
        """This worker's method process (its box builds ``method`` on first use: a spec with
        ``params``, or an instance), or with ``held_out`` the three boxes of a single-map
        method's held-out calls."""
        if self.process is None:
            log = self.logs / f"method-{provenance.process_identity()['pid']}.log"
            self.process = method_boxes(method, self.limits, log,
                                        params=params if isinstance(method, str) else None,
                                        settings=self.box, held_out=held_out)
        return self.process

    def teardown(self, worker) -> None:
        """Stop the method's process (the run ended or the worker closes)."""
        if self.process is not None:
            self.process.close()
            self.process = None


def method_process(token: str, method: str | Method, params: dict, held_out: bool = False
                   ) -> MethodProcess | HeldOutBoxes:
    """The method's process of run ``token`` on the worker running this task.

    Args:
        token: the run's token (the name its plugin was registered under).
        method: the method's spec or instance (its box is started with it on first use).
        params: the parameters of a spec.
        held_out: a single-map method: its three boxes (see
            :class:`~cref_bench.run.single_map.HeldOutBoxes`).
    """
    return get_worker().plugins[token].get(method, params, held_out)
