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
    with pytest.raises(TypeError, match=r"seed must be an integer from 0 to 2\*\*64 - 1"):
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


# --- nothing truncated or wrapped (issue 11) ----------------------------------------------------
IMAGES = np.random.default_rng(0).random((3, 2))


@pytest.mark.parametrize("images, labels, kwargs, error, message", [
    (IMAGES, np.array([0.9, 1.0, 2.0]), {}, TypeError,
     r"labels must be integers \(class indices\), got dtype float64"),
    (IMAGES, np.array([2 ** 64 - 1, 0, 1], dtype=np.uint64), {}, ValueError,
     r"labels must lie in \[0, 2\*\*63 - 1\]"),
    (IMAGES, np.array([0, -1, 2]), {}, ValueError, r"labels must lie in .* got values from -1 to 2"),
    (np.array([[0.5, np.nan]] * 3), np.arange(3), {}, ValueError, r"images contains NaN or infinity"),
    (np.array([["a", "b"]] * 3), np.arange(3), {}, TypeError, r"images must hold real numbers"),
    (IMAGES, np.arange(3), {"dtype": torch.int64}, TypeError,
     r"dtype must be a floating-point torch dtype such as torch.float32 or torch.float64, got torch.int64"),
    (IMAGES, np.arange(3), {"on": "gpu"}, ValueError,
     r"on must name a device such as 'cpu' or 'cuda', got 'gpu'"),
    (IMAGES, np.arange(3), {"on": 0}, TypeError, r"on must be a torch.device, a name such as 'cpu'"),
])
def test_as_tensors_truncates_nothing_and_says_why(images, labels, kwargs, error, message):
    with pytest.raises(error, match=message):
        torchutil.as_tensors((images, labels), **kwargs)


def test_as_tensors_accepts_unsigned_labels_and_a_device_name():
    x, y = torchutil.as_tensors((IMAGES, np.arange(3, dtype=np.uint8)), on="cpu", dtype=torch.float64)
    assert y.dtype == torch.int64 and y.tolist() == [0, 1, 2] and x.dtype == torch.float64


def test_seed_all_accepts_numpy_integers_and_refuses_negative_seeds():
    assert torch.equal(torch.randn(2, generator=torchutil.seed_all(np.int64(4))),
                       torch.randn(2, generator=torchutil.seed_all(4)))
    with pytest.raises(ValueError, match=r"seed must be an integer from 0 to 2\*\*64 - 1, got -1"):
        torchutil.seed_all(-1)


def test_tensor_checks():
    assert torchutil.tensor(torch.zeros(2), "x", ndim=1, floating=True).shape == (2,)
    with pytest.raises(TypeError, match=r"x must be a torch tensor, got ndarray"):
        torchutil.tensor(np.zeros(2), "x")
    with pytest.raises(ValueError, match=r"x must be a 2-D tensor, got shape \(2,\)"):
        torchutil.tensor(torch.zeros(2), "x", ndim=2)
    with pytest.raises(TypeError, match=r"x must hold floating-point numbers, got torch.int64"):
        torchutil.tensor(torch.zeros(2, dtype=torch.int64), "x", floating=True)


@pytest.mark.parametrize("module", ["nblib.torchutil", "nblib.probe", "nblib.linear", "nblib.random_nets",
                                    "nblib.stacked", "nblib.testbed", "nblib.recurrent"])
def test_without_torch_a_torch_module_says_what_to_install(module):
    import subprocess
    import sys
    code = f"import sys; sys.modules['torch'] = None; import {module}"      # as if torch were not installed
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (f"ImportError: {module} needs torch, "
                                                    "which is not installed: "
                                                    "pip install torch (or pip install 'nblib[torch]')")
