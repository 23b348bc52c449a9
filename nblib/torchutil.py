"""Small helpers shared by the chapters that use PyTorch: the device, seeding, MNIST as tensors.

Importing this module imports torch; ``import nblib`` does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .checks import integer
from .data import as_pair


def device() -> torch.device:
    """The GPU when one is present, else the CPU: chapters run unchanged on either.

    It also makes float32 mean on a GPU what it means on the CPU: PyTorch lets cuDNN (which runs
    ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` on a GPU) use TF32, a 10-bit mantissa, by default, so
    that chapter 5's networks would train at a lower precision than in the book. Matrix products
    on the GPU already default to full float32."""
    torch.backends.cudnn.allow_tf32 = False
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_all(seed: int) -> torch.Generator:
    """Seed torch's global generator and return a fresh generator seeded the same way."""
    seed = integer(seed, "seed", 0)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def as_tensors(split: Any, on: torch.device | None = None,
               dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of an ``nblib.data.Split`` (or an (images, labels) pair) as tensors on
    ``on`` (default: ``device()``): images as ``dtype``, labels as int64."""
    images, labels = as_pair(split, "split")
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 2 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"expected images of shape (n, features) and n labels, got shapes "
                         f"{images.shape} and {labels.shape}")
    on = device() if on is None else on
    return (torch.as_tensor(images, dtype=dtype, device=on),
            torch.as_tensor(labels, dtype=torch.int64, device=on))
