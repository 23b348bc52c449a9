"""A plain, per-example implementation of network2's maths, kept as the reference that
nblib's vectorised and compiled code is checked against (and timed against in
benchmarks/train_speed.py).

Deliberately simple: column vectors, one example at a time, as in Nielsen's own code.
Weights and biases use nblib's shapes (w: (n_out, n_in), b: (n_out,)).
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def backprop_one(weights, biases, x, label):
    """Gradients of the cross-entropy cost of one example (x: (n_in,), label: int)."""
    activation = x.reshape(-1, 1)
    activations, zs = [activation], []
    for w, b in zip(weights, biases):
        z = w @ activation + b.reshape(-1, 1)
        zs.append(z)
        activation = sigmoid(z)
        activations.append(activation)
    y = np.zeros_like(activation)
    y[label] = 1.0
    delta = activation - y
    grad_b = [None] * len(weights)
    grad_w = [None] * len(weights)
    grad_b[-1], grad_w[-1] = delta, delta @ activations[-2].T
    for l in range(2, len(weights) + 1):
        sp = sigmoid(zs[-l]) * (1 - sigmoid(zs[-l]))
        delta = (weights[-l + 1].T @ delta) * sp
        grad_b[-l], grad_w[-l] = delta, delta @ activations[-l - 1].T
    return [g for g in grad_w], [g.ravel() for g in grad_b]


def update_mini_batch(weights, biases, xs, labels, eta, lmbda, n):
    """network2's update, summing per-example gradients in a Python loop (in place)."""
    sum_w = [np.zeros_like(w) for w in weights]
    sum_b = [np.zeros_like(b) for b in biases]
    for x, label in zip(xs, labels):
        gw, gb = backprop_one(weights, biases, x, label)
        for l in range(len(weights)):
            sum_w[l] += gw[l]
            sum_b[l] += gb[l]
    m = len(xs)
    for l in range(len(weights)):
        weights[l][...] = (1 - eta * lmbda / n) * weights[l] - (eta / m) * sum_w[l]
        biases[l][...] = biases[l] - (eta / m) * sum_b[l]


def sgd_epoch(weights, biases, x, labels, order, mini_batch_size, eta, lmbda):
    """One epoch over the examples in `order`, mini-batch by mini-batch."""
    for start in range(0, len(order), mini_batch_size):
        batch = order[start:start + mini_batch_size]
        update_mini_batch(weights, biases, x[batch], labels[batch], eta, lmbda, len(x))
