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


__all__ = ["describe"]
