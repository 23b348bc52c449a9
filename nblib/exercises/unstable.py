"""Checkers for the exercises of chapter 2, "Unstable gradients", and the measurements they use.

1. :func:`check_activation_scale`: would an activation with a larger derivative help? The
   reader's tool: :func:`scale_gain`, the typical factor per layer at one scale c.
2. :func:`check_bound_width`: the width of the set where |w sigma'(wa + b)| >= 1, against an
   exact computation at weights drawn afresh when grading. The reader's tool:
   :func:`measure_bound_width`, a brute-force measurement good to about 1e-5, too coarse to
   pass for the formula.
3. :func:`check_identity_neuron`: one sigmoid neuron that passes x in [0, 1] through unchanged
   (up to a constant), measured by :func:`identity_error`.

``explore_activation_scale``, ``explore_bound`` and ``explore_identity_neuron`` build the
figures with sliders (``nblib.interactive.Explorer``) that go with them; none starts at an
answer. The answers themselves are computed only inside the checkers (the private ``_best_*``
functions), never offered as a tool.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np

import matplotlib.pyplot as plt

from ..chain import log10_factors, log10_gradient_profile, random_chains
from ..checks import integer, number
from ..interactive import Explorer, Slider
from ..networks import sigmoid, sigmoid_prime
from . import Feedback, Problem, as_bool, as_function, as_number, call, checker, sample

Array = np.ndarray

# --- exercise 1: a larger derivative ---------------------------------------------------------------
CHAIN_DEPTH = 30
CHAIN_COUNT = 2000
CHAIN_SEED = 0
SCALE_GRID = np.round(np.arange(0.25, 12.0001, 0.05), 2)


def scale_gain(scale: float, *, depth: int = CHAIN_DEPTH, chains: int = CHAIN_COUNT,
               seed: int = CHAIN_SEED) -> float:
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
def _scale_gains() -> Array:
    """:func:`scale_gain` at every scale of ``SCALE_GRID`` (read-only): the answer's curve."""
    gains = np.array([scale_gain(c) for c in SCALE_GRID])
    gains.flags.writeable = False
    return gains


def _best_scale() -> tuple[float, float]:
    """The scale c on ``SCALE_GRID`` with the largest :func:`scale_gain`, and that gain."""
    k = int(np.argmax(_scale_gains()))
    return float(SCALE_GRID[k]), float(_scale_gains()[k])


@checker("Exercise 1: an activation with a larger derivative")
def check_activation_scale(best: Any, can_balance: Any) -> Feedback:
    """Check the reader's scale ``best`` (the c for which gradients shrink most slowly along a
    30-neuron chain with activation c sigma(z)) and ``can_balance`` (whether some c keeps the
    gradient the same size from the last layer to the first)."""
    c = as_number(best, "best_scale", positive=True)
    can_balance = as_bool(can_balance, "can_balance")
    top_c, top_gain = _best_scale()
    gain = scale_gain(c)
    feedback = Feedback("Exercise 1: an activation with a larger derivative")
    span = (CHAIN_DEPTH - 1) * np.log10(top_gain)
    if gain >= 0.95 * top_gain:
        feedback.correct(f"With c = {c:g} the gradient shrinks by a typical factor of {gain:.3f} per layer, "
                         f"within 5% of the best, {top_gain:.3f} (at c = {top_c:g}).")
    else:
        feedback.wrong(f"With c = {c:g} the typical factor per layer is {gain:.3f}; the best scale does "
                       f"{100 * (top_gain / gain - 1):.0f}% better ({top_gain:.3f}).")
        if c > top_c:
            feedback.hint("Try a smaller c. A larger c raises the peak of the derivative, c/4, but the "
                          "activations now reach up to c, so the next neuron's z = w a + b is larger and "
                          "falls where sigma' is tiny.")
        else:
            feedback.hint(f"Try a larger c: the derivative c sigma'(z) is at most c/4 = {c / 4:g}.")
    if can_balance:
        feedback.wrong(f"No c balances the chain: even the best factor, {top_gain:.3f} per layer, makes "
                       f"the first layer's gradient about 10^{span:.0f} times the last one's over "
                       f"{CHAIN_DEPTH} neurons.")
    else:
        feedback.correct(f"Right: no c balances the chain. Even at the best c the first layer's gradient is "
                         f"typically 10^{span:.0f} times the last one's.")
    rows = [[f"{s:g}", f"{scale_gain(s):.3f}"] for s in sorted({1.0, 2.0, 4.0, 8.0, c})]
    return feedback.table(["c", "typical factor per layer"], rows)


