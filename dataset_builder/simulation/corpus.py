"""A corpus of simulated reconstructions: :func:`write_reconstruction_corpus`.

Entry ``SIM-0001``, ``SIM-0002``, ... (index ``k`` from 0) is
``simulate_entry(settings_k, seed_k)`` (:func:`entry_job`):

* ``settings_k``: the preset ``PRESET_CYCLE[k mod 6]`` (presets cycled in the order of
  :data:`.settings.PRESETS`, from the sharpest to the blurriest: any six consecutive entries
  hold one of each, and the counts of a corpus differ by one at most), or the one preset
  asked for; then the overrides (any :class:`.SimulationSettings` field but ``name``),
  applied to every entry;
* ``seed_k``: drawn from ``(corpus seed, k)``.

Each entry stores the half-maps, the truth, the mask, the reference map and the model
(``models/model``, mmCIF, in the maps' frame: the runner's model-map FSC uses it) through
:func:`dataset_builder.store.write_entry`; its metadata is the simulation's record (every
setting, the seed, the model, the particle counts, the versions, the half-map resolution,
...) plus ``preset``, ``corpus_seed`` and ``corpus_index``. The store's root attribute
``simulation`` records the recipe (kind, simulation version, corpus seed, preset choice and
every preset's settings after the overrides); a rerun on the same store resumes (complete
entries are kept, missing ones written, more entries appended) and is refused when its
recipe differs from the recorded one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import fields
from pathlib import Path

import numba
import numpy as np

from cref_bench.corpus.layout import list_complete_entries
from cref_bench.errors import CorpusError, InputError
from dataset_builder import store
from dataset_builder.corpus_writer import open_known_truth_store, write_entries
from dataset_builder.simulation.entry import SIMULATION_VERSION, simulate_entry
from dataset_builder.simulation.settings import PRESETS, SimulationSettings

logger = logging.getLogger(__name__)

PRESET_CYCLE = tuple(PRESETS)
"""The order presets are cycled in (that of :data:`.settings.PRESETS`)."""
PATCH_SIZE = 96
"""Largest patch edge of a new store's patch index (the crefDenoiser patches)."""
RECIPE_ATTRIBUTE = "simulation"
"""The store's root attribute holding the corpus recipe."""
ID_PREFIX = "SIM"
OPTIONAL_NUMBERS = ("noise_sigma",)
"""Settings that are a number or null."""


def _setting_fields() -> dict[str, object]:
    return {f.name: f.default for f in fields(SimulationSettings) if f.name != "name"}


def _coerce(name: str, value, default):
    """``value`` as the type of the setting's default, or an InputError naming the setting."""
    def bad(need: str):
        return InputError(f"simulation setting {name}={value!r}: {need}")

    if name in OPTIONAL_NUMBERS:
        if value is None:
            return None
        default = 0.0
    elif default is None or isinstance(default, str):
        if value is None and default is None:
            return None
        if not isinstance(value, str):
            raise bad("it must be text" + (" (or null)" if default is None else ""))
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("it must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise bad("it must be an integer")
        return int(value)
    if isinstance(default, float):
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise bad("it must be a number") from None
    if isinstance(default, tuple):
        try:
            out = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            out = ()
        if len(out) != len(default):
            raise bad(f"it must be a list of {len(default)} numbers")
        return out
    raise bad("it cannot be set")   # no other field types exist


def corpus_settings(preset: str | None = None,
                    overrides: dict | None = None) -> list[SimulationSettings]:
    """The settings the corpus's entries cycle through.

    Args:
        preset: one preset name for every entry, or None for all presets in turn.
        overrides: ``{field: value}`` applied to every preset (values are coerced to the
            field's type: an integer, a number, true/false, text, a pair of numbers).

    Returns:
        The settings, in cycle order (a single one with ``preset``).

    Raises:
        InputError: an unknown preset or field, or a value the settings refuse.
    """
    if preset is not None and preset not in PRESETS:
        raise InputError(f"no simulation preset named {preset!r}; the presets are "
                         f"{', '.join(PRESETS)}")
    known = _setting_fields()
    changes = {}
    for name, value in (overrides or {}).items():
        if name not in known:
            raise InputError(f"no simulation setting named {name!r}; the settings are "
                             f"{', '.join(known)}")
        changes[name] = _coerce(name, value, known[name])
    chosen = [PRESETS[preset]] if preset is not None else [PRESETS[n] for n in PRESET_CYCLE]
    try:
        return [settings.with_(**changes) for settings in chosen]
    except ValueError as error:
        raise InputError(str(error)) from error


MODEL_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".ent.gz", ".cif.gz",
                  ".mmcif.gz")
