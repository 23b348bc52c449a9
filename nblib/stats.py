"""Summaries of several runs: means that skip what did not finish, geometric means for ratios
that span orders of magnitude, and a rank correlation. Numbers in, numbers out."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import checks

Array = np.ndarray


def _values(values: Any, name: str) -> Array:
    return checks.array(values, name, finite=False, empty=True).astype(float).ravel()


def finite_mean(values: Any) -> float:
    """The mean of the finite values (NaN, without a warning, if there are none)."""
    v = _values(values, "values")
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def geometric_mean(values: Any) -> float:
    """exp(mean(log |v|)) over the finite, non-zero values (NaN if there are none): the typical
    size of a ratio that varies over orders of magnitude."""
    v = np.abs(_values(values, "values"))
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if len(v) else math.nan


def ranks(values: Any, name: str = "values") -> Array:
    """1-based ranks of ``values``, tied values sharing the mean of their ranks ([3, 1, 3] ->
    [2.5, 1, 2.5]); every value must be finite."""
    v = checks.array(values, name, ndim=1).astype(float)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(1, len(v) + 1)
    for value in np.unique(v[np.diff(np.sort(v), prepend=np.nan) == 0]):
        tied = v == value
        r[tied] = r[tied].mean()
    return r


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two equally long lists of finite numbers: +1 when they rise
    together, -1 when one falls as the other rises (ties get mean ranks)."""
    ra, rb = ranks(a, "a"), ranks(b, "b")
    if len(ra) != len(rb):
        raise ValueError(f"a and b must be equally long, got {len(ra)} and {len(rb)} values")
    if len(ra) < 2:
        raise ValueError(f"a rank correlation needs at least 2 pairs, got {len(ra)}")
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        raise ValueError("a rank correlation needs values that differ: every value of "
                         f"{'a' if np.ptp(ra) == 0 else 'b'} is the same")
    return float(np.corrcoef(ra, rb)[0, 1])
