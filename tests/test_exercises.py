"""Tests for nblib.exercises (the shared checking machinery) and nblib.exercises.unstable
(chapter 2's checkers): right answers pass, wrong ones fail with the right explanation, and no
answer, however broken, produces a traceback."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

import nblib.exercises as exercises
from nblib.exercises import (CheckerError, Feedback, NotYet, OutOfTime, Problem, TooSlow, as_array, as_bool,
                             as_choices, as_function, as_number, as_word, call, checker, close_enough,
                             describe, grade_choices, sample, show_choices)
from nblib.exercises import unstable

matplotlib.use("Agg")


def text(feedback: Feedback) -> str:
    assert isinstance(feedback, Feedback)
    return str(feedback)


# --- Feedback -----------------------------------------------------------------------------------
def test_feedback_verdicts_chain_and_render():
    fb = Feedback("T").correct("good").hint("try x").info("note")
    assert fb.passed is True and fb.verdict == "passed"
    fb.wrong("bad")
    assert fb.passed is False
    fb.correct("still good")
    assert fb.passed is False                              # a wrong line is final
    out = str(fb)
    assert out.splitlines()[0] == "T: not yet" and "✔ good" in out and "✘ bad" in out and "→ try x" in out
    assert repr(fb) == out
    html = fb._repr_html_()
    assert "nblib-feedback" in html and "not yet" in html and "✘</span> bad" in html


def test_feedback_escapes_html_and_shows_a_table():
    fb = Feedback("<b>").info("a < b").table(["x", "y"], [[1, "<i>"]])
    html = fb._repr_html_()
    assert "&lt;b&gt;" in html and "a &lt; b" in html and "&lt;i&gt;" in html and "<table" in html
    lines = str(fb).splitlines()
    assert lines[-2].split() == ["x", "y"] and lines[-1].split() == ["1", "<i>"]
    assert Feedback("no verdict").verdict == "no verdict"


@pytest.mark.parametrize("bad", [None, 3, b"x"])
def test_feedback_needs_string_title_and_text(bad):
    with pytest.raises(TypeError, match="title must be a string"):
        Feedback(bad)
    with pytest.raises(TypeError, match="feedback text must be a string"):
        Feedback("t").info(bad)


# --- the checker decorator ----------------------------------------------------------------------------
def test_checker_turns_problems_and_bugs_into_feedback():
    @checker("Demo")
    def check(value):
        number = as_number(value, "your answer")
        if number < 0:
            raise ZeroDivisionError("bug")                  # a bug in the checker, not the answer
        return Feedback("Demo").correct(f"got {number:g}")

    assert check(2).passed is True
    problem = check("2")
    assert (problem.passed is False and "should be a number" in str(problem)
            and "Remove the quotes" in str(problem))
    bug = check(-1)
    assert bug.passed is None and "bug in the book" in str(bug) and "ZeroDivisionError" in str(bug)
    assert "Traceback" not in str(bug)


def test_checker_refuses_non_feedback_results_politely():
    @checker("Demo")
    def check():
        return 42

    assert "returned int" in str(check())
    with pytest.raises(TypeError, match="checker title must be a string"):
        checker(3)


# --- turning answers into numbers, arrays and functions ---------------------------------------------
@pytest.mark.parametrize("value, expected", [(2, 2.0), (2.5, 2.5), (np.float32(1.5), 1.5), (np.int64(3), 3.0),
                                             (np.array([4.0]), 4.0), (np.array(5), 5.0)])
def test_as_number_accepts_numbers(value, expected):
    assert as_number(value, "x") == expected


@pytest.mark.parametrize("value, message", [
    (None, "should be a number, but it is NoneType None"), (..., "ellipsis Ellipsis"), ("1", "str '1'"),
    (True, "bool True"), ([1, 2], "list"), (np.array([1.0, 2.0]), "ndarray"),
    (float("nan"), "is NaN"), (math.inf, "is infinite"),
])
def test_as_number_refuses_non_numbers_with_a_message(value, message):
    with pytest.raises(Problem, match=message.replace("(", r"\(").replace(")", r"\)")):
        as_number(value, "x")


def test_as_number_options():
    assert as_number(3.0, "n", integer=True) == 3 and isinstance(as_number(3.0, "n", integer=True), int)
    with pytest.raises(Problem, match="whole number"):
        as_number(2.5, "n", integer=True)
    with pytest.raises(Problem, match="should be positive"):
        as_number(0, "n", positive=True)


def test_as_array():
    np.testing.assert_array_equal(as_array([1, 2], "v", shape=(2,)), [1.0, 2.0])
    with pytest.raises(Problem, match="shape \\(3,\\)"):
        as_array([1, 2], "v", shape=(3,))
    with pytest.raises(Problem, match="1 NaN or infinite entry"):
        as_array([1, np.nan], "v")
    with pytest.raises(Problem, match="array of numbers"):
        as_array("abc", "v")
    with pytest.raises(Problem, match="numpy could not read it"):
        as_array([[1, 2], [3]], "v")


def test_as_function_and_call():
    assert as_function(len, "f") is len
    with pytest.raises(Problem, match="should be a function, but it is int 3"):
        as_function(3, "f")

    def broken(w):
        return [][w]                                        # IndexError, raised in "the reader's" code

    with pytest.raises(Problem, match=r"width raised IndexError: list index out of range when called "
                                      r"with \(2\), at line \d+: return \[\]\[w\]"):
        call(broken, 2, name="width")
    assert call(lambda a, b=1: a + b, 1, b=2) == 3
    assert call(lambda: np.float64(1) / 0) == np.inf       # numpy warnings stay quiet


def test_call_stops_a_function_that_runs_too_long():
    def forever(w):
        while True:
            pass

    with pytest.raises(TooSlow, match=r"width was still running after 0.2 s when called with \(3\)"):
        call(forever, 3, name="width", seconds=0.2)

    def swallows(w):                                   # except Exception cannot swallow the time limit
        while True:
            try:
                pass
            except Exception:
                pass

    with pytest.raises(TooSlow):
        call(swallows, 1, seconds=0.2)
    assert call(lambda: 5, seconds=0.2) == 5


def test_boolean_word_and_choice_answers():
    assert as_bool(np.bool_(True), "x") is True and as_bool(False, "x") is False
    with pytest.raises(Problem, match="should be True or False") as refused:
        as_bool("True", "x")
    assert "without quotes" in refused.value.hint
    assert as_word(" Same ", "p", ["grow", "same"]) == "same"
    with pytest.raises(Problem, match='one of "grow", "same"'):
        as_word("bigger", "p", ["grow", "same"])
    options = {"A": "a", "B": "b", "C": "c"}
    for answer in ("ab", "B, a", ["A", "b"], ("a", "B"), "A+B"):
        assert as_choices(answer, "r", options) == ["A", "B"]
    for answer, message in ((..., "still empty"), ("AZ", "Z, which is not among"), (3, "letters among"),
                            ("", "names no statement")):
        with pytest.raises(Problem, match=message):
            as_choices(answer, "r", options)
    fb = grade_choices(Feedback("t"), ["A", "C"], ["A", "B"], {"A": "yes", "B": "also", "C": "no"})
    assert fb.passed is False and "A: right to choose it" in str(fb) \
        and "B: this one is true too" in str(fb) and "C: this one is not true" in str(fb)
    assert "**B.** b" in str(getattr(show_choices(options), "data", show_choices(options)))


# --- grading mode ---------------------------------------------------------------------------------------
def test_grading_mode_raises_on_every_verdict_but_passed(monkeypatch, capsys):
    @checker("Demo")
    def check(value):
        if value == "bug":
            raise ZeroDivisionError("oops")
        if value == "slow":
            raise TooSlow("too slow")
        number = as_number(value, "x")
        return Feedback("Demo").correct("ok") if number == 1 else Feedback("Demo").wrong("not 1")

    assert check(2).passed is False                          # a reader's notebook: feedback, no exception
    monkeypatch.setenv("NBLIB_GRADING", "1")
    assert check(1).passed is True
    with pytest.raises(NotYet, match="Demo: not yet\n  ✘ not 1"):
        check(2)
    assert "✘ not 1" in capsys.readouterr().out            # the feedback is printed too
    with pytest.raises(NotYet, match="should be a number"):
        check(...)
    with pytest.raises(OutOfTime):
        check("slow")
    with pytest.raises(CheckerError, match="ZeroDivisionError"):
        check("bug")


def test_sample_draws_fresh_reproducible_inputs_only_when_grading(monkeypatch):
    draw = lambda rng: list(rng.integers(0, 10 ** 9, 3))  # noqa: E731
    assert sample([1, 2], draw, "a") == [1, 2]
    monkeypatch.setenv("NBLIB_GRADING", "1")
    monkeypatch.setenv("NBLIB_GRADING_SEED", "11")
    first = sample([1, 2], draw, "a")
    assert first != [1, 2] and sample([1, 2], draw, "a") == first and sample([1, 2], draw, "b") != first
    monkeypatch.setenv("NBLIB_GRADING_SEED", "12")
    assert sample([1, 2], draw, "a") != first
    monkeypatch.setenv("NBLIB_GRADING_SEED", "twelve")
    with pytest.raises(ValueError, match="NBLIB_GRADING_SEED must be a non-negative integer"):
        exercises.grading_seed()
    monkeypatch.delenv("NBLIB_GRADING_SEED")
    assert exercises.grading_seed() == exercises.grading_seed()      # drawn once per process


def test_small_helpers():
    assert close_enough(1.005, 1.0, rtol=0.01) and not close_enough(1.05, 1.0, rtol=0.01)
    assert describe("x" * 100) == "a str" and describe(3) == "int 3"


# --- exercise 1 -------------------------------------------------------------------------------------------
def test_scale_gain_is_largest_near_three_and_a_half_and_never_balances():
    best, gain = unstable._best_scale()
    assert 2.5 < best < 4.5 and gain < 0.5
    assert unstable.scale_gain(1.0) < gain and unstable.scale_gain(10.0) < gain
    with pytest.raises(ValueError, match="scale must be a finite positive number"):
        unstable.scale_gain(-1)
    with pytest.raises(TypeError, match="scale must be a finite positive number"):
        unstable.scale_gain("3")
    with pytest.raises(ValueError, match="depth must be at least 2"):
        unstable.scale_gain(3.0, depth=1)


def test_check_activation_scale():
    best, _ = unstable._best_scale()
    right = unstable.check_activation_scale(best, False)
    assert right.passed is True and "no c balances" in str(right)
    too_big = unstable.check_activation_scale(10, False)
    assert too_big.passed is False and "activations now reach up to c" in str(too_big)
    too_small = unstable.check_activation_scale(0.5, False)
    assert too_small.passed is False and "Try a larger c" in str(too_small)
    assert f"c = {best:g}" not in str(too_small) and "19%" not in str(too_big)  # wrong: no answer given away
    claims_balance = unstable.check_activation_scale(best, True)
    assert claims_balance.passed is False and "No c balances the chain" in str(claims_balance)
    assert unstable.check_activation_scale(np.float64(best), np.bool_(False)).passed is True


@pytest.mark.parametrize("best, balance, message", [
    (..., False, "best_scale should be a number"), (3, "no", "can_balance should be True or False"),
    (float("nan"), False, "is NaN"), (-2, False, "should be positive"), (3, None, "Write True or False"),
])
def test_check_activation_scale_explains_bad_answers(best, balance, message):
    feedback = unstable.check_activation_scale(best, balance)
    assert feedback.passed is False and message in str(feedback)


# --- exercise 2 -------------------------------------------------------------------------------------------
def right_width(w):
    w = abs(w)
    if w <= 4:
        return 0.0
    root = math.sqrt(1 - 4 / w)
    return 2 / w * math.log((1 + root) / (1 - root))


def test_measured_width_matches_the_formula():
    for w in [4.5, 6.9, 10, 30, -8]:
        assert unstable.measure_bound_width(w) == pytest.approx(right_width(w), abs=2e-5)
        assert unstable.measure_bound_width(w, b=2.5) == pytest.approx(right_width(w), abs=2e-5)
    assert unstable.measure_bound_width(3.0) == 0.0 and unstable.measure_bound_width(-4.0) == 0.0
    with pytest.raises(ValueError, match="must be finite"):
        unstable.measure_bound_width(np.nan)


WIDEST = (6.894, 0.44774)


def nielsen_width(w):
    """Nielsen's closed form, the same function written differently."""
    w = abs(w)
    return 0.0 if w <= 4 else 2 / w * np.log(w * (1 + np.sqrt(1 - 4 / w)) / 2 - 1)


