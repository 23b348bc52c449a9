"""Checkers for the exercises of chapter 1, "The vanishing gradient problem".

1. :func:`check_sigmoid_slope`: sigma' written through sigma's output, and its maximum.
2. :func:`check_width`: do the speeds' ratios depend on the width of the layers?
3. :func:`check_cancellation`: the length of the per-image errors against Nielsen's speeds.
4. :func:`check_seeds`: how many seeds a difference of 0.37 points needs.
5. :func:`check_weight_movement`: how far each layer's weights move, and why.

Each checker recomputes what it compares with (the chapter's networks are cheap at
initialisation, and exercise 5 trains one network for three epochs), so the reader's answer is
checked against the run, not against a number written into this file. The one exception is
``CHAPTER_SD``, the chapter's seed-to-seed spreads, which a test compares with the chapter's own
output.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np

from .. import data, metrics, networks, training
from . import (Feedback, as_array, as_bool, as_choices, as_function, as_number, as_word, call, checker,
               grade_choices, sample)

Array = np.ndarray
DEPTH_4 = [784, 30, 30, 30, 30, 10]


@functools.lru_cache(maxsize=1)
def mnist() -> data.MNIST:
    """MNIST (``nblib.data.load_mnist``), loaded once."""
    return data.load_mnist(verbose=False)


def first_images(n: int = 1000) -> tuple[Array, Array]:
    """The first ``n`` training images and labels of MNIST, as the chapter uses them."""
    return mnist().training.images[:n], mnist().training.labels[:n]


# --- exercise 1: the largest derivative -----------------------------------------------------------
SLOPE_POINTS = (0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999)


@checker("Exercise 1: the largest derivative")
def check_sigmoid_slope(slope_from_output: Callable[[Any], Any], largest: Any, where: Any) -> Feedback:
    """``slope_from_output(s)``: sigma'(z) written through s = sigma(z), tried at outputs s in
    (0, 1) (drawn afresh when grading) against a finite difference of sigma; ``largest``: the
    maximum of sigma'; ``where``: the z at which it is reached."""
    slope = as_function(slope_from_output, "slope_from_output")
    points = sample(SLOPE_POINTS, lambda rng: np.sort(rng.uniform(0.001, 0.999, 9)), "vanishing.slope")
    feedback = Feedback("Exercise 1: the largest derivative")
    wrong = []
    for s in points:
        got = as_number(call(slope, float(s), name="slope_from_output"), f"slope_from_output({s:g})")
        z = math.log(s / (1 - s))                                   # the z whose sigma is s
        h = 1e-5
        want = float((networks.sigmoid(np.array(z + h)) - networks.sigmoid(np.array(z - h))) / (2 * h))
        if abs(got - want) > 1e-8:
            wrong.append((s, got, want))
    if not wrong:
        feedback.correct("slope_from_output(s) agrees with a finite difference of sigma at all "
                         f"{len(points)} outputs s.")
    else:
        s, got, want = wrong[0]
        feedback.wrong(f"slope_from_output({s:g}) is {got:.6g}, but sigma' is {want:.6g} "
                       f"where sigma(z) = {s:g}.")
        if all(abs(g - float(networks.sigmoid_prime(np.array(x)))) < 1e-9 for x, g, _ in wrong):
            feedback.hint("Your function computes sigma'(s), treating s as z. Write the slope through the "
                          "output s = sigma(z) itself: differentiate 1 / (1 + e^-z) and express e^-z "
                          "through s.")
        else:
            feedback.hint("Differentiate sigma(z) = 1 / (1 + e^-z), then write e^-z / (1 + e^-z) through s.")
    top, z_top = as_number(largest, "largest"), as_number(where, "where")
    if abs(top - 0.25) <= 1e-6:
        feedback.correct("The largest slope is 1/4.")
    else:
        feedback.wrong(f"The largest slope is not {top:g}.").hint(
            "With s = sigma(z), s (1 - s) = 1/4 - (s - 1/2)^2.")
    if abs(z_top) <= 1e-3:
        feedback.correct("It is reached at z = 0, where sigma(z) = 1/2.")
    else:
        feedback.wrong(f"sigma' is largest at a different z from {z_top:g}.").hint(
            "At which s is s (1 - s) largest, and which z has sigma(z) = s?")
    return feedback


