"""Gradients as products of one factor per layer (Nielsen, chapter 5, second half).

The chain rule turns the gradient of a deep composition into a product: one factor for each
layer the signal passes through. This module computes those factors in the three settings
chapter 2 uses:

- a *chain of single neurons*, the sigmoid network with one neuron per layer, where
  dC/db_j = f'(z_j) * w_{j+1} f'(z_{j+1}) * ... * w_L f'(z_L) * dC/da_L;
  every function here takes arrays of weights and biases of shape ``(..., depth)`` and works
  on many chains at once;
- an *iterated map* x -> r x (1 - x), whose n-fold composition has the derivative
  f'(x_0) f'(x_1) ... f'(x_{n-1});
- a *real network* (``nblib.networks.Network``), where each backward step multiplies the error
  by the Jacobian factor Sigma'(z^l) (w^{l+1})^T.

The activation of a chain is c * sigma(z) with a scale c (default 1, Nielsen's sigmoid): its
derivative c * sigma'(z) peaks at c / 4.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from . import checks
from .checks import integer, number
from .networks import Network, check_inputs, check_network, sigmoid, sigmoid_prime

Array = np.ndarray


# --- chains of single neurons ---------------------------------------------------------------------
def random_chains(n: int, depth: int, *, seed: int | np.random.Generator = 0,
                  weight_std: float = 1.0, bias_std: float = 1.0) -> tuple[Array, Array]:
    """``n`` chains of ``depth`` neurons with weights N(0, weight_std^2) and biases N(0, bias_std^2):
    arrays ``(weights, biases)`` of shape (n, depth). Weight j feeds neuron j (weight 0 takes the
    input x)."""
    n, depth = integer(n, "n"), integer(depth, "depth")
    checks.size(2 * n * depth, "the weights and biases, 2 x n x depth")
    weight_std = number(weight_std, "weight_std", non_negative=True)
    bias_std = number(bias_std, "bias_std", non_negative=True)
    rng = np.random.default_rng(checks.seed(seed, generator=True))
    return weight_std * rng.standard_normal((n, depth)), bias_std * rng.standard_normal((n, depth))


def chain_forward(weights: Array, biases: Array, x: float | Array, *,
                  scale: float = 1.0) -> tuple[Array, Array]:
    """Weighted inputs ``zs`` and activations of every neuron, each of shape (..., depth):
    z_1 = w_1 x + b_1, a_j = scale * sigma(z_j), z_{j+1} = w_{j+1} a_j + b_{j+1}."""
    weights, biases = _chain_arrays(weights, biases)
    scale = number(scale, "scale", positive=True)
    a = _input(x, weights.shape[:-1])
    zs, activations = np.empty_like(weights), np.empty_like(weights)
    for j in range(weights.shape[-1]):
        zs[..., j] = weights[..., j] * a + biases[..., j]
        a = activations[..., j] = scale * sigmoid(zs[..., j])
    return zs, activations


def chain_factors(weights: Array, biases: Array, x: float | Array, *, scale: float = 1.0) -> Array:
    """The factors of dC/db_1, shape (..., depth): f'(z_1), then w_j f'(z_j) for j = 2..depth,
    where f'(z) = scale * sigma'(z). Their product times dC/da_L is dC/db_1."""
    weights, biases = _chain_arrays(weights, biases)
    zs, _ = chain_forward(weights, biases, x, scale=scale)
    factors = scale * sigmoid_prime(zs)
    factors[..., 1:] *= weights[..., 1:]
    return factors


def bias_gradients(weights: Array, biases: Array, x: float | Array, dC_da: float | Array = 1.0, *,
                   scale: float = 1.0) -> Array:
    """dC/db_j for every neuron j, shape (..., depth), built as Nielsen's product
    f'(z_j) * w_{j+1} f'(z_{j+1}) * ... * w_L f'(z_L) * dC/da_L. With the default
    ``dC_da = 1`` they are the gradients relative to dC/da_L."""
    weights, biases = _chain_arrays(weights, biases)
    zs, _ = chain_forward(weights, biases, x, scale=scale)
    own = scale * sigmoid_prime(zs)                                           # f'(z_j)
    later = weights[..., 1:] * own[..., 1:]                                   # w_k f'(z_k), k = 2..L
    # prod_{k > j} w_k f'(z_k), a reversed cumulative product (1 for the last neuron)
    tail = np.concatenate([np.cumprod(later[..., ::-1], axis=-1)[..., ::-1], np.ones_like(own[..., :1])],
                          axis=-1)
    return own * tail * _input(dC_da, weights.shape[:-1], "dC_da")[..., None]


def log10_factors(weights: Array, biases: Array, x: float | Array, *,
                  scale: float = 1.0) -> tuple[Array, Array]:
    """``(log10 |f'(z_j)|, log10 |w_j f'(z_j)|)`` for every neuron j, each of shape (..., depth):
    the neuron's own slope, and the factor it contributes to the gradients of the neurons
    before it (-inf where it is exactly zero)."""
    weights, biases = _chain_arrays(weights, biases)
    zs, _ = chain_forward(weights, biases, x, scale=scale)
    with np.errstate(divide="ignore"):
        log_own = np.log10(scale * sigmoid_prime(zs))
        return log_own, log_own + np.log10(np.abs(weights))


def log10_gradient_profile(weights: Array, biases: Array, x: float | Array, *, scale: float = 1.0) -> Array:
    """log10 |dC/db_j / dC/da_L| for every neuron j, shape (..., depth), computed as a sum of
    logarithms so that it neither underflows nor overflows over long chains (-inf where a
    factor is exactly zero)."""
    log_own, log_factor = log10_factors(weights, biases, x, scale=scale)
    later = np.cumsum(log_factor[..., :0:-1], axis=-1)[..., ::-1]            # factors j+1 .. L
    tail = np.concatenate([later, np.zeros_like(log_own[..., :1])], axis=-1)
    return log_own + tail


def exploding_chain(depth: int, *, weight: float = 100.0, x: float = 1.0) -> tuple[Array, Array]:
    """Nielsen's construction: every weight equal to ``weight`` and every bias chosen so that
    every z_j = 0 (b_1 = -weight * x, then b_j = -weight / 2), so each factor w sigma'(0) is
    weight / 4. Returns ``(weights, biases)`` of shape (depth,)."""
    depth = integer(depth, "depth")
    checks.size(2 * depth, "the weights and biases, 2 x depth")
    weight, x = number(weight, "weight"), number(x, "x")
    weights = np.full(depth, float(weight))
    biases = np.full(depth, -weight * sigmoid(0.0))
    biases[0] = -weight * x
    return weights, biases


# --- an iterated map --------------------------------------------------------------------------------
def logistic_map(x: float | Array, *, r: float = 3.5, steps: int = 1) -> tuple[Array, Array]:
    """Iterate f(x) = r x (1 - x) ``steps`` times from ``x``. Returns ``(orbit, derivative)``,
    each of shape (steps + 1, *x.shape): ``orbit[n]`` is f^n(x) and ``derivative[n]`` is the
    derivative of the n-fold composition, the product f'(x_0) ... f'(x_{n-1}) with
    f'(x) = r (1 - 2x)."""
    x = np.asarray(_finite_array(x, "x"), dtype=np.float64)
    if np.any((x < 0) | (x > 1)):
        raise ValueError("x must lie in [0, 1] (the logistic map sends [0, 1] into itself)")
    r = number(r, "r")
    if not 0 <= r <= 4:
        raise ValueError(f"r must lie in [0, 4] so that the map sends [0, 1] into itself, got {r}")
    steps = integer(steps, "steps", at_least=0)
    checks.size(2 * (steps + 1) * x.size, "the orbit and its derivative, 2 x (steps + 1) x x.size")
    orbit, derivative = np.empty((steps + 1, *x.shape)), np.empty((steps + 1, *x.shape))
    orbit[0], derivative[0] = x, 1.0
    for n in range(steps):
        derivative[n + 1] = derivative[n] * r * (1 - 2 * orbit[n])
        orbit[n + 1] = r * orbit[n] * (1 - orbit[n])
    return orbit, derivative


