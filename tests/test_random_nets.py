import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nblib import random_nets as rn  # noqa: E402

CPU = torch.device("cpu")


def test_random_weights_gaussian_and_orthogonal():
    g = rn.random_weights(2, 3, 8, init="gaussian", scale=2.0, seed=0, device=CPU)
    assert g.shape == (2, 3, 8, 8) and g.dtype == torch.float64
    o = rn.random_weights(2, 3, 8, init="orthogonal", scale=2.0, seed=0, device=CPU)
    torch.testing.assert_close(o @ o.transpose(-1, -2),
                               4 * torch.eye(8, dtype=torch.float64).expand(2, 3, 8, 8))


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
    zero = rn.representations(torch.zeros(1, 1, 6, 6, dtype=torch.float64),
                              torch.randn(5, 6, dtype=torch.float64))
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
    np.testing.assert_array_equal(rn.warp(pts, 3, hidden=20, residual=residual, seed=5).points[-1],
                                  w.points[-1])


@pytest.mark.parametrize("call, error, message", [
    (lambda: rn.random_weights(1, 1, 4, init="uniform", seed=0), ValueError,
     "init must be one of 'gaussian', 'orthogonal', got 'uniform'"),
    # issue 11
    (lambda: rn.random_weights(1, 1, 4, seed=0, dtype=torch.int64), TypeError,
     r"dtype must be a floating-point torch dtype"),
    (lambda: rn.representations(torch.zeros(1, 1, 4, 4), torch.ones(1, 4), normalise="batch"), ValueError,
     r"batch normalisation needs a batch of at least 2 examples"),
    (lambda: rn.representations(torch.zeros(1, 1, 1, 1), torch.ones(3, 1), normalise="layer"), ValueError,
     r"layer normalisation needs layers of at least 2 units, got width 1"),
    (lambda: rn.jacobians(torch.zeros(1, 2, 4, 4), torch.zeros(2, 4), at=2), TypeError,
     r"at must be a list of depths such as \(1, 2\), got 2"),
    (lambda: rn.jacobians(torch.zeros(1, 2, 4, 4), torch.zeros(2, 4), at=(1.0,)), TypeError,
     r"every depth in at must be a positive integer"),
    (lambda: rn.warp(np.zeros((3, 2)), 2, seed=-1), ValueError,
     r"seed must be an integer from 0 to 2\*\*64 - 1"),
    (lambda: rn.warp(np.zeros((3, 2)), 2, residual=1), TypeError, r"residual must be True or False"),
    (lambda: rn.representations(torch.zeros(1, 1, 4, 4), torch.zeros(2, 4), nonlinearity="sigmoid"),
     ValueError, "nonlinearity must be one of"),
    (lambda: rn.representations(torch.zeros(1, 1, 4, 4), torch.zeros(2, 4), normalise="group"),
     ValueError, "normalise must be one of"),
    (lambda: rn.representations(torch.zeros(1, 1, 4, 4), torch.zeros(2, 3)), ValueError,
     "x must have shape \\(batch, 4\\)"),
    (lambda: rn.representations(torch.zeros(1, 1, 4, 4), np.zeros((2, 4))), TypeError,
     "x must be a torch tensor"),
    (lambda: rn.representations(torch.zeros(1, 1, 4, 4), torch.zeros(2, 4), biases=torch.zeros(4)),
     ValueError, "biases must be a tensor of shape \\(1, 1, 4\\)"),
    (lambda: rn.jacobians(torch.zeros(1, 2, 4, 4), torch.zeros(2, 4), at=(3,)), ValueError,
     "at must list depths between 1 and 2"),
    (lambda: rn.warp(np.zeros((3, 3)), 2), ValueError, "points must be a finite array of shape \\(N, 2\\)"),
    (lambda: rn.warp(np.zeros((3, 2)), 0), ValueError, "depth must be at least 1"),
    (lambda: rn.warp(np.zeros((3, 2)), 2, weight_scale=-1), ValueError,
     "weight_scale must be a finite non-negative"),
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


def test_divisive_normalisation_divides_by_the_layers_rms_activity():
    w = rn.random_weights(1, 1, 6, seed=2, device=CPU)
    x = torch.randn(30, 6, dtype=torch.float64) * 3
    z = x @ w[0, 0].T
    dn = rn.representations(w, x, nonlinearity="linear", normalise="divisive")[1][0]
    torch.testing.assert_close(dn, z / torch.sqrt(rn.DIVISIVE_SIGMA ** 2 + (z ** 2).mean(1, keepdim=True)))
    assert float(dn.pow(2).mean(1).max()) < 1                   # the pooled activity is held below 1


# --- Duvenaud et al.'s deep GP Jacobians ---------------------------------------------------------------
def test_deep_gp_jacobians_are_products_of_gaussian_matrices_of_the_stated_variance():
    one = rn.deep_gp_jacobians(20_000, 1, 4, seed=0)[1]
    assert one.shape == (20_000, 4, 4)
    assert one.var().item() == pytest.approx(1 / 4, rel=0.02) and abs(one.mean().item()) < 0.005
    # plain: the product keeps the mean square length of a vector, E||J u||^2 = ||u||^2
    deep = rn.deep_gp_jacobians(40_000, 3, 4, at=(1, 2, 3), seed=1)
    u = torch.tensor([1.0, 2.0, 0.0, -1.0], dtype=torch.float64)
    for l in (1, 2, 3):
        assert (deep[l] @ u).pow(2).sum(-1).mean().item() == pytest.approx(6.0, rel=0.05)
    # input-connected with variance 1/(2 dim): E||J||_F^2 obeys m_l = (m_{l-1} + dim) / 2 from m_0 = dim:
    # it stays dim
    ic = rn.deep_gp_jacobians(40_000, 6, 4, input_connected=True, at=(1, 6), seed=2)
    for l in (1, 6):
        assert ic[l].pow(2).sum((1, 2)).mean().item() == pytest.approx(4.0, rel=0.05)
    # the same seed draws the same matrices
    torch.testing.assert_close(rn.deep_gp_jacobians(3, 2, 4, seed=5)[2],
                               rn.deep_gp_jacobians(3, 2, 4, seed=5)[2])


def test_input_connected_jacobians_follow_duvenauds_recurrence():
    # a deep plain product collapses onto one direction; with the input fed to every layer,
    # J^(1:L) = J^L [J^(1:L-1); I], the spectrum keeps its spread however deep
    plain = rn.deep_gp_jacobians(500, 40, 5, seed=3)[40]
    ic = rn.deep_gp_jacobians(500, 40, 5, input_connected=True, seed=3)[40]
    s_plain = torch.linalg.svdvals(plain)
    s_ic = torch.linalg.svdvals(ic)
    assert float((s_plain[:, 1] / s_plain[:, 0]).median()) < 0.01
    assert float((s_ic[:, 1] / s_ic[:, 0]).median()) > 0.3


@pytest.mark.parametrize("call, error, message", [
    (lambda: rn.deep_gp_jacobians(2, 3, 4, at=(4,), seed=0), ValueError,
     r"every depth in at must be an integer from 1 to 3"),
    (lambda: rn.deep_gp_jacobians(2, 3, 4, at=4, seed=0), TypeError, r"at must be a list of depths"),
    (lambda: rn.deep_gp_jacobians(2, 3, 4, variance=0.0, seed=0), ValueError,
     r"variance must be a finite positive"),
    (lambda: rn.deep_gp_jacobians(2, 3, 4, input_connected=1, seed=0), TypeError,
     r"input_connected must be True or False"),
])
def test_deep_gp_jacobians_refuse_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- Balduzzi et al.'s shattered gradients ---------------------------------------------------------------
@pytest.mark.parametrize("residual_scale", [None, 0.5])
def test_rectifier_gradients_match_autograd_with_the_normalisation_held_fixed(residual_scale):
    g = torch.Generator().manual_seed(0)
    runs, depth, n = 2, 4, 7
    first = torch.randn(runs, 2, n, generator=g, dtype=torch.float64)
    weights = torch.randn(runs, depth - 1, n, n, generator=g, dtype=torch.float64) / n ** 0.5
    readouts = torch.randn(runs, depth, n, generator=g, dtype=torch.float64)
    x = np.linspace(-1.5, 2.0, 9)
    ours = rn.rectifier_gradients(x, first, weights, readouts, residual_scale=residual_scale)
    assert ours.shape == (runs, depth, 9)
    xt = torch.tensor(x, requires_grad=True)

    def bn(z):                                              # batch norm with its statistics as constants
        with torch.no_grad():
            mean, std = z.mean(1, keepdim=True), z.std(1, keepdim=True)
        return (z - mean) / std

    h = torch.relu(xt[None, :, None] * first[:, :1] + first[:, 1:])
    outputs = [h @ readouts[:, 0, :, None]]
    for l in range(depth - 1):
        branch = torch.relu(bn(h @ weights[:, l]))
        h = branch if residual_scale is None else h + residual_scale * branch
        outputs.append(h @ readouts[:, l + 1, :, None])
    for l, y in enumerate(outputs):
        for r in range(runs):
            # each output depends on its own x only
            (grad,) = torch.autograd.grad(y[r].sum(), xt, retain_graph=True)
            np.testing.assert_allclose(ours[r, l], grad.numpy(), rtol=1e-10, atol=1e-12)


def test_scalar_input_gradients_shatter_without_skips_and_not_with_them():
    x = np.linspace(-2, 2, 128)
    plain = rn.scalar_input_gradients(x, 3, 20, width=64, seed=0)
    resnet = rn.scalar_input_gradients(x, 3, 20, width=64, residual_scale=0.5, seed=0)
    assert plain.gradients.shape == (3, 20, 128) and plain.residual_scale is None
    c_plain, c_res = rn.gradient_correlation(plain.gradients), rn.gradient_correlation(resnet.gradients)
    assert np.all(c_plain[:, 0] > 0.8) and np.all(c_res[:, 0] > 0.8)       # one layer: a random walk
    assert np.abs(np.median(c_plain[:, -1])) < 0.3 and np.median(c_res[:, -1]) > 0.8


def test_gradient_correlation_of_noises_with_known_answers():
    rng = np.random.default_rng(0)
    white = rng.standard_normal((4, 100_000))
    assert np.all(np.abs(rn.gradient_correlation(white)) < 0.02)
    brown = np.cumsum(white, axis=1)
    assert np.all(rn.gradient_correlation(brown) > 0.99)
    t = np.arange(10_000)
    wave = np.sin(2 * np.pi * t / 50)
    np.testing.assert_allclose(rn.gradient_correlation(wave), np.cos(2 * np.pi / 50), atol=1e-3)
    np.testing.assert_allclose(rn.gradient_correlation(wave, lag=25), -1.0, atol=1e-3)
    assert np.isnan(rn.gradient_correlation(np.ones(10)))
    with pytest.raises(ValueError, match="at least 2 points"):
        rn.gradient_correlation(np.ones(1))
    with pytest.raises(ValueError, match="lag must be an integer from 1 to 9"):
        rn.gradient_correlation(np.ones(10), lag=10)


@pytest.mark.parametrize("call, error, message", [
    (lambda: rn.scalar_input_gradients(np.ones(5), 1, 2, seed=0), ValueError, r"at least 2 different inputs"),
    (lambda: rn.scalar_input_gradients(np.linspace(0, 1, 5), 1, 2, residual_scale=-1, seed=0), ValueError,
     r"residual_scale must be a finite positive number"),
    (lambda: rn.rectifier_gradients(np.linspace(0, 1, 5), torch.zeros(1, 2, 3, dtype=torch.float64),
                                    torch.zeros(1, 2, 3, 3, dtype=torch.float64),
                                    torch.zeros(1, 2, 3, dtype=torch.float64)),
     ValueError, r"weights \(runs, L - 1, n, n\)"),
    (lambda: rn.rectifier_gradients(np.linspace(0, 1, 5), np.zeros((1, 1, 3)), torch.zeros(1, 0, 3, 3),
                                    torch.zeros(1, 1, 3)), TypeError,
     r"first must be a floating-point torch tensor"),
])
def test_shattering_functions_refuse_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()
