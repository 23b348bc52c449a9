"""Recurrent networks on a long-range task: the adding problem (chapter 5).

Each input is a sequence of ``length`` steps with two numbers per step: a value drawn uniformly
from [0, 1], and a marker that is 1 at exactly two steps (one in the first half of the
sequence, one in the second) and 0 elsewhere. The target is the sum of the two marked values.
To solve it a network must carry the first marked value across at least half the sequence.
Predicting the mean, 1, for every sequence scores a mean squared error of 1/6 (the variance of
a sum of two uniform numbers), so ``1 - mse * 6`` is the fraction of the task solved.

``train(Config(...), seed)`` trains a vanilla (tanh) RNN, an LSTM or a GRU on fresh
sequences at every step and returns a ``Run`` of plain numbers, including how strongly
the loss depends on the input at each time step, at the start and at the end.
"""

from __future__ import annotations

from ._optional import require

require("torch", __name__)   # first: without torch, a message that says what to install

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from . import checks
from .checks import integer, number
from .torchutil import as_device, seed_all, tensor

Array = np.ndarray
KINDS = ("rnn", "lstm", "gru")
OPTIMISERS = ("adam", "sgd")
NONLINEARITIES = ("tanh", "relu")
INITS = ("default", "identity")
IDENTITY_INPUT_STD = 1e-3          # Le, Jaitly and Hinton's input weights: N(0, 0.001^2)
BASELINE_MSE = 1.0 / 6.0   # predicting the mean: Var(u1 + u2) = 2 * 1/12


