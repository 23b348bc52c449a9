"""Many testbed networks trained at once, as one batched model (chapter 4).

``testbed.train`` trains one ``DeepMLP``; a step of a network this small costs a few
milliseconds of framework overhead and almost no arithmetic. ``train_many(configs, data, seeds)``
trains M networks of the same shape (depth, width, steps, batch size) as one model whose weights
have a leading "model" axis, (M, n_in, n_out), so that one batched matrix product
(``torch.baddbmm``) runs all of them, each on its own mini-batches, and the overhead of a step
is paid once for all M.

Everything else may differ from network to network: the activation function (applied to each
contiguous run of models that share it), the initialisation, batch normalisation (statistics per
model and unit), residual connections and their scale (fixed or learned), auxiliary classifiers,
the optimiser (SGD, momentum, Adam: all elementwise, so batched is exact), the learning rate, L2
and clipping (by each model's own gradient norm). Each network starts from exactly the weights
``testbed.train`` would give it (it is built by ``testbed.DeepMLP`` with the same seed and
copied in) and sees the same mini-batches in the same order, so the two agree to float rounding;
``tests/test_testbed_batched.py`` checks that they do. The result is one ``testbed.Run`` per
network, with the probe's per-layer record of every ``probe_every``-th step, measured per model.

A chapter hands its experiments to a :class:`Runner`: configs times seeds, grouped by shape into
batched models and trained on worker processes, costliest first, each run made once.
"""

from __future__ import annotations

from ._optional import require

require("torch", __name__)   # first: without torch, a message that says what to install

import copy
import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import checks
from .degeneracy import spectrum_effective_rank
from .probe import METRICS, History
from .initialisation import LEAKY_SLOPE
from .testbed import N_CLASSES, Config, Data, DeepMLP, Run, checked_batch, noise_draw, noise_generator
from .runner import Workers, default_workers, in_given_order, runs_of_equal
from .torchutil import seed_all

Array = np.ndarray
SHAPE_FIELDS = ("depth", "width", "steps", "batch_size")
BN_EPS, BN_MOMENTUM = 1e-5, 0.1                 # nn.BatchNorm1d's defaults
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8       # torch.optim.Adam's defaults
SATURATION = 0.1                                 # the probe's default: below 10% of the largest slope
FINAL_IMAGES = 1000                              # Probe.measure on the first 1,000 validation images


def shape_of(config: Config) -> tuple[int, ...]:
    """What networks trained together must share: (depth, width, steps, batch_size)."""
    checks.instance(config, "config", Config, "a testbed.Config")
    return tuple(getattr(config, f) for f in SHAPE_FIELDS)


@dataclass
class Tracked:
    """What ``train_many(..., track_every=k)`` records every k steps on ``track_images``
    validation images, in evaluation mode: ``steps``; the validation ``accuracy`` of each model
    (models x records); and the 15th, 50th and 85th percentiles of the input to the activation
    function (after batch normalisation, where there is one) of the last hidden layer's first
    ``track_units`` units (models x records x units x 3)."""

    steps: Array
    accuracy: Array
    percentiles: Array


