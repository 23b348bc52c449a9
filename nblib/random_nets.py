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
NORMALISATIONS = (None, "batch", "layer")


def _derivative(nonlinearity: str, z: Tensor) -> Tensor:
    if nonlinearity == "tanh":
        return 1 - torch.tanh(z) ** 2
    if nonlinearity == "relu":
        return (z > 0).to(z.dtype)
    return torch.ones_like(z)


def _check_nonlinearity(nonlinearity: str) -> str:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
    return nonlinearity


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
    """Batch normalisation (each unit over the batch) or layer normalisation (each example over
    the units), without learned scale and shift."""
    if how is None:
        return z
    axis = 1 if how == "batch" else 2
    return (z - z.mean(axis, keepdim=True)) / (z.std(axis, keepdim=True) + 1e-8)


def representations(weights: Tensor, x: Tensor, *, nonlinearity: str = "tanh",
                    biases: Tensor | None = None, normalise: str | None = None) -> list[Tensor]:
    """The hidden representations of a batch ``x`` (batch, n) in every network of the stack:
    L + 1 tensors of shape (runs, batch, n), the inputs first. Layer l computes
    ``h <- phi(norm(h @ W_l.T + b_l))``; ``biases`` (runs, L, n) are optional, ``normalise``
    is None, "batch" or "layer"."""
    weights = check_weights(weights)
    _check_nonlinearity(nonlinearity)
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    runs, depth, n = weights.shape[0], weights.shape[1], weights.shape[-1]
    if biases is not None and (not isinstance(biases, torch.Tensor) or tuple(biases.shape) != (runs, depth, n)):
        raise ValueError(f"biases must be a tensor of shape ({runs}, {depth}, {n}), got "
                         f"{tuple(biases.shape) if isinstance(biases, torch.Tensor) else type(biases).__name__}")
    h = _batch(x, n, weights).expand(runs, -1, -1)
    if normalise == "batch" and h.shape[1] < 2:
        raise ValueError("batch normalisation needs a batch of at least 2 examples (the spread of one example "
                         f"is undefined), got x of shape {tuple(x.shape)}")
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
    if not isinstance(hidden, (list, tuple)) or not hidden or not all(isinstance(h, torch.Tensor) and h.ndim == 3
                                                                      for h in hidden):
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
