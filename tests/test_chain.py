"""Tests for nblib.chain: the chain's gradient products against torch autograd and finite
differences, the exploding chain, the logistic map's derivative, and the matrix form against
backpropagation."""

from __future__ import annotations

import numpy as np
import pytest

from nblib import chain
from nblib.networks import Network, sigmoid, sigmoid_prime


def chain_cost(weights, biases, x, y, scale=1.0):
    """C = (a_L - y)^2 / 2 for every chain."""
    _, activations = chain.chain_forward(weights, biases, x, scale=scale)
    return 0.5 * (activations[..., -1] - y) ** 2


# --- chains of single neurons ----------------------------------------------------------------------
def test_forward_follows_the_definition():
    w, b = np.array([2.0, -1.0, 0.5]), np.array([0.1, 0.2, -0.3])
    zs, acts = chain.chain_forward(w, b, 0.7)
    z1 = 2.0 * 0.7 + 0.1
    z2 = -1.0 * sigmoid(z1) + 0.2
    z3 = 0.5 * sigmoid(z2) - 0.3
    np.testing.assert_allclose(zs, [z1, z2, z3], rtol=1e-15)
    np.testing.assert_allclose(acts, sigmoid(np.array([z1, z2, z3])), rtol=1e-15)


def test_scaled_activation_is_the_same_chain_with_scaled_weights():
    # c sigma(z) with weights w gives the weighted inputs of sigma(z) with weights c w (after the first)
    w, b = chain.random_chains(50, 6, seed=1)
    c = 3.0
    zs_scaled, _ = chain.chain_forward(w, b, 0.4, scale=c)
    w_plain = w.copy()
    w_plain[:, 1:] *= c
    zs_plain, _ = chain.chain_forward(w_plain, b, 0.4)
    np.testing.assert_allclose(zs_scaled, zs_plain, rtol=1e-13)


@pytest.mark.parametrize("depth", [1, 2, 4, 9])
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_bias_gradients_match_torch_autograd(depth, scale):
    torch = pytest.importorskip("torch")
    w, b = chain.random_chains(200, depth, seed=depth)
    rng = np.random.default_rng(depth)
    x, y = rng.random(200), rng.random(200)
    _, acts = chain.chain_forward(w, b, x, scale=scale)
    ours = chain.bias_gradients(w, b, x, dC_da=acts[:, -1] - y, scale=scale)
    tb = torch.tensor(b, requires_grad=True)
    a = torch.tensor(x)
    for j in range(depth):
        a = scale * torch.sigmoid(torch.tensor(w[:, j]) * a + tb[:, j])
    (0.5 * (a - torch.tensor(y)) ** 2).sum().backward()
    np.testing.assert_allclose(ours, tb.grad.numpy(), rtol=1e-10, atol=1e-300)


def test_bias_gradients_match_finite_differences():
    w, b = chain.random_chains(1, 5, seed=7)
    x, y, h = 0.3, 0.9, 1e-5
    _, acts = chain.chain_forward(w, b, x)
    ours = chain.bias_gradients(w, b, x, dC_da=acts[:, -1] - y)[0]
    for j in range(5):
        up, down = b.copy(), b.copy()
        up[0, j] += h
        down[0, j] -= h
        fd = (chain_cost(w, up, x, y) - chain_cost(w, down, x, y))[0] / (2 * h)
        assert ours[j] == pytest.approx(fd, rel=1e-4, abs=1e-12)


def test_factors_multiply_to_the_first_gradient():
    w, b = chain.random_chains(30, 7, seed=2)
    factors = chain.chain_factors(w, b, 0.5)
    np.testing.assert_allclose(np.prod(factors, axis=1), chain.bias_gradients(w, b, 0.5)[:, 0], rtol=1e-12)


def test_log_profile_equals_log_of_gradients_and_survives_long_chains():
    w, b = chain.random_chains(20, 6, seed=3)
    np.testing.assert_allclose(chain.log10_gradient_profile(w, b, 0.2),
                               np.log10(np.abs(chain.bias_gradients(w, b, 0.2))), atol=1e-12)
    w, b = chain.random_chains(5, 2000, seed=4)          # the product itself underflows to 0
    profile = chain.log10_gradient_profile(w, b, 0.5)
    assert np.all(np.isfinite(profile)) and profile[:, 0].max() < -300


