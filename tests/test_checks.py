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
                                           (np.float32(0.5), {"positive": True}), (np.int32(3), {"positive": True})])
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
