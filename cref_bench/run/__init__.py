"""Running a method over a corpus: the runner, the method's process, its contract, dask.

Modules: :mod:`~cref_bench.run.runner` (``run_method``, one entry's evaluation),
:mod:`~cref_bench.run.isolation` (the method in its own process, under limits),
:mod:`~cref_bench.run.contract` (what every call of a method must satisfy),
:mod:`~cref_bench.run.process_tree` (killing a process and all it started),
:mod:`~cref_bench.run.cluster` (the dask client).
"""

from cref_bench._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "run_method": "runner", "RunResult": "runner",
    "Limits": "isolation", "MethodProcess": "isolation",
    "MethodFailure": "contract", "call_method": "contract",
    "dask_client": "cluster",
})