def adding_problem(n: int, length: int, generator: torch.Generator | None = None,
                   on: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences of the adding problem: inputs (n, length, 2) of (value, marker) pairs and
    targets (n,), the sum of the two marked values."""
    n, length = integer(n, "n", 1), integer(length, "length", 2)
    checks.size(3 * n * length, "the sequences, 3 x n x length")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    x, y = assemble_adding_problem(*draw_adding_problem(n, length, generator))
    on = as_device(on)
    return x.to(on), y.to(on)


def draw_adding_problem(n: int, length: int,
                        generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random part of ``adding_problem`` (arguments as there, unchecked): the values (n,
    length) and the two marked positions (n,) each, one in each half of the sequence."""
    values = torch.rand(n, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, length, (n,), generator=generator)
    return values, first, second


def assemble_adding_problem(values: torch.Tensor, first: torch.Tensor,
                            second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (..., length, 2) and targets (...) from ``draw_adding_problem``'s draws (stacked
    along any leading axes: several streams' draws make their sequences at once)."""
    markers = torch.zeros_like(values)
    markers.scatter_(-1, first.unsqueeze(-1), 1.0)
    markers.scatter_(-1, second.unsqueeze(-1), 1.0)
    x = torch.stack([values, markers], dim=-1)
    marked = lambda at: values.gather(-1, at.unsqueeze(-1)).squeeze(-1)  # noqa: E731
    return x, marked(first) + marked(second)


def _check_options(kind: str, nonlinearity: str, init: str, forget_bias: float | None) -> None:
    """The network's options, and which kinds of network each applies to."""
    checks.choice(kind, "kind", KINDS)
    checks.choice(nonlinearity, "nonlinearity", NONLINEARITIES)
    checks.choice(init, "init", INITS)
    if nonlinearity != "tanh" and kind != "rnn":
        raise ValueError(f"nonlinearity applies to the vanilla RNN only (kind 'rnn'), got kind {kind!r}")
    if init == "identity" and kind != "rnn":
        raise ValueError(f"init 'identity' applies to the vanilla RNN only (kind 'rnn'), got kind {kind!r}")
    if forget_bias is not None:
        number(forget_bias, "forget_bias")
        if kind != "lstm":
            raise ValueError(f"forget_bias applies to the LSTM only, got kind {kind!r}")


class Recurrent(nn.Module):
    """A one-layer recurrent network (``kind`` 'rnn', 'lstm' or 'gru') read out linearly from its
    last hidden state: one number per sequence. The vanilla RNN's ``nonlinearity`` is 'tanh' or
    'relu'. ``init`` 'default' keeps PyTorch's initialisation (every weight and bias uniform on
    +-1/sqrt(hidden)); 'identity' is Le, Jaitly and Hinton's for a ReLU RNN: the recurrent matrix
    the identity, the input weights N(0, 0.001^2), the biases zero. ``forget_bias`` (LSTM only)
    sets the forget gate's bias at initialisation (b_ih + b_hh; None: PyTorch's random one)."""

    def __init__(self, kind: str, hidden: int = 32, *, nonlinearity: str = "tanh", init: str = "default",
                 forget_bias: float | None = None) -> None:
        super().__init__()
        _check_options(kind, nonlinearity, init, forget_bias)
        integer(hidden, "hidden", 1)
        self.kind = kind
        if kind == "rnn":
            self.rnn = nn.RNN(2, hidden, batch_first=True, nonlinearity=nonlinearity)
        else:
            self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[kind](2, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, 1)
        with torch.no_grad():
            if init == "identity":
                self.rnn.weight_hh_l0.copy_(torch.eye(hidden))
                self.rnn.weight_ih_l0.normal_(0.0, IDENTITY_INPUT_STD)
                self.rnn.bias_ih_l0.zero_()
                self.rnn.bias_hh_l0.zero_()
            if forget_bias is not None:           # PyTorch's gate order: input, forget, cell, output
                self.rnn.bias_ih_l0[hidden:2 * hidden].fill_(forget_bias)
                self.rnn.bias_hh_l0[hidden:2 * hidden].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (sequences, steps, 2), got {shape}")
        out, _ = self.rnn(x)
        return self.readout(out[:, -1]).squeeze(-1)


@dataclass(frozen=True)
class Config:
    """One training set-up: the network (``kind``, ``hidden``, and for the vanilla RNN its
    ``nonlinearity``; ``init`` and ``forget_bias`` as in ``Recurrent``), the sequence ``length``,
    the ``optimiser`` ('adam', or 'sgd': plain stochastic gradient descent) and its learning rate
    ``lr``, the number of ``steps`` and the ``batch`` of fresh sequences per step, and the
    gradient-norm ``clip`` threshold (None: no clipping)."""

    kind: str = "lstm"
    length: int = 50
    hidden: int = 32
    optimiser: str = "adam"
    lr: float = 3e-3
    steps: int = 1500
    batch: int = 64
    clip: float | None = None
    nonlinearity: str = "tanh"
    init: str = "default"
    forget_bias: float | None = None

    def __post_init__(self) -> None:
        checks.choice(self.kind, "kind", KINDS)
        checks.choice(self.optimiser, "optimiser", OPTIMISERS)
        integer(self.length, "length", 2)
        for name in ("hidden", "steps", "batch"):
            integer(getattr(self, name), name, 1)
        number(self.lr, "lr", positive=True)
        if self.clip is not None:
            number(self.clip, "clip", positive=True)
        _check_options(self.kind, self.nonlinearity, self.init, self.forget_bias)

    def network(self) -> Recurrent:
        """A freshly initialised network of this configuration (from torch's global generator)."""
        return Recurrent(self.kind, self.hidden, nonlinearity=self.nonlinearity, init=self.init,
                         forget_bias=self.forget_bias)

    def but(self, **changes: Any) -> "Config":
        """A copy with some fields changed."""
        known = [f.name for f in dataclasses.fields(self)]
        return dataclasses.replace(self, **checks.settings(changes, known, "a recurrent.Config"))


@dataclass
class Run:
    """One run: training loss per step; gradient norm per step (before clipping); the length of
    each step the optimiser took, ||theta_after - theta_before||; the test mean squared error and
    fraction solved (on 2,000 sequences kept aside); and the mean over test sequences of
    ||dL/dx_t|| for each time step t, before and after training."""

    config: Config
    seed: int
    losses: Array
    grad_norms: Array
    update_norms: Array
    mse: float
    solved: float
    input_grads_start: Array
    input_grads_end: Array
    clipped: float
    seconds: float


def input_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Array:
    """How much the loss depends on each time step's input: the mean over sequences of
    ||dL_i/dx_{i,t}||, where L_i is sequence i's squared error. Shape (steps,)."""
    x, y = _sequences(model, x, y)
    x = x.detach().clone().requires_grad_(True)
    loss = ((_predict(model, x, y) - y) ** 2).sum()      # a sum, so that each sequence keeps its own gradient
    (grad,) = torch.autograd.grad(loss, x)
    return grad.norm(dim=-1).mean(dim=0).cpu().numpy()


def mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared error of ``model`` on (x, y): x of shape (n, steps, 2), y of shape (n,)."""
    x, y = _sequences(model, x, y)
    with torch.no_grad():
        return float(((_predict(model, x, y) - y) ** 2).mean())


def _sequences(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A model, sequences (n, steps, 2) and one target per sequence (n,), checked."""
    checks.instance(model, "model", nn.Module, "a torch.nn.Module")
    x = tensor(x, "x", ndim=3, floating=True)
    y = tensor(y, "y", floating=True)
    if x.shape[-1] != 2 or y.shape != x.shape[:1] or len(x) == 0:
        raise ValueError(f"x must have shape (sequences, steps, 2) and y one target per sequence, shape "
                         f"(sequences,); got {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y


def _predict(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The model's predictions, which must have y's shape (or they would broadcast against it)."""
    out = model(x)
    if not isinstance(out, torch.Tensor) or out.shape != y.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must return one number per sequence, shape {tuple(y.shape)}, "
                         f"got {shape}")
    return out


def train(config: Config, seed: int, on: torch.device | None = None) -> Run:
    """Train a fresh network on new sequences at every step. ``seed`` fixes the initial
    weights and every sequence; the test set is the same for every seed and network."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a recurrent.Config, got {type(config).__name__}")
    checks.seed(seed)
    start = time.perf_counter()
    on = as_device(on)
    x_test, y_test = adding_problem(2000, config.length, torch.Generator().manual_seed(10**6), on)
    stream = seed_all(seed)             # the initial weights, and the sequences' own generator
    model = config.network().to(on)
    optimiser = (torch.optim.Adam if config.optimiser == "adam" else torch.optim.SGD)(
        model.parameters(), lr=config.lr)
    grads_start = input_gradients(model, x_test[:500], y_test[:500])
    losses, norms, updates, clipped = [], [], [], 0
    for _ in range(config.steps):
        x, y = adding_problem(config.batch, config.length, stream, on)
        loss = ((model(x) - y) ** 2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        total = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
        norm = float(total)
        if config.clip is not None and norm > config.clip:   # torch's clipping, without measuring again
            torch.nn.utils.clip_grads_with_norm_(model.parameters(), config.clip, total)
            clipped += 1
        before = [p.detach().clone() for p in model.parameters()]
        optimiser.step()
        moved = sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before))
        updates.append(float(torch.sqrt(moved)))
        losses.append(float(loss.detach()))
        norms.append(norm)
        if not math.isfinite(losses[-1]):
            break
    error = mse(model, x_test, y_test)
    return Run(config, seed, np.array(losses), np.array(norms), np.array(updates), error,
                        1.0 - error / BASELINE_MSE,
                        grads_start, input_gradients(model, x_test[:500], y_test[:500]),
                        clipped / max(1, len(losses)), time.perf_counter() - start)


# --- Pascanu, Mikolov and Bengio (2013): the one-unit cliff and the singular-value condition -------
SIGMA_BOUNDS = {"tanh": 1.0, "sigmoid": 0.25}      # gamma: the largest slope of each nonlinearity


def _sigmoid(x: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * x))           # = 1 / (1 + exp(-x)), without overflow


def _squash(x: Array, nonlinearity: str) -> tuple[Array, Array]:
    """sigma(x) and its slope sigma'(x)."""
    if nonlinearity == "tanh":
        s = np.tanh(x)
        return s, 1.0 - s * s
    s = _sigmoid(x)
    return s, s * (1.0 - s)


def one_unit(w: Any, b: Any, *, steps: int = 50, x0: float = 0.5,
             target: float = 0.7) -> tuple[Array, Array, Array]:
    """Pascanu, Mikolov and Bengio's one-unit recurrent network, x_t = w sigmoid(x_{t-1}) + b from
    ``x0``, with the loss on its last step, L = (x_steps - target)^2. ``w`` and ``b`` are numbers or
    arrays that broadcast together (a grid of them, say). Returns (L, dL/dw, dL/db), the gradient by
    backpropagation through time, each of the broadcast shape."""
    steps = integer(steps, "steps", 1)
    x0, target = number(x0, "x0"), number(target, "target")
    w, b = checks.array(w, "w").astype(float), checks.array(b, "b").astype(float)
    try:
        w, b = np.broadcast_arrays(w, b)
    except ValueError:
        raise ValueError(f"w and b must broadcast together, got shapes {w.shape} and {b.shape}") from None
    xs = [np.full(w.shape, x0)]
    for _ in range(steps):
        xs.append(w * _sigmoid(xs[-1]) + b)
    loss = (xs[-1] - target) ** 2
    delta = 2.0 * (xs[-1] - target)                  # dL/dx_t, going back from t = steps
    dw, db = np.zeros(w.shape), np.zeros(w.shape)
    for t in range(steps, 0, -1):
        s, slope = _squash(xs[t - 1], "sigmoid")
        dw += delta * s
        db += delta
        delta = delta * w * slope
    return loss, dw, db


def jacobian_norms(W: Any, steps: int, *, nonlinearity: str = "tanh", inputs: Any = None,
                   x0: Any = None) -> Array:
    """How the state x_t = W sigma(x_{t-1}) + u_t (Pascanu et al.'s form) depends on x_0: the largest
    singular value of the Jacobian dx_t/dx_0 = prod_k W diag(sigma'(x_{k-1})), for t = 1..steps.
    ``W`` is (n, n); ``inputs`` (steps, n) (None: zero); ``x0`` (n,) (None: zero); ``nonlinearity``
    'tanh' or 'sigmoid'. Since |sigma'| <= gamma (1 for tanh, 1/4 for the sigmoid), the result is at
    most (gamma ||W||_2)^t."""
    W = checks.array(W, "W", ndim=2).astype(float)
    n = W.shape[0]
    if W.shape != (n, n):
        raise ValueError(f"W must be a square matrix, got shape {W.shape}")
    steps = integer(steps, "steps", 1)
    checks.choice(nonlinearity, "nonlinearity", tuple(SIGMA_BOUNDS))
    u = np.zeros((steps, n)) if inputs is None else checks.array(inputs, "inputs", ndim=2).astype(float)
    if u.shape != (steps, n):
        raise ValueError(f"inputs must have shape (steps, n) = {(steps, n)}, got {u.shape}")
    x = np.zeros(n) if x0 is None else checks.array(x0, "x0", ndim=1).astype(float)
    if x.shape != (n,):
        raise ValueError(f"x0 must have shape ({n},), got {x.shape}")
    J, norms = np.eye(n), np.empty(steps)
    for t in range(steps):
        s, slope = _squash(x, nonlinearity)
        J = (W * slope) @ J                          # W diag(sigma'(x_{t-1})) J
        x = W @ s + u[t]
        norms[t] = np.linalg.norm(J, 2)
    return norms


def scaled_matrix(n: int, top_singular_value: float, seed: int) -> Array:
    """A random Gaussian n x n matrix rescaled so that its largest singular value is
    ``top_singular_value``."""
    n = integer(n, "n", 1)
    s = number(top_singular_value, "top_singular_value", positive=True)
    A = np.random.default_rng(checks.seed(seed)).standard_normal((n, n))
    return A * (s / np.linalg.norm(A, 2))
