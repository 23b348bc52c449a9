"""Helpers shared by the tests (imported by name: tests/ is on sys.path when pytest runs them;
not in conftest.py, whose name tests/browser/conftest.py also has)."""

import numpy as np


def relative_error(a, b) -> float:
    """||a - b|| over the larger of ||a|| and ||b|| (0 when both are zero): how far apart two
    computations of the same array are, whatever its scale. Tests import it from here."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale else 0.0