def test_check_bound_width_passes_the_right_function_in_any_form():
    assert unstable.check_bound_width(right_width, *WIDEST).passed is True
    vectorised = lambda w: np.array([right_width(w)])  # noqa: E731
    assert unstable.check_bound_width(vectorised, -6.9, np.float32(0.4477)).passed is True
    assert unstable.check_bound_width(nielsen_width, np.float64(6.9), 0.44774).passed is True


def test_check_bound_width_refuses_measurements_and_tables(monkeypatch):
    measured = unstable.check_bound_width(unstable.measure_bound_width, *WIDEST)
    assert measured.passed is False and "close but not exact" in str(measured)
    table = {w: right_width(w) for w in unstable.WIDTH_WEIGHTS}
    assert unstable.check_bound_width(lambda w: table[w], *WIDEST).passed is True  # the public points...
    monkeypatch.setenv("NBLIB_GRADING", "1")
    monkeypatch.setenv("NBLIB_GRADING_SEED", "7")
    with pytest.raises(NotYet, match="raised KeyError"):                           # ...but not fresh ones
        unstable.check_bound_width(lambda w: table[w], *WIDEST)
    assert unstable.check_bound_width(right_width, *WIDEST).passed is True
    with pytest.raises(ValueError, match="points must be at most 1,000,001"):
        unstable.measure_bound_width(6.9, points=10 ** 8)