"""File names that ``--specimen`` reads as an atomic model (anything else: a map)."""


def specimen_overrides(path: str | Path, overrides: dict | None = None) -> dict:
    """The settings a user's own specimen sets, added to ``overrides``.

    A map (MRC/CCP4) becomes ``specimen``, its edge ``box`` and its voxel size ``voxel_size``
    (given ones must agree), and the flexible domains are switched off (a map is rigid). An
    atomic model (PDB or mmCIF, by its name) becomes ``model``; ``box`` and ``voxel_size``
    must then be given.

    Args:
        path: the map or model file.
        overrides: the other ``--set`` overrides.

    Returns:
        The overrides with the specimen's.

    Raises:
        InputError: a missing file, a map that is not cubic, or settings that disagree.
    """
    from cref_bench.maps.io import MapError, read_header

    out = dict(overrides or {})
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--specimen {path}: no such file")
    location = str(path.resolve())
    if path.name.lower().endswith(MODEL_SUFFIXES):
        missing = [name for name in ("box", "voxel_size") if name not in out]
        if missing:
            raise InputError(f"--specimen {path}: an atomic model; give the box with "
                             f"{' and '.join(f'--set {m}=...' for m in missing)}")
        out["model"] = location
        return out
    try:
        header = read_header(path)
    except MapError as error:
        raise InputError(f"--specimen {path}: {error}") from error
    shape, size = tuple(header.shape), tuple(float(v) for v in header.voxel_size)
    if len(set(shape)) != 1 or not np.allclose(size, size[0], rtol=1e-4):
        raise InputError(f"--specimen {path}: a {shape[::-1]} map of {size[::-1]} Å voxels "
                         f"(x, y, z); a specimen map must be cubic with cubic voxels")
    for name, value in (("box", shape[0]), ("voxel_size", size[0])):
        given = out.get(name)
        if given is not None and not np.isclose(float(given), value, rtol=1e-3):
            raise InputError(f"--specimen {path}: the map has {name} {value:g}, --set gives "
                             f"{given}; leave {name} to the map")
        out[name] = value
    out.update(specimen=location, flexible_fraction=0.0, flexible_selection=None)
    return out


def entry_job(seed: int, index: int, cycle: list[SimulationSettings]
              ) -> tuple[str, SimulationSettings, int]:
    """Entry ``index`` of a corpus: ``(id, settings, entry seed)``.

    Args:
        seed: the corpus seed (non-negative integer).
        index: the entry index, from 0.
        cycle: the settings cycled through (:func:`corpus_settings`).

    Returns:
        The entry's id (``SIM-0001`` for index 0), settings and simulation seed.
    """
    entry_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    return f"{ID_PREFIX}-{index + 1:04d}", cycle[index % len(cycle)], entry_seed


def _recipe(seed: int, preset: str | None, cycle: list[SimulationSettings]) -> dict:
    return {"kind": "reconstruction", "simulation_version": SIMULATION_VERSION,
            "seed": int(seed), "presets": preset or "cycle",
            "settings": {s.name: s.as_dict() for s in cycle}}


def _differences(recorded: dict, wanted: dict) -> list[str]:
    """How two recipes differ, one line per field (a setting's change listed once, with the
    presets it concerns)."""
    lines = [f"{key}: {recorded.get(key)!r} recorded, {wanted.get(key)!r} now"
             for key in sorted(set(recorded) | set(wanted))
             if key != "settings" and recorded.get(key) != wanted.get(key)]
    old, new = recorded.get("settings") or {}, wanted.get("settings") or {}
    if set(old) != set(new):
        lines.append(f"presets: {sorted(old)} recorded, {sorted(new)} now")
    changes: dict[str, list[str]] = {}
    for preset in sorted(set(old) & set(new)):
        for key in sorted(set(old[preset]) | set(new[preset])):
            before, after = old[preset].get(key), new[preset].get(key)
            if before != after:
                changes.setdefault(f"{key}: {before!r} recorded, {after!r} now", []).append(preset)
    lines += [f"{change} ({', '.join(presets)})" for change, presets in changes.items()]
    return lines


