"""One epoch of network2's mini-batch SGD as a compiled loop (optional: needs numba).

With mini-batches of 10, numpy spends most of its time on the overhead of its ~80 calls per
step, not on arithmetic. This module runs a whole epoch in one call of a numba-compiled
function that does the maths of ``Network.update_mini_batch``, with three liberties that
change nothing but speed (and the order in which floating-point sums are added up):

* the inputs are stored as sparse rows (an MNIST image is about 80% zeros), so the first
  layer touches only the non-zero pixels, forwards and backwards;
* the weights are held transposed, ``wt[l] = weights[l].T``, so every inner loop walks
  memory in order, and every layer is padded with zero-weight neurons to a multiple of 8
  (30 -> 32), so the inner loops run in whole vector registers; the padding neurons are
  held at activation 0, so they never change anything;
* the weight decay ``w <- (1 - eta*lmbda/n) w`` is kept as one number per layer,
  ``w = scale * v``, instead of rescaling every weight at every step.

The compiled function releases the GIL, so several networks can train at once in threads.
``tests/test_kernels.py`` checks it against ``Network.update_mini_batch``.
"""

from __future__ import annotations

import functools
import math
import threading
import weakref
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import checks
from .checks import integer, number
from .networks import check_decay, check_float_dtype, check_layers

try:  # numba is optional: without it nblib.training falls back to numpy.
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

Array = np.ndarray


def available() -> bool:
    """True when numba is installed, so the compiled epoch can be used."""
    return numba is not None


@dataclass(frozen=True)
class SparseRows:
    """A batch of inputs in compressed-row form: row r has the values
    ``values[indptr[r]:indptr[r+1]]`` in the columns ``indices[indptr[r]:indptr[r+1]]``."""

    indptr: Array
    indices: Array
    values: Array
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        """The compiled loop trusts these indices: check them once, when the rows are made."""
        rows, cols = self.shape
        arrays = (self.indptr, self.indices, self.values)
        if not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in arrays) \
                or self.indptr.dtype != np.int64 or self.indices.dtype != np.int64 \
                or self.values.dtype not in (np.float32, np.float64):
            raise TypeError("SparseRows needs 1-D int64 indptr and indices and float32/float64 values: "
                            "make them with SparseRows.from_dense(x, dtype)")
        if len(self.indptr) != rows + 1 or self.indptr[0] != 0 or self.indptr[-1] != len(self.indices) \
                or len(self.values) != len(self.indices) or np.any(np.diff(self.indptr) < 0) \
                or (len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= cols)):
            raise ValueError(f"these are not the compressed rows of a ({rows}, {cols}) array: "
                             "make them with SparseRows.from_dense(x, dtype)")

    @classmethod
    def from_dense(cls, x: Array, dtype: np.dtype) -> "SparseRows":
        """The compressed rows of ``x``. The last few conversions are remembered (while ``x``
        is unchanged and alive), so training many networks on one data set converts it once."""
        x = checks.array(x, "x", ndim=2, finite=False)   # (sgd has checked that x is finite)
        dtype = check_float_dtype(dtype)
        key = (id(x), np.dtype(dtype).str)
        with _recent_lock:                      # run_parallel may convert from several threads
            cached = _recent.get(key)
        if cached is not None and cached[0]() is x and cached[1] == _fingerprint(x):
            return cached[2]
        rows = cls._convert(np.asarray(x), dtype)
        if isinstance(x, np.ndarray):
            with _recent_lock:
                _recent[key] = (weakref.ref(x), _fingerprint(x), rows)
                while len(_recent) > 4:
                    _recent.pop(next(iter(_recent)))
        return rows

    @classmethod
    def _convert(cls, x: Array, dtype: np.dtype) -> "SparseRows":
        nonzero = x != 0
        indptr = np.zeros(len(x) + 1, dtype=np.int64)
        np.cumsum(nonzero.sum(axis=1), out=indptr[1:])
        rows, cols = np.nonzero(nonzero)
        return cls(indptr, cols.astype(np.int64), x[rows, cols].astype(dtype), x.shape)