def test_check_bound_width_checks_where_the_set_is_widest():
    assert "widest_w and widest_width are still missing" in str(unstable.check_bound_width(right_width))
    off = unstable.check_bound_width(right_width, 8.0, 0.44)
    assert (off.passed is False and "widest at a different |w|" in str(off)
            and "The largest width is not" in str(off))


@pytest.mark.parametrize("width, message", [
    (lambda w: right_width(w) * abs(w), "width in z = wa + b"),
    (lambda w: right_width(w) / 2, "factor of 2"),
    (lambda w: right_width(w) if w > 0 else 0.1, "depends on |w|"),
    (lambda w: right_width(w) if abs(w) > 4 else 0.05, "the width is 0"),
    (lambda w: 2 / abs(w) * math.log((1 + math.sqrt(1 - 4 / abs(w))) / (1 - math.sqrt(1 - 4 / abs(w)))),
     "math domain error"),
    (lambda w: ..., "should be a number"),
    (lambda w: float("nan"), "is NaN"),
    (lambda w: 1.0, "Solve sigma'(z) = 1/|w|"),
    ("width", "should be a function"),
    (lambda: 0.0, "raised TypeError"),
])
def test_check_bound_width_explains_wrong_functions(width, message):
    feedback = unstable.check_bound_width(width, *WIDEST)
    assert feedback.passed is False and message in str(feedback), str(feedback)
    assert "Traceback" not in str(feedback)


