import math

import numpy as np
import pytest

from nblib.checks import integer, number


@pytest.mark.parametrize("value, at_least", [(3, 1), (0, 0), (np.int64(7), 2), (np.uint8(1), 1)])
def test_integer_accepts_integers_from_the_bound_and_returns_a_python_int(value, at_least):
    out = integer(value, "n", at_least)
    assert out == value and type(out) is int


@pytest.mark.parametrize("value, at_least, error, message", [
    (0, 1, ValueError, r"^n must be at least 1, got 0$"),
    (-1, 0, ValueError, r"^n must be at least 0, got -1$"),
    (1, 2, ValueError, r"^n must be at least 2, got 1$"),
    (2.0, 1, TypeError, r"^n must be a positive integer, got 2.0$"),
    (True, 1, TypeError, r"^n must be a positive integer, got True$"),
    ("3", 0, TypeError, r"^n must be a non-negative integer, got '3'$"),
    (None, 2, TypeError, r"^n must be an integer ≥ 2, got None$"),
])
def test_integer_names_the_argument_and_the_bound(value, at_least, error, message):
    with pytest.raises(error, match=message):
        integer(value, "n", at_least)


@pytest.mark.parametrize("value, kwargs", [(0.1, {}), (-2, {}), (0, {"non_negative": True}),
                                           (np.float32(0.5), {"positive": True}),
                                           (np.int32(3), {"positive": True})])
def test_number_accepts_finite_reals_and_returns_a_python_float(value, kwargs):
    out = number(value, "eta", **kwargs)
    assert out == pytest.approx(float(value)) and type(out) is float


@pytest.mark.parametrize("value, kwargs, error, message", [
    (math.nan, {}, ValueError, r"^eta must be a finite real number, got nan$"),
    (math.inf, {"positive": True}, ValueError, r"^eta must be a finite positive number, got inf$"),
    (0.0, {"positive": True}, ValueError, r"^eta must be a finite positive number, got 0.0$"),
    (-0.1, {"non_negative": True}, ValueError, r"^eta must be a finite non-negative number, got -0.1$"),
    ("0.1", {}, TypeError, r"^eta must be a finite real number, got '0.1'$"),
    (False, {"non_negative": True}, TypeError, r"^eta must be a finite non-negative number, got False$"),
    (1j, {}, TypeError, r"^eta must be a finite real number, got 1j$"),
    ([0.1], {}, TypeError, r"^eta must be a finite real number, got \[0.1\]$"),
])
def test_number_names_the_argument_and_what_is_expected(value, kwargs, error, message):
    with pytest.raises(error, match=message):
        number(value, "eta", **kwargs)


# --- the checks added for issue 11 ---------------------------------------------------------------
from nblib import checks  # noqa: E402


def test_integer_at_most_bounds_what_can_be_computed():
    assert checks.integer(10, "steps", 1, at_most=10) == 10
    with pytest.raises(ValueError, match=r"^steps must be an integer from 1 to 10, got 11$"):
        checks.integer(11, "steps", 1, at_most=10)
    with pytest.raises(ValueError, match=r"^steps must be an integer from 1 to 10, got 0$"):
        checks.integer(0, "steps", 1, at_most=10)
    with pytest.raises(TypeError, match=r"^steps must be an integer from 1 to 10, got 2.0$"):
        checks.integer(2.0, "steps", 1, at_most=10)
    with pytest.raises(TypeError,
                       match=r"^n must be a positive integer, got (np\.True_|True)$"):   # numpy 2 | 1.26
        checks.integer(np.True_, "n")


@pytest.mark.parametrize("value", [0, np.int64(5), 2 ** 64 - 1, np.uint64(2 ** 64 - 1)])
def test_seed_accepts_what_numpy_and_torch_both_accept(value):
    out = checks.seed(value)
    assert out == value and type(out) is int


@pytest.mark.parametrize("value, error", [(-1, ValueError), (2 ** 64, ValueError), (True, TypeError),
                                          (1.0, TypeError), (None, TypeError), ("1", TypeError)])
def test_seed_refuses_the_rest_naming_the_argument(value, error):
    with pytest.raises(error, match=r"^seed must be an integer from 0 to 2\*\*64 - 1, got "):
        checks.seed(value)


def test_seed_may_allow_a_generator_or_none():
    rng = np.random.default_rng(0)
    assert checks.seed(rng, generator=True) is rng and checks.seed(None, generator=True) is None
    with pytest.raises(TypeError, match=r"a numpy Generator or None, got 'x'"):
        checks.seed("x", generator=True)


