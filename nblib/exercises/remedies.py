"""Checkers for the exercises of chapter 4, "Remedies, measured".

1. :func:`check_leaky_variance`: He's variance for a leaky ReLU, and when the uncorrected one drifts.
2. :func:`check_adam`: why Adam cannot rescue the 16-layer sigmoid network.
3. :func:`check_dying`: where and when units die at a learning rate that is too large.
4. :func:`check_residual_scale`: how small a residual branch must be. The reader's tool:
   :func:`residual_growth`, the growth of the second moment at one scale alpha.

The checkers train what they compare with on the testbed (a few seconds each, cached for the
session), with the chapter's configurations and seeds.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any, Callable

import numpy as np
import torch

from .. import checks, data, testbed
from . import (Feedback, as_bool, as_choices, as_function, as_number, call, checker, grade_choices,
               sample)

Array = np.ndarray
BASE = testbed.Config()
SIGMOID = BASE.but(activation="sigmoid", init="xavier")
TOO_FAST = BASE.but(optimiser="sgd", lr=0.3)
SEEDS = (0, 1, 2)


@functools.lru_cache(maxsize=1)
def mnist() -> testbed.Data:
    """MNIST on the testbed's device (``testbed.prepare``), loaded once."""
    return testbed.prepare(data.load_mnist(verbose=False))


@functools.lru_cache(maxsize=8)
def _run(config: testbed.Config, seed: int) -> testbed.Run:
    return testbed.train(config, mnist(), seed)


def run(config: testbed.Config, seed: int) -> testbed.Run:
    """One testbed run, trained once per session (a copy: the checkers keep the original)."""
    if not isinstance(config, testbed.Config):
        raise TypeError(f"config must be a testbed.Config, got {type(config).__name__}")
    return copy.deepcopy(_run(config, checks.integer(seed, "seed", 0)))


# --- exercise 1: He's variance for a leaky ReLU ----------------------------------------------------
VARIANCE_POINTS = ((48, 0.01), (784, 0.01), (100, 0.2), (10, 0.5), (48, 0.0), (1, 1.0))


def _draw_variance_points(rng: np.random.Generator) -> list[tuple[int, float]]:
    return [(int(rng.integers(2, 1000)), round(float(rng.uniform(0, 1)), 4)) for _ in range(6)]


def _layers_to_grow(slope: float, factor: float) -> int:
    """Layers after which He's uncorrected variance makes a leaky ReLU's second moment grow by ``factor``."""
    return math.ceil(math.log(factor) / math.log(1 + slope ** 2) - 1e-12)


@checker("Exercise 1: He's variance for a leaky ReLU")
def check_leaky_variance(variance: Callable[[int, float], Any], layers: Any) -> Feedback:
    """``variance(n, a)``: the weight variance that keeps the second moment of a leaky ReLU layer
    (negative slope a, n inputs) constant, tried at several (n, a) (drawn afresh when grading);
    ``layers``: after how many layers He's 2/n makes the second moment with a = 0.1 grow by 10%."""
    function = as_function(variance, "variance")
    feedback = Feedback("Exercise 1: He's variance for a leaky ReLU")
    rows, wrong = [], []
    for n, a in sample(VARIANCE_POINTS, _draw_variance_points, "remedies.variance"):
        got = as_number(call(function, n, a, name="variance"), f"variance({n}, {a:g})")
        want = 2 / ((1 + a ** 2) * n)
        ok = abs(got - want) <= 1e-9 * want
        rows.append([n, f"{a:g}", f"{got:.6g}", f"{want:.6g}", "✔" if ok else "✘"])
        if not ok:
            wrong.append((n, a, got, want))
    feedback.table(["n", "a", "yours", "keeps E[z²] constant", ""], rows)
    if not wrong:
        feedback.correct(f"variance(n, a) is right at all {len(rows)} points.")
    else:
        n, a, got, want = wrong[0]
        feedback.wrong(f"variance({n}, {a:g}) should be {want:.6g}, not {got:.6g}.")
        if all(abs(g - 2 / n) < 1e-12 for n, _, g, _ in wrong):
            feedback.hint("That is He's 2/n: for a leaky ReLU the negative half passes a^2 of its second "
                          "moment too.")
        else:
            feedback.hint("E[phi(z)^2] = (1 + a^2) E[z^2] / 2 for a symmetric z; "
                          "set n v E[phi(z)^2] = E[z^2].")
    count, want = as_number(layers, "layers"), _layers_to_grow(0.1, 1.1)
    if count == want:
        feedback.correct(f"With a = 0.1 each layer multiplies the second moment by 1.01, so it takes "
                         f"{want} layers to grow by 10%.")
    else:
        feedback.wrong(f"Not {count:g} layers.").hint("Each layer multiplies the second moment by 1 + a^2; "
                                                      "find the smallest L with (1 + a^2)^L >= 1.1.")
    return feedback


