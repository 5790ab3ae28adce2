"""Numbers as text with a fixed number of significant figures, for printed tables."""

from __future__ import annotations

import math


def significant(value: float, digits: int) -> str:
    """A number with exactly ``digits`` significant figures, trailing zeros kept.

    Args:
        value: the number.
        digits: significant figures (at least 1).

    Returns:
        Fixed-point text where it is short (``0.06910``, ``5.952``, ``1235``), else
        scientific (``9.842e-09``, ``1.235e+04``); ``0`` for zero; ``nan`` and ``inf`` as
        Python writes them.
    """
    if not math.isfinite(value) or value == 0:
        return "0" if value == 0 else str(value)
    text = f"{value:#.{digits}g}"
    return text[:-1] if text.endswith(".") else text
