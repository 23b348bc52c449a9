"""Tests for nblib.kernels: the compiled epoch of SGD against ``Network.update_mini_batch``
applied mini-batch by mini-batch, and the sparse rows it reads its inputs from."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from nblib import kernels  # noqa: E402
from nblib.kernels import SparseRows  # noqa: E402
from nblib.networks import Network  # noqa: E402
from numeric_helpers import relative_error

# How far the compiled epoch may drift from numpy's: it adds its sums up in another order
# (and with fastmath), so float64 agrees to rounding and float32 to a few ulps per step.
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}



def numpy_epoch(net: Network, x, labels, order, m, eta, lmbda) -> Network:
    """The epoch the kernel must reproduce: update_mini_batch over ``order``, m at a time."""
    net = net.copy()
    for start in range(0, len(order), m):
        batch = order[start:start + m]
        net.update_mini_batch(x[batch], labels[batch], eta, lmbda, len(x))
    return net


def kernel_epoch(net: Network, x, labels, order, m, eta, lmbda) -> Network:
    net = net.copy()
    kernels.sgd_epoch(net.weights, net.biases, SparseRows.from_dense(x, net.dtype), labels, order,
                      m, eta, lmbda, len(x))
    return net


def assert_same_network(got: Network, expected: Network, tol: float) -> None:
    for l, (w, w_ref, b, b_ref) in enumerate(zip(got.weights, expected.weights, got.biases, expected.biases)):
        assert w.dtype == w_ref.dtype and b.dtype == b_ref.dtype
        assert np.isfinite(w).all() and np.isfinite(b).all(), f"layer {l} is not finite"
        assert relative_error(w, w_ref) <= tol, f"weights of layer {l}: {relative_error(w, w_ref):.2e}"
        assert relative_error(b, b_ref) <= tol, f"biases of layer {l}: {relative_error(b, b_ref):.2e}"


CASES = {  # name: (sizes, n, mini_batch_size, fraction of zero inputs, eta, lmbda)
    "mnist-like": ([9, 6, 5, 3], 40, 10, 0.8, 0.5, 2.0),
    "ragged last batch": ([9, 6, 5, 3], 23, 5, 0.8, 0.5, 2.0),
    "batch of one": ([7, 5, 3], 17, 1, 0.5, 0.3, 1.0),
    "batch larger than n": ([7, 5, 3], 12, 50, 0.5, 0.5, 1.0),
    "no zeros": ([8, 8, 4], 30, 4, 0.0, 0.5, 1.0),
    "all but a few zeros": ([13, 6, 3], 30, 4, 0.97, 0.5, 1.0),
    "one hidden unit": ([6, 1, 3], 20, 3, 0.3, 0.5, 1.0),
    "no hidden layer": ([6, 3], 20, 3, 0.3, 0.5, 1.0),
    "no weight decay": ([9, 6, 5, 3], 25, 4, 0.6, 0.5, 0.0),
    "deep": ([10, 5, 5, 5, 5, 2], 24, 6, 0.7, 0.8, 1.0),
    "widths multiples of 4": ([16, 8, 4], 32, 8, 0.5, 0.5, 1.0),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_kernel_epoch_matches_update_mini_batch(case, dtype, data):
    sizes, n, m, zeros, eta, lmbda = case
    x, labels = data(n, sizes[0], sizes[-1], seed=n, zeros=zeros, dtype=dtype)
    net = Network(sizes, seed=1, dtype=dtype)
    order = np.random.default_rng(n).permutation(n)
    expected = numpy_epoch(net, x, labels, order, m, eta, lmbda)
    assert_same_network(kernel_epoch(net, x, labels, order, m, eta, lmbda), expected, TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("eta_lmbda_over_n, n, m", [(0.5, 60, 2), (0.9, 60, 1), (0.9, 400, 1)])
def test_lazy_decay_is_folded_back_before_it_underflows(eta_lmbda_over_n, n, m, dtype, data):
    """With eta*lmbda/n this large the weights' scale would reach 1e-3 within a few steps and,
    left alone, underflow (float32 below 1e-38 after 38 steps at 0.9, float64 below 1e-308
    after 308); the kernel must fold it back into the weights, which must stay network2's."""
    eta = 1.0
    lmbda = eta_lmbda_over_n * n / eta
    steps = -(-n // m)
    assert (1 - eta * lmbda / n) ** steps < 1e-3 ** 3        # the decay is folded several times
    x, labels = data(n, 7, 3, seed=9, zeros=0.5, dtype=dtype)
    net = Network([7, 5, 3], seed=2, dtype=dtype)
    order = np.random.default_rng(0).permutation(n)
    expected = numpy_epoch(net, x, labels, order, m, eta, lmbda)
    assert_same_network(kernel_epoch(net, x, labels, order, m, eta, lmbda), expected, TOLERANCE[dtype])


def test_kernel_epoch_trains_in_place_and_only_touches_the_given_arrays(data):
    x, labels = data(20, 6, 3, zeros=0.5)
    net = Network([6, 4, 3], seed=0, dtype=np.float64)
    weights, biases = net.weights, net.biases
    before = net.copy()
    kernels.sgd_epoch(net.weights, net.biases, SparseRows.from_dense(x, np.float64), labels,
                      np.arange(20), 5, 0.5, 0.0, 20)
    assert net.weights is weights and all(a is b for a, b in zip(net.weights, weights))
    assert net.biases is biases and all(a is b for a, b in zip(net.biases, biases))
    assert not np.array_equal(net.weights[0], before.weights[0])


def test_kernel_epoch_follows_the_given_order(data):
    x, labels = data(12, 5, 2, zeros=0.3)
    net = Network([5, 4, 2], seed=0, dtype=np.float64)
    forward, backward = np.arange(12), np.arange(12)[::-1].copy()
    a = kernel_epoch(net, x, labels, forward, 3, 0.5, 0.0)
    b = kernel_epoch(net, x, labels, backward, 3, 0.5, 0.0)
    assert not np.allclose(a.weights[0], b.weights[0])
    assert_same_network(b, numpy_epoch(net, x, labels, backward, 3, 0.5, 0.0), 1e-10)


# --- SparseRows -------------------------------------------------------------------------------
def dense(rows: SparseRows) -> np.ndarray:
    out = np.zeros(rows.shape, dtype=rows.values.dtype)
    for r in range(rows.shape[0]):
        span = slice(rows.indptr[r], rows.indptr[r + 1])
        out[r, rows.indices[span]] = rows.values[span]
    return out


@pytest.mark.parametrize("zeros", [0.0, 0.8, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_rows_round_trip(zeros, dtype, data):
    x, _ = data(15, 11, 2, zeros=zeros)
    rows = SparseRows.from_dense(x, dtype)
    assert rows.shape == x.shape and rows.values.dtype == dtype
    assert rows.indptr[0] == 0 and rows.indptr[-1] == np.count_nonzero(x) == len(rows.values)
    np.testing.assert_array_equal(dense(rows), x.astype(dtype))


def test_sparse_rows_are_remembered_while_the_array_is_unchanged(data):
    x, _ = data(10, 6, 2, zeros=0.5)
    rows = SparseRows.from_dense(x, np.float64)
    assert SparseRows.from_dense(x, np.float64) is rows
    assert SparseRows.from_dense(x, np.float32) is not rows
    assert SparseRows.from_dense(x.copy(), np.float64) is not rows


def test_sparse_rows_notice_rows_shuffled_in_place(data):
    x, _ = data(10, 6, 2, zeros=0.5)
    SparseRows.from_dense(x, np.float64)
    np.random.default_rng(0).shuffle(x)               # same object, same values, new row order
    np.testing.assert_array_equal(dense(SparseRows.from_dense(x, np.float64)), x)


def test_sparse_rows_notice_one_entry_changed_in_place(data):
    x, _ = data(10, 6, 2, zeros=0.5)
    SparseRows.from_dense(x, np.float64)
    x[3, 2] += 0.25
    x[7, :] = 0.0
    np.testing.assert_array_equal(dense(SparseRows.from_dense(x, np.float64)), x)


def test_kernel_trains_on_the_current_contents_of_a_reused_array(data):
    """The end-to-end form of the cache check: shuffle the training array in place between two
    epochs and the kernel must see the new rows, as numpy does."""
    x, labels = data(16, 6, 3, zeros=0.5)
    net = Network([6, 4, 3], seed=0, dtype=np.float64)
    kernel_epoch(net, x, labels, np.arange(16), 4, 0.5, 0.0)
    x[:] = x[::-1].copy()
    got = kernel_epoch(net, x, labels, np.arange(16), 4, 0.5, 0.0)
    assert_same_network(got, numpy_epoch(net, x, labels, np.arange(16), 4, 0.5, 0.0), 1e-10)


def test_numba_is_available():
    assert kernels.available()


# --- failing loudly (issue 11) -----------------------------------------------------------------
def epoch_arguments(data, **change):
    x, labels = data(10, 5, 3, zeros=0.5, dtype=np.float32)
    net = Network([5, 4, 3], seed=0)
    arguments = dict(weights=net.weights, biases=net.biases, inputs=SparseRows.from_dense(x, np.float32),
                     labels=labels, order=np.arange(10), mini_batch_size=3, eta=0.5, lmbda=1.0, n=10)
    return arguments | change


@pytest.mark.parametrize("change, error, message", [
    (dict(order=np.array([0, 1, 10])), ValueError, r"order must be integer indices of examples, in \[0, 9\]"),
    (dict(order=np.array([-1, 2])), ValueError, r"order must be integer indices of examples, in \[0, 9\]"),
    (dict(order=np.array([0.0, 1.0])), ValueError, r"order must be integer indices"),
    (dict(labels=np.full(10, 3)), ValueError, r"labels must lie in \[0, 2\], got values from 3 to 3"),
    (dict(labels=np.zeros(9, int)), ValueError, r"got 10 inputs but 9 labels"),
    (dict(labels=np.zeros(10)), TypeError, r"labels must be integers"),
    (dict(mini_batch_size=0), ValueError, r"mini_batch_size must be at least 1"),
    (dict(eta=10.0, lmbda=10.0, n=1), ValueError, r"eta \* lmbda / n = 100 must be below 1"),
    (dict(frozen=(2,)), ValueError, r"frozen layer 2 does not exist"),
    (dict(inputs=np.zeros((10, 5))), TypeError, r"inputs must be nblib.kernels.SparseRows"),
    (dict(weights=[]), TypeError, r"weights and biases must be lists of numpy arrays"),
])
def test_sgd_epoch_checks_what_the_compiled_loop_trusts(change, error, message, data):
    arguments = epoch_arguments(data, **change)
    before = [p.copy() for p in arguments["weights"] + arguments["biases"]]
    with pytest.raises(error, match=message):
        kernels.sgd_epoch(**arguments)
    for p, q in zip(arguments["weights"] + arguments["biases"], before):
        np.testing.assert_array_equal(p, q)


def test_sgd_epoch_refuses_inputs_of_another_width_or_precision(data):
    x, _ = data(10, 6, 3, dtype=np.float32)
    with pytest.raises(ValueError,
                       match=r"inputs must be 10 rows of 5 float32 numbers .* SparseRows.from_dense"):
        kernels.sgd_epoch(**epoch_arguments(data, inputs=SparseRows.from_dense(x, np.float32)))
    x, _ = data(10, 5, 3)
    with pytest.raises(ValueError, match=r"rows of 5 float64 numbers"):
        kernels.sgd_epoch(**epoch_arguments(data, inputs=SparseRows.from_dense(x, np.float64)))


def test_sgd_epoch_refuses_mixed_precision_and_layers_that_do_not_chain(data):
    arguments = epoch_arguments(data)
    with pytest.raises(TypeError, match=r"weights and biases must all be float32 or all float64"):
        kernels.sgd_epoch(**arguments | dict(biases=[b.astype(np.float64) for b in arguments["biases"]]))
    with pytest.raises(ValueError,
                       match=r"layer 1: weights of shape \(3, 5\) and biases of shape \(3,\) "
                             r"do not make a network"):
        kernels.sgd_epoch(**arguments | dict(weights=[arguments["weights"][0], np.zeros((3, 5), np.float32)]))


def test_sparse_rows_with_indices_out_of_range_are_refused():
    good = dict(indptr=np.array([0, 1, 2]), indices=np.array([0, 3]), values=np.ones(2, np.float32),
                shape=(2, 4))
    SparseRows(**good)
    with pytest.raises(ValueError, match=r"not the compressed rows of a \(2, 4\) array"):
        SparseRows(**good | dict(indices=np.array([0, 4])))
    with pytest.raises(ValueError, match=r"not the compressed rows"):
        SparseRows(**good | dict(indptr=np.array([0, 3, 2])))
    with pytest.raises(TypeError, match=r"SparseRows needs 1-D int64 indptr and indices"):
        SparseRows(**good | dict(indices=[0, 3]))
    with pytest.raises(ValueError, match=r"x must be a 2-D array, got shape \(4,\)"):
        SparseRows.from_dense(np.zeros(4), np.float32)


def test_a_huge_mini_batch_is_one_batch_of_the_whole_epoch_not_a_memory_error(data):
    x, labels = data(12, 7, 3, zeros=0.5)
    net = Network([7, 5, 3], seed=1, dtype=np.float64)
    order = np.random.default_rng(0).permutation(12)
    assert_same_network(kernel_epoch(net, x, labels, order, 10 ** 9, 0.5, 1.0),
                        kernel_epoch(net, x, labels, order, 12, 0.5, 1.0), 0.0)