def test_exploding_chain_has_every_factor_a_quarter_of_the_weight():
    w, b = chain.exploding_chain(4, weight=100.0, x=0.5)
    zs, _ = chain.chain_forward(w, b, 0.5)
    np.testing.assert_allclose(zs, 0.0, atol=1e-12)
    np.testing.assert_allclose(chain.chain_factors(w, b, 0.5), [0.25, 25, 25, 25])
    g = chain.bias_gradients(w, b, 0.5)
    assert g[0] / g[-1] == pytest.approx(25 ** 3)


def test_random_chains_are_reproducible_and_scaled():
    w1, b1 = chain.random_chains(1000, 3, seed=5, weight_std=2.0, bias_std=0.5)
    w2, b2 = chain.random_chains(1000, 3, seed=5, weight_std=2.0, bias_std=0.5)
    assert np.array_equal(w1, w2) and np.array_equal(b1, b2)
    assert w1.std() == pytest.approx(2.0, rel=0.05) and b1.std() == pytest.approx(0.5, rel=0.05)


# --- the logistic map -------------------------------------------------------------------------------
def test_logistic_map_orbit_and_derivative():
    x0 = np.array([0.1, 0.3, 0.5, 0.9])
    orbit, derivative = chain.logistic_map(x0, r=3.5, steps=5)
    f = lambda x: 3.5 * x * (1 - x)  # noqa: E731
    expected = x0.copy()
    for n in range(1, 6):
        expected = f(expected)
        np.testing.assert_allclose(orbit[n], expected, rtol=1e-14)
    h = 1e-7
    up, _ = chain.logistic_map(x0 + h, r=3.5, steps=5)
    down, _ = chain.logistic_map(x0 - h, r=3.5, steps=5)
    np.testing.assert_allclose(derivative[5], (up[5] - down[5]) / (2 * h), rtol=1e-5, atol=1e-8)
    assert derivative[1][2] == 0.0            # f'(1/2) = 0
    assert np.all(derivative[0] == 1.0)


# --- the matrix form ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [[6, 4, 3], [8, 5, 5, 5, 4]])
def test_deltas_by_products_equal_backprop(sizes):
    net = Network(sizes, seed=1, dtype=np.float64)
    x = np.random.default_rng(0).random(sizes[0])
    ours = chain.deltas_by_products(net, x, 1)
    theirs = net.backprop(x[None, :], np.array([1])).deltas
    assert len(ours) == len(theirs)
    for d, t in zip(ours, theirs):
        np.testing.assert_allclose(d, t[0], rtol=1e-12, atol=1e-15)


def test_delta_factors_shapes_and_meaning():
    net = Network([6, 4, 3, 2], seed=2, dtype=np.float64)
    x = np.random.default_rng(1).random(6)
    factors, output_prime = chain.delta_factors(net, x)
    assert [J.shape for J in factors] == [(4, 3), (3, 2)]
    assert output_prime.shape == (2,)
    deltas = net.backprop(x[None, :], np.array([0])).deltas
    np.testing.assert_allclose(factors[0] @ deltas[1][0], deltas[0][0], rtol=1e-12)


def test_norms_of_known_matrices():
    m = np.diag([3.0, 4.0])
    assert chain.spectral_norm(m) == pytest.approx(4.0)
    assert chain.rms_gain(m) == pytest.approx(np.sqrt((9 + 16) / 2))
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 5)))
    assert chain.spectral_norm(q) == pytest.approx(1.0) and chain.rms_gain(q) == pytest.approx(1.0)
    # a random direction is stretched by the RMS gain, on average (in the mean-square sense)
    J = np.random.default_rng(1).standard_normal((6, 4))
    v = np.random.default_rng(2).standard_normal((4, 200_000))
    v /= np.linalg.norm(v, axis=0)
    assert np.sqrt(np.mean(np.linalg.norm(J @ v, axis=0) ** 2)) == pytest.approx(chain.rms_gain(J), rel=0.01)


