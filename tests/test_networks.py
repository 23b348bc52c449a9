"""Tests for nblib.networks: backprop against finite differences and torch autograd, network2's
initialisation, update rule and cost, and the checks on what comes in."""

from __future__ import annotations

import numpy as np
import pytest

import network2_reference as ref
from nblib.networks import Gradients, Network
from numeric_helpers import relative_error

SHAPES = [[5, 4, 3], [20, 7, 7, 4], [6, 5, 5, 5, 5, 3]]



def float64_net(sizes, seed=0) -> Network:
    return Network(sizes, seed=seed, dtype=np.float64)


# --- gradients ---------------------------------------------------------------------------------
def finite_differences(net: Network, x, labels, h=1e-5):
    """Central differences of the mean cost, parameter by parameter: (dC/dw, dC/db)."""
    def grad_of(params):
        grads = []
        for p in params:
            g = np.zeros_like(p)
            for idx in np.ndindex(p.shape):
                keep = p[idx]
                p[idx] = keep + h
                up = net.cost(x, labels)
                p[idx] = keep - h
                down = net.cost(x, labels)
                p[idx] = keep
                g[idx] = (up - down) / (2 * h)
            grads.append(g)
        return grads
    return grad_of(net.weights), grad_of(net.biases)


@pytest.mark.parametrize("sizes", SHAPES, ids=str)
def test_backprop_matches_finite_differences(sizes, data):
    net = float64_net(sizes, seed=3)
    x, labels = data(6, sizes[0], sizes[-1], seed=1)
    grads = net.backprop(x, labels)
    fd_w, fd_b = finite_differences(net, x, labels)
    for l in range(len(sizes) - 1):
        assert relative_error(grads.weights[l], fd_w[l]) <= 1e-6, f"weights of layer {l}"
        assert relative_error(grads.biases[l], fd_b[l]) <= 1e-6, f"biases of layer {l}"


def torch_gradients(net: Network, x, labels):
    """The same network in torch float64. Each example gets its own copy of the biases, so the
    gradient of sum_x C_x with respect to example x's copy is dC_x/db^l, Nielsen's delta^l_x.
    Returns (cost, dC/dw per layer, dC/db per layer, deltas per layer) with C the batch mean."""
    torch = pytest.importorskip("torch")
    n = len(x)
    ws = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in net.weights]
    bs = [torch.tensor(np.tile(b, (n, 1)), dtype=torch.float64, requires_grad=True) for b in net.biases]
    a = torch.tensor(x, dtype=torch.float64)
    for w, b in zip(ws, bs):
        a = torch.sigmoid(a @ w.T + b)
    y = torch.nn.functional.one_hot(torch.tensor(labels), a.shape[1]).to(torch.float64)
    per_example = -(y * torch.log(a) + (1 - y) * torch.log(1 - a)).sum(dim=1)
    per_example.sum().backward()
    return (float(per_example.detach().mean()),
            [w.grad.numpy() / n for w in ws],
            [b.grad.numpy().mean(axis=0) for b in bs],
            [b.grad.numpy() for b in bs])


@pytest.mark.parametrize("sizes", SHAPES, ids=str)
def test_backprop_matches_torch_autograd(sizes, data):
    pytest.importorskip("torch")
    net = float64_net(sizes, seed=5)
    x, labels = data(9, sizes[0], sizes[-1], seed=2)
    cost, grad_w, grad_b, deltas = torch_gradients(net, x, labels)
    grads = net.backprop(x, labels)
    assert net.cost(x, labels) == pytest.approx(cost, rel=1e-12)
    for l in range(len(sizes) - 1):
        assert relative_error(grads.weights[l], grad_w[l]) <= 1e-6, f"weights of layer {l}"
        assert relative_error(grads.biases[l], grad_b[l]) <= 1e-6, f"biases of layer {l}"