_recent: dict = {}
_recent_lock = threading.Lock()


def _fingerprint(x: Array) -> float:
    """A number that changes (almost surely) when any entry of ``x`` changes or rows are
    reordered: x weighted by fixed pseudo-random weights along both axes, in float64, a block of
    rows at a time (so that a float32 data set is never copied whole)."""
    rows, cols = _fingerprint_weights(*x.shape)
    block = 4096
    with np.errstate(invalid="ignore", over="ignore"):    # BLAS's spurious flags: see nblib.networks
        return float(sum(rows[i:i + block] @ (x[i:i + block] @ cols) for i in range(0, len(x), block)))


@functools.lru_cache(maxsize=8)
def _fingerprint_weights(n_rows: int, n_cols: int) -> tuple[Array, Array]:
    rng = np.random.default_rng(12345)
    cols = rng.random(n_cols)
    return rng.random(n_rows), cols


def sgd_epoch(weights: list[Array], biases: list[Array], inputs: SparseRows, labels: Array,
              order: Array, mini_batch_size: int, eta: float, lmbda: float, n: int,
              frozen: Sequence[int] = ()) -> None:
    """Train in place for one epoch: the examples in ``order``, ``mini_batch_size`` at a time,
    with network2's rule for a training set of ``n`` examples. The layers listed in ``frozen``
    (0 = the weights and biases into the first hidden layer) are left as they are.

    Every argument is checked first (the compiled loop trusts its indices, and an index out of
    range would crash the interpreter); the checks take a few microseconds per 10,000 examples."""
    if numba is None:
        raise ValueError("kernels.sgd_epoch needs numba: pip install numba (or train with "
                         "nblib.training.sgd(..., engine='numpy'))")
    _check_layers_of(weights, biases)
    checks.instance(inputs, "inputs", SparseRows,
                    "nblib.kernels.SparseRows (SparseRows.from_dense(x, dtype))")
    dtype = weights[0].dtype
    if inputs.values.dtype != dtype or inputs.shape[1] != weights[0].shape[1]:
        raise ValueError(f"inputs must be {inputs.shape[0]} rows of {weights[0].shape[1]} {dtype.name} "
                         f"numbers for this network, got rows of {inputs.shape[1]} "
                         f"{inputs.values.dtype.name} numbers: use SparseRows.from_dense(x, {dtype.name})")
    labels = checks.labels(labels, "labels", weights[-1].shape[0], inputs.shape[0])
    order = checks.array(order, "order", ndim=1, empty=True)
    if order.dtype.kind not in "iu" or (len(order) and (order.min() < 0 or order.max() >= inputs.shape[0])):
        raise ValueError(f"order must be integer indices of examples, in [0, {inputs.shape[0] - 1}]")
    m = integer(mini_batch_size, "mini_batch_size")
    eta, lmbda, n = (number(eta, "eta", non_negative=True), number(lmbda, "lmbda", non_negative=True),
                     integer(n, "n"))
    check_decay(eta, lmbda, n)
    frozen = check_layers(frozen, len(weights))
    _sgd_epoch(weights, biases, inputs, labels, order, m, eta, 1.0 - eta * lmbda / n, frozen)


def _check_layers_of(weights: list[Array], biases: list[Array]) -> None:
    """One float32 or float64 (n_out, n_in) matrix and (n_out,) vector per layer, each layer's
    n_in the previous one's n_out."""
    if not (isinstance(weights, list) and isinstance(biases, list) and weights and len(weights) == len(biases)
            and all(isinstance(p, np.ndarray) for p in weights + biases)):
        raise TypeError("weights and biases must be lists of numpy arrays, one of each per layer "
                        "(a Network's .weights and .biases)")
    dtype = weights[0].dtype
    if dtype not in (np.float32, np.float64) or any(p.dtype != dtype for p in weights + biases):
        raise TypeError(f"weights and biases must all be float32 or all float64, got "
                        f"{sorted({p.dtype.name for p in weights + biases})}")
    for l, (w, b) in enumerate(zip(weights, biases)):
        if w.ndim != 2 or b.shape != (w.shape[0],) or (l and w.shape[1] != weights[l - 1].shape[0]):
            raise ValueError(f"layer {l}: weights of shape {w.shape} and biases of shape {b.shape} do not "
                             f"make a network (weights[l] is (n_out, n_in), biases[l] is (n_out,))")


