"""A results folder: its records and tables, its provenance, and the check before publishing.

Modules: :mod:`~cref_bench.results.folder` (records, tidy tables, the summary),
:mod:`~cref_bench.results.provenance` (software, hardware, identity of a run),
:mod:`~cref_bench.results.check` (whether a folder is fit to publish),
:mod:`~cref_bench.results.format` (numbers as printed text).
"""

from cref_bench._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "check_results": "check", "CheckReport": "check", "ResultsFolder": "folder",
    "RunProvenance": "provenance", "aggregate": "folder",
    "summarise": "folder", "assemble_tables": "folder",
    "significant": "format",
})
