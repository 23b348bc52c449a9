"""One testbed for every remedy: a deep, narrow fully connected network on MNIST, trained the same
way whatever is switched on (chapter 4).

A ``Config`` names everything that varies: depth, width, activation, initialisation, batch
normalisation, residual connections, deep supervision, optimiser, learning rate, L2
regularisation and gradient clipping. ``train(config, data, seed)`` builds the network, trains
it for ``config.steps`` mini-batches with a ``nblib.probe.Probe`` attached and returns a ``Run``:
plain numbers. The seed fixes both the initial weights and the order of the mini-batches, so
two variants trained with the same seed see the same images in the same order.
"""

from __future__ import annotations

from ._optional import require

require("torch", __name__)   # first: without torch, a message that says what to install

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import checks
from .initialisation import ACTIVATIONS, INITS, activation_module, initialise
from .probe import Probe, History
from .torchutil import as_tensors, seed_all, tensor

Array = np.ndarray
OPTIMISERS = ("sgd", "momentum", "adam")
N_CLASSES = 10             # MNIST's digits: DeepMLP's outputs


@dataclass(frozen=True)
class Config:
    """Everything that varies between the testbed's networks and how they are trained.

    ``aux_every`` = k > 0 adds deep supervision: a small classifier after every k-th hidden layer
    (not the last), whose cross-entropy, times ``aux_weight``, is added to the loss. ``clip`` is
    the largest gradient norm allowed (None: no clipping). ``l2`` is the coefficient of
    (l2 / 2) * sum of squared weights added to the loss (biases and batch-norm parameters are
    not penalised). ``residual_scale`` = alpha multiplies each residual branch, h + alpha act(W h)
    (1: the plain residual block; it has no effect without ``residual``); with ``learn_scale``
    each block's alpha is a parameter that training adjusts, starting at ``residual_scale``
    (0 gives De and Smith's SkipInit: every block starts as the identity). ``bn_noise`` = a > 0
    (with ``batch_norm``) moves the distribution of every batch-normalised input at every training
    step: z <- z (1 + u) + v, with u and v drawn uniformly from [-a, a] for each unit and step
    (the same for the whole batch; none in evaluation), from a generator of its own."""

    depth: int = 16
    width: int = 48
    activation: str = "relu"
    init: str = "he"
    batch_norm: bool = False
    residual: bool = False
    residual_scale: float = 1.0
    learn_scale: bool = False
    bn_noise: float = 0.0
    aux_every: int = 0
    aux_weight: float = 0.3
    optimiser: str = "momentum"
    lr: float = 0.01
    l2: float = 0.0
    clip: float | None = None
    steps: int = 600
    batch_size: int = 100

    def __post_init__(self) -> None:
        for name in ("depth", "width", "steps", "batch_size"):
            checks.integer(getattr(self, name), name, 1)
        checks.integer(self.aux_every, "aux_every", 0)
        for name, allowed in (("activation", ACTIVATIONS), ("init", INITS), ("optimiser", OPTIMISERS)):
            checks.choice(getattr(self, name), name, allowed)
        for name in ("batch_norm", "residual", "learn_scale"):
            checks.boolean(getattr(self, name), name)
        checks.number(self.lr, "lr", positive=True)
        checks.number(self.l2, "l2", non_negative=True)
        checks.number(self.aux_weight, "aux_weight", non_negative=True)
        checks.number(self.residual_scale, "residual_scale", non_negative=True)
        checks.number(self.bn_noise, "bn_noise", non_negative=True)
        if self.bn_noise > 0 and not self.batch_norm:
            raise ValueError("bn_noise moves batch-normalised inputs, so it needs batch_norm=True")
        if self.clip is not None:
            checks.number(self.clip, "clip", positive=True)

    def but(self, **changes: Any) -> "Config":
        """A copy with some fields changed: ``base.but(activation="tanh")``."""
        known = [f.name for f in dataclasses.fields(self)]
        return dataclasses.replace(self, **checks.settings(changes, known, "a testbed.Config"))


