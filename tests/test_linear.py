import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nblib import linear  # noqa: E402

CPU = torch.device("cpu")


def product(weights, residual=False):
    """The end-to-end matrix of each network, the slow obvious way."""
    runs, depth, n, _ = weights.shape
    out = []
    for r in range(runs):
        p = torch.eye(n, dtype=weights.dtype)
        for l in range(depth):
            w = weights[r, l] + (torch.eye(n, dtype=weights.dtype) if residual else 0)
            p = w @ p
        out.append(p)
    return torch.stack(out)


# --- initialisers -------------------------------------------------------------------------------
def test_gaussian_has_the_standard_scale_and_is_repeatable():
    w = linear.gaussian(4, 5, 64, seed=0, device=CPU, dtype=torch.float64)
    assert w.shape == (4, 5, 64, 64) and w.dtype == torch.float64
    assert abs(w.mean().item()) < 0.005
    assert w.var().item() == pytest.approx(1 / 64, rel=0.02)
    assert torch.equal(w, linear.gaussian(4, 5, 64, seed=0, device=CPU, dtype=torch.float64))
    assert not torch.equal(w, linear.gaussian(4, 5, 64, seed=1, device=CPU, dtype=torch.float64))
    half = linear.gaussian(4, 5, 64, seed=0, scale=0.5, device=CPU, dtype=torch.float64)
    torch.testing.assert_close(half, 0.5 * w)


def test_orthogonal_is_orthogonal_to_1e_6():
    for dtype, tol in ((torch.float32, 1e-6), (torch.float64, 1e-12)):
        q = linear.orthogonal(3, 4, 32, seed=0, device=CPU, dtype=dtype).double()
        eye = torch.eye(32, dtype=torch.float64)
        assert (q @ q.transpose(-1, -2) - eye).abs().max().item() < tol
        assert (q.transpose(-1, -2) @ q - eye).abs().max().item() < tol
    scaled = linear.orthogonal(1, 1, 8, seed=0, scale=2.0, device=CPU, dtype=torch.float64)[0, 0]
    torch.testing.assert_close(scaled @ scaled.T, 4 * torch.eye(8, dtype=torch.float64))


def test_orthogonal_is_uniform_not_biased_by_the_qr_sign_convention():
    # For a uniformly random orthogonal matrix, every entry has mean 0 and variance 1/n; the raw
    # Q of a QR decomposition is biased (its diagonal tends to one sign).
    q = linear.orthogonal(2000, 1, 4, seed=3, device=CPU, dtype=torch.float64)[:, 0]
    diag = torch.diagonal(q, dim1=-2, dim2=-1)
    assert abs(diag.mean().item()) < 0.03
    assert diag.pow(2).mean().item() == pytest.approx(0.25, abs=0.02)


def test_fold_halves_the_rank_and_copies_the_first_half():
    w = linear.gaussian(2, 3, 16, seed=0, device=CPU, dtype=torch.float64)
    f = linear.fold(w)
    assert torch.equal(f[..., 8:], w[..., :8]) and torch.equal(f[..., :8], w[..., :8])
    assert torch.equal(w, linear.gaussian(2, 3, 16, seed=0, device=CPU, dtype=torch.float64)), "input changed"
    assert (torch.linalg.matrix_rank(f) == 8).all()
    assert (torch.linalg.matrix_rank(w) == 16).all()
    assert (torch.linalg.matrix_rank(linear.fold(w, 2)) == 4).all()
    assert (torch.linalg.matrix_rank(linear.fold(w, 4)) == 1).all()
    assert torch.equal(linear.fold(w, 0), w)
    # a folded matrix cannot tell x = (x1, x2) from (x1 + d, x2 - d)
    x = torch.randn(16, dtype=torch.float64)
    d = torch.cat([torch.ones(8), -torch.ones(8)]).double()
    torch.testing.assert_close(f[0, 0] @ x, f[0, 0] @ (x + d))


def test_initialise_names_the_three_initialisations():
    g = linear.initialise("gaussian", 2, 3, 8, seed=5, device=CPU)
    assert torch.equal(linear.initialise("folded", 2, 3, 8, seed=5, device=CPU), linear.fold(g))
    assert torch.equal(linear.initialise("orthogonal", 2, 3, 8, seed=5, device=CPU),
                       linear.orthogonal(2, 3, 8, seed=5, device=CPU))