# --- exercise 2: Adam and the vanishing gradient -----------------------------------------------------
ADAM = SIGMOID.but(optimiser="adam", lr=1e-3)
ADAM_CHOICES = {
    "A": "The weight gradients are far smaller than Adam's epsilon (1e-8), so its denominator is epsilon and "
         "the step is about lr * g / epsilon: tiny.",
    "B": "Adam's running averages have not warmed up in 600 steps.",
    "C": "A learning rate of 0.001 is too small for Adam to move any weight.",
    "D": "The first layer's gradient is exactly zero, so no optimiser can move it.",
}
ADAM_WHY = {
    "A": "Adam divides by sqrt(v) + epsilon; with g around 1e-13, sqrt(v) is too, and epsilon wins.",
    "B": "Adam corrects its averages' bias from the first step; 600 steps are plenty.",
    "C": "The same learning rate moves the last layer's weights by a thousandth of their size per step.",
    "D": "It is tiny, not zero: the probe measures it.",
}


def typical_first_gradient(seed: int = 0) -> float:
    """The median over the probe's records of the first hidden layer's weight-gradient length
    divided by sqrt(784 * 48): the size of a typical single weight's gradient (Adam, sigmoid)."""
    r = _run(ADAM, seed)
    return float(np.median(r.probe["grad_norm"][:, 0]) / math.sqrt(784 * 48))


@checker("Exercise 2: why can't Adam rescue the sigmoid network?")
def check_adam(typical_gradient: Any, explanation: Any) -> Feedback:
    """``typical_gradient``: a typical first-layer weight gradient of the sigmoid network trained
    with Adam (seed 0), to within a factor of 3; ``explanation``: the letter of the reason."""
    value = as_number(typical_gradient, "typical_gradient", positive=True)
    picked = as_choices(explanation, "explanation", ADAM_CHOICES)
    want = typical_first_gradient()
    feedback = Feedback("Exercise 2: why can't Adam rescue the sigmoid network?")
    if abs(math.log10(value / want)) <= math.log10(3):
        feedback.correct(f"A typical first-layer weight gradient is about {want:.1e} (yours: {value:.1e}), "
                         f"{1e-8 / want:.0e} times smaller than Adam's epsilon.")
    else:
        feedback.wrong(f"{value:.1e} is more than three times off a typical first-layer weight "
                       "gradient.").hint(
            'run.probe["grad_norm"][:, 0] is the length of the first layer\'s whole weight gradient at '
            "each record; divide its median by sqrt(784 * 48), the square root of the number of weights.")
    return grade_choices(feedback, picked, ["A"], ADAM_WHY)


# --- exercise 3: which layer dies first? ---------------------------------------------------------------
DYING_CHOICES = {
    "A": "Most of the dying happens in the first 25 steps; after that the share of dead units stays put.",
    "B": "The share rises within the first 25 steps, then goes up and down, and ends below its peak.",
    "C": "Units die steadily, record after record, from the start of training to its end.",
    "D": "No unit is dead before training: every unit of a fresh network is active for some image.",
}
DYING_WHY = {
    "A": "The share keeps changing long after step 25; its peak comes later.",
    "B": "That is what the records show, averaged over the layers and the three seeds.",
    "C": "The share is not monotonic: it falls as well as rises.",
    "D": "On a batch of 100 images, some units of a fresh network are already zero for all of them.",
}


def dead_shares() -> Array:
    """The probe's share of dead units (on each recorded batch), averaged over the hidden layers:
    one row per seed of the too-fast SGD run (learning rate 0.3), one column per record."""
    return np.array([_run(TOO_FAST, s).probe["dead"].mean(axis=1) for s in SEEDS])


def _dying_story(shares: Array) -> str:
    """Which statement the mean over seeds bears out."""
    mean = shares.mean(axis=0)
    if mean[0] == 0:
        return "D"
    if mean[1] >= 0.9 * mean.max() and np.abs(mean[1:] - mean[1]).max() < 0.05:
        return "A"
    if np.all(np.diff(mean) >= -0.01):
        return "C"
    return "B"


@checker("Exercise 3: which layer dies first?")
def check_dying(dead_at_start: Any, upper_deader: Any, story: Any) -> Feedback:
    """``dead_at_start``: the share of dead units (%) at the first record, averaged over the layers
    and the seeds 0, 1, 2 of the SGD run at learning rate 0.3; ``upper_deader``: whether layers
    9-16 have more dead units than layers 1-8 (over all records after the first, in every seed);
    ``story``: the letter of the statement the records bear out."""
    start = as_number(dead_at_start, "dead_at_start")
    upper = as_bool(upper_deader, "upper_deader")
    picked = as_choices(story, "story", DYING_CHOICES)
    deads = [100 * _run(TOO_FAST, s).probe["dead"] for s in SEEDS]
    want_start = float(np.mean([d[0].mean() for d in deads]))
    halves = [(d[1:, :8].mean(), d[1:, 8:].mean()) for d in deads]
    truth = all(high > low for low, high in halves)
    feedback = Feedback("Exercise 3: which layer dies first?").table(
        ["seed", "dead at the first record (%)", "layers 1-8, later records (%)", "layers 9-16 (%)"],
        [[s, f"{d[0].mean():.1f}", f"{lo:.1f}", f"{hi:.1f}"] for s, d, (lo, hi) in zip(SEEDS, deads, halves)])
    if abs(start - want_start) <= 1.0:
        feedback.correct(f"Before the first update {want_start:.1f}% of the units are already dead on "
                         "the batch.")
    else:
        feedback.wrong(f"At the first record the share is not {start:.3g}%.").hint(
            'run.probe["dead"][0] is the first record, one number (a fraction, not %) per hidden layer.')
    if upper == truth:
        feedback.correct("Right: in every seed the upper eight layers have more dead units than the lower "
                         "eight." if truth else "Right: the upper layers are not deader in every seed.")
    else:
        feedback.wrong("Compare the two halves of the layers again, seed by seed (the table).")
    return grade_choices(feedback, picked, [_dying_story(dead_shares())], DYING_WHY)