class Block(nn.Module):
    """One hidden layer: a = act(norm(W h + b)), and h + scale * a instead of a with a skip
    connection (``learn_scale``: the scale is a parameter, starting at ``scale``)."""

    def __init__(self, n_in: int, n_out: int, activation: str, batch_norm: bool, residual: bool,
                 scale: float = 1.0, learn_scale: bool = False, noise: float = 0.0) -> None:
        super().__init__()
        n_in, n_out = checks.integer(n_in, "n_in"), checks.integer(n_out, "n_out")
        batch_norm, residual = checks.boolean(batch_norm, "batch_norm"), checks.boolean(residual, "residual")
        self.linear = nn.Linear(n_in, n_out, bias=not batch_norm)   # batch norm's shift replaces the bias
        self.norm = nn.BatchNorm1d(n_out) if batch_norm else nn.Identity()
        self.act = activation_module(activation)
        self.residual = residual and n_in == n_out
        self.scale = checks.number(scale, "scale", non_negative=True)
        learn_scale = checks.boolean(learn_scale, "learn_scale")
        self.alpha = nn.Parameter(torch.tensor(self.scale)) if learn_scale and self.residual else None
        self.noise = checks.number(noise, "noise", non_negative=True)
        self.noise_generator: torch.Generator | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.norm(self.linear(h))
        if self.noise and self.training:
            u, v = noise_draw(self.noise_generator, self.noise, z.shape[-1])
            z = z * (1 + u.to(z.device)) + v.to(z.device)
        a = self.act(z)
        if not self.residual:
            return a
        if self.alpha is not None:
            return h + self.alpha * a
        return h + a if self.scale == 1.0 else h + self.scale * a


def noise_draw(generator: torch.Generator | None, a: float, units: int) -> torch.Tensor:
    """One step's draw of ``Config.bn_noise``: (u, v), each uniform on [-a, a], one per unit."""
    if generator is None:
        raise ValueError("a block with bn_noise needs a generator: DeepMLP.seed_noise(seed)")
    return (2 * torch.rand(2, units, generator=generator) - 1) * a


def noise_generator(seed: int) -> torch.Generator:
    """The generator of ``Config.bn_noise`` for a run with ``seed`` (a stream of its own, apart
    from the weights' and the mini-batches')."""
    return torch.Generator().manual_seed((checks.seed(seed) * 2654435761 + 97) % 2 ** 63)