# --- forward and backward -----------------------------------------------------------------------
@pytest.mark.parametrize("residual", [False, True])
def test_forward_and_end_to_end_match_the_product_of_the_layers(residual):
    w = linear.gaussian(3, 4, 6, seed=1, scale=0.5, device=CPU, dtype=torch.float64)
    x = torch.randn(5, 6, dtype=torch.float64)
    acts = linear.forward(w, x, residual=residual)
    assert len(acts) == 5 and acts[-1].shape == (3, 5, 6)
    p = product(w, residual)
    torch.testing.assert_close(acts[-1], x @ p.transpose(1, 2))
    torch.testing.assert_close(linear.end_to_end(w, residual=residual), p)
    # one input per network is accepted too
    xs = torch.randn(3, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(linear.forward(w, xs, residual=residual)[-1], xs @ p.transpose(1, 2))


@pytest.mark.parametrize("residual", [False, True])
def test_backward_matches_autograd(residual):
    w = linear.gaussian(2, 5, 6, seed=2, scale=0.8, device=CPU, dtype=torch.float64)
    x, y = torch.randn(7, 6, dtype=torch.float64), torch.randn(7, 6, dtype=torch.float64)
    wa, xa = w.clone().requires_grad_(True), x.clone().requires_grad_(True)
    acts = linear.forward(wa, xa, residual=residual)
    for a in acts:
        a.retain_grad()
    loss = ((acts[-1] - y) ** 2).sum()
    loss.backward()
    with torch.no_grad():
        acts0 = linear.forward(w, x, residual=residual)
        grads, at_layers = linear.backward(w, acts0, 2 * (acts0[-1] - y), residual=residual)
    torch.testing.assert_close(grads, wa.grad)
    assert at_layers.shape == (2, 6, 7, 6)
    for l, a in enumerate(acts):
        torch.testing.assert_close(at_layers[:, l], a.grad)


@pytest.mark.parametrize("residual", [False, True])
def test_measure_gives_the_exact_expected_loss_and_gradient_norms(residual):
    torch.manual_seed(0)
    w = linear.gaussian(2, 4, 5, seed=3, scale=0.7, device=CPU, dtype=torch.float64)
    a = linear.target_map(5, seed=9, device=CPU, dtype=torch.float64)
    loss, rms, p = linear.measure(w, a, residual=residual)
    torch.testing.assert_close(p, product(w, residual))
    torch.testing.assert_close(loss, ((p - a) ** 2).sum(dim=(1, 2)) / 5)
    # the RMS gradient at layer l is (2/n) ||B_l^T (P - A)||_F, B_l = the layers after l
    for l in range(5):
        after = product(w[:, l:], residual) if l < 4 else torch.eye(5, dtype=torch.float64).expand(2, 5, 5)
        want = (2 / 5) * torch.linalg.matrix_norm(after.transpose(1, 2) @ (p - a))
        torch.testing.assert_close(rms[:, l], want)
    # and both agree with averages over many random inputs
    x = torch.randn(200_000, 5, dtype=torch.float64)
    acts = linear.forward(w, x, residual=residual)
    err = acts[-1] - x @ a.T
    mc_loss = (err ** 2).sum(-1).mean(-1) / 5
    np.testing.assert_allclose(mc_loss.numpy(), loss.numpy(), rtol=0.02)
    _, at_layers = linear.backward(w, acts, 2 * err / 5, residual=residual)
    mc_rms = at_layers.pow(2).sum(-1).mean(-1).sqrt()
    np.testing.assert_allclose(mc_rms.numpy(), rms.numpy(), rtol=0.02)


# --- training -----------------------------------------------------------------------------------
def test_train_records_what_it_says_and_learns():
    a = linear.target_map(8, seed=0, device=CPU)
    w = torch.cat([linear.orthogonal(2, 6, 8, seed=0, device=CPU),
                   linear.gaussian(2, 6, 8, seed=0, device=CPU)])
    h = linear.train(w, a, steps=150, lr=0.02, batch_size=16, record_every=50, progress=False)
    assert list(h.steps) == [0, 50, 100, 150]
    assert h.loss.shape == (4, 4) and h.grad_norms.shape == (4, 4, 7) and h.singular_values.shape == (4, 4, 8)
    assert (h.loss[:2, -1] < 0.5 * h.loss[:2, 0]).all(), "orthogonal networks should learn"
    assert np.all(np.diff(h.singular_values, axis=-1) <= 1e-6), "singular values largest first"
    # the record matches measure() on the trained weights
    loss, rms, _ = linear.measure(w, a)
    np.testing.assert_allclose(h.loss[:, -1], loss.numpy(), rtol=1e-6)
    np.testing.assert_allclose(h.grad_norms[:, -1], rms.numpy(), rtol=1e-5)
    parts = h.split({"orthogonal": 2, "gaussian": 2})
    assert parts["gaussian"].loss.shape == (2, 4)
    np.testing.assert_array_equal(parts["gaussian"].loss, h.loss[2:])


def test_train_is_repeatable_and_networks_do_not_interact():
    a = linear.target_map(8, seed=0, device=CPU)
    w = linear.gaussian(3, 4, 8, seed=0, device=CPU)
    h1 = linear.train(w.clone(), a, steps=20, lr=0.01, record_every=10, seed=4, progress=False)
    h2 = linear.train(w.clone(), a, steps=20, lr=0.01, record_every=10, seed=4, progress=False)
    np.testing.assert_array_equal(h1.loss, h2.loss)
    alone = linear.train(w[1:2].clone(), a, steps=20, lr=0.01, record_every=10, seed=4, progress=False)
    np.testing.assert_allclose(alone.loss[0], h1.loss[1], rtol=1e-5)


def test_a_diverging_network_is_recorded_without_stopping_the_others():
    a = linear.target_map(8, seed=0, device=CPU)
    w = torch.cat([linear.gaussian(1, 10, 8, seed=0, scale=3.0, device=CPU),
                   linear.orthogonal(1, 10, 8, seed=0, device=CPU)])
    h = linear.train(w, a, steps=30, lr=0.05, record_every=10, progress=False)
    assert not np.isfinite(h.loss[0, -1])
    assert np.isfinite(h.loss[1]).all() and h.loss[1, -1] < h.loss[1, 0]
    assert np.isnan(h.singular_values[0, -1]).all()       # no made-up spectrum for the diverged one
    assert np.isfinite(h.singular_values[1]).all()


def test_a_stack_can_mix_plain_and_residual_networks():
    w = linear.gaussian(3, 4, 6, seed=1, scale=0.5, device=CPU, dtype=torch.float64)
    flags = [True, False, True]
    x = torch.randn(5, 6, dtype=torch.float64)
    p = torch.stack([product(w[r:r + 1], flags[r])[0] for r in range(3)])
    torch.testing.assert_close(linear.forward(w, x, residual=flags)[-1], x @ p.transpose(1, 2))
    torch.testing.assert_close(linear.end_to_end(w, residual=flags), p)
    a = linear.target_map(6, seed=2, device=CPU, dtype=torch.float64)
    loss, rms, _ = linear.measure(w, a, residual=flags)
    for r in range(3):
        one = linear.measure(w[r:r + 1], a, residual=flags[r])
        torch.testing.assert_close(loss[r:r + 1], one[0])
        torch.testing.assert_close(rms[r:r + 1], one[1])
    # the backward pass of a mixed stack is autograd's
    wa = w.clone().requires_grad_(True)
    y = torch.randn(5, 6, dtype=torch.float64)
    ((linear.forward(wa, x, residual=flags)[-1] - y) ** 2).sum().backward()
    with torch.no_grad():
        acts = linear.forward(w, x, residual=flags)
        grads, _ = linear.backward(w, acts, 2 * (acts[-1] - y), residual=flags)
    torch.testing.assert_close(grads, wa.grad)


def test_one_training_of_a_mixed_stack_is_the_separate_trainings():
    # plain and residual networks, and two learning rates, in one stack on the same batches: each
    # network ends where it ends when trained alone (float64, so to rounding)
    a = linear.target_map(6, seed=3, device=CPU, dtype=torch.float64)
    w = linear.gaussian(4, 5, 6, seed=2, scale=0.4, device=CPU, dtype=torch.float64)
    flags, rates = [False, True, False, True], [0.01, 0.01, 0.03, 0.03]
    together = linear.train(w.clone(), a, steps=25, lr=rates, residual=flags, record_every=5, seed=7,
                            progress=False)
    for r in range(4):
        alone = linear.train(w[r:r + 1].clone(), a, steps=25, lr=rates[r], residual=flags[r], record_every=5,
                             seed=7, progress=False)
        np.testing.assert_allclose(together.loss[r], alone.loss[0], rtol=1e-12)
        np.testing.assert_allclose(together.grad_norms[r], alone.grad_norms[0], rtol=1e-12)
    assert together.settings["lr"] == rates and together.settings["residual"] == flags


def test_the_result_of_train_does_not_depend_on_the_number_of_workers():
    a = linear.target_map(8, seed=0, device=CPU)
    w = torch.cat([linear.gaussian(3, 6, 8, seed=0, device=CPU),
                   linear.orthogonal(2, 6, 8, seed=1, device=CPU)])
    one, two = w.clone(), w.clone()
    h1 = linear.train(one, a, steps=30, lr=0.02, record_every=10, seed=3, progress=False)
    h2 = linear.train(two, a, steps=30, lr=0.02, record_every=10, seed=3, workers=2, progress=False)
    np.testing.assert_array_equal(h1.steps, h2.steps)
    for field in ("loss", "grad_norms", "singular_values"):     # the same run, to rounding
        np.testing.assert_allclose(getattr(h1, field), getattr(h2, field), rtol=1e-5)
    torch.testing.assert_close(one, two, rtol=1e-5, atol=1e-7)
    assert linear.train(w[:1].clone(), a, steps=2, lr=0.02, workers=4, progress=False).loss.shape == (1, 2)


def test_residual_training_with_zero_branches_starts_at_the_identity():
    a = linear.target_map(6, seed=1, device=CPU, dtype=torch.float64)
    w = torch.zeros(1, 5, 6, 6, dtype=torch.float64)
    loss, rms, p = linear.measure(w, a, residual=True)
    torch.testing.assert_close(p[0], torch.eye(6, dtype=torch.float64))
    assert torch.allclose(rms[0], rms[0, -1].expand(6))   # the identity passes gradients unchanged


# --- argument checks ----------------------------------------------------------------------------
@pytest.mark.parametrize("call, error, message", [
    (lambda: linear.gaussian(0, 2, 4, seed=0), ValueError, "runs must be at least 1"),
    (lambda: linear.gaussian(1, 2.5, 4, seed=0), TypeError, "depth must be a positive integer"),
    (lambda: linear.gaussian(1, 2, True, seed=0), TypeError, "width must be a positive integer"),
    (lambda: linear.gaussian(1, 2, 4, seed=-1), ValueError,
     r"seed must be an integer from 0 to 2\*\*64 - 1, got -1"),
    (lambda: linear.gaussian(1, 2, 4, seed=True), TypeError,
     r"seed must be an integer from 0 to 2\*\*64 - 1, got True"),
    # issue 11: integer dtypes would hold mostly zeros; stacks too large to hold; bad devices
    (lambda: linear.gaussian(1, 2, 4, seed=0, dtype=torch.int64), TypeError,
     r"dtype must be a floating-point torch dtype such as torch.float32 or torch.float64, got torch.int64"),
    (lambda: linear.orthogonal(1, 2, 4, seed=0, dtype=torch.int32), TypeError,
     r"dtype must be a floating-point torch dtype"),
    (lambda: linear.target_map(4, seed=0, dtype=torch.bool), TypeError,
     r"dtype must be a floating-point torch dtype"),
    (lambda: linear.gaussian(10 ** 4, 100, 1000, seed=0), ValueError,
     r"the stack, runs x depth x width x width would be 1,000,000,000,000 numbers"),
    (lambda: linear.gaussian(1, 2, 4, seed=0, device="gpu"), ValueError,
     r"device must name a device such as 'cpu'"),
    (lambda: linear.forward(torch.zeros(2, 1, 4, 4), torch.zeros(3, 4), residual="yes"), TypeError,
     r"residual must be True or False, or a list of 2 of them \(one per network\), got 'yes'"),
    (lambda: linear.forward(torch.zeros(2, 1, 4, 4), torch.zeros(3, 4), residual=[True]), TypeError,
     r"residual must be True or False, or a list of 2 of them"),
    (lambda: linear.train(torch.zeros(2, 1, 4, 4), torch.zeros(4, 4), steps=1, lr=[0.1]), ValueError,
     r"lr must be one number or a list of 2 \(one per network\), got 1 numbers"),
    (lambda: linear.train(torch.zeros(2, 1, 4, 4), torch.zeros(4, 4), steps=1, lr=[0.1, -1]), ValueError,
     r"every lr must be a finite positive number, got -1"),
    (lambda: linear.train(torch.zeros(2, 1, 4, 4), torch.zeros(4, 4), steps=1, lr=0.1, workers=0), ValueError,
     r"workers must be an integer from 1 to 64, got 0"),
    (lambda: linear.backward(torch.zeros(1, 2, 4, 4), [torch.zeros(1, 3, 4)] * 2 + [torch.zeros(1, 2, 4)],
                             torch.zeros(3, 4)), ValueError,
     r"activations\[2\] must be a tensor of shape \(1, 3, 4\)"),
    (lambda: linear.backward(torch.zeros(1, 2, 4, 4), torch.zeros(3, 1, 3, 4), torch.zeros(3, 4)), ValueError,
     r"activations must hold 3 tensors"),
    (lambda: linear.gaussian(1, 2, 4, seed=0, scale=-1), ValueError, "scale must be a finite non-negative"),
    (lambda: linear.gaussian(1, 2, 4, seed=0, scale="1"), TypeError,
     "scale must be a finite non-negative number"),
    (lambda: linear.orthogonal(1, 2, 4, seed=0, scale=float("nan")), ValueError, "scale must be a finite"),
    (lambda: linear.fold(np.zeros((1, 1, 4, 4))), TypeError, "weights must be a torch tensor"),
    (lambda: linear.fold(torch.zeros(1, 4, 4)), ValueError,
     "weights must have shape \\(runs, layers, n, n\\)"),
    (lambda: linear.fold(torch.zeros(1, 1, 4, 3)), ValueError, "square layers"),
    (lambda: linear.fold(torch.zeros(1, 1, 4, 4, dtype=torch.int64)), TypeError, "floating-point"),
    (lambda: linear.fold(torch.zeros(1, 1, 6, 6), 2), ValueError, "width divisible by 4, got 6"),
    (lambda: linear.fold(torch.zeros(1, 1, 4, 4), -1), ValueError, "times must be at least 0"),
    (lambda: linear.initialise("uniform", 1, 1, 4, seed=0), ValueError,
     "kind must be one of 'gaussian', 'folded', 'orthogonal', got 'uniform'"),
    (lambda: linear.forward(torch.zeros(2, 1, 4, 4), torch.zeros(3, 5)), ValueError,
     "x must have shape \\(batch, 4\\)"),
    (lambda: linear.forward(torch.zeros(2, 1, 4, 4), torch.zeros(3, 5, 4)), ValueError, "x must have shape"),
    (lambda: linear.forward(torch.zeros(2, 1, 4, 4), np.zeros((3, 4))), TypeError,
     "x must be a torch tensor"),
    (lambda: linear.backward(torch.zeros(1, 2, 4, 4), [torch.zeros(1, 3, 4)], torch.zeros(3, 4)),
     ValueError, "activations must hold 3 tensors"),
    (lambda: linear.measure(torch.zeros(1, 2, 4, 4), torch.zeros(3, 3)), ValueError,
     "target must have shape \\(4, 4\\)"),
    (lambda: linear.measure(torch.zeros(1, 2, 4, 4), np.zeros((4, 4))), TypeError,
     "target must be a torch tensor"),
    (lambda: linear.train(torch.zeros(1, 2, 4, 4), torch.zeros(4, 4), steps=0, lr=0.1), ValueError,
     "steps must be at least 1"),
    (lambda: linear.train(torch.zeros(1, 2, 4, 4), torch.zeros(4, 4), steps=1, lr=0), ValueError,
     "lr must be a finite positive"),
    (lambda: linear.train(torch.zeros(1, 2, 4, 4), torch.zeros(4, 4), steps=1, lr=0.1, batch_size=0),
     ValueError, "batch_size must be at least 1"),
    (lambda: linear.train(torch.zeros(1, 2, 4, 4), torch.zeros(4, 4), steps=1, lr=0.1, record_every=1.5),
     TypeError, "record_every must be a positive integer"),
])
def test_bad_arguments_are_refused_with_a_clear_message(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_split_refuses_groups_that_do_not_add_up():
    h = linear.train(torch.zeros(2, 1, 4, 4), torch.zeros(4, 4), steps=1, lr=0.1, progress=False)
    with pytest.raises(ValueError, match="groups must add up to the 2 runs"):
        h.split({"a": 1})
    with pytest.raises(TypeError, match=r"groups\['a'\] must be a positive integer, got 1.5"):
        h.split({"a": 1.5, "b": 0.5})
    with pytest.raises(TypeError, match=r"groups must be a dict \{name: number of runs\}"):
        h.split([1, 1])


def test_steps_to_is_the_first_recorded_step_at_or_below_the_loss():
    h = linear.History(settings={}, steps=np.array([0, 10, 20, 30]),
                             loss=np.array([[1.0, 0.5, 0.2, 0.1], [1.0, 0.9, np.nan, np.nan],
                                            [0.05, 0.5, 0.01, 0.0]]),
                             grad_norms=np.zeros((3, 4, 2)), singular_values=np.zeros((3, 4, 2)))
    np.testing.assert_array_equal(h.steps_to(0.2), [20.0, np.inf, 0.0])
    np.testing.assert_array_equal(h.steps_to(0.0), [np.inf, np.inf, 30.0])
    with pytest.raises(ValueError, match="loss must be a finite non-negative number"):
        h.steps_to(-1)
