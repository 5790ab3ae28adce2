"""The method a run evaluates, as the referee knows it, and where it may run.

The referee (the runner's process) imports a method only when it is part of cref-bench (its
code lies in the ``cref_bench`` or ``baselines`` packages of this installation), or when the
user trusts it explicitly (``--trust-method``). Any other method given by spec is built in
its box, which sends back its name, version, parameters and flags as JSON
(:attr:`cref_bench.run.isolation.MethodProcess.facts`); nothing it declares about itself
(``safe_in_process``) grants it a place in the referee.

:func:`subject` resolves a run's method into a :class:`Subject`: its facts, all of its code
(:mod:`cref_bench.methods.code`, for the box's read-only view and the resume key's digest),
whether it is cref-bench's own, and where it runs (:func:`placement`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cref_bench.errors import InputError, MethodError
from cref_bench.methods.code import class_roots, code_digest, code_roots
from cref_bench.methods.protocol import Method, SingleMapMethod, load_method

OWN_PACKAGES = ("cref_bench", "baselines")
"""The packages (folders beside each other in this installation) whose methods are
cref-bench's own."""


def own_roots() -> tuple[Path, ...]:
    """The folders of :data:`OWN_PACKAGES` in this installation."""
    home = Path(__file__).resolve().parents[2]
    return tuple(home / name for name in OWN_PACKAGES)


def is_own(roots: tuple[Path, ...]) -> bool:
    """Whether code at ``roots`` is cref-bench's own (every root inside an own package)."""
    own = own_roots()
    return bool(roots) and all(any(r == o or o in r.parents for o in own) for r in roots)


def method_facts(method: Method) -> dict:
    """The facts of a method this process holds, as a box reports them (see
    :func:`cref_bench.run.isolation.check_facts`)."""
    cls = type(method)
    return {"name": str(method.name), "version": str(method.version),
            "params": json.loads(json.dumps(method.params(), sort_keys=True, default=str)),
            "needs_gpu": bool(method.needs_gpu),
            "safe_in_process": bool(getattr(method, "safe_in_process", False)),
            "single_map": isinstance(method, SingleMapMethod),
            "class": f"{cls.__module__}:{cls.__qualname__}"}


@dataclass(frozen=True)
class Subject:
    """The method of a run.

    Attributes:
        source: its spec, or the :class:`Method` instance the caller gave.
        params: the parameters given with a spec (``{}`` with an instance).
        facts: name, version, parameters (``params()``), ``needs_gpu``, ``safe_in_process``
            and ``class`` (from the box for a method not imported here).
        code: the paths of all of its code.
        code_digest: the digest of every file of ``code``.
        own: whether it is cref-bench's own.
        trusted: whether the user trusted it (``--trust-method``) and it is not own.
        instance: the method, where this process may hold it (own or trusted), else None.
    """

    source: str | Method
    params: dict
    facts: dict
    code: tuple[Path, ...]
    code_digest: str
    own: bool
    trusted: bool
    instance: Method | None


def subject(method: str | Method, params: dict, trust: bool, describe) -> Subject:
    """Resolve a run's method.

    Args:
        method: a spec or an instance.
        params: the parameters (with a spec only).
        trust: the user trusts a method that is not cref-bench's own.
        describe: called with nothing to get the facts from the method's box (used only for
            a spec that is neither own nor trusted).

    Returns:
        The :class:`Subject`.

    Raises:
        MethodError: the method cannot be located or built, params given with an instance,
            or not a :class:`Method`.
    """
    if isinstance(method, str):
        roots = code_roots(method)
        own = is_own(roots)
        instance = load_method(method, **params) if own or trust else None
        facts = method_facts(instance) if instance is not None else describe()
    else:
        if params:
            raise MethodError(getattr(method, "name", repr(method)),
                              "params can only be given with a method given by name")
        if not isinstance(method, Method):
            raise MethodError(repr(method), "expected a method name or a "
                              "cref_bench.methods.protocol.Method")
        roots = class_roots(type(method))
        own = is_own(roots)
        instance, facts = method, method_facts(method)
    return Subject(source=method, params=dict(params), facts=facts, code=roots,
                   code_digest=code_digest(roots), own=own, trusted=trust and not own,
                   instance=instance)


def placement(subject_: Subject, isolation: str) -> str:
    """Where the method runs: ``"in-process"`` or ``"process"`` (its box).

    Args:
        subject_: the method.
        isolation: the run's setting (``auto``, ``process`` or ``in-process``).

    Returns:
        ``in-process`` for an own method that declares ``safe_in_process`` or a trusted one
        (``auto``), or when asked and allowed; else ``process``.

    Raises:
        InputError: ``in-process`` asked for a method that is neither own nor trusted.
    """
    allowed = subject_.own or subject_.trusted
    if isolation == "in-process":
        if not allowed:
            raise InputError("isolation", f"{subject_.facts['name']!r} is not one of "
                             "cref-bench's own methods: it runs in this process only with "
                             "--trust-method (recorded in the provenance)")
        return "in-process"
    if isolation == "auto" and (subject_.trusted or
                                (subject_.own and subject_.facts["safe_in_process"])):
        return "in-process"
    return "process"