class _Stack:
    """M testbed networks of one shape as batched tensors (weights (M, n_in, n_out)), with each
    network's settings as per-model tensors. ``select(rows)`` keeps some of the models."""

    def __init__(self, configs: Sequence[Config], seeds: Sequence[int], n_in: int, on: torch.device) -> None:
        self.configs, self.M, self.on = list(configs), len(configs), on
        c0 = configs[0]
        self.depth, self.width = c0.depth, c0.width
        sizes = [n_in] + [c0.width] * c0.depth
        models, self.orders = [], []
        for c, s in zip(configs, seeds):
            self.orders.append(seed_all(s))          # the initial weights and the batch order, as in train
            models.append(DeepMLP(c, n_in=n_in))
        stack = lambda ts: torch.stack([t.detach().to(torch.float32) for t in ts]).to(on)  # noqa: E731
        self.W = [stack([m.blocks[l].linear.weight.T for m in models]) for l in range(self.depth)]
        self.b = [stack([m.blocks[l].linear.bias if m.blocks[l].linear.bias is not None
                         else torch.zeros(sizes[l + 1]) for m in models]).unsqueeze(1)
                  for l in range(self.depth)]
        self.head_W = stack([m.head.weight.T for m in models])
        self.head_b = stack([m.head.bias for m in models]).unsqueeze(1)
        self.bn = torch.tensor([c.batch_norm for c in configs], device=on).view(-1, 1, 1)
        self.gamma = [stack([m.blocks[l].norm.weight if c.batch_norm else torch.ones(sizes[l + 1])
                             for m, c in zip(models, configs)]).unsqueeze(1) for l in range(self.depth)]
        self.beta = [stack([m.blocks[l].norm.bias if c.batch_norm else torch.zeros(sizes[l + 1])
                            for m, c in zip(models, configs)]).unsqueeze(1) for l in range(self.depth)]
        self.running_mean = [torch.zeros(self.M, 1, sizes[l + 1], device=on) for l in range(self.depth)]
        self.running_var = [torch.ones(self.M, 1, sizes[l + 1], device=on) for l in range(self.depth)]
        # residual blocks: h + scale * a where the block's input and output have the same width
        # (from the second hidden layer on: the first one's input is the image)
        self.res = torch.tensor([c.residual for c in configs], device=on).view(-1, 1, 1)
        self.res_from = 0 if n_in == c0.width else 1
        self.scale = torch.tensor([[c.residual_scale] * self.depth for c in configs],
                                  device=on).view(self.M, self.depth, 1, 1)
        self.learn_scale = torch.tensor([c.residual and c.learn_scale for c in configs], device=on)
        self.noise = [c.bn_noise for c in configs]
        self.noise_generators = [noise_generator(s) if c.bn_noise > 0 else None
                                 for c, s in zip(configs, seeds)]
        # auxiliary classifiers: heads at the union of every model's positions,
        # weighted 0 where a model has none
        self.aux_at = sorted({l for m in models for l in m.aux_at})
        self.aux_W, self.aux_b, weights, members = [], [], [], []
        for l in self.aux_at:
            heads = [m.aux[m.aux_at.index(l)] if l in m.aux_at else None for m in models]
            self.aux_W.append(stack([h.weight.T if h is not None else torch.zeros(c0.width, N_CLASSES)
                                     for h in heads]))
            self.aux_b.append(stack([h.bias if h is not None else torch.zeros(N_CLASSES)
                                     for h in heads]).unsqueeze(1))
            weights.append([c.aux_weight if h is not None else 0.0 for c, h in zip(configs, heads)])
            members.append([h is not None for h in heads])
        heads = len(self.aux_at)
        self.aux_weight = (torch.tensor(weights, dtype=torch.float32, device=on)
                           .reshape(heads, self.M).T.contiguous())
        self.aux_member = torch.tensor(members, dtype=torch.bool).reshape(heads, self.M).T.contiguous()
        self._settle()

    def _settle(self) -> None:
        """What follows from the per-model settings: which features are in use, the runs of
        neighbouring models that share an activation function and batch normalisation (each run
        is computed as one slice of the stack; ``train_many`` orders the models so that the runs
        are few), the runs of residual and plain models, the bias mask."""
        self.M = len(self.configs)
        self.any_bn, self.any_res = bool(self.bn.any()), bool(self.res.any())
        self.any_noise = any(a > 0 for a in self.noise)
        self.learning_scales = bool(self.learn_scale.any())
        self.bias_mask = (~self.bn).float()
        self.runs = runs_of_equal([(c.activation, c.batch_norm) for c in self.configs])   # ((act, bn), i, j)
        self.residual_runs = runs_of_equal([c.residual for c in self.configs])            # (residual, i, j)
        self.aux_rows = [None if bool(m.all()) else torch.nonzero(m).view(-1).to(self.on)
                         for m in self.aux_member.T]          # the models that have each head (None: all)

    def select(self, rows: Sequence[int]) -> "_Stack":
        """A stack of the models ``rows`` (copies of their tensors, no gradients)."""
        index = torch.tensor(list(rows), dtype=torch.long, device=self.on)
        pick = lambda t: t.detach().index_select(0, index.to(t.device))  # noqa: E731
        new = copy.copy(self)
        for name in ("W", "b", "gamma", "beta", "running_mean", "running_var", "aux_W", "aux_b"):
            setattr(new, name, [pick(t) for t in getattr(self, name)])
        for name in ("head_W", "head_b", "bn", "res", "scale", "learn_scale", "aux_weight", "aux_member"):
            setattr(new, name, pick(getattr(self, name)))
        new.configs = [self.configs[i] for i in rows]
        new.orders = [self.orders[i] for i in rows]
        new.noise = [self.noise[i] for i in rows]
        new.noise_generators = [self.noise_generators[i] for i in rows]
        new._settle()
        return new

    # --- parameters ------------------------------------------------------------------------
    def parameters(self) -> list[tuple[str, torch.Tensor]]:
        """(kind, tensor) for every trained tensor; kind 'weight' (L2 applies), 'bias', 'norm'
        or 'scale'."""
        params = [("weight", w) for w in self.W] + [("bias", b) for b in self.b]
        if self.any_bn:
            params += [("norm", g) for g in self.gamma] + [("norm", b) for b in self.beta]
        params += [("weight", self.head_W), ("bias", self.head_b)]
        params += [("weight", w) for w in self.aux_W] + [("bias", b) for b in self.aux_b]
        if self.learning_scales:
            params.append(("scale", self.scale))
        return params

    # --- the forward pass ------------------------------------------------------------------------
    def normalise_and_activate(self, z: torch.Tensor, l: int, training: bool,
                               want_z: bool = False) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Layer l's weighted inputs after batch normalisation (in the models that have it; only
        ``want_z``, else None), and its activations: each run of models with one activation
        function and one setting of batch_norm as one slice, so that no model computes what only
        another one needs."""
        zs, acts = [], []
        for ((name, bn), i, j), part in zip(self.runs, _split(z, self.runs)):
            if bn:
                part = self.batch_norm(part, l, training, i, j)
                if training and self.any_noise:
                    part = self.add_noise(part, i, j)
            zs.append(part)
            acts.append(_ACTIVATIONS[name](part))
        return (_joined(zs) if want_z else None), _joined(acts)

    def add_residual(self, h: torch.Tensor, a: torch.Tensor, l: int) -> torch.Tensor:
        """The next layer's input: h + scale * a in the residual models, a in the others."""
        runs = self.residual_runs
        return _joined([h_part + scale * a_part if res else a_part for (res, _, _), h_part, a_part, scale
                        in zip(runs, _split(h, runs), _split(a, runs), _split(self.scale[:, l], runs))])

    def forward(self, x: torch.Tensor, training: bool, keep: bool = False, inputs_of_last: bool = False):
        """Logits (M, B, 10), auxiliary logits, and (if ``keep``) each hidden layer's activations;
        with ``inputs_of_last`` also the last hidden layer's pre-activations. ``x`` is (M, B, n_in),
        one batch per model, or (B, n_in), shared."""
        h, acts, aux, z_last = x, [], [], None
        for l in range(self.depth):
            bias = self.b[l] * self.bias_mask
            z = torch.baddbmm(bias, h, self.W[l]) if h.dim() == 3 else torch.matmul(h, self.W[l]) + bias
            last = inputs_of_last and l == self.depth - 1
            z, a = self.normalise_and_activate(z, l, training, want_z=last)
            if last:
                z_last = z.detach()
            if keep:
                if a.requires_grad:
                    a.retain_grad()
                acts.append(a)
            if self.any_res and l >= self.res_from:
                h = self.add_residual(h, a, l)
            else:
                h = a
            if l + 1 in self.aux_at:
                k = self.aux_at.index(l + 1)
                members = self.aux_rows[k]            # only the models that have this head compute it
                pick = (lambda t: t) if members is None else (lambda t: t.index_select(0, members))  # noqa: E731
                aux.append(torch.baddbmm(pick(self.aux_b[k]), pick(h), pick(self.aux_W[k])))
        logits = torch.baddbmm(self.head_b, h, self.head_W)
        return logits, aux, acts, z_last

    def add_noise(self, z: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """``Config.bn_noise`` for models i..j-1 (``z`` is theirs): each noisy model's own draw
        for this layer and step."""
        if not any(a > 0 for a in self.noise[i:j]):
            return z
        draws = [noise_draw(g, a, z.shape[-1]) if a > 0
                 else torch.tensor([[0.0], [0.0]]).expand(2, z.shape[-1])
                 for g, a in zip(self.noise_generators[i:j], self.noise[i:j])]
        u, v = torch.stack(draws).to(z.device).unsqueeze(2).unbind(1)        # (models, 1, units) each
        return z * (1 + u) + v

    def batch_norm(self, z: torch.Tensor, l: int, training: bool, i: int, j: int) -> torch.Tensor:
        """nn.BatchNorm1d of layer l for models i..j-1 at once (``z`` is theirs): each (model,
        unit) is one channel of F.batch_norm, with its own statistics over the model's batch (and
        its running averages)."""
        M, B, N = z.shape
        flat = z.transpose(0, 1).reshape(B, M * N)
        gamma, beta = ((p if i == 0 and j == self.M else p.split([i, j - i, self.M - j])[1])
                       for p in (self.gamma[l], self.beta[l]))          # split: its gradient is one cat
        out = F.batch_norm(flat, self.running_mean[l][i:j].view(-1), self.running_var[l][i:j].view(-1),
                           gamma.reshape(-1), beta.reshape(-1), training, BN_MOMENTUM, BN_EPS)
        return out.view(B, M, N).transpose(0, 1)

    def loss(self, logits: torch.Tensor, aux: list, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each model's main cross-entropy (M,) and its total loss with the auxiliary terms."""
        M, B = y.shape
        ce = lambda out, y: F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1),  # noqa: E731
                                            reduction="none").view(len(y), B).mean(1)
        main = ce(logits, y)
        total = main
        for k, out in enumerate(aux):
            members = self.aux_rows[k]
            if members is None:
                total = total + self.aux_weight[:, k] * ce(out, y)
            else:
                total = total.index_add(0, members, self.aux_weight[members, k] * ce(out, y[members]))
        return main, total

    def accuracies(self, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> tuple[Array, Array]:
        """The fraction of (x, y) each model classifies right, in evaluation mode, (M,), and that
        of each auxiliary head, (M, heads). ``batch`` images at a time: a thousand keep each
        layer's activations of every model within the processor's cache (the logits do not
        depend on it)."""
        right = torch.zeros(self.M, dtype=torch.float64)
        aux_right = torch.zeros(self.M, len(self.aux_at), dtype=torch.float64)
        with torch.no_grad():
            for i in range(0, len(x), batch):
                logits, aux_logits, _, _ = self.forward(x[i:i + batch], training=False)
                right += (logits.argmax(-1) == y[i:i + batch]).double().sum(1).cpu()
                for k, a in enumerate(aux_logits):
                    rows = slice(None) if self.aux_rows[k] is None else self.aux_rows[k].cpu()
                    aux_right[rows, k] += (a.argmax(-1) == y[i:i + batch]).double().sum(1).cpu()
        return (right / len(x)).numpy(), (aux_right / len(x)).numpy()


def _split(t: torch.Tensor, runs: list[tuple]) -> list[torch.Tensor]:
    """``t`` cut along its first axis into the runs' slices (views; the gradient of a split is one
    cat, where that of each slice taken alone would be a tensor of zeros the size of ``t``)."""
    return [t] if len(runs) == 1 else list(t.split([j - i for _, i, j in runs]))


def _joined(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _leaky(z: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(z, LEAKY_SLOPE)


_ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "leaky_relu": _leaky}


class _Optimiser:
    """SGD, SGD with momentum 0.9 and Adam, each model with its own kind, learning rate and L2,
    written out as torch.optim.SGD and Adam compute them (elementwise, so batched is exact). The
    models that use Adam come last in the stack (``train_many`` orders them so): the first
    ``sgd`` models take SGD's step, the others Adam's, each on its own slice."""

    def __init__(self, configs: Sequence[Config], params: list[tuple[str, torch.Tensor]]) -> None:
        on = params[0][1].device
        adam = [c.optimiser == "adam" for c in configs]
        if adam != sorted(adam):
            raise ValueError("the models that use Adam must come after all the others")
        self.params, self.step_count, self.sgd = params, 0, adam.count(False)
        self.lr = torch.tensor([c.lr for c in configs], device=on)
        self.mu = torch.tensor([0.9 if c.optimiser == "momentum" else 0.0 for c in configs], device=on)
        self.l2 = torch.tensor([c.l2 for c in configs], device=on)
        self.buf: list[torch.Tensor | None] = [None] * len(params)          # the SGD models' momentum
        self.m = [torch.zeros_like(p[self.sgd:]) for _, p in params]         # the Adam models' moments
        self.v = [torch.zeros_like(p[self.sgd:]) for _, p in params]

    def select(self, rows: Sequence[int], params: list[tuple[str, torch.Tensor]]) -> None:
        """Keep the state of the models ``rows`` (in increasing order) only, for their new ``params``."""
        on = self.lr.device
        index = lambda rs: torch.tensor(list(rs), dtype=torch.long, device=on)  # noqa: E731
        pick = lambda t, rs: None if t is None else t.index_select(0, index(rs))  # noqa: E731
        sgd_rows = [r for r in rows if r < self.sgd]
        adam_rows = [r - self.sgd for r in rows if r >= self.sgd]
        self.params = params
        self.lr, self.mu, self.l2 = pick(self.lr, rows), pick(self.mu, rows), pick(self.l2, rows)
        self.buf = [pick(t, sgd_rows) for t in self.buf]
        self.m, self.v = [pick(t, adam_rows) for t in self.m], [pick(t, adam_rows) for t in self.v]
        self.sgd = len(sgd_rows)

    def step(self) -> None:
        self.step_count += 1
        t, k = self.step_count, self.sgd
        b1, b2 = ADAM_BETAS
        any_l2 = bool((self.l2 > 0).any())
        with torch.no_grad():
            for i, (kind, p) in enumerate(self.params):
                shape = (-1,) + (1,) * (p.dim() - 1)
                g = p.grad
                if g is None:
                    continue
                if kind == "weight" and any_l2:
                    g = g + self.l2.view(shape) * p
                if k > 0:                 # torch.optim.SGD: buf = g at the first step, then mu buf + g
                    gs = g[:k]
                    self.buf[i] = (gs.clone() if self.buf[i] is None
                                   else self.buf[i].mul_(self.mu[:k].view(shape)).add_(gs))
                    p[:k].sub_(self.lr[:k].view(shape) * self.buf[i])
                if k < len(p):            # torch.optim.Adam, with its bias corrections
                    ga = g[k:]
                    self.m[i].lerp_(ga, 1 - b1)
                    self.v[i].mul_(b2).addcmul_(ga, ga, value=1 - b2)
                    denom = (self.v[i].sqrt() / math.sqrt(1 - b2 ** t)).add_(ADAM_EPS)
                    p[k:].sub_((self.lr[k:].view(shape) / (1 - b1 ** t)) * self.m[i] / denom)


def _check(configs: Sequence[Config], data: Data, seeds: Sequence[int]) -> tuple[list[Config], list[int]]:
    configs, seeds = checks.configs_with_seeds(configs, seeds, Config, "testbed.Config")
    if not isinstance(data, Data):
        raise TypeError(f"data must be a testbed.Data (testbed.prepare(mnist)), got {type(data).__name__}")
    shapes = {shape_of(c) for c in configs}
    if len(shapes) > 1:
        raise ValueError(f"networks trained together must share {', '.join(SHAPE_FIELDS)}; "
                         f"got {sorted(shapes)} "
                         f"(group them with shape_of, or use Runner, which does)")
    return list(configs), seeds


def train_many(configs: Sequence[Config], data: Data, seeds: Sequence[int], *, probe_every: int = 25,
               track_every: int = 0, track_images: int = 1000, track_units: int = 1) -> list[Run]:
    """Train ``DeepMLP(configs[i])`` from seed ``seeds[i]``, every i at once, as ``testbed.train``
    trains one (the same initial weights and mini-batches; the numbers agree to float rounding).
    Returns one ``testbed.Run`` per network, in the order given. With ``track_every`` = k > 0,
    each run also gets ``run.tracked`` (a ``Tracked`` of its own: see there)."""
    configs, seeds = _check(configs, data, seeds)
    probe_every = checks.integer(probe_every, "probe_every")
    track_every = checks.integer(track_every, "track_every", 0)
    track_images = min(checks.integer(track_images, "track_images", 1), len(data.x_val))
    track_units = checks.integer(track_units, "track_units", 1, at_most=configs[0].width)
    start = time.perf_counter()
    order = sorted(range(len(configs)), key=lambda i: (*_stack_order(configs[i]), i))
    runs = _Training([configs[i] for i in order], data, [seeds[i] for i in order], probe_every,
                     track_every, track_images, track_units).run()
    return in_given_order(runs, order, time.perf_counter() - start)


def _stack_order(config: Config) -> tuple:
    """Where a network goes in its batched model: Adam's last (the optimiser takes two slices),
    and those that share an activation function, batch normalisation and residual connections
    next to each other (the forward pass takes one slice per run of them)."""
    return config.optimiser == "adam", config.activation, config.batch_norm, config.residual


def moments_at_init(config: Config, x: torch.Tensor, y: torch.Tensor,
                    seeds: Sequence[int]) -> tuple[Array, Array]:
    """``testbed.moments_at_init`` for every seed at once: E[a_l^2] and E[g_l^2] of freshly
    initialised ``DeepMLP(config)`` networks on one batch (x, y), arrays (seeds, depth)."""
    config, seeds = checks.instance(config, "config", Config, "a testbed.Config"), checks.seeds(seeds)
    x, y = checked_batch(x, y)
    stack = _Stack([config] * len(seeds), seeds, x.shape[1], x.device)
    for _, p in stack.parameters():
        p.requires_grad_(True)
    logits, _, acts, _ = stack.forward(x, training=True, keep=True)
    main, _ = stack.loss(logits, [], y.expand(len(seeds), -1))
    main.sum().backward()
    stats = activation_stats(stack, [a.detach() for a in acts])
    forward = stats["act_std"] ** 2 + stats["act_mean"] ** 2
    backward = np.stack([a.grad.double().pow(2).flatten(1).mean(1).cpu().numpy() for a in acts], axis=1)
    return forward, backward


class _Training:
    """The training loop of ``train_many``. A model whose loss or gradient stops being finite is
    scored as it is (as ``testbed.train`` scores a diverged network) and leaves the stack."""

    def __init__(self, configs: list[Config], data: Data, seeds: list[int], probe_every: int,
                 track_every: int, track_images: int, track_units: int) -> None:
        self.configs, self.seeds, self.data = configs, seeds, data
        self.probe_every, self.track_every, self.track_units = probe_every, track_every, track_units
        self.track_x, self.track_y = data.x_val[:track_images], data.y_val[:track_images]
        on = data.x_train.device
        self.stack = _Stack(configs, seeds, data.x_train.shape[1], on)
        self.alive = list(range(len(configs)))          # the original index of each model in the stack
        self.aux_member = self.stack.aux_member.clone()
        self._start_parameters()
        self.optimiser = _Optimiser(configs, self.params)
        self.clip = torch.tensor([c.clip if c.clip is not None else math.inf for c in configs], device=on)
        M, steps = len(configs), configs[0].steps
        self.losses, self.norms = torch.full((steps, M), math.nan), torch.full((steps, M), math.nan)
        self.stopped, self.diverged = [steps] * M, [False] * M
        self.clipped = torch.zeros(M)
        self.accuracy, self.aux_accuracy = (np.full(M, math.nan),
                                            np.full((M, len(self.stack.aux_at)), math.nan))
        self.records: list[tuple[int, list[int], dict[str, Array]]] = []
        self.tracked: list[tuple[int, list[int], Array, Array]] = []
        self.final: dict[int, dict[str, Array]] = {}

    def _start_parameters(self) -> None:
        self.params = self.stack.parameters()
        for _, p in self.params:
            p.requires_grad_(True)

    def run(self) -> list[Run]:
        c0, data = self.configs[0], self.data
        n, m = len(data.y_train), c0.batch_size
        queues: list[list[torch.Tensor]] = [[] for _ in self.configs]
        for step in range(c0.steps):
            stack = self.stack
            for i in self.alive:
                if not queues[i]:
                    batches = list(torch.randperm(n, generator=stack.orders[self.alive.index(i)]).to(
                        data.x_train.device).split(m))[::-1]
                    queues[i] = [b for b in batches if len(b) == m] or batches
            idx = torch.cat([queues[i].pop() for i in self.alive])
            x = data.x_train.index_select(0, idx).view(stack.M, m, -1)
            y = data.y_train.index_select(0, idx).view(stack.M, m)
            if self.track_every and step % self.track_every == 0:
                self._track(step)
            record = step % self.probe_every == 0
            if record:
                before = [w.detach().clone() for w in stack.W]
            logits, aux, acts, _ = stack.forward(x, training=True, keep=record)
            main, total = stack.loss(logits, aux, y)
            for _, p in self.params:
                p.grad = None
            total.sum().backward()
            with torch.no_grad():
                if stack.learning_scales:
                    # only the models that learn them
                    stack.scale.grad.mul_(stack.learn_scale.view(-1, 1, 1, 1))
                norm = torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(p.grad.flatten(1), dim=1)
                                 for _, p in self.params if p.grad is not None], 1), dim=1)
                if record:
                    # the gradients before clipping, as the probe sees them
                    rows = _probe_row(stack, acts)
                clip = self.clip.index_select(0, torch.tensor(self.alive, device=self.clip.device))
                if bool(torch.isfinite(clip).any()):
                    over = norm > clip
                    factor = torch.where(over, clip / norm, torch.ones_like(norm))
                    for _, p in self.params:
                        if p.grad is not None:
                            p.grad.mul_(factor.view((-1,) + (1,) * (p.dim() - 1)))
                    self.clipped[self.alive] += over.float().cpu()
            self.optimiser.step()
            if record:
                with torch.no_grad():
                    rows["update_ratio"] = np.stack(
                        [((w - w0).flatten(1).norm(dim=1) / w0.flatten(1).norm(dim=1)).double().cpu().numpy()
                         for w, w0 in zip(stack.W, before)], 1)
                    rows["weight_norm"] = np.stack([w0.flatten(1).norm(dim=1).double().cpu().numpy()
                                                    for w0 in before], 1)
                self.records.append((step, list(self.alive), rows))
            main, norm = main.detach().cpu(), norm.cpu()
            self.losses[step, self.alive], self.norms[step, self.alive] = main, norm
            bad = ~(torch.isfinite(main) & torch.isfinite(norm))
            if bool(bad.any()):
                self._drop([k for k in range(stack.M) if bad[k]], step)
                if not self.alive:
                    break
        if self.track_every and self.alive:
            self._track(c0.steps)
        if self.alive:
            self._score(list(range(self.stack.M)), final=True)
        return self._runs()

    def _drop(self, rows: list[int], step: int) -> None:
        """Models ``rows`` of the stack diverged at ``step``: score them as they are, then train on
        without them."""
        for k in rows:
            i = self.alive[k]
            self.stopped[i], self.diverged[i] = step + 1, True
        self._score(rows, final=False)
        keep = [k for k in range(self.stack.M) if k not in rows]
        self.alive = [self.alive[k] for k in keep]
        if not keep:
            return
        self.stack = self.stack.select(keep)
        self._start_parameters()
        self.optimiser.select(keep, self.params)

    def _score(self, rows: list[int], final: bool) -> None:
        """Validation accuracy of the models ``rows`` of the stack (and, after training, the
        probe's activation statistics on the first 1,000 validation images)."""
        part = self.stack if len(rows) == self.stack.M else self.stack.select(rows)
        accuracy, aux = part.accuracies(self.data.x_val, self.data.y_val)
        originals = [self.alive[k] for k in rows]
        self.accuracy[originals], self.aux_accuracy[originals] = accuracy, aux
        if final:
            with torch.no_grad():
                _, _, acts, _ = part.forward(self.data.x_val[:FINAL_IMAGES], training=False, keep=True)
            stats = activation_stats(part, acts)
            for k, i in enumerate(originals):
                self.final[i] = {name: v[k] for name, v in stats.items()}

    def _track(self, step: int) -> None:
        stack = self.stack
        with torch.no_grad():
            logits, _, _, z = stack.forward(self.track_x, training=False, inputs_of_last=True)
            accuracy = (logits.argmax(-1) == self.track_y).double().mean(1).cpu().numpy()
            q = torch.tensor([0.15, 0.5, 0.85], dtype=torch.float64, device=z.device)
            percentiles = torch.quantile(z[:, :, :self.track_units].double(), q, dim=1)   # (3, M, units)
        self.tracked.append((step, list(self.alive), accuracy, percentiles.permute(1, 2, 0).cpu().numpy()))

    def _runs(self) -> list[Run]:
        depth = self.configs[0].depth
        names = [f"hidden {l}" for l in range(1, depth + 1)]
        runs = []
        for i, (c, s) in enumerate(zip(self.configs, self.seeds)):
            rows = [(step, {k: r[k][alive.index(i)] for k in METRICS})
                    for step, alive, r in self.records if i in alive]
            metrics = {k: np.array([r[k] for _, r in rows]).reshape(len(rows), depth) for k in METRICS}
            history = History(list(names), np.array([step for step, _ in rows], dtype=int), metrics)
            n = self.stopped[i]
            aux = [float(self.aux_accuracy[i, k]) for k in range(len(self.stack.aux_at))
                   if bool(self.aux_member[i, k])]
            run = Run(c, s, float(self.accuracy[i]), self.losses[:n, i].double().numpy(),
                      self.norms[:n, i].double().numpy(), history, self.final.get(i, {}), self.diverged[i],
                      float(self.clipped[i]) / max(1, n), 0.0, aux)
            if self.track_every:
                mine = [(step, alive.index(i), a, p) for step, alive, a, p in self.tracked if i in alive]
                run.tracked = Tracked(np.array([t[0] for t in mine]), np.array([t[2][t[1]] for t in mine]),
                                      np.array([t[3][t[1]] for t in mine]))
            runs.append(run)
        return runs


