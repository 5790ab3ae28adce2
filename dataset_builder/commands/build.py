"""Build the EMDB half-map corpus into a store (resumable; on a dask cluster).

Lists entries (a preset searched on the EMDB API in one CSV request, checked complete; or
an ID-list file), then for each one reads its v3.0 XML header (emd-N.xml, else
emd-N-v30.xml), downloads the two half-maps and the primary mask (msk_1, else the
lowest-numbered) from the archive mirrors (resuming and retrying), validates them and
writes the entry to the store -- or records in the manifest why not (reason codes: missing
file, corrupt gzip, half-maps or mask on different grids, non-finite voxels, header at
odds with the XML, box over --max-box, ...). Runs one task per entry on a local dask
cluster (--workers) or on an existing one (--scheduler). A build killed at any moment and
run again redoes only the unfinished entries; entries that failed for a transient reason
(network; exit status 1) are tried again by the next run.

--dry-run lists, filters and reports the counts (and the sizes stated by headers found
locally) without downloading anything. A preset that lists no entries, or far fewer than
it expects, is warned about on standard error.

Examples:
    cref-bench build --out corpus.zarr --preset paper2023 --dry-run
    cref-bench build --out corpus.zarr --preset paper2023 --workers 8
    cref-bench build --out s3://bucket/corpus.zarr --ids ids.txt --scheduler tcp://head:8786
    cref-bench build --out corpus.zarr --ids ids.txt --mirror /data/emdb/structures --max-box 400
"""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path

from cref_bench.errors import InputError

HELP = "build the EMDB half-map corpus into a store (resumable, on dask)"

logger = logging.getLogger(__name__)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO date (YYYY-MM-DD): {text!r}") from None


def add_args(parser) -> None:
    """Register the command's arguments on ``parser``."""
    from dataset_builder.emdb.download import DEFAULT_EMDB_MIRRORS, EMDB_MIRRORS
    from dataset_builder.emdb.listing import DEFAULT_API, PRESETS

    parser.add_argument("--out", required=True,
                        help="the store: a local path or fsspec URL (created or completed)")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--preset", choices=sorted(PRESETS),
                        help="entries to list from the search API (default: paper2023); "
                             + "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()))
    chosen.add_argument("--ids", metavar="FILE",
                        help="a file of EMDB accessions, one per line ('#' comments)")
    parser.add_argument("--released-before", metavar="DATE", type=_date,
                        help="with a preset: only entries released before this ISO date")
    parser.add_argument("--api", default=DEFAULT_API, metavar="URL",
                        help=f"the EMDB API base (default {DEFAULT_API})")
    parser.add_argument("--mirror", action="append", metavar="URL",
                        help="an archive mirror, tried in the order given (repeatable): "
                             f"{', '.join(EMDB_MIRRORS)}, a base URL of "
                             "pub/.../emdb/structures, or a local folder laid out like it "
                             f"(default: {', '.join(DEFAULT_EMDB_MIRRORS)})")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="local dask workers (default 2)")
    parser.add_argument("--threads", action="store_true",
                        help="run the local workers as threads of this process instead of "
                             "processes")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="use an existing dask cluster (tcp://host:8786)")
    parser.add_argument("--max-box", type=int, metavar="N",
                        help="turn down entries with a box edge over N voxels")
    parser.add_argument("--keep-downloads", metavar="DIR",
                        help="download into DIR and keep the files (reused by later runs); by "
                             "default downloads go to your own cache folder "
                             "($XDG_CACHE_HOME/cref-bench/downloads, else "
                             "~/.cache/cref-bench/downloads) and are deleted entry by entry")
    parser.add_argument("--with-models", action="store_true",
                        help="also store the fitted models (mmCIF)")
    parser.add_argument("--limit", type=int, metavar="K",
                        help="build only the first K entries listed")
    parser.add_argument("--dry-run", action="store_true",
                        help="list and filter the entries and report the counts (and the sizes "
                             "headers found locally state) without downloading or writing "
                             "anything")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _mirror(text: str) -> str:
    """A mirror name or URL as given; an existing local folder as a ``file://`` URL."""
    from dataset_builder.emdb.download import EMDB_MIRRORS

    if text in EMDB_MIRRORS or "://" in text:
        return text
    folder = Path(text)
    if not folder.is_dir():
        raise InputError(f"--mirror {text!r}: neither a known mirror, a URL nor a folder")
    return folder.resolve().as_uri()


def main(args) -> int:
    """Run the build; returns the exit status."""
    from cref_bench.output_paths import check_output_folder
    from dataset_builder.emdb.build import BuildOptions, build, dry_run
    from dataset_builder.emdb.download import DEFAULT_EMDB_MIRRORS
    from dataset_builder.emdb.listing import PRESETS, list_entries

    for name in ("workers", "max_box", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    check_output_folder(args.out, "--out")
    check_output_folder(args.keep_downloads, "--keep-downloads")
    mirrors = tuple(_mirror(m) for m in args.mirror) if args.mirror else DEFAULT_EMDB_MIRRORS
    preset = None if args.ids else (args.preset or "paper2023")
    listing = list_entries(preset, id_file=args.ids, released_before=args.released_before,
                           api=args.api)
    for warning in listing.warnings():
        print(f"cref-bench: warning: {warning}", file=sys.stderr)
    entries = listing.entries
    source = f"by preset {preset}" if preset else f"in {args.ids}"
    if not entries and not args.dry_run:
        raise InputError(f"no entries listed {source}"
                         + (f" released before {args.released_before}"
                            if args.released_before else "") + "; nothing to build")
    print(listing.format())
    if args.limit is not None:
        entries = entries[:args.limit]
    kept = str(Path(args.keep_downloads).resolve()) if args.keep_downloads else None
    cutoff = PRESETS[preset].cutoff(args.released_before) if preset else None
    options = BuildOptions(mirrors=mirrors, download_dir=kept,
                           keep_downloads=args.keep_downloads is not None, max_box=args.max_box,
                           with_models=args.with_models, released_before=cutoff)
    if args.dry_run:
        print(dry_run(entries, args.out, options=options).format())
        return 0
    report = build(entries, args.out, options=options, workers=args.workers,
                   scheduler=args.scheduler, processes=not args.threads,
                   progress=not args.no_progress)
    print(report.format())
    return 1 if report.counts().get("failed") else 0