# --- exercise 2: the |w sigma'(wa + b)| >= 1 bound ------------------------------------------------
WIDTH_WEIGHTS = (-20.0, -7.5, -4.5, -2.0, 0.5, 1.0, 3.9, 4.0, 4.1, 5.0, 6.0, 8.0, 12.0, 20.0, 50.0)
WIDTH_TOLERANCE = (1e-7, 1e-6)       # absolute, relative: far finer than a brute-force measurement
MAX_POINTS = 1_000_001


def measure_bound_width(w: float, b: float = 0.0, *, points: int = 400_001) -> float:
    """The total length of the set of inputs a where |w sigma'(w a + b)| >= 1, measured by brute
    force on a grid of ``points`` values of a spanning the whole set (it is centred at a = -b/w
    and never wider than 1). Good to about 2 / points: a tool to test a formula with, not an
    answer (the checker asks for a million times more precision)."""
    w, b = float(w), float(b)
    if not (np.isfinite(w) and np.isfinite(b)):
        raise ValueError(f"w and b must be finite numbers, got w={w}, b={b}")
    points = integer(points, "points", 3)
    if points > MAX_POINTS:
        raise ValueError(f"points must be at most {MAX_POINTS:,} (a brute-force grid; for more precision, "
                         f"use the formula), got {points:,}")
    if abs(w) <= 4:  # sigma' <= 1/4, so |w sigma'| <= |w|/4 <= 1, with equality at one point at most
        return 0.0
    centre = -b / w
    a = np.linspace(centre - 1.0, centre + 1.0, points)
    inside = np.abs(w * sigmoid_prime(w * a + b)) >= 1
    return float(inside.sum() * (a[1] - a[0]))


def _exact_width(w: float) -> float:
    """The width of the set, by bisection on z (not by the closed form): |w| sigma'(z) falls
    from |w|/4 at z = 0, so it crosses 1 at one z* > 0, and the set is |z| <= z*, of width
    2 z* / |w| in a."""
    w = abs(float(w))
    if w <= 4:
        return 0.0
    lo, hi = 0.0, 2.0 * math.log(4 * w)          # sigma'(z) < e^-|z|, so |w| sigma' < 1 beyond log |w|
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if w * sigmoid_prime(mid) >= 1 else (lo, mid)
    return 2 * lo / w


def _widest() -> tuple[float, float]:
    """The |w| at which the set is widest, and its width, by golden-section search."""
    lo, hi, golden = 4.0, 40.0, (math.sqrt(5) - 1) / 2
    for _ in range(120):
        a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
        lo, hi = (lo, b) if _exact_width(a) > _exact_width(b) else (a, hi)
    return (lo + hi) / 2, _exact_width((lo + hi) / 2)


def _draw_weights(rng: np.random.Generator) -> list[float]:
    """Fresh weights for grading: four with |w| <= 4 (empty set) and eleven beyond, both signs."""
    small = rng.uniform(-4, 4, 4)
    large = np.exp(rng.uniform(math.log(4.05), math.log(60), 11)) * rng.choice([-1, 1], 11)
    return [float(round(w, 6)) for w in np.concatenate([small, large])]


@checker("Exercise 2: the width of the set where |w σ'(wa+b)| ≥ 1")
def check_bound_width(width: Callable[[float], float], widest_w: Any = None,
                      widest_width: Any = None) -> Feedback:
    """Call the reader's ``width(w)`` at fifteen weights (both signs, below and above 4; drawn
    afresh in grading mode) and compare with an exact computation; then check ``widest_w``, the
    |w| at which the set is widest, and ``widest_width``, its width there."""
    width = as_function(width, "your width function")
    weights = sample(WIDTH_WEIGHTS, _draw_weights, "unstable.width")
    rows, wrong = [], []
    atol, rtol = WIDTH_TOLERANCE
    for w in weights:
        try:
            got = as_number(call(width, w, name="width"), f"width({w:g})")
        except Problem as problem:
            hint = ("For |w| <= 4 the factor never reaches 1, so the set is empty and its width is 0: "
                    "return 0 there (a square root of a negative number fails).") if abs(w) <= 4 else None
            raise type(problem)(problem.message, hint or problem.hint) from None
        want = _exact_width(w)
        ok = abs(got - want) <= atol + rtol * want
        rows.append([f"{w:g}", f"{got:.7f}", f"{want:.7f}", "✔" if ok else "✘"])
        if not ok:
            wrong.append((w, got, want))
    feedback = Feedback("Exercise 2: the width of the set where |w σ'(wa+b)| ≥ 1").table(
        ["w", "your width", "exact", ""], rows)
    if not wrong:
        feedback.correct(f"Your width agrees with the exact width at all {len(weights)} weights, to within "
                         f"{atol:g} + {rtol:g} × the width.")
    else:
        close = all(abs(got - want) <= 1e-4 + 1e-3 * want for _, got, want in wrong)
        feedback.wrong(f"{len(wrong)} of {len(weights)} values differ from the exact width, e.g. at w = "
                       f"{wrong[0][0]:g}: yours {wrong[0][1]:.7f}, exact {wrong[0][2]:.7f}.")
        feedback.hint("Your values are close but not exact: a measurement on a grid is good to about its "
                      "spacing; the formula is exact." if close else _width_hint(wrong))
    _check_widest(feedback, widest_w, widest_width)
    return feedback


