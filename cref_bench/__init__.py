"""cref-bench: a benchmark suite for denoisers of 3D cryo-EM density maps.

The package holds the shared vocabulary of the project: map I/O (:class:`Volume`),
Fourier shells, the C_ref family of metrics and their facts (:mod:`cref_bench.metric_facts`),
the corpus store's layout (:mod:`cref_bench.store_layout`) and read-only API, the results
schema, the method protocol and registry, the runner, the command line, and the one family
of errors (:mod:`cref_bench.errors`).
"""

from cref_bench.errors import MapError
from cref_bench.volume import Volume

__version__ = "0.1.0"

__all__ = ["MapError", "Volume", "__version__"]
