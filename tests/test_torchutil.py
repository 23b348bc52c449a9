import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nblib import torchutil  # noqa: E402


def test_device_is_cpu_or_cuda():
    assert torchutil.device().type in ("cpu", "cuda")


def test_device_leaves_no_tf32_on_a_gpu():
    """The flags are PyTorch's whether or not a GPU is present; on one, float32 stays float32."""
    before = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True          # PyTorch's default
        torchutil.device()
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert getattr(getattr(torch.backends.cudnn, "rnn", None), "fp32_precision", "none") != "tf32"
    finally:
        torch.backends.cudnn.allow_tf32 = before


def test_seed_all_makes_torch_repeatable():
    torchutil.seed_all(3)
    a = torch.randn(4)
    g = torchutil.seed_all(3)
    assert torch.equal(a, torch.randn(4))
    assert torch.equal(torch.randn(4, generator=g), torch.randn(4, generator=torchutil.seed_all(3)))


@pytest.mark.parametrize("bad", [1.5, "3", True, None])
def test_seed_all_refuses_non_integers(bad):
    with pytest.raises(TypeError, match="seed must be a non-negative integer"):
        torchutil.seed_all(bad)


def test_as_tensors_from_a_pair_and_a_split_like_object():
    x, y = np.random.default_rng(0).random((5, 3)), np.arange(5)
    tx, ty = torchutil.as_tensors((x, y), on=torch.device("cpu"))
    assert tx.dtype == torch.float32 and ty.dtype == torch.int64 and tx.shape == (5, 3)
    split = type("Split", (), {"images": x, "labels": y})()
    sx, sy = torchutil.as_tensors(split, on=torch.device("cpu"), dtype=torch.float64)
    assert sx.dtype == torch.float64 and torch.equal(sy, ty)


@pytest.mark.parametrize("bad, error, message", [
    (42, TypeError, "Split or an \\(images, labels\\) pair"),
    ((np.zeros((3, 2)), np.zeros(4)), ValueError, "expected images of shape"),
    ((np.zeros(3), np.zeros(3)), ValueError, "expected images of shape"),
])
def test_as_tensors_refuses_bad_input(bad, error, message):
    with pytest.raises(error, match=message):
        torchutil.as_tensors(bad)