def _probe_row(stack: _Stack, acts: list[torch.Tensor]) -> dict[str, Array]:
    """The probe's per-layer numbers for every model at one recorded step (update_ratio and
    weight_norm are added after the optimiser's step): arrays of shape (M, depth)."""
    rows: dict[str, Array] = {}
    rows["grad_norm"] = np.stack([w.grad.flatten(1).norm(dim=1).cpu().double().numpy() for w in stack.W],
                                 axis=1)
    bias = np.stack([b.grad.flatten(1).norm(dim=1).cpu().double().numpy() for b in stack.b], axis=1)
    rows["bias_grad_norm"] = np.where(stack.bn.view(-1, 1).cpu().numpy(), math.nan, bias)
    rows["act_grad_rms"] = np.stack([a.grad.double().pow(2).flatten(1).mean(1).sqrt().cpu().numpy()
                                     if a.grad is not None else np.full(stack.M, math.nan)
                                     for a in acts], axis=1)
    rows.update(activation_stats(stack, [a.detach() for a in acts]))
    return rows


def activation_stats(stack: _Stack, acts: list[torch.Tensor]) -> dict[str, Array]:
    """The probe's activation statistics (act_mean, act_std, saturated, dead, eff_rank) of each
    model and hidden layer, from activations (M, examples, units) per layer: (M, depth) each."""
    M = stack.M
    out = {k: np.full((M, len(acts)), math.nan)
           for k in ("act_mean", "act_std", "saturated", "dead", "eff_rank")}
    spectra = []
    for l, a in enumerate(acts):
        a = a.double()
        std, mean = torch.std_mean(a.flatten(1), dim=1)
        out["act_mean"][:, l], out["act_std"][:, l] = mean.cpu().numpy(), std.cpu().numpy()
        for (name, _), i, j in stack.runs:
            part = a[i:j]
            if name == "sigmoid":
                saturated = part * (1 - part) < SATURATION / 4
                out["saturated"][i:j, l] = saturated.double().flatten(1).mean(1).cpu().numpy()
            elif name == "tanh":
                out["saturated"][i:j, l] = ((1 - part * part < SATURATION).double().flatten(1).mean(1)
                                            .cpu().numpy())
            else:
                out["dead"][i:j, l] = (part <= 0).all(dim=1).double().mean(1).cpu().numpy()
        finite = torch.isfinite(a).flatten(1).all(1)
        centred = torch.where(finite.view(-1, 1, 1), a - a.mean(dim=1, keepdim=True), torch.zeros_like(a))
        spectra.append((singular_values(centred).cpu().numpy(), finite.cpu().numpy()))
    for l, (s, finite) in enumerate(spectra):
        out["eff_rank"][:, l] = np.where(finite, spectrum_effective_rank(s), math.nan)
    return out