def test_seeds_is_a_non_empty_list_of_seeds():
    assert checks.seeds(range(3)) == [0, 1, 2] and checks.seeds(np.arange(2)) == [0, 1]
    with pytest.raises(TypeError,
                       match=r"^seeds must be a list of seeds such as range\(10\) or \[0, 1, 2\], got 5$"):
        checks.seeds(5)
    with pytest.raises(ValueError, match=r"^seeds is empty"):
        checks.seeds([])
    with pytest.raises(ValueError, match=r"^every entry of seeds must be an integer from 0"):
        checks.seeds([1, -2])


def test_choice_fraction_boolean_text_instance_function():
    assert (checks.choice("b", "kind", ("a", "b")) == "b"
            and checks.choice(None, "norm", (None, "batch")) is None)
    with pytest.raises(ValueError, match=r"^kind must be one of 'a', 'b', got array\(\[1\]\)$"):
        checks.choice(np.array([1]), "kind", ("a", "b"))
    assert checks.choice(np.int64(2), "seed", (0, 1, 2)) == 2 and checks.choice(0.5, "x", [0.25, 0.5]) == 0.5
    for bad in (True, "1", 1.5):          # a bool is no number, a string no seed
        with pytest.raises(ValueError, match=r"^seed must be one of 0, 1, 2, got"):
            checks.choice(bad, "seed", (0, 1, 2))
    with pytest.raises(ValueError, match=r"^x must be one of 0.25, 0.5, got 1$"):
        checks.choice(1, "x", [0.25, 0.5])
    assert checks.fraction(np.float32(0.25), "p") == 0.25
    for bad, error in ((0, ValueError), (1.0, ValueError), (np.nan, ValueError), ("0.5", TypeError),
                       (True, TypeError)):
        with pytest.raises(error, match=r"^p must be a number between 0 and 1, got"):
            checks.fraction(bad, "p")
    assert checks.boolean(np.True_, "flag") is True
    with pytest.raises(TypeError, match=r"^flag must be True or False, got 1$"):
        checks.boolean(1, "flag")
    with pytest.raises(TypeError, match=r"^title must be a string, got 3$"):
        checks.text(3, "title")
    with pytest.raises(TypeError, match=r"^net must be a network, got int$"):
        checks.instance(3, "net", str, "a network")
    with pytest.raises(TypeError, match=r"^job must be a function, got 3$"):
        checks.function(3, "job")


@pytest.mark.parametrize("value, kwargs, error, message", [
    ("abc", {}, TypeError, r"^x must hold real numbers, got dtype <U3$"),
    ([[1, 2], [3]], {}, ValueError, r"^x must be an array of numbers"),
    ([1.0, np.nan], {}, ValueError, r"^x contains NaN or infinity$"),
    ([1.0, 2.0], {"ndim": 2}, ValueError, r"^x must be a 2-D array, got shape \(2,\)$"),
    ([], {}, ValueError, r"^x is empty, got shape \(0,\)$"),
    ([True], {}, TypeError, r"^x must hold real numbers, got dtype bool$"),
])
def test_array_names_the_argument(value, kwargs, error, message):
    with pytest.raises(error, match=message):
        checks.array(value, "x", **kwargs)


def test_array_keeps_the_dtype_and_may_allow_nan_or_empty():
    assert checks.array(np.zeros(2, np.float32), "x").dtype == np.float32
    assert (np.isnan(checks.array([np.nan], "x", finite=False)[0])
            and checks.array([], "x", empty=True).size == 0)


@pytest.mark.parametrize("value, error, message", [
    ([0.9, 1.0], TypeError, r"^y must be integers \(class indices\), got dtype float64$"),
    ([[0]], ValueError, r"^y must be a 1-D array of class indices, got shape \(1, 1\)$"),
    ([0, -1], ValueError, r"^y must lie in \[0, 9\], got values from -1 to 0$"),
    ([0, 10], ValueError, r"^y must lie in \[0, 9\], got values from 0 to 10$"),
])
def test_labels_are_integer_class_indices_in_range(value, error, message):
    with pytest.raises(error, match=message):
        checks.labels(np.array(value), "y", 10)


def test_labels_without_a_class_count_still_refuse_negative_and_wrapping_values():
    with pytest.raises(ValueError, match=r"\[0, 2\*\*63 - 1\]"):
        checks.labels(np.array([2 ** 63], dtype=np.uint64), "y")
    with pytest.raises(ValueError, match=r"^got 3 inputs but 2 y; they must match$"):
        checks.labels(np.array([0, 1]), "y", 5, 3)


def test_size_bounds_what_is_built_at_once():
    assert checks.size(10, "the grid", limit=10) == 10
    with pytest.raises(ValueError, match=r"^the grid, n x n would be 121 numbers, "
                                         r"more than the 100 nblib computes at once: ask for fewer$"):
        checks.size(121, "the grid, n x n", limit=100)
