"""Argument checks shared by every nblib module.

Each check takes the value and the argument's name, returns the value converted to what the
module works with (a plain Python ``int`` or ``float``, a numpy array, ...), and otherwise raises
a ``TypeError`` (wrong kind of thing) or a ``ValueError`` (right kind, wrong value) whose
message names the argument, says what is expected and shows what was given. ``bool`` is
refused where a number is expected: ``True`` as a depth or a learning rate is always a slip.
Numpy scalars (``np.int64(3)``, ``np.float32(0.1)``) are accepted wherever Python numbers are.

This module imports numpy only; the checks on torch tensors live in ``nblib.torchutil``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

SEED_MAX = 2 ** 64 - 1          # the largest seed both numpy and torch accept
MAX_VALUES = 10 ** 8            # the most numbers a function builds at once (800 MB in float64)


def integer(value: Any, name: str, at_least: int = 1, at_most: int | None = None) -> int:
    """An integer no smaller than ``at_least`` (a count, a size) and, if given, no larger than
    ``at_most`` (a bound on what can sensibly be computed or kept in memory)."""
    if at_most is not None:
        kind = f"an integer from {at_least} to {at_most}"
    else:
        kind = ({1: "a positive integer", 0: "a non-negative integer"}
                .get(at_least, f"an integer ≥ {at_least}"))
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if at_most is not None and not at_least <= value <= at_most:
        raise ValueError(f"{name} must be {kind}, got {value}")
    if value < at_least:
        raise ValueError(f"{name} must be at least {at_least}, got {value}")
    return int(value)


def size(values: int, what: str, limit: int = MAX_VALUES) -> int:
    """A number of values to compute and keep in memory, at most ``limit``; ``what`` describes
    them with the arguments that set their number, e.g. "the orbit, (steps + 1) x x.size"."""
    if values > limit:
        raise ValueError(f"{what} would be {values:,} numbers, more than the {limit:,} nblib computes "
                         f"at once: ask for fewer")
    return values


def number(value: Any, name: str, *, positive: bool = False, non_negative: bool = False) -> float:
    """A finite real number; with ``positive`` above 0, with ``non_negative`` at least 0."""
    kind = "positive" if positive else "non-negative" if non_negative else "real"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a finite {kind} number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0) or (non_negative and value < 0):
        raise ValueError(f"{name} must be a finite {kind} number, got {value}")
    return value


def fraction(value: Any, name: str) -> float:
    """A number strictly between 0 and 1."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number between 0 and 1, got {value!r}")
    if not 0 < float(value) < 1:
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def boolean(value: Any, name: str) -> bool:
    """True or False (numpy's ``np.True_`` too); never a number or a string."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def text(value: Any, name: str) -> str:
    """A string."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r}")
    return value


def choice(value: Any, name: str, allowed: Sequence[Any]) -> Any:
    """One of ``allowed`` (strings, numbers or None), compared without ever calling ``==`` on an
    array: a string equals a string, a number (not a bool) a number of the same value."""
    for option in allowed:
        if value is option or (isinstance(value, str) and isinstance(option, str) and value == option) \
                or (_plain_number(value) and _plain_number(option) and value == option):
            return option
    raise ValueError(f"{name} must be one of {', '.join(map(_shown, allowed))}, got {value!r}")


def _plain_number(value: Any) -> bool:
    return isinstance(value, (Real, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _shown(option: Any) -> str:
    return f"{option:g}" if isinstance(option, float) else repr(option)


def instance(value: Any, name: str, kind: type | tuple[type, ...], what: str) -> Any:
    """An instance of ``kind``, described to the reader as ``what`` (e.g. "an nblib Network")."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def function(value: Any, name: str) -> Any:
    """Something that can be called."""
    if not callable(value):
        raise TypeError(f"{name} must be a function, got {value!r}")
    return value


def settings(changes: dict[str, Any], known: Sequence[str], what: str) -> dict[str, Any]:
    """Keyword changes that all name one of the ``known`` settings of ``what`` (e.g. "a Config")."""
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise TypeError(f"{what} has no setting {', '.join(map(repr, unknown))}; "
                        f"its settings are {', '.join(known)}")
    return changes


def seed(value: Any, name: str = "seed", *, generator: bool = False) -> Any:
    """A seed for numpy's or torch's generators: an integer from 0 to 2**64 - 1 (both accept
    those). With ``generator``, a ``numpy.random.Generator`` or None (fresh randomness) is
    accepted too, and returned as it is."""
    if generator and (value is None or isinstance(value, np.random.Generator)):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or not 0 <= value <= SEED_MAX:
        extra = ", a numpy Generator or None" if generator else ""
        error = (ValueError if isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))
                 else TypeError)
        raise error(f"{name} must be an integer from 0 to 2**64 - 1{extra}, got {value!r}")
    return int(value)


def seeds(values: Any, name: str = "seeds") -> list[int]:
    """A non-empty list of seeds, such as ``range(10)`` or ``[0, 1, 2]``."""
    if isinstance(values, (str, bytes, Integral)) or not isinstance(values, (Iterable, np.ndarray)):
        raise TypeError(f"{name} must be a list of seeds such as range(10) or [0, 1, 2], got {values!r}")
    checked = [seed(s, f"every entry of {name}") for s in values]
    if not checked:
        raise ValueError(f"{name} is empty: give at least one seed, e.g. range(10)")
    return checked


def array(value: Any, name: str, *, ndim: int | None = None, finite: bool = True,
          empty: bool = False) -> np.ndarray:
    """Real numbers as a numpy array (of their own dtype): ``ndim`` axes if given, at least one
    entry unless ``empty``, and every entry finite unless ``finite=False``."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:       # e.g. a ragged list of lists
        raise ValueError(f"{name} must be an array of numbers: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if not empty and arr.size == 0:
        raise ValueError(f"{name} is empty, got shape {arr.shape}")
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def labels(value: Any, name: str, n_classes: int | None = None, n_examples: int | None = None, *,
           owner: str = "") -> np.ndarray:
    """Integer class labels, one per example (``n_examples`` of them if given), each in
    [0, ``n_classes``) if given and never negative. ``owner`` ends the range message, e.g.
    " for a network with 10 outputs"."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers (class indices), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if n_examples is not None and len(arr) != n_examples:
        raise ValueError(f"got {n_examples} inputs but {len(arr)} {name}; they must match")
    if len(arr):
        low, high = arr.min(), arr.max()
        top = np.iinfo(np.int64).max if n_classes is None else n_classes - 1
        if low < 0 or high > top:
            span = f"[0, {top}]{owner}" if n_classes is not None else "[0, 2**63 - 1] (class indices)"
            raise ValueError(f"{name} must lie in {span}, got values from {low} to {high}")
    return arr


def configs_with_seeds(configs: Any, seeds: Any, kind: type, what: str) -> tuple[list[Any], list[int]]:
    """A non-empty list of ``kind`` objects (``what`` names the type, e.g. "testbed.Config") and
    one seed for each, as two lists: what a trainer of many networks at once is handed."""
    if isinstance(configs, kind) or not isinstance(configs, Sequence) or isinstance(configs, (str, bytes)) \
            or not configs:
        raise TypeError(f"configs must be a non-empty list of {what}, one per network")
    for i, c in enumerate(configs):
        instance(c, f"configs[{i}]", kind, f"a {what}")
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise TypeError("seeds must be a list with one seed per config")
    seeds = [seed(s, "every seed") for s in seeds]
    if len(seeds) != len(configs):
        raise ValueError(f"configs and seeds must have one entry per network, "
                         f"got {len(configs)} and {len(seeds)}")
    return list(configs), seeds