def _check_widest(feedback: Feedback, widest_w: Any, widest_width: Any) -> None:
    """The second part of exercise 2: where the set is widest, and how wide."""
    if widest_w is None and widest_width is None:
        feedback.wrong("widest_w and widest_width are still missing.")
        return
    w_star, width_star = _widest()
    w = abs(as_number(widest_w, "widest_w"))
    top = as_number(widest_width, "widest_width")
    if abs(w - w_star) <= 0.01 * w_star:
        feedback.correct(f"The set is widest at |w| = {w_star:.3f}; your {w:g} is within 1%.")
    else:
        feedback.wrong(f"The set is widest at a different |w| from {w:g} (your width function, tried on a "
                       "fine grid of w above 4, finds it).").hint(
            "Evaluate your width(w) for w from 4 to 40 and take the largest.")
    if abs(top - width_star) <= 1e-3 * width_star:
        feedback.correct(f"Its width there is {width_star:.4f}; yours, {top:.4f}, agrees.")
    else:
        feedback.wrong(f"The largest width is not {top:.4g}.")


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
        return ("Your values are |w| times too large: that is the width in z = wa + b; divide by |w| for "
                "the width in a.")
    if len(ratios) and (np.allclose(ratios, 2, rtol=0.02) or np.allclose(ratios, 0.5, rtol=0.02)):
        return "Your values are off by a factor of 2: check where the two ends of the interval are."
    return ("Solve sigma'(z) = 1/|w| for z: with s = sigma(z), s (1 - s) = 1/|w| gives two values of s, "
            "hence two values of z; the width in a is their distance divided by |w|.")


# --- exercise 3: the identity neuron ---------------------------------------------------------------
IDENTITY_TOLERANCE = 0.01
IDENTITY_X = np.linspace(0.0, 1.0, 1001)


def identity_error(w: float, b: float, v: float) -> tuple[float, float]:
    """How far v sigma(w x + b) is from x + constant over x in [0, 1]: the largest deviation
    max_x |v sigma(w x + b) - x - c| with the best constant c, and that c. The output is
    computed as a float64 network would compute it, and compared through its differences
    from x = 0, so that an output that does not depend on x (w = 0, or an x lost to rounding in
    a huge v sigma) counts as the constant it is, not as a perfect identity."""
    y = v * sigmoid(w * IDENTITY_X + b)
    d = (y - y[0]) - (IDENTITY_X - IDENTITY_X[0])
    return float((d.max() - d.min()) / 2), float(y[0] - IDENTITY_X[0] + (d.max() + d.min()) / 2)


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
    feedback.info(f"Largest error on [0, 1], after subtracting the best constant {constant:.4g}: "
                  f"{error:.2e}.")
    if error <= IDENTITY_TOLERANCE:
        feedback.correct(f"Within the tolerance of {IDENTITY_TOLERANCE:g}. A following neuron's bias can "
                         f"absorb the constant {constant:.4g}.")
        if error > 1e-3:
            feedback.hint("To do better still, make w smaller (and v larger) and centre the inputs with "
                          "b = -w/2.")
        return feedback
    feedback.wrong(f"That is more than the tolerance of {IDENTITY_TOLERANCE:g}.")
    if w == 0 or v == 0:
        return feedback.hint("With w = 0 or v = 0 the output does not depend on x at all.")
    if abs(slope - 1) > 0.02:
        feedback.hint(f"The best straight line through your output has slope {slope:.3g}, not 1: multiply "
                      f"v by {1 / slope:.3g} (v = {v / slope:.4g}).")
    if bend > IDENTITY_TOLERANCE / 2:
        feedback.hint(f"Your output bends away from a straight line by up to {bend:.2e}: over x in [0, 1], "
                      f"z runs from {b:.3g} to {w + b:.3g}, where sigma is curved. Make |w| smaller "
                      "(raising v to keep the slope), and centre z on 0 with b = -w/2, where sigma is "
                      "straightest.")
    return feedback


