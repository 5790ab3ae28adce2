"""Scoring one entry, and what the scores depend on: the one place a run and a re-score agree.

:func:`score_entry` turns an entry's maps and a method's checked output into the fields of
an ``ok`` entry record (:func:`cref_bench.metrics.scores.evaluate`, unmasked and masked).
:func:`scoring_facts` names what the numbers depend on besides the method and the corpus:
cref-bench's version and :func:`scoring_digest`, a digest of the scoring code (the metrics
and map packages, this module, and :mod:`cref_bench.run.single_map`, which decides what a
held-out score is computed from); both are part of the runner's resume key, so that a
change to the metric code recomputes instead of reusing old scores, and ``cref-bench check
--recompute`` re-scores kept outputs with :func:`score_entry`.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

from cref_bench.errors import CrefBenchError
from cref_bench.methods.code import code_digest
from cref_bench.methods.protocol import Denoised
from cref_bench.metrics.scores import DenoisedMaps, evaluate
from cref_bench.results.folder import ResultsFolder, curves_to_columns

_PACKAGE = Path(__file__).resolve().parents[1]

SCORING_CODE = ("metrics", "maps", "run/scoring.py", "run/single_map.py")
"""The paths (in the ``cref_bench`` package) of the code that computes the scores and makes
the maps the held-out scores are computed from."""


@functools.cache
def scoring_digest() -> str:
    """The SHA-256 of every file of :data:`SCORING_CODE` (computed once per process)."""
    return code_digest([_PACKAGE / part for part in SCORING_CODE])


def scoring_facts() -> dict:
    """``{"cref_bench_version": ..., "scoring_digest": ...}``: the resume key's part that
    names the scoring code."""
    from cref_bench import __version__

    return {"cref_bench_version": __version__, "scoring_digest": scoring_digest()}


def score_entry(maps: dict, denoised: Denoised, heldout_note: str = "") -> dict:
    """The scores of one entry.

    Args:
        maps: the entry's ``half1``, ``half2``, ``mask``, ``truth``, ``reference`` (Volumes
            or None) and ``model`` (a ``gemmi.Structure`` or None).
        denoised: the method's checked output.
        heldout_note: empty where the denoised halves were held out (each made from one
            noisy half alone, by the runner's own calls), else why not (their held-out scores
            are then not applicable).

    Returns:
        The fields of an ``ok`` record: ``status``, ``box``, ``scalars``, ``notes``,
        ``bounds``, ``curves`` (column lists).

    Raises:
        Exception: whatever the metrics raise (the runner records it as kind ``metrics``).
    """
    held = {} if heldout_note else {"heldout1": denoised.half1, "heldout2": denoised.half2}
    made = DenoisedMaps(denoised.full, half1=denoised.half1, half2=denoised.half2,
                        note=denoised.note, heldout_note=heldout_note, **held)
    report = evaluate(maps["half1"], maps["half2"], made, mask=maps["mask"], model=maps["model"],
                      truth=maps["truth"], reference=maps["reference"])
    return {"status": "ok", "box": "x".join(map(str, maps["half1"].shape)),
            "scalars": report.scalars, "notes": report.notes,
            "bounds": report.bounds, "curves": curves_to_columns(report.curves)}


def heldout_note_of(record: dict) -> str:
    """The held-out note a record was scored with (empty where its halves were held out)."""
    for notes in (record.get("notes") or {}).values():
        if "heldout_corr" in notes and notes["heldout_corr"].startswith("not applicable"):
            return notes["heldout_corr"]
    return ""


RELATIVE_TOLERANCE = 1e-6
"""How far a re-scored value may stray from the recorded one (relative) and still agree."""


def first_model(entry):
    """The entry's first fitted model as a ``gemmi.Structure``, or None when it has none.

    Args:
        entry: a :class:`cref_bench.corpus.reader.Entry`.
    """
    if not entry.model_names:
        return None
    import gemmi

    block = gemmi.cif.read_string(entry.model(entry.model_names[0])).sole_block()
    return gemmi.make_structure_from_block(block)


def read_entry(entry) -> dict:
    """Everything of an entry that scoring uses: its maps (``None`` where absent, each
    checked against the store's digests) and its first model.

    Args:
        entry: a :class:`cref_bench.corpus.reader.Entry`.

    Returns:
        ``{"half1", "half2", "mask", "truth", "reference", "model"}``.

    Raises:
        CorpusError: a map differs from its recorded digest.
    """
    return {**entry.maps(), "model": first_model(entry)}


def _differences(recorded: dict, fresh: dict) -> list[str]:
    found = []
    for masking in sorted(set(recorded) | set(fresh)):
        old, new = recorded.get(masking, {}), fresh.get(masking, {})
        for metric in sorted(set(old) | set(new)):
            a, b = old.get(metric), new.get(metric)
            a = None if a is None or (isinstance(a, float) and not math.isfinite(a)) else a
            b = None if b is None or (isinstance(b, float) and not math.isfinite(b)) else b
            if a is None and b is None:
                continue
            if a is None or b is None or not math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE,
                                                          abs_tol=1e-12):
                found.append(f"{metric} ({masking}) recorded {a}, re-scored {b}")
    return found


def recompute(folder: str | os.PathLike, corpus) -> list[str]:
    """Re-score every ``ok`` record of a results folder from its kept outputs.

    Args:
        folder: the results folder (with ``outputs/``, see
            :mod:`cref_bench.results.outputs`).
        corpus: the opened corpus the results are of.

    Returns:
        One message per record that differs from its re-score (naming the entry and the
        metrics) or cannot be re-scored (no kept output, a changed one); empty when every
        record agrees.
    """
    folder = ResultsFolder(folder)
    faults = []
    for entry_id, record in folder.records()[0].items():
        if record.get("status") != "ok":
            continue
        try:
            denoised = folder.kept_outputs(entry_id, record.get("outputs") or {})
            fresh = score_entry(read_entry(corpus.entry(entry_id)), denoised,
                                heldout_note_of(record))
        except CrefBenchError as exc:
            faults.append(f"entry {entry_id}: cannot be re-scored: {exc}")
            continue
        differ = _differences(record.get("scalars", {}), fresh["scalars"])
        if differ:
            shown = "; ".join(differ[:3]) + (f"; and {len(differ) - 3} more"
                                             if len(differ) > 3 else "")
            faults.append(f"entry {entry_id}: the record differs from its re-score: {shown}")
    return faults
