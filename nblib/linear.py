"""Deep linear networks, plain and residual, many trained at once (chapter 3).

A *stack* of R networks, each of L square layers of width n, is one tensor ``weights`` of shape
(R, L, n, n): ``weights[r, l]`` is the matrix W of layer l + 1 of network r. With inputs as
rows, a plain layer computes ``h <- h @ W.T`` (that is, h = W h for a column vector) and a
residual one ``h <- h + h @ W.T`` (h = (I + W) h). Every step of every network is one batched
matrix product (``torch.bmm``), so the R networks train together, on the GPU when there is one.

The task is Orhan's: fit a fixed random linear map ``y = A x`` from examples ``x ~ N(0, I)``.
Because the inputs are standard normal, the expected loss and the expected (root-mean-square)
gradients have closed forms, and ``measure`` computes them exactly, with no sampling noise:

* loss ``= E ||f(x) - y||^2 / n = ||P - A||_F^2 / n``, with P the network's end-to-end matrix
  (1 for the network that outputs zero; a random isometry starts at about 2);
* the RMS gradient of that loss at layer l's activations, ``sqrt(E ||dl_x/dh_l||^2)``.

Importing this module imports torch.
"""

from __future__ import annotations

from ._optional import require

require("torch", __name__)   # first: without torch, a message that says what to install

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence, Union

import numpy as np
import torch

from . import checks
from .checks import integer, number
from .torchutil import as_device, float_dtype
from .progress import bar as progress_bar, enabled as progress_enabled

Tensor = torch.Tensor
INITIALISATIONS = ("gaussian", "folded", "orthogonal")


# --- argument checks ----------------------------------------------------------------------------
def check_weights(weights: Any, name: str = "weights") -> Tensor:
    """A floating-point tensor of shape (runs, layers, n, n)."""
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor of shape (runs, layers, n, n), "
                        f"got {type(weights).__name__}")
    if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2] or 0 in weights.shape:
        raise ValueError(f"{name} must have shape (runs, layers, n, n) with square layers, "
                         f"got {tuple(weights.shape)}")
    if not weights.is_floating_point():
        raise TypeError(f"{name} must hold floating-point numbers, got {weights.dtype}")
    return weights


