"""What the registered methods are, read from their source text without importing them.

``cref-bench methods`` must answer in a fraction of a second, and importing every method
would import torch (crefDenoiser, Topaz-3D) and numba (LAFTER). :func:`describe_statically`
reads a method's module with :mod:`ast` instead: the class's ``name``, ``version`` and
``needs_gpu`` where they are literals (inherited ones included, following base classes
through the modules that define them), its ``__init__`` parameters with their defaults as
written, and whether it can be imported here, as far as the source tells: the module is found
and parses, the class is defined in it, and every package it (or a module of its own package
it imports) imports is installed.

What the source cannot tell is reported as such, never guessed: a ``version`` computed when
the module is imported is ``None`` (shown as ``?``), and a class that overrides
:meth:`cref_bench.methods.protocol.Method.unavailable` decides only when imported whether it can run
here (status ``unchecked``). :func:`describe_by_import` imports the method and answers those
too (``cref-bench methods --check``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import operator
from dataclasses import dataclass, field
from pathlib import Path

from cref_bench.errors import UnavailableError

PROTOCOL_MODULE = "cref_bench.methods.protocol"
"""Where the method protocol lives: its classes' attributes are the defaults."""

PROTOCOL_DEFAULTS = {"version": "0", "needs_gpu": False, "name": "unnamed"}
"""The class attributes of :class:`cref_bench.methods.protocol.Method` (kept in step by a test)."""

STATUSES = ("ok", "unavailable", "unchecked")
"""``ok``: can be imported (statically: as far as the source shows); ``unavailable``: cannot,
``error`` says why; ``unchecked``: the class decides on import (``--check`` imports it)."""


def describe_statically(name: str, target: str) -> dict:
    """What the source text says of one method, without importing it.

    Args:
        name: the registry name.
        target: ``package.module:Attribute`` (a Method subclass or a factory).

    Returns:
        ``{"name", "target", "version", "needs_gpu", "parameters", "status", "error",
        "checked"}``: ``version`` (text) and ``needs_gpu`` are ``None`` where the source does
        not give them as literals (or for a factory); ``parameters`` is the ``__init__`` (or
        factory) signature as written, ``None`` when the method is unavailable; ``status`` one
        of :data:`STATUSES`; ``checked`` is ``"source"``.
    """
    row = _row(name, target, "source")
    module_name, _, attr = target.partition(":")
    reader = _SourceReader()
    try:
        module = reader.module(module_name)
        if module is None:
            raise _Unavailable(f"no module {module_name!r} is installed")
        node = module.definition(attr)
        if node is None:
            raise _Unavailable(f"module {module_name!r} defines no {attr!r}")
        missing = reader.missing_dependencies(module)
        if missing:
            package, importer = missing
            raise _Unavailable(f"needs {package!r} (imported by {importer}), which is not "
                               "installed")
    except _Unavailable as exc:
        return {**row, "status": "unavailable", "error": str(exc)}
    if isinstance(node, ast.ClassDef):
        facts = reader.class_facts(module, node)
        row.update(version=facts.get("version"), needs_gpu=facts.get("needs_gpu"),
                   parameters=facts.get("parameters", ""))
        row["status"] = "unchecked" if facts.get("decides_availability") else "ok"
    else:
        row.update(parameters=reader.signature_text(module, node), status="ok")
    return row


def describe_by_import(name: str, target: str) -> dict:
    """What one method says of itself once imported (without building it).

    Args:
        name: the registry name.
        target: ``package.module:Attribute``.

    Returns:
        The fields of :func:`describe_statically`, ``checked`` being ``"import"``: a target
        that fails to import is ``unavailable`` with ``"Type: message"`` as its error; so is a
        class whose ``unavailable()`` gives a reason (the reason is the error).
    """
    row = _row(name, target, "import")
    module_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        check = getattr(obj, "unavailable", None) if inspect.isclass(obj) else None
        reason = check() if callable(check) else None
    except Exception as exc:  # a broken method must not hide the others
        return {**row, "status": "unavailable", "error": f"{type(exc).__name__}: {exc}"}
    if reason:
        return {**row, "status": "unavailable", "error": str(reason)}
    if inspect.isclass(obj):
        row["version"] = str(getattr(obj, "version", None))
        row["needs_gpu"] = bool(getattr(obj, "needs_gpu", False))
    return {**row, "parameters": _parameters(obj), "status": "ok"}


