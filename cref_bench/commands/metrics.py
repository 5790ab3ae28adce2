"""Compute every metric for one map, no corpus needed.

Reads the two half-maps and the denoised full map (and, where given, the denoised
half-maps, a mask, an atomic model, the noise-free truth and a reference map), and prints
the C_ref scores, resolutions, FSC-0.5 change and model-map FSC, unmasked and masked.
Metrics that cannot be computed are shown as "n/a" with the reason. --json writes the
scalars and notes (standard JSON: a missing value is null); --curves writes every curve
as a long CSV table. Maps on another grid than the first half-map, maps with one value
everywhere (all zero, say) or with NaN, and masks outside [0, 1] or without a voxel inside
are refused before anything is computed; so are output paths that cannot be written. The
same map given as both halves is warned about. A value that is a bound is shown with its
sign, as in the results tables: "< 3.000" where the FSC never falls below its threshold up
to Nyquist (3 Å), so the true resolution is finer.

Example:
    cref-bench metrics half1.mrc half2.mrc --denoised denoised.mrc --mask mask.mrc
"""

from __future__ import annotations

import json
import math
import warnings

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
    """The report as an aligned text table: one row per metric (with its unit), one column
    per masking; a value that is a bound shows its sign (``< 3.000``: the FSC never crosses
    up to Nyquist, so the true value is finer), as the results tables do; below it, why each
    value is missing or a bound."""
    from cref_bench.metrics.facts import metric_label
    from cref_bench.results.format import significant

    maskings = list(report.scalars)
    names = list(dict.fromkeys(k for m in maskings for k in report.scalars[m]))
    labels = {name: metric_label(name) for name in names}
    width = max(len("metric"), *(len(label) for label in labels.values()))
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{m:>10}" for m in maskings)]
    missing, bounded = {}, {}
    for name in names:
        cells = []
        for m in maskings:
            value = report.scalars[m].get(name)
            bound = report.bounds.get(m, {}).get(name, "")
            why = report.notes.get(m, {}).get(name, "")
            if value is None:
                missing.setdefault(why, []).append(f"{name} ({m})")
                cells.append(f"{'n/a':>10}")
            else:
                if bound:
                    bounded.setdefault(f"{bound} {why}", []).append(f"{name} ({m})")
                text = significant(value, 4)
                cells.append(f"{f'{bound} {text}' if bound else text:>10}")
        lines.append(f"{labels[name]:<{width}}  " + "  ".join(cells))
    for title, reasons in (("bounds (< x: the true value is lower; > x: higher)", bounded),
                           ("n/a", missing)):
        if reasons:
            lines += ["", f"{title}:"]
            lines += [f"  {reason}: {', '.join(which)}" for reason, which in reasons.items()]
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
    import numpy as np

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
    if np.array_equal(maps["half1"].data, maps["half2"].data):
        warnings.warn(f"{args.half1} and {args.half2} hold the same map: their FSC is 1 on "
                      "every shell, so C_ref is 1 everywhere and the scores say nothing; give "
                      "the two independently refined half-maps", stacklevel=1)
    report = evaluate(maps.pop("half1"), maps.pop("half2"), maps.pop("denoised"), **maps,
                      model=args.model, model_resolution=args.model_resolution)
    print(format_report(report))
    if args.json:
        content = json_ready({"scalars": report.scalars, "notes": report.notes})
        write_text(args.json, json.dumps(content, indent=2, allow_nan=False))
    if args.curves:
        write_text(args.curves, report.curves.to_csv(index=False))
    return 0