@pytest.mark.parametrize("sizes", SHAPES, ids=str)
def test_each_delta_is_the_bias_gradient_of_its_own_example(sizes, data):
    pytest.importorskip("torch")
    net = float64_net(sizes, seed=6)
    x, labels = data(7, sizes[0], sizes[-1], seed=3)
    *_, torch_deltas = torch_gradients(net, x, labels)
    grads = net.backprop(x, labels)
    for l, (ours, theirs) in enumerate(zip(grads.deltas, torch_deltas)):
        assert ours.shape == (len(x), sizes[l + 1])
        for row, (d, t) in enumerate(zip(ours, theirs)):
            assert relative_error(d, t) <= 1e-6, f"delta of layer {l}, example {row}"


def test_bias_gradient_is_the_mean_of_the_deltas(data):
    net = float64_net([6, 5, 4, 3])
    x, labels = data(10, 6, 3)
    grads = net.backprop(x, labels)
    for gb, d in zip(grads.biases, grads.deltas):
        np.testing.assert_allclose(gb, d.mean(axis=0), rtol=1e-14)


def test_backprop_matches_the_per_example_reference(data):
    net = float64_net([7, 6, 4])
    x, labels = data(5, 7, 4)
    grads = net.backprop(x, labels)
    per_example = [ref.backprop_one(net.weights, net.biases, xi, li) for xi, li in zip(x, labels)]
    for l in range(2):
        np.testing.assert_allclose(grads.weights[l], np.mean([g[0][l] for g in per_example], axis=0),
                                   rtol=1e-12)
        np.testing.assert_allclose(grads.deltas[l], np.array([g[1][l] for g in per_example]), rtol=1e-12)


def test_forward_returns_every_layer(data):
    net = float64_net([5, 4, 3])
    x, _ = data(2, 5, 3)
    zs, activations = net.forward(x)
    assert [z.shape for z in zs] == [(2, 4), (2, 3)]
    assert [a.shape for a in activations] == [(2, 5), (2, 4), (2, 3)]
    np.testing.assert_array_equal(activations[-1], net.feedforward(x))
    np.testing.assert_allclose(activations[1], 1 / (1 + np.exp(-(x @ net.weights[0].T + net.biases[0]))))


