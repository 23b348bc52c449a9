"""A gradient-health probe for any ``torch.nn.Module``: what each layer is doing, step by step.

A *layer* here is a weight module (``nn.Linear`` or ``nn.Conv1d/2d/3d``) paired with the
activation module that follows it (``nn.ReLU``, ``nn.Tanh``, ...). On the steps it records, the
probe measures for every layer:

- ``grad_norm``       ||dL/dW||, the length of the weight gradient (before any clipping)
- ``bias_grad_norm``  ||dL/db||, chapter 1's speed of learning (NaN for a layer without bias)
- ``update_ratio``    ||W_after - W_before|| / ||W_before||, how far the step moved the weights
- ``weight_norm``     ||W|| before the step
- ``act_mean``, ``act_std``  the mean and standard deviation of the layer's activations
- ``act_grad_rms``    the root mean square of dL/da, the gradient reaching the activations
- ``saturated``       the fraction of activations where a sigmoid or tanh has less than
  ``saturation`` (default 10%) of its largest slope (NaN for other activations)
- ``dead``            the fraction of ReLU (or leaky ReLU) units that are negative or zero for
  every example of the batch (NaN for other activations)
- ``eff_rank``        the effective rank (``nblib.degeneracy.effective_rank``) of the activation
  matrix, examples by units, with each unit's mean over the batch removed: how many directions
  the examples' activations really spread along (a common offset carries no information about
  the input, so it does not count); on at most ``rank_rows`` rows, evenly spaced over the batch
  (a conv layer has one row per example and position)

Use it by wrapping each training step::

    probe = Probe(model, every=10)
    for x, y in batches:
        with probe.step():            # hooks exist only inside a recorded step
            loss = loss_fn(model(x), y)
            optimiser.zero_grad(); loss.backward(); optimiser.step()
    history = probe.history()         # plain numpy arrays, one row per recorded step

Hooks are attached when a recorded step begins and removed when it ends, even if the step
raises, so the probe never leaves anything behind in the model; on the steps it does not
record it does nothing at all. ``measure(inputs)`` takes the activation statistics of one
forward pass without training.
"""

from __future__ import annotations

from ._optional import require

require("torch", __name__)   # first: without torch, a message that says what to install

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import checks
from .checks import integer
from .degeneracy import effective_rank

Array = np.ndarray
WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
SATURATING = (nn.Sigmoid, nn.Tanh)
RECTIFYING = (nn.ReLU, nn.LeakyReLU, nn.ReLU6)
ACTIVATION_TYPES = SATURATING + RECTIFYING + (nn.ELU, nn.GELU, nn.SiLU, nn.Softplus, nn.Hardtanh)
METRICS = ("grad_norm", "bias_grad_norm", "update_ratio", "weight_norm", "act_mean", "act_std",
           "act_grad_rms", "saturated", "dead", "eff_rank")
ACTIVATION_METRICS = ("act_mean", "act_std", "saturated", "dead", "eff_rank")


@dataclass
class History:
    """What a probe recorded: ``steps[r]`` is the step number of record r, and each metric is an
    array with one row per record and one column per layer (named in ``layers``)."""

    layers: list[str]
    steps: Array
    metrics: dict[str, Array] = field(default_factory=dict)

    def __getitem__(self, metric: str) -> Array:
        if metric not in self.metrics:
            raise KeyError(f"no metric {metric!r}; the probe records {', '.join(METRICS)}")
        return self.metrics[metric]

    def ratio_first_to_last(self, metric: str = "grad_norm") -> Array:
        """metric of the first layer over that of the last, one value per record: below 1 when
        the layer nearest the input gets the smaller gradient."""
        metric = checks.choice(metric, "metric", METRICS)
        if metric not in self.metrics:
            raise ValueError(f"this history has no {metric!r}; it holds {', '.join(self.metrics)}")
        values = self[metric]
        return values[:, 0] / values[:, -1]