# --- the explorers (figures with sliders) of the three exercises ------------------------------------
def explore_activation_scale() -> Explorer:
    """Exercise 1's explorer: for the activation c sigma(z), the size of dC/db_j along a chain of
    ``CHAIN_DEPTH`` neurons (median and 10-90% band over ``CHAIN_COUNT`` random chains) and the
    distribution of the factors |w_j c sigma'(z_j)|."""
    weights, biases, x = _chains(CHAIN_DEPTH, CHAIN_COUNT, CHAIN_SEED)
    layers = np.arange(1, CHAIN_DEPTH + 1)
    bins = np.linspace(-6, 2, 41)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [1.2, 1]})
    (median,) = left.plot(layers, np.zeros(CHAIN_DEPTH), color="C0", animated=True)
    band = [left.fill_between(layers, 0, 0)]
    left.axhline(0, color="black", linewidth=0.8)
    left.set(xlim=(1, CHAIN_DEPTH), ylim=(-40, 25), xlabel="neuron j (1 = nearest the input)",
             ylabel=r"$\log_{10} |\partial C/\partial b_j \;/\; \partial C/\partial a_L|$",
             title="Gradient along a 30-neuron chain")
    left.legend(handles=[median, plt.Rectangle((0, 0), 1, 1, color="C0", alpha=0.25)],
                labels=["median of 2,000 chains", "10% to 90% of chains"], loc="lower right",
                fontsize="small")
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

    return Explorer(fig, update, [Slider("c", [0.5, 1, 2, 3, 3.5, 4, 5, 6, 8, 10, 12], label="scale c",
                                         start=1, step=0.05)],
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
              labels=[r"$|w\,\sigma'(wa+b)|$", "1", "where it is at least 1"], loc="upper right",
              fontsize="small")
    fig.tight_layout()

    def update(w: float, b: float) -> str:
        factor = np.abs(w * sigmoid_prime(w * a + b))
        line.set_ydata(factor)
        shade[0].remove()
        shade[0] = ax.fill_between(a, 0, factor, where=factor >= 1, color="C1", alpha=0.4, linewidth=0,
                                   animated=True)
        width = measure_bound_width(w, b)
        where = f"centred at a = -b/w = {-b / w + 0.0:.3g}" if w else "w = 0"    # + 0.0: no "-0"
        return (f"w = {w:g}, b = {b:g}: the factor peaks at |w|/4 = {abs(w) / 4:.3g}; "
                f"width of the set = {width:.3f} ({where})")

    return Explorer(fig, update, [Slider("w", [-20, -10, -6, -4.5, 2, 4.5, 6, 8, 10, 20], label="weight w",
                                         start=10, step=0.1),
                                  Slider("b", [-6, -3, 0, 3, 6], label="bias b", start=0, step=0.1)],
                    title="Exercise 2: the factor |w σ'(wa+b)|")


def explore_identity_neuron() -> Explorer:
    """Exercise 3's explorer: v sigma(w x + b) minus the best constant, against x in [0, 1],
    beside the identity, and the error. In the pre-rendered frames the output weight v is the
    least-squares best for w and b (the live version has a slider for it)."""
    x = IDENTITY_X
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    (output,) = left.plot(x, x, color="C0", label=r"$v\,\sigma(wx+b) - c$", animated=True)
    left.plot(x, x, color="black", linewidth=0.8, linestyle="--", label="identity")
    left.set(xlim=(0, 1), ylim=(-0.25, 1.25), xlabel="input x", ylabel="output",
             title="Output, shifted by the best c")
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

    return Explorer(fig, update, [Slider("w", [0.1, 0.5, 1, 2, 4], label="input weight w", start=1,
                                         step=0.01),
                                  Slider("b", [-2, -1, -0.5, 0, 1], label="bias b", start=0, step=0.01),
                                  Slider("v", [1, 500], label="output weight v", start=1, step=0.1,
                                         prerender=False)],
                    title="Exercise 3: one sigmoid neuron as the identity")