# --- network2's initialisation ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_draws_biases_first_then_weights(dtype):
    sizes = [5, 4, 3]
    rng = np.random.default_rng(7)
    biases = [rng.standard_normal(n) for n in sizes[1:]]
    weights = [rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
               for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    net = Network(sizes, seed=7, dtype=dtype)
    for mine, theirs in zip(net.biases + net.weights, biases + weights):
        assert mine.dtype == dtype
        np.testing.assert_array_equal(mine, theirs.astype(dtype))


def test_init_statistics_are_network2s():
    wide = Network([500, 2000], seed=0, dtype=np.float64)
    w = wide.weights[0]
    assert abs(w.mean()) < 3e-4                                  # standard error 4.5e-5
    assert w.std() == pytest.approx(1 / np.sqrt(500), rel=0.01)   # N(0, 1/n_in)
    b = Network([1, 20000], seed=0, dtype=np.float64).biases[0]
    assert abs(b.mean()) < 0.03                                   # standard error 0.007
    assert b.std() == pytest.approx(1.0, rel=0.03)                # N(0, 1)


def test_seed_may_be_a_generator():
    a = Network([4, 3, 2], seed=np.random.default_rng(11))
    b = Network([4, 3, 2], seed=11)
    for x, y in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(x, y)


def test_different_seeds_give_different_networks():
    a, b = Network([4, 3, 2], seed=1), Network([4, 3, 2], seed=2)
    assert not any(np.array_equal(x, y) for x, y in zip(a.weights + a.biases, b.weights + b.biases))


def test_shapes_dtype_and_repr():
    net = Network([784, 30, 10], seed=1)
    assert [w.shape for w in net.weights] == [(30, 784), (10, 30)]
    assert [b.shape for b in net.biases] == [(30,), (10,)]
    assert net.dtype == np.float32 and net.num_layers == 3
    assert repr(net) == "Network([784, 30, 10], dtype=float32)"


def test_copy_is_independent():
    net = Network([4, 3, 2], seed=0)
    twin = net.copy()
    twin.weights[0][0, 0] += 1.0
    twin.biases[0][0] += 1.0
    assert twin.weights[0][0, 0] != net.weights[0][0, 0]
    assert twin.biases[0][0] != net.biases[0][0]
    assert twin.sizes == net.sizes and twin.dtype == net.dtype


# --- the update rule and the cost -------------------------------------------------------------
@pytest.mark.parametrize("lmbda", [0.0, 5.0])
@pytest.mark.parametrize("sizes", SHAPES, ids=str)
def test_update_mini_batch_matches_reference(sizes, lmbda, data):
    net = float64_net(sizes, seed=2)
    weights, biases = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    x, labels = data(10, sizes[0], sizes[-1], seed=4)
    net.update_mini_batch(x, labels, eta=0.5, lmbda=lmbda, n=100)
    ref.update_mini_batch(weights, biases, x, labels, 0.5, lmbda, 100)
    for mine, theirs in zip(net.weights + net.biases, weights + biases):
        assert relative_error(mine, theirs) <= 1e-12


def test_weight_decay_shrinks_weights_and_leaves_biases():
    net = float64_net([5, 4, 3])
    before = net.copy()
    zero = Gradients(weights=[np.zeros_like(w) for w in net.weights],
                     biases=[np.zeros_like(b) for b in net.biases], deltas=[])
    net.apply_gradients(zero, eta=0.5, lmbda=4.0, n=10)
    for w, w0 in zip(net.weights, before.weights):
        np.testing.assert_allclose(w, (1 - 0.5 * 4.0 / 10) * w0, rtol=1e-15)
    for b, b0 in zip(net.biases, before.biases):
        np.testing.assert_array_equal(b, b0)


def test_apply_gradients_is_network2s_rule(data):
    net = float64_net([6, 5, 3])
    before = net.copy()
    x, labels = data(8, 6, 3)
    grads = net.backprop(x, labels)
    eta, lmbda, n = 0.3, 2.0, 50
    net.apply_gradients(grads, eta, lmbda, n)
    for l in range(2):
        np.testing.assert_allclose(net.weights[l],
                                   (1 - eta * lmbda / n) * before.weights[l] - eta * grads.weights[l],
                                   rtol=1e-14)
        np.testing.assert_allclose(net.biases[l], before.biases[l] - eta * grads.biases[l], rtol=1e-14)


def test_frozen_layers_are_left_exactly_as_they_were(data):
    net = float64_net([6, 5, 4, 3])
    before = net.copy()
    x, labels = data(8, 6, 3)
    net.update_mini_batch(x, labels, eta=0.5, lmbda=2.0, n=20, frozen=(0, 2))
    for l in (0, 2):
        np.testing.assert_array_equal(net.weights[l], before.weights[l])
        np.testing.assert_array_equal(net.biases[l], before.biases[l])
    assert not np.array_equal(net.weights[1], before.weights[1])


def test_backprop_keeps_the_output_so_the_cost_needs_no_second_pass(data):
    net = float64_net([5, 4, 3])
    x, labels = data(6, 5, 3)
    grads = net.backprop(x, labels)
    np.testing.assert_array_equal(grads.output, net.feedforward(x))
    assert net.cost_of_output(grads.output, labels, lmbda=3.0, n=60) == net.cost(x, labels, lmbda=3.0, n=60)


def test_float32_network_stays_float32(data):
    net = Network([5, 4, 3], seed=0)
    x, labels = data(4, 5, 3)                       # float64 inputs
    net.update_mini_batch(x, labels, eta=0.5, lmbda=1.0, n=4)
    assert all(p.dtype == np.float32 for p in net.weights + net.biases)
    assert net.feedforward(x).dtype == np.float32


def test_cost_is_mean_cross_entropy(data):
    net = float64_net([5, 4, 3])
    x, labels = data(6, 5, 3)
    a = net.feedforward(x)
    y = np.eye(3)[labels]
    expected = np.mean(np.sum(-y * np.log(a) - (1 - y) * np.log(1 - a), axis=1))
    assert net.cost(x, labels) == pytest.approx(expected, rel=1e-14)


def test_cost_with_lmbda_adds_the_l2_term(data):
    net = float64_net([5, 4, 3])
    x, labels = data(6, 5, 3)
    squares = sum(float((w ** 2).sum()) for w in net.weights)
    plain = net.cost(x, labels)
    assert net.cost(x, labels, lmbda=3.0, n=60) == pytest.approx(plain + 3.0 / (2 * 60) * squares, rel=1e-14)
    assert net.cost(x, labels, lmbda=3.0) == pytest.approx(plain + 3.0 / (2 * 6) * squares, rel=1e-14)


def test_cost_of_a_saturated_correct_output_is_finite():
    net = float64_net([1, 2])
    net.weights[0][:] = [[1000.0], [-1000.0]]       # outputs exactly 1 and 0
    assert net.cost(np.ones((1, 1)), np.array([0])) == 0.0


def test_accuracy_and_predict(data):
    net = float64_net([5, 4, 3])
    x, _ = data(20, 5, 3)
    predicted = net.predict(x)
    np.testing.assert_array_equal(predicted, net.feedforward(x).argmax(axis=1))
    assert net.accuracy(x, predicted) == 1.0
    assert net.accuracy(x, (predicted + 1) % 3) == 0.0


# --- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes, error, message", [
    ([5, 0, 3], ValueError, r"at least 1 neuron, got 0"),
    ([5, -2, 3], ValueError, r"at least 1 neuron, got -2"),
    ([5, 2.5, 3], TypeError, r"layer width must be an integer, got 2.5"),
    ([5, True, 3], TypeError, r"layer width must be an integer, got True"),
    ("784,30,10", TypeError, r"sizes must be a list of layer widths"),
    (784, TypeError, r"sizes must be a list of layer widths"),
    ([5], ValueError, r"sizes needs at least an input and an output layer"),
    ([], ValueError, r"sizes needs at least an input and an output layer"),
])
def test_bad_sizes_are_refused(sizes, error, message):
    with pytest.raises(error, match=message):
        Network(sizes)


