"""What a registered method says of itself once imported (``cref-bench methods``).

:func:`describe` imports a method's class (or factory) without building it and reads its
``name``, ``version``, ``needs_gpu``, the parameters of its signature, and whether it can run
here (:meth:`cref_bench.methods.protocol.Method.unavailable`). Method modules import their
heavy libraries (torch, numba, scipy) when a method is built or run, not when the module is
imported, so that describing every method takes a fraction of a second.
"""

from __future__ import annotations

import importlib
import inspect


def describe(name: str, target: str) -> dict:
    """One method's description.

    Args:
        name: the registry name.
        target: ``package.module:Attribute`` (a Method subclass or a factory).

    Returns:
        ``{"name", "target", "version", "needs_gpu", "parameters", "status", "error"}``:
        ``status`` is ``"ok"`` or ``"unavailable"``. A target that fails to import is
        unavailable with ``"Type: message"`` as its error; so is a class whose
        ``unavailable()`` gives a reason (the reason is the error). ``version``,
        ``needs_gpu`` and ``parameters`` (the signature's parameters with their defaults,
        ``a, b=1.0, *args, c='x', **kw``) are ``None`` for an unavailable method; ``version`` and
        ``needs_gpu`` are ``None`` for a factory too (its method knows them once built).
    """
    row = {"name": name, "target": target, "version": None, "needs_gpu": None,
           "parameters": None, "status": "unavailable", "error": None}
    module_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        check = getattr(obj, "unavailable", None) if inspect.isclass(obj) else None
        reason = check() if callable(check) else None
    except Exception as exc:  # a broken method must not hide the others
        return {**row, "error": f"{type(exc).__name__}: {exc}"}
    if reason:
        return {**row, "error": str(reason)}
    if inspect.isclass(obj):
        row["version"] = str(getattr(obj, "version", None))
        row["needs_gpu"] = bool(getattr(obj, "needs_gpu", False))
    return {**row, "parameters": _parameters(obj), "status": "ok"}


def _parameters(target) -> str:
    """The parameters of a class's ``__init__`` (without ``self``) or of a function."""
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


BOX_SCRIPT = """
import json, os, sys
from cref_bench.methods.catalog import describe
out = os.fdopen(int(sys.argv[1]), "w")
sys.stdout = sys.stderr  # what the methods print on import must not reach the answer
methods = json.loads(sys.argv[2])
out.write(json.dumps([describe(n, t) for n, t in methods]))
"""

MAX_ANSWER_BYTES = 2**20
"""The most a box describing methods may answer."""

ROW_TYPES = {"version": (str, type(None)), "needs_gpu": (bool, type(None)),
             "parameters": (str, type(None)), "error": (str, type(None))}
"""The types of the fields of :func:`describe` that a box's answer must have."""


def _checked_row(row, name: str, target: str) -> dict:
    """A row sent by a box, checked: the fields and types of :func:`describe`, for the method
    asked about (else an ``unavailable`` row that says so)."""
    if not (isinstance(row, dict) and row.get("name") == name and row.get("target") == target
            and row.get("status") in ("ok", "unavailable")
            and all(isinstance(row.get(k), t) for k, t in ROW_TYPES.items())):
        return {"name": name, "target": target, "version": None, "needs_gpu": None,
                "parameters": None, "status": "unavailable",
                "error": "its description in a box came back in a form not understood"}
    return {key: row[key] for key in ("name", "target", *ROW_TYPES, "status")}


def describe_in_box(methods: dict[str, str]) -> list[dict]:
    """:func:`describe` of every method, run in one box (:mod:`cref_bench.run.sandbox`) so that
    this process imports none of them; the answer is JSON, checked here.

    Args:
        methods: ``{name: "package.module:Attribute"}``.

    Returns:
        One row per method, in the order given (see :func:`describe`).
    """
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

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
    asked = list(methods.items())
    if not asked:
        return []
    here = Path(__file__).resolve().parents[1]
    path = os.pathsep.join(dict.fromkeys(
        [*(p for p in sys.path if p and os.path.isdir(p)), *(str(r.parent) for r in roots)]))
    read, write = os.pipe()
    with tempfile.TemporaryDirectory(prefix="cref-bench-methods-") as inputs:
        spec = sandbox.BoxSpec(inputs=Path(inputs), read_only=(here, *roots),
                               env=(("PYTHONPATH", path),))
        box = sandbox.start_box(spec, [sys.executable, "-c", BOX_SCRIPT, str(write),
                                       json.dumps(asked)],
                                name=f"cref-bench-methods-{os.getpid()}", pass_fds=(write,),
                                stdout=subprocess.DEVNULL)
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
    return [_checked_row(row, name, target) for (name, target), row in zip(asked, answered)]


__all__ = ["describe", "describe_in_box"]
