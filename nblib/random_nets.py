"""Random deep nonlinear networks at initialisation: what they do to the space of their inputs.

Two kinds of network, both as stacks of R independent networks (one batched product per layer):

* square networks of width n, ``h <- phi(norm(h @ W.T + b))``, whose hidden representations
  (``representations``) and input-output Jacobians (``jacobians``) show how many directions
  survive with depth (chapter 3);
* Duvenaud et al.'s picture (``warp``): a deep composition of random maps of the plane to
  itself, each a wide one-hidden-layer tanh network ``x <- V tanh(W x + b)``, which folds a
  2-D sheet of inputs into thin filaments.

Importing this module imports torch.
"""

from __future__ import annotations

from ._optional import require

require("torch", __name__)   # first: without torch, a message that says what to install

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import checks
from .checks import integer, number
from .linear import check_weights, gaussian, orthogonal

Tensor = torch.Tensor
NONLINEARITIES: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda z: z, "tanh": torch.tanh, "relu": torch.relu}
NORMALISATIONS = (None, "batch", "layer", "divisive")
DIVISIVE_SIGMA = 0.1


def _derivative(nonlinearity: str, z: Tensor) -> Tensor:
    if nonlinearity == "tanh":
        return 1 - torch.tanh(z) ** 2
    if nonlinearity == "relu":
        return (z > 0).to(z.dtype)
    return torch.ones_like(z)


def _check_nonlinearity(nonlinearity: str) -> str:
    return checks.choice(nonlinearity, "nonlinearity", sorted(NONLINEARITIES))


def random_weights(runs: int, depth: int, width: int, *, init: str = "gaussian", scale: float = 1.0,
                   seed: int, device: torch.device | None = None,
                   dtype: torch.dtype = torch.float64) -> Tensor:
    """A stack (runs, depth, width, width) of "gaussian" (entries N(0, scale^2 / width)) or
    "orthogonal" (scale times a random orthogonal matrix) layers. Both keep the mean square
    length of a vector, times scale^2; the usual choices are scale 1 for tanh and sqrt(2) for
    ReLU (which zeroes half of its inputs)."""
    checks.choice(init, "init", ("gaussian", "orthogonal"))
    if init == "gaussian":
        return gaussian(runs, depth, width, seed=seed, scale=scale, device=device, dtype=dtype)
    return orthogonal(runs, depth, width, seed=seed, scale=scale, device=device, dtype=dtype)


def _normalise(z: Tensor, how: str | None) -> Tensor:
    """Batch normalisation (each unit over the batch), layer normalisation (each example over
    the units), without learned scale and shift, or divisive normalisation: each unit divided by
    the pooled activity of its layer, z_i / sqrt(sigma^2 + mean_j z_j^2) (the form of Carandini
    and Heeger, with the whole layer as the pool and a semi-saturation constant sigma =
    ``DIVISIVE_SIGMA``, small enough for the division to act at the activity of these networks)."""
    if how is None:
        return z
    if how == "divisive":
        return z / (DIVISIVE_SIGMA ** 2 + z.pow(2).mean(2, keepdim=True)).sqrt()
    axis = 1 if how == "batch" else 2
    return (z - z.mean(axis, keepdim=True)) / (z.std(axis, keepdim=True) + 1e-8)