@pytest.mark.parametrize("dtype", [np.float16, np.int64, "complex128", "nonsense", None])
def test_bad_dtype_is_refused(dtype):
    with pytest.raises(TypeError, match=r"dtype must be np.float32 or np.float64"):
        Network([3, 2], dtype=dtype)


@pytest.mark.parametrize("x, error, message", [
    (np.zeros((2, 3)), ValueError, r"inputs have 3 columns but the first layer has 4 neurons"),
    (np.zeros(4), ValueError,
     r"inputs must be a 2-D batch of shape \(n, 4\); for one example use x\[None, :\]"),
    (np.zeros(5), ValueError, r"inputs must be a 2-D batch of shape \(n, 4\), got shape \(5,\)"),
    (np.zeros((2, 2, 4)), ValueError, r"inputs must be a 2-D batch of shape \(n, 4\), got shape \(2, 2, 4\)"),
    (np.zeros((0, 4)), ValueError, r"inputs are empty"),
    ([], ValueError, r"inputs must be a 2-D batch"),
    (np.zeros((2, 4), dtype=object), TypeError, r"inputs must be a numeric array, got dtype object"),
    (np.full((2, 4), "0.5"), TypeError, r"inputs must be a numeric array, got dtype <U3"),
    (np.array([[0.1, np.nan, 0.2, 0.3]]), ValueError, r"inputs contain NaN or infinity"),
    (np.array([[0.1, np.inf, 0.2, 0.3]]), ValueError, r"inputs contain NaN or infinity"),
    (np.array([[0.1, 1e300, 0.2, 0.3]]), ValueError, r"numbers too large for float32"),
    ([[0.1, 0.2, 0.3, 0.4], [0.5]], ValueError, r"inputs must be a 2-D batch of shape \(n, 4\)"),
])
@pytest.mark.parametrize("method", ["feedforward", "backprop"])
def test_bad_inputs_are_refused(method, x, error, message):
    net = Network([4, 3, 2])
    call = getattr(net, method)
    with pytest.raises(error, match=message):
        call(x) if method == "feedforward" else call(x, np.zeros(max(len(x), 1), dtype=int))


