"""Where methods come from: the registry and the four ways of naming a method.

A method spec (what ``cref-bench run --method`` takes) is one of

* a name registered under the entry-point group :data:`ENTRY_POINT_GROUP` (``lowpass``);
* ``SCHEME:NAME``, a scheme registered under :data:`SCHEME_GROUP`: its factory builds the
  method as ``factory(NAME, **params)`` (``recipe:relion-postprocess``, a named recipe of
  the external-program method); a registered scheme wins over a module of the same name;
* ``package.module:Attribute``, the module importable (installed, or on ``PYTHONPATH``);
* ``path/to/file.py:Attribute``, a Python file loaded as it is, nothing installed. The file is
  loaded once per process under a private module name, and registered with cloudpickle to
  travel by value, so that its classes reach dask workers and child processes that cannot
  import it. Its own imports must be installed packages (a module beside it is not on the
  import path).

:func:`resolve` turns a spec into the class or factory it names; this module imports neither
numpy nor any method, so the command line can list methods quickly.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import linecache
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path

from cref_bench.errors import MethodError

ENTRY_POINT_GROUP = "cref_bench.methods"
"""The entry-point group under which packages register their methods."""

SCHEME_GROUP = "cref_bench.method_schemes"
"""The entry-point group of spec schemes: ``SCHEME = "package.module:factory"``, where
``factory(NAME, **params)`` builds the method that ``SCHEME:NAME`` names."""

FILE_MODULE_PREFIX = "cref_bench_method_file_"
"""Module names of method files loaded by path start with this."""


@functools.cache
def _installed_entry_points():
    """Every installed distribution's entry points, read once per process (each reading
    scans every installed distribution's metadata)."""
    return entry_points()


def registered(group: str) -> list:
    """The installed entry points of one group.

    Args:
        group: the entry-point group, e.g. :data:`ENTRY_POINT_GROUP`.

    Returns:
        The :class:`importlib.metadata.EntryPoint` objects of that group.
    """
    return list(_installed_entry_points().select(group=group))


def available_methods() -> dict[str, str]:
    """Names of the registered methods, mapped to their ``module:attribute`` targets."""
    return {ep.name: ep.value for ep in registered(ENTRY_POINT_GROUP)}


def available_schemes() -> dict[str, str]:
    """Spec schemes (``SCHEME:NAME``), mapped to their ``module:factory`` targets."""
    return {ep.name: ep.value for ep in registered(SCHEME_GROUP)}


def is_file_spec(spec: str) -> bool:
    """Whether a spec names a Python file (``path/to/file.py:Attribute``).

    Args:
        spec: a method spec.

    Returns:
        True when the part before the last ``:`` ends in ``.py`` or holds a path separator.
    """
    location, sep, _ = spec.rpartition(":")
    return bool(sep) and (location.endswith(".py") or "/" in location or "\\" in location)


def resolve(spec: str):
    """The class or factory a method spec names (see the module docstring).

    Args:
        spec: a registered name, ``SCHEME:NAME``, ``package.module:Attribute`` or
            ``path/file.py:Attribute``.

    Returns:
        The class or factory (not yet called); for ``SCHEME:NAME``, the scheme's factory
        with ``NAME`` bound as its first argument.

    Raises:
        MethodError: no method of that name is registered (the message lists those that
            are), a scheme without a name, the module or file is missing or fails to import
            one of its dependencies, or it has no such attribute. Other errors raised while
            the module runs (a bug in it) pass through with their traceback.
    """
    scheme, sep, rest = spec.partition(":")
    if sep:
        found = [ep for ep in registered(SCHEME_GROUP) if ep.name == scheme]
        if found:
            if not rest.strip():
                raise MethodError(spec, f"names no {scheme}: give {scheme}:NAME")
            return functools.partial(found[0].load(), rest.strip())
    if is_file_spec(spec):
        location, _, attr = spec.rpartition(":")
        return _attribute(spec, load_file(spec, location), attr)
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not (module_name == exc.name or module_name.startswith(f"{exc.name}.")):
                raise MethodError(spec, f"module {module_name!r} imports {exc.name!r}, which "
                                        "is not installed") from exc
            raise MethodError(spec, f"no module {module_name!r}{_path_hint(module_name, attr)}"
                              ) from exc
        return _attribute(spec, module, attr)
    found = [ep for ep in registered(ENTRY_POINT_GROUP) if ep.name == spec]
    if not found:
        raise unknown_method(spec)
    return found[0].load()