def _sgd_epoch(weights: list[Array], biases: list[Array], inputs: SparseRows, labels: Array,
               order: Array, mini_batch_size: int, eta: float, decay: float,
               frozen: tuple[int, ...]) -> None:
    """``sgd_epoch`` on checked arguments (``nblib.training.sgd`` checks them once per run), with
    the weight decay factor ``decay`` = 1 - eta*lmbda/n."""
    dtype = weights[0].dtype
    sizes = np.array([weights[0].shape[1]] + [w.shape[0] for w in weights], dtype=np.int64)
    padded = np.concatenate([sizes[:1], -(-sizes[1:] // PAD) * PAD])   # widths rounded up to PAD
    trainable = np.array([l not in frozen for l in range(len(weights))])
    m = max(1, min(mini_batch_size, len(order)))        # a mini-batch is at most the whole epoch
    wt, b = [], []
    for l, (w, bias) in enumerate(zip(weights, biases)):
        block = np.zeros((padded[l], padded[l + 1]), dtype)
        block[:sizes[l], :sizes[l + 1]] = w.T
        wt.append(block.ravel())
        b.append(np.concatenate([bias, np.zeros(padded[l + 1] - sizes[l + 1])]).astype(dtype))
    wt, b = np.concatenate(wt), np.concatenate(b)
    with np.errstate(over="ignore"):          # an eta too large for float32 is inf: the run diverges
        eta, decay = dtype.type(eta), dtype.type(decay)
    scales = _epoch(wt, b, sizes, padded, trainable, inputs.indptr, inputs.indices, inputs.values,
                    labels.astype(np.int64), order.astype(np.int64), m, eta, decay)
    w_at = b_at = 0
    for l in range(len(weights)):
        n_in, n_out = padded[l], padded[l + 1]
        block = wt[w_at:w_at + n_in * n_out].reshape(n_in, n_out)
        weights[l][...] = scales[l] * block[:sizes[l], :sizes[l + 1]].T
        biases[l][...] = b[b_at:b_at + sizes[l + 1]]
        w_at += n_in * n_out
        b_at += n_out


# --- the compiled pieces. `z`, `a`, `d` are (mini-batch, width) blocks whose first `size`
# rows are in use; a layer's weights `v` are (n_in, n_out) and its true weights scale * v.
def _sigmoid_(z, width):
    """z = sigmoid(z) for the first `width` neurons; the padding neurons after them are set to 0."""
    one = z.dtype.type(1.0)                    # keeps float32 arithmetic in float32
    for j in range(width):
        z[j] = one / (one + math.exp(-z[j]))
    for j in range(width, z.shape[0]):
        z[j] = 0.0


def _forward_sparse(z, b, v, scale, indptr, indices, values, batch, width):
    """z[i] = sigmoid(b + scale * x_i @ v), visiting only the non-zero inputs of each x_i."""
    h = z.shape[1]
    for i in range(len(batch)):
        zi = z[i]
        zi[:] = 0.0
        q, end = indptr[batch[i]], indptr[batch[i] + 1]
        while q + 4 <= end:                    # four inputs at a time: fewer passes over z
            x1, x2, x3, x4 = values[q], values[q + 1], values[q + 2], values[q + 3]
            p1, p2, p3, p4 = indices[q], indices[q + 1], indices[q + 2], indices[q + 3]
            for j in range(h):
                zi[j] += x1 * v[p1, j] + x2 * v[p2, j] + x3 * v[p3, j] + x4 * v[p4, j]
            q += 4
        while q < end:
            x, p = values[q], indices[q]
            for j in range(h):
                zi[j] += x * v[p, j]
            q += 1
        for j in range(h):
            zi[j] = b[j] + scale * zi[j]
        _sigmoid_(zi, width)


def _forward_dense(z, b, v, scale, a, size, width):
    """z[i] = sigmoid(b + scale * a[i] @ v). The examples' loop sits inside the loop over
    inputs, so consecutive updates go to different rows and can overlap."""
    for i in range(size):
        z[i, :] = 0.0
    for p in range(a.shape[1]):
        for i in range(size):
            c = a[i, p]
            for j in range(z.shape[1]):
                z[i, j] += c * v[p, j]
    for i in range(size):
        for j in range(z.shape[1]):
            z[i, j] = b[j] + scale * z[i, j]
        _sigmoid_(z[i], width)


def _backward_delta(d_prev, v, scale, d, a, size):
    """d_prev[i] = (w d[i]) * sigma'(z_prev[i]), with sigma'(z_prev) = a (1 - a); four rows
    of w at a time, so that four sums are built in one pass over d[i]."""
    zero, one = v.dtype.type(0.0), v.dtype.type(1.0)
    k, h = v.shape
    for i in range(size):
        p = 0
        while p + 4 <= k:
            s1 = s2 = s3 = s4 = zero
            for j in range(h):
                s1 += v[p, j] * d[i, j]
                s2 += v[p + 1, j] * d[i, j]
                s3 += v[p + 2, j] * d[i, j]
                s4 += v[p + 3, j] * d[i, j]
            d_prev[i, p] = s1
            d_prev[i, p + 1] = s2
            d_prev[i, p + 2] = s3
            d_prev[i, p + 3] = s4
            p += 4
        while p < k:
            s1 = zero
            for j in range(h):
                s1 += v[p, j] * d[i, j]
            d_prev[i, p] = s1
            p += 1
        for p in range(k):
            d_prev[i, p] *= scale * a[i, p] * (one - a[i, p])


def _update_dense(v, a, d, step, size):
    """v -= step * sum_i a[i] d[i]^T, four rows of v at a time."""
    k, h = v.shape
    for i in range(size):
        p = 0
        while p + 4 <= k:
            c1, c2, c3, c4 = step * a[i, p], step * a[i, p + 1], step * a[i, p + 2], step * a[i, p + 3]
            for j in range(h):
                v[p, j] -= c1 * d[i, j]
                v[p + 1, j] -= c2 * d[i, j]
                v[p + 2, j] -= c3 * d[i, j]
                v[p + 3, j] -= c4 * d[i, j]
            p += 4
        while p < k:
            c = step * a[i, p]
            for j in range(h):
                v[p, j] -= c * d[i, j]
            p += 1


def _update_sparse(v, step, indptr, indices, values, batch, d):
    """v -= step * sum_i x_i d[i]^T over the non-zero inputs of each x_i, four at a time."""
    h = v.shape[1]
    for i in range(len(batch)):
        q, end = indptr[batch[i]], indptr[batch[i] + 1]
        while q + 4 <= end:
            p1, p2, p3, p4 = indices[q], indices[q + 1], indices[q + 2], indices[q + 3]
            c1, c2 = step * values[q], step * values[q + 1]
            c3, c4 = step * values[q + 2], step * values[q + 3]
            for j in range(h):
                v[p1, j] -= c1 * d[i, j]
                v[p2, j] -= c2 * d[i, j]
                v[p3, j] -= c3 * d[i, j]
                v[p4, j] -= c4 * d[i, j]
            q += 4
        while q < end:
            p, c = indices[q], step * values[q]
            for j in range(h):
                v[p, j] -= c * d[i, j]
            q += 1


def _update_bias(b, d, rate, size):
    for i in range(size):
        for j in range(b.shape[0]):
            b[j] -= rate * d[i, j]


def _offsets(counts):
    at = np.zeros(len(counts) + 1, np.int64)
    for l in range(len(counts)):
        at[l + 1] = at[l] + counts[l]
    return at


def _epoch_py(wt, b, true_sizes, sizes, trainable, indptr, indices, values, labels, order, m, eta, decay):
    """One epoch over `order`, on layers of the padded `sizes`. Returns each layer's final
    weight scale: weights = scale * wt."""
    n_layers = len(sizes) - 1
    w_at = _offsets(sizes[:-1] * sizes[1:])
    b_at = _offsets(sizes[1:])
    block_at = _offsets(m * sizes[1:])                # one (m, width) block per layer
    acts = np.zeros(block_at[-1], wt.dtype)
    deltas = np.zeros(block_at[-1], wt.dtype)
    real = wt.dtype.type                       # every scalar in the network's precision
    scales = np.ones(n_layers, wt.dtype)
    for start in range(0, len(order), m):
        batch = order[start:start + m]
        size = len(batch)
        # forward
        for l in range(n_layers):
            v = wt[w_at[l]:w_at[l + 1]].reshape(sizes[l], sizes[l + 1])
            z = acts[block_at[l]:block_at[l + 1]].reshape(m, sizes[l + 1])
            if l == 0:
                _forward_sparse(z, b[b_at[0]:b_at[1]], v, scales[0], indptr, indices, values, batch,
                                true_sizes[1])
            else:
                a = acts[block_at[l - 1]:block_at[l]].reshape(m, sizes[l])
                _forward_dense(z, b[b_at[l]:b_at[l + 1]], v, scales[l], a, size, true_sizes[l + 1])
        # output error of the cross-entropy cost: a - y
        top = n_layers - 1
        d = deltas[block_at[top]:block_at[top + 1]].reshape(m, sizes[-1])
        d[:, :] = acts[block_at[top]:block_at[top + 1]].reshape(m, sizes[-1])
        for i in range(size):
            d[i, labels[batch[i]]] -= 1.0
        # backward: a layer's delta is passed down before the layer's weights change
        rate = real(eta / size)
        for l in range(n_layers - 1, -1, -1):
            flat = wt[w_at[l]:w_at[l + 1]]
            v = flat.reshape(sizes[l], sizes[l + 1])
            d = deltas[block_at[l]:block_at[l + 1]].reshape(m, sizes[l + 1])
            a = acts[block_at[l - 1]:block_at[l]].reshape(m, sizes[l]) if l > 0 else d
            if l > 0:
                d_prev = deltas[block_at[l - 1]:block_at[l]].reshape(m, sizes[l])
                _backward_delta(d_prev, v, scales[l], d, a, size)
            if not trainable[l]:
                continue
            if scales[l] * decay < 1e-3:       # fold the decay into the weights before it underflows
                for t in range(len(flat)):
                    flat[t] *= scales[l]
                scales[l] = 1.0
            scales[l] = real(scales[l] * decay)
            step = real(rate / scales[l])     # w_new = decay w - rate g  <=>  v_new = v - (rate/scale_new) g
            if l > 0:
                _update_dense(v, a, d, step, size)
            else:
                _update_sparse(v, step, indptr, indices, values, batch, d)
            _update_bias(b[b_at[l]:b_at[l + 1]], d, rate, size)
    return scales


PAD = 8

if numba is not None:
    _inline = dict(nogil=True, fastmath=True, error_model="numpy", cache=True, inline="always")
    _sigmoid_, _forward_sparse, _forward_dense, _backward_delta, _update_dense, _update_sparse, \
        _update_bias, _offsets = [numba.njit(**_inline)(f) for f in (
            _sigmoid_, _forward_sparse, _forward_dense, _backward_delta, _update_dense,
            _update_sparse, _update_bias, _offsets)]
    _epoch = numba.njit(nogil=True, fastmath=True, error_model="numpy", cache=True)(_epoch_py)
else:  # pragma: no cover
    _epoch = _epoch_py
