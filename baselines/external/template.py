"""Command templates of the ``external`` method: ``{name}`` placeholders filled in, quoted.

A template is text with ``{name}`` or ``{name:spec}`` placeholders (``{{`` and ``}}`` for
literal braces), as :meth:`str.format` reads it, restricted to plain names. :func:`render`
fills one in; a list value becomes several words, and in a command every word is
shell-quoted.
"""

from __future__ import annotations

import shlex
import string


class Unknown(str):
    """A stand-in for a placeholder whose value is not known yet (its own name); any format
    spec is ignored."""

    def __format__(self, spec: str) -> str:
        return str(self)


def fields(template: str, what: str) -> list[tuple[str, str]]:
    """The ``(name, format_spec)`` of every placeholder of a template.

    Args:
        template: the template.
        what: what it is, for messages (``"command"``, ``"env OMP_PLACES"``).

    Returns:
        The placeholders in order (a name used twice appears twice).

    Raises:
        ValueError: a malformed template, or a placeholder with attribute, index or conversion.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{what} {template!r} is not a valid template ({exc}; write a "
                         "literal brace as {{ or }})") from None
    found = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or conversion:
            raise ValueError(f"{what} {template!r}: placeholder {{{name}"
                             f"{'!' + conversion if conversion else ''}}} must be a plain name "
                             "(with an optional format, as {voxel_size:.3f})")
        found.append((name, spec or ""))
    return found


def _word(value, spec: str) -> str:
    if isinstance(value, float) and not spec:
        return f"{value:.6g}"
    return format(value, spec)


def render(template: str, values: dict, *, quote: bool) -> str:
    """Fill in a template.

    Args:
        template: text with ``{name}`` or ``{name:spec}`` placeholders (``{{``, ``}}`` for
            literal braces).
        values: the value of every placeholder; a list becomes several words.
        quote: shell-quote every word (commands); else lists are refused (paths).

    Returns:
        The text.

    Raises:
        ValueError: a placeholder without a value, or a list where one word is needed.
    """
    out = []
    for literal, name, spec, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if name not in values:
            raise ValueError(f"placeholder {{{name}}} of {template!r} has no value here")
        value = values[name]
        if isinstance(value, list | tuple):
            if not quote:
                raise ValueError(f"placeholder {{{name}}} of {template!r} is a list; a path "
                                 "needs one word")
            words = [_word(v, spec or "") for v in value]
        else:
            words = [_word(value, spec or "")]
        out.append(" ".join(shlex.quote(w) if quote else w for w in words))
    return "".join(out)


def check_value(name: str, value) -> None:
    """Refuse a placeholder value that is not a string, a number or a list of those.

    Args:
        name: the placeholder, for the message.
        value: its value.

    Raises:
        ValueError: a boolean, or a value of another type.
    """
    simple = (str, int, float)
    if isinstance(value, bool) or not (isinstance(value, simple) or (
            isinstance(value, list) and all(isinstance(v, simple) and not isinstance(v, bool)
                                            for v in value))):
        raise ValueError(f"parameter {name} must be a string, a number or a list of those, "
                         f"got {value!r}")


__all__ = ["Unknown", "check_value", "fields", "render"]
