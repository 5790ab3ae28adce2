"""A method's parameters checked against its signature before it is built.

``cref-bench run --param KEY=VALUE`` reads each value as JSON where it parses, else as text.
:func:`check_params` compares them with the keyword parameters of the class or factory that
builds the method, so a misspelt name or a value of the wrong type ends in one line that names
the parameter, what it takes and its default, instead of an error from deep inside the method.
The type of a parameter is its annotation (``float``, ``int``, ``bool``, ``str``, paths,
``list``, ``dict``, unions of those, ``None``), else the type of its default when that is a
number or a bool; a parameter of any other annotation is not checked.
"""

from __future__ import annotations

import inspect
import json
import os
import types
import typing

from cref_bench.errors import MethodError

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "text",
          list: "a list", tuple: "a list", dict: "a mapping", type(None): "null",
          os.PathLike: "a path"}


def _signature(target) -> inspect.Signature | None:
    """The signature of a class's ``__init__`` or of a factory (None when Python has none)."""
    for eval_str in (True, False):
        try:
            return inspect.signature(target, eval_str=eval_str)
        except (NameError, TypeError, SyntaxError, AttributeError):
            continue
        except ValueError:
            return None
    return None


def _members(annotation) -> list | None:
    """The plain types a parameter accepts, or None when it is not checked."""
    if annotation is None or annotation is type(None):
        return [type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [_members(a) for a in typing.get_args(annotation)]
        return None if any(m is None for m in members) else [t for m in members for t in m]
    if origin is not None:
        annotation = origin
    if annotation is os.PathLike:
        return [str, os.PathLike]
    if annotation in (list, tuple):
        return [list, tuple]
    if annotation in _NAMES:
        return [annotation]
    return None


def _accepts(kinds: list, value) -> bool:
    for kind in kinds:
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind not in (float, int) and isinstance(value, kind):
            return True
    return False


def _kinds(parameter: inspect.Parameter) -> list | None:
    """What a parameter takes (see the module docstring), or None when not checked."""
    if parameter.annotation is not inspect.Parameter.empty:
        if isinstance(parameter.annotation, str):  # an annotation Python could not resolve
            return None
        return _members(parameter.annotation)
    default = parameter.default
    if isinstance(default, bool):
        return [bool]
    if isinstance(default, int | float):
        return [float] if isinstance(default, float) else [int]
    return None


def _describe(name: str, parameter: inspect.Parameter) -> str:
    kinds = _kinds(parameter)
    text = name
    if kinds:
        text += " (" + " or ".join(dict.fromkeys(_NAMES[k] for k in kinds))
        if parameter.default is not inspect.Parameter.empty:
            text += f", default {parameter.default!r}"
        text += ")"
    elif parameter.default is not inspect.Parameter.empty:
        text += f" (default {parameter.default!r})"
    return text


def check_params(spec: str, target, params: dict) -> dict:
    """Check parameters against the keyword parameters of what builds a method.

    Args:
        spec: the method spec (for messages).
        target: the class or factory (see :func:`cref_bench.methods.registry.resolve`).
        params: the parameters given, as :func:`cref_bench.commands.run.parse_param` reads
            them.

    Returns:
        The parameters, a number given to a parameter that takes only text turned into its
        text (``--param tag=2`` gives ``"2"``).

    Raises:
        MethodError: a parameter the target does not take (the message lists those it
            does), or a value of a type the parameter does not take (the message says what
            it takes and its default).
    """
    signature = _signature(target)
    if signature is None:
        return dict(params)
    accepted = {name: p for name, p in signature.parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    checked = {}
    for name, value in params.items():
        parameter = accepted.get(name)
        if parameter is None:
            if open_ended:
                checked[name] = value
                continue
            known = ", ".join(_describe(n, p) for n, p in accepted.items()) or "none"
            raise MethodError(spec, f"takes no parameter {name!r}; its parameters: {known}")
        kinds = _kinds(parameter)
        if kinds is None or _accepts(kinds, value):
            checked[name] = value
        elif str in kinds and isinstance(value, int | float):
            checked[name] = str(value).lower() if isinstance(value, bool) else str(value)
        else:
            given = (f"the text {value!r}" if isinstance(value, str)
                     else json.dumps(value, default=str))
            raise MethodError(spec, f"parameter {_describe(name, parameter)} cannot be "
                                    f"{given}")
    return checked
