"""Recurrent networks on a long-range task: the adding problem (chapter 5).

Each input is a sequence of ``length`` steps with two numbers per step: a value drawn uniformly
from [0, 1], and a marker that is 1 at exactly two steps (one in the first half of the
sequence, one in the second) and 0 elsewhere. The target is the sum of the two marked values.
To solve it a network must carry the first marked value across at least half the sequence.
Predicting the mean, 1, for every sequence scores a mean squared error of 1/6 (the variance of
a sum of two uniform numbers), so ``1 - mse * 6`` is the fraction of the task solved.

``train(RecurrentConfig(...), seed)`` trains a vanilla (tanh) RNN, an LSTM or a GRU on fresh
sequences at every step and returns a ``RecurrentRun`` of plain numbers, including how strongly
the loss depends on the input at each time step, at the start and at the end.
"""

from __future__ import annotations

from ._optional import require

require("torch", __name__)   # first: without torch, a message that says what to install

import dataclasses
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from . import checks
from .checks import integer, number
from .torchutil import as_device, seed_all, tensor
from .progress import bar as progress_bar

Array = np.ndarray
KINDS = ("rnn", "lstm", "gru")
OPTIMISERS = ("adam", "sgd")
BASELINE_MSE = 1.0 / 6.0   # predicting the mean: Var(u1 + u2) = 2 * 1/12


def adding_problem(n: int, length: int, generator: torch.Generator | None = None,
                   on: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences of the adding problem: inputs (n, length, 2) of (value, marker) pairs and
    targets (n,), the sum of the two marked values."""
    n, length = integer(n, "n", 1), integer(length, "length", 2)
    checks.size(3 * n * length, "the sequences, 3 x n x length")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    values = torch.rand(n, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, length, (n,), generator=generator)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)
    y = values[rows, first] + values[rows, second]
    on = as_device(on)
    return x.to(on), y.to(on)


class Recurrent(nn.Module):
    """A one-layer recurrent network (``kind`` 'rnn' with tanh, 'lstm' or 'gru') read out
    linearly from its last hidden state: one number per sequence."""

    def __init__(self, kind: str, hidden: int = 32) -> None:
        super().__init__()
        checks.choice(kind, "kind", KINDS)
        integer(hidden, "hidden", 1)
        self.kind = kind
        cell = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
        self.rnn = cell(2, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (sequences, steps, 2), got {shape}")
        out, _ = self.rnn(x)
        return self.readout(out[:, -1]).squeeze(-1)


@dataclass(frozen=True)
class RecurrentConfig:
    """One training set-up: the network (``kind``, ``hidden``), the sequence ``length``, the
    ``optimiser`` ('adam', or 'sgd': plain stochastic gradient descent) and its learning rate
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

    def __post_init__(self) -> None:
        checks.choice(self.kind, "kind", KINDS)
        checks.choice(self.optimiser, "optimiser", OPTIMISERS)
        integer(self.length, "length", 2)
        for name in ("hidden", "steps", "batch"):
            integer(getattr(self, name), name, 1)
        number(self.lr, "lr", positive=True)
        if self.clip is not None:
            number(self.clip, "clip", positive=True)

    def but(self, **changes: Any) -> "RecurrentConfig":
        """A copy with some fields changed."""
        known = [f.name for f in dataclasses.fields(self)]
        return dataclasses.replace(self, **checks.settings(changes, known, "a RecurrentConfig"))


@dataclass
class RecurrentRun:
    """One run: training loss per step; gradient norm per step (before clipping); the length of
    each step the optimiser took, ||theta_after - theta_before||; the test mean squared error and
    fraction solved (on 2,000 sequences kept aside); and the mean over test sequences of
    ||dL/dx_t|| for each time step t, before and after training."""

    config: RecurrentConfig
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
        raise ValueError(f"the model must return one number per sequence, shape {tuple(y.shape)}, got {shape}")
    return out


def train(config: RecurrentConfig, seed: int, on: torch.device | None = None) -> RecurrentRun:
    """Train a fresh network on new sequences at every step. ``seed`` fixes the initial
    weights and every sequence; the test set is the same for every seed and network."""
    if not isinstance(config, RecurrentConfig):
        raise TypeError(f"config must be a RecurrentConfig, got {type(config).__name__}")
    checks.seed(seed)
    start = time.perf_counter()
    on = as_device(on)
    x_test, y_test = adding_problem(2000, config.length, torch.Generator().manual_seed(10**6), on)
    stream = seed_all(seed)             # the initial weights, and the sequences' own generator
    model = Recurrent(config.kind, config.hidden).to(on)
    optimiser = (torch.optim.Adam if config.optimiser == "adam" else torch.optim.SGD)(model.parameters(), lr=config.lr)
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
        updates.append(float(torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))))
        losses.append(float(loss.detach()))
        norms.append(norm)
        if not math.isfinite(losses[-1]):
            break
    error = mse(model, x_test, y_test)
    return RecurrentRun(config, seed, np.array(losses), np.array(norms), np.array(updates), error,
                        1.0 - error / BASELINE_MSE,
                        grads_start, input_gradients(model, x_test[:500], y_test[:500]),
                        clipped / max(1, len(losses)), time.perf_counter() - start)


def train_all(configs: dict[Any, RecurrentConfig], seeds: Sequence[int] | dict[Any, Sequence[int]], *,
              workers: int | None = None, desc: str = "runs",
              progress: bool | None = None) -> dict[Any, list[RecurrentRun]]:
    """``train`` every config with every seed: {name: [run per seed]}. ``seeds`` is one list for
    all configs, or a dict giving each config's name its own list. On a CPU the runs go to
    ``workers`` single-threaded processes (default: one per core, at most 4); on a GPU they run
    one after another. A run gives the same numbers whichever process trains it."""
    if not isinstance(configs, dict) or not configs:
        raise TypeError("configs must be a non-empty dict {name: RecurrentConfig}")
    for name, c in configs.items():
        if not isinstance(c, RecurrentConfig):
            raise TypeError(f"configs[{name!r}] must be a RecurrentConfig, got {type(c).__name__}")
    if isinstance(seeds, dict):
        if set(seeds) != set(configs):
            raise ValueError("seeds, given as a dict, must have exactly the names of configs as keys")
        seeds_of = seeds
    else:
        seeds_of = {name: seeds for name in configs}
    seeds_of = {name: checks.seeds(ss) for name, ss in seeds_of.items()}
    on_cpu = as_device(None).type == "cpu"
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if on_cpu else 1
    workers = integer(workers, "workers", 1) if on_cpu else 1
    jobs = [(name, c, s) for name, c in configs.items() for s in seeds_of[name]]
    # the longest runs first, so that no worker is left with a long one at the end
    jobs.sort(key=lambda j: -j[1].length * j[1].steps * (2 if j[1].kind == "gru" else 1))
    results: dict[tuple[str, int], RecurrentRun] = {}
    bar = progress_bar(total=len(jobs), desc=desc, progress=progress)
    if workers == 1:
        for name, c, s in jobs:
            results[(name, s)] = train(c, s)
            bar.update()
    else:
        context = torch.multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=torch.set_num_threads,
                                 initargs=(1,)) as pool:
            futures = {pool.submit(train, c, s): (name, s) for name, c, s in jobs}
            for f in as_completed(futures):
                results[futures[f]] = f.result()
                bar.update()
    bar.close()
    return {name: [results[(name, s)] for s in seeds_of[name]] for name in configs}