# --- the matrix form in a real network -------------------------------------------------------------
def delta_factors(net: Network, x: Array) -> tuple[list[Array], Array]:
    """For one input ``x`` (shape (n_in,) or (1, n_in)): the Jacobian factors
    J^l = Sigma'(z^l) (w^{l+1})^T of every hidden layer l (shape (n_l, n_{l+1}), input side
    first), which carry the error back one layer, delta^l = J^l delta^{l+1}; and the diagonal
    sigma'(z^L) of the output layer."""
    _check_network(net)
    zs, _ = net.forward(_one_example(net, x))
    factors = [sigmoid_prime(z[0]).astype(np.float64)[:, None] * net.weights[l + 1].T.astype(np.float64)
               for l, z in enumerate(zs[:-1])]
    return factors, sigmoid_prime(zs[-1][0]).astype(np.float64)


def deltas_by_products(net: Network, x: Array, label: int) -> list[Array]:
    """Every layer's error for one example, computed by the matrix form
    delta^l = Sigma'(z^l)(w^{l+1})^T Sigma'(z^{l+1}) ... (w^L)^T Sigma'(z^L) grad_a C, one
    explicit matrix product per layer (input side first, the output layer last). The cost is
    ``Network``'s cross-entropy, whose grad_a C is (a - y) / (a (1 - a))."""
    _check_network(net)
    x = _one_example(net, x)
    label = _label(label, net.sizes[-1])
    factors, output_prime = delta_factors(net, x)
    a = net.feedforward(x)[0].astype(np.float64)
    y = np.zeros_like(a)
    y[label] = 1.0
    grad_a = (a - y) / (a * (1 - a))
    deltas = [output_prime * grad_a]                                          # delta^L = Sigma'(z^L) grad_a C
    product = np.diag(output_prime)
    for J in reversed(factors):                                               # J^l ... J^{L-1} Sigma'(z^L)
        product = J @ product
        deltas.insert(0, product @ grad_a)
    return deltas


ACTIVATIONS = ("sigmoid", "tanh")


