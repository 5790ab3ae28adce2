"""cref-bench: a benchmark suite for denoisers of 3D cryo-EM density maps.

The package holds the shared vocabulary of the project: map I/O (:class:`Volume`),
Fourier shells, the C_ref family of metrics, the read-only corpus API, the method
protocol and registry, the runner and the command line.
"""

from cref_bench.errors import MapError
from cref_bench.volume import Volume

__version__ = "0.1.0"

__all__ = ["MapError", "Volume", "__version__"]
