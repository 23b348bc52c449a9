"""Tests for nblib.metrics: Nielsen's speed of learning ||dC/db^l|| per layer."""

from __future__ import annotations

import numpy as np
import pytest

from nblib.metrics import learning_speeds, neuron_speeds, speeds_at_initialisation, speeds_of
from nblib.networks import Network

SIZES = [6, 5, 4, 4, 3]


@pytest.fixture
def batch(data):
    return data(12, 6, 3, seed=8, zeros=0.3)


def test_learning_speed_is_the_norm_of_the_mean_delta(batch):
    net = Network(SIZES, seed=0, dtype=np.float64)
    grads = net.backprop(*batch)
    by_deltas = [np.linalg.norm(d.mean(axis=0)) for d in grads.deltas]
    by_biases = [np.linalg.norm(g) for g in grads.biases]
    speeds = learning_speeds(net, *batch)
    assert speeds.shape == (3,)                                  # hidden layers only
    np.testing.assert_allclose(speeds, by_deltas[:-1], rtol=1e-12)
    np.testing.assert_allclose(speeds, by_biases[:-1], rtol=1e-12)


def test_speeds_of_reads_the_same_speeds_off_computed_gradients_in_float64(batch):
    net = Network(SIZES, seed=0)                                 # float32
    grads = net.backprop(*batch)
    speeds = speeds_of(grads, include_output=True)
    assert speeds.dtype == np.float64
    np.testing.assert_array_equal(speeds, learning_speeds(net, *batch, include_output=True))
    np.testing.assert_array_equal(speeds_of(grads), speeds[:-1])


def test_include_output_adds_the_output_layer_last(batch):
    net = Network(SIZES, seed=0, dtype=np.float64)
    with_output = learning_speeds(net, *batch, include_output=True)
    assert with_output.shape == (4,)
    np.testing.assert_array_equal(with_output[:-1], learning_speeds(net, *batch))
    assert with_output[-1] == pytest.approx(np.linalg.norm(net.backprop(*batch).biases[-1]), rel=1e-12)


def test_a_network_without_hidden_layers_has_no_hidden_speeds(batch):
    net = Network([6, 3], seed=0, dtype=np.float64)
    assert learning_speeds(net, *batch).shape == (0,)
    assert learning_speeds(net, *batch, include_output=True).shape == (1,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_neuron_speeds_are_the_bias_gradients_in_float64(dtype, batch):
    net = Network(SIZES, seed=0, dtype=dtype)
    speeds = neuron_speeds(net, *batch)
    assert [s.shape for s in speeds] == [(5,), (4,), (4,), (3,)]
    assert all(s.dtype == np.float64 for s in speeds)
    for s, g in zip(speeds, net.backprop(*batch).biases):
        np.testing.assert_array_equal(s, g.astype(np.float64))


def test_speeds_at_initialisation_has_one_row_per_seed(batch):
    table = speeds_at_initialisation(SIZES, *batch, seeds=range(5))
    assert table.shape == (5, 3)
    for seed, row in zip(range(5), table):
        np.testing.assert_array_equal(row,
                                      learning_speeds(Network(SIZES, seed=seed, dtype=np.float64), *batch))
    assert len({tuple(row) for row in table}) == 5              # every seed a different network


def test_speeds_at_initialisation_accepts_a_list_of_seeds_and_a_dtype(batch):
    table = speeds_at_initialisation(SIZES, *batch, seeds=[3, 1], dtype=np.float32)
    assert table.shape == (2, 3)
    np.testing.assert_allclose(table[1], learning_speeds(Network(SIZES, seed=1, dtype=np.float64), *batch),
                               rtol=1e-4)


@pytest.mark.parametrize("seeds", [range(0), []])
def test_speeds_at_initialisation_refuses_no_seeds(seeds, batch):
    with pytest.raises(ValueError, match=r"seeds is empty: give at least one seed"):
        speeds_at_initialisation(SIZES, *batch, seeds=seeds)


def test_speeds_refuse_bad_data(batch):
    net = Network(SIZES, seed=0)
    x, labels = batch
    with pytest.raises(ValueError, match=r"got 12 inputs but 11 labels"):
        learning_speeds(net, x, labels[:-1])
    with pytest.raises(ValueError, match=r"inputs have 5 columns but the first layer has 6 neurons"):
        learning_speeds(net, x[:, :5], labels)


@pytest.mark.parametrize("seeds, error, message", [
    (5, TypeError, r"seeds must be a list of seeds such as range\(10\) or \[0, 1, 2\], got 5"),
    ("012", TypeError, r"seeds must be a list of seeds"),
    ([0, -1], ValueError, r"every entry of seeds must be an integer from 0 to 2\*\*64 - 1, got -1"),
    ([0, True], TypeError, r"every entry of seeds must be an integer from 0 to 2\*\*64 - 1, got True"),
])
def test_speeds_at_initialisation_refuses_bad_seeds(seeds, error, message, batch):
    with pytest.raises(error, match=message):
        speeds_at_initialisation(SIZES, *batch, seeds=seeds)


@pytest.mark.parametrize("function", [neuron_speeds, learning_speeds])
def test_measurements_of_something_that_is_not_a_network_are_refused(function, batch):
    with pytest.raises(TypeError, match=r"net must be an nblib.networks.Network, got NoneType"):
        function(None, *batch)


def test_speeds_of_refuses_what_backprop_did_not_return():
    with pytest.raises(TypeError,
                       match=r"grads must be the Gradients that Network.backprop returns, got list"):
        speeds_of([np.zeros(3)])
    with pytest.raises(TypeError, match=r"include_output must be True or False, got 1"):
        speeds_of(Network(SIZES).backprop(np.zeros((1, SIZES[0])), np.zeros(1, int)), include_output=1)