# --- exercise 2: does it depend on width? --------------------------------------------------------
WIDTH_SEEDS = range(20)
SAME_WITHIN = 0.25          # "the same" if every ratio changes by less than a quarter


@functools.lru_cache(maxsize=4)
def neighbour_ratios(width: int, seeds: int = 20) -> Array:
    """The median over ``seeds`` networks [784, width x 4, 10] at initialisation of each hidden
    layer's speed of learning over the speed of the layer below it (first 1,000 images)."""
    x, y = first_images()
    speeds = metrics.speeds_at_initialisation([784] + [width] * 4 + [10], x, y, range(seeds),
                                              dtype=np.float64)
    ratios = np.median(speeds[:, 1:] / speeds[:, :-1], axis=0)
    ratios.flags.writeable = False
    return ratios


@checker("Exercise 2: does it depend on width?")
def check_width(prediction: Any, ratios_100: Any) -> Feedback:
    """``prediction``: "grow", "shrink" or "same" for the ratios with 100 neurons per hidden layer
    against 30; ``ratios_100``: the three median ratios measured with 100 neurons."""
    word = as_word(prediction, "prediction", ["grow", "shrink", "same"])
    got = as_array(ratios_100, "ratios_100", shape=(3,))
    wide, narrow = neighbour_ratios(100), neighbour_ratios(30)
    feedback = Feedback("Exercise 2: does it depend on width?").table(
        ["layers", "30 neurons", "100 neurons", "yours"],
        [[f"{l + 2} ÷ {l + 1}", f"{narrow[l]:.2f}", f"{wide[l]:.2f}", f"{got[l]:.2f}"] for l in range(3)])
    if np.all(np.abs(got / wide - 1) <= 0.01):
        feedback.correct("Your ratios are the measured ones (to 1%).")
    else:
        feedback.wrong("Your ratios are not the medians over the 20 networks (seeds 0 to 19) "
                       "with 100 neurons.").hint(
            "metrics.speeds_at_initialisation([784, 100, 100, 100, 100, 10], x1000, y1000, range(20), "
            "dtype=np.float64) gives the speeds, one row per network; divide each layer's by the "
            "previous one's, then take the median over the rows.")
    change = wide / narrow - 1
    truth = "same" if np.all(np.abs(change) < SAME_WITHIN) else ("grow" if change.mean() > 0 else "shrink")
    if word == truth:
        feedback.correct(f'Right: they stay about the same (each changes by less than {SAME_WITHIN:.0%}: '
                         f'{", ".join(f"{100 * c:+.0f}%" for c in change)}).')
    else:
        feedback.wrong(f'The ratios do not {word}: they change by '
                       f'{", ".join(f"{100 * c:+.0f}%" for c in change)}.')
        feedback.hint("The weights into a layer with n_in inputs have variance 1/n_in: a sum over more "
                      "neurons has smaller terms. What is left to shrink the error at each step?")
    return feedback


# --- exercise 3: cancellation ---------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def error_lengths() -> tuple[Array, Array]:
    """For [784, 30, 30, 30, 30, 10] (seed 0, float64) on the first 1,000 images: Nielsen's speeds
    ||mean over images of delta|| and the mean over images of ||delta||, per hidden layer."""
    x, y = first_images()
    deltas = networks.Network(DEPTH_4, seed=0, dtype=np.float64).backprop(x, y).deltas[:-1]
    nielsen = np.array([np.linalg.norm(d.mean(axis=0)) for d in deltas])
    per_image = np.array([np.linalg.norm(d, axis=1).mean() for d in deltas])
    return nielsen, per_image