def layer_jacobians(weights: list[Array], biases: list[Array], x: Array, *,
                    activation: str = "sigmoid") -> list[Array]:
    """The Jacobian of every layer after the first with respect to its input, at each input of
    the batch ``x`` (m, n_0), for a network of ``activation`` layers h^l = f(w^l h^{l-1} + b^l)
    (``weights[l]`` of shape (n_{l+1}, n_l), as ``Network`` keeps them; every layer, the last
    included, applies f). Returns ``len(weights) - 1`` arrays: the l-th, of shape
    (m, n_{l+2}, n_{l+1}), is dh^{l+2}/dh^{l+1} = diag(f'(z^{l+2})) w^{l+2}, the factor by
    which layer l + 2 multiplies a small change of the layer below (Glorot and Bengio's
    J^i = dz^{i+1}/dz^i)."""
    activation = checks.choice(activation, "activation", ACTIVATIONS)
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)) or len(weights) < 2 \
            or not isinstance(biases, (list, tuple)) or len(biases) != len(weights):
        raise TypeError("weights and biases must be lists with one array per layer (at least two layers), "
                        "weights[l] of shape (n_out, n_in) and biases[l] of shape (n_out,)")
    weights = [_finite_array(w, f"weights[{l}]") for l, w in enumerate(weights)]
    biases = [_finite_array(b, f"biases[{l}]") for l, b in enumerate(biases)]
    for l, (w, b) in enumerate(zip(weights, biases)):
        if w.ndim != 2 or b.shape != (w.shape[0],) or (l and w.shape[1] != weights[l - 1].shape[0]):
            raise ValueError(f"layer {l}: weights of shape {w.shape} and biases of shape {b.shape} do not "
                             f"make a network (weights[l] is (n_out, n_in), n_in the previous layer's "
                             f"n_out; biases[l] is (n_out,))")
    h = _finite_array(x, "x")
    if h.ndim != 2 or h.shape[1] != weights[0].shape[1] or len(h) == 0:
        raise ValueError(f"x must be a batch of shape (m, {weights[0].shape[1]}), got shape {h.shape}")
    checks.size(len(h) * sum(w.size for w in weights[1:]),
                "the Jacobians, m x the weights after the first layer")
    out = []
    for l, (w, b) in enumerate(zip(weights, biases)):
        z = h @ w.T + b
        if activation == "tanh":
            h = np.tanh(z)
            slope = 1 - h ** 2
        else:
            h = sigmoid(z)
            slope = h * (1 - h)
        if l:
            out.append(slope[:, :, None] * w[None, :, :])
    return out


def spectral_norm(matrix: Array) -> float:
    """The largest singular value of ``matrix``: the most it can stretch any vector."""
    return float(np.linalg.norm(_matrix(matrix), 2))


def rms_gain(matrix: Array) -> float:
    """The root-mean-square singular value over the columns, ||matrix||_F / sqrt(columns): the
    factor by which the matrix stretches a vector pointing in a random direction, on average
    (in the root-mean-square sense)."""
    arr = _matrix(matrix)
    return float(np.linalg.norm(arr) / np.sqrt(arr.shape[1]))


# --- argument checks --------------------------------------------------------------------------------
def _chain_arrays(weights: Array, biases: Array) -> tuple[Array, Array]:
    w, b = _finite_array(weights, "weights"), _finite_array(biases, "biases")
    if w.ndim == 0 or w.shape[-1] == 0:
        raise ValueError(f"weights must have shape (..., depth) with depth >= 1, got shape {w.shape}")
    if w.shape != b.shape:
        raise ValueError(f"weights and biases must have the same shape, got {w.shape} and {b.shape}")
    return w, b


def _matrix(value: Array) -> Array:
    arr = _finite_array(value, "matrix")
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"matrix must be a non-empty 2-D array, got shape {arr.shape}")
    return arr


def _finite_array(value: Array, name: str) -> Array:
    try:
        arr = np.asarray(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be an array of numbers: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def _input(x: float | Array, shape: tuple[int, ...], name: str = "x") -> Array:
    arr = _finite_array(x, name)
    try:
        return np.broadcast_to(arr, shape).astype(np.float64)
    except ValueError:
        raise ValueError(f"{name} must be a number or broadcast to the chains' shape {shape}, "
                         f"got shape {arr.shape}") from None


def _check_network(net: Network) -> None:
    check_network(net)
    if len(net.sizes) < 3:
        raise ValueError(f"net must have at least one hidden layer, got sizes {net.sizes}")


def _one_example(net: Network, x: Array) -> Array:
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] != 1:
        raise ValueError(f"x must be one example, of shape ({net.sizes[0]},) or (1, {net.sizes[0]}), "
                         f"got shape {arr.shape}")
    return check_inputs(arr, net.sizes[0], np.dtype(np.float64))


def _label(label: int, n_classes: int) -> int:
    if isinstance(label, bool) or not isinstance(label, (Integral, np.integer)):
        raise TypeError(f"label must be an integer class index, got {label!r}")
    if not 0 <= label < n_classes:
        raise ValueError(f"label must lie in [0, {n_classes - 1}], got {label}")
    return int(label)