def singular_values(a: torch.Tensor) -> torch.Tensor:
    """The singular values of each matrix of a batch (..., rows, columns), in float64, from the
    eigenvalues of the smaller Gram matrix: much faster than an SVD for the probe's tall
    (examples x units) matrices, and as accurate wherever a singular value is above about 1e-7
    of the largest, which is all an effective rank can see."""
    a = a.double()
    gram = a.mT @ a if a.shape[-2] >= a.shape[-1] else a @ a.mT
    return torch.linalg.eigvalsh(gram).clamp(min=0).sqrt().flip(-1)


# --- configs x seeds: a Runner groups them by shape and trains the groups on worker processes ---
class Runner:
    """Trains testbed variants on ``data`` and remembers every run, so that a variant shared by
    several experiments (the baseline, say) is trained once per seed.

    The runs of one call are trained as batched models (:func:`train_many`): every
    network of the same shape (depth, width, steps, batch size) in one model with a leading
    "model" axis, whatever else differs. On a CPU each such group is split into ``workers``
    parts trained side by side in worker processes (default: one per core, at most 4), each
    using one thread, which is faster than one process using every core for layers this small.
    On a GPU everything runs in this process. A seeded run gives the same numbers whichever
    part or process trains it. Call ``close()`` (or use ``with``) to stop the worker processes."""

    def __init__(self, data: Data, seeds: Sequence[int], *, probe_every: int = 25,
                 workers: int | None = None) -> None:
        if not isinstance(data, Data):
            raise TypeError(f"data must be a testbed.Data (testbed.prepare(mnist)), "
                            f"got {type(data).__name__}")
        self.seeds = checks.seeds(seeds)
        self.data, self.probe_every = data, checks.integer(probe_every, "probe_every", 1)
        on_cpu = data.x_train.device.type == "cpu"
        self.workers = checks.integer(workers, "workers", 1) if on_cpu and workers is not None \
            else default_workers(on_cpu)
        self.runs: dict[tuple[Config, int], Run] = {}
        self._workers = Workers(self.workers, initializer=_start_worker, initargs=(data,))

    def run(self, configs: Mapping[str, Config], *, desc: str = "runs", progress: bool | None = None,
            track_every: int = 0, track_units: int = 1) -> dict[str, list[Run]]:
        """Train every config with every seed (those not trained before): {name: [run per seed]}.
        ``track_every`` and ``track_units`` are passed to :func:`train_many` (each
        run's ``tracked`` record) for the runs this call trains."""
        if not isinstance(configs, Mapping) or not configs:
            raise TypeError("configs must be a non-empty dict {name: Config}")
        for name, c in configs.items():
            if not isinstance(c, Config):
                raise TypeError(f"configs[{name!r}] must be a testbed.Config, got {type(c).__name__}")
        todo = list(dict.fromkeys((c, s) for c in configs.values() for s in self.seeds
                                  if (c, s) not in self.runs))
        jobs = _jobs(todo, self.workers)
        options = {"probe_every": self.probe_every,
                   "track_every": checks.integer(track_every, "track_every", 0),
                   "track_units": checks.integer(track_units, "track_units", 1)}
        answers = self._workers.run(partial(_train_in_worker, options=options), jobs, cost=_job_cost,
                                    local=partial(_train_job, data=self.data, options=options), desc=desc,
                                    progress=progress)
        for job, runs in zip(jobs, answers):
            self._keep(job, runs)
        return {name: [self.runs[(c, s)] for s in self.seeds] for name, c in configs.items()}

    def _keep(self, job: list[tuple[Config, int]], runs: list[Run]) -> None:
        for key, run in zip(job, runs):
            self.runs[key] = run

    def close(self) -> None:
        """Stop the worker processes (the runs already made stay in ``runs``)."""
        self._workers.close()

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()