@checker("Exercise 3: cancellation")
def check_cancellation(per_image: Any, same_order: Any) -> Feedback:
    """``per_image``: the mean length of the per-image errors of each hidden layer; ``same_order``:
    whether the layers come in the same order as by Nielsen's speed."""
    got = as_array(per_image, "per_image", shape=(4,))
    same = as_bool(same_order, "same_order")
    nielsen, want = error_lengths()
    feedback = Feedback("Exercise 3: cancellation").table(
        ["hidden layer", "||mean δ|| (Nielsen)", "mean ||δ||", "yours"],
        [[l + 1, f"{nielsen[l]:.4f}", f"{want[l]:.4f}", f"{got[l]:.4f}"] for l in range(4)])
    if np.all(np.abs(got - want) <= 1e-3 * want):
        feedback.correct("Your lengths are the measured ones.")
    elif np.all(np.abs(got - nielsen) <= 1e-3 * nielsen):
        feedback.wrong("Those are Nielsen's speeds: the length of the mean error, not the mean of "
                       "the lengths.").hint(
            "Take the length of each image's error first, np.linalg.norm(d, axis=1), then average "
            "over the images.")
    else:
        feedback.wrong("Your lengths differ from the measured ones.").hint(
            "net.backprop(x1000, y1000).deltas[:-1] are the hidden layers' errors, one row per image.")
    truth = bool(np.all(np.argsort(want) == np.argsort(nielsen)))
    if same == truth:
        feedback.correct("Right: the order of the layers is the same; without cancellation every layer "
                         f"looks a little faster (by a factor {np.min(want / nielsen):.2f} to "
                         f"{np.max(want / nielsen):.2f}).")
    else:
        feedback.wrong("Compare the order of the two columns again.")
    return feedback


# --- exercise 4: how many seeds? --------------------------------------------------------------------
# Chapter 1's seed-to-seed standard deviations of the validation accuracy (%, 3 seeds) for one to four
# hidden layers; tests/test_exercises_chapters.py checks them against the chapter's glued output.
CHAPTER_SD = {1: 0.05859465277082888, 2: 0.2628687885618957, 3: 0.11590225767141904, 4: 0.7582216034906945}
DIFFERENCE = 0.37            # Nielsen's 96.90% (two hidden layers) minus 96.53% (four)
SEED_POINTS = ((0.26, 0.45, 0.37, 2.0), (0.1, 0.1, 0.1, 2.0), (1.0, 2.0, 0.5, 2.8), (0.3, 0.3, 1.0, 2.0),
               (0.5, 0.2, 0.05, 1.96))


def _needed(sd_a: float, sd_b: float, difference: float, z: float) -> int:
    """The smallest k with difference >= z * sqrt((sd_a^2 + sd_b^2) / k)."""
    return max(1, math.ceil(z ** 2 * (sd_a ** 2 + sd_b ** 2) / difference ** 2 - 1e-12))


def _draw_seed_points(rng: np.random.Generator) -> list[tuple[float, ...]]:
    return [(float(rng.uniform(0.05, 1)), float(rng.uniform(0.05, 1)), float(rng.uniform(0.05, 1)),
             float(rng.choice([1.96, 2.0, 2.8]))) for _ in range(6)]


@checker("Exercise 4: how many seeds?")
def check_seeds(seeds_needed: Callable[..., Any], k_two_se: Any, k_power: Any) -> Feedback:
    """``seeds_needed(sd_a, sd_b, difference, z)``: the fewest seeds per depth for which a true
    difference is z standard errors of the difference of means; ``k_two_se`` and ``k_power`` for
    chapter 1's spreads of two and four hidden layers, with z = 2 and z = 2.8."""
    function = as_function(seeds_needed, "seeds_needed")
    points = sample(SEED_POINTS, _draw_seed_points, "vanishing.seeds")
    feedback = Feedback("Exercise 4: how many seeds?")
    rows, wrong = [], []
    for point in points:
        got = call(function, *point, name="seeds_needed")
        value = as_number(got, f"seeds_needed{point}")
        want = _needed(*point)
        ok = value == want
        rows.append([", ".join(f"{p:g}" for p in point), f"{value:g}", want, "✔" if ok else "✘"])
        if not ok:
            wrong.append((point, value, want))
    feedback.table(["sd_a, sd_b, difference, z", "yours", "needed", ""], rows)
    if not wrong:
        feedback.correct(f"seeds_needed is right at all {len(points)} points.")
    else:
        point, value, want = wrong[0]
        feedback.wrong(f"seeds_needed{point} should be {want}, not {value:g}.")
        if all(abs(v - _needed(*p) ) < 1 and v != round(v) for p, v, _ in wrong):
            feedback.hint("Round up: a number of seeds is a whole number (math.ceil).")
        else:
            feedback.hint("The standard error of a difference of two means of k runs each is "
                          "sqrt(sd_a^2 / k + sd_b^2 / k); solve difference >= z * that for k.")
    sd_a, sd_b = CHAPTER_SD[2], CHAPTER_SD[4]
    for name, answer, z in (("k_two_se", k_two_se, 2.0), ("k_power", k_power, 2.8)):
        value, want = as_number(answer, name), _needed(sd_a, sd_b, DIFFERENCE, z)
        if value == want:
            feedback.correct(f"{name} = {want}: with z = {z:g}, {want} seeds per depth.")
        else:
            feedback.wrong(f"{name} is not {value:g}.").hint(
                f"Use the spreads of the two depths being compared, {sd_a:.2f} and {sd_b:.2f} points, "
                "not an average over all four depths.")
    return feedback


