"""Compute every metric for one map, no corpus needed.

Reads the two half-maps and the denoised full map (and, where given, the denoised
half-maps, a mask, an atomic model, the noise-free truth and a reference map), and prints
the C_ref scores, resolutions, FSC-0.5 change and model-map FSC, unmasked and masked.
Metrics that cannot be computed are shown as "n/a" with the reason. --json writes the
scalars and notes (standard JSON: a missing value is null); --curves writes every curve
as a long CSV table. Maps on another grid than the first half-map, maps with one value
everywhere (all zero, say) or with NaN, and masks outside [0, 1] or without a voxel inside
are refused before anything is computed; so are output paths that cannot be written.

Example:
    cref-bench metrics half1.mrc half2.mrc --denoised denoised.mrc --mask mask.mrc
"""

from __future__ import annotations

import json
import math

HELP = "compute every metric for one half-map pair and its denoised map(s)"


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    parser.add_argument("half1", help="first half-map (MRC/CCP4, gzip allowed)")
    parser.add_argument("half2", help="second half-map")
    parser.add_argument("--denoised", required=True,
                        help="the denoised full map D((M1 + M2) / 2)")
    parser.add_argument("--denoised-half1", help="the first half-map, denoised")
    parser.add_argument("--denoised-half2", help="the second half-map, denoised")
    parser.add_argument("--mask", help="mask applied to every map for the masked metrics")
    parser.add_argument("--model", help="atomic model (PDB or mmCIF) for the model-map FSC")
    parser.add_argument("--model-resolution", type=float,
                        help="d_min of the model map in Å (default: twice the voxel size)")
    parser.add_argument("--truth", help="the noise-free map, where known")
    parser.add_argument("--reference", help="a reference map, e.g. a higher-resolution map")
    parser.add_argument("--json", metavar="OUT",
                        help="write scalars and notes to this JSON file")
    parser.add_argument("--curves", metavar="CSV", help="write every curve to this CSV file")


def format_report(report) -> str:
    """The report as an aligned text table: one row per metric, one column per masking."""
    maskings = list(report.scalars)
    names = list(dict.fromkeys(k for m in maskings for k in report.scalars[m]))
    width = max(len(n) for n in names)
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{m:>10}" for m in maskings)]
    reasons = {}
    for name in names:
        cells = []
        for m in maskings:
            value = report.scalars[m].get(name)
            if value is None:
                reasons.setdefault(report.notes[m].get(name, ""), []).append(f"{name} ({m})")
                cells.append(f"{'n/a':>10}")
            else:
                cells.append(f"{value:>10.4g}")
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    if reasons:
        lines.append("")
        lines.append("n/a:")
        for reason, which in reasons.items():
            lines.append(f"  {reason}: {', '.join(which)}")
    return "\n".join(lines)


def check_inputs(maps: dict) -> None:
    """Refuse maps the metrics cannot use, before any is computed.

    Args:
        maps: ``{role: Volume or None}``, ``half1`` among them.

    Raises:
        GeometryMismatch: a map is not on the grid of the first half-map.
        BadMask: a mask outside ``[0, 1]`` or empty.
        ConstantMap, NonFiniteMap: a map with one value everywhere, or with NaN or inf.
    """
    from cref_bench.maps.checks import check_mask, check_varying

    for role, volume in maps.items():
        if volume is None:
            continue
        if role != "half1":
            maps["half1"].check_same_grid(volume)
        (check_mask if role == "mask" else check_varying)(volume)


def json_ready(value):
    """``value`` with every non-finite float replaced by ``None`` (JSON's null), in nested
    dicts and lists; numpy numbers become Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.atomic import write_text
    from cref_bench.maps.io import read_map
    from cref_bench.metrics.scores import evaluate
    from cref_bench.output_paths import check_output_file

    check_output_file(args.json, "--json")
    check_output_file(args.curves, "--curves")

    def load(path):
        return None if path is None else read_map(path)

    maps = {"half1": load(args.half1), "half2": load(args.half2),
            "denoised": load(args.denoised), "denoised_half1": load(args.denoised_half1),
            "denoised_half2": load(args.denoised_half2), "mask": load(args.mask),
            "truth": load(args.truth), "reference": load(args.reference)}
    check_inputs(maps)
    report = evaluate(maps.pop("half1"), maps.pop("half2"), maps.pop("denoised"), **maps,
                      model=args.model, model_resolution=args.model_resolution)
    print(format_report(report))
    if args.json:
        content = json_ready({"scalars": report.scalars, "notes": report.notes})
        write_text(args.json, json.dumps(content, indent=2, allow_nan=False))
    if args.curves:
        write_text(args.curves, report.curves.to_csv(index=False))
    return 0