@pytest.mark.parametrize("labels, error, message", [
    (np.array([0, 1, 3]), ValueError,
     r"labels must lie in \[0, 2\] for a network with 3 outputs, got values from 0 to 3"),
    (np.array([0, -1, 2]), ValueError, r"labels must lie in \[0, 2\]"),
    (np.array([0.0, 1.0, 2.0]), TypeError, r"labels must be integers \(class indices\), got dtype float64"),
    (np.array([[0], [1], [2]]), ValueError,
     r"labels must be a 1-D array of class indices, got shape \(3, 1\)"),
    (np.array([0, 1]), ValueError, r"got 3 inputs but 2 labels"),
    (np.array([1]), ValueError, r"got 3 inputs but 1 labels"),      # would broadcast silently
    (np.array([0, 1, 2, 0]), ValueError, r"got 3 inputs but 4 labels"),
])
@pytest.mark.parametrize("method", ["backprop", "cost", "accuracy", "update_mini_batch"])
def test_bad_labels_are_refused(method, labels, error, message):
    net = Network([4, 3, 3])
    x = np.zeros((3, 4))
    args = (0.1, 0.0, 3) if method == "update_mini_batch" else ()
    with pytest.raises(error, match=message):
        getattr(net, method)(x, labels, *args)


@pytest.mark.parametrize("eta, lmbda, n, error, message", [
    (-0.1, 0.0, 10, ValueError, r"eta must be a finite non-negative number, got -0.1"),
    (np.nan, 0.0, 10, ValueError, r"eta must be a finite non-negative number, got nan"),
    (np.inf, 0.0, 10, ValueError, r"eta must be a finite non-negative number, got inf"),
    ("0.1", 0.0, 10, TypeError, r"eta must be a finite non-negative number, got '0.1'"),
    (None, 0.0, 10, TypeError, r"eta must be a finite non-negative number, got None"),
    (0.1, -1.0, 10, ValueError, r"lmbda must be a finite non-negative number, got -1.0"),
    (0.1, 1.0, 0, ValueError, r"n must be at least 1, got 0"),
    (0.1, 1.0, 10.0, TypeError, r"n must be a positive integer, got 10.0"),
])
def test_bad_rates_are_refused(eta, lmbda, n, error, message, data):
    net = Network([4, 3, 2])
    x, labels = data(3, 4, 2)
    with pytest.raises(error, match=message):
        net.update_mini_batch(x, labels, eta, lmbda, n)


def test_numpy_scalars_are_accepted_as_rates_and_counts(data):
    net = float64_net([4, 3, 2])
    x, labels = data(3, 4, 2)
    net.update_mini_batch(x, labels, np.float32(0.5), np.float64(1.0), np.int64(3))
    assert np.isfinite(net.weights[0]).all()


def test_sizes_may_be_a_numpy_array():
    assert Network(np.array([4, 3, 2])).sizes == [4, 3, 2]


# --- failing loudly (issue 11) -----------------------------------------------------------------
def test_a_diverged_network_has_a_nan_cost_not_zero(data):
    net = float64_net([4, 3, 2])
    x, labels = data(5, 4, 2)
    net.weights[0][0, 0] = np.nan
    assert np.isnan(net.cost(x, labels))
    assert np.isnan(net.cost_of_output(net.feedforward(x), labels))
    assert not net.is_finite()


@pytest.mark.parametrize("a", [[[1.5, 0.2]], [[0.5, -0.1]], [[np.inf, 0.5]]],
                         ids=["above 1", "below 0", "inf"])
def test_outputs_outside_0_1_are_refused_not_counted_as_zero(a):
    net = float64_net([3, 2])
    with pytest.raises(ValueError, match=r"a must be output activations, numbers in \[0, 1\]"):
        net.cost_of_output(np.array(a), np.array([0]))


def test_cost_of_output_checks_its_shape():
    net = float64_net([3, 2])
    with pytest.raises(ValueError, match=r"a has 3 columns but the network has 2 outputs"):
        net.cost_of_output(np.full((1, 3), 0.5), np.array([0]))
    with pytest.raises(ValueError, match=r"a must be a 2-D array, got shape \(2,\)"):
        net.cost_of_output(np.full(2, 0.5), np.array([0]))
    with pytest.raises(ValueError, match=r"z must have the shape of a"):
        net.cost_of_output(np.full((1, 2), 0.5), np.array([0]), z=np.zeros(2))


