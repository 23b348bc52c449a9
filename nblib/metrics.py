"""Measurements of a network: how fast each layer learns (Nielsen, chapter 5).

Nielsen measures the *speed of learning* of a layer l by the length of the vector of bias
gradients, ||dC/db^l||, where C is the cost averaged over a set of training inputs. The bias
gradient of a neuron is its error delta averaged over those inputs, so the speed is also
||mean_x delta^l_x||.
"""

from __future__ import annotations

import numpy as np

from . import _blas, checks
from .networks import Gradients, Network, check_network

Array = np.ndarray


def neuron_speeds(net: Network, x: Array, labels: Array) -> list[Array]:
    """dC/db_j for every neuron j of every layer (hidden layers first, the output layer last),
    with C the cross-entropy averaged over the inputs ``x``."""
    return [g.astype(np.float64) for g in check_network(net).backprop(x, labels).biases]


def learning_speeds(net: Network, x: Array, labels: Array, *, include_output: bool = False) -> Array:
    """Nielsen's speed of learning ||dC/db^l|| of each hidden layer (and of the output layer
    too if ``include_output``), as a 1-D array ordered from the input side."""
    return speeds_of(check_network(net).backprop(x, labels), include_output=include_output)


def speeds_of(grads: Gradients, *, include_output: bool = False) -> Array:
    """The learning speeds ||dC/db^l|| read off gradients already computed by ``Network.backprop``."""
    checks.instance(grads, "grads", Gradients, "the Gradients that Network.backprop returns")
    include_output = checks.boolean(include_output, "include_output")
    speeds = np.array([np.linalg.norm(g.astype(np.float64)) for g in grads.biases])
    return speeds if include_output else speeds[:-1]


def speeds_at_initialisation(sizes: list[int], x: Array, labels: Array, seeds: range | list[int],
                             dtype: type = np.float64) -> Array:
    """Learning speeds of freshly initialised networks, one row per seed: shape (seeds, hidden layers).
    (numpy's BLAS is held to one thread meanwhile: see ``nblib.training.blas_threads``.)"""
    seeds = checks.seeds(seeds)
    with _blas.limited(1):         # many small products: a second BLAS thread would only wait
        return np.array([learning_speeds(Network(sizes, seed=s, dtype=dtype), x, labels) for s in seeds])
