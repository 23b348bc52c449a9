import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nblib import random_nets as rn  # noqa: E402

CPU = torch.device("cpu")


def test_random_weights_gaussian_and_orthogonal():
    g = rn.random_weights(2, 3, 8, init="gaussian", scale=2.0, seed=0, device=CPU)
    assert g.shape == (2, 3, 8, 8) and g.dtype == torch.float64
    o = rn.random_weights(2, 3, 8, init="orthogonal", scale=2.0, seed=0, device=CPU)
    torch.testing.assert_close(o @ o.transpose(-1, -2), 4 * torch.eye(8, dtype=torch.float64).expand(2, 3, 8, 8))


@pytest.mark.parametrize("nonlinearity", ["linear", "tanh", "relu"])
def test_representations_match_a_plain_loop(nonlinearity):
    w = rn.random_weights(2, 4, 5, seed=1, device=CPU)
    b = torch.randn(2, 4, 5, dtype=torch.float64)
    x = torch.randn(6, 5, dtype=torch.float64)
    phi = {"linear": lambda z: z, "tanh": torch.tanh, "relu": torch.relu}[nonlinearity]
    hs = rn.representations(w, x, nonlinearity=nonlinearity, biases=b)
    assert len(hs) == 5
    for r in range(2):
        h = x
        for l in range(4):
            h = phi(h @ w[r, l].T + b[r, l])
            torch.testing.assert_close(hs[l + 1][r], h)


def test_effective_dimensions_match_the_participation_ratio():
    from nblib import degeneracy
    w = rn.random_weights(2, 3, 6, seed=7, device=CPU)
    hs = rn.representations(w, torch.randn(40, 6, dtype=torch.float64), nonlinearity="tanh")
    d = rn.effective_dimensions(hs)
    assert d.shape == (2, 4)
    want = [[degeneracy.participation_ratio(h[r].numpy()) for h in hs] for r in range(2)]
    np.testing.assert_allclose(d, want, rtol=1e-9)
    zero = rn.representations(torch.zeros(1, 1, 6, 6, dtype=torch.float64), torch.randn(5, 6, dtype=torch.float64))
    assert rn.effective_dimensions(zero)[0, 1] == 0.0
    with pytest.raises(TypeError, match="hidden must be a non-empty list of tensors"):
        rn.effective_dimensions([])
    with pytest.raises(ValueError, match="at least 2 examples"):
        rn.effective_dimensions([torch.zeros(1, 1, 3)])