def representations(weights: Tensor, x: Tensor, *, nonlinearity: str = "tanh",
                    biases: Tensor | None = None, normalise: str | None = None) -> list[Tensor]:
    """The hidden representations of a batch ``x`` (batch, n) in every network of the stack:
    L + 1 tensors of shape (runs, batch, n), the inputs first. Layer l computes
    ``h <- phi(norm(h @ W_l.T + b_l))``; ``biases`` (runs, L, n) are optional, ``normalise``
    is None, "batch", "layer" or "divisive"."""
    weights = check_weights(weights)
    _check_nonlinearity(nonlinearity)
    normalise = checks.choice(normalise, "normalise", NORMALISATIONS)
    runs, depth, n = weights.shape[0], weights.shape[1], weights.shape[-1]
    if biases is not None and (not isinstance(biases, torch.Tensor)
                               or tuple(biases.shape) != (runs, depth, n)):
        raise ValueError(
            f"biases must be a tensor of shape ({runs}, {depth}, {n}), got "
            f"{tuple(biases.shape) if isinstance(biases, torch.Tensor) else type(biases).__name__}")
    h = _batch(x, n, weights).expand(runs, -1, -1)
    if normalise == "batch" and h.shape[1] < 2:
        raise ValueError("batch normalisation needs a batch of at least 2 examples (the spread of one "
                         f"example is undefined), got x of shape {tuple(x.shape)}")
    if normalise == "layer" and n < 2:
        raise ValueError(f"layer normalisation needs layers of at least 2 units, got width {n}")
    phi, out = NONLINEARITIES[nonlinearity], [h]
    for l in range(depth):
        z = torch.bmm(h, weights[:, l].transpose(1, 2))
        if biases is not None:
            z = z + biases[:, l, None, :]
        h = phi(_normalise(z, normalise))
        out.append(h)
    return out


def effective_dimensions(hidden: list[Tensor]) -> np.ndarray:
    """The participation ratio (``nblib.degeneracy.participation_ratio``) of every network's
    representations at every layer, from the eigenvalues of their covariance, all at once:
    ``hidden`` as returned by ``representations``; returns an array of shape (runs, layers).
    Representations that are not finite (a network whose activations overflowed) have no
    dimension: NaN."""
    if (not isinstance(hidden, (list, tuple)) or not hidden
            or not all(isinstance(h, torch.Tensor) and h.ndim == 3 for h in hidden)):
        raise TypeError("hidden must be a non-empty list of tensors of shape (runs, batch, n), "
                        "as returned by representations()")
    h = torch.stack([t.double() for t in hidden], dim=1)               # (runs, layers, batch, n)
    if h.shape[2] < 2:
        raise ValueError(f"the representations need at least 2 examples each, got {h.shape[2]}")
    finite = torch.isfinite(h).all(dim=(2, 3))                         # (runs, layers)
    h = torch.where(finite[..., None, None], h, 0.0)
    h = h - h.mean(dim=2, keepdim=True)
    eig = torch.linalg.eigvalsh(h.transpose(-1, -2) @ h).clamp(min=0)
    total, squares = eig.sum(-1), (eig ** 2).sum(-1)
    ratio = torch.where(squares > 0, total ** 2 / squares.clamp(min=1e-300), torch.zeros_like(total))
    return torch.where(finite, ratio, torch.nan).cpu().numpy()


def jacobians(weights: Tensor, x: Tensor, *, nonlinearity: str = "tanh", biases: Tensor | None = None,
              at: tuple[int, ...] | None = None) -> dict[int, Tensor]:
    """Input-output Jacobians d h_l / d x of every network at every input of the batch ``x``:
    {l: tensor (runs, batch, n, n)} for each depth l in ``at`` (default: the last layer)."""
    weights = check_weights(weights)
    _check_nonlinearity(nonlinearity)
    runs, depth, n = weights.shape[0], weights.shape[1], weights.shape[-1]
    if at is not None and (isinstance(at, (str, bytes)) or not isinstance(at, (list, tuple, range))):
        raise TypeError(f"at must be a list of depths such as (1, {depth}), got {at!r}")
    at = (depth,) if at is None else tuple(integer(a, "every depth in at", 1) for a in at)
    if any(a > depth for a in at):
        raise ValueError(f"at must list depths between 1 and {depth}, got {at}")
    hidden = representations(weights, x, nonlinearity=nonlinearity, biases=biases)
    batch = hidden[0].shape[1]
    jac = torch.eye(n, dtype=weights.dtype, device=weights.device).expand(runs, batch, n, n)
    out = {}
    for l in range(depth):
        z = torch.bmm(hidden[l], weights[:, l].transpose(1, 2))
        if biases is not None:
            z = z + biases[:, l, None, :]
        jac = _derivative(nonlinearity, z)[..., None] * torch.einsum("rij,rbjk->rbik", weights[:, l], jac)
        if l + 1 in at:
            out[l + 1] = jac
    return out


