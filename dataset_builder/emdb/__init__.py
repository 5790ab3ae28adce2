"""The EMDB source of the corpus: listing entries, reading their headers, downloading their files.

* :mod:`~dataset_builder.emdb.listing` -- the search API, the ``paper2023`` / ``all`` presets,
  ID-list files;
* :mod:`~dataset_builder.emdb.header` -- the v3.0 XML header (files, geometry, metadata);
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
    fetch_model,
    mirror_urls,
    model_urls,
)
from dataset_builder.emdb.header import EntryHeader, HeaderError, MapInfo, parse_header, read_header
from dataset_builder.emdb.layout import header_relpath, normalize_id
from dataset_builder.emdb.listing import (
    DEFAULT_API,
    PRESETS,
    ListedEntry,
    ListingError,
    Preset,
    read_id_list,
    search,
    select_entries,
)

__all__ = [
    "DEFAULT_API", "DEFAULT_EMDB_MIRRORS", "DEFAULT_MODEL_SOURCES", "EMDB_MIRRORS",
    "MODEL_SOURCES", "PRESETS", "DownloadError", "DownloadResult", "Downloader", "EntryFiles",
    "EntryHeader", "HeaderError", "ListedEntry", "ListingError", "MapInfo", "NotFoundError",
    "Preset", "RetryPolicy", "SizeMismatchError", "fetch_entry_files", "fetch_header",
    "fetch_model", "header_relpath", "mirror_urls", "model_urls", "normalize_id", "parse_header",
    "read_header", "read_id_list", "search", "select_entries",
]
