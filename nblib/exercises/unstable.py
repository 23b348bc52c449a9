"""Checkers for the exercises of chapter 2, "Unstable gradients", and the measurements they use.

1. :func:`check_activation_scale`: would an activation with a larger derivative help?
2. :func:`check_bound_width`: the width of the set where |w sigma'(wa + b)| >= 1, against a
   brute-force measurement (:func:`measure_bound_width`).
3. :func:`check_identity_neuron`: one sigmoid neuron that passes x in [0, 1] through unchanged
   (up to a constant), measured by :func:`identity_error`.

``explore_activation_scale``, ``explore_bound`` and ``explore_identity_neuron`` build the
figures with sliders (``nblib.interactive.Explorer``) that go with them.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

import matplotlib.pyplot as plt

from ..chain import log10_factors, log10_gradient_profile, random_chains
from ..checks import integer, number
from ..interactive import Explorer, Slider
from ..networks import sigmoid, sigmoid_prime
from . import Feedback, Problem, as_function, as_number, call, checker

Array = np.ndarray

# --- exercise 1: a larger derivative ---------------------------------------------------------------
CHAIN_DEPTH = 30
CHAIN_COUNT = 2000
CHAIN_SEED = 0
SCALE_GRID = np.round(np.arange(0.25, 12.0001, 0.05), 2)


def scale_gain(scale: float, *, depth: int = CHAIN_DEPTH, chains: int = CHAIN_COUNT, seed: int = CHAIN_SEED) -> float:
    """The typical factor per layer by which dC/db shrinks (below 1) or grows (above 1) from the
    last neuron of a chain back to the first, for the activation ``scale * sigma(z)``: the median
    over ``chains`` random chains (weights and biases N(0, 1), input uniform in [0, 1]) of
    |dC/db_1 / dC/db_L| ** (1 / (depth - 1))."""
    scale, depth = number(scale, "scale", positive=True), integer(depth, "depth", 2)
    weights, biases, x = _chains(depth, integer(chains, "chains"), integer(seed, "seed", 0))
    profile = log10_gradient_profile(weights, biases, x, scale=scale)
    return float(10 ** (np.median(profile[:, 0] - profile[:, -1]) / (depth - 1)))


@functools.lru_cache(maxsize=4)
def _chains(depth: int, chains: int, seed: int) -> tuple[Array, Array, Array]:
    """The random chains of exercise 1 (weights, biases, inputs), drawn once, read-only."""
    rng = np.random.default_rng(seed)
    weights, biases = random_chains(chains, depth, seed=rng)
    arrays = (weights, biases, rng.random(chains))
    for a in arrays:
        a.flags.writeable = False
    return arrays


@functools.lru_cache(maxsize=1)
def scale_gains() -> Array:
    """:func:`scale_gain` at every scale of ``SCALE_GRID`` (read-only)."""
    gains = np.array([scale_gain(c) for c in SCALE_GRID])
    gains.flags.writeable = False
    return gains


def best_scale() -> tuple[float, float]:
    """The scale c on ``SCALE_GRID`` with the largest :func:`scale_gain`, and that gain."""
    k = int(np.argmax(scale_gains()))
    return float(SCALE_GRID[k]), float(scale_gains()[k])


@checker("Exercise 1: an activation with a larger derivative")
def check_activation_scale(best: Any, can_balance: Any) -> Feedback:
    """Check the reader's scale ``best`` (the c for which gradients shrink most slowly along a
    30-neuron chain with activation c sigma(z)) and ``can_balance`` (whether some c keeps the
    gradient the same size from the last layer to the first)."""
    c = as_number(best, "best_scale", positive=True)
    if not isinstance(can_balance, (bool, np.bool_)):
        raise Problem(f"can_balance should be True or False, but it is {type(can_balance).__name__} {can_balance!r}.",
                      "Write True or False, without quotes.")
    top_c, top_gain = best_scale()
    gain = scale_gain(c)
    feedback = Feedback("Exercise 1: an activation with a larger derivative")
    span = (CHAIN_DEPTH - 1) * np.log10(top_gain)
    if gain >= 0.95 * top_gain:
        feedback.correct(f"With c = {c:g} the gradient shrinks by a typical factor of {gain:.3f} per layer, "
                         f"within 5% of the best, {top_gain:.3f} (at c = {top_c:g}).")
    else:
        feedback.wrong(f"With c = {c:g} the typical factor per layer is {gain:.3f}; the best is {top_gain:.3f}, "
                       f"at c = {top_c:g}.")
        if c > top_c:
            feedback.hint("A larger c raises the peak of the derivative, c/4, but the activations now reach up to c, "
                          "so the next neuron's z = w a + b is larger and falls where sigma' is tiny.")
        else:
            feedback.hint(f"The derivative c sigma'(z) is at most c/4 = {c / 4:g}: try a larger c.")
    if bool(can_balance):
        feedback.wrong(f"No c balances the chain: even the best factor, {top_gain:.3f} per layer, makes the first "
                       f"layer's gradient about 10^{span:.0f} times the last one's over {CHAIN_DEPTH} neurons.")
    else:
        feedback.correct(f"Right: no c balances the chain. Even at the best c the first layer's gradient is "
                         f"typically 10^{span:.0f} times the last one's.")
    rows = [[f"{s:g}", f"{scale_gain(s):.3f}"] for s in sorted({1.0, 2.0, top_c, 4.0, 8.0, c})]
    return feedback.table(["c", "typical factor per layer"], rows)


# --- exercise 2: the |w sigma'(wa + b)| >= 1 bound ------------------------------------------------
WIDTH_WEIGHTS = (-20.0, -6.9, -4.5, -2.0, 0.5, 1.0, 3.9, 4.0, 4.1, 5.0, 6.9, 8.0, 12.0, 20.0, 50.0)


def measure_bound_width(w: float, b: float = 0.0, *, points: int = 400_001) -> float:
    """The total length of the set of inputs a where |w sigma'(w a + b)| >= 1, measured by brute
    force on a grid of ``points`` values of a spanning the whole set (it is centred at a = -b/w
    and never wider than 1)."""
    w, b = float(w), float(b)
    if not (np.isfinite(w) and np.isfinite(b)):
        raise ValueError(f"w and b must be finite numbers, got w={w}, b={b}")
    if abs(w) <= 4:  # sigma' <= 1/4, so |w sigma'| <= |w|/4 <= 1, with equality at one point at most
        return 0.0
    centre = -b / w
    a = np.linspace(centre - 1.0, centre + 1.0, points)
    inside = np.abs(w * sigmoid_prime(w * a + b)) >= 1
    return float(inside.sum() * (a[1] - a[0]))


@checker("Exercise 2: the width of the set where |w σ'(wa+b)| ≥ 1")
def check_bound_width(width: Callable[[float], float]) -> Feedback:
    """Call the reader's ``width(w)`` at several weights (both signs, below and above 4) and
    compare with :func:`measure_bound_width`."""
    width = as_function(width, "your width function")
    rows, wrong = [], []
    for w in WIDTH_WEIGHTS:
        try:
            got = as_number(call(width, w, name="width"), f"width({w:g})")
        except Problem as problem:
            hint = ("For |w| <= 4 the factor never reaches 1, so the set is empty and its width is 0: "
                    "return 0 there (a square root of a negative number fails).") if abs(w) <= 4 else None
            raise Problem(problem.message, hint or problem.hint) from None
        want = measure_bound_width(w)
        ok = abs(got - want) <= 2e-3 + 1e-2 * want
        rows.append([f"{w:g}", f"{got:.5f}", f"{want:.5f}", "✔" if ok else "✘"])
        if not ok:
            wrong.append((w, got, want))
    feedback = Feedback("Exercise 2: the width of the set where |w σ'(wa+b)| ≥ 1").table(
        ["w", "your width", "measured", ""], rows)
    if not wrong:
        return feedback.correct(f"Your width agrees with the brute-force measurement at all {len(WIDTH_WEIGHTS)} "
                                "weights, to within 0.002 + 1%.")
    feedback.wrong(f"{len(wrong)} of {len(WIDTH_WEIGHTS)} values differ from the measurement, e.g. at w = "
                   f"{wrong[0][0]:g}: yours {wrong[0][1]:.4f}, measured {wrong[0][2]:.4f}.")
    feedback.hint(_width_hint(wrong))
    return feedback


def _width_hint(wrong: list[tuple[float, float, float]]) -> str:
    """Guess the most likely slip from the pattern of wrong values."""
    small = [(w, got) for w, got, want in wrong if abs(w) <= 4]
    if small and len(small) == len(wrong):
        return "For |w| <= 4 the width is 0: sigma' is at most 1/4, so |w sigma'| never reaches 1."
    big = [(w, got, want) for w, got, want in wrong if abs(w) > 4 and want > 0]
    if big and all(w < 0 for w, _, _ in wrong):
        return "Your function is wrong only for negative w: the width depends on |w|."
    ratios = np.array([got / want for _, got, want in big]) if big else np.array([])
    if len(ratios) and np.allclose(ratios, [abs(w) for w, _, _ in big], rtol=0.02):
        return "Your values are |w| times too large: that is the width in z = wa + b; divide by |w| for the width in a."
    if len(ratios) and (np.allclose(ratios, 2, rtol=0.02) or np.allclose(ratios, 0.5, rtol=0.02)):
        return "Your values are off by a factor of 2: check where the two ends of the interval are."
    return ("Solve sigma'(z) = 1/|w| for z: with s = sigma(z), s (1 - s) = 1/|w| gives two values of s, "
            "hence two values of z; the width in a is their distance divided by |w|.")


# --- exercise 3: the identity neuron ---------------------------------------------------------------
IDENTITY_TOLERANCE = 0.01
IDENTITY_X = np.linspace(0.0, 1.0, 1001)


def identity_error(w: float, b: float, v: float) -> tuple[float, float]:
    """How far v sigma(w x + b) is from x + constant over x in [0, 1]: the largest deviation
    max_x |v sigma(w x + b) - x - c| with the best constant c, and that c."""
    d = v * sigmoid(w * IDENTITY_X + b) - IDENTITY_X
    return float((d.max() - d.min()) / 2), float((d.max() + d.min()) / 2)


@checker("Exercise 3: the identity neuron")
def check_identity_neuron(w: Any, b: Any, v: Any) -> Feedback:
    """Check that input weight ``w``, bias ``b`` and output weight ``v`` make
    v sigma(w x + b) equal to x plus a constant, to within ``IDENTITY_TOLERANCE`` on [0, 1]."""
    w, b, v = (as_number(value, name) for value, name in ((w, "w"), (b, "b"), (v, "v")))
    error, constant = identity_error(w, b, v)
    y = v * sigmoid(w * IDENTITY_X + b)
    slope, intercept = np.polyfit(IDENTITY_X, y, 1)
    bend = float(np.max(np.abs(y - (slope * IDENTITY_X + intercept))))
    feedback = Feedback("Exercise 3: the identity neuron")
    feedback.info(f"Largest error on [0, 1], after subtracting the best constant {constant:.4g}: {error:.2e}.")
    if error <= IDENTITY_TOLERANCE:
        feedback.correct(f"Within the tolerance of {IDENTITY_TOLERANCE:g}. A following neuron's bias can absorb "
                         f"the constant {constant:.4g}.")
        if error > 1e-3:
            feedback.hint("To do better still, make w smaller (and v larger) and centre the inputs with b = -w/2.")
        return feedback
    feedback.wrong(f"That is more than the tolerance of {IDENTITY_TOLERANCE:g}.")
    if w == 0 or v == 0:
        return feedback.hint("With w = 0 or v = 0 the output does not depend on x at all.")
    if abs(slope - 1) > 0.02:
        feedback.hint(f"The best straight line through your output has slope {slope:.3g}, not 1: multiply v by "
                      f"{1 / slope:.3g} (v = {v / slope:.4g}).")
    if bend > IDENTITY_TOLERANCE / 2:
        feedback.hint(f"Your output bends away from a straight line by up to {bend:.2e}: over x in [0, 1], z runs "
                      f"from {b:.3g} to {w + b:.3g}, where sigma is curved. Make |w| smaller (raising v to keep "
                      "the slope), and centre z on 0 with b = -w/2, where sigma is straightest.")
    return feedback


# --- the explorers (figures with sliders) of the three exercises ------------------------------------
def explore_activation_scale() -> Explorer:
    """Exercise 1's explorer: for the activation c sigma(z), the size of dC/db_j along a chain of
    ``CHAIN_DEPTH`` neurons (median and 10-90% band over ``CHAIN_COUNT`` random chains) and the
    distribution of the factors |w_j c sigma'(z_j)|."""
    weights, biases, x = _chains(CHAIN_DEPTH, CHAIN_COUNT, CHAIN_SEED)
    layers = np.arange(1, CHAIN_DEPTH + 1)
    bins = np.linspace(-6, 2, 41)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6), gridspec_kw={"width_ratios": [1.2, 1]})
    (median,) = left.plot(layers, np.zeros(CHAIN_DEPTH), color="C0", animated=True)
    band = [left.fill_between(layers, 0, 0)]
    left.axhline(0, color="black", linewidth=0.8)
    left.set(xlim=(1, CHAIN_DEPTH), ylim=(-40, 25), xlabel="neuron j (1 = nearest the input)",
             ylabel=r"$\log_{10} |\partial C/\partial b_j \;/\; \partial C/\partial a_L|$",
             title="Gradient along a 30-neuron chain")
    left.legend(handles=[median, plt.Rectangle((0, 0), 1, 1, color="C0", alpha=0.25)],
                labels=["median of 2,000 chains", "10% to 90% of chains"], loc="lower right", fontsize="small")
    bars = right.stairs(np.zeros(len(bins) - 1), bins, fill=True, color="C1", alpha=0.8,
                        label=r"$|w_j f'(z_j)|$, $j \geq 2$", animated=True)
    right.axvline(0, color="black", linewidth=0.8, linestyle="--", label="factor 1")
    right.set(xlim=(bins[0], bins[-1]), ylim=(0, 0.35), xlabel=r"$\log_{10}$ of the factor",
              ylabel="fraction of factors", title="The factors of the product")
    right.legend(loc="upper left", fontsize="small")
    fig.suptitle("activation f(z) = c σ(z), whose derivative peaks at c/4", fontsize="medium")
    fig.tight_layout()

    def update(c: float) -> str:
        log_factors = log10_factors(weights, biases, x, scale=c)[1][:, 1:]      # |w_j f'(z_j)|, j >= 2
        profile = log10_gradient_profile(weights, biases, x, scale=c)
        profile = profile - profile[:, -1:]                      # log10 |dC/db_j / dC/db_L|
        low, mid, high = np.percentile(profile, [10, 50, 90], axis=0)
        median.set_ydata(mid)
        band[0].remove()
        band[0] = left.fill_between(layers, low, high, color="C0", alpha=0.25, linewidth=0, animated=True)
        counts, _ = np.histogram(np.clip(log_factors, bins[0], bins[-1] - 1e-9), bins)
        bars.set_data(counts / log_factors.size)
        gain = 10 ** (np.median(profile[:, 0]) / (CHAIN_DEPTH - 1))
        return (f"c = {c:g} (peak derivative {c / 4:g}): typical factor per layer {gain:.3f}; "
                f"dC/db_1 is 10^{mid[0]:.1f} times dC/db_30 "
                f"(median; 10% of chains below 10^{low[0]:.1f}, 10% above 10^{high[0]:.1f})")

    return Explorer(fig, update, [Slider("c", [0.5, 1, 2, 3, 3.5, 4, 5, 6, 8, 10, 12], label="scale c", start=1,
                                         step=0.05)],
                    title="Exercise 1: the activation c σ(z)")


