"""Many small fully connected networks trained side by side, as stacked tensors (PyTorch).

A :class:`StackedMLP` holds S independent networks of one shape: the weights of layer l are one
tensor of shape (S, n_in, n_out), so a single batched matrix product runs all S networks, each
on its own mini-batch. Comparing initialisations, seeds and momentum settings then costs about
as much as training one network, because small networks leave most of the processor idle.

The networks are Glorot and Bengio's: sigmoid hidden layers, a softmax output and the
cross-entropy (negative log-likelihood) cost. Training is mini-batch SGD with classical
momentum, v <- mu v - eta g, theta <- theta + v (Sutskever et al.'s form), with its own eta
and mu for each network, and it records each hidden layer's activations as it goes.

Importing this module imports torch; ``import nblib`` does not.
"""

from __future__ import annotations

from ._optional import require

require("torch", __name__)   # first: without torch, a message that says what to install

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from numbers import Real
from typing import Sequence

import numpy as np
import torch

from . import checks
from .checks import integer, number
from .data import as_pair
from .networks import check_sizes
from .torchutil import as_device
from .progress import bar as progress_bar, enabled as progress_enabled

INITS = ("standard", "xavier", "gaussian")        # "xavier": Glorot and Bengio's "normalized initialization"


def init_bound(scheme: str, n_in: int, n_out: int, scale: float = 1.0) -> float:
    """The spread of one layer's initial weights: the half-width of the uniform interval for
    Glorot and Bengio's "standard" U[-1/sqrt(n_in), 1/sqrt(n_in)] and "xavier" (their "normalized")
    U[-sqrt(6/(n_in + n_out)), +sqrt(6/(n_in + n_out))], or the standard deviation
    ``scale / sqrt(n_in)`` of "gaussian"."""
    checks.choice(scheme, "scheme", INITS)
    n_in, n_out, scale = integer(n_in, "n_in"), integer(n_out, "n_out"), number(scale, "scale", positive=True)
    if scheme == "standard":
        return 1.0 / math.sqrt(n_in)
    if scheme == "xavier":
        return math.sqrt(6.0 / (n_in + n_out))
    return scale / math.sqrt(n_in)


