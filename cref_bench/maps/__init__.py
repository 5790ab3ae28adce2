"""Density maps: the :class:`Volume` type, MRC/CCP4 reading and writing, and input checks.

Modules: :mod:`~cref_bench.maps.volume` (the array with its geometry),
:mod:`~cref_bench.maps.io` (``read_map``, ``write_map``, ``read_header``),
:mod:`~cref_bench.maps.checks` (masks and maps given by a user).
"""

from cref_bench._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "Volume": "volume",
    "read_map": "io", "write_map": "io", "read_header": "io", "MapHeader": "io",
    "MapWarning": "io",
    "check_mask": "checks", "check_varying": "checks",
})
