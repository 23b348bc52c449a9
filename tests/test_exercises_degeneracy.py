import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nblib.exercises import Feedback  # noqa: E402
from nblib.exercises import degeneracy as ex  # noqa: E402

RESULTS = {"A": np.array([0.8, 0.78]), "B": np.array([0.37, 0.38]), "C": np.array([0.89, 0.9])}


def test_candidates_are_what_the_solution_says():
    c = ex.candidates(2)
    assert set(c) == {"A", "B", "C"} and all(w.shape == (2, 30, 64, 64) for w in c.values())
    b = c["B"].double()
    eye = torch.eye(64, dtype=torch.float64)
    assert (b @ b.transpose(-1, -2) - 0.95 ** 2 * eye).abs().max().item() < 1e-5
    assert (torch.linalg.matrix_rank(c["C"].double()) == 32).all()
    assert (torch.linalg.matrix_rank(c["A"].double()) == 64).all()


@pytest.mark.parametrize("answer", [["B", "A", "C"], ("b", "a", "c"), "BAC", "B > A > C", "b, a, c"])
def test_the_right_ranking_passes_in_any_reasonable_spelling(answer):
    fb = ex.check_ranking(answer, RESULTS)
    assert isinstance(fb, Feedback) and fb.passed is True
    assert [r[0] for r in fb.rows] == ["A", "B", "C"]


def test_a_wrong_ranking_says_what_is_wrong():
    fb = ex.check_ranking(["B", "C", "A"], RESULTS)
    assert fb.passed is False and "A beat C" in str(fb)
    fb = ex.check_ranking(["A", "B", "C"], RESULTS)
    assert fb.passed is False and "The fastest was B, not A" in str(fb)


@pytest.mark.parametrize("answer, message", [
    (None, "You have not given a ranking yet"),
    (..., "You have not given a ranking yet"),
    (["A", "B"], "should name A, B and C once each"),
    (["A", "A", "B"], "should name A, B and C once each"),
    (3, "should be a list of the names A, B and C"),
])
def test_unusable_answers_get_feedback_not_a_traceback(answer, message):
    fb = ex.check_ranking(answer, RESULTS)
    assert fb.passed is False and message in str(fb)


def test_race_trains_the_candidates_and_is_cached():
    r = ex._race(1, 3)
    assert set(r) == {"A", "B", "C"} and all(v.shape == (1,) and np.isfinite(v).all() for v in r.values())
    assert ex._race(1, 3) is r
    assert not hasattr(ex, "race")                      # the answer is not offered as a tool


def folded_gain(x):
    half = len(x) // 2
    return float(np.sum((x[:half] + x[half:]) ** 2) / np.sum(x ** 2))


def test_check_folding(monkeypatch):
    assert ex.check_folding(folded_gain, 1, np.float64(1.0)).passed is True
    gaussian = ex.check_folding(lambda x: 1.0, 1, 1)
    assert gaussian.passed is False and "[B, B] x = B (x_1 + x_2)" in str(gaussian)
    wrong = ex.check_folding(folded_gain, 2, 0.5)
    assert (wrong.passed is False and "backward_gain is not 2" in str(wrong)
            and "average_gain is not 0.5" in str(wrong))
    monkeypatch.setenv("NBLIB_GRADING", "1")
    assert ex.check_folding(folded_gain, 1, 1).passed is True
    table = {tuple(v): folded_gain(np.array(v)) for v in ex.FOLD_VECTORS}
    with pytest.raises(AssertionError, match="raised KeyError"):
        ex.check_folding(lambda x: table[tuple(x)], 1, 1)


def test_check_fold_twice():
    rank = ex._fold2_rank()
    assert 1 < rank < 4
    fb = ex.check_fold_twice(rank, "slower")
    assert fb.passed is True and "1 of its 3 runs diverged" in str(fb)
    wrong = ex.check_fold_twice(7.1, "faster")
    assert wrong.passed is False and "not 7.1" in str(wrong) and 'Not "faster"' in str(wrong)
    assert "should be one of" in str(ex.check_fold_twice(rank, "quicker"))