def unknown_method(spec: str) -> MethodError:
    """The error for a name that no method is registered under (listing those that are).

    Args:
        spec: the name given.

    Returns:
        The :class:`~cref_bench.errors.MethodError` to raise.
    """
    known = ", ".join(sorted(available_methods())) or "none"
    schemes = "".join(f", {s}:NAME" for s in sorted(available_schemes()))
    return MethodError(f"no method named {spec!r}; registered methods: {known}; or give one "
                       f"as package.module:Attribute, path/to/file.py:Attribute{schemes}")


def _path_hint(module_name: str, attr: str) -> str:
    """Advice when a module is not importable but a file of that name is here."""
    candidate = Path(*module_name.split(".")).with_suffix(".py")
    if candidate.is_file():
        return (f" on the import path (the current folder is not on it); {candidate} is "
                f"here: give it as ./{candidate.as_posix()}:{attr}, or run with PYTHONPATH=.")
    return " on the import path (install its package, add its folder to PYTHONPATH, or give "\
           "the file as path/to/file.py:Attribute)"


def _attribute(spec: str, module, attr: str):
    """``module.attr`` (dotted for a nested class)."""
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = (module.__file__ if module.__name__.startswith(FILE_MODULE_PREFIX)
                     else f"module {module.__name__!r}")
            raise MethodError(spec, f"{where} has no attribute {attr!r}") from None
    return obj


def load_file(spec: str, location: str):
    """Load a Python file as a module (once per process; again when its content changed).

    Args:
        spec: the whole method spec (for messages).
        location: the file's path.

    Returns:
        The module, registered in :data:`sys.modules` under a name derived from the file's
        resolved path and content, and with cloudpickle to be pickled by value.

    Raises:
        MethodError: the file is missing or not a ``.py`` file, or it imports a module that
            is not installed.
    """
    path = Path(location).expanduser()
    if not path.is_file():
        raise MethodError(spec, f"no file {path}")
    if path.suffix != ".py":
        raise MethodError(spec, f"{path} is not a Python file (.py)")
    path = path.resolve()
    source = path.read_bytes()
    digest = hashlib.sha256(str(path).encode() + b"\0" + source).hexdigest()[:12]
    stem = re.sub(r"\W", "_", path.stem)
    name = f"{FILE_MODULE_PREFIX}{stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except ImportError as exc:
        del sys.modules[name]
        missing = getattr(exc, "name", None)
        raise MethodError(spec, f"{path} imports {missing or 'a module'!r}, which cannot be "
                                f"imported ({exc}); install it (a module beside the file is "
                                "not on the import path)") from exc
    except BaseException:
        del sys.modules[name]
        raise
    try:
        import cloudpickle
    except ImportError:  # no dask either: nothing will pickle the method
        return module
    cloudpickle.register_pickle_by_value(module)
    return module


_DYNAMIC_FRAME = re.compile(r'^(\s*)File "<dynamic-code>", line (\d+), in (.*)$')


def name_file_frames(trace: str, spec: str | None) -> str:
    """A traceback of a method given as ``path/to/file.py:Attribute`` with its frames in that
    file named: code that travelled by value to another process (a dask worker, the method's
    own process) carries the name ``<dynamic-code>`` instead of its file; each such frame gets
    the file's path and its source line back (line numbers travel unchanged).

    Args:
        trace: the formatted traceback.
        spec: the method spec of the run (other specs leave the text as it is).

    Returns:
        The traceback.
    """
    if not spec or not is_file_spec(spec) or "<dynamic-code>" not in trace:
        return trace
    path = str(Path(spec.rpartition(":")[0]).expanduser().resolve())
    out = []
    for line in trace.splitlines():
        match = _DYNAMIC_FRAME.match(line)
        if match is None:
            out.append(line)
            continue
        indent, number, where = match.groups()
        out.append(f'{indent}File "{path}", line {number}, in {where}')
        source = linecache.getline(path, int(number)).strip()
        if source:
            out.append(f"{indent}  {source}")
    return "\n".join(out) + ("\n" if trace.endswith("\n") else "")
