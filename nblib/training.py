"""Training a ``Network``: mini-batch SGD and full-batch gradient descent, as network2 does them.

Both return a ``History``: plain lists of numbers, epoch by epoch, that ``nblib.plots`` draws
and a notebook can print, save or compare. Several runs can go at once on the machine's
cores with ``run_parallel`` (the compiled SGD loop releases Python's GIL).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from . import kernels
from .checks import integer, number
from .data import as_pair
from .metrics import learning_speeds, speeds_of
from .networks import Network, check_inputs

Array = np.ndarray
Pair = tuple[Array, Array]


@dataclass
class History:
    """What a run recorded. ``accuracy[e]`` and ``cost[e]`` are measured after epoch e + 1;
    ``speeds[e]`` holds the hidden layers' learning speeds before epoch e + 1 (so ``speeds[0]``
    is at initialisation), and one more entry after the last epoch."""

    sizes: list[int]
    settings: dict[str, Any]
    accuracy: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    speeds: list[list[float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final_accuracy(self) -> float:
        if not self.accuracy:
            raise ValueError("this run recorded no accuracy: pass evaluation data to sgd()")
        return self.accuracy[-1]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sgd(net: Network, training: Pair | Any, *, epochs: int, mini_batch_size: int, eta: float,
        lmbda: float = 0.0, evaluation: Pair | Any | None = None, probe: Pair | Any | None = None,
        seed: int = 0, frozen: Sequence[int] = (), engine: str = "auto", progress: bool | None = None) -> History:
    """Mini-batch stochastic gradient descent, exactly network2's ``SGD``: each epoch shuffles the
    training data, then for each mini-batch of m examples sets
    w <- (1 - eta*lmbda/n) w - (eta/m) sum dC_x/dw  and  b <- b - (eta/m) sum dC_x/db.

    ``training``, ``evaluation`` and ``probe`` are (inputs, labels) pairs or ``nblib.data.Split``s.
    After each epoch the accuracy on ``evaluation`` is recorded; the learning speeds of the hidden
    layers on ``probe`` are recorded before training and after each epoch. ``seed`` fixes the
    order of the examples. ``frozen`` lists layers left untrained (0 = the weights and biases
    into the first hidden layer; -1 = those into the output layer). ``engine`` is "numba" (the compiled loop of ``nblib.kernels``),
    "numpy" (``Network.update_mini_batch``), or "auto" (numba when it is installed).
    """
    x, labels = _pair(training, "training", net)
    epochs, m = integer(epochs, "epochs"), integer(mini_batch_size, "mini_batch_size")
    eta, lmbda = number(eta, "eta", non_negative=True), number(lmbda, "lmbda", non_negative=True)
    n = len(x)
    _check_decay(eta, lmbda, n)
    evaluation = None if evaluation is None else _pair(evaluation, "evaluation", net)
    probe = None if probe is None else _pair(probe, "probe", net)
    engine = _choose_engine(engine)
    frozen = _check_layers(frozen, len(net.weights))
    history = History(net.sizes, dict(epochs=epochs, mini_batch_size=m, eta=eta, lmbda=lmbda,
                                      seed=seed, engine=engine, n=n, dtype=net.dtype.name,
                                      frozen=list(frozen)))
    rng = np.random.default_rng(seed)
    sparse = kernels.SparseRows.from_dense(x, net.dtype) if engine == "numba" else None
    start = time.perf_counter()
    if probe is not None:
        history.speeds.append(learning_speeds(net, *probe).tolist())
    for _ in tqdm(range(epochs), desc=f"SGD {net.sizes}", disable=not show_progress(progress), leave=False):
        order = rng.permutation(n)
        if engine == "numba":
            kernels.sgd_epoch(net.weights, net.biases, sparse, labels, order, m, eta, lmbda, n, frozen)
        else:
            for k in range(0, n, m):
                batch = order[k:k + m]
                net.update_mini_batch(x[batch], labels[batch], eta, lmbda, n, frozen)
        if evaluation is not None:
            history.accuracy.append(net.accuracy(*evaluation))
        if probe is not None:
            history.speeds.append(learning_speeds(net, *probe).tolist())
    history.seconds = time.perf_counter() - start
    return history


def gradient_descent(net: Network, training: Pair | Any, *, epochs: int, eta: float,
                     lmbda: float = 0.0, progress: bool | None = None) -> History:
    """Full-batch gradient descent: each epoch is one step along the gradient of the mean cost
    over all of ``training`` (network2's rule with one mini-batch of all n examples). Records
    the hidden layers' learning speeds before every step and after the last, and the cost
    (with its L2 term) after every step."""
    x, labels = _pair(training, "training", net)
    epochs = integer(epochs, "epochs")
    eta, lmbda = number(eta, "eta", non_negative=True), number(lmbda, "lmbda", non_negative=True)
    n = len(x)
    _check_decay(eta, lmbda, n)
    history = History(net.sizes, dict(epochs=epochs, eta=eta, lmbda=lmbda, n=n, dtype=net.dtype.name))
    start = time.perf_counter()
    grads = net.backprop(x, labels)
    for _ in tqdm(range(epochs), desc=f"GD {net.sizes}", disable=not show_progress(progress), leave=False):
        history.speeds.append(speeds_of(grads).tolist())
        net.apply_gradients(grads, eta, lmbda, n)
        grads = net.backprop(x, labels)           # the next step's gradient, and this step's cost
        history.cost.append(net.cost_of_output(grads.output, labels, lmbda, n))
    history.speeds.append(speeds_of(grads).tolist())
    history.seconds = time.perf_counter() - start
    return history


def run_parallel(job: Callable[..., Any], arguments: Sequence[Any], *, workers: int | None = None,
                 desc: str = "runs", progress: bool | None = None) -> list[Any]:
    """``[job(a) for a in arguments]``, several at a time in threads (one per core by default).

    Worth it for ``sgd`` with the numba engine, whose inner loop releases the GIL. Results come
    back in the order of ``arguments`` whatever order they finish in, so a seeded job gives the
    same results run alone or in parallel."""
    if not callable(job):
        raise TypeError(f"job must be a function, got {job!r}")
    arguments = list(arguments)
    workers = (os.cpu_count() or 1) if workers is None else integer(workers, "workers")
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(arguments), desc=desc, disable=not show_progress(progress)) as bar:
        futures = [pool.submit(job, a) for a in arguments]
        for f in futures:
            f.add_done_callback(lambda _: bar.update())
        return [f.result() for f in futures]


def show_progress(progress: bool | None) -> bool:
    """Whether to draw a progress bar: ``progress`` if given, else yes unless the environment
    variable NBLIB_PROGRESS is "0" (the book's build sets it: a finished bar is noise on a page)."""
    if progress is None:
        return os.environ.get("NBLIB_PROGRESS", "1") != "0"
    return bool(progress)


# --- helpers ----------------------------------------------------------------------------------
def _pair(data: Pair | Any, name: str, net: Network) -> Pair:
    """(inputs, labels) from a pair or from anything with ``images`` and ``labels``, checked."""
    x, labels = as_pair(data, name)
    try:
        x = check_inputs(x, net.sizes[0], net.dtype)
        labels = Network.check_labels(labels, net.sizes[-1], len(x))
    except (TypeError, ValueError) as exc:  # say which argument was wrong
        raise type(exc)(f"{name}: {exc}") from exc
    return x, labels


def _check_layers(layers: Sequence[int], n_layers: int) -> tuple[int, ...]:
    """Layer indices (negative ones count from the output), as a sorted tuple of non-negative ones."""
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TypeError(f"frozen must be a list of layer indices such as [0], got {layers!r}")
    checked = set()
    for l in layers:
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)):
            raise TypeError(f"frozen must hold integer layer indices, got {l!r}")
        if not -n_layers <= l < n_layers:
            raise ValueError(f"frozen layer {l} does not exist: this network has {n_layers} weight "
                             f"layers, indices 0..{n_layers - 1} (or -{n_layers}..-1)")
        checked.add(int(l) % n_layers)
    return tuple(sorted(checked))


def _check_decay(eta: float, lmbda: float, n: int) -> None:
    if eta * lmbda / n >= 1:
        raise ValueError(f"eta * lmbda / n = {eta * lmbda / n:g} must be below 1: the weight decay "
                         f"factor 1 - eta*lmbda/n would flip or zero every weight at each step")


def _choose_engine(engine: str) -> str:
    if engine not in ("auto", "numba", "numpy"):
        raise ValueError(f'engine must be "auto", "numba" or "numpy", got {engine!r}')
    if engine == "numba" and not kernels.available():
        raise ValueError('engine="numba" needs numba: pip install numba (or use engine="numpy")')
    if engine == "auto":
        return "numba" if kernels.available() else "numpy"
    return engine