class Probe:
    """Records the health of each layer of ``model`` on every ``every``-th training step.

    ``layers`` says what to watch: a mapping (or list) of (weight module, activation module)
    pairs, the activation module may be None. By default the probe pairs each activation
    module found in ``model`` with the weight module registered most recently before it, so
    ``nn.Sequential(nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, ..., nn.Linear)`` gives one layer
    per hidden layer (the output layer, with no activation after it, is left out); one
    activation module placed several times in an ``nn.Sequential`` gives one layer per place.
    Each call of an activation module is measured for the layer whose weight module ran last
    before it, so a shared ``nn.ReLU`` is measured separately after each of its weight modules
    (pass ``layers`` to name them: an activation module reused in ``forward`` cannot be found
    from the model's modules alone, and a step in which it runs after a weight module it is not
    paired with is refused, with a message that says how to pass the layers). A layer called
    twice in one step is measured over both calls.
    """

    def __init__(self, model: nn.Module,
                 layers: Mapping[str, tuple[nn.Module, nn.Module | None]]
                 | Sequence[tuple[nn.Module, nn.Module | None]] | None = None,
                 *, every: int = 1, saturation: float = 0.1, rank_rows: int = 2048) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        every = integer(every, "every")
        saturation = checks.fraction(saturation, "saturation")   # a fraction of the largest slope
        rank_rows = integer(rank_rows, "rank_rows")
        self.model, self.every, self.saturation, self.rank_rows = model, every, saturation, rank_rows
        self.names, self.pairs = _layers(model, layers)
        self._module_names = {id(m): name or type(m).__name__ for name, m in model.named_modules()}
        self.count = 0          # training steps seen so far
        self._rows: list[dict[str, Array]] = []
        self._steps: list[int] = []

    # --- recording -------------------------------------------------------------------------
    @contextmanager
    def step(self) -> Iterator[bool]:
        """Wrap one training step (forward, backward, optimiser step). Yields whether this step
        is recorded; the hooks it attaches are removed when the block ends, whatever happens."""
        record = self.count % self.every == 0
        self.count += 1
        if not record:
            yield False
            return
        weights = [w.weight for w, _ in self.pairs]
        before = [p.detach().clone() for p in weights]
        grads: dict[tuple[int, str], torch.Tensor] = {}
        acts: list[list[torch.Tensor]] = [[] for _ in self.pairs]
        act_grads: list[list[torch.Tensor]] = [[] for _ in self.pairs]
        strays: list[tuple[nn.Module, nn.Module | None]] = []
        handles = self._attach(grads, acts, act_grads, strays)
        try:
            yield True
        finally:
            for h in handles:
                h.remove()
        self._refuse_strays(strays)
        row = self._summarise(before, weights, grads, acts, act_grads)
        self._rows.append(row)
        self._steps.append(self.count - 1)

    def measure(self, inputs: torch.Tensor) -> dict[str, Array]:
        """Activation statistics of one forward pass of ``inputs`` (no gradients, nothing
        recorded): a dict from each of ``act_mean, act_std, saturated, dead, eff_rank`` to one
        value per layer. The pass runs in evaluation mode, so it sees the network as it is used
        for predictions and leaves it unchanged (batch normalisation's running statistics
        included); the model's mode is restored afterwards."""
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
        acts: list[list[torch.Tensor]] = [[] for _ in self.pairs]
        strays: list[tuple[nn.Module, nn.Module | None]] = []
        handles = self._attach(None, acts, None, strays)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                self.model(inputs)
        finally:
            self.model.train(was_training)
            for h in handles:
                h.remove()
        self._refuse_strays(strays)
        stats = [self._activation_stats(a, act) for (_, act), a in zip(self.pairs, acts)]
        return {m: np.array([s[m] for s in stats]) for m in ACTIVATION_METRICS}

    def history(self) -> History:
        """Everything recorded so far, as plain numpy arrays."""
        metrics = {m: np.array([row[m] for row in self._rows]).reshape(len(self._rows), len(self.pairs))
                   for m in METRICS}
        return History(list(self.names), np.array(self._steps, dtype=int), metrics)

    # --- internals -----------------------------------------------------------------------------
    def _attach(self, grads: dict | None, acts: list, act_grads: list | None, strays: list) -> list:
        """Hooks for one recorded step (or ``measure``): parameter hooks that add up the weight
        and bias gradients, forward hooks on every weight module that note which ran last, and
        on each activation module one hook that gives each call's output to the layer of the
        weight module that ran just before it (or, if none of its layers, to ``strays``)."""
        handles, last = [], {"module": None}
        layers_of: dict[int, list[tuple[int, nn.Module]]] = {}
        for i, (weight_module, act_module) in enumerate(self.pairs):
            if grads is not None:
                for kind in ("weight", "bias"):
                    p = getattr(weight_module, kind, None)
                    if isinstance(p, torch.Tensor) and p.requires_grad:
                        handles.append(p.register_hook(_accumulate(grads, (i, kind))))
            if act_module is not None:
                layers_of.setdefault(id(act_module), []).append((i, weight_module))
        watched = {id(m): m for m in self.model.modules() if isinstance(m, WEIGHT_TYPES)}
        watched.update((id(w), w) for w, _ in self.pairs)

        def ran(module: nn.Module, inputs: tuple, output: object) -> None:
            last["module"] = module

        handles += [m.register_forward_hook(ran) for m in watched.values()]
        acts_by_id = {id(a): a for _, a in self.pairs if a is not None}
        for key, act_module in acts_by_id.items():
            keep = {i: _keep_output(acts[i], None if act_grads is None else act_grads[i])
                    for i, _ in layers_of[key]}
            handles.append(act_module.register_forward_hook(_dispatch(layers_of[key], keep, last, strays)))
        return handles

    def _refuse_strays(self, strays: list) -> None:
        """Refuse a step in which an activation module ran after a weight module it is not paired with."""
        if not strays:
            return
        act, after = strays[0]
        name = lambda m: repr(self._module_names.get(id(m), type(m).__name__))  # noqa: E731
        paired = [name(w) for w, a in self.pairs if a is act]
        ran_after = f"after {name(after)}" if after is not None else "before any weight module"
        example = ", ".join(f'"{n}": (model.{n}, model.{self._module_names.get(id(act), "act")})'
                            for n in ("fc1", "fc2"))
        raise ValueError(
            f"the activation module {name(act)} ran {ran_after}, but the probe pairs it only with "
            f"{' and '.join(paired)}: one activation module is used after several layers (a shared "
            f"self.act called in forward, say), and the probe cannot tell its calls apart from the "
            f"model's modules alone. Give each layer its own activation module, or pass the layers, "
            f"one (weight module, activation module) pair each: Probe(model, layers={{{example}, ...}})")

    def _summarise(self, before: list, weights: list, grads: dict, acts: list, act_grads: list) -> dict:
        rows: dict[str, list[float]] = {m: [] for m in METRICS}
        for i, ((weight_module, act_module), w0, w1) in enumerate(zip(self.pairs, before, weights)):
            g, gb = grads.get((i, "weight")), grads.get((i, "bias"))
            w0_norm = float(w0.norm())
            rows["grad_norm"].append(float(g.norm()) if g is not None else math.nan)
            rows["bias_grad_norm"].append(float(gb.norm()) if gb is not None else math.nan)
            rows["weight_norm"].append(w0_norm)
            rows["update_ratio"].append(float((w1.detach() - w0).norm()) / w0_norm if w0_norm > 0
                                        else math.nan)
            ag = act_grads[i]
            if ag:
                ag = ag[0] if len(ag) == 1 else torch.cat([t.reshape(-1) for t in ag])
                rows["act_grad_rms"].append(float(ag.double().pow(2).mean().sqrt()))
            else:
                rows["act_grad_rms"].append(math.nan)
            for m, v in self._activation_stats(acts[i], act_module).items():
                rows[m].append(v)
        return {m: np.array(v) for m, v in rows.items()}

    def _activation_stats(self, outputs: list[torch.Tensor], module: nn.Module | None) -> dict[str, float]:
        if not outputs:
            return {m: math.nan for m in ACTIVATION_METRICS}
        a = (_as_rows(outputs[0]) if len(outputs) == 1
             else torch.cat([_as_rows(t) for t in outputs])).double()
        # a: (examples, units)
        std, mean = torch.std_mean(a) if a.numel() > 1 else (torch.zeros(()), a.mean())
        stats = {"act_mean": float(mean), "act_std": float(std), "saturated": math.nan, "dead": math.nan}
        if isinstance(module, nn.Sigmoid):
            stats["saturated"] = float((a * (1 - a) < self.saturation / 4).double().mean())
        elif isinstance(module, nn.Tanh):
            stats["saturated"] = float((1 - a * a < self.saturation).double().mean())
        elif isinstance(module, RECTIFYING):
            stats["dead"] = float((a <= 0).all(dim=0).double().mean())
        if len(a) > self.rank_rows:     # evenly spaced rows: for a conv layer, rows of many examples
            a_rows = torch.linspace(0, len(a) - 1, self.rank_rows, device=a.device).round().long()
            rows = a[a_rows]
        else:
            rows = a
        if torch.isfinite(rows).all():
            centred = rows - rows.mean(dim=0)
            if centred.shape[0] > centred.shape[1]:      # R of centred = QR has the same singular values,
                centred = torch.linalg.qr(centred, mode="r").R    # and is only units x units
            stats["eff_rank"] = effective_rank(centred.cpu().numpy())
        else:
            stats["eff_rank"] = math.nan
        return stats