BOX_SCRIPT = """
import json, os, sys
from cref_bench.methods.catalog import describe_by_import
out = os.fdopen(int(sys.argv[1]), "w")
sys.stdout = sys.stderr  # what the methods print on import must not reach the answer
methods = json.loads(sys.argv[2])
out.write(json.dumps([describe_by_import(n, t) for n, t in methods]))
"""

MAX_ANSWER_BYTES = 2**20
"""The most a box checking methods may answer."""


def _checked_row(row, name: str, target: str) -> dict:
    """A row sent by the box, checked: the fields and types of :func:`describe_statically`,
    for the method asked about."""
    kinds = {"version": (str, type(None)), "needs_gpu": (bool, type(None)),
             "parameters": (str, type(None)), "error": (str, type(None)), "checked": (str,)}
    if not (isinstance(row, dict) and row.get("name") == name and row.get("target") == target
            and row.get("status") in STATUSES
            and all(isinstance(row.get(k), t) for k, t in kinds.items())):
        return {**_row(name, target, "box"), "status": "unavailable",
                "error": "its check in a box answered in a form not understood"}
    return {key: row[key] for key in _row(name, target, "box")}


def describe_in_box(methods: dict[str, str]) -> list[dict]:
    """:func:`describe_by_import` of every method, run in a box (:mod:`cref_bench.run.sandbox`)
    so that this process imports none of them; the answer is JSON, checked here.

    Args:
        methods: ``{name: "package.module:Attribute"}``.

    Returns:
        One row per method, in the order given (see :func:`describe_by_import`); a row the
        box did not answer in the expected form is ``unavailable`` and says so.
    """
    import json
    import os
    import subprocess
    import sys
    import tempfile

    from cref_bench.methods.code import module_root
    from cref_bench.run import sandbox

    roots = []
    for target in methods.values():
        try:
            root = module_root(target.partition(":")[0])
        except Exception:  # not locatable here: the box says why it cannot be imported
            root = None
        if root is not None:
            roots.append(root)
    asked, rows = list(methods.items()), {}
    if asked:
        here = Path(__file__).resolve().parents[1]
        path = os.pathsep.join(dict.fromkeys(
            [*(p for p in sys.path if p and os.path.isdir(p)), *(str(r.parent) for r in roots)]))
        read, write = os.pipe()
        with tempfile.TemporaryDirectory(prefix="cref-bench-methods-") as inputs:
            spec = sandbox.BoxSpec(inputs=Path(inputs), read_only=(here, *roots),
                                   env=(("PYTHONPATH", path),))
            box = sandbox.start_box(spec, [sys.executable, "-c", BOX_SCRIPT, str(write),
                                           json.dumps(asked)],
                                    name=f"cref-bench-methods-{os.getpid()}",
                                    pass_fds=(write,), stdout=subprocess.DEVNULL)
            os.close(write)
            with os.fdopen(read, "rb") as answer:
                raw = answer.read(MAX_ANSWER_BYTES + 1)
            box.close()
        try:
            answered = json.loads(raw) if len(raw) <= MAX_ANSWER_BYTES else None
        except ValueError:
            answered = None
        if not isinstance(answered, list) or len(answered) != len(asked):
            answered = [None] * len(asked)
        for (name, target), row in zip(asked, answered):
            rows[name] = _checked_row(row, name, target)
    return [rows[name] for name in methods]


def _row(name: str, target: str, checked: str) -> dict:
    return {"name": name, "target": target, "version": None, "needs_gpu": None,
            "parameters": None, "status": None, "error": None, "checked": checked}


def _parameters(target) -> str:
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return "?"
    words = []
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            words.append(f"**{p.name}")
        elif p.kind is p.VAR_POSITIONAL:
            words.append(f"*{p.name}")
        else:
            words.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(words)


class _Unavailable(UnavailableError):
    """The source shows that a method cannot be imported here."""


_COMPUTED = object()
"""The value of an expression that only running the module gives."""

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Pow: operator.pow, ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv}
"""Arithmetic followed in constant expressions (``3 * 2**30``)."""