@pytest.mark.parametrize("z_wrong", [17.0, 20.0, 60.0, 200.0])
def test_float32_cross_entropy_of_a_saturated_wrong_output_is_the_float64_value(z_wrong):
    """One output rounds to exactly 1.0 in float32 on a wrong class from z of about 17: its cost
    must be softplus(z), as float64 computes it, not inf or 3e38 / n."""
    costs = {}
    for dtype in (np.float32, np.float64):
        net = Network([1, 2], seed=0, dtype=dtype)
        net.weights[0][:] = [[z_wrong], [0.0]]
        net.biases[0][:] = 0.0
        costs[dtype] = net.cost(np.ones((2, 1)), np.array([1, 1]))
    expected = np.logaddexp(0, z_wrong) + np.logaddexp(0, -0.0)
    assert costs[np.float64] == pytest.approx(expected, rel=1e-8)     # 1 - a loses digits in float64 too
    assert costs[np.float32] == pytest.approx(expected, rel=1e-6)


def test_backprop_gives_the_output_z_so_a_saturated_cost_is_exact(data):
    net = Network([1, 2], seed=0)
    net.weights[0][:] = [[-120.0], [40.0]]          # float32: output 0 rounds to 0 on its own class
    grads = net.backprop(np.ones((1, 1)), np.array([0]))
    exact = net.cost_of_output(grads.output, np.array([0]), z=grads.output_z)
    assert exact == pytest.approx(net.cost(np.ones((1, 1)), np.array([0])), rel=1e-6)
    assert exact == pytest.approx(120 - net.biases[0][0] + 40 + net.biases[0][1], rel=1e-5)
    bound = net.cost_of_output(grads.output, np.array([0]))   # without z: a finite lower bound
    assert np.isfinite(bound) and 100 < bound <= exact


def test_cost_of_valid_outputs_is_unchanged(data):
    """The float32 cost of a network whose outputs stay inside (0, 1) is network2's formula, to
    the bit (0 ln 0 counted as 0)."""
    net = Network([5, 4, 3], seed=2)
    x, labels = data(40, 5, 3)
    a = net.feedforward(x)
    y = np.eye(3, dtype=np.float32)[labels]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = float(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)).sum(axis=1).mean())
    assert net.cost(x, labels) == expected


@pytest.mark.parametrize("lmbda, error, message", [
    (-1.0, ValueError, r"lmbda must be a finite non-negative number, got -1.0"),
    (np.nan, ValueError, r"lmbda must be a finite non-negative number, got nan"),
    ("1", TypeError, r"lmbda must be a finite non-negative number, got '1'"),
])
def test_cost_refuses_a_bad_lmbda(lmbda, error, message, data):
    net = float64_net([4, 3, 2])
    x, labels = data(3, 4, 2)
    with pytest.raises(error, match=message):
        net.cost(x, labels, lmbda=lmbda)


@pytest.mark.parametrize("method", ["update_mini_batch", "apply_gradients"])
def test_a_decay_factor_that_flips_the_weights_is_refused(method, data):
    net = float64_net([4, 3, 2])
    x, labels = data(3, 4, 2)
    first = (x, labels) if method == "update_mini_batch" else (net.backprop(x, labels),)
    with pytest.raises(ValueError, match=r"eta \* lmbda / n = 100 must be below 1"):
        getattr(net, method)(*first, 10.0, 10.0, 1)


@pytest.mark.parametrize("method", ["update_mini_batch", "apply_gradients"])
def test_frozen_counts_from_the_output_with_negative_indices_and_refuses_missing_layers(method, data):
    net = float64_net([4, 3, 2])
    x, labels = data(3, 4, 2)
    first = (lambda: (x, labels)) if method == "update_mini_batch" else (lambda: (net.backprop(x, labels),))
    before = net.copy()
    getattr(net, method)(*first(), 0.5, 0.0, 3, frozen=[-1])
    np.testing.assert_array_equal(net.weights[1], before.weights[1])
    assert not np.array_equal(net.weights[0], before.weights[0])
    for frozen, error, message in (([5], ValueError, "frozen layer 5 does not exist"),
                                   ([-3], ValueError, "frozen layer -3 does not exist"),
                                   ([0.0], TypeError, "frozen must hold integer layer indices"),
                                   (1, TypeError, "frozen must be a list of layer indices")):
        with pytest.raises(error, match=message):
            getattr(net, method)(*first(), 0.5, 0.0, 3, frozen=frozen)


