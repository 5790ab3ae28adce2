"""cref-bench: a benchmark suite for denoisers of 3D cryo-EM density maps.

The few names a script needs, imported on first use (the command line starts without numpy)::

    import cref_bench as cb
    half1, half2 = cb.read_map("h1.mrc"), cb.read_map("h2.mrc")
    report = cb.evaluate(half1, half2, denoised)       # every metric, masked and unmasked
    corpus = cb.open_corpus("demo.zarr")
    result = cb.run_method("fsc-weight", "demo.zarr")   # a method over a split

Maps: :class:`Volume`, :func:`read_map`, :func:`write_map`. Metrics: :func:`fsc`,
:func:`c_ref`, :func:`evaluate`. Corpus: :func:`open_corpus`. Methods: :class:`Method`,
:class:`SingleMapMethod`, :class:`Denoised`, :func:`load_method`. Running: :func:`run_method`.
Errors: :class:`CrefBenchError` and its family (:mod:`cref_bench.errors`).

The subpackages, by purpose: ``maps``, ``metrics``, ``corpus``, ``methods``, ``run``,
``results`` and ``commands`` (one module per ``cref-bench`` command).
"""

from cref_bench._lazy import lazy_exports
from cref_bench.errors import CrefBenchError, MapError

__version__ = "0.1.0"

_public, __getattr__ = lazy_exports(__name__, {
    "Volume": "maps.volume", "read_map": "maps.io", "write_map": "maps.io",
    "fsc": "metrics.fsc", "c_ref": "metrics.scores", "evaluate": "metrics.scores",
    "DenoisedMaps": "metrics.scores",
    "open_corpus": "corpus.reader",
    "Method": "methods.protocol", "SingleMapMethod": "methods.protocol",
    "Denoised": "methods.protocol", "load_method": "methods.protocol",
    "run_method": "run.runner",
})
__all__ = ["CrefBenchError", "MapError", "__version__", *_public]
