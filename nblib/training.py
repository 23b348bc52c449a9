"""Training a ``Network``: mini-batch SGD and full-batch gradient descent, as network2 does them.

Both return a ``History``: plain lists of numbers, epoch by epoch, that ``nblib.plots`` draws
and a notebook can print, save or compare. Several runs can go at once on the machine's
cores with ``run_parallel`` (the compiled SGD loop releases Python's GIL).
"""

from __future__ import annotations

import functools
import math
import os
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from . import _blas, checks, kernels
from .checks import integer, number
from .data import as_pair
from .metrics import learning_speeds, speeds_of
from .networks import Network, check_inputs, check_network
from .progress import bar as progress_bar

Array = np.ndarray
Pair = tuple[Array, Array]


@dataclass
class History:
    """What a run recorded. ``accuracy[e]`` and ``cost[e]`` are measured after epoch e + 1;
    ``speeds[e]`` holds the hidden layers' learning speeds before epoch e + 1 (so ``speeds[0]``
    is at initialisation), and one more entry after the last epoch. ``diverged`` is True when
    the weights stopped being finite (too large a learning rate): training then stopped after
    that epoch, so the lists are shorter than the number of epochs asked for."""

    sizes: list[int]
    settings: dict[str, Any]
    accuracy: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    speeds: list[list[float]] = field(default_factory=list)
    seconds: float = 0.0
    diverged: bool = False

    @property
    def final_accuracy(self) -> float:
        if not self.accuracy:
            raise ValueError("this run recorded no accuracy: pass evaluation data to sgd()")
        return self.accuracy[-1]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _one_blas_thread(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``function`` with numpy's OpenBLAS held to one thread (see ``blas_threads``): the
    matrices of these networks are small, and a second BLAS thread only waits for the first."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _blas.limited(1):
            return function(*args, **kwargs)
    return wrapper


@_one_blas_thread
def sgd(net: Network, training: Pair | Any, *, epochs: int, mini_batch_size: int, eta: float,
        lmbda: float = 0.0, evaluation: Pair | Any | None = None, probe: Pair | Any | None = None,
        seed: int = 0, frozen: Sequence[int] = (), engine: str = "auto",
        progress: bool | None = None) -> History:
    """Mini-batch stochastic gradient descent, exactly network2's ``SGD``: each epoch shuffles the
    training data, then for each mini-batch of m examples sets
    w <- (1 - eta*lmbda/n) w - (eta/m) sum dC_x/dw  and  b <- b - (eta/m) sum dC_x/db.

    ``training``, ``evaluation`` and ``probe`` are (inputs, labels) pairs or ``nblib.data.Split``s.
    After each epoch the accuracy on ``evaluation`` is recorded; the learning speeds of the hidden
    layers on ``probe`` are recorded before training and after each epoch. ``seed`` fixes the
    order of the examples. ``frozen`` lists layers left untrained (0 = the weights and biases
    into the first hidden layer; -1 = those into the output layer). ``engine`` is "numba" (the
    compiled loop of ``nblib.kernels``), "numpy" (``Network.update_mini_batch``), or "auto" (numba
    when it is installed). A ``mini_batch_size`` above n trains on all n examples at once. If the
    weights stop being finite, training stops after that epoch with a warning and
    ``History.diverged`` set. While it runs, numpy's BLAS is held to one thread (see ``blas_threads``).
    """
    _check_network(net)
    x, labels = _pair(training, "training", net)
    epochs, m = integer(epochs, "epochs"), integer(mini_batch_size, "mini_batch_size")
    n = len(x)
    eta, decay, frozen = net.check_step(eta, lmbda, n, frozen)
    lmbda = number(lmbda, "lmbda", non_negative=True)
    seed = checks.seed(seed)
    evaluation = None if evaluation is None else _pair(evaluation, "evaluation", net)
    probe = None if probe is None else _pair(probe, "probe", net)
    engine = _choose_engine(engine)
    history = History(net.sizes, dict(epochs=epochs, mini_batch_size=m, eta=eta, lmbda=lmbda,
                                      seed=seed, engine=engine, n=n, dtype=net.dtype.name,
                                      frozen=list(frozen)))
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    # The layers frozen at the bottom of the network never change, so (with the compiled loop) the
    # data are passed through them once, and the layers above train on what comes out: the same
    # maths, without recomputing the frozen layers' outputs at every step.
    bottom = min(_frozen_bottom(frozen), len(net.weights) - 1) if engine == "numba" else 0
    if bottom:
        top = (net.weights[bottom:], net.biases[bottom:], tuple(l - bottom for l in frozen if l >= bottom))
        x_top = _through(net, bottom, x)
        sparse = kernels.SparseRows.from_dense(x_top, net.dtype)
        if evaluation is not None:
            evaluation = (_through(net, bottom, evaluation[0]), evaluation[1])
    else:
        top = (net.weights, net.biases, frozen)
        sparse = kernels.SparseRows.from_dense(x, net.dtype) if engine == "numba" else None
    if probe is not None:
        history.speeds.append(learning_speeds(net, *probe).tolist())
    for epoch in progress_bar(range(epochs), desc=f"SGD {net.sizes}", progress=progress, leave=False):
        order = rng.permutation(n)
        if engine == "numba":
            kernels._sgd_epoch(top[0], top[1], sparse, labels, order, m, eta, decay, top[2])
        else:
            for k in range(0, n, m):
                batch = order[k:k + m]
                net._step(net.backprop(x[batch], labels[batch]), eta, decay, frozen)
        if evaluation is not None:
            history.accuracy.append(_accuracy(top[0], top[1], *evaluation))
        if probe is not None:
            history.speeds.append(learning_speeds(net, *probe).tolist())
        if not net.is_finite():
            _diverged(history, "sgd", epoch + 1, "eta")
            break
    history.seconds = time.perf_counter() - start
    return history


@_one_blas_thread
def gradient_descent(net: Network, training: Pair | Any, *, epochs: int, eta: float,
                     lmbda: float = 0.0, progress: bool | None = None) -> History:
    """Full-batch gradient descent: each epoch is one step along the gradient of the mean cost
    over all of ``training`` (network2's rule with one mini-batch of all n examples). Records
    the hidden layers' learning speeds before every step and after the last, and the cost
    (with its L2 term) after every step. If the weights or the cost stop being finite,
    training stops after that step with a warning and ``History.diverged`` set. While it runs,
    numpy's BLAS is held to one thread (see ``blas_threads``)."""
    _check_network(net)
    x, labels = _pair(training, "training", net)
    epochs = integer(epochs, "epochs")
    n = len(x)
    eta, decay, _ = net.check_step(eta, lmbda, n)
    lmbda = number(lmbda, "lmbda", non_negative=True)
    history = History(net.sizes, dict(epochs=epochs, eta=eta, lmbda=lmbda, n=n, dtype=net.dtype.name))
    start = time.perf_counter()
    grads = net.backprop(x, labels)
    for step in progress_bar(range(epochs), desc=f"GD {net.sizes}", progress=progress, leave=False):
        history.speeds.append(speeds_of(grads).tolist())
        net._step(grads, eta, decay, ())
        grads = net.backprop(x, labels)           # the next step's gradient, and this step's cost
        history.cost.append(net.cost_of_output(grads.output, labels, lmbda, n, z=grads.output_z))
        if not (math.isfinite(history.cost[-1]) and net.is_finite()):
            _diverged(history, "gradient_descent", step + 1, "eta")
            break
    history.speeds.append(speeds_of(grads).tolist())
    history.seconds = time.perf_counter() - start
    return history


def run_parallel(job: Callable[..., Any], arguments: Sequence[Any], *, workers: int | None = None,
                 desc: str = "runs", progress: bool | None = None) -> list[Any]:
    """``[job(a) for a in arguments]``, several at a time in threads (one per core by default).

    Worth it for ``sgd`` with the numba engine, whose inner loop releases the GIL, and for jobs
    that multiply small numpy matrices: while the jobs run, numpy's OpenBLAS is held to one
    thread (see ``blas_threads``), so that jobs do not wait on each other's BLAS threads.
    Results come back in the order of ``arguments`` whatever order they finish in, so a seeded
    job gives the same results run alone or in parallel."""
    checks.function(job, "job")
    if isinstance(arguments, (str, bytes)) or not isinstance(arguments, Iterable):
        raise TypeError(f"arguments must be a list of the jobs' arguments, got {arguments!r}")
    arguments = list(arguments)
    workers = (os.cpu_count() or 1) if workers is None else integer(workers, "workers")
    desc = checks.text(desc, "desc")
    with _blas.limited(1), ThreadPoolExecutor(max_workers=workers) as pool, \
            progress_bar(total=len(arguments), desc=desc, progress=progress) as bar:
        futures = [pool.submit(job, a) for a in arguments]
        for f in futures:
            f.add_done_callback(lambda _: bar.update())
        return [f.result() for f in futures]


def blas_threads(n: int) -> int | None:
    """Let numpy's matrix products (OpenBLAS) use ``n`` threads; returns the number before.

    The book's matrices are small, and a second BLAS thread only waits for the first: with
    OpenBLAS's default of one thread per core, one full-batch step of chapter 1's network took
    ten times the CPU time on the 2-core build machine while another program was running. A
    chapter that multiplies numpy matrices calls ``blas_threads(1)`` first, as the torch chapters
    call ``torch.set_num_threads(1)``. Where numpy's BLAS is not OpenBLAS nothing changes, and
    the result is None."""
    return _blas.set_threads(integer(n, "n", at_most=1024))


# --- helpers ----------------------------------------------------------------------------------
def _frozen_bottom(frozen: Sequence[int]) -> int:
    """How many layers at the bottom of the network are frozen: 2 for frozen (0, 1, 3)."""
    bottom = 0
    while bottom in frozen:
        bottom += 1
    return bottom


def _through(net: Network, layers: int, x: Array) -> Array:
    """The activations after the first ``layers`` layers of ``net`` for checked inputs ``x``."""
    a = x
    with np.errstate(invalid="ignore", over="ignore"):      # as in Network.feedforward
        for w, b in zip(net.weights[:layers], net.biases[:layers]):
            a = (1.0 / (1.0 + np.exp(-(a @ w.T + b)))).astype(net.dtype, copy=False)
    return a


def _accuracy(weights: list[Array], biases: list[Array], x: Array, labels: Array) -> float:
    """The share of checked inputs ``x`` that the layers ``weights``, ``biases`` classify as
    ``labels`` (``Network.accuracy`` without checking its arguments again at every epoch)."""
    a = x
    with np.errstate(invalid="ignore", over="ignore"):
        for w, b in zip(weights, biases):
            a = 1.0 / (1.0 + np.exp(-(a @ w.T + b)))
    return float(np.mean(np.argmax(a, axis=1) == labels))


def _pair(data: Pair | Any, name: str, net: Network) -> Pair:
    """(inputs, labels) from a pair or from anything with ``images`` and ``labels``, checked."""
    x, labels = as_pair(data, name)
    try:
        x = check_inputs(x, net.sizes[0], net.dtype)
        labels = Network.check_labels(labels, net.sizes[-1], len(x))
    except (TypeError, ValueError) as exc:  # say which argument was wrong
        raise type(exc)(f"{name}: {exc}") from exc
    return x, labels


def _check_network(net: Network) -> None:
    check_network(net)
    if not net.is_finite():
        raise ValueError("net has NaN or infinite weights (it has diverged): start from a fresh Network")


def _diverged(history: History, what: str, epoch: int, rate: str) -> None:
    history.diverged = True
    warnings.warn(f"{what} diverged: the weights stopped being finite at epoch {epoch}, so training "
                  f"stopped there (History.diverged is True); try a smaller {rate}", RuntimeWarning,
                  stacklevel=3)


def _choose_engine(engine: str) -> str:
    engine = checks.choice(engine, "engine", ("auto", "numba", "numpy"))
    if engine == "numba" and not kernels.available():
        raise ValueError('engine="numba" needs numba: pip install numba (or use engine="numpy")')
    if engine == "auto":
        if kernels.available():
            return "numba"
        _say_numba_is_missing()
        return "numpy"
    return engine


_told_about_numba = False


def _say_numba_is_missing() -> None:
    """Say once per session that training falls back to numpy, and what to install."""
    global _told_about_numba
    if not _told_about_numba:
        _told_about_numba = True
        warnings.warn("numba is not installed, so nblib trains with plain numpy (the same numbers, about "
                      "four times slower): pip install numba", UserWarning, stacklevel=4)