@dataclass
class History:
    """What :func:`train` recorded, at the updates listed in ``steps`` (0 = before training):
    ``mean[k, s, l]`` and ``std[k, s, l]`` are the mean and standard deviation of the
    activations of hidden layer l of network s over the probe inputs (all examples and units),
    ``slope[k, s, l]`` the mean of sigma'(z) = a (1 - a) over them (1/4 at most: the factor by
    which the layer scales the gradient passing through it), and ``loss[k, s]``,
    ``accuracy[k, s]`` the probe cost and accuracy."""

    steps: list[int] = field(default_factory=list)
    mean: list[np.ndarray] = field(default_factory=list)
    std: list[np.ndarray] = field(default_factory=list)
    slope: list[np.ndarray] = field(default_factory=list)
    loss: list[np.ndarray] = field(default_factory=list)
    accuracy: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything as numpy arrays (steps first)."""
        return {"steps": np.array(self.steps), "mean": np.array(self.mean), "std": np.array(self.std),
                "slope": np.array(self.slope), "loss": np.array(self.loss),
                "accuracy": np.array(self.accuracy)}


class StackedMLP:
    """S sigmoid networks of shape ``sizes`` with a softmax output, initialised network by
    network: ``inits[s]`` is "standard", "xavier" or "gaussian" (N(0, scales[s]^2 / n_in)),
    drawn from ``seeds[s]``; biases start at 0. All three lists have one entry per network
    (``scales`` is needed only for "gaussian"; default 1)."""

    def __init__(self, sizes: Sequence[int], inits: Sequence[str], seeds: Sequence[int], *,
                 scales: Sequence[float] | None = None, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        self.sizes = check_sizes(sizes)
        if len(self.sizes) < 3:
            raise ValueError(f"sizes needs at least one hidden layer, got {self.sizes}")
        inits, seeds = _list(inits, "inits"), _list(seeds, "seeds")
        scales = [1.0] * len(inits) if scales is None else _list(scales, "scales")
        if not len(inits) == len(seeds) == len(scales):
            raise ValueError(f"inits, seeds and scales need one entry per network, got {len(inits)}, "
                             f"{len(seeds)} and {len(scales)}")
        for scheme in inits:
            checks.choice(scheme, "every init", INITS)
        largest = (checks.SEED_MAX - len(self.sizes)) // 10_000          # torch seeds 10,000 seed + layer
        seeds = [integer(checks.seed(seed, "every seed"), "every seed", 0, at_most=largest) for seed in seeds]
        scales = [number(scale, "every scale", positive=True) for scale in scales]
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        self.inits, self.seeds, self.scales = list(inits), seeds, scales
        self.device = as_device(device, "device")
        self.dtype = dtype
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        for l, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            w = torch.empty(len(inits), n_in, n_out, dtype=torch.float64)
            for s, (scheme, seed, scale) in enumerate(zip(self.inits, self.seeds, self.scales)):
                # one stream per network and layer
                generator = torch.Generator().manual_seed(10_000 * seed + l)
                bound = init_bound(scheme, n_in, n_out, scale)
                if scheme == "gaussian":
                    w[s] = bound * torch.randn(n_in, n_out, generator=generator, dtype=torch.float64)
                else:
                    w[s] = bound * (2 * torch.rand(n_in, n_out, generator=generator, dtype=torch.float64) - 1)
            self.weights.append(w.to(self.device, dtype))
            self.biases.append(torch.zeros(len(inits), 1, n_out, device=self.device, dtype=dtype))

    def __len__(self) -> int:
        return len(self.inits)

    def __repr__(self) -> str:
        return f"StackedMLP({self.sizes}, {len(self)} networks, device={self.device.type})"

    def parameters(self) -> list[torch.Tensor]:
        return self.weights + self.biases

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Output scores (S, B, n_out) before the softmax, and the activations of every hidden layer
        (S, B, n_l). ``x`` is (B, n_in), the same inputs for every network, or (S, B, n_in)."""
        h = self._inputs(x)
        hidden = []
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = torch.sigmoid(torch.baddbmm(b, h, w))
            hidden.append(h)
        return torch.baddbmm(self.biases[-1], h, self.weights[-1]), hidden

    def losses(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Each network's mean cross-entropy on the batch, shape (S,)."""
        scores, _ = self.forward(x)
        labels = self._labels(labels, scores.shape[:2])
        per_example = torch.nn.functional.cross_entropy(scores.reshape(-1, scores.shape[-1]),
                                                        labels.reshape(-1), reduction="none")
        return per_example.view(scores.shape[:2]).mean(dim=1)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch tensor, got {type(x).__name__}")
        if x.ndim == 2:
            x = x.unsqueeze(0).expand(len(self), -1, -1)
        if x.ndim != 3 or x.shape[0] != len(self) or x.shape[2] != self.sizes[0]:
            raise ValueError(f"x must have shape (batch, {self.sizes[0]}) or ({len(self)}, batch, "
                             f"{self.sizes[0]}), got {tuple(x.shape)}")
        return x.to(self.device, self.dtype)

    def _labels(self, labels: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
            raise TypeError("labels must be a torch int64 tensor of class indices")
        if labels.ndim == 1:
            labels = labels.unsqueeze(0).expand(len(self), -1)
        if tuple(labels.shape) != tuple(shape):
            raise ValueError(f"labels must have shape ({shape[1]},) or {tuple(shape)}, "
                             f"got {tuple(labels.shape)}")
        return labels.to(self.device)


@torch.no_grad()
def measure(stack: StackedMLP, x: torch.Tensor, labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Activation statistics of every hidden layer of every network on the inputs ``x``:
    "mean", "std" and "slope" (the mean of sigma'(z) = a (1 - a)), each (S, hidden layers),
    and each network's "loss" and "accuracy", each (S,)."""
    checks.instance(stack, "stack", StackedMLP, "an nblib.stacked.StackedMLP")
    scores, hidden = stack.forward(x)
    labels = stack._labels(labels, scores.shape[:2])
    losses = torch.nn.functional.cross_entropy(scores.reshape(-1, scores.shape[-1]), labels.reshape(-1),
                                               reduction="none").view(scores.shape[:2]).mean(dim=1)
    # per network and layer, from the sums of a and of a^2 (two fast passes): the mean, the standard
    # deviation (over units and examples, with n - 1) and the mean slope a (1 - a) = a - a^2
    count = torch.tensor([h[0].numel() for h in hidden], dtype=torch.float64)
    total = torch.stack([h.reshape(len(h), -1).sum(dim=1) for h in hidden], dim=1).double()
    squares = torch.stack([(h * h).reshape(len(h), -1).sum(dim=1) for h in hidden], dim=1).double()
    mean = total / count
    stats = {
        "mean": mean,
        "std": ((squares - total * mean).clamp(min=0) / (count - 1)).sqrt(),
        "slope": mean - squares / count,
        "loss": losses,
        "accuracy": (scores.argmax(dim=-1) == labels).float().mean(dim=1),
    }
    return {k: v.double().cpu().numpy() for k, v in stats.items()}


def train(stack: StackedMLP, images: np.ndarray, labels: np.ndarray, *, steps: int, batch_size: int,
          eta: float | Sequence[float], momentum: float | Sequence[float] = 0.0,
          probe_data: tuple[np.ndarray, np.ndarray] | None = None, record_every: int = 0,
          workers: int = 1, progress: bool | None = None) -> History:
    """``steps`` updates of mini-batch SGD with classical momentum on every network of ``stack``
    (in place). Network s walks through the training data in its own order (reshuffled every
    epoch, seeded by its seed), with learning rate ``eta[s]`` and momentum ``momentum[s]``
    (a single number applies to all). Every ``record_every`` updates (and before the first and
    after the last) the :func:`measure` statistics on ``probe_data`` are recorded.

    ``workers`` threads each train a share of the networks (the networks are independent, so
    the result does not depend on ``workers``, but for rounding); on a CPU with two cores, two
    workers take about half the time. The gradients are computed by backpropagation written out
    for this network (sigmoid layers, softmax and cross-entropy), which needs fewer steps than
    autograd."""
    checks.instance(stack, "stack", StackedMLP, "an nblib.stacked.StackedMLP")
    steps, batch_size = integer(steps, "steps"), integer(batch_size, "batch_size")
    checks.size(len(stack) * steps * batch_size, "the examples' order, networks x steps x batch_size")
    x = _images(images, stack.sizes[0])
    y = _class_labels(labels, len(x), stack.sizes[-1])
    etas = _per_network(eta, "eta", len(stack))
    mus = _per_network(momentum, "momentum", len(stack))
    if any(m >= 1 for m in mus):
        raise ValueError(f"momentum must be below 1, got {max(mus)}")
    px = py = None
    if probe_data is not None:
        px, py = as_pair(probe_data, "probe_data")
        px = _images(px, stack.sizes[0])
        py = _class_labels(py, len(px), stack.sizes[-1])
        px, py = (torch.as_tensor(px, device=stack.device, dtype=stack.dtype),
                  torch.as_tensor(py, device=stack.device))
    record_every = integer(record_every, "record_every", at_least=0)
    if record_every and probe_data is None:
        raise ValueError("record_every needs probe_data: the inputs and labels to measure on")
    workers = integer(workers, "workers", at_most=64)

    xs = torch.as_tensor(x, device=stack.device, dtype=stack.dtype)
    ys = torch.as_tensor(y, device=stack.device)
    order = torch.as_tensor(_orders(stack.seeds, len(x), steps * batch_size), device=stack.device)
    eta_t = torch.tensor(etas, device=stack.device, dtype=stack.dtype).view(-1, 1, 1)
    mu_t = torch.tensor(mus, device=stack.device, dtype=stack.dtype).view(-1, 1, 1)
    parts = [p for p in np.array_split(np.arange(len(stack)), min(workers, len(stack))) if len(p)]
    shares = [slice(int(p[0]), int(p[-1]) + 1) for p in parts]
    show = progress_enabled(progress)

    def run(k: int) -> list[dict[str, np.ndarray]]:
        at = shares[k]
        return _train_share(_share(stack, at), xs, ys, order[at], eta_t[at], mu_t[at], steps=steps,
                            batch_size=batch_size, probe_data=(px, py), record_every=record_every,
                            progress=show and k == 0)

    start = time.perf_counter()
    if len(shares) == 1:
        results = [run(0)]
    else:
        with ThreadPoolExecutor(max_workers=len(shares)) as pool:
            results = list(pool.map(run, range(len(shares))))
    record = History()
    if record_every:
        record.steps = [0] + [t for t in range(1, steps + 1) if t % record_every == 0 or t == steps]
        for k, stats in enumerate(zip(*results)):
            for key in ("mean", "std", "slope", "loss", "accuracy"):
                getattr(record, key).append(np.concatenate([part[key] for part in stats]))
    record.seconds = time.perf_counter() - start
    return record


def _share(stack: StackedMLP, part: slice) -> StackedMLP:
    """The networks ``part`` of ``stack`` as a stack of their own, sharing its tensors (training
    the share trains them in ``stack``)."""
    share = object.__new__(StackedMLP)
    share.sizes, share.device, share.dtype = stack.sizes, stack.device, stack.dtype
    share.inits, share.seeds, share.scales = stack.inits[part], stack.seeds[part], stack.scales[part]
    share.weights = [w[part] for w in stack.weights]
    share.biases = [b[part] for b in stack.biases]
    return share


@torch.no_grad()
def gradients(stack: StackedMLP, x: torch.Tensor,
              labels: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The gradient of each network's mean cross-entropy on its batch, by backpropagation written
    out: one tensor per weight matrix, then one per bias vector (the order of ``parameters()``),
    and each network's loss (S,). ``x`` is (S, B, n_in) or (B, n_in), ``labels`` (S, B) or (B,)."""
    checks.instance(stack, "stack", StackedMLP, "an nblib.stacked.StackedMLP")
    h = stack._inputs(x)
    labels = stack._labels(labels, (len(stack), h.shape[1]))
    return _gradients(stack.weights, stack.biases, h, labels)


def _gradients(weights: list[torch.Tensor], biases: list[torch.Tensor], h: torch.Tensor, labels: torch.Tensor,
               scale: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The gradients (times ``scale``, one number per network, if given) and the losses."""
    hidden = [h]
    for w, b in zip(weights[:-1], biases[:-1]):
        h = torch.sigmoid(torch.baddbmm(b, h, w))
        hidden.append(h)
    scores = torch.baddbmm(biases[-1], h, weights[-1])
    log_p = torch.log_softmax(scores, dim=-1)
    loss = -log_p.gather(-1, labels[..., None]).mean(dim=(1, 2))
    delta = log_p.exp_()                                     # d loss / d scores = (softmax - one-hot) / B
    delta.scatter_add_(-1, labels[..., None], torch.full_like(delta[..., :1], -1.0))
    delta = delta.div_(h.shape[1]) if scale is None else delta.mul_(scale / h.shape[1])
    grad_w, grad_b = [None] * len(weights), [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        grad_w[l] = torch.bmm(hidden[l].transpose(1, 2), delta)
        grad_b[l] = delta.sum(dim=1, keepdim=True)
        if l:
            a = hidden[l]
            delta = torch.bmm(delta, weights[l].transpose(1, 2)).mul_(a * (1 - a))
    return grad_w + grad_b, loss


def _train_share(stack: StackedMLP, xs: torch.Tensor, ys: torch.Tensor, order: torch.Tensor,
                 eta: torch.Tensor, mu: torch.Tensor, *, steps: int, batch_size: int, probe_data: tuple,
                 record_every: int, progress: bool) -> list[dict[str, np.ndarray]]:
    """``train`` on one share of the networks, in the calling thread: the probe records."""
    params = stack.parameters()
    heavy = bool((mu > 0).any())                       # without momentum, no velocity to keep
    velocity = [torch.zeros_like(p) for p in params] if heavy else []
    records = []
    if record_every:
        records.append(measure(stack, *probe_data))
    with torch.no_grad():
        for step in progress_bar(range(steps), desc=f"{len(stack)} networks", progress=progress, leave=False):
            batch = order[:, step * batch_size:(step + 1) * batch_size]
            # eta x gradient
            steps_, _ = _gradients(stack.weights, stack.biases, xs[batch], ys[batch], scale=eta)
            if heavy:
                for p, v, g in zip(params, velocity, steps_):
                    v.mul_(mu).sub_(g)
                    p.add_(v)
            else:
                for p, g in zip(params, steps_):
                    p.sub_(g)
            if record_every and ((step + 1) % record_every == 0 or step + 1 == steps):
                records.append(measure(stack, *probe_data))
    return records


# --- helpers --------------------------------------------------------------------------------------
def _orders(seeds: list[int], n: int, length: int) -> np.ndarray:
    """For each seed, ``length`` example indices: shuffled epochs, one after another."""
    out = np.empty((len(seeds), length), dtype=np.int64)
    for s, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        epochs = math.ceil(length / n)
        out[s] = np.concatenate([rng.permutation(n) for _ in range(epochs)])[:length]
    return out


def _list(value: Sequence, name: str) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) == 0:
        raise TypeError(f"{name} must be a non-empty list with one entry per network, got {value!r}")
    return list(value)


def _per_network(value: float | Sequence[float], name: str, n: int) -> list[float]:
    values = [value] * n if isinstance(value, Real) and not isinstance(value, bool) else value
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)) or len(values) != n:
        raise TypeError(f"{name} must be a number or a list of {n} numbers (one per network), got {value!r}")
    return [number(v, f"every {name}", non_negative=True) for v in values]


def _images(x: np.ndarray, width: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"images must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != width or len(arr) == 0:
        raise ValueError(f"images must have shape (n, {width}) with n >= 1, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("images contain NaN or infinity")
    return arr


def _class_labels(labels: np.ndarray, n: int, classes: int) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers (class indices), got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), one per image, got {arr.shape}")
    if arr.min() < 0 or arr.max() >= classes:
        raise ValueError(f"labels must lie in [0, {classes - 1}], got values from {arr.min()} to {arr.max()}")
    return arr.astype(np.int64)