def test_apply_gradients_refuses_gradients_of_another_network(data):
    net, other = float64_net([4, 3, 2]), float64_net([4, 5, 2])
    x, labels = data(3, 4, 2)
    grads = other.backprop(x, labels)
    with pytest.raises(ValueError,
                       match=r"grads.weights\[0\] has shape \(5, 4\), but layer 0's weights have shape "
                             r"\(3, 4\)"):
        net.apply_gradients(grads, 0.1, 0.0, 3)
    deeper = float64_net([4, 3, 3, 2]).backprop(x, labels)
    with pytest.raises(ValueError, match=r"grads.weights must hold one array per layer \(2\)"):
        net.apply_gradients(deeper, 0.1, 0.0, 3)
    with pytest.raises(TypeError,
                       match=r"grads must be the Gradients that Network.backprop returns, got list"):
        net.apply_gradients([np.zeros((3, 4))], 0.1, 0.0, 3)


def test_apply_gradients_refuses_nan_gradients_and_leaves_the_network_alone(data):
    net = float64_net([4, 3, 2])
    x, labels = data(3, 4, 2)
    grads = net.backprop(x, labels)
    grads.biases[1][0] = np.nan
    before = net.copy()
    with pytest.raises(ValueError,
                       match=r"grads.biases\[1\] contains NaN or infinity: the network has diverged"):
        net.apply_gradients(grads, 0.1, 0.0, 3)
    for p, q in zip(net.weights + net.biases, before.weights + before.biases):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("seed, error, message", [
    (-1, ValueError, r"seed must be an integer from 0 to 2\*\*64 - 1, a numpy Generator or None, got -1"),
    (True, TypeError, r"seed must be an integer from 0 to 2\*\*64 - 1, a numpy Generator or None, got True"),
    (1.0, TypeError, r"seed must be an integer .*, got 1.0"),
    ("0", TypeError, r"seed must be an integer .*, got '0'"),
    (2 ** 64, ValueError, r"seed must be an integer from 0 to 2\*\*64 - 1"),
])
def test_bad_seeds_are_refused_naming_seed(seed, error, message):
    with pytest.raises(error, match=message):
        Network([3, 2], seed=seed)


def test_numpy_integer_seeds_and_none_are_accepted():
    np.testing.assert_array_equal(Network([3, 2], seed=np.int64(4)).weights[0],
                                  Network([3, 2], seed=4).weights[0])
    assert Network([3, 2], seed=None).is_finite()


def test_sigmoid_refuses_what_is_not_a_number():
    from nblib.networks import sigmoid, sigmoid_prime
    for f in (sigmoid, sigmoid_prime):
        with pytest.raises(TypeError, match=r"z must be a real number or an array of real numbers, got 'a'"):
            f("a")
    assert sigmoid(0.0) == 0.5 and sigmoid_prime(np.zeros(2)).tolist() == [0.25, 0.25]


class _SpuriousFlag(np.ndarray):
    """Weights whose products raise the floating-point "invalid" flag on finite numbers, as some
    BLAS kernels do at random (numpy issue #24067): numpy turns it into a RuntimeWarning under
    the error state in force, unless that state ignores "invalid"."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [np.asarray(i) if isinstance(i, _SpuriousFlag) else i for i in inputs]
        result = getattr(ufunc, method)(*plain, **kwargs)
        if ufunc is np.matmul:
            np.subtract(np.float32(np.inf), np.float32(np.inf))   # sets "invalid", result discarded
        return result


def test_a_spurious_invalid_flag_from_blas_is_not_an_error_but_real_nans_are_found(data):
    net = Network([7, 5, 3], seed=1)
    x, labels = data(1, 7, 3, dtype=np.float32)
    net.weights = [w.view(_SpuriousFlag) for w in net.weights]
    with np.errstate(invalid="raise"):
        a = net.feedforward(x)
        net.backprop(x, labels)
        assert np.isfinite(a).all() and np.isfinite(net.cost(x, labels))
    net.weights[1][0, 0] = np.nan
    assert np.isnan(net.cost(x, labels)) and not net.is_finite()