def _accumulate(store: dict, key: tuple[int, str]):
    """A tensor hook that adds each gradient flowing into a parameter to ``store[key]``."""
    def hook(grad: torch.Tensor) -> None:
        g = grad.detach()
        store[key] = store[key] + g if key in store else g.clone()
    return hook


def _dispatch(layers: list[tuple[int, nn.Module]], keep: dict, last: dict, strays: list):
    """A forward hook for an activation module shared by ``layers`` (index, weight module): the
    output goes to the layer whose weight module ran last, or the call is noted in ``strays``."""
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        for i, weight_module in layers:
            if weight_module is last["module"]:
                keep[i](module, inputs, output)
                return
        if not isinstance(output, torch.Tensor):
            keep[layers[0][0]](module, inputs, output)          # refuses it, saying why
        strays.append((module, last["module"]))
    return hook


def _keep_output(outputs: list, grads: list | None):
    """A forward hook that keeps the module's output (detached) and, when the output takes
    part in autograd and ``grads`` is a list, the gradient that later flows back into it."""
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"the probe can only watch modules that return one tensor; "
                            f"{type(module).__name__} returned {type(output).__name__}")
        outputs.append(output.detach())
        if grads is not None and output.requires_grad:
            output.register_hook(lambda g: grads.append(g.detach()))
    return hook


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    """Activations as a matrix with one row per example (and position) and one column per unit
    (channel): (N, C) stays, (N, C, ...) becomes (N * positions, C)."""
    if t.dim() == 1:
        return t.reshape(-1, 1)
    if t.dim() > 2:
        t = t.movedim(1, -1)
    return t.reshape(-1, t.shape[-1])