# --- the checks on what comes in -------------------------------------------------------------------------
@pytest.mark.parametrize("call, error, message", [
    (lambda: chain.random_chains(0, 3), ValueError, "n must be at least 1"),
    (lambda: chain.random_chains(2.5, 3), TypeError, "n must be a positive integer"),
    (lambda: chain.random_chains(2, True), TypeError, "depth must be a positive integer"),
    (lambda: chain.random_chains(2, 3, weight_std=-1), ValueError,
     "weight_std must be a finite non-negative number"),
    (lambda: chain.random_chains(2, 3, bias_std="1"), TypeError,
     "bias_std must be a finite non-negative number"),
    (lambda: chain.chain_forward([1.0, 2.0], [1.0], 0.5), ValueError, "same shape"),
    (lambda: chain.chain_forward(np.zeros((2, 0)), np.zeros((2, 0)), 0.5), ValueError, "depth >= 1"),
    (lambda: chain.chain_forward([1.0, np.nan], [0.0, 0.0], 0.5), ValueError, "weights contains NaN"),
    (lambda: chain.chain_forward(["a"], [0.0], 0.5), TypeError, "weights must be real numbers"),
    (lambda: chain.chain_forward([1.0], [0.0], 0.5, scale=0), ValueError,
     "scale must be a finite positive number"),
    (lambda: chain.chain_forward(np.ones((3, 2)), np.ones((3, 2)), np.ones(4)), ValueError,
     "x must be a number or broadcast"),
    (lambda: chain.bias_gradients([1.0], [0.0], 0.5, dC_da=np.inf), ValueError, "dC_da contains NaN"),
    (lambda: chain.exploding_chain(3, weight=np.inf), ValueError, "weight must be a finite real number"),
    (lambda: chain.logistic_map(1.5), ValueError, "x must lie in"),
    (lambda: chain.logistic_map(0.5, r=5), ValueError, "r must lie in"),
    (lambda: chain.logistic_map(0.5, steps=-1), ValueError, "steps must be at least 0"),
    (lambda: chain.logistic_map(0.5, steps=1.0), TypeError, "steps must be a non-negative integer"),
    (lambda: chain.delta_factors("net", np.zeros(3)), TypeError, "net must be an nblib.networks.Network"),
    (lambda: chain.delta_factors(Network([3, 2]), np.zeros(3)), ValueError, "at least one hidden layer"),
    (lambda: chain.delta_factors(Network([3, 2, 2]), np.zeros((2, 3))), ValueError, "x must be one example"),
    (lambda: chain.deltas_by_products(Network([3, 2, 2]), np.zeros(3), 2), ValueError, "label must lie in"),
    (lambda: chain.deltas_by_products(Network([3, 2, 2]), np.zeros(3), 1.0), TypeError,
     "label must be an integer"),
    (lambda: chain.spectral_norm(np.zeros(3)), ValueError, "non-empty 2-D array"),
    (lambda: chain.rms_gain([[np.nan]]), ValueError, "NaN or infinity"),
    (lambda: chain.spectral_norm([["a"]]), TypeError, "matrix must be real numbers"),
    # issue 11: seeds, sizes that cannot be held in memory, and shapes that would broadcast
    (lambda: chain.random_chains(2, 3, seed=-1), ValueError,
     r"seed must be an integer from 0 to 2\*\*64 - 1"),
    (lambda: chain.random_chains(2, 3, seed=True), TypeError,
     r"seed must be an integer from 0 to 2\*\*64 - 1"),
    (lambda: chain.random_chains(10 ** 6, 10 ** 6), ValueError,
     r"the weights and biases, 2 x n x depth would be 2,000,000,000,000 numbers, more than the 100,000,000"),
    (lambda: chain.logistic_map(0.5, steps=10 ** 9), ValueError,
     r"the orbit and its derivative, 2 x \(steps \+ 1\) x x.size would be 2,000,000,002 numbers"),
    (lambda: chain.logistic_map(np.full(10 ** 4, 0.5), steps=10 ** 4), ValueError, r"ask for fewer"),
    (lambda: chain.exploding_chain(10 ** 12), ValueError, r"the weights and biases, 2 x depth would be"),
    (lambda: chain.bias_gradients(np.ones((3, 2)), np.ones((3, 2)), 0.5, dC_da=np.ones(4)), ValueError,
     r"dC_da must be a number or broadcast to the chains' shape \(3,\)"),
])
def test_bad_arguments_are_refused_clearly(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_random_chains_accept_a_generator_and_numpy_integer_seeds():
    a = chain.random_chains(3, 2, seed=np.int64(5))
    b = chain.random_chains(3, 2, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])


