"""Measures of degeneracy: how many directions a matrix (or a layer's activations) really uses.

A matrix is degenerate when its singular values are very unequal: most of its output lies in a
few directions, and the rest are squashed towards zero. Orhan argues this, not the size of
the gradient, is what makes deep networks hard to train (chapter 3).
"""

from __future__ import annotations

import numpy as np

from . import checks

Array = np.ndarray


def _as_matrix(matrix: Array, name: str = "matrix") -> Array:
    """A finite, real, non-empty 2-D array as float64 (torch tensors are accepted too)."""
    if hasattr(matrix, "detach"):  # a torch tensor
        matrix = matrix.detach().cpu().numpy()
    arr = np.asarray(matrix)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def singular_values(matrix: Array) -> Array:
    """The singular values of ``matrix``, largest first."""
    return np.linalg.svd(_as_matrix(matrix), compute_uv=False)


def effective_rank(matrix: Array) -> float:
    """Roy and Vetterli's effective rank: exp of the entropy of the normalised singular values.

    It is n for a matrix whose n singular values are all equal (an orthogonal matrix), 1 for a
    rank-one matrix, and in between for everything else; it is 0 for the zero matrix.
    """
    return float(spectrum_effective_rank(singular_values(matrix)))


def fraction_small(matrix: Array, threshold: float = 1e-3) -> float:
    """The fraction of singular values below ``threshold`` times the largest one: the share of
    directions that the matrix all but wipes out."""
    return float(spectrum_fraction_small(singular_values(matrix), threshold))


def stable_rank(matrix: Array) -> float:
    """||M||_F^2 / ||M||_2^2, the sum of the squared singular values over the largest squared:
    n for an orthogonal matrix, 1 for a rank-one matrix, 0 for the zero matrix. Unlike the
    effective rank it is dominated by the largest singular values."""
    s = _unit_scale(singular_values(matrix))
    return 0.0 if s[0] == 0 else float((s ** 2).sum() / s[0] ** 2)


def participation_ratio(activations: Array) -> float:
    """The effective dimension of a cloud of points (one per row): (sum of the eigenvalues of
    its covariance)^2 / (sum of their squares). It is d for points spread equally in d
    orthogonal directions, 1 for points on a line, 0 when all the points coincide."""
    x = _as_matrix(activations, "activations")
    if len(x) < 2:
        raise ValueError(f"activations needs at least 2 rows (points), got {len(x)}")
    x = _unit_scale(x, np.abs(x).max())
    eig = np.linalg.svd(x - x.mean(axis=0), compute_uv=False) ** 2
    total = (eig ** 2).sum()
    return 0.0 if total == 0 else float(eig.sum() ** 2 / total)


def _unit_scale(values: Array, top: Array | float | None = None) -> Array:
    """``values`` divided by the power of two that brings ``top`` (default: the largest value
    along the last axis) into [0.5, 1). Every measure here is scale-invariant, and dividing by a
    power of two is exact, so the result is unchanged to the bit, but squares of singular values
    near 1e300 no longer overflow and those near 1e-320 no longer underflow."""
    if top is None:
        top = values.max(axis=-1, keepdims=True)
    _, exponent = np.frexp(top)
    return np.ldexp(values, -exponent)


# --- the same measures for many spectra at once ---------------------------------------------------
def _as_spectra(s: Array) -> Array:
    """Singular values along the last axis: a finite, non-negative real array with at least one axis."""
    arr = np.asarray(s)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"singular values must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"singular values need a non-empty last axis, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("singular values must be finite and non-negative")
    return arr


def spectrum_effective_rank(s: Array) -> Array:
    """``effective_rank`` computed from singular values ``s`` (along the last axis), for a whole
    array of spectra at once, e.g. shape (runs, steps, n) -> (runs, steps)."""
    s = _unit_scale(_as_spectra(s))
    total = s.sum(axis=-1, keepdims=True)
    p = np.divide(s, total, out=np.zeros_like(s), where=total > 0)
    entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)
    return np.where(total[..., 0] > 0, np.exp(entropy), 0.0)


def spectrum_fraction_small(s: Array, threshold: float = 1e-3) -> Array:
    """``fraction_small`` computed from singular values ``s`` (along the last axis, in any order),
    for a whole array of spectra at once."""
    threshold = checks.fraction(threshold, "threshold")
    s = _as_spectra(s)
    top = s.max(axis=-1, keepdims=True)
    return np.where(top[..., 0] > 0, np.mean(s < threshold * top, axis=-1), 1.0)