class DeepMLP(nn.Module):
    """``config.depth`` hidden layers of ``config.width`` units between 784 pixels and 10 classes
    (the first hidden layer has no skip connection: its input is the image)."""

    def __init__(self, config: Config, n_in: int = 784, n_out: int = 10) -> None:
        super().__init__()
        if not isinstance(config, Config):
            raise TypeError(f"config must be a testbed.Config, got {type(config).__name__}")
        self.config = config
        sizes = [n_in] + [config.width] * config.depth
        self.blocks = nn.ModuleList(Block(a, b, config.activation, config.batch_norm, config.residual,
                                          config.residual_scale, config.learn_scale, config.bn_noise)
                                    for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = nn.Linear(config.width, n_out)
        self.aux_at = ([l for l in range(config.aux_every, config.depth, config.aux_every)]
                       if config.aux_every else [])
        self.aux = nn.ModuleList(nn.Linear(config.width, n_out) for _ in self.aux_at)
        initialise(self, config.init, config.activation)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The output logits and those of the auxiliary classifiers (deep supervision)."""
        aux, h = [], x
        for l, block in enumerate(self.blocks, start=1):
            h = block(h)
            if l in self.aux_at:
                aux.append(self.aux[self.aux_at.index(l)](h))
        return self.head(h), aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]

    def seed_noise(self, seed: int) -> None:
        """Give the blocks the generator of ``Config.bn_noise`` (one stream, drawn layer by layer)."""
        g = noise_generator(seed)
        for block in self.blocks:
            block.noise_generator = g

    def probe_layers(self) -> dict[str, tuple[nn.Module, nn.Module]]:
        """The hidden layers as the probe wants them: name -> (linear module, activation module)."""
        return {f"hidden {l}": (b.linear, b.act) for l, b in enumerate(self.blocks, start=1)}


def moments_at_init(config: Config, x: torch.Tensor, y: torch.Tensor,
                    seeds: Sequence[int]) -> tuple[Array, Array]:
    """Measured counterparts of ``predicted_moments``: for freshly initialised ``DeepMLP(config)``
    networks (one per seed) and one batch (x, y) with the cross-entropy loss, the second moment
    of each hidden layer's activations, E[a_l^2], and of the gradient reaching them, E[g_l^2].
    Returns two arrays of shape (seeds, depth). Measured with a ``Probe`` on one network after
    another; ``testbed_batched.moments_at_init`` gives the same numbers for all seeds at once."""
    config, seeds = checks.instance(config, "config", Config, "a testbed.Config"), checks.seeds(seeds)
    x, y = checked_batch(x, y)
    forward, backward = [], []
    for seed in seeds:
        torch.manual_seed(seed)
        model = DeepMLP(config, n_in=x.shape[1]).to(x.device)
        probe = Probe(model, model.probe_layers())
        with probe.step():
            F.cross_entropy(model(x), y).backward()
        h = probe.history()
        forward.append(h["act_std"][0] ** 2 + h["act_mean"][0] ** 2)
        backward.append(h["act_grad_rms"][0] ** 2)
    return np.array(forward), np.array(backward)


def make_optimiser(config: Config, model: nn.Module) -> torch.optim.Optimizer:
    """SGD, SGD with momentum 0.9, or Adam at ``config.lr``, with L2 on the weights of the linear
    layers only."""
    checks.instance(config, "config", Config, "a testbed.Config")
    checks.instance(model, "model", nn.Module, "a torch.nn.Module")
    decay = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": decay, "weight_decay": config.l2}, {"params": rest, "weight_decay": 0.0}]
    if config.optimiser == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=0.9 if config.optimiser == "momentum" else 0.0)


def clip_by_norm(parameters: Iterable[torch.Tensor], max_norm: float) -> float:
    """Gradient clipping by norm: g <- g * min(1, max_norm / ||g||), with ||g|| the length of all
    the gradients together. Returns ||g|| before clipping."""
    checks.number(max_norm, "max_norm", positive=True)
    if isinstance(parameters, torch.Tensor) or not isinstance(parameters, Iterable):
        raise TypeError(f"parameters must be the model's parameters (model.parameters()), "
                        f"got {parameters!r:.60}")
    parameters = list(parameters)
    if not all(isinstance(p, torch.Tensor) for p in parameters):
        raise TypeError("parameters must be tensors (model.parameters())")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
    if norm > max_norm:
        for g in grads:
            g.mul_(max_norm / norm)
    return norm


@dataclass
class Data:
    """Training and validation images (n, 784) and labels (n,) as tensors on one device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    def __post_init__(self) -> None:
        """Images (n, features) of finite floating-point numbers and int64 labels in 0..9, one per
        image, all on one device: what ``train`` would otherwise fail on deep inside torch (or,
        on a GPU, with a device-side assertion that stops the kernel)."""
        width = None
        for part in ("train", "val"):
            x = _batch(getattr(self, f"x_{part}"), f"x_{part}", width)
            width = x.shape[1]
            y = _class_labels(getattr(self, f"y_{part}"), f"y_{part}", len(x))
            if x.device != self.x_train.device or y.device != self.x_train.device:
                raise ValueError(f"x_{part} and y_{part} must be on the device of x_train, "
                                 f"{self.x_train.device}")


def prepare(mnist: Any, n_train: int | None = None, n_val: int | None = None,
            on: torch.device | None = None) -> Data:
    """MNIST (``nblib.data.load_mnist()``) as tensors on ``on`` (default ``torchutil.device()``):
    the first ``n_train`` training and ``n_val`` validation images (default: all)."""
    if not (hasattr(mnist, "training") and hasattr(mnist, "validation")):
        raise TypeError(f"mnist must be what nblib.data.load_mnist() returns, got {type(mnist).__name__}")
    x, y = as_tensors(mnist.training, on)
    xv, yv = as_tensors(mnist.validation, on)
    n_train = len(x) if n_train is None else checks.integer(n_train, "n_train", 1, at_most=len(x))
    n_val = len(xv) if n_val is None else checks.integer(n_val, "n_val", 1, at_most=len(xv))
    return Data(x[:n_train], y[:n_train], xv[:n_val], yv[:n_val])


@dataclass
class Run:
    """What one training run produced, as plain numbers.

    ``losses[s]`` is the training loss (main classifier) at step s; ``grad_norms[s]`` the length
    of the whole gradient before clipping; ``probe`` the per-layer record; ``final`` the
    activation statistics (``Probe.measure``) on 1,000 validation images after training;
    ``diverged`` says whether training stopped at a non-finite loss (``accuracy`` is then that
    of the broken network); ``clipped`` is the fraction of steps whose gradient was clipped;
    ``aux_accuracy`` the validation accuracy of each auxiliary classifier (deep supervision);
    ``tracked`` what ``testbed_batched.train_many(..., track_every=k)`` recorded (else None)."""

    config: Config
    seed: int
    accuracy: float
    losses: Array
    grad_norms: Array
    probe: History
    final: dict[str, Array]
    diverged: bool
    clipped: float
    seconds: float
    aux_accuracy: list[float] = dataclasses.field(default_factory=list)
    tracked: Any = None

    def grad_ratio(self, when: str = "start", records: int = 5) -> float:
        """First over last hidden layer's weight-gradient norm: at the first record ('start') or
        the mean over the last ``records`` records ('end', mini-batch gradients are noisy)."""
        when = checks.choice(when, "when", ("start", "end"))
        records = checks.integer(records, "records", 1)
        ratios = self.probe.ratio_first_to_last("grad_norm")
        if len(ratios) == 0:
            raise ValueError("this run's probe recorded no step, so it has no gradient ratio")
        if when == "start":
            return float(ratios[0])
        return float(np.mean(ratios[-records:]))        # at most records, all of them if fewer


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 5000) -> float:
    """The fraction of ``x`` that ``model`` classifies right, in evaluation mode, ``batch``
    examples at a time."""
    checks.instance(model, "model", nn.Module, "a torch.nn.Module")
    x = _batch(x, "x")
    y = _class_labels(y, "y", len(x))
    batch = checks.integer(batch, "batch")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        right = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                    for i in range(0, len(x), batch))
    model.train(was_training)
    return right / len(x)