# --- exercise 5: do the slow layers move less? ---------------------------------------------------------
MOVE_EPOCHS = 3
MOVE_REASONS = {
    "A": "A weight's gradient is its neuron's error times the activation that feeds it, and the first "
         "layer's inputs (784 pixels, a vector of length about 9) are longer than the hidden activations "
         "(about 3).",
    "B": "Nielsen's speed averages the errors over many images before taking the length; a mini-batch "
         "step does not enjoy that cancellation, and over many steps the uncancelled parts add up like "
         "a random walk.",
    "C": "The speeds of learning were measured wrongly: the first layer's gradient is not small.",
    "D": "L2 regularisation shrinks the later layers' weights harder, so those layers move less.",
}
MOVE_RIGHT = ("A", "B")
MOVE_WHY = {
    "A": "The second table of the solution measures both lengths.",
    "B": "Averaging 1,000 errors before taking the length cancels much of them; a step on 10 images "
         "cancels less.",
    "C": "The chapter measured the speeds at initialisation in 100 networks per depth; they are small.",
    "D": "The decay factor 1 - eta lambda / n multiplies every layer's weights alike.",
}


@functools.lru_cache(maxsize=1)
def _trained_for_movement(epochs: int = MOVE_EPOCHS, seed: int = 0) -> tuple[networks.Network, list[Array]]:
    net = networks.Network(DEPTH_4, seed=seed)
    start = [w.copy() for w in net.weights]
    training.sgd(net, mnist().training, epochs=epochs, mini_batch_size=10, eta=0.1, lmbda=5.0, seed=seed,
                 progress=False)
    return net, start


def train_for_movement() -> tuple[networks.Network, list[Array]]:
    """A [784, 30, 30, 30, 30, 10] network trained like the chapter's (mini-batches of 10, eta 0.1,
    lambda 5, seed 0) for three epochs, and its weights before training (copies: the checker
    keeps the originals; the training runs once per session)."""
    net, start = _trained_for_movement()
    return net.copy(), [w.copy() for w in start]


@functools.lru_cache(maxsize=1)
def _movement() -> Array:
    net, start = _trained_for_movement()
    return np.array([np.linalg.norm(w - w0) / np.linalg.norm(w0) for w, w0 in zip(net.weights, start)])


@checker("Exercise 5: do the slow layers move less?")
def check_weight_movement(moved: Any, reasons: Any) -> Feedback:
    """``moved``: ||w_end - w_start|| / ||w_start|| for the five weight matrices after the
    exercise's three epochs; ``reasons``: the letters of the statements that reconcile it with
    the speeds of learning."""
    got = as_array(moved, "moved", shape=(5,))
    picked = as_choices(reasons, "reasons", MOVE_REASONS)
    want = _movement()
    feedback = Feedback("Exercise 5: do the slow layers move less?").table(
        ["weights into", "moved (measured)", "yours"],
        [[name, f"{w:.3f}", f"{g:.3f}"] for name, w, g in
         zip(["hidden 1", "hidden 2", "hidden 3", "hidden 4", "output"], want, got)])
    if np.all(np.abs(got - want) <= 0.03 * want):
        feedback.correct(f"Your movements are the measured ones (to 3%): the weights into the first hidden "
                         f"layer move {want[0]:.2f} times their initial length, more than those into the "
                         f"fourth ({want[3]:.2f}).")
    else:
        feedback.wrong("Your movements differ from the measured ones.").hint(
            "For each layer: np.linalg.norm(w - w0) / np.linalg.norm(w0), with net.weights after training "
            "and start before.")
    return grade_choices(feedback, picked, MOVE_RIGHT, MOVE_WHY)
