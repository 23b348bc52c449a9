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


@pytest.mark.parametrize("threshold, error", [(0, ValueError), (1, ValueError), (-0.1, ValueError),
                                              (np.nan, ValueError), ("0.1", TypeError), (True, TypeError)])
def test_bad_thresholds_are_refused(threshold, error):
    with pytest.raises(error, match="threshold must be a number between 0 and 1"):
        degeneracy.fraction_small(np.eye(2), threshold=threshold)


# --- stable rank, participation ratio, and the measures for many spectra at once ------------------
def test_stable_rank_of_known_matrices():
    assert degeneracy.stable_rank(np.eye(5)) == pytest.approx(5.0)
    assert degeneracy.stable_rank(np.diag([2.0, 1.0])) == pytest.approx(1.25)
    assert degeneracy.stable_rank(np.outer([1.0, 2.0], [3.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert degeneracy.stable_rank(np.zeros((3, 2))) == 0.0


def test_participation_ratio_counts_the_directions_a_cloud_fills():
    axes = np.vstack([np.eye(3), -np.eye(3)])            # +-e1, +-e2, +-e3: covariance proportional to I
    assert degeneracy.participation_ratio(axes) == pytest.approx(3.0)
    line = np.outer(np.linspace(-1, 1, 9), [1.0, 2.0, -1.0]) + 5.0  # points on a line, away from 0
    assert degeneracy.participation_ratio(line) == pytest.approx(1.0)
    assert degeneracy.participation_ratio(np.ones((4, 3))) == 0.0
    # two directions with variances 4 and 1: (4 + 1)^2 / (16 + 1)
    pts = np.array([[2.0, 0], [-2.0, 0], [0, 1.0], [0, -1.0]])
    assert degeneracy.participation_ratio(pts) == pytest.approx(25 / 17)


def test_spectrum_measures_agree_with_the_matrix_ones():
    rng = np.random.default_rng(1)
    mats = ([rng.standard_normal((6, 6)) @ np.diag([1, 1, 0.1, 1e-5, 1e-6, 0]) for _ in range(4)]
            + [np.zeros((6, 6))])
    s = np.array([degeneracy.singular_values(m) for m in mats]).reshape(5, 6)
    er = degeneracy.spectrum_effective_rank(s)
    fs = degeneracy.spectrum_fraction_small(s, 1e-3)
    assert er.shape == fs.shape == (5,)
    np.testing.assert_allclose(er, [degeneracy.effective_rank(m) for m in mats], rtol=1e-12)
    np.testing.assert_allclose(fs, [degeneracy.fraction_small(m, 1e-3) for m in mats])
    # leading axes are kept, and the order of the singular values does not matter
    assert degeneracy.spectrum_effective_rank(s.reshape(5, 1, 6)).shape == (5, 1)
    np.testing.assert_allclose(degeneracy.spectrum_fraction_small(s[:, ::-1]), fs)


@pytest.mark.parametrize("bad, error, message", [
    (np.array([1.0, -1.0]), ValueError, "finite and non-negative"),
    (np.array([1.0, np.inf]), ValueError, "finite and non-negative"),
    (np.zeros((2, 0)), ValueError, "non-empty last axis"),
    (np.float64(1.0), ValueError, "non-empty last axis"),
    (np.array(["a"]), TypeError, "real numeric array"),
])
def test_bad_spectra_are_refused(bad, error, message):
    with pytest.raises(error, match=message):
        degeneracy.spectrum_effective_rank(bad)


def test_bad_arguments_of_the_new_measures_are_refused():
    with pytest.raises(ValueError, match="threshold must be a number between 0 and 1"):
        degeneracy.spectrum_fraction_small(np.ones(3), threshold=2)
    with pytest.raises(ValueError, match="activations needs at least 2 rows"):
        degeneracy.participation_ratio(np.ones((1, 3)))
    with pytest.raises(ValueError, match="activations must be a non-empty 2-D array"):
        degeneracy.participation_ratio(np.ones(3))
    with pytest.raises(ValueError, match="matrix must be a non-empty 2-D array"):
        degeneracy.stable_rank(np.ones(3))


# --- very large and very small numbers (issue 11) ---------------------------------------------------
@pytest.mark.parametrize("scale", [1e-320, 1e-300, 1.0, 1e300])
def test_the_measures_do_not_depend_on_the_scale_even_near_the_ends_of_float64(scale):
    m = np.diag([3.0, 2.0, 1.0, 1.0])
    assert degeneracy.stable_rank(scale * m) == pytest.approx(15 / 9, rel=1e-12)
    assert degeneracy.effective_rank(scale * m) == pytest.approx(degeneracy.effective_rank(m), rel=1e-12)
    cloud = np.vstack([np.eye(3), -np.eye(3)])
    assert degeneracy.participation_ratio(scale * cloud) == pytest.approx(3.0, rel=1e-12)


def test_spectra_near_the_largest_float_keep_their_effective_rank():
    assert degeneracy.spectrum_effective_rank(np.array([1e308, 1e308])) == pytest.approx(2.0)
    assert (degeneracy.spectrum_effective_rank(np.array([[1e308, 1e308, 1e308], [1, 0, 0]])).tolist()
            == pytest.approx([3.0, 1.0]))


def test_rescaling_leaves_ordinary_spectra_unchanged_to_the_bit():
    s = np.random.default_rng(3).random((4, 7)) * 30
    total = s.sum(axis=-1, keepdims=True)
    p = s / total
    expected = np.exp(-np.sum(p * np.log(p), axis=-1))
    np.testing.assert_array_equal(degeneracy.spectrum_effective_rank(s), expected)