@dataclass
class _Module:
    """One parsed module: its name, file, syntax tree and top-level bindings."""

    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    imports: list[tuple[str, int]] = field(default_factory=list)

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]

    def definition(self, attr: str):
        """The top-level class or function ``attr`` (dotted: a nested class), or None."""
        body = self.tree.body
        node = None
        for part in attr.split("."):
            node = next((n for n in body if isinstance(
                n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and n.name == part),
                None)
            if node is None:
                return None
            body = node.body
        return node

    def imported_name(self, name: str) -> tuple[str, str] | None:
        """Where a top-level ``from X import Y as name`` takes ``name`` from: ``(X, Y)``."""
        for node in self.tree.body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        return _absolute(node, self.package), alias.name
        return None


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The absolute module name of a ``from ... import`` statement."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _guarded(node: ast.Try) -> bool:
    """Whether a ``try`` statement catches ImportError (an optional import)."""
    for handler in node.handlers:
        names = [handler.type] if not isinstance(handler.type, ast.Tuple) else handler.type.elts
        if handler.type is None or any(isinstance(n, ast.Name) and n.id in (
                "ImportError", "ModuleNotFoundError", "Exception") for n in names):
            return True
    return False


def _required_imports(body: list[ast.stmt], package: str) -> list[tuple[str, int]]:
    """The modules a module body imports when it is imported: top-level statements, the
    branches of ``if`` (but not ``if TYPE_CHECKING``), not those guarded by ``except
    ImportError``. Returns ``(module name, line)`` pairs."""
    found = []
    for node in body:
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            found.append((module, node.lineno))
            found += [(f"{module}.{alias.name}", -node.lineno) for alias in node.names]
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            found += _required_imports(node.body + node.orelse, package)
        elif isinstance(node, ast.Try) and not _guarded(node):
            found += _required_imports(node.body, package)
    return found


class _SourceReader:
    """Finds and parses modules by name without importing them (cached per instance)."""

    def __init__(self):
        self._modules: dict[str, _Module | None] = {}
        self._installed: dict[str, bool] = {}

    def _spec(self, name: str):
        """The import spec of ``name``, found without running any package's ``__init__``."""
        top, *rest = name.split(".")
        try:
            spec = importlib.util.find_spec(top)  # a top-level name imports nothing
        except (ImportError, ValueError):
            return None
        for depth in range(len(rest)):
            if spec is None or not spec.submodule_search_locations:
                return None
            fullname = ".".join([top, *rest[:depth + 1]])
            spec = importlib.machinery.PathFinder.find_spec(
                fullname, list(spec.submodule_search_locations))
        return spec

    def module(self, name: str) -> _Module | None:
        """The parsed module ``name``, or None when it cannot be found as a source file.

        Raises:
            _Unavailable: the source does not parse.
        """
        if name in self._modules:
            return self._modules[name]
        spec = self._spec(name)
        origin = getattr(spec, "origin", None)
        found = None
        if origin and origin.endswith(".py"):
            path = Path(origin)
            try:
                tree = ast.parse(path.read_bytes(), filename=str(path))
            except SyntaxError as exc:
                raise _Unavailable(f"{path}: SyntaxError: {exc.msg} (line {exc.lineno})"
                                   ) from None
            except OSError as exc:
                raise _Unavailable(f"{path}: cannot be read: {exc.strerror}") from None
            found = _Module(name, path, spec.submodule_search_locations is not None, tree)
            found.imports = _required_imports(tree.body, found.package)
        self._modules[name] = found
        return found

    def value(self, module: _Module, node: ast.expr, depth: int = 0):
        """The value of a constant expression of ``module``: literals, names bound to constants
        in it (or imported from a module whose source is found), items of constant tuples and
        arithmetic on numbers; ``_COMPUTED`` for anything else."""
        try:
            return ast.literal_eval(node)
        except ValueError:
            pass
        if depth > 10:
            return _COMPUTED
        if isinstance(node, ast.Name):
            return self._bound_value(module, node.id, depth)
        if isinstance(node, ast.Subscript):
            container = self.value(module, node.value, depth + 1)
            index = self.value(module, node.slice, depth + 1)
            try:
                return container[index]
            except (TypeError, KeyError, IndexError):
                return _COMPUTED
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left = self.value(module, node.left, depth + 1)
            right = self.value(module, node.right, depth + 1)
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right)):
                try:
                    return _OPERATORS[type(node.op)](left, right)
                except (ArithmeticError, ValueError):
                    return _COMPUTED
        return _COMPUTED

    def _bound_value(self, module: _Module, name: str, depth: int):
        """The constant a module-level name is bound to (the last assignment), or _COMPUTED."""
        for node in reversed(module.tree.body):
            targets = (node.targets if isinstance(node, ast.Assign) else
                       [node.target] if isinstance(node, ast.AnnAssign) and node.value else [])
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return self.value(module, node.value, depth + 1)
        where = module.imported_name(name)
        if where is not None:
            try:
                other = self.module(where[0])
            except _Unavailable:
                other = None
            if other is not None:
                return self._bound_value(other, where[1], depth + 1)
        return _COMPUTED

    def signature_text(self, module: _Module, node: ast.FunctionDef | ast.AsyncFunctionDef,
                       skip_first: bool = False) -> str:
        """A function's parameters, defaults shown as :func:`repr` shows their values where
        they are constants, else as written: ``a, b=1.0, *args, c='x', **kw``."""
        def word(arg: ast.arg, default: ast.expr | None) -> str:
            if default is None:
                return arg.arg
            value = self.value(module, default)
            return f"{arg.arg}={ast.unparse(default) if value is _COMPUTED else repr(value)}"

        args = node.args
        positional = [*args.posonlyargs, *args.args]
        defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        words = [word(a, d) for a, d in zip(positional, defaults)][1 if skip_first else 0:]
        if args.vararg:
            words.append(f"*{args.vararg.arg}")
        words += [word(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
        if args.kwarg:
            words.append(f"**{args.kwarg.arg}")
        return ", ".join(words)

    def installed(self, name: str) -> bool:
        """Whether module ``name`` can be found (its top-level package is installed)."""
        if name not in self._installed:
            self._installed[name] = self._spec(name) is not None
        return self._installed[name]

    def missing_dependencies(self, module: _Module) -> tuple[str, str] | None:
        """The first module that ``module``, or a module of its own top-level package that
        it imports, imports and cannot be found: ``(module name, "file:line")``, or None."""
        own = module.name.split(".")[0]
        seen, queue = {module.name}, [module]
        while queue:
            current = queue.pop()
            for name, line in current.imports:
                submodule_of_from = line < 0  # "from X import Y": Y may be a name, not a module
                if name.split(".")[0] != own:
                    if not submodule_of_from and not self.installed(name.split(".")[0]):
                        return name.split(".")[0], f"{current.path}:{line}"
                    continue
                if name in seen:
                    continue
                seen.add(name)
                inner = self.module(name)
                if inner is not None:
                    queue.append(inner)
                elif not submodule_of_from:
                    return name, f"{current.path}:{line}"
        return None

    def class_facts(self, module: _Module, node: ast.ClassDef, depth: int = 0) -> dict:
        """A class's ``name``, ``version``, ``needs_gpu``, ``__init__`` parameters and whether
        it overrides ``unavailable``, its own first, then its bases' (left to right)."""
        facts: dict = {}
        for item in node.body:
            targets = (item.targets if isinstance(item, ast.Assign) else
                       [item.target] if isinstance(item, ast.AnnAssign) and item.value else [])
            for target in targets:
                if isinstance(target, ast.Name) and target.id in PROTOCOL_DEFAULTS:
                    value = self.value(module, item.value)
                    facts[target.id] = None if value is _COMPUTED else value
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                facts["parameters"] = self.signature_text(module, item, skip_first=True)
            if isinstance(item, ast.FunctionDef) and item.name == "unavailable":
                facts["decides_availability"] = True
        for base in node.bases if depth < 20 else ():
            for key, value in self._base_facts(module, base, depth).items():
                facts.setdefault(key, value)
        if "version" in facts and facts["version"] is not None:
            facts["version"] = str(facts["version"])
        return facts

    def _base_facts(self, module: _Module, base: ast.expr, depth: int) -> dict:
        """The facts of one base class, found in this module or the module it is imported
        from; the protocol's own classes give :data:`PROTOCOL_DEFAULTS`."""
        if not isinstance(base, ast.Name | ast.Attribute):
            return {}
        where = module.imported_name(base.id) if isinstance(base, ast.Name) else None
        if where is None and isinstance(base, ast.Name):
            local = module.definition(base.id)
            if isinstance(local, ast.ClassDef):
                return self.class_facts(module, local, depth + 1)
            return {}
        if where is None:  # module.Class: the attribute's value is not followed
            return {}
        source, name = where
        if source == PROTOCOL_MODULE:
            return dict(PROTOCOL_DEFAULTS)
        other = self.module(source)
        node = other.definition(name) if other is not None else None
        return self.class_facts(other, node, depth + 1) if isinstance(node, ast.ClassDef) else {}