def test_check_bound_width_hints_at_zero_width_when_the_root_fails():
    def naive(w):
        return 2 / abs(w) * math.log((1 + math.sqrt(1 - 4 / abs(w))) / (1 - math.sqrt(1 - 4 / abs(w))))
    assert "return 0 there" in str(unstable.check_bound_width(naive, *WIDEST))


# --- exercise 3 -------------------------------------------------------------------------------------------
def test_identity_error_of_known_neurons():
    error, constant = unstable.identity_error(1e-3, -5e-4, 4000.0)
    assert error < 1e-6 and constant == pytest.approx(2000.0, rel=1e-3)
    error, _ = unstable.identity_error(0.0, 0.0, 1.0)         # a constant output: half the range of x
    assert error == pytest.approx(0.5)


def test_check_identity_neuron():
    good = unstable.check_identity_neuron(0.1, -0.05, 40.0)
    assert good.passed is True and "Within the tolerance" in str(good)
    rough = unstable.check_identity_neuron(0.5, -0.25, 8.0)   # passes, with advice to do better
    assert rough.passed is True
    slope = unstable.check_identity_neuron(0.1, -0.05, 30.0)
    assert slope.passed is False and "multiply v by" in str(slope)
    bend = unstable.check_identity_neuron(3.0, 0.0, 8.0)
    assert bend.passed is False and "bends away" in str(bend)
    flat = unstable.check_identity_neuron(0.0, 0.0, 1.0)
    assert flat.passed is False and "does not depend on x" in str(flat)
    lost = unstable.check_identity_neuron(0, 0, 1e17)                # x lost to rounding beside v sigma
    assert lost.passed is False and "5.00e-01" in str(lost)
    tiny = unstable.check_identity_neuron(4e-17, -2e-17, 1e17)     # wx lost beside b: a constant output
    assert tiny.passed is False


