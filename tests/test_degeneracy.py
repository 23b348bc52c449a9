import numpy as np
import pytest

from nblib import degeneracy


def test_effective_rank_of_known_matrices():
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((8, 8)))
    assert degeneracy.effective_rank(q) == pytest.approx(8.0, rel=1e-12)
    assert degeneracy.effective_rank(3 * np.eye(5)) == pytest.approx(5.0, rel=1e-12)
    u, v = np.arange(1, 5.0), np.arange(1, 4.0)
    assert degeneracy.effective_rank(np.outer(u, v)) == pytest.approx(1.0, rel=1e-9)
    assert degeneracy.effective_rank(np.zeros((3, 3))) == 0.0
    # two equal singular values and the rest zero: exactly 2
    assert degeneracy.effective_rank(np.diag([2.0, 2.0, 0.0, 0.0])) == pytest.approx(2.0)


def test_effective_rank_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    assert degeneracy.effective_rank(torch.eye(4)) == pytest.approx(4.0)


def test_fraction_small_counts_squashed_directions():
    m = np.diag([1.0, 0.5, 1e-4, 1e-6])
    assert degeneracy.fraction_small(m, threshold=1e-3) == 0.5
    assert degeneracy.fraction_small(np.eye(3)) == 0.0
    assert degeneracy.fraction_small(np.zeros((2, 2))) == 1.0


def test_singular_values_largest_first():
    s = degeneracy.singular_values(np.diag([1.0, 3.0, 2.0]))
    np.testing.assert_allclose(s, [3.0, 2.0, 1.0])


@pytest.mark.parametrize("bad, error, message", [
    (np.zeros(3), ValueError, "non-empty 2-D array"),
    (np.zeros((0, 3)), ValueError, "non-empty 2-D array"),
    (np.array([[1.0, np.nan]]), ValueError, "NaN or infinity"),
    (np.array([["a"]]), TypeError, "real numeric array"),
])
def test_bad_matrices_are_refused(bad, error, message):
    with pytest.raises(error, match=message):
        degeneracy.effective_rank(bad)


@pytest.mark.parametrize("threshold", [0, 1, -0.1, "0.1", True])
def test_bad_thresholds_are_refused(threshold):
    with pytest.raises(ValueError, match="threshold must be a number between 0 and 1"):
        degeneracy.fraction_small(np.eye(2), threshold=threshold)