def _open_corpus_store(out, recipe: dict, patch_size: int) -> store.Store:
    """The store at ``out``, created if absent, with this recipe; refuses anything else."""
    handle = open_known_truth_store(out, f"simulated reconstructions v{SIMULATION_VERSION}",
                                    patch_size)
    location, root = handle.location, handle.root()
    recorded = root.attrs.get(RECIPE_ATTRIBUTE)
    if recorded is None:
        if list_complete_entries(root):
            raise CorpusError(location, "holds simulated entries but no record of the "
                              "settings they were written with; choose another output")
        root.attrs[RECIPE_ATTRIBUTE] = recipe
    elif recorded != recipe:
        lines = _differences(recorded, recipe)
        shown = "; ".join(lines[:6]) + (f"; and {len(lines) - 6} more" if len(lines) > 6 else "")
        raise CorpusError(location, f"was written with other simulation settings ({shown}); "
                          f"rerun with the recorded ones or choose another output")
    return handle


def _limit_threads(threads: int) -> None:
    numba.set_num_threads(threads)


def _write_one(location: str, entry_id: str, settings: SimulationSettings, seed: int,
               extra: dict) -> str | None:
    """Simulate and store one entry, or record why not; returns the error text or None."""
    try:
        entry = simulate_entry(settings, seed)
        store.write_entry(location, entry_id, half1=entry.half1, half2=entry.half2,
                          mask=entry.mask, truth=entry.truth, reference=entry.reference,
                          models={"model": entry.model} if entry.model is not None else None,
                          metadata={**entry.metadata, **extra})
        return None
    except Exception as error:  # recorded per entry; the build carries on
        store.record_rejection(location, entry_id, error,
                               {**extra, "source": "simulated", "seed": seed,
                                "settings": settings.as_dict()}, status="failed")
        return f"{type(error).__name__}: {error}"


def write_reconstruction_corpus(out, entries: int, *, seed: int = 0, preset: str | None = None,
                                overrides: dict | None = None, workers: int = 1,
                                progress: bool = True) -> str:
    """Write ``entries`` simulated reconstructions into a corpus store (module docstring).

    Resumable: complete entries are skipped, so a killed run continues where it stopped;
    an entry that fails is recorded as failed in the manifest and the others go on. The
    store is finalised at the end. With several workers each process simulates one entry
    at a time on ``cores // workers`` threads; the maps do not depend on it.

    Args:
        out: the store, a local path or fsspec URL: absent, an empty folder, or a store
            written by an earlier call with the same seed, preset and overrides.
        entries: number of entries (at least 1).
        seed: the corpus seed (non-negative integer).
        preset: one preset for every entry (None: the presets in turn).
        overrides: ``{setting: value}`` applied to every entry (e.g. smaller boxes).
        workers: parallel processes (1: in this process).
        progress: show a progress bar.

    Returns:
        The store location.

    Raises:
        InputError: bad counts, seed, preset or overrides.
        CorpusError: ``out`` exists and is not such a store, or was written with another
            recipe.
    """
    for name, value, least in (("entries", entries, 1), ("workers", workers, 1),
                               ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise InputError(f"{name} must be an integer >= {least}, got {value!r}")
    cycle = corpus_settings(preset, overrides)
    patch = min(PATCH_SIZE, min(s.box for s in cycle))
    handle = _open_corpus_store(out, _recipe(seed, preset, cycle), patch)
    jobs = []
    for k in range(entries):
        entry_id, settings, entry_seed = entry_job(seed, k, cycle)
        if not handle.is_complete(entry_id):
            extra = {"preset": settings.name, "corpus_seed": int(seed), "corpus_index": k}
            jobs.append((entry_id, settings, entry_seed, extra))
    threads = max(1, (os.cpu_count() or 1) // workers)
    write_entries(handle, jobs, _write_one, total=entries, desc="reconstructions",
                  workers=workers, progress=progress, initializer=_limit_threads,
                  initargs=(threads,))
    return handle.location


__all__ = ["MODEL_SUFFIXES", "PRESET_CYCLE", "corpus_settings", "entry_job",
           "specimen_overrides", "write_reconstruction_corpus"]