@pytest.mark.parametrize("args, message", [((..., 0, 1), "w should be a number"),
                                           ((1, "0", 1), "b should be a number"),
                                           ((1, 0, np.inf), "v is infinite")])
def test_check_identity_neuron_explains_bad_answers(args, message):
    feedback = unstable.check_identity_neuron(*args)
    assert feedback.passed is False and message in str(feedback)


# --- the explorers ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [unstable.explore_activation_scale, unstable.explore_bound,
                                  unstable.explore_identity_neuron])
def test_explorers_render_every_slider_position(make):
    explorer = make()
    values = {s.name: (s.grid[0] if s.prerender else None) for s in explorer.sliders}
    png, readout = explorer.render(**values)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and readout
    values = {s.name: s.grid[-1] for s in explorer.sliders}
    assert explorer.render(**values)[1] != readout


def test_exercise_one_explorer_agrees_with_the_checker():
    explorer = unstable.explore_activation_scale()
    _, readout = explorer.render(c=3.5)
    assert f"typical factor per layer {unstable.scale_gain(3.5):.3f}" in readout


def test_exercise_two_explorer_reports_the_measured_width():
    _, readout = unstable.explore_bound().render(w=6.0, b=0.0)
    assert f"width of the set = {unstable.measure_bound_width(6.0):.3f}" in readout


def test_no_explorer_starts_at_an_answer():
    assert unstable.explore_bound().sliders[0].start == 10
    assert 6.9 not in unstable.explore_bound().sliders[0].grid
    assert unstable.explore_activation_scale().sliders[0].start == 1
    assert not hasattr(unstable, "best_scale") and not hasattr(unstable, "scale_gains")


def test_scale_gains_is_scale_gain_on_the_grid_and_read_only():
    gains = unstable._scale_gains()
    assert gains.shape == unstable.SCALE_GRID.shape and not gains.flags.writeable
    for k in (0, 57, len(gains) - 1):
        assert gains[k] == unstable.scale_gain(float(unstable.SCALE_GRID[k]))
