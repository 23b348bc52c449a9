"""Checkers for the exercises of chapter 5, "Recurrent networks: depth in time".

1. :func:`check_bound`: the vanilla RNN's gradient decays more slowly than the bound allows; why?
2. :func:`check_forget_path`: the LSTM's cell-state path, and what a forget-gate bias does to it.
3. :func:`check_lengths`: predict the vanilla RNN at sequence lengths 30 and 40, then train it.

Exercise 1 is measured at initialisation, exercise 3 trains six networks (about ten seconds,
once per session), both with the chapter's configuration and seeds.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import torch

from .. import checks, recurrent
from ..recurrent import Config
from . import (Feedback, as_bool, as_choices, as_function, as_number, call, checker, grade_choices,
               sample)

Array = np.ndarray
LENGTH = 50


def held_out_sequences(n: int = 500, length: int = LENGTH) -> tuple[torch.Tensor, torch.Tensor]:
    """The chapter's test sequences (the first ``n`` of them), on the CPU."""
    x, y = recurrent.adding_problem(2000, length, torch.Generator().manual_seed(10 ** 6),
                                    on=torch.device("cpu"))
    return x[:n], y[:n]


def fresh_rnn(seed: int = 0) -> recurrent.Recurrent:
    """The chapter's vanilla RNN (32 tanh units) at initialisation, on the CPU."""
    torch.manual_seed(seed)
    return recurrent.Recurrent("rnn")


def decay_per_step(grads: Array, first: int = 5, last: int = 45) -> float:
    """The average factor by which the input gradient shrinks per step back, from step ``last`` to
    ``first`` (the chapter's measure)."""
    grads = np.asarray(grads, dtype=float)
    return float((grads[first - 1] / grads[last - 1]) ** (1 / (last - first)))


# --- exercise 1: the bound in numbers ----------------------------------------------------------------
BOUND_CHOICES = {
    "A": "|tanh'(z)| is below 1 wherever z is not 0, so each step back also multiplies by slopes below one.",
    "B": "The bound assumes the gradient always lies along W's most stretched direction; a product of "
         "matrices stretches a typical vector at a slower rate (its top Lyapunov exponent), not by the "
         "largest singular value at every step.",
    "C": "PyTorch clips the gradient of a recurrent network by default.",
    "D": "The bound holds only after training, when W has learned to forget.",
}
BOUND_WHY = {
    "A": "The hidden units are not all at zero: tanh' < 1 takes its share at every step.",
    "B": "Only a vector kept along the top singular direction at every step would shrink by exactly ||W||.",
    "C": "Nothing is clipped here; clipping is a choice the chapter makes explicitly.",
    "D": "The bound holds at every stage: |tanh'| <= 1 always.",
}


@functools.lru_cache(maxsize=1)
def _bound_numbers() -> tuple[float, float]:
    model = fresh_rnn(0)
    norm = float(torch.linalg.matrix_norm(model.rnn.weight_hh_l0.detach(), ord=2))
    return norm, decay_per_step(recurrent.input_gradients(model, *held_out_sequences()))


@checker("Exercise 1: the bound in numbers")
def check_bound(spectral_norm: Any, decay: Any, reasons: Any) -> Feedback:
    """``spectral_norm``: the largest singular value of the fresh vanilla RNN's recurrent matrix
    (seed 0); ``decay``: its input gradient's factor per step back, measured as the chapter does;
    ``reasons``: the letters of the statements that explain why the factor is below the bound."""
    norm, factor = (as_number(spectral_norm, "spectral_norm", positive=True),
                    as_number(decay, "decay", positive=True))
    picked = as_choices(reasons, "reasons", BOUND_CHOICES)
    want_norm, want_factor = _bound_numbers()
    feedback = Feedback("Exercise 1: the bound in numbers")
    if abs(norm - want_norm) <= 1e-3 * want_norm:
        feedback.correct(f"The recurrent matrix's largest singular value is {want_norm:.3f}.")
    else:
        feedback.wrong(f"The largest singular value is not {norm:.4g}.").hint(
            "torch.linalg.matrix_norm(rnn.rnn.weight_hh_l0.detach(), ord=2)")
    if abs(factor - want_factor) <= 1e-3 * want_factor:
        feedback.correct(f"The measured factor per step is {want_factor:.3f}, below the bound "
                         f"{want_norm:.3f}.")
    else:
        feedback.wrong(f"The measured factor per step is not {factor:.4g}.").hint(
            "decay_per_step(recurrent.input_gradients(rnn, x_test, y_test)), as in the chapter.")
    return grade_choices(feedback, picked, ["A", "B"], BOUND_WHY)


# --- exercise 2: the cell-state path -------------------------------------------------------------------
GATE_SAMPLES = ((0.5, 0.5, 0.5), (0.9, 0.99, 1.0, 0.1), (0.731,) * 50)


