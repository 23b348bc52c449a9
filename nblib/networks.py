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

from .checks import integer, number

Array = np.ndarray


def sigmoid(z: Array) -> Array:
    """The logistic function 1 / (1 + e^-z). (For z below about -700, e^-z overflows to infinity
    and the result is the correct limit, 0.)"""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z: Array) -> Array:
    """Derivative of the sigmoid: sigma(z) (1 - sigma(z)); at most 1/4, reached at z = 0."""
    s = sigmoid(z)
    return s * (1.0 - s)


@dataclass
class Gradients:
    """The gradient of the mean cost over a batch, and each layer's error for each example.

    ``weights[l]`` and ``biases[l]`` have the shapes of the network's; ``deltas[l]`` has shape
    ``(batch, sizes[l + 1])``: row ``x`` is Nielsen's delta^l for example ``x``, that is dC_x/db^l.
    ``output`` holds the output activations the gradient was computed at, so that the cost at
    those weights needs no second forward pass (``Network.cost_of_output``).
    """

    weights: list[Array]
    biases: list[Array]
    deltas: list[Array]
    output: Array | None = None


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
        ``seed`` (an int or a numpy Generator) makes the network reproducible. The numbers are
        drawn in float64 and stored as ``dtype``: float32 (the default) trains about twice as
        fast; float64 is for checking gradients to many digits.
        """
        self.sizes = check_sizes(sizes)
        self.dtype = check_float_dtype(dtype)
        rng = np.random.default_rng(seed)
        self.biases = [rng.standard_normal(n_out).astype(self.dtype) for n_out in self.sizes[1:]]
        self.weights = [(rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(self.dtype)
                        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])]

    def __repr__(self) -> str:
        return f"Network({self.sizes}, dtype={self.dtype.name})"

    @property
    def num_layers(self) -> int:
        """Layers of neurons, the input layer included (Nielsen's convention)."""
        return len(self.sizes)

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
        for w, b in zip(self.weights, self.biases):
            a = sigmoid(a @ w.T + b)
        return a

    def forward(self, x: Array) -> tuple[list[Array], list[Array]]:
        """Every layer's weighted inputs ``zs`` and activations (the input batch is activations[0])."""
        a = self._check_inputs(x)
        zs, activations = [], [a]
        for w, b in zip(self.weights, self.biases):
            z = a @ w.T + b
            a = sigmoid(z)
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
        delta = activations[-1] - y                                     # (BP1), cross-entropy
        deltas = [delta]
        for l in range(len(self.weights) - 1, 0, -1):
            delta = (delta @ self.weights[l]) * sigmoid_prime(zs[l - 1])  # (BP2)
            deltas.insert(0, delta)
        grad_b = [d.sum(axis=0) / n for d in deltas]                     # (BP3)
        grad_w = [d.T @ a / n for d, a in zip(deltas, activations[:-1])]  # (BP4)
        return Gradients(weights=grad_w, biases=grad_b, deltas=deltas, output=activations[-1])

    def update_mini_batch(self, x: Array, labels: Array, eta: float, lmbda: float, n: int,
                          frozen: Sequence[int] = ()) -> None:
        """One step of network2's rule on a mini-batch of m examples, from a training set of n:

        w <- (1 - eta*lmbda/n) w - (eta/m) sum_x dC_x/dw,    b <- b - (eta/m) sum_x dC_x/db.
        """
        self.apply_gradients(self.backprop(x, labels), eta, lmbda, n, frozen)

    def apply_gradients(self, grads: Gradients, eta: float, lmbda: float, n: int,
                        frozen: Sequence[int] = ()) -> None:
        """Step along mean-cost gradients ``grads`` with network2's L2 weight decay (biases are not
        decayed). Layers listed in ``frozen`` (non-negative indices) are left as they are."""
        eta, lmbda, n = number(eta, "eta", non_negative=True), number(lmbda, "lmbda", non_negative=True), integer(n, "n")
        decay = 1.0 - eta * lmbda / n
        for l, (gw, gb) in enumerate(zip(grads.weights, grads.biases)):
            if l in frozen:
                continue
            self.weights[l] = (decay * self.weights[l] - eta * gw).astype(self.dtype, copy=False)
            self.biases[l] = (self.biases[l] - eta * gb).astype(self.dtype, copy=False)

    # --- measurements -----------------------------------------------------------------------
    def cost(self, x: Array, labels: Array, lmbda: float = 0.0, n: int | None = None) -> float:
        """Mean cross-entropy over the batch plus network2's L2 term (lmbda / 2n) * sum ||w||^2."""
        return self.cost_of_output(self.feedforward(x), labels, lmbda, n)

    def cost_of_output(self, a: Array, labels: Array, lmbda: float = 0.0, n: int | None = None) -> float:
        """:meth:`cost` from output activations ``a`` already computed at the current weights
        (by ``feedforward``, or ``Gradients.output`` of ``backprop``)."""
        y = self.one_hot(labels, a.shape[1], len(a))
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = -y * np.log(a) - (1 - y) * np.log(1 - a)
        cross_entropy = float(np.nan_to_num(terms).sum(axis=1).mean())
        if lmbda:
            n = integer(len(a) if n is None else n, "n")
            cross_entropy += 0.5 * lmbda / n * sum(float((w.astype(np.float64) ** 2).sum()) for w in self.weights)
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

    @staticmethod
    def check_labels(labels: Array, n_classes: int, n_examples: int | None = None) -> Array:
        """Integer class labels in [0, n_classes), one per example."""
        arr = np.asarray(labels)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"labels must be integers (class indices), got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ValueError(f"labels must be a 1-D array of class indices, got shape {arr.shape}")
        if n_examples is not None and len(arr) != n_examples:
            raise ValueError(f"got {n_examples} inputs but {len(arr)} labels; they must match")
        if len(arr) and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValueError(f"labels must lie in [0, {n_classes - 1}] for a network with {n_classes} "
                             f"outputs, got values from {arr.min()} to {arr.max()}")
        return arr

    def one_hot(self, labels: Array, n_classes: int, n_examples: int | None = None) -> Array:
        """Rows of zeros with a one at each label: the desired output y(x)."""
        arr = self.check_labels(labels, n_classes, n_examples)
        y = np.zeros((len(arr), n_classes), dtype=self.dtype)
        y[np.arange(len(arr)), arr] = 1.0
        return y


# --- argument checks shared with nblib.training -------------------------------------------------
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
