"""cref-bench: a benchmark suite for denoisers of 3D cryo-EM density maps.

The package holds the shared vocabulary of the project: map I/O (:class:`Volume`),
Fourier shells, the C_ref family of metrics and their facts (:mod:`cref_bench.metric_facts`),
the corpus store's layout (:mod:`cref_bench.store_layout`) and read-only API, the results
schema, the method protocol and registry, the runner, the command line, and the one family
of errors (:mod:`cref_bench.errors`).

:class:`Volume` is imported on first use, so that the command line starts without numpy.
"""

from cref_bench.errors import MapError

__version__ = "0.1.0"

__all__ = ["MapError", "Volume", "__version__"]


def __getattr__(name: str):
    if name == "Volume":
        from cref_bench.volume import Volume

        return Volume
    raise AttributeError(f"module 'cref_bench' has no attribute {name!r}")
