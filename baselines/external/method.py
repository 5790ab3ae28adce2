"""The ``external`` method: any program that reads and writes MRC maps, as a method.

A command template says how to run the program; :class:`External` fills it in for each entry
and reads back what the program wrote. For each entry it

1. makes a private temporary folder (below the method process's scratch folder, which the
   runner removes even after killing the process, see :data:`cref_bench.run.isolation.SCRATCH_ENV`)
   and writes there, with :mod:`cref_bench.maps.io`, copies of the maps the command names
   (``half1.mrc``, ``half2.mrc``, ``mask.mrc``, ``average.mrc``): the program may change or
   delete them without harm;
2. runs the command with ``/bin/sh`` in a working folder of its own (``{workdir}``, also its
   current folder), its standard output and error passed line by line to the method
   process's standard error, which the runner keeps under ``<results>/logs/``; the last
   lines are kept for the failure message (:mod:`baselines.external.program`). The program
   stays in the method process's process group, so the runner's per-entry timeout and memory
   limit reach it and everything it started;
3. reads the output map(s) back; a map on another grid that spans the same box (an
   upsampled or resampled output) is brought onto the input grid by Fourier cropping or
   padding (:mod:`baselines.external.outputs`), with a note.

A non-zero exit, a missing or unreadable output, or an output spanning another box raises
:class:`~baselines.external.program.ProgramFailed` with the program's last lines (the runner
records it as the method's failure). Pair programs run once per entry on the half-maps
(``output`` the full map, optionally ``half1_output``/``half2_output`` the denoised halves, or
only those two and the full map is their mean); ``per_map=true`` runs a single-map program on
the average and on each half (``{map}``). Placeholders: :data:`PLACEHOLDERS`, plus any of the
recipe's ``[params]`` (see :mod:`baselines.external.recipes`) or given as ``--param``. A list
value is expanded into several words. Every value is shell-quoted
(:mod:`baselines.external.template`).

What identifies the program -- the output of ``version_command`` and the SHA-256 of the
files named by ``program`` (by default the command's first word, and the script when that
word is an interpreter, :mod:`baselines.external.identity`) -- is part of
:meth:`External.params`, with the command, the settings and the recipe's whole text, and so
of the runner's resume key.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from baselines.external.identity import file_sha256, locate, program_words, version_text
from baselines.external.outputs import GRID_RTOL, read_output
from baselines.external.program import default_threads, environment, run_program
from baselines.external.recipes import SETTING_KEYS, Recipe, find_recipe, read_recipe
from baselines.external.template import Unknown, check_value, fields, render
from cref_bench.errors import MapError, MethodError
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import Denoised, Method, average_halves
from cref_bench.run.isolation import SCRATCH_ENV

PLACEHOLDERS = {
    "half1": "the first half-map (a copy, MRC)",
    "half2": "the second half-map (a copy, MRC)",
    "mask": "the mask (a copy, MRC; values in [0, 1])",
    "average": "the average of the halves, (half1 + half2) / 2 (a copy, MRC)",
    "map": "with per_map=true: the map of this run (the average, then each half)",
    "voxel_size": "the voxel size in Å (one number: the voxels must be cubic)",
    "resolution": "Å where the half-map FSC (masked when there is a mask) falls below 0.143",
    "workdir": "the program's private working folder, also its current folder",
    "threads": "the threads it may use (the threads parameter; default: the CPUs available)",
    "cwd": "the folder cref-bench was started in (for files of your own given by relative path)",
}
"""The placeholders the adapter fills in, and what each becomes."""


class External(Method):
    """Any program that reads and writes MRC maps, as a method (see the module docstring).

    Settings default to those of the recipe (when one is named), then to the defaults below.

    Args:
        command: the shell command template (:data:`PLACEHOLDERS`, plus the recipe's and any
            other given parameters).
        output: where the program writes the denoised full map (a template; relative to
            ``{workdir}``).
        half1_output, half2_output: where it writes the denoised half-maps (pair programs;
            both or neither). With these and no ``output``, the full map is their mean.
        per_map: the program denoises one map: run it on the average (``{map}``), then on
            each half.
        denoise_halves: with ``per_map``, run it on the halves too (default true), so that the
            half-map metrics can be computed.
        threads: the ``{threads}`` value and the program's ``OMP_NUM_THREADS`` (default: the
            CPUs available).
        env: environment variables for the program (values are templates).
        program: the file(s) whose SHA-256 identifies the program (templates; a bare name is
            looked up on PATH); default: the command's first word, and its script when that
            word is an interpreter.
        version_command: a command whose output identifies the program's version
            (``relion_postprocess --version``); it must print the same text on every call.
        needs_gpu: the program is impractical without a GPU.
        recipe: a recipe name (or a ``.toml`` path) supplying the settings (see
            :mod:`baselines.external.recipes`).
        recipes: a folder searched for recipes first.
        name: the method's name in the results (default: the recipe's name, else
            ``external``).
        **values: the values of further placeholders (declared in the recipe's ``[params]``,
            or used by the templates).

    Raises:
        MethodError: no command, a recipe that cannot be found or read, an unknown
            parameter or placeholder, settings that do not fit together.
        UnavailableError: the program is not installed (not found, or its version command
            fails); the message says how to install it, where the recipe says.
        ValueError: a setting of the wrong type.
    """

    name = "external"
    version = "1"

    def __init__(self, command: str | None = None, output: str | None = None,
                 half1_output: str | None = None, half2_output: str | None = None,
                 per_map: bool | None = None, denoise_halves: bool | None = None,
                 threads: int | None = None, env: dict | None = None,
                 program: str | list | None = None, version_command: str | None = None,
                 needs_gpu: bool | None = None, recipe: str | None = None,
                 recipes: str | None = None, name: str | None = None, **values):
        if recipes is not None and recipe is None:
            raise MethodError("external", "recipes is a folder searched for the recipe: give "
                                          "recipe=NAME (or --method recipe:NAME) with it")
        self.recipe: Recipe | None = read_recipe(find_recipe(recipe, recipes)) if recipe else None
        given = {"command": command, "output": output, "half1_output": half1_output,
                 "half2_output": half2_output, "per_map": per_map,
                 "denoise_halves": denoise_halves, "env": env, "program": program,
                 "version_command": version_command, "needs_gpu": needs_gpu}
        settings = {"per_map": False, "denoise_halves": True, "env": {}, "needs_gpu": False,
                    **(self.recipe.settings if self.recipe else {}),
                    **{k: v for k, v in given.items() if v is not None}}
        self._check_types(settings)
        self.command: str = settings.get("command") or ""
        if not self.command.strip():
            raise MethodError("external", "needs a command (--param command='prog {half1} ...')"
                                          " or a recipe (--method recipe:NAME); "
                                          "`cref-bench recipes` lists the recipes")
        self.output = settings.get("output")
        self.half1_output = settings.get("half1_output")
        self.half2_output = settings.get("half2_output")
        self.per_map, self.denoise_halves = settings["per_map"], settings["denoise_halves"]
        self.env = {str(k): str(v) for k, v in settings["env"].items()}
        self.needs_gpu = settings["needs_gpu"]
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
        self.threads = threads
        if name is not None:
            self.name = str(name)
        elif self.recipe is not None:
            self.name = self.recipe.name
        self.values = self._placeholder_values(values)
        self._check_templates()
        first = (program_words(self.command) or ["the program"])[0]
        self._label = self.name if self.name != External.name else Path(first).name
        self.identity = self._identify(settings.get("program"), settings.get("version_command"))

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _check_types(settings: dict) -> None:
        for key, expected in SETTING_KEYS.items():
            value = settings.get(key)
            if value is None:
                continue
            kinds = expected if isinstance(expected, tuple) else (expected,)
            if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
                raise ValueError(f"{key} must be of type {' or '.join(k.__name__ for k in kinds)}"
                                 f", got {value!r}")
        program, env = settings.get("program"), settings["env"]
        if isinstance(program, list) and not all(isinstance(p, str) for p in program):
            raise ValueError(f"program must be a file or a list of files, got {program!r}")
        if not all(isinstance(v, str | int | float) and not isinstance(v, bool)
                   for v in env.values()):
            raise ValueError(f"env values must be strings or numbers, got {env!r}")

    def _placeholder_values(self, given: dict) -> dict:
        """The recipe's ``[params]`` defaults overridden by the values given; every given
        value must be declared by the recipe or used by a template."""
        clash = sorted(set(given) & set(PLACEHOLDERS))
        if clash:
            raise MethodError(self.name, f"{', '.join(clash)} cannot be given: the adapter "
                                         "fills in that placeholder itself")
        declared = dict(self.recipe.params) if self.recipe else {}
        reserved = sorted((set(given) | set(declared)) & set(RESERVED))
        if reserved:
            raise MethodError(self.name, f"{', '.join(reserved)} cannot name a placeholder: "
                                         "it names a part of the method's parameters")
        used = {n for t, what in self._templates() for n, _ in fields(t, what)}
        unknown = sorted(set(given) - set(declared) - used)
        if unknown:
            where = (f"not declared in [params] of {self.recipe.path}" if self.recipe
                     else "not used by the command or the output paths")
            raise MethodError(self.name, f"unknown parameter(s) {', '.join(unknown)}: {where}; "
                                         f"parameters of the adapter: {', '.join(_ARGUMENTS)}"
                                         + (f"; of the recipe: {', '.join(declared)}"
                                            if declared else ""))
        values = {**declared, **given}
        for key, value in values.items():
            check_value(key, value)
        return values

    def _templates(self) -> list[tuple[str, str]]:
        """Every template with its name (for messages)."""
        found = [(self.command, "command")]
        found += [(t, n) for n, t in (("output", self.output), ("half1_output", self.half1_output),
                                      ("half2_output", self.half2_output)) if t]
        found += [(v, f"env {k}") for k, v in self.env.items()]
        return found

    def _check_templates(self) -> None:
        known = set(PLACEHOLDERS) | set(self.values)
        for template, what in self._templates():
            for name, _ in fields(template, what):
                if name not in known:
                    raise MethodError(self.name, f"{what} {template!r} names the unknown "
                                                 f"placeholder {{{name}}}; known: "
                                                 f"{', '.join(sorted(known))}")
                if name == "map" and not self.per_map:
                    raise MethodError(self.name, f"{what} uses {{map}}, which exists only with "
                                                 "per_map=true (a single-map program)")
        halves = (self.half1_output is not None, self.half2_output is not None)
        if halves[0] != halves[1]:
            raise MethodError(self.name, "half1_output and half2_output go together")
        if self.per_map and halves[0]:
            raise MethodError(self.name, "with per_map=true the program makes one map per run: "
                                         "give output only")
        if not self.output and not halves[0]:
            raise MethodError(self.name, "needs output (where the program writes the denoised "
                                         "map), or half1_output and half2_output")

    def _static_values(self) -> dict:
        """The placeholder values known before any entry (no maps, no working folder)."""
        return {**self.values, "threads": self.threads or default_threads(),
                "cwd": os.getcwd()}

    def _identify(self, program, version_command) -> dict:
        """What identifies the program: the SHA-256 of its file(s) and its version text."""
        hint = f"; install it: {self.recipe.install}" if self.recipe and self.recipe.install \
            else ""
        static = self._static_values()
        try:
            if program is not None:
                words = [render(p, static, quote=False)
                         for p in ([program] if isinstance(program, str) else program)]
            else:
                words = program_words(render(self.command, {
                    **static, **{k: Unknown(k) for k in PLACEHOLDERS if k not in static}},
                    quote=True))
        except ValueError as exc:
            raise MethodError(self.name, f"program: {exc} (only the recipe's parameters, "
                                         "{threads} and {cwd} can be used there)") from None
        if words is None and version_command is None:
            raise MethodError(self.name, f"cannot tell which program {self.command!r} runs (its "
                                         "first word is a shell word): give program=FILE, whose "
                                         "digest identifies it, or version_command")
        paths = [locate(w, hint) for w in words or []]
        identity: dict = {"files": {str(p): file_sha256(p) for p in paths}}
        if version_command is not None:
            identity["version"] = version_text(render(version_command, static, quote=True),
                                               environment(self.env, static["threads"]), hint)
        return identity

    # ---------------------------------------------------------------------- protocol

    def params(self) -> dict:
        """Everything that determines the output: the placeholder values (the recipe's
        ``[params]`` and those given, each under its own name), the command and output
        templates, the settings, the environment, the recipe's whole text, and the program's
        identity (file digests, version text). ``threads``, ``recipes`` and ``name`` are left
        out (they enter the resume key only when given)."""
        return {**self.values, "command": self.command, "output": self.output,
                "half1_output": self.half1_output, "half2_output": self.half2_output,
                "per_map": self.per_map, "denoise_halves": self.denoise_halves,
                "env": self.env, "recipe": self.recipe.name if self.recipe else None,
                "recipe_text": self.recipe.text if self.recipe else None,
                "program": self.identity}

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None = None) -> Denoised:
        """Run the program on one entry and read its maps back onto the input grid.

        Args:
            half1, half2: the half-maps (one grid).
            mask: the mask, or None (then a command naming ``{mask}`` fails).

        Returns:
            The :class:`Denoised` maps; the note says what was done (no denoised halves,
            resampling, the recipe's note).

        Raises:
            ProgramFailed: the program failed, or its output is missing, unreadable or on
                another box.
            MapError: the inputs are not on one grid, a command names ``{mask}`` and there
                is no mask, or ``{voxel_size}`` with non-cubic voxels.
        """
        half1.check_same_grid(half2)
        if mask is not None:
            half1.check_same_grid(mask)
        scratch = os.environ.get(SCRATCH_ENV)
        root = Path(tempfile.mkdtemp(prefix="external-", dir=scratch if scratch and
                                     os.path.isdir(scratch) else None))
        try:
            return self._denoise_in(root, half1, half2, mask)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    # ------------------------------------------------------------------------ running

    def _used(self) -> set[str]:
        return {n for t, what in self._templates() for n, _ in fields(t, what)}

    def _entry_values(self, root: Path, half1: Volume, half2: Volume,
                      mask: Volume | None) -> tuple[dict, list[str]]:
        """Placeholder values of one entry (writing the input copies it names) and notes."""
        from cref_bench.maps.io import write_map

        used, values, notes = self._used(), self._static_values(), []
        wanted = {"half1": half1, "half2": half2, "mask": mask}
        if self.per_map or "average" in used:
            wanted["average"] = average_halves(half1, half2)
        if self.per_map:
            used |= {"average"} | ({"half1", "half2"} if self.denoise_halves else set())
        for key, volume in wanted.items():
            if key not in used:
                continue
            if volume is None:
                raise MapError(half1.source, f"the command of {self.name} names {{{key}}}, but "
                                             "the entry has no mask")
            values[key] = str(write_map(root / f"{key}.mrc", volume))
        if "voxel_size" in used:
            sizes = half1.voxel_size
            if not np.allclose(sizes, sizes[0], rtol=GRID_RTOL, atol=0):
                raise MapError(half1.source, f"{self.name} passes one voxel size, but the voxels "
                                             f"are {sizes} Å")
            values["voxel_size"] = float(sizes[0])
        if "resolution" in used:
            from cref_bench.metrics.fsc import fsc

            crossing = fsc(half1, half2, mask).resolution_at(0.143)
            values["resolution"] = crossing.resolution or crossing.limit
            if crossing.resolution is None:
                notes.append(f"the half-map FSC {crossing.note}; {{resolution}} was "
                             f"{crossing.limit:.3g} Å")
        return values, notes

    def _run(self, values: dict, workdir: Path) -> list[str]:
        workdir.mkdir()
        values = {**values, "workdir": str(workdir)}
        env = environment({k: render(v, values, quote=False) for k, v in self.env.items()},
                           values["threads"])
        return run_program(render(self.command, values, quote=True), workdir, env, self._label)

    def _path(self, template: str, values: dict, workdir: Path) -> Path:
        path = Path(render(template, {**values, "workdir": str(workdir)}, quote=False))
        return path if path.is_absolute() else workdir / path

    def _denoise_in(self, root: Path, half1: Volume, half2: Volume,
                    mask: Volume | None) -> Denoised:
        values, notes = self._entry_values(root, half1, half2, mask)
        if self.recipe is not None and self.recipe.note:
            notes.insert(0, self.recipe.note)
        maps: dict[str, Volume | None] = {"half1": None, "half2": None}
        if self.per_map:
            runs = ["average"] + (["half1", "half2"] if self.denoise_halves else [])
            for which in runs:
                workdir = root / f"work-{which}"
                tail = self._run({**values, "map": values[which]}, workdir)
                what = "full map" if which == "average" else f"denoised {which}"
                maps[which], found = read_output(self._path(self.output, values, workdir),
                                                 half1, what, workdir, tail, self._label)
                notes += found
            full = maps.pop("average")
            if not self.denoise_halves:
                notes.append("denoise_halves=false: the halves were not denoised")
        else:
            workdir = root / "work"
            tail = self._run(values, workdir)
            outputs = {"full": self.output, "half1": self.half1_output,
                       "half2": self.half2_output}
            for which, template in outputs.items():
                if template:
                    what = "full map" if which == "full" else f"denoised {which}"
                    maps[which], found = read_output(self._path(template, values, workdir),
                                                     half1, what, workdir, tail, self._label)
                    notes += found
            full = maps.pop("full", None)
            if full is None:
                full = half1.like((maps["half1"].data + maps["half2"].data) * np.float32(0.5),
                                  source=f"mean of {self._label}'s denoised halves")
                notes.append("the full map is the mean of the two denoised half-maps")
            if maps["half1"] is None:
                notes.append(f"{self._label} filters the half-map pair into one map and makes "
                             "no denoised half-maps")
        return Denoised(full=full, half1=maps["half1"], half2=maps["half2"],
                        note="; ".join(notes))


RESERVED = ("recipe_text",)
"""Keys of :meth:`External.params` that are not parameters of the adapter, so cannot name a
placeholder."""

_ARGUMENTS = ("command", "output", "half1_output", "half2_output", "per_map", "denoise_halves",
              "threads", "env", "program", "version_command", "needs_gpu", "recipe", "recipes",
              "name")
"""The adapter's own parameters (for messages)."""


def from_recipe(recipe: str, /, **params) -> External:
    """The method of a named recipe: what ``--method recipe:NAME`` builds (the ``recipe``
    scheme of :data:`cref_bench.methods.registry.SCHEME_GROUP`).

    Args:
        recipe: the recipe's name (or a ``.toml`` path).
        **params: further parameters of :class:`External` (the recipe's ``[params]``
            included).

    Returns:
        The :class:`External` method.

    Raises:
        MethodError: ``params`` names a recipe too; or as :class:`External`.
    """
    if "recipe" in params:
        raise MethodError(f"recipe:{recipe}", "names its recipe already; leave out --param "
                                              "recipe")
    return External(recipe=recipe, **params)


__all__ = ["PLACEHOLDERS", "External", "from_recipe"]