def train(config: Config, data: Data, seed: int, *, probe_every: int = 25) -> Run:
    """Train a fresh ``DeepMLP(config)`` for ``config.steps`` mini-batches drawn without replacement
    (reshuffled each epoch), with the probe recording every ``probe_every``-th step."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a testbed.Config, got {type(config).__name__}")
    if not isinstance(data, Data):
        raise TypeError(f"data must be a testbed.Data (testbed.prepare(mnist)), got {type(data).__name__}")
    checks.seed(seed)
    probe_every = checks.integer(probe_every, "probe_every")
    start = time.perf_counter()
    on = data.x_train.device
    order = seed_all(seed)              # the initial weights, and the order of the mini-batches
    model = DeepMLP(config, n_in=data.x_train.shape[1]).to(on)
    model.seed_noise(seed)
    optimiser = make_optimiser(config, model)
    probe = Probe(model, model.probe_layers(), every=probe_every)
    n, m = len(data.y_train), config.batch_size
    losses, norms, batches, diverged, clipped = [], [], [], False, 0
    for step in range(config.steps):
        if not batches:
            batches = list(torch.randperm(n, generator=order).to(on).split(m))[::-1]
            batches = [b for b in batches if len(b) == m] or batches
        idx = batches.pop()
        x, y = data.x_train[idx], data.y_train[idx]
        with probe.step():
            logits, aux = model.forward_all(x)
            loss = F.cross_entropy(logits, y)
            total = loss + config.aux_weight * sum(F.cross_entropy(a, y) for a in aux) if aux else loss
            optimiser.zero_grad(set_to_none=True)
            total.backward()
            if config.clip is not None:
                norm = clip_by_norm(model.parameters(), config.clip)
                clipped += norm > config.clip
            else:
                norm = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()
                                                            if p.grad is not None]))
            optimiser.step()
        losses.append(float(loss.detach()))
        norms.append(norm)
        if not (math.isfinite(losses[-1]) and math.isfinite(norm)):
            diverged = True
            break
    final = probe.measure(data.x_val[:1000]) if not diverged else {}
    aux = [accuracy(nn.Sequential(*model.blocks[:l], head), data.x_val, data.y_val)
           for l, head in zip(model.aux_at, model.aux)]
    return Run(config, seed, accuracy(model, data.x_val, data.y_val), np.array(losses), np.array(norms),
               probe.history(), final, diverged, clipped / max(1, len(losses)), time.perf_counter() - start,
               aux)


@dataclass
class Summary:
    """One variant over its seeds, one value per seed: validation accuracy (%); first over last
    hidden layer's weight-gradient norm at the start and the end (``Run.grad_ratio``); the same
    for the update-to-weight ratio at the end; and, on 1,000 validation images after training,
    the fraction of dead units (%), the fraction of saturated activations (%) and the effective
    rank, each averaged over the hidden layers (NaN where it does not apply or the run diverged);
    whether each run diverged; and its time in seconds."""

    accuracy: Array
    ratio_start: Array
    ratio_end: Array
    update_balance: Array
    dead: Array
    saturated: Array
    eff_rank: Array
    diverged: Array
    seconds: Array


def summarise(runs: Sequence[Run]) -> Summary:
    """The numbers the chapter reports for one variant (its runs, one per seed)."""
    runs = list(runs)
    if not runs or not all(isinstance(r, Run) for r in runs):
        raise TypeError("runs must be a non-empty list of testbed.Run")

    def final(r: Run, metric: str, scale: float = 1.0) -> float:
        values = r.final.get(metric)
        if values is None or np.all(np.isnan(values)):
            return math.nan
        return scale * float(np.nanmean(values))

    def balance(r: Run) -> float:
        ratios = r.probe.ratio_first_to_last("update_ratio")[-5:]
        return float(np.mean(ratios)) if len(ratios) else math.nan

    with np.errstate(invalid="ignore", divide="ignore"):
        return Summary(
            accuracy=np.array([100 * r.accuracy for r in runs]),
            ratio_start=np.array([r.grad_ratio("start") for r in runs]),
            ratio_end=np.array([math.nan if r.diverged else r.grad_ratio("end") for r in runs]),
            update_balance=np.array([math.nan if r.diverged else balance(r) for r in runs]),
            dead=np.array([final(r, "dead", 100) for r in runs]),
            saturated=np.array([final(r, "saturated", 100) for r in runs]),
            eff_rank=np.array([final(r, "eff_rank") for r in runs]),
            diverged=np.array([r.diverged for r in runs]),
            seconds=np.array([r.seconds for r in runs]))


def summarise_all(results: Mapping[str, Sequence[Run]]) -> dict[str, Summary]:
    """``summarise`` for every variant of ``results`` ({name: [run per seed]}), e.g. for
    ``plots.results_table``."""
    if not isinstance(results, Mapping) or not results:
        raise TypeError(f"results must be a non-empty dict {{variant name: [Run per seed]}}, "
                        f"got {results!r:.60}")
    return {name: summarise(runs) for name, runs in results.items()}


def checked_batch(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch ``x`` of images (n, features) and ``y`` of their class labels, checked as
    ``DeepMLP`` and the cross-entropy need them (finite floats; int64 labels in 0..9, one per image)."""
    x = _batch(x, "x")
    return x, _class_labels(y, "y", len(x))


def _batch(x: Any, name: str, width: int | None = None) -> torch.Tensor:
    """A non-empty (n, features) tensor of finite floating-point numbers (``width`` features if given)."""
    x = tensor(x, name, ndim=2, floating=True)
    if len(x) == 0 or (width is not None and x.shape[1] != width):
        raise ValueError(f"{name} must have shape (n, {width or 'features'}) with n >= 1, "
                         f"got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return x


def _class_labels(y: Any, name: str, n: int | None) -> torch.Tensor:
    """int64 class indices in 0..9, ``n`` of them."""
    y = tensor(y, name, ndim=1)
    if y.dtype != torch.int64:
        raise TypeError(f"{name} must hold int64 class indices (torch.long; use {name}.long()), "
                        f"got {y.dtype}")
    if n is not None and len(y) != n:
        raise ValueError(f"{name} must have one label per image, {n}, got {len(y)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= N_CLASSES):
        raise ValueError(f"{name} must lie in [0, {N_CLASSES - 1}] (DeepMLP has {N_CLASSES} outputs), "
                         f"got values from {int(y.min())} to {int(y.max())}")
    return y
