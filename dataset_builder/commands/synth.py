"""Write a corpus with known truth into a store: phantoms (the default) or simulated
reconstructions.

Phantoms (--kind phantom; SYN-0001, ...): two half-maps whose FSC crosses 0.143 at a
resolution drawn for the entry, the noise-free truth, a soft mask and the atomic model. Box,
voxel size and resolution are drawn per entry from the ranges given.

Simulated reconstructions (--kind reconstruction; SIM-0001, ...): half-maps reconstructed
from two disjoint sets of simulated particles (CTF, noise, preferred views, flexible
domains), the truth, a mask, a higher-resolution reference map and the model. Entry k takes
the presets in turn (rigid-2.5A, rigid-3.5A, flexible-4.5A, preferred-4.5A,
flexible-preferred-7A, low-8A: 2.5-8 Å, boxes 96-256), or the one --preset names; --set
changes a setting of every entry (e.g. --set particles=2000 --set box=64). --specimen
simulates your own structure: a map (its box and voxel size; rigid) or an atomic model
(PDB/mmCIF; give --set box and --set voxel_size). The half-maps are regularised as RELION's
refinement regularises them (from the FSC of the unregularised halves; --set
regulariser=oracle|none for the others) and solvent-flattened outside the reconstruction
sphere. Settings in RELION's terms: noise_sigma (white noise per pixel, in the units of the
specimen's projection, as relion_project's white-noise option; else snr), particles (per half),
voltage_kv, cs_mm, amplitude_contrast, defocus_um, envelope_b.

Either kind is deterministic: the same command writes bit-identical maps (from --seed and
the entry number). Running it again on the same store completes what is missing (an
interrupted run resumes) or appends entries; a store written with another seed, kind or
settings is refused. Entries that fail are recorded in the manifest (exit status 1).

Examples:
    cref-bench synth --out demo.zarr --entries 12
    cref-bench synth --out phantoms.zarr --entries 500 --seed 3 --workers 4 --box-range 96 192
    cref-bench synth --kind reconstruction --out sim.zarr --entries 30
    cref-bench synth --kind reconstruction --preset flexible-4.5A --set particles=5000 \\
        --out flexible.zarr --entries 10
    cref-bench synth --kind reconstruction --specimen emd_1234.map --set noise_sigma=3 \
        --out mine.zarr --entries 6
    cref-bench synth --kind reconstruction --specimen 3j5p.cif --set box=128 \
        --set voxel_size=1.2 --out model.zarr --entries 6
"""

from __future__ import annotations

import json

from cref_bench.errors import InputError

HELP = "write a corpus with known truth (phantoms or simulated reconstructions) into a store"

PHANTOM_RANGES = {"box_range": (64, 96), "voxel_range": (0.8, 2.0),
                  "resolution_range": (2.0, 8.0)}
"""The phantom-only range options and their defaults."""


def add_args(parser) -> None:
    """Register the command's arguments on ``parser``."""
    parser.add_argument("--out", required=True, help="the store: a local path or fsspec URL")
    parser.add_argument("--entries", type=int, required=True, metavar="N", help="number of entries")
    parser.add_argument("--kind", choices=("phantom", "reconstruction"), default="phantom",
                        help="phantoms (default: fast, designed FSC) or simulated "
                             "reconstructions (particles, CTF, views, flexibility)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="corpus seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, metavar="W",
                        help="parallel processes (default 1)")
    parser.add_argument("--box-range", type=int, nargs=2, default=None, metavar=("LO", "HI"),
                        help="phantoms: box edge range in voxels (default 64 96)")
    parser.add_argument("--voxel-range", type=float, nargs=2, default=None,
                        metavar=("LO", "HI"), help="phantoms: voxel size range in Å "
                                                   "(default 0.8 2.0)")
    parser.add_argument("--resolution-range", type=float, nargs=2, default=None,
                        metavar=("LO", "HI"), help="phantoms: FSC 0.143 resolution range in Å "
                                                   "(default 2 8)")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help="reconstructions: one preset for every entry (default: all in "
                             "turn)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        dest="overrides", help="reconstructions: a simulation setting of every "
                                               "entry (repeatable; VALUE read as JSON if it "
                                               "parses)")
    parser.add_argument("--specimen", default=None, metavar="FILE",
                        help="reconstructions: your own specimen, a map (MRC/CCP4: its box "
                             "and voxel size are used; rigid) or an atomic model (PDB/mmCIF, "
                             "with --set box=N --set voxel_size=A)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _complete(location: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` are complete entries of the store (none when there is no store)."""
    from cref_bench.corpus.layout import list_complete_entries
    from cref_bench.errors import CorpusError
    from dataset_builder.store import Store

    try:
        return set(list_complete_entries(Store(location).root("r"))) & set(ids)
    except CorpusError:
        return set()


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        field, sep, text = pair.partition("=")
        if not sep or not field:
            raise InputError(f"--set {pair!r}: expected FIELD=VALUE")
        try:
            out[field] = json.loads(text)
        except json.JSONDecodeError:
            out[field] = text
    return out


def main(args) -> int:
    """Write the corpus; returns the exit status."""
    from cref_bench.corpus.splits import SPLITS
    from cref_bench.output_paths import check_output_folder
    from dataset_builder.store import Store

    check_output_folder(args.out, "--out")
    if args.kind == "phantom":
        if args.preset is not None or args.overrides or args.specimen is not None:
            raise InputError("--preset, --set and --specimen apply to --kind reconstruction "
                             "only")
        from dataset_builder.synthetic import phantom_id, write_phantom_corpus

        ids = [phantom_id(k) for k in range(max(args.entries, 0))]
        before = _complete(str(args.out), ids)
        ranges = {name: tuple(getattr(args, name) or default)
                  for name, default in PHANTOM_RANGES.items()}
        location = write_phantom_corpus(
            args.out, args.entries, seed=args.seed, boxes=ranges["box_range"],
            voxel_sizes=ranges["voxel_range"], resolutions=ranges["resolution_range"],
            workers=args.workers, progress=not args.no_progress)
    else:
        given = [f"--{name.replace('_', '-')}" for name in PHANTOM_RANGES
                 if getattr(args, name) is not None]
        if given:
            raise InputError(f"{', '.join(given)}: phantom options (--kind phantom); set a "
                             f"reconstruction's box with --set box=N")
        from dataset_builder.simulation.corpus import (
            ID_PREFIX,
            specimen_overrides,
            write_reconstruction_corpus,
        )

        overrides = _overrides(args.overrides)
        if args.specimen is not None:
            overrides = specimen_overrides(args.specimen, overrides)
        ids = [f"{ID_PREFIX}-{k + 1:04d}" for k in range(max(args.entries, 0))]
        before = _complete(str(args.out), ids)
        location = write_reconstruction_corpus(
            args.out, args.entries, seed=args.seed, preset=args.preset,
            overrides=overrides, workers=args.workers,
            progress=not args.no_progress)
    after = _complete(location, ids)
    attrs = Store(location).attrs
    total = sum(attrs.get("counts", {}).get(split, 0) for split in SPLITS)
    failed = len(ids) - len(after)
    print(f"{location}: {len(after - before)} entries written now, {len(before)} already "
          f"there, {failed} failed, of the {len(ids)} asked for; the store holds {total} "
          f"entries; content hash {attrs.get('content_hash')}")
    return 1 if failed else 0