def explore_bound() -> Explorer:
    """Exercise 2's explorer: |w sigma'(w a + b)| against a, with the set where it is at least 1
    shaded and its width (measured) in the readout."""
    a = np.linspace(-3, 3, 1201)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    (line,) = ax.plot(a, np.zeros_like(a), color="C0", animated=True)
    ax.axhline(1, color="black", linewidth=0.8, linestyle="--", label="1")
    shade = [ax.fill_between(a, 0, 0)]
    ax.set(xlim=(a[0], a[-1]), ylim=(0, 5.2), xlabel="input activation a", ylabel="size of the factor",
           title="Where does the factor reach 1?")
    ax.legend(handles=[line, ax.lines[1], plt.Rectangle((0, 0), 1, 1, color="C1", alpha=0.4)],
              labels=[r"$|w\,\sigma'(wa+b)|$", "1", "where it is at least 1"], loc="upper right", fontsize="small")
    fig.tight_layout()

    def update(w: float, b: float) -> str:
        factor = np.abs(w * sigmoid_prime(w * a + b))
        line.set_ydata(factor)
        shade[0].remove()
        shade[0] = ax.fill_between(a, 0, factor, where=factor >= 1, color="C1", alpha=0.4, linewidth=0,
                                   animated=True)
        width = measure_bound_width(w, b)
        where = f"centred at a = -b/w = {-b / w + 0.0:.3g}" if w else "w = 0"    # + 0.0: no "-0"
        return f"w = {w:g}, b = {b:g}: the factor peaks at |w|/4 = {abs(w) / 4:.3g}; width of the set = {width:.3f} ({where})"

    return Explorer(fig, update, [Slider("w", [-20, -10, -6.9, -4.5, 2, 4.5, 6.9, 10, 20], label="weight w",
                                         start=6.9, step=0.1),
                                  Slider("b", [-6, -3, 0, 3, 6], label="bias b", start=0, step=0.1)],
                    title="Exercise 2: the factor |w σ'(wa+b)|")


