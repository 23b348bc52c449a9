"""Small helpers shared by the chapters that use PyTorch: the device, seeding, MNIST as tensors.

Importing this module imports torch; ``import nblib`` does not.
"""

from __future__ import annotations

from ._optional import require

require("torch", __name__)   # first: without torch, a message that says what to install

from typing import Any

import numpy as np
import torch

from . import checks
from .data import as_pair

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


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
    seed = checks.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def as_tensors(split: Any, on: torch.device | None = None,
               dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of an ``nblib.data.Split`` (or an (images, labels) pair) as tensors on
    ``on`` (default: ``device()``): images as ``dtype`` (a floating-point dtype), labels as
    int64. The images must be finite numbers and the labels non-negative integers: nothing is
    truncated or wrapped on the way."""
    images, labels = as_pair(split, "split")
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 2 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"expected images of shape (n, features) and n labels, got shapes "
                         f"{images.shape} and {labels.shape}")
    images = checks.array(images, "images", ndim=2)
    labels = checks.labels(labels, "labels")
    dtype, on = float_dtype(dtype), as_device(on)
    return (torch.as_tensor(images, dtype=dtype, device=on),
            torch.as_tensor(labels.astype(np.int64, copy=False), dtype=torch.int64, device=on))


# --- argument checks shared by the torch modules ------------------------------------------------
def float_dtype(dtype: Any, name: str = "dtype") -> torch.dtype:
    """A floating-point torch dtype (float32, float64, float16 or bfloat16)."""
    if not any(dtype is d for d in FLOAT_DTYPES):
        raise TypeError(f"{name} must be a floating-point torch dtype such as torch.float32 or "
                        f"torch.float64, got {dtype!r}")
    return dtype


def as_device(on: Any, name: str = "on") -> torch.device:
    """A torch device from a ``torch.device``, a name such as "cpu" or "cuda:0", or None
    (``device()``)."""
    if on is None:
        return device()
    if not isinstance(on, (str, torch.device)):
        raise TypeError(f"{name} must be a torch.device, a name such as 'cpu' or 'cuda', or None, got {on!r}")
    try:
        return torch.device(on)
    except RuntimeError:
        raise ValueError(f"{name} must name a device such as 'cpu' or 'cuda', got {on!r}") from None


def tensor(value: Any, name: str, *, ndim: int | None = None, floating: bool = False) -> torch.Tensor:
    """A torch tensor (with ``ndim`` axes, of a floating-point dtype if ``floating``)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(value).__name__}")
    if ndim is not None and value.dim() != ndim:
        raise ValueError(f"{name} must be a {ndim}-D tensor, got shape {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must hold floating-point numbers, got {value.dtype}")
    return value
