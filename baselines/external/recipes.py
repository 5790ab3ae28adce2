"""Named recipes of the ``external`` method: how to run a program, in a TOML file.

A recipe ``NAME.toml`` holds the settings of :class:`baselines.external.method.External` (the
command template and where the program writes its maps, :data:`SETTING_KEYS`), words for
people (:data:`TEXT_KEYS`: what it does, how to install the program, its licence, a note
kept with every result) and, in a table ``[params]``, the defaults of its own placeholders,
which ``--param KEY=VALUE`` overrides. Recipes are looked up by name in these folders, the
first that holds ``NAME.toml`` winning (:func:`recipe_folders`):

1. the folder given as the method's ``recipes`` parameter (``--param recipes=DIR``);
2. the user's folder, ``$XDG_CONFIG_HOME/cref-bench/recipes`` (else
   ``~/.config/cref-bench/recipes``);
3. the recipes shipped with cref-bench, in ``baselines/recipes/`` (:data:`SHIPPED`).

A name that ends in ``.toml`` is read as a path instead. :func:`read_recipe` checks a file's
keys and types and names the file and the fault when one is wrong.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cref_bench.errors import MethodError

SHIPPED = Path(__file__).resolve().parents[1] / "recipes"
"""The folder of the recipes that ship with cref-bench (package data of ``baselines``)."""

USER_FOLDER = Path("cref-bench") / "recipes"
"""The user's recipe folder, below ``$XDG_CONFIG_HOME`` (else ``~/.config``)."""

SETTING_KEYS = {"command": str, "output": str, "half1_output": str, "half2_output": str,
                "per_map": bool, "denoise_halves": bool, "env": dict, "program": (str, list),
                "version_command": str, "needs_gpu": bool}
"""Recipe keys that are parameters of the external method, with their TOML types."""

TEXT_KEYS = ("description", "install", "licence", "note")
"""Recipe keys for people: what it does, how to get the program, its licence, and a note
added to every result's note."""

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""What a recipe name may look like (the file is ``NAME.toml``)."""


@dataclass(frozen=True)
class Recipe:
    """One recipe file, read and checked.

    Attributes:
        name: the recipe's name (its file name without ``.toml``).
        path: the file.
        text: the file's whole text (part of the method's parameters, hence of the resume key).
        settings: the values of :data:`SETTING_KEYS` it sets.
        params: the defaults of its own placeholders (table ``[params]``).
        description, install, licence, note: its :data:`TEXT_KEYS` (``""`` when absent).
    """

    name: str
    path: Path
    text: str
    settings: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    description: str = ""
    install: str = ""
    licence: str = ""
    note: str = ""

    @property
    def input(self) -> str:
        """``"single map"`` when the program runs once per map, else ``"pair"``."""
        return "single map" if self.settings.get("per_map") else "pair"


def user_folder() -> Path:
    """The user's recipe folder (``$XDG_CONFIG_HOME/cref-bench/recipes``, else
    ``~/.config/cref-bench/recipes``); it need not exist."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / USER_FOLDER


def recipe_folders(extra: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for recipes, first to last.

    Args:
        extra: a folder searched before the others (the ``recipes`` parameter).

    Returns:
        ``[extra, user folder, shipped folder]`` (``extra`` only when given).

    Raises:
        MethodError: ``extra`` is not a folder.
    """
    folders = [user_folder(), SHIPPED]
    if extra is not None:
        path = Path(extra).expanduser()
        if not path.is_dir():
            raise MethodError(str(path), "is not a folder of recipes (the recipes parameter)")
        folders.insert(0, path)
    return folders


def available_recipes(extra: str | os.PathLike | None = None) -> dict[str, Path]:
    """Every recipe that can be named, by name (the first folder holding a name wins).

    Args:
        extra: a folder searched first (see :func:`recipe_folders`).

    Returns:
        ``{name: path}``, sorted by name.
    """
    found: dict[str, Path] = {}
    for folder in recipe_folders(extra):
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def find_recipe(name: str, extra: str | os.PathLike | None = None) -> Path:
    """The file of a recipe.

    Args:
        name: a recipe name, or a path ending in ``.toml``.
        extra: a folder searched first (see :func:`recipe_folders`).

    Returns:
        The recipe file.

    Raises:
        MethodError: no such file, or no recipe of that name (the message lists those there
            are and the folders searched), or a name that is not a plain name.
    """
    if name.endswith(".toml"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise MethodError(str(path), "no such recipe file")
        return path
    if not NAME_PATTERN.fullmatch(name):
        raise MethodError(f"recipe {name!r}", "a recipe name is letters, digits, '.', '_' and "
                                              "'-' (or give a path ending in .toml)")
    folders = recipe_folders(extra)
    for folder in folders:
        path = folder / f"{name}.toml"
        if path.is_file():
            return path
    known = ", ".join(available_recipes(extra)) or "none"
    raise MethodError(f"recipe {name!r}", f"no such recipe in {', '.join(map(str, folders))}; "
                                          f"recipes: {known}")


def _check_type(path: Path, key: str, value, expected) -> None:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        names = " or ".join({str: "a string", bool: "true or false", dict: "a table",
                             list: "a list"}[k] for k in kinds)
        raise MethodError(str(path), f"{key} must be {names}, got {value!r}")


def read_recipe(path: str | os.PathLike) -> Recipe:
    """Read and check one recipe file.

    Args:
        path: the ``.toml`` file.

    Returns:
        The :class:`Recipe`.

    Raises:
        MethodError: the file cannot be read or parsed, holds an unknown key (the message
            lists the known ones), a value of the wrong type, or no ``command``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise MethodError(str(path), f"cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise MethodError(str(path), f"is not valid TOML: {exc}") from exc
    known = [*SETTING_KEYS, *TEXT_KEYS, "params"]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise MethodError(str(path), f"unknown key(s) {', '.join(unknown)}; a recipe knows "
                                     f"{', '.join(known)}")
    for key, expected in SETTING_KEYS.items():
        if key in data:
            _check_type(path, key, data[key], expected)
    for key in TEXT_KEYS:
        if key in data:
            _check_type(path, key, data[key], str)
    params = data.get("params", {})
    _check_type(path, "params", params, dict)
    if "command" not in data:
        raise MethodError(str(path), "a recipe needs a command")
    return Recipe(name=path.stem, path=path, text=text,
                  settings={k: data[k] for k in SETTING_KEYS if k in data}, params=params,
                  **{k: data.get(k, "") for k in TEXT_KEYS})


__all__ = ["SETTING_KEYS", "SHIPPED", "TEXT_KEYS", "Recipe", "available_recipes", "find_recipe",
           "read_recipe", "recipe_folders", "user_folder"]
