"""The toy problem the testbed tests train on (needs torch: imported by the torch tests only)."""

import torch

from nblib import testbed


def small_data(n: int = 200, features: int = 20, seed: int = 0) -> testbed.Data:
    """A learnable toy problem: the label is the index of the largest of the first 10 features;
    half the ``n`` examples train, half validate."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, features, generator=g)
    y = x[:, :10].argmax(1)
    return testbed.Data(x[: n // 2], y[: n // 2], x[n // 2:], y[n // 2:])