def _check_batch(x: Any, name: str, weights: Tensor) -> Tensor:
    """Inputs for a stack: (batch, n), shared by every network, or (runs, batch, n)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
    runs, n = weights.shape[0], weights.shape[-1]
    if x.ndim == 2:
        x = x.expand(runs, *x.shape)
    if x.ndim != 3 or x.shape[0] != runs or x.shape[-1] != n or x.shape[1] == 0:
        raise ValueError(f"{name} must have shape (batch, {n}) or ({runs}, batch, {n}), "
                         f"got {tuple(x.shape)}")
    return x.to(weights.device, weights.dtype)


# --- initialisations ----------------------------------------------------------------------------
def gaussian(runs: int, depth: int, width: int, *, seed: int, scale: float = 1.0,
             device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """The standard initialisation: every entry drawn from N(0, scale^2 / width).

    Returns a stack of shape (runs, depth, width, width). The numbers are drawn on the CPU from
    a generator seeded with ``seed``, so they are the same on every device."""
    runs, depth, width, scale, g, on, dtype = _stack_settings(runs, depth, width, scale, seed, device, dtype)
    w = torch.randn(runs, depth, width, width, generator=g, dtype=torch.float64)
    return (w * (scale / width ** 0.5)).to(on, dtype)


def orthogonal(runs: int, depth: int, width: int, *, seed: int, scale: float = 1.0,
               device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Random orthogonal matrices (uniform over the orthogonal group), times ``scale``.

    The Q of the QR decomposition of a Gaussian matrix, with the signs of its columns fixed so
    that R has a positive diagonal (without that fix Q is not uniformly distributed)."""
    runs, depth, width, scale, g, on, dtype = _stack_settings(runs, depth, width, scale, seed, device, dtype)
    q, r = torch.linalg.qr(torch.randn(runs, depth, width, width, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    return (scale * q).to(on, dtype)


def _stack_settings(runs: int, depth: int, width: int, scale: float, seed: int, device: Any,
                    dtype: Any) -> tuple[int, int, int, float, torch.Generator, torch.device, torch.dtype]:
    """The checked settings of a stack of random matrices, and its seeded CPU generator."""
    runs, depth, width = integer(runs, "runs"), integer(depth, "depth"), integer(width, "width")
    checks.size(runs * depth * width * width, "the stack, runs x depth x width x width")
    scale = number(scale, "scale", non_negative=True)
    on, dtype = as_device(device, "device"), float_dtype(dtype)
    return runs, depth, width, scale, torch.Generator().manual_seed(checks.seed(seed)), on, dtype


def fold(weights: Tensor, times: int = 1) -> Tensor:
    """Orhan's folding: copy the first half of each matrix's columns into its second half.

    A folded matrix W = [B, B] maps x = (x1, x2) to B (x1 + x2): it cannot tell x apart from
    any input with the same x1 + x2, so its rank is at most n / 2. Folding ``times`` times
    repeats this on the first half, leaving at most n / 2**times independent columns. Returns a
    new tensor; the input is left as it is. (``times=0`` returns an unchanged copy.)"""
    weights = check_weights(weights)
    times = integer(times, "times", 0)
    n = weights.shape[-1]
    if n % (2 ** times):
        raise ValueError(f"folding {times} times needs a width divisible by {2 ** times}, got {n}")
    keep = n >> times
    return weights[..., :keep].repeat(1, 1, 1, 2 ** times)


def initialise(kind: str, runs: int, depth: int, width: int, *, seed: int, scale: float = 1.0,
               device: torch.device | None = None) -> Tensor:
    """One of ``INITIALISATIONS``: "gaussian" (Orhan's Fold 0), "folded" (his Fold 1: the
    same Gaussian matrices, folded once) or "orthogonal"."""
    kind = checks.choice(kind, "kind", INITIALISATIONS)
    if kind == "orthogonal":
        return orthogonal(runs, depth, width, seed=seed, scale=scale, device=device)
    w = gaussian(runs, depth, width, seed=seed, scale=scale, device=device)
    return fold(w) if kind == "folded" else w


# --- forward and backward -----------------------------------------------------------------------
Residual = Union[bool, Sequence[bool]]


def _skips(residual: Any, runs: int, like: Tensor) -> bool | Tensor:
    """``residual`` checked: True or False for the whole stack, or one flag per network, which
    becomes a (runs, 1, 1) tensor of 0s and 1s (1 = residual) to multiply the skip path by."""
    if isinstance(residual, (bool, np.bool_)):
        return bool(residual)
    if isinstance(residual, (list, tuple, np.ndarray)) and len(residual) == runs \
            and all(isinstance(r, (bool, np.bool_)) for r in residual):
        flags = [bool(r) for r in residual]
        if all(flags) or not any(flags):
            return flags[0]
        return torch.tensor(flags, dtype=like.dtype, device=like.device).view(runs, 1, 1)
    raise TypeError(f"residual must be True or False, or a list of {runs} of them (one per network), "
                    f"got {residual!r:.80}")


def _skip(h: Tensor, z: Tensor, skips: bool | Tensor) -> Tensor:
    """A layer's output from its input h and its product z: z (plain), h + z (residual), or for a
    stack that mixes both, z + flag * h."""
    if isinstance(skips, Tensor):
        return torch.addcmul(z, skips, h)
    return h + z if skips else z


def forward(weights: Tensor, x: Tensor, *, residual: Residual = False) -> list[Tensor]:
    """Every layer's activations for inputs ``x``: a list of L + 1 tensors of shape
    (runs, batch, n), the inputs first and the outputs last. ``residual`` is True or False for
    every network, or a list with one flag per network."""
    weights = check_weights(weights)
    h = _check_batch(x, "x", weights)
    skips = _skips(residual, weights.shape[0], weights)
    activations = [h]
    for l in range(weights.shape[1]):
        h = _skip(h, torch.bmm(h, weights[:, l].transpose(1, 2)), skips)
        activations.append(h)
    return activations


def end_to_end(weights: Tensor, *, residual: Residual = False) -> Tensor:
    """The matrix P that each network applies to its input (f(x) = P x): shape (runs, n, n)."""
    weights = check_weights(weights)
    eye = torch.eye(weights.shape[-1], dtype=weights.dtype, device=weights.device)
    return forward(weights, eye, residual=residual)[-1].transpose(1, 2)


def backward(weights: Tensor, activations: list[Tensor], output_grad: Tensor, *,
             residual: Residual = False) -> tuple[Tensor, Tensor]:
    """Backpropagation through a stack, given the gradient at the outputs (runs, batch, n).

    Returns (weight gradients summed over the batch, shape (runs, L, n, n); the gradients at
    every layer's activations, a tensor of shape (runs, L + 1, batch, n), inputs first)."""
    weights = check_weights(weights)
    depth = weights.shape[1]
    if not isinstance(activations, (list, tuple)) or len(activations) != depth + 1:
        raise ValueError(
            f"activations must hold {depth + 1} tensors (inputs and every layer), "
            f"got {len(activations) if isinstance(activations, (list, tuple)) else activations!r}")
    g = _check_batch(output_grad, "output_grad", weights)
    for l, a in enumerate(activations):
        if not isinstance(a, torch.Tensor) or a.shape != g.shape:
            raise ValueError(f"activations[{l}] must be a tensor of shape {tuple(g.shape)}, like the "
                             f"outputs' gradient, as forward() returns them")
    skips = _skips(residual, weights.shape[0], weights)
    grads = torch.empty_like(weights)
    at_layers = [g]
    for l in range(depth - 1, -1, -1):
        grads[:, l] = torch.bmm(g.transpose(1, 2), activations[l])
        g = _skip(g, torch.bmm(g, weights[:, l]), skips)
        at_layers.append(g)
    return grads, torch.stack(at_layers[::-1], dim=1)


# --- the task -----------------------------------------------------------------------------------
def target_map(width: int, *, seed: int, device: torch.device | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """The map to learn: a width x width matrix A with entries from N(0, 1 / width), so that
    y = A x has about the same size as x."""
    return gaussian(1, 1, width, seed=seed, device=device, dtype=dtype)[0, 0]


def measure(weights: Tensor, target: Tensor, *, residual: Residual = False) -> tuple[Tensor, Tensor, Tensor]:
    """Exact expectations over inputs x ~ N(0, I) of the loss ||f(x) - A x||^2 / n.

    Returns (loss, shape (runs,); the RMS gradient norm sqrt(E ||d loss_x / d h_l||^2) at the
    activations of every layer, shape (runs, L + 1), inputs first; the end-to-end matrices,
    shape (runs, n, n)). For x ~ N(0, I), E ||M x||^2 = ||M||_F^2, so pushing the n basis
    vectors through the network gives these expectations exactly."""
    weights = check_weights(weights)
    target = _check_target(target, weights)
    n = weights.shape[-1]
    eye = torch.eye(n, dtype=weights.dtype, device=weights.device)
    activations = forward(weights, eye, residual=residual)
    error = activations[-1] - target.T          # row i: f(e_i) - A e_i
    loss = (error ** 2).sum(dim=(1, 2)) / n
    _, at_layers = backward(weights, activations, 2 * error / n, residual=residual)
    rms = at_layers.pow(2).sum(dim=(2, 3)).sqrt()
    return loss, rms, activations[-1].transpose(1, 2)


def _check_target(target: Any, weights: Tensor) -> Tensor:
    n = weights.shape[-1]
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch tensor of shape ({n}, {n}), got {type(target).__name__}")
    if tuple(target.shape) != (n, n):
        raise ValueError(f"target must have shape ({n}, {n}) to match the layers, got {tuple(target.shape)}")
    return target.to(weights.device, weights.dtype)


# --- training -----------------------------------------------------------------------------------
@dataclass
class History:
    """What ``train`` recorded, as numpy arrays. ``steps[t]`` is the number of SGD steps taken
    before record t (``steps[0] == 0``: the initialisation). ``loss`` has shape (runs, T),
    ``grad_norms`` (runs, T, L + 1) (inputs first) and ``singular_values`` (runs, T, n): the
    singular values of the end-to-end matrix, largest first (NaN once a network has diverged)."""

    settings: dict[str, Any]
    steps: np.ndarray
    loss: np.ndarray
    grad_norms: np.ndarray
    singular_values: np.ndarray
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def steps_to(self, loss: float) -> np.ndarray:
        """For every run, the first recorded step at which its loss is at or below ``loss``
        (``inf`` for a run that never gets there, or diverges first): Saxe et al.'s "time to
        criterion", as fine as ``record_every``."""
        loss = number(loss, "loss", non_negative=True)
        reached = self.loss <= loss                                  # NaN (diverged) compares False
        first = np.argmax(reached, axis=1)
        return np.where(reached.any(axis=1), self.steps[first].astype(float), np.inf)

    def split(self, groups: dict[str, int]) -> dict[str, "History"]:
        """Cut a stack's history into consecutive groups of runs, e.g. {"gaussian": 5, "orthogonal": 5}."""
        if not isinstance(groups, dict) or not groups:
            raise TypeError(f"groups must be a dict {{name: number of runs}}, got {groups!r}")
        groups = {name: integer(size, f"groups[{name!r}]") for name, size in groups.items()}
        if sum(groups.values()) != self.loss.shape[0]:
            raise ValueError(f"groups must add up to the {self.loss.shape[0]} runs, got {groups}")
        out, start = {}, 0
        for name, size in groups.items():
            part = slice(start, start + integer(size, f"groups[{name!r}]"))
            out[name] = History(self.settings, self.steps, self.loss[part], self.grad_norms[part],
                                      self.singular_values[part], self.seconds)
            start += size
        return out


def train(weights: Tensor, target: Tensor, *, steps: int, lr: float | Sequence[float], batch_size: int = 64,
          residual: Residual = False, record_every: int = 20, seed: int = 0, workers: int = 1,
          progress: bool | None = None) -> History:
    """Mini-batch SGD on the squared error ||f(x) - A x||^2 / n, with fresh inputs x ~ N(0, I)
    at every step, the same for every network of the stack. Trains ``weights`` in place.

    ``lr`` and ``residual`` are one value for every network or a list with one per network, so
    that plain and residual networks, or several learning rates, train in one stack on the same
    batches. ``workers`` threads each train a contiguous share of the networks (each draws the
    same batches, so the result does not depend on ``workers``, but for rounding); on a CPU with
    two cores, two workers take about half the time.

    Every ``record_every`` steps (and before the first and after the last) records the exact
    expected loss, the RMS gradient norms at every layer and the singular values of each
    network's end-to-end matrix (see ``measure``). A network whose loss becomes infinite or NaN
    is recorded as such and left to itself; the others are unaffected."""
    weights = check_weights(weights)
    target = _check_target(target, weights)
    runs = weights.shape[0]
    steps, batch_size = integer(steps, "steps"), integer(batch_size, "batch_size")
    record_every = integer(record_every, "record_every")
    rates = _rates(lr, runs)
    flags = _flags(residual, runs)
    seed = checks.seed(seed)
    workers = integer(workers, "workers", at_most=64)
    show = progress_enabled(progress)
    shares = [part for part in np.array_split(np.arange(runs), min(workers, runs)) if len(part)]

    def share(k: int) -> tuple[list[int], list[Tensor]]:
        at = slice(int(shares[k][0]), int(shares[k][-1]) + 1)
        return _train_share(weights[at], target, steps=steps, rates=rates[at], flags=flags[at],
                            batch_size=batch_size, record_every=record_every, seed=seed,
                            progress=show and k == 0)

    start = time.perf_counter()
    if len(shares) == 1:
        results = [share(0)]
    else:
        with ThreadPoolExecutor(max_workers=len(shares)) as pool:
            results = list(pool.map(share, range(len(shares))))
    seconds = time.perf_counter() - start
    recorded = results[0][0]
    loss, rms, s = (torch.cat([r[1][k] for r in results]) for k in range(3))
    return History(
        settings=dict(steps=steps, lr=rates[0] if len(set(rates)) == 1 else rates, batch_size=batch_size,
                      residual=flags[0] if len(set(flags)) == 1 else flags, record_every=record_every,
                      seed=seed, runs=runs, depth=weights.shape[1], width=weights.shape[-1]),
        steps=np.array(recorded), loss=loss.double().numpy(), grad_norms=rms.double().numpy(),
        singular_values=s.numpy(), seconds=seconds)


def _rates(lr: Any, runs: int) -> list[float]:
    """One positive learning rate per network, from a number or a list of ``runs`` numbers."""
    if isinstance(lr, (list, tuple, np.ndarray)):
        if len(lr) != runs:
            raise ValueError(f"lr must be one number or a list of {runs} (one per network), "
                             f"got {len(lr)} numbers")
        return [number(r, "every lr", positive=True) for r in lr]
    return [number(lr, "lr", positive=True)] * runs


def _flags(residual: Any, runs: int) -> list[bool]:
    """One residual flag per network, from True, False or a list of ``runs`` flags."""
    skips = _skips(residual, runs, torch.empty(0))
    return skips.flatten().bool().tolist() if isinstance(skips, Tensor) else [skips] * runs


def _train_share(weights: Tensor, target: Tensor, *, steps: int, rates: list[float], flags: list[bool],
                 batch_size: int, record_every: int, seed: int,
                 progress: bool) -> tuple[list[int], list[Tensor]]:
    """``train`` on one share of the stack (in place, in the calling thread): the recorded steps,
    and (loss, rms, singular values) stacked along the records. Each step is one forward pass and
    one backward pass, in which every layer's weights are updated in place as soon as the
    gradient has passed through them (the learning rate is folded into the output gradient, so
    a learning rate per network costs nothing)."""
    runs, depth, n = weights.shape[0], weights.shape[1], weights.shape[-1]
    skips = _skips(flags, runs, weights)
    scale = (torch.tensor(rates, dtype=weights.dtype, device=weights.device).view(runs, 1, 1)
             * (2 / (n * batch_size)))
    g = torch.Generator().manual_seed(seed)
    layers = [weights[:, l] for l in range(depth)]
    recorded, records = [], []

    def record(step: int) -> None:
        loss, rms, product = measure(weights, target, residual=flags)
        product = product.double()
        finite = torch.isfinite(product).all(dim=(-2, -1))
        s = torch.linalg.svdvals(torch.where(finite[:, None, None], product, 0.0))
        s[~finite] = float("nan")               # a diverged network has no spectrum to report
        recorded.append(step)
        records.append((loss.cpu(), rms.cpu(), s.cpu()))

    with torch.no_grad():
        record(0)
        target_t = target.T.contiguous()
        for step in progress_bar(range(1, steps + 1), desc="SGD, deep linear", progress=progress,
                                 leave=False):
            x = torch.randn(batch_size, n, generator=g).to(weights.device, weights.dtype)
            h = x.expand(runs, batch_size, n)
            activations = [h]
            for w in layers:
                h = _skip(h, torch.bmm(h, w.transpose(1, 2)), skips)
                activations.append(h)
            grad = (h - x @ target_t) * scale            # lr x d loss / d output
            for l in range(depth - 1, -1, -1):
                below = _skip(grad, torch.bmm(grad, layers[l]), skips) if l else None
                layers[l].baddbmm_(grad.transpose(1, 2), activations[l], alpha=-1.0)
                grad = below
            if step % record_every == 0 or step == steps:
                record(step)
    return recorded, [torch.stack([r[k] for r in records], 1) for k in range(3)]
