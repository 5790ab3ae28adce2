"""The names of method settings on a leaderboard, and their colours.

A *setting* is one method with one version and one set of parameters (one results folder).
:func:`setting_labels` names each so that every table and figure of one leaderboard shows the
same name: the method's name alone where it has one setting, else followed by the parameters
that differ between its settings (``lowpass (threshold=0.5)``), or by its version where the
parameters are the same (``mine [v2]``). :func:`colours` gives each label one colour of a
colour-blind-safe palette (Okabe & Ito 2008), the same in every figure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import NamedTuple

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
"""The Okabe-Ito palette (blue, orange, bluish green, reddish purple, sky blue, vermillion,
yellow), distinguishable under the common colour-vision deficiencies; its black is kept for
what is common to every method (the C_ref target, the half-maps' own curves)."""

LINESTYLES = ("-", "--", "-.", ":")
"""Line styles that tell apart labels beyond the palette's seven colours."""


class Setting(NamedTuple):
    """One method setting: the method's name, its version, its parameters as canonical JSON
    (:func:`cref_bench.results.folder.params_text`)."""

    method: str
    version: str
    params: str


def _value_text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def params_display(params) -> str:
    """Parameters as ``key=value, ...`` (``none`` for none).

    Args:
        params: a mapping, or its JSON text.

    Returns:
        The text.
    """
    if isinstance(params, str):
        params = json.loads(params) if params else {}
    if not params:
        return "none"
    return ", ".join(f"{k}={_value_text(v)}" for k, v in sorted(params.items()))


def setting_labels(settings: Sequence[Setting]) -> list[str]:
    """A label per setting (see the module docstring).

    Args:
        settings: the settings, in any order (equal settings get equal labels).

    Returns:
        One label per setting, in the order given.

    Raises:
        ValueError: a setting's ``params`` is not a JSON object.
    """
    parsed = []
    for s in settings:
        params = json.loads(s.params) if s.params else {}
        if not isinstance(params, dict):
            raise ValueError(f"parameters of {s.method} are not a JSON object: {s.params}")
        parsed.append(params)
    labels = []
    for s, params in zip(settings, parsed):
        siblings = [(o, p) for o, p in zip(settings, parsed) if o.method == s.method]
        distinct_params = {o.params for o, _ in siblings}
        label = s.method
        if len(distinct_params) > 1:
            keys = sorted({k for _, p in siblings for k in p})
            differ = [k for k in keys
                      if len({json.dumps(p.get(k), sort_keys=True) for _, p in siblings}) > 1]
            label += " (" + ", ".join(f"{k}={_value_text(params[k]) if k in params else '-'}"
                                      for k in differ) + ")"
        same_params = [o for o, _ in siblings if o.params == s.params]
        if len({o.version for o in same_params}) > 1:
            label += f" [v{s.version}]"
        labels.append(label)
    return labels


def colours(labels: Iterable[str]) -> dict[str, tuple[str, str]]:
    """A colour and a line style per label, fixed for one leaderboard.

    Labels are taken in sorted order, so a label keeps its colour whatever the ranking; the
    eighth and later labels reuse the palette with another line style.

    Args:
        labels: the labels.

    Returns:
        ``{label: (colour as #rrggbb, matplotlib line style)}``.
    """
    ordered = sorted(set(labels))
    return {label: (OKABE_ITO[i % len(OKABE_ITO)], LINESTYLES[(i // len(OKABE_ITO))
                                                             % len(LINESTYLES)])
            for i, label in enumerate(ordered)}
