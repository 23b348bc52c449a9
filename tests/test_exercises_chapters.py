"""Tests for the checkers of chapters 1, 4 and 5 (nblib.exercises.vanishing, .remedies, .recurrent):
right answers pass in any reasonable form, also on the fresh inputs drawn when grading; wrong answers
fail and say why; an empty answer gets feedback, never a traceback. The expensive measurements
(training runs) are replaced by small stand-ins where only the checker's logic is under test; the
real runs are exercised when the reference solutions are graded (tests/test_grading.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from nblib.exercises import Feedback, NotYet
from nblib.exercises import vanishing

ROOT = Path(__file__).resolve().parent.parent


def glued(notebook: str) -> dict[str, object]:
    """The values a chapter glued, by name, from its stored outputs."""
    values = {}
    for cell in json.loads((ROOT / "chapters" / notebook).read_text())["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            text = out.get("data", {}).get("application/papermill.record/text/plain")
            if name and text is not None:
                values[name] = text
    return values


@pytest.fixture
def grading(monkeypatch):
    """Grading mode with a fixed seed; yields a function that changes the seed."""
    monkeypatch.setenv("NBLIB_GRADING", "1")

    def seed(value: int) -> None:
        monkeypatch.setenv("NBLIB_GRADING_SEED", str(value))

    seed(0)
    return seed


# --- chapter 1 --------------------------------------------------------------------------------------
def test_chapter_sd_is_what_chapter_one_measured():
    values = glued("01_vanishing_gradients.ipynb")
    for depth, sd in vanishing.CHAPTER_SD.items():
        assert float(values[f"acc_sd_{depth}"]) == pytest.approx(sd, rel=1e-9), depth


def test_check_sigmoid_slope(grading):
    for seed in range(3):
        grading(seed)
        assert vanishing.check_sigmoid_slope(lambda s: s * (1 - s), 0.25, 0).passed is True
    with pytest.raises(NotYet, match="sigma' is"):
        vanishing.check_sigmoid_slope(lambda s: s * (1 - s) / 2, 0.25, 0)


def test_check_sigmoid_slope_explains():
    from nblib.networks import sigmoid_prime
    fb = vanishing.check_sigmoid_slope(sigmoid_prime, np.float32(0.25), np.int64(0))
    assert fb.passed is False and "treating s as z" in str(fb) and "The largest slope is 1/4" in str(fb)
    fb = vanishing.check_sigmoid_slope(lambda s: s * (1 - s), 0.5, 1.0)
    assert fb.passed is False and "not 0.5" in str(fb) and "different z from 1" in str(fb)
    assert "should be a function" in str(vanishing.check_sigmoid_slope(..., ..., ...))


def test_check_width():
    wide = vanishing.neighbour_ratios(100)
    assert vanishing.check_width("same", wide).passed is True
    assert vanishing.check_width(" SAME", list(wide * 1.005)).passed is True
    fb = vanishing.check_width("grow", [1, 2, 3])
    assert fb.passed is False and "do not grow" in str(fb) and "not the medians" in str(fb)
    assert "shape (3,)" in str(vanishing.check_width("same", [1, 2]))


def test_check_cancellation():
    nielsen, per_image = vanishing.error_lengths()
    assert vanishing.check_cancellation(per_image, True).passed is True
    fb = vanishing.check_cancellation(nielsen, False)
    assert (fb.passed is False and "Those are Nielsen's speeds" in str(fb)
            and "order of the two columns" in str(fb))


def test_check_seeds(grading):
    def needed(a, b, d, z):
        return math.ceil(z ** 2 * (a ** 2 + b ** 2) / d ** 2)

    sd2, sd4 = vanishing.CHAPTER_SD[2], vanishing.CHAPTER_SD[4]
    k2, kp = needed(sd2, sd4, 0.37, 2), needed(sd2, sd4, 0.37, 2.8)
    average = np.mean(list(vanishing.CHAPTER_SD.values()))
    assert needed(average, average, 0.37, 2) < k2 < kp          # averaging all four depths understates it
    for seed in range(3):
        grading(seed)
        assert vanishing.check_seeds(needed, np.int64(k2), float(kp)).passed is True
    with pytest.raises(NotYet, match="should be"):
        vanishing.check_seeds(lambda a, b, d, z: z ** 2 * (a ** 2 + b ** 2) / d ** 2, 8, 16)


def test_check_seeds_explains_the_average_spread():
    def needed(a, b, d, z):
        return math.ceil(z ** 2 * (a ** 2 + b ** 2) / d ** 2)

    fb = vanishing.check_seeds(needed, 3, 1000)
    assert fb.passed is False and "k_two_se is not 3" in str(fb) and "not an average" in str(fb)
    fb = vanishing.check_seeds(lambda a, b, d, z: z ** 2 * (a ** 2 + b ** 2) / d ** 2, 3, 1000)
    assert fb.passed is False and "Round up" in str(fb)


def test_check_weight_movement(monkeypatch):
    moved = np.array([3.2, 2.0, 2.1, 2.8, 5.8])
    monkeypatch.setattr(vanishing, "_movement", lambda: moved)
    assert vanishing.check_weight_movement(list(moved * 1.01), "ba").passed is True
    fb = vanishing.check_weight_movement(moved, "ABD")
    assert fb.passed is False and "D: this one is not true" in str(fb)
    fb = vanishing.check_weight_movement(moved / 2, ["A", "B"])
    assert fb.passed is False and "differ from the measured ones" in str(fb)


def test_train_for_movement_hands_out_copies(monkeypatch):
    calls = []

    def trained(*args):
        calls.append(1)
        net = vanishing.networks.Network([4, 3, 2], seed=0)
        return net, [w.copy() for w in net.weights]

    monkeypatch.setattr(vanishing, "_trained_for_movement", trained)
    net, start = vanishing.train_for_movement()
    net.weights[0][:] = 0                              # a reader's slip cannot change what the checker sees
    assert calls and start[0].shape == (3, 4)


# --- chapter 4 ---------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")
from nblib.exercises import recurrent as rec_ex  # noqa: E402
from nblib.exercises import remedies  # noqa: E402


def test_check_leaky_variance(grading):
    for seed in range(3):
        grading(seed)
        assert remedies.check_leaky_variance(lambda n, a: 2 / ((1 + a * a) * n), np.int64(10)).passed is True
    with pytest.raises(NotYet, match="should be"):
        remedies.check_leaky_variance(lambda n, a: 2 / n, 10)


def test_check_leaky_variance_explains():
    fb = remedies.check_leaky_variance(lambda n, a: 2 / n, 96)
    assert fb.passed is False and "That is He's 2/n" in str(fb) and "Not 96 layers" in str(fb)


def fake_run(probe: dict, final: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(probe=probe, final=final or {})


def test_check_adam(monkeypatch):
    monkeypatch.setattr(remedies, "_run",
                        lambda config, seed: fake_run({"grad_norm": np.full((24, 16), 1e-10)}))
    typical = 1e-10 / math.sqrt(784 * 48)
    assert remedies.check_adam(typical * 2, "a").passed is True
    fb = remedies.check_adam(1e-8, "B")
    assert (fb.passed is False and "more than three times off" in str(fb)
            and "A: this one is true too" in str(fb))


def test_check_dying(monkeypatch):
    records = np.zeros((24, 16))
    records[0] = 0.1
    records[1:, :8], records[1:, 8:] = 0.2, 0.4
    records[5:, :] += 0.1                              # the share goes up and down
    records[10:, :] -= 0.15
    monkeypatch.setattr(remedies, "_run", lambda config, seed: fake_run({"dead": records}))
    assert remedies.check_dying(10.0, True, "B").passed is True
    fb = remedies.check_dying(25, False, "A")
    assert fb.passed is False and "not 25%" in str(fb) and "Compare the two halves" in str(fb) \
        and "A: this one is not true" in str(fb)


def test_dying_story_reads_the_records():
    flat = np.tile(np.r_[0.1, np.full(23, 0.3)], (3, 1))
    assert remedies._dying_story(flat) == "A"
    assert remedies._dying_story(np.tile(np.linspace(0.1, 0.5, 24), (3, 1))) == "C"
    assert remedies._dying_story(np.zeros((3, 24))) == "D"


def test_residual_growth_and_its_checker(monkeypatch):
    monkeypatch.setattr(remedies, "residual_growth",
                        lambda alpha, seeds=5: (1 + 2 * alpha / math.pi + alpha ** 2) ** 15)
    remedies._largest_alpha.cache_clear()
    try:
        best = remedies._largest_alpha()
        assert remedies.check_residual_scale(best * 0.95, (1 + 0.4 ** 2) ** 15, "A").passed is True
        fb = remedies.check_residual_scale(0.4, 9.0, "AB")
        assert fb.passed is False and "more than tenfold" in str(fb) and "B: this one is not true" in str(fb)
        assert "a larger alpha does too" in str(remedies.check_residual_scale(best / 2, 9.27, "A"))
    finally:
        remedies._largest_alpha.cache_clear()


def test_residual_growth_validates_alpha():
    with pytest.raises(ValueError, match="alpha must be a finite non-negative number"):
        remedies.residual_growth(-1)
    with pytest.raises(TypeError, match="alpha must be a finite non-negative number"):
        remedies.residual_growth("0.1")


def test_run_hands_out_copies(monkeypatch):
    original = fake_run({"dead": np.zeros((2, 2))})
    monkeypatch.setattr(remedies, "_run", lambda config, seed: original)
    copy = remedies.run(remedies.BASE, 0)
    copy.probe["dead"][:] = 1
    assert original.probe["dead"].sum() == 0
    with pytest.raises(TypeError, match="config must be a testbed.Config"):
        remedies.run("baseline", 0)


# --- chapter 5 -----------------------------------------------------------------------------------------
def test_check_bound(monkeypatch):
    monkeypatch.setattr(rec_ex, "_bound_numbers", lambda: (1.09, 0.64))
    assert rec_ex.check_bound(1.09, np.float32(0.64), "b, a").passed is True
    fb = rec_ex.check_bound(0.64, 1.09, "C")
    assert (fb.passed is False and "largest singular value is not 0.64" in str(fb)
            and "C: this one is not true" in str(fb))


def test_decay_per_step():
    grads = 0.5 ** np.arange(50, 0, -1)              # each step back halves the gradient
    assert rec_ex.decay_per_step(grads) == pytest.approx(0.5)


def test_check_forget_path(grading):
    sigma = lambda b: 1 / (1 + math.exp(-b))  # noqa: E731
    for seed in range(3):
        grading(seed)
        assert rec_ex.check_forget_path(np.prod, 0.5 ** 50, sigma(1) ** 50).passed is True
    with pytest.raises(NotYet, match="direct path carries"):
        rec_ex.check_forget_path(np.sum, 0.5 ** 50, sigma(1) ** 50)


def test_check_forget_path_explains():
    fb = rec_ex.check_forget_path(np.prod, 0.5, 0.73)
    assert fb.passed is False and "gain_bias_0 is not 0.5" in str(fb) and "multiplies by sigma(1)" in str(fb)


def test_check_lengths(monkeypatch):
    monkeypatch.setattr(rec_ex, "solved_at", lambda length, seed=0: {30: 0.09, 40: -0.04}[length])
    assert rec_ex.check_lengths(False, np.bool_(False)).passed is True
    fb = rec_ex.check_lengths(True, False)
    assert fb.passed is False and "does not solve more than half" in str(fb) and "At T = 20" in str(fb)
    assert "should be True or False" in str(rec_ex.check_lengths("no", False))


@pytest.mark.parametrize("check, arity", [
    (vanishing.check_sigmoid_slope, 3), (vanishing.check_width, 2), (vanishing.check_cancellation, 2),
    (vanishing.check_seeds, 3), (vanishing.check_weight_movement, 2), (remedies.check_leaky_variance, 2),
    (remedies.check_adam, 2), (remedies.check_dying, 3), (remedies.check_residual_scale, 3),
    (rec_ex.check_bound, 3), (rec_ex.check_forget_path, 3), (rec_ex.check_lengths, 2)])
def test_an_empty_answer_is_not_yet_and_never_a_traceback(check, arity):
    fb = check(*[...] * arity)
    assert isinstance(fb, Feedback) and fb.passed is False and "Traceback" not in str(fb)
    assert "bug in the book" not in str(fb)


def test_solved_at_takes_the_chapter_seeds_only():
    with pytest.raises(ValueError, match=r"seed must be one of 0, 1, 2, got 7"):
        rec_ex.solved_at(30, 7)
