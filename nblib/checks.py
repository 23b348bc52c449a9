"""Argument checks shared by every nblib module.

Each check takes the value and the argument's name, returns the value converted to a plain
Python ``int`` or ``float``, and otherwise raises a ``TypeError`` (wrong kind of thing) or a
``ValueError`` (right kind, wrong value) whose message names the argument, says what is
expected and shows what was given. ``bool`` is refused where a number is expected: ``True``
as a depth or a learning rate is always a slip.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any


def integer(value: Any, name: str, at_least: int = 1) -> int:
    """An integer no smaller than ``at_least`` (a count, a size, a seed)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        kind = {1: "a positive integer", 0: "a non-negative integer"}.get(at_least, f"an integer ≥ {at_least}")
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if value < at_least:
        raise ValueError(f"{name} must be at least {at_least}, got {value}")
    return int(value)


def number(value: Any, name: str, *, positive: bool = False, non_negative: bool = False) -> float:
    """A finite real number; with ``positive`` above 0, with ``non_negative`` at least 0."""
    kind = "positive" if positive else "non-negative" if non_negative else "real"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a finite {kind} number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0) or (non_negative and value < 0):
        raise ValueError(f"{name} must be a finite {kind} number, got {value}")
    return value