def test_log10_factors_are_the_slopes_and_the_weighted_slopes():
    weights, biases = chain.random_chains(50, 6, seed=3)
    x = np.linspace(0.0, 1.0, 50)
    zs, _ = chain.chain_forward(weights, biases, x, scale=2.0)
    own, factors = chain.log10_factors(weights, biases, x, scale=2.0)
    np.testing.assert_allclose(10 ** own, 2.0 * sigmoid_prime(zs), rtol=1e-12)
    np.testing.assert_allclose(10 ** factors, np.abs(weights) * 2.0 * sigmoid_prime(zs), rtol=1e-12)


# --- the layer Jacobians of Glorot and Bengio ---------------------------------------------------------
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_layer_jacobians_match_autograd(activation):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    sizes = [5, 4, 6, 3]
    weights = [rng.standard_normal((n_out, n_in)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    biases = [rng.standard_normal(n_out) for n_out in sizes[1:]]
    x = rng.standard_normal((7, 5))
    jacobians = chain.layer_jacobians(weights, biases, x, activation=activation)
    assert [j.shape for j in jacobians] == [(7, 6, 4), (7, 3, 6)]
    f = torch.sigmoid if activation == "sigmoid" else torch.tanh
    for i in range(len(x)):
        h = f(torch.tensor(weights[0]) @ torch.tensor(x[i]) + torch.tensor(biases[0]))
        for l in (1, 2):
            layer = lambda v, l=l: f(torch.tensor(weights[l]) @ v + torch.tensor(biases[l]))  # noqa: E731
            expected = torch.autograd.functional.jacobian(layer, h)
            np.testing.assert_allclose(jacobians[l - 1][i], expected.numpy(), rtol=1e-12, atol=1e-14)
            h = layer(h)


def test_layer_jacobians_of_a_network_at_zero_input_are_the_slope_times_the_weights():
    # with zero biases and zero input every tanh unit sits at z = 0, where tanh' = 1: J = W
    w = [np.zeros((3, 2)), np.arange(9.0).reshape(3, 3) / 10]
    j = chain.layer_jacobians(w, [np.zeros(3), np.zeros(3)], np.zeros((1, 2)), activation="tanh")
    np.testing.assert_allclose(j[0][0], w[1])
    j = chain.layer_jacobians(w, [np.zeros(3), np.zeros(3)], np.zeros((1, 2)), activation="sigmoid")
    # sigmoid(0) = 1/2 feeds the second layer, whose z = W (1/2, 1/2, 1/2): slope sigma'(z) row by row
    z = w[1] @ np.full(3, 0.5)
    np.testing.assert_allclose(j[0][0], sigmoid_prime(z)[:, None] * w[1])


@pytest.mark.parametrize("call, error, message", [
    (lambda: chain.layer_jacobians([np.eye(2)], [np.zeros(2)], np.zeros((1, 2))), TypeError,
     r"weights and biases must be lists with one array per layer \(at least two layers\)"),
    (lambda: chain.layer_jacobians([np.eye(2), np.ones((3, 3))], [np.zeros(2), np.zeros(3)],
                                   np.zeros((1, 2))),
     ValueError, r"layer 1: weights of shape \(3, 3\) and biases of shape \(3,\) do not make a network"),
    (lambda: chain.layer_jacobians([np.eye(2), np.eye(2)], [np.zeros(2), np.zeros(2)], np.zeros((1, 3))),
     ValueError, r"x must be a batch of shape \(m, 2\), got shape \(1, 3\)"),
    (lambda: chain.layer_jacobians([np.eye(2), np.eye(2)], [np.zeros(2), np.zeros(2)], np.zeros((1, 2)),
                                   activation="relu"), ValueError,
     r"activation must be one of 'sigmoid', 'tanh'"),
    (lambda: chain.layer_jacobians([np.eye(2), np.eye(2) * np.nan], [np.zeros(2), np.zeros(2)],
                                   np.zeros((1, 2))),
     ValueError, r"weights\[1\] contains NaN or infinity"),
])
def test_layer_jacobians_refuse_what_is_not_a_network(call, error, message):
    with pytest.raises(error, match=message):
        call()