# --- exercise 4: a residual branch scaled down ------------------------------------------------------------
RESIDUAL = BASE.but(residual=True)
GROWTH_LIMIT = 10.0
RESIDUAL_CHOICES = {
    "A": "After a ReLU layer every h_i >= 0, and the branch relu(W h) is positive on average too, so the "
         "cross term 2 alpha E[h . relu(W h)] grows the second moment in proportion to alpha, not alpha^2.",
    "B": "He's weights make the branch's second moment twice its input's.",
    "C": "The 784 pixels of the input make the first block's output larger than the others.",
    "D": "Each block's weights are drawn correlated with the previous block's.",
}
RESIDUAL_WHY = {
    "A": "The naive formula assumes the branch is uncorrelated with its input; a ReLU branch is not.",
    "B": "With variance 2/n, E[relu(z)^2] is exactly the input's second moment.",
    "C": "The growth is measured from the first block's output on, so the input's size cancels.",
    "D": "Every block's weights are drawn independently.",
}


@functools.lru_cache(maxsize=1)
def _growth_images() -> torch.Tensor:
    return mnist().x_train[:1000]


def residual_growth(alpha: float, *, seeds: int = 5) -> float:
    """How much the second moment of the hidden activations grows from the first hidden layer to
    the sixteenth in the testbed's residual network with branches scaled by ``alpha``,
    h + alpha relu(W h) (He's weights), at initialisation: E[h_16^2] / E[h_1^2] on 1,000 training
    images, the mean over ``seeds`` networks (seeds 0, 1, ...)."""
    alpha = checks.number(alpha, "alpha", non_negative=True)
    seeds = checks.integer(seeds, "seeds", 1)
    x, ratios = _growth_images(), []
    with torch.no_grad():
        for seed in range(seeds):
            torch.manual_seed(seed)
            model = testbed.DeepMLP(RESIDUAL.but(residual_scale=alpha)).to(x.device)
            h = model.blocks[0](x)
            first = float((h ** 2).mean())
            for block in model.blocks[1:]:
                h = block(h)
            ratios.append(float((h ** 2).mean()) / first)
    return float(np.mean(ratios))


@functools.lru_cache(maxsize=1)
def _largest_alpha() -> float:
    """The largest alpha whose growth is at most ``GROWTH_LIMIT``, by bisection."""
    lo, hi = 0.0, 1.0
    for _ in range(25):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if residual_growth(mid) <= GROWTH_LIMIT else (lo, mid)
    return lo


@checker("Exercise 4: a remedy of your own")
def check_residual_scale(alpha: Any, naive_growth: Any, reason: Any) -> Feedback:
    """``alpha``: the largest branch scale (to within 10% below it) for which the second moment
    grows at most tenfold over the residual network's 15 blocks; ``naive_growth``: what
    (1 + alpha^2)^15 predicts at alpha = 0.4; ``reason``: why the naive formula is wrong."""
    a = as_number(alpha, "alpha", positive=True)
    naive = as_number(naive_growth, "naive_growth")
    picked = as_choices(reason, "reason", RESIDUAL_CHOICES)
    best = _largest_alpha()
    feedback = Feedback("Exercise 4: a remedy of your own")
    growth = residual_growth(a)
    if 0.9 * best <= a <= 1.02 * best:
        feedback.correct(f"With alpha = {a:g} the second moment grows {growth:.1f}-fold over the 15 "
                         f"blocks; the largest alpha within tenfold is {best:.3f}.")
    elif a > best:
        feedback.wrong(f"With alpha = {a:g} the second moment grows {growth:.1f}-fold, more than "
                       "tenfold.").hint(
            "Try a smaller alpha: remedies.residual_growth(alpha) measures it.")
    else:
        feedback.wrong(f"alpha = {a:g} keeps the growth to {growth:.1f}-fold, but a larger alpha does too "
                       "(within 10% of the largest is asked).").hint(
            "Raise alpha until the growth reaches 10.")
    want = (1 + 0.4 ** 2) ** 15
    if abs(naive - want) <= 0.01 * want:
        feedback.correct(f"The naive formula predicts {want:.1f}-fold at alpha = 0.4; the network grows "
                         f"{residual_growth(0.4):.0f}-fold.")
    else:
        feedback.wrong(f"(1 + alpha^2)^15 at alpha = 0.4 is not {naive:.4g}.")
    return grade_choices(feedback, picked, ["A"], RESIDUAL_WHY)