def _layers(model: nn.Module, layers) -> tuple[list[str], list[tuple[nn.Module, nn.Module | None]]]:
    """Names and (weight module, activation module) pairs, given or found in ``model``."""
    if layers is None:
        names, pairs, last = [], [], None
        # a module placed twice counts twice
        for name, module in model.named_modules(remove_duplicate=False):
            if isinstance(module, WEIGHT_TYPES):
                last = (name, module)
            elif isinstance(module, ACTIVATION_TYPES) and last is not None:
                if not any(w is last[1] and a is module for w, a in pairs):
                    names.append(last[0])
                    pairs.append((last[1], module))
                last = None
        if not pairs:
            raise ValueError(
                f"found no layer to probe in {type(model).__name__}: the probe looks for an activation "
                f"module ({', '.join(t.__name__ for t in ACTIVATION_TYPES)}) after a weight module "
                f"(nn.Linear, nn.Conv1d/2d/3d). Functional activations such as torch.relu cannot be "
                f"hooked: use the module form, or pass layers=[(weight_module, activation_module), ...]")
        return names, pairs
    if isinstance(layers, Mapping):
        items = list(layers.items())
    elif isinstance(layers, Sequence) and not isinstance(layers, (str, bytes)):
        items = [(f"layer {i + 1}", pair) for i, pair in enumerate(layers)]
    else:
        raise TypeError(f"layers must be a dict or list of (weight module, activation module) pairs, "
                        f"got {type(layers).__name__}")
    if not items:
        raise ValueError("layers is empty: give at least one (weight module, activation module) pair")
    inside = {id(m) for m in model.modules()}
    for name, pair in items:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"layers[{name!r}] must be a (weight module, activation module) pair, "
                            f"got {pair!r}")
        weight_module, act_module = pair
        if not isinstance(weight_module, nn.Module) or not isinstance(getattr(weight_module, "weight", None),
                                                                         nn.Parameter):
            raise TypeError(f"layers[{name!r}]: the first element must be a module with a weight "
                            f"parameter (nn.Linear, nn.Conv2d, ...), got {type(weight_module).__name__}")
        if act_module is not None and not isinstance(act_module, nn.Module):
            raise TypeError(f"layers[{name!r}]: the second element must be a module or None, "
                            f"got {type(act_module).__name__}")
        for m in (weight_module, act_module):
            if m is not None and id(m) not in inside:
                raise ValueError(f"layers[{name!r}]: {type(m).__name__} is not part of the model")
    return [str(n) for n, _ in items], [pair for _, pair in items]
