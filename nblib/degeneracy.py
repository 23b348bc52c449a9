"""Measures of degeneracy: how many directions a matrix (or a layer's activations) really uses.

A matrix is degenerate when its singular values are very unequal: most of its output lies in a
few directions, and the rest are squashed towards zero. Orhan argues this, not the size of
the gradient, is what makes deep networks hard to train (chapter 3).
"""

from __future__ import annotations

import numpy as np

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
    s = singular_values(matrix)
    total = s.sum()
    if total == 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def fraction_small(matrix: Array, threshold: float = 1e-3) -> float:
    """The fraction of singular values below ``threshold`` times the largest one: the share of
    directions that the matrix all but wipes out."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise ValueError(f"threshold must be a number between 0 and 1, got {threshold!r}")
    s = singular_values(matrix)
    if s[0] == 0:
        return 1.0
    return float(np.mean(s < threshold * s[0]))