_WORKER_DATA: Data | None = None


def _start_worker(data: Data) -> None:
    """Runs once in each worker process (``runner.Workers`` has set one thread): the data, shared
    rather than sent with every job."""
    global _WORKER_DATA
    _WORKER_DATA = data


def _jobs(todo: list[tuple[Config, int]], parts: int) -> list[list[tuple[Config, int]]]:
    """The (config, seed) pairs grouped by shape (what a batched model must share), each group
    split into at most ``parts`` jobs of nearly equal size, the costliest jobs first."""
    groups: dict[tuple, list[tuple[Config, int]]] = {}
    for c, s in todo:
        groups.setdefault((c.depth, c.width, c.steps, c.batch_size), []).append((c, s))
    jobs = []
    for group in groups.values():
        group.sort(key=lambda cs: _stack_order(cs[0]))       # a part then holds few runs of alike networks
        k = min(parts, len(group))
        bounds = [round(i * len(group) / k) for i in range(k + 1)]
        jobs += [group[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return sorted(jobs, key=lambda j: -_job_cost(j))


def _job_cost(job: list[tuple[Config, int]]) -> float:
    return len(job) * job[0][0].depth * job[0][0].steps


def _train_job(job: list[tuple[Config, int]], data: Data, options: dict[str, int]) -> list[Run]:
    return train_many([c for c, _ in job], data, [s for _, s in job], **options)


def _train_in_worker(job: list[tuple[Config, int]], options: dict[str, int]) -> list[Run]:
    assert _WORKER_DATA is not None, "worker started without data"
    return _train_job(job, _WORKER_DATA, options)
