"""Methods: the protocol a denoiser implements, the registry that finds one, the scaffold.

Modules: :mod:`~cref_bench.methods.protocol` (:class:`Method`, :class:`SingleMapMethod`,
:class:`Denoised`), :mod:`~cref_bench.methods.registry` (method specs and ``load_method``'s
lookup), :mod:`~cref_bench.methods.catalog` (what ``cref-bench methods`` lists),
:mod:`~cref_bench.methods.scaffold` (what ``cref-bench new-method`` writes).
"""

from cref_bench._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "Method": "protocol", "SingleMapMethod": "protocol", "Denoised": "protocol",
    "load_method": "protocol", "average_halves": "protocol",
    "available_methods": "registry",
})
