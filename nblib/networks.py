"""Nielsen's ``network2``: sigmoid layers, cross-entropy cost, L2 weight decay, vectorised.

The maths is the book's (Nielsen, *Neural Networks and Deep Learning*, chapters 2, 3 and 5);
the layout is the one that makes it fast in numpy: a batch of inputs is a matrix with one
*row* per example, so a layer computes ``z = a @ w.T + b``. The weights keep Nielsen's
indexing: ``weights[l][j, k]`` connects neuron ``k`` of layer ``l`` to neuron ``j`` of
layer ``l + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Sequence

import numpy as np

from . import checks
from .checks import integer, number

Array = np.ndarray


def sigmoid(z: Array) -> Array:
    """The logistic function 1 / (1 + e^-z). (For z below about -700, e^-z overflows to infinity
    and the result is the correct limit, 0.)"""
    _check_real(z, "z")
    with np.errstate(over="ignore"):
        return _sigmoid(z)


def sigmoid_prime(z: Array) -> Array:
    """Derivative of the sigmoid: sigma(z) (1 - sigma(z)); at most 1/4, reached at z = 0."""
    s = sigmoid(z)
    return s * (1.0 - s)


def _sigmoid(z: Array) -> Array:
    """The sigmoid without checks, for callers that have checked ``z`` and set ``np.errstate``."""
    return 1.0 / (1.0 + np.exp(-z))


def _check_real(z: object, name: str) -> None:
    if np.asarray(z).dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real number or an array of real numbers, got {z!r:.60}")


# BLAS kernels (OpenBLAS on some CPUs, numpy issue #24067) may raise the floating-point "invalid"
# flag on small products of finite float32 numbers, which numpy reports as "invalid value
# encountered in matmul" at random. The passes below therefore ignore "invalid" and "overflow"
# (a product that overflows gives inf, and the sigmoid its correct limit); a network that has
# really diverged is detected explicitly instead: its weights stop being finite
# (``Network.is_finite``) and its cost is NaN or infinite.
_QUIET = dict(invalid="ignore", over="ignore")


@dataclass
class Gradients:
    """The gradient of the mean cost over a batch, and each layer's error for each example.

    ``weights[l]`` and ``biases[l]`` have the shapes of the network's; ``deltas[l]`` has shape
    ``(batch, sizes[l + 1])``: row ``x`` is Nielsen's delta^l for example ``x``, that is dC_x/db^l.
    ``output`` holds the output activations the gradient was computed at, and ``output_z`` the
    output layer's weighted inputs, so that the cost at those weights needs no second forward
    pass (``Network.cost_of_output``).
    """

    weights: list[Array]
    biases: list[Array]
    deltas: list[Array]
    output: Array | None = None
    output_z: Array | None = None


class Network:
    """A fully connected sigmoid network trained with the cross-entropy cost.

    >>> net = Network([784, 30, 10], seed=1)
    >>> [w.shape for w in net.weights]
    [(30, 784), (10, 30)]
    """

    def __init__(self, sizes: Sequence[int], *, seed: int | np.random.Generator | None = 0,
                 dtype: type | np.dtype = np.float32) -> None:
        """Nielsen's default initialisation: biases N(0, 1), weights N(0, 1/n_in).

        As in ``network2`` the biases are drawn first, then the weights, layer by layer.
        ``seed`` (an int or a numpy Generator; None draws fresh randomness) makes the network
        reproducible. The numbers are drawn in float64 and stored as ``dtype``: float32 (the
        default) trains about twice as fast; float64 is for checking gradients to many digits.
        """
        self.sizes = check_sizes(sizes)
        self.dtype = check_float_dtype(dtype)
        rng = np.random.default_rng(checks.seed(seed, "seed", generator=True))
        self.biases = [rng.standard_normal(n_out).astype(self.dtype) for n_out in self.sizes[1:]]
        self.weights = [(rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(self.dtype)
                        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])]

    def __repr__(self) -> str:
        return f"Network({self.sizes}, dtype={self.dtype.name})"

    @property
    def num_layers(self) -> int:
        """Layers of neurons, the input layer included (Nielsen's convention)."""
        return len(self.sizes)

    def is_finite(self) -> bool:
        """False once any weight or bias is NaN or infinite: the network has diverged."""
        return all(np.isfinite(p).all() for p in self.weights + self.biases)

    def copy(self) -> "Network":
        """An independent copy with the same weights and biases."""
        twin = object.__new__(Network)
        twin.sizes, twin.dtype = list(self.sizes), self.dtype
        twin.weights = [w.copy() for w in self.weights]
        twin.biases = [b.copy() for b in self.biases]
        return twin

    # --- the forward pass -------------------------------------------------------------------
    def feedforward(self, x: Array) -> Array:
        """Output activations for a batch ``x`` of shape (n, sizes[0]); returns (n, sizes[-1])."""
        a = self._check_inputs(x)
        with np.errstate(**_QUIET):
            for w, b in zip(self.weights, self.biases):
                a = _sigmoid(a @ w.T + b)
        return a

    def forward(self, x: Array) -> tuple[list[Array], list[Array]]:
        """Every layer's weighted inputs ``zs`` and activations (the input batch is activations[0])."""
        a = self._check_inputs(x)
        zs, activations = [], [a]
        with np.errstate(**_QUIET):
            for w, b in zip(self.weights, self.biases):
                z = a @ w.T + b
                a = _sigmoid(z)
                zs.append(z)
                activations.append(a)
        return zs, activations

    # --- the backward pass ------------------------------------------------------------------
    def backprop(self, x: Array, labels: Array) -> Gradients:
        """Backpropagation for a batch: the four equations of Nielsen's chapter 2, one matrix each.

        The cost is the cross-entropy averaged over the batch, so the output error is simply
        ``a - y`` (no sigma' factor: that is why network2 uses this cost).
        """
        zs, activations = self.forward(x)
        y = self.one_hot(labels, activations[-1].shape[1], len(activations[0]))
        n = len(y)
        with np.errstate(**_QUIET):
            delta = activations[-1] - y                                     # (BP1), cross-entropy
            deltas = [delta]
            for l in range(len(self.weights) - 1, 0, -1):
                s = activations[l]                                          # sigma(z^l)
                delta = (delta @ self.weights[l]) * (s * (1.0 - s))         # (BP2)
                deltas.insert(0, delta)
            grad_b = [d.sum(axis=0) / n for d in deltas]                     # (BP3)
            grad_w = [d.T @ a / n for d, a in zip(deltas, activations[:-1])]  # (BP4)
        return Gradients(weights=grad_w, biases=grad_b, deltas=deltas, output=activations[-1],
                         output_z=zs[-1])

    def update_mini_batch(self, x: Array, labels: Array, eta: float, lmbda: float, n: int,
                          frozen: Sequence[int] = ()) -> None:
        """One step of network2's rule on a mini-batch of m examples, from a training set of n:

        w <- (1 - eta*lmbda/n) w - (eta/m) sum_x dC_x/dw,    b <- b - (eta/m) sum_x dC_x/db.
        """
        eta, decay, frozen = self.check_step(eta, lmbda, n, frozen)
        self._step(self.backprop(x, labels), eta, decay, frozen)

    def apply_gradients(self, grads: Gradients, eta: float, lmbda: float, n: int,
                        frozen: Sequence[int] = ()) -> None:
        """Step along mean-cost gradients ``grads`` with network2's L2 weight decay (biases are not
        decayed). Layers listed in ``frozen`` (0 = into the first hidden layer, -1 = into the
        output layer) are left as they are."""
        eta, decay, frozen = self.check_step(eta, lmbda, n, frozen)
        self._step(self.check_gradients(grads), eta, decay, frozen)

    def check_step(self, eta: float, lmbda: float, n: int,
                   frozen: Sequence[int] = ()) -> tuple[float, float, tuple[int, ...]]:
        """The checked learning rate, the weight decay factor 1 - eta*lmbda/n (which must stay
        positive) and the frozen layers as sorted non-negative indices."""
        eta, lmbda = number(eta, "eta", non_negative=True), number(lmbda, "lmbda", non_negative=True)
        n = integer(n, "n")
        check_decay(eta, lmbda, n)
        return eta, 1.0 - eta * lmbda / n, check_layers(frozen, len(self.weights))

    def check_gradients(self, grads: Gradients) -> Gradients:
        """``grads`` as ``backprop`` returns them for this network: one finite array per layer,
        of the shape of its weights and biases."""
        checks.instance(grads, "grads", Gradients, "the Gradients that Network.backprop returns")
        for kind, given, own in (("weights", grads.weights, self.weights),
                                 ("biases", grads.biases, self.biases)):
            if isinstance(given, (str, bytes)) or not isinstance(given, Sequence) or len(given) != len(own):
                raise ValueError(f"grads.{kind} must hold one array per layer ({len(own)}), "
                                 f"got {given!r:.60}")
            for l, (g, p) in enumerate(zip(given, own)):
                g = checks.array(g, f"grads.{kind}[{l}]", finite=False)
                if g.shape != p.shape:
                    raise ValueError(f"grads.{kind}[{l}] has shape {g.shape}, but layer {l}'s {kind} "
                                     f"have shape {p.shape}")
                if not np.all(np.isfinite(g)):
                    raise ValueError(f"grads.{kind}[{l}] contains NaN or infinity: the network has diverged "
                                     f"(try a smaller eta)")
        return grads

    def _step(self, grads: Gradients, eta: float, decay: float, frozen: tuple[int, ...]) -> None:
        """The update itself, on checked arguments (``nblib.training`` checks them once per run)."""
        with np.errstate(**_QUIET):           # a step that overflows gives inf: see is_finite
            for l, (gw, gb) in enumerate(zip(grads.weights, grads.biases)):
                if l in frozen:
                    continue
                self.weights[l] = (decay * self.weights[l] - eta * gw).astype(self.dtype, copy=False)
                self.biases[l] = (self.biases[l] - eta * gb).astype(self.dtype, copy=False)

    # --- measurements -----------------------------------------------------------------------
    def cost(self, x: Array, labels: Array, lmbda: float = 0.0, n: int | None = None) -> float:
        """Mean cross-entropy over the batch plus network2's L2 term (lmbda / 2n) * sum ||w||^2.
        NaN when the network has diverged (NaN weights)."""
        zs, activations = self.forward(x)
        return self.cost_of_output(activations[-1], labels, lmbda, n, z=zs[-1])

    def cost_of_output(self, a: Array, labels: Array, lmbda: float = 0.0, n: int | None = None, *,
                       z: Array | None = None) -> float:
        """:meth:`cost` from output activations ``a`` already computed at the current weights
        (by ``feedforward``, or ``Gradients.output`` of ``backprop``).

        An output that has rounded to exactly 0 on its own class, or to exactly 1 on another
        (float32 does so from |z| of about 17), has a large but finite cost: it is computed
        exactly from the weighted inputs ``z`` of the output layer when they are given
        (``Gradients.output_z``), and otherwise from ``a`` held one rounding step away from 0 or
        1, which gives a lower bound. NaN outputs (a diverged network) give a NaN cost."""
        a = self._check_output(a, "a")
        y = self.one_hot(labels, a.shape[1], len(a))
        if z is not None and np.shape(z) != a.shape:
            raise ValueError(f"z must have the shape of a, {a.shape}, got {np.shape(z)}")
        lmbda = number(lmbda, "lmbda", non_negative=True)
        n = integer(len(a) if n is None else n, "n")
        cross_entropy = float(cross_entropy_terms(a, y, z).sum(axis=1).mean())
        if lmbda:
            cross_entropy += 0.5 * lmbda / n * sum(float((w.astype(np.float64) ** 2).sum())
                                                   for w in self.weights)
        return cross_entropy

    def predict(self, x: Array) -> Array:
        """The digit each input is classified as: the index of the most active output neuron."""
        return np.argmax(self.feedforward(x), axis=1)

    def accuracy(self, x: Array, labels: Array) -> float:
        """Fraction of the batch classified correctly."""
        labels = self.check_labels(labels, self.sizes[-1], len(self._check_inputs(x)))
        return float(np.mean(self.predict(x) == labels))

    # --- checking what comes in -------------------------------------------------------------
    def _check_inputs(self, x: Array) -> Array:
        return check_inputs(x, self.sizes[0], self.dtype)

    def _check_output(self, a: Array, name: str) -> Array:
        """Output activations: (n, sizes[-1]) numbers in [0, 1], or NaN (a diverged network)."""
        arr = checks.array(a, name, ndim=2, finite=False)
        if arr.shape[1] != self.sizes[-1]:
            raise ValueError(f"{name} has {arr.shape[1]} columns "
                             f"but the network has {self.sizes[-1]} outputs")
        if np.any((arr < 0) | (arr > 1)):          # False for NaN
            raise ValueError(f"{name} must be output activations, numbers in [0, 1]; got values from "
                             f"{np.nanmin(arr):g} to {np.nanmax(arr):g}")
        return arr if arr.dtype.kind == "f" else arr.astype(self.dtype)

    @staticmethod
    def check_labels(labels: Array, n_classes: int, n_examples: int | None = None) -> Array:
        """Integer class labels in [0, n_classes), one per example."""
        return checks.labels(labels, "labels", n_classes, n_examples,
                             owner=f" for a network with {n_classes} outputs")

    def one_hot(self, labels: Array, n_classes: int, n_examples: int | None = None) -> Array:
        """Rows of zeros with a one at each label: the desired output y(x)."""
        arr = self.check_labels(labels, n_classes, n_examples)
        y = np.zeros((len(arr), n_classes), dtype=self.dtype)
        y[np.arange(len(arr)), arr] = 1.0
        return y


def cross_entropy_terms(a: Array, y: Array, z: Array | None = None) -> Array:
    """Each output's cross-entropy -y ln a - (1 - y) ln(1 - a), in the dtype of ``a``, with
    Nielsen's convention 0 ln 0 = 0. Where ``a`` has rounded to exactly 0 (on y = 1) or 1 (on
    y = 0), the term is computed from the weighted input ``z`` as softplus(-z) or softplus(z), or
    without ``z`` from ``a`` one rounding step away from 0 or 1. NaN outputs stay NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = -y * np.log(a) - (1 - y) * np.log(1 - a)
    terms[np.isnan(terms) & ~np.isnan(a)] = 0.0      # 0 ln 0, on an output exactly 0 or 1
    saturated = np.isinf(terms)
    if saturated.any():
        terms[saturated] = _saturated_terms(a[saturated], y[saturated],
                                            None if z is None else np.asarray(z)[saturated])
    return terms


def _saturated_terms(a: Array, y: Array, z: Array | None) -> Array:
    """The cost of outputs that have rounded to the wrong end: exact from z, or a lower bound."""
    if z is not None:
        z = z.astype(np.float64)
        return np.where(y == 1, np.logaddexp(0.0, -z), np.logaddexp(0.0, z))
    info = np.finfo(a.dtype)
    return np.where(y == 1, -np.log(float(info.smallest_subnormal)), -np.log(float(info.epsneg) / 2))


# --- argument checks shared with nblib.training -------------------------------------------------
def check_network(net: Network, name: str = "net") -> Network:
    """An ``nblib.networks.Network``."""
    return checks.instance(net, name, Network, "an nblib.networks.Network")


def check_layers(layers: Sequence[int], n_layers: int, name: str = "frozen") -> tuple[int, ...]:
    """Layer indices (negative ones count from the output), as a sorted tuple of non-negative ones."""
    if isinstance(layers, (str, bytes)) or not isinstance(layers, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a list of layer indices such as [0], got {layers!r}")
    checked = set()
    for l in layers:
        if isinstance(l, (bool, np.bool_)) or not isinstance(l, Integral):
            raise TypeError(f"{name} must hold integer layer indices, got {l!r}")
        if not -n_layers <= l < n_layers:
            raise ValueError(f"{name} layer {l} does not exist: this network has {n_layers} weight "
                             f"layers, indices 0..{n_layers - 1} (or -{n_layers}..-1)")
        checked.add(int(l) % n_layers)
    return tuple(sorted(checked))


def check_decay(eta: float, lmbda: float, n: int) -> None:
    """network2's weight decay factor 1 - eta*lmbda/n must stay positive."""
    if eta * lmbda / n >= 1:
        raise ValueError(f"eta * lmbda / n = {eta * lmbda / n:g} must be below 1: the weight decay "
                         f"factor 1 - eta*lmbda/n would flip or zero every weight at each step")


def check_sizes(sizes: Sequence[int]) -> list[int]:
    """Layer sizes: a sequence of at least two positive integers."""
    if isinstance(sizes, np.ndarray) and sizes.ndim == 1:
        sizes = sizes.tolist()
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise TypeError(f"sizes must be a list of layer widths such as [784, 30, 10], got {sizes!r}")
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output layer, got {list(sizes)}")
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, Integral):
            raise TypeError(f"every layer width must be an integer, got {s!r} in {list(sizes)}")
        if s < 1:
            raise ValueError(f"every layer needs at least 1 neuron, got {s} in {list(sizes)}")
    return [int(s) for s in sizes]


def check_float_dtype(dtype: type | np.dtype) -> np.dtype:
    """float32 or float64."""
    if dtype is None:
        raise TypeError("dtype must be np.float32 or np.float64, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}") from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dt}")
    return dt


def check_inputs(x: Array, width: int, dtype: np.dtype) -> Array:
    """A non-empty 2-D batch of finite real inputs with ``width`` columns, as ``dtype``."""
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # e.g. a ragged list of lists
        raise ValueError(f"inputs must be a 2-D batch of shape (n, {width}): {exc}") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"inputs must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 1 and arr.shape[0] == width:
        raise ValueError(f"inputs must be a 2-D batch of shape (n, {width}); for one example use x[None, :]")
    if arr.ndim != 2:
        raise ValueError(f"inputs must be a 2-D batch of shape (n, {width}), got shape {arr.shape}")
    if arr.shape[1] != width:
        raise ValueError(f"inputs have {arr.shape[1]} columns but the first layer has {width} neurons")
    if arr.shape[0] == 0:
        raise ValueError("inputs are empty: a batch needs at least one example")
    with np.errstate(over="ignore"):
        arr = arr.astype(dtype, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"inputs contain NaN or infinity (or numbers too large for {np.dtype(dtype).name})")
    return arr