def _batch(x: Tensor, n: int, weights: Tensor) -> Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch tensor of shape (batch, {n}), got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != n or x.shape[0] == 0:
        raise ValueError(f"x must have shape (batch, {n}), got {tuple(x.shape)}")
    return x.to(weights.device, weights.dtype)[None]


# --- Duvenaud's picture -------------------------------------------------------------------------
@dataclass
class Warp:
    """Where a deep random map of the plane sends a set of points: ``points[k]`` (N, 2) after k
    layers (``points[0]`` are the inputs), and ``jacobian_ratio[k]`` (N,), the ratio of the
    smaller to the larger singular value of the 2 x 2 Jacobian of the first k layers at each
    point: 1 where the map stretches the plane evenly, near 0 where it crushes it onto a line."""

    points: list[np.ndarray]
    jacobian_ratio: list[np.ndarray]


def warp(points: np.ndarray, depth: int, *, hidden: int = 200, weight_scale: float = 2.0,
         bias_scale: float = 1.0, residual: bool = False, seed: int = 0) -> Warp:
    """Push 2-D ``points`` (N, 2) through ``depth`` random layers x <- V tanh(W x + b) (or
    x <- x + V tanh(W x + b) if ``residual``), with W (hidden x 2) ~ N(0, weight_scale^2),
    b ~ N(0, bias_scale^2) and V (2 x hidden) ~ N(0, 2 / hidden): each layer is a smooth random
    map of the plane, like one layer of Duvenaud et al.'s deep Gaussian process."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0 or not np.all(np.isfinite(pts)):
        raise ValueError(f"points must be a finite array of shape (N, 2), got shape {pts.shape}")
    depth, hidden = integer(depth, "depth"), integer(hidden, "hidden")
    weight_scale = number(weight_scale, "weight_scale", non_negative=True)
    bias_scale = number(bias_scale, "bias_scale", non_negative=True)
    residual = checks.boolean(residual, "residual")
    checks.size(depth * len(pts) * 8, "the warped points and their Jacobians, depth x N x 8")
    g = torch.Generator().manual_seed(checks.seed(seed))
    x = torch.as_tensor(pts)
    jac = torch.eye(2, dtype=x.dtype).expand(len(x), 2, 2)
    out, ratios = [pts.copy()], [np.ones(len(pts))]
    for _ in range(depth):
        w = torch.randn(hidden, 2, generator=g, dtype=x.dtype) * weight_scale
        b = torch.randn(hidden, generator=g, dtype=x.dtype) * bias_scale
        v = torch.randn(2, hidden, generator=g, dtype=x.dtype) * (2 / hidden) ** 0.5
        a = torch.tanh(x @ w.T + b)
        step = torch.einsum("ij,nj,jk->nik", v, 1 - a ** 2, w)   # d layer / d x at each point
        if residual:
            step = step + torch.eye(2, dtype=x.dtype)
        x = x + a @ v.T if residual else a @ v.T
        jac = step @ jac
        s = torch.linalg.svdvals(jac)
        out.append(x.numpy().copy())
        ratios.append((s[:, 1] / s[:, 0].clamp(min=1e-300)).numpy())
    return Warp(out, ratios)


# --- Duvenaud et al.'s deep Gaussian processes: the Jacobian as a product of Gaussian matrices -----
def deep_gp_jacobians(runs: int, depth: int, dim: int, *, input_connected: bool = False,
                      variance: float | None = None, at: tuple[int, ...] | None = None,
                      seed: int) -> dict[int, Tensor]:
    """Duvenaud et al.'s recipe for the Jacobian of a deep Gaussian process: a product of
    independent matrices with independent N(0, variance) entries, one per layer. Plain layers are
    dim x dim, J^(1:l) = J^l J^(1:l-1). Input-connected layers see the previous layer and the input
    x, so their Jacobians are dim x 2 dim, J^(1:l) = J^l [J^(1:l-1); I]. ``variance`` defaults to
    1/dim (plain: the product keeps the mean square length of a vector) and 1/(2 dim)
    (input-connected: the product stays the size of the identity). Returns {l: (runs, dim, dim)}
    for every depth l in ``at`` (default: the last)."""
    runs, depth, dim = integer(runs, "runs"), integer(depth, "depth"), integer(dim, "dim")
    input_connected = checks.boolean(input_connected, "input_connected")
    variance = (1 / (2 * dim) if input_connected else 1 / dim) if variance is None else \
        number(variance, "variance", positive=True)
    if at is not None and (isinstance(at, (str, bytes)) or not isinstance(at, (list, tuple, range))):
        raise TypeError(f"at must be a list of depths such as (1, {depth}), got {at!r}")
    at = (depth,) if at is None else tuple(integer(a, "every depth in at", 1, at_most=depth) for a in at)
    checks.size(runs * depth * dim * dim * (2 if input_connected else 1),
                "the Jacobians, runs x depth x dim x dim")
    g = torch.Generator().manual_seed(checks.seed(seed))
    eye = torch.eye(dim, dtype=torch.float64).expand(runs, dim, dim)
    jac, out = eye, {}
    for l in range(1, depth + 1):
        step = torch.randn(runs, dim, 2 * dim if input_connected else dim, generator=g,
                           dtype=torch.float64) * variance ** 0.5
        jac = step @ (torch.cat([jac, eye], dim=1) if input_connected else jac)
        if l in at:
            out[l] = jac
    return out


# --- Balduzzi et al.'s shattered gradients --------------------------------------------------------
@dataclass
class ScalarNets:
    """A stack of random rectifier networks of one scalar input, every layer read out by a random
    linear unit: ``gradients[r, l - 1, i]`` is d y_l / d x at input ``x[i]`` for the readout y_l of
    layer l of network r, i.e. the gradient of a network of depth l."""

    x: np.ndarray
    gradients: np.ndarray
    residual_scale: float | None


def scalar_input_gradients(x: np.ndarray, runs: int, depth: int, *, width: int = 200,
                           residual_scale: float | None = None, seed: int) -> ScalarNets:
    """Balduzzi et al.'s experiment on ``runs`` random rectifier networks of one scalar input:
    the derivative of the output with respect to the input on the grid ``x``, for every depth from
    1 to ``depth`` at once (layer l of one deep network, read out by its own random unit, is a
    network of depth l). He's initialisation, N(0, 2 / fan-in), for the weights (the first layer
    maps x to ``width`` units, with biases N(0, 1), so that its units switch on at points spread
    over the inputs), N(0, 1 / width) for the readouts; see ``rectifier_gradients`` for the
    layers."""
    runs, depth, width = integer(runs, "runs"), integer(depth, "depth"), integer(width, "width")
    checks.size(runs * depth * width * width, "the weights, runs x depth x width x width")
    g = torch.Generator().manual_seed(checks.seed(seed))
    first = torch.randn(runs, 2, width, generator=g, dtype=torch.float64) * torch.tensor([[2 ** 0.5], [1.0]],
                                                                                          dtype=torch.float64)
    weights = (torch.randn(runs, max(depth - 1, 0), width, width, generator=g, dtype=torch.float64)
               * (2 / width) ** 0.5)
    readouts = torch.randn(runs, depth, width, generator=g, dtype=torch.float64) * width ** -0.5
    gradients = rectifier_gradients(x, first, weights, readouts, residual_scale=residual_scale)
    return ScalarNets(np.asarray(x, dtype=np.float64).copy(), gradients, residual_scale)


def rectifier_gradients(x: np.ndarray, first: Tensor, weights: Tensor, readouts: Tensor, *,
                        residual_scale: float | None = None) -> np.ndarray:
    """d y_l / d x on the grid ``x`` (points,) for rectifier networks of one scalar input given
    their weights: ``first`` (runs, 2, n) holds the first layer's weights and biases,
    h_1 = relu(x first[:, 0] + first[:, 1]); ``weights`` (runs, L - 1, n, n) are the later layers
    (inputs as rows, h @ W), whose weighted inputs are batch-normalised over the grid (each unit to
    mean 0 and variance 1 over the inputs, the statistics held fixed when differentiating, as at
    evaluation): h <- relu(BN(h W)) (feedforward) or, with ``residual_scale`` alpha, the residual
    block h <- h + alpha relu(BN(h W)); ``readouts`` (runs, L, n) read out every layer,
    y_l = h_l . readouts[:, l - 1].
    The derivative is carried forward exactly with the activations (forward-mode
    differentiation). Returns an array of shape (runs, L, points)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or len(x) < 2 or not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        raise ValueError(f"x must be a finite 1-D grid of at least 2 different inputs, got shape {x.shape}")
    for name, t, dims in (("first", first, 3), ("weights", weights, 4), ("readouts", readouts, 3)):
        if not isinstance(t, torch.Tensor) or t.ndim != dims or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch tensor with {dims} axes")
    runs, n = first.shape[0], first.shape[2]
    depth = readouts.shape[1]
    if (first.shape[1] != 2 or tuple(weights.shape) != (runs, depth - 1, n, n)
            or tuple(readouts.shape) != (runs, depth, n)):
        raise ValueError(f"first must be (runs, 2, n), weights (runs, L - 1, n, n) and readouts "
                         f"(runs, L, n); got {tuple(first.shape)}, {tuple(weights.shape)} and "
                         f"{tuple(readouts.shape)}")
    if residual_scale is not None:
        residual_scale = number(residual_scale, "residual_scale", positive=True)

    def normalised(z: Tensor, dz: Tensor) -> tuple[Tensor, Tensor]:
        spread = z.std(dim=1, keepdim=True).clamp(min=1e-300)
        return (z - z.mean(dim=1, keepdim=True)) / spread, dz / spread

    xs = torch.as_tensor(x, dtype=first.dtype)[None, :, None].expand(runs, -1, 1)      # (runs, points, 1)
    z = xs @ first[:, :1] + first[:, 1:]
    h, dh = torch.relu(z), (z > 0).to(z.dtype) * first[:, :1]                         # value and d/dx
    out = [dh @ readouts[:, 0, :, None]]
    for l in range(depth - 1):
        z, dz = normalised(h @ weights[:, l], dh @ weights[:, l])
        on = (z > 0).to(z.dtype)
        if residual_scale is None:
            h, dh = torch.relu(z), on * dz
        else:
            h, dh = h + residual_scale * torch.relu(z), dh + residual_scale * on * dz
        out.append(dh @ readouts[:, l + 1, :, None])
    return torch.cat(out, dim=2).transpose(1, 2).double().numpy()


def gradient_correlation(gradients: np.ndarray, lag: int = 1) -> np.ndarray:
    """The correlation between gradients at inputs ``lag`` grid steps apart: the Pearson correlation
    of g[..., i] and g[..., i + lag] over i, for every leading index (e.g. (runs, depths) ->
    (runs, depths)). 1 for a smooth function of the input, near 0 for white noise; NaN where the
    gradient is constant (no correlation to speak of)."""
    g = np.asarray(gradients, dtype=np.float64)
    if g.ndim == 0 or g.shape[-1] < 2 or not np.all(np.isfinite(g)):
        raise ValueError(f"gradients must be a finite array with at least 2 points on its last axis, "
                         f"got shape {g.shape}")
    lag = integer(lag, "lag", at_most=g.shape[-1] - 1)
    a, b = g[..., :-lag], g[..., lag:]
    a, b = a - a.mean(axis=-1, keepdims=True), b - b.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((a ** 2).sum(axis=-1) * (b ** 2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=-1) / np.where(denominator > 0, denominator, 1),
                        np.nan)
