"""Initialisation theory for chapter 4's testbed: the activation functions, the schemes that draw
the first weights, the variance each gives a weight, and what the formulas predict for the
second moments of the activations and gradients of a freshly initialised network.

The schemes, and the paper each comes from: "normal" is N(0, 1), the naive choice; "xavier" is
Glorot and Bengio's (2010) "normalized initialization" (chapter 2's `stacked` uses the same name,
beside their "standard" one); "he" is He et al.'s (2015) N(0, 2 / fan_in) for rectifiers; and
"orthogonal" is Saxe, McClelland and Ganguli's (2014) random orthogonal matrices, with a gain."""

from __future__ import annotations

from ._optional import require

require("torch", __name__)   # first: without torch, a message that says what to install

import math

import numpy as np
import torch
from torch import nn

from . import checks
from .networks import sigmoid, sigmoid_prime

Array = np.ndarray

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
INITS = ("normal", "xavier", "he", "orthogonal")
LEAKY_SLOPE = 0.01
MAX_DEPTH = 10_000         # predicted_moments: far deeper than any network the chapter trains


def activation_module(name: str) -> nn.Module:
    """A fresh activation module: 'sigmoid', 'tanh', 'relu' or 'leaky_relu' (slope 0.01)."""
    modules = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
               "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE)}
    return modules[checks.choice(name, "activation", ACTIVATIONS)]()


def initialise(model: nn.Module, scheme: str, activation: str = "relu") -> nn.Module:
    """Draw every ``nn.Linear`` weight of ``model`` afresh (biases to zero), from torch's global
    generator:

    - 'normal':     N(0, 1)
    - 'xavier':     uniform on +-sqrt(6 / (fan_in + fan_out))  (Glorot and Bengio)
    - 'he':         N(0, 2 / fan_in)  (He et al.)
    - 'orthogonal': a random (semi-)orthogonal matrix times a gain, sqrt(2) for ReLU-like
                    activations and 1 otherwise  (Saxe et al.)
    """
    checks.instance(model, "model", nn.Module, "a torch.nn.Module")
    checks.choice(scheme, "scheme", INITS)
    checks.choice(activation, "activation", ACTIVATIONS)
    with torch.no_grad():
        for m in model.modules():
            if not isinstance(m, nn.Linear):
                continue
            fan_out, fan_in = m.weight.shape
            if scheme == "normal":
                m.weight.normal_(0.0, 1.0)
            elif scheme == "xavier":
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                m.weight.uniform_(-bound, bound)
            elif scheme == "he":
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_in))
            else:
                nn.init.orthogonal_(m.weight, gain=math.sqrt(2.0) if "relu" in activation else 1.0)
            if m.bias is not None:
                m.bias.zero_()
    return model


def weight_variance(scheme: str, fan_in: int, fan_out: int, activation: str = "relu") -> float:
    """The variance of one weight under ``scheme`` (for 'orthogonal', of an entry of a square
    orthogonal matrix times its gain, gain^2 / fan_in)."""
    checks.choice(scheme, "scheme", INITS)
    checks.choice(activation, "activation", ACTIVATIONS)
    checks.integer(fan_in, "fan_in", 1)
    checks.integer(fan_out, "fan_out", 1)
    return {"normal": 1.0, "xavier": 2.0 / (fan_in + fan_out), "he": 2.0 / fan_in,
            "orthogonal": (2.0 if "relu" in activation else 1.0) / max(fan_in, fan_out)}[scheme]


def predicted_moments(scheme: str, activation: str, depth: int, width: int, input_sq: float,
                      n_in: int = 784) -> tuple[Array, Array]:
    """What the initialisation formulas promise for ``DeepMLP`` (zero biases), in the limit of wide
    layers: each pre-activation z is Gaussian with variance q_l, where
    q_1 = Var(w) * E||x||^2 (``input_sq``) and q_{l+1} = width * Var(w) * E[phi(z_l)^2].

    Returns, for hidden layers 1..depth, the second moment of the activations E[phi(z_l)^2], and
    that of the gradient reaching them relative to the last hidden layer,
    E[g_l^2] / E[g_depth^2], from g_l = W^T (phi'(z_{l+1}) * g_{l+1}), i.e.
    E[g_l^2] = width * Var(w) * E[phi'(z_{l+1})^2] * E[g_{l+1}^2]. The Gaussian averages are
    taken on a fine grid."""
    checks.integer(depth, "depth", 1, at_most=MAX_DEPTH)
    checks.integer(width, "width", 1)
    checks.integer(n_in, "n_in", 1)
    checks.number(input_sq, "input_sq", positive=True)
    phi, slope = _NUMPY_ACTIVATIONS[checks.choice(activation, "activation", ACTIVATIONS)]
    xi = np.linspace(-12.0, 12.0, 24_000)      # an even count: z = 0, where ReLU has no slope, is not a point
    density = np.exp(-xi ** 2 / 2)
    density /= density.sum()
    q = weight_variance(scheme, n_in, width, activation) * input_sq
    hidden_var = weight_variance(scheme, width, width, activation)
    forward, slopes = [], []
    for _ in range(depth):
        z = math.sqrt(q) * xi
        forward.append(float(density @ phi(z) ** 2))
        slopes.append(float(density @ slope(z) ** 2))
        q = width * hidden_var * forward[-1]
    backward = [1.0]
    for l in range(depth - 1, 0, -1):          # from the last hidden layer down to the first
        backward.append(backward[-1] * width * hidden_var * slopes[l])
    return np.array(forward), np.array(backward[::-1])


_NUMPY_ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_prime),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "leaky_relu": (lambda z: np.where(z > 0, z, LEAKY_SLOPE * z),
                   lambda z: np.where(z > 0, 1.0, LEAKY_SLOPE)),
}