def test_normalisations_standardise_units_or_examples():
    w = rn.random_weights(1, 1, 6, seed=2, device=CPU)
    x = torch.randn(50, 6, dtype=torch.float64) * 3 + 1
    bn = rn.representations(w, x, nonlinearity="linear", normalise="batch")[1][0]
    torch.testing.assert_close(bn.mean(0), torch.zeros(6, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(bn.std(0), torch.ones(6, dtype=torch.float64))
    ln = rn.representations(w, x, nonlinearity="linear", normalise="layer")[1][0]
    torch.testing.assert_close(ln.mean(1), torch.zeros(50, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(ln.std(1), torch.ones(50, dtype=torch.float64))


@pytest.mark.parametrize("nonlinearity", ["linear", "tanh", "relu"])
def test_jacobians_match_autograd(nonlinearity):
    w = rn.random_weights(2, 3, 4, seed=3, scale=1.3, device=CPU)
    b = torch.randn(2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    jac = rn.jacobians(w, x, nonlinearity=nonlinearity, biases=b, at=(1, 3))
    assert set(jac) == {1, 3} and jac[3].shape == (2, 3, 4, 4)
    for depth in (1, 3):
        for r in range(2):
            for i in range(3):
                f = lambda v: rn.representations(w[r:r + 1, :depth], v[None], nonlinearity=nonlinearity,  # noqa: E731
                                                 biases=b[r:r + 1, :depth])[-1][0, 0]
                want = torch.autograd.functional.jacobian(f, x[i])
                torch.testing.assert_close(jac[depth][r, i], want)


def test_orthogonal_linear_jacobian_is_an_isometry():
    w = rn.random_weights(1, 20, 6, init="orthogonal", seed=4, device=CPU)
    j = rn.jacobians(w, torch.randn(2, 6, dtype=torch.float64), nonlinearity="linear")[20]
    torch.testing.assert_close(torch.linalg.svdvals(j), torch.ones(1, 2, 6, dtype=torch.float64))


@pytest.mark.parametrize("residual", [False, True])
def test_warp_positions_and_jacobian_ratio_against_finite_differences(residual):
    pts = np.array([[0.3, -0.2], [1.0, 0.5], [-0.7, 0.9]])
    w = rn.warp(pts, 3, hidden=20, residual=residual, seed=5)
    assert len(w.points) == 4 and len(w.jacobian_ratio) == 4
    np.testing.assert_array_equal(w.points[0], pts)
    assert np.all(w.jacobian_ratio[0] == 1)
    eps = 1e-6
    for k in (1, 3):
        for i, p in enumerate(pts):
            cols = []
            for d in range(2):
                step = np.zeros(2)
                step[d] = eps
                hi = rn.warp(np.array([p + step]), k, hidden=20, residual=residual, seed=5).points[-1][0]
                lo = rn.warp(np.array([p - step]), k, hidden=20, residual=residual, seed=5).points[-1][0]
                cols.append((hi - lo) / (2 * eps))
            s = np.linalg.svd(np.stack(cols, axis=1), compute_uv=False)
            assert w.jacobian_ratio[k][i] == pytest.approx(s[1] / s[0], rel=1e-5, abs=1e-9)
    # the same seed gives the same warp
    np.testing.assert_array_equal(rn.warp(pts, 3, hidden=20, residual=residual, seed=5).points[-1], w.points[-1])


@pytest.mark.parametrize("call, error, message", [
    (lambda: rn.random_weights(1, 1, 4, init="uniform", seed=0), ValueError, "init must be one of 'gaussian', 'orthogonal', got 'uniform'"),
    # issue 11
    (lambda: rn.random_weights(1, 1, 4, seed=0, dtype=torch.int64), TypeError, r"dtype must be a floating-point torch dtype"),
    (lambda: rn.representations(torch.zeros(1, 1, 4, 4), torch.ones(1, 4), normalise="batch"), ValueError,
     r"batch normalisation needs a batch of at least 2 examples"),
    (lambda: rn.representations(torch.zeros(1, 1, 1, 1), torch.ones(3, 1), normalise="layer"), ValueError,
     r"layer normalisation needs layers of at least 2 units, got width 1"),
    (lambda: rn.jacobians(torch.zeros(1, 2, 4, 4), torch.zeros(2, 4), at=2), TypeError, r"at must be a list of depths such as \(1, 2\), got 2"),
    (lambda: rn.jacobians(torch.zeros(1, 2, 4, 4), torch.zeros(2, 4), at=(1.0,)), TypeError, r"every depth in at must be a positive integer"),
    (lambda: rn.warp(np.zeros((3, 2)), 2, seed=-1), ValueError, r"seed must be an integer from 0 to 2\*\*64 - 1"),
    (lambda: rn.warp(np.zeros((3, 2)), 2, residual=1), TypeError, r"residual must be True or False"),
    (lambda: rn.representations(torch.zeros(1, 1, 4, 4), torch.zeros(2, 4), nonlinearity="sigmoid"),
     ValueError, "nonlinearity must be one of"),
    (lambda: rn.representations(torch.zeros(1, 1, 4, 4), torch.zeros(2, 4), normalise="group"),
     ValueError, "normalise must be one of"),
    (lambda: rn.representations(torch.zeros(1, 1, 4, 4), torch.zeros(2, 3)), ValueError, "x must have shape \\(batch, 4\\)"),
    (lambda: rn.representations(torch.zeros(1, 1, 4, 4), np.zeros((2, 4))), TypeError, "x must be a torch tensor"),
    (lambda: rn.representations(torch.zeros(1, 1, 4, 4), torch.zeros(2, 4), biases=torch.zeros(4)),
     ValueError, "biases must be a tensor of shape \\(1, 1, 4\\)"),
    (lambda: rn.jacobians(torch.zeros(1, 2, 4, 4), torch.zeros(2, 4), at=(3,)), ValueError, "at must list depths between 1 and 2"),
    (lambda: rn.warp(np.zeros((3, 3)), 2), ValueError, "points must be a finite array of shape \\(N, 2\\)"),
    (lambda: rn.warp(np.zeros((3, 2)), 0), ValueError, "depth must be at least 1"),
    (lambda: rn.warp(np.zeros((3, 2)), 2, weight_scale=-1), ValueError, "weight_scale must be a finite non-negative"),
])
def test_bad_arguments_are_refused_with_a_clear_message(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_representations_that_are_not_finite_have_no_dimension_not_dimension_0():
    hidden = [torch.randn(2, 5, 3, dtype=torch.float64) for _ in range(2)]
    hidden[1][0, 2, 1] = float("nan")
    hidden[1][1, 0, 0] = float("inf")
    d = rn.effective_dimensions(hidden)
    assert np.isfinite(d[:, 0]).all() and np.isnan(d[:, 1]).all()
    np.testing.assert_allclose(d[:, 0], rn.effective_dimensions(hidden[:1])[:, 0])