def _draw_gates(rng: np.random.Generator) -> list[tuple[float, ...]]:
    return [tuple(rng.uniform(0, 1, int(rng.integers(1, 60))).round(6)) for _ in range(5)]


@checker("Exercise 2: the cell-state path")
def check_forget_path(direct_path: Callable[[Array], Any], gain_bias_0: Any, gain_bias_1: Any) -> Feedback:
    """``direct_path(f)``: the factor by which the cell state's direct path carries a gradient back
    through steps whose forget gates are ``f`` (an array, one per step), tried on several arrays
    (drawn afresh when grading); ``gain_bias_0`` and ``gain_bias_1``: that factor over 50 steps
    when every forget gate sits at sigma(b) with b = 0 and b = 1."""
    function = as_function(direct_path, "direct_path")
    feedback = Feedback("Exercise 2: the cell-state path")
    wrong = []
    for gates in sample(GATE_SAMPLES, _draw_gates, "recurrent.gates"):
        f = np.array(gates, dtype=float)
        got = as_number(call(function, f.copy(), name="direct_path"), "direct_path(f)")
        want = float(np.prod(f))
        if abs(got - want) > 1e-9 * want + 1e-300:
            wrong.append((len(f), got, want))
    if not wrong:
        feedback.correct("direct_path multiplies the forget gates, as the chain rule along "
                         "c_t = f_t c_(t-1) + ... says.")
    else:
        n, got, want = wrong[0]
        feedback.wrong(f"For {n} steps direct_path gives {got:.4g}, but the direct path carries "
                       f"{want:.4g}.").hint(
            "dc_t / dc_(t-1) = f_t along the direct path; the chain rule multiplies one such factor "
            "per step.")
    for name, answer, bias in (("gain_bias_0", gain_bias_0, 0.0), ("gain_bias_1", gain_bias_1, 1.0)):
        value = as_number(answer, name, positive=True)
        want = (1 / (1 + math.exp(-bias))) ** 50
        if abs(value - want) <= 1e-3 * want:
            feedback.correct(f"{name} = sigma({bias:g})^50 = {want:.2e}.")
        else:
            feedback.wrong(f"{name} is not {value:.3g}.").hint(
                f"Each of the 50 steps multiplies by sigma({bias:g}).")
    return feedback


# --- exercise 3: between 20 and 50 ----------------------------------------------------------------
SOLVED_ABOVE = 0.5


LENGTH_SEEDS = (0, 1, 2)


@functools.lru_cache(maxsize=4)
def _solved_seeds(length: int) -> tuple[float, ...]:
    """The vanilla RNN trained as in the chapter at ``length`` from each of LENGTH_SEEDS, as one
    batched model (the chapter's ``recurrent_batched.train_all`` does the same): the fraction
    solved by each."""
    from ..recurrent_batched import train_many
    runs = train_many([Config(kind="rnn", length=length)] * len(LENGTH_SEEDS), list(LENGTH_SEEDS),
                      on=torch.device("cpu"))
    return tuple(float(r.solved) for r in runs)


def solved_at(length: int, seed: int = 0) -> float:
    """The fraction of the adding problem the vanilla RNN solves at ``length`` (the chapter's
    training) from ``seed``, one of LENGTH_SEEDS; the three seeds train together, once per session."""
    seed = checks.choice(seed, "seed", LENGTH_SEEDS)
    return _solved_seeds(int(length))[LENGTH_SEEDS.index(seed)]


@checker("Exercise 3: between 20 and 50")
def check_lengths(solves_30: Any, solves_40: Any) -> Feedback:
    """``solves_30``, ``solves_40``: whether the vanilla RNN (seed 0) solves more than half of the
    adding problem at sequence lengths 30 and 40 (the checker trains seeds 0, 1 and 2 at both
    lengths, about ten seconds)."""
    answers = {30: as_bool(solves_30, "solves_30"), 40: as_bool(solves_40, "solves_40")}
    feedback = Feedback("Exercise 3: between 20 and 50")
    rows = []
    for length, said in answers.items():
        solved = solved_at(length)
        truth = solved > SOLVED_ABOVE
        rows.append([length, f"{100 * solved:.1f}%", truth, said])
        if said == truth:
            feedback.correct(f"At T = {length} it solves {100 * solved:.1f}%: your prediction was right.")
        else:
            feedback.wrong(f"At T = {length} it solves {100 * solved:.1f}%, so it does "
                           f"{'not ' if not truth else ''}solve more than half.")
    feedback.table(["T", "solved (seed 0)", "more than half", "your prediction"], rows)
    if not all(r[2] == r[3] for r in rows):
        feedback.hint("At T = 20 the best of six seeds solved over 90% and the worst under a quarter; "
                      "at T = 50 none solved any. "
                      "The signal from the first marker shrinks by the decay factor at every step back.")
    return feedback
