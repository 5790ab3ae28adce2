"""The EMDB source of the corpus: listing entries, reading their headers, downloading their files.

* :mod:`~dataset_builder.emdb.listing` -- the search API (one CSV request, checked complete),
  the ``paper2023`` / ``all`` presets, ID-list files;
* :mod:`~dataset_builder.emdb.header` -- the v3.0 XML header (files, geometry, metadata) and
  the choice of the half-map pair and the primary mask;
* :mod:`~dataset_builder.emdb.download` -- resumable, retried, atomic downloads from the
  archive mirrors, and fitted models from the PDB;
* :mod:`~dataset_builder.emdb.layout` -- accession codes and the archive's folder layout.
"""

from dataset_builder.emdb.download import (
    DEFAULT_EMDB_MIRRORS,
    DEFAULT_MODEL_SOURCES,
    EMDB_MIRRORS,
    MODEL_SOURCES,
    Downloader,
    DownloadError,
    DownloadResult,
    EntryFiles,
    NotFoundError,
    RetryPolicy,
    SizeMismatchError,
    fetch_entry_files,
    fetch_header,
    fetch_header_file,
    fetch_model,
    mirror_urls,
    model_urls,
)
from dataset_builder.emdb.header import (
    EntryHeader,
    HeaderError,
    MapInfo,
    choose_half_maps,
    choose_mask,
    parse_header,
    read_header,
)
from dataset_builder.emdb.layout import header_relpath, header_relpaths, normalize_id
from dataset_builder.emdb.listing import (
    DEFAULT_API,
    PRESETS,
    ListedEntry,
    Listing,
    ListingError,
    Preset,
    list_entries,
    read_id_list,
    run_search,
    search,
    select_entries,
)

__all__ = [
    "DEFAULT_API", "DEFAULT_EMDB_MIRRORS", "DEFAULT_MODEL_SOURCES", "EMDB_MIRRORS",
    "MODEL_SOURCES", "PRESETS", "DownloadError", "DownloadResult", "Downloader", "EntryFiles",
    "EntryHeader", "HeaderError", "ListedEntry", "Listing", "ListingError", "MapInfo",
    "NotFoundError", "Preset", "RetryPolicy", "SizeMismatchError", "choose_half_maps",
    "choose_mask", "fetch_entry_files", "fetch_header", "fetch_header_file", "fetch_model",
    "header_relpath", "header_relpaths", "list_entries", "mirror_urls", "model_urls",
    "normalize_id", "parse_header", "read_header", "read_id_list", "run_search", "search",
    "select_entries",
]