def explore_identity_neuron() -> Explorer:
    """Exercise 3's explorer: v sigma(w x + b) minus the best constant, against x in [0, 1],
    beside the identity, and the error. In the pre-rendered frames the output weight v is the
    least-squares best for w and b (the live version has a slider for it)."""
    x = IDENTITY_X
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    (output,) = left.plot(x, x, color="C0", label=r"$v\,\sigma(wx+b) - c$", animated=True)
    left.plot(x, x, color="black", linewidth=0.8, linestyle="--", label="identity")
    left.set(xlim=(0, 1), ylim=(-0.25, 1.25), xlabel="input x", ylabel="output", title="Output, shifted by the best c")
    left.legend(loc="upper left", fontsize="small")
    (error,) = right.plot(x, np.zeros_like(x), color="C3", label="error", animated=True)
    right.axhline(IDENTITY_TOLERANCE, color="black", linewidth=0.8, linestyle=":", label="± tolerance")
    right.axhline(-IDENTITY_TOLERANCE, color="black", linewidth=0.8, linestyle=":")
    right.set(xlim=(0, 1), ylim=(-0.05, 0.05), xlabel="input x", ylabel=r"$v\,\sigma(wx+b) - c - x$",
              title="Error")
    right.legend(loc="upper right", fontsize="small")
    fig.tight_layout()

    def update(w: float, b: float, v: float | None) -> str:
        s = sigmoid(w * x + b)
        chosen = "set by you"
        if v is None:  # pre-rendered: the output weight that fits x best (least squares)
            centred = s - s.mean()
            v = float(centred @ (x - x.mean()) / (centred @ centred)) if centred @ centred > 0 else 0.0
            chosen = "least-squares best"
        worst, c = identity_error(w, b, v)
        output.set_ydata(v * s - c)
        error.set_ydata(v * s - c - x)
        verdict = "within" if worst <= IDENTITY_TOLERANCE else "outside"
        return (f"w = {w:g}, b = {b:g}, v = {v:.4g} ({chosen}): largest error {worst:.2e}, "
                f"{verdict} the tolerance {IDENTITY_TOLERANCE:g}; constant c = {c:.4g}")

    return Explorer(fig, update, [Slider("w", [0.1, 0.5, 1, 2, 4], label="input weight w", start=1, step=0.01),
                                  Slider("b", [-2, -1, -0.5, 0, 1], label="bias b", start=0, step=0.01),
                                  Slider("v", [1, 500], label="output weight v", start=1, step=0.1, prerender=False)],
                    title="Exercise 3: one sigmoid neuron as the identity")


