import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from nblib import recurrent  # noqa: E402
from nblib.recurrent import Config  # noqa: E402

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_adding_problem_marks_one_step_in_each_half_and_targets_their_sum():
    x, y = recurrent.adding_problem(500, 9, torch.Generator().manual_seed(0), on=CPU)
    assert x.shape == (500, 9, 2) and y.shape == (500,)
    values, markers = x[..., 0], x[..., 1]
    assert torch.all(markers.sum(1) == 2)
    assert torch.all(markers[:, :4].sum(1) == 1) and torch.all(markers[:, 4:].sum(1) == 1)
    assert torch.allclose((values * markers).sum(1), y)
    assert values.min() >= 0 and values.max() <= 1


def test_adding_problem_is_repeatable_and_its_baseline_is_one_sixth():
    a = recurrent.adding_problem(5, 6, torch.Generator().manual_seed(3), on=CPU)
    b = recurrent.adding_problem(5, 6, torch.Generator().manual_seed(3), on=CPU)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    _, y = recurrent.adding_problem(200_000, 4, torch.Generator().manual_seed(1), on=CPU)
    assert float(y.mean()) == pytest.approx(1.0, abs=0.01)
    assert float(((y - 1.0) ** 2).mean()) == pytest.approx(recurrent.BASELINE_MSE, rel=0.02)


@pytest.mark.parametrize("args, error, message", [
    ((0, 5), ValueError, "n must be at least 1"),
    ((3, 1), ValueError, "length must be at least 2"),
    ((3, 5.0), TypeError, "length must be an integer"),
])
def test_adding_problem_errors(args, error, message):
    with pytest.raises(error, match=message):
        recurrent.adding_problem(*args)


def test_adding_problem_refuses_a_bad_generator():
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        recurrent.adding_problem(3, 4, generator=42)


@pytest.mark.parametrize("kind", recurrent.KINDS)
def test_recurrent_networks_give_one_number_per_sequence(kind):
    model = recurrent.Recurrent(kind, hidden=5)
    assert model(torch.rand(4, 7, 2)).shape == (4,)


@pytest.mark.parametrize("call, error, message", [
    (lambda: recurrent.Recurrent("transformer"), ValueError, "kind must be one of 'rnn', 'lstm', 'gru'"),
    (lambda: recurrent.Recurrent("rnn", hidden=0), ValueError, "hidden must be at least 1"),
    (lambda: recurrent.Recurrent("rnn")(torch.rand(4, 7)), ValueError,
     r"x must be a tensor of shape \(sequences, steps, 2\)"),
    (lambda: recurrent.Recurrent("rnn")([1, 2]), ValueError, "got list"),
])
def test_recurrent_network_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


class Weighted(nn.Module):
    """f(x) = sum_t w_t x_{t,0}: dL_i/dx_{i,t} = (2 (f_i - y_i) w_t, 0), known in closed form."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return (x[..., 0] * self.w).sum(1)


def test_input_gradients_on_a_model_whose_answer_is_known():
    model = Weighted([0.5, 0.0, -2.0])
    x = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]])
    y = torch.tensor([0.0, 1.0])
    # f = [0.5, -2]; residuals 2(f - y) = [1, -6]; |grad at t| = |residual| * |w_t|, averaged
    np.testing.assert_allclose(recurrent.input_gradients(model, x, y), [0.5 * 3.5, 0.0, 2 * 3.5])
    assert x.grad is None


def test_input_gradients_vanish_for_early_steps_of_a_small_vanilla_rnn():
    torch.manual_seed(0)
    model = recurrent.Recurrent("rnn", hidden=8)
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(0.2)       # a contracting recurrence
    x, y = recurrent.adding_problem(50, 30, torch.Generator().manual_seed(0), on=CPU)
    g = recurrent.input_gradients(model, x, y)
    assert g.shape == (30,) and g[0] < 1e-6 * g[-1]


def test_mse_of_a_model_whose_answer_is_known():
    model = Weighted([1.0, 1.0])
    x = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]])
    assert recurrent.mse(model, x, torch.tensor([1.0])) == pytest.approx(4.0)


def test_input_gradients_refuses_non_models():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        recurrent.input_gradients("rnn", torch.zeros(1, 2, 2), torch.zeros(1))


@pytest.mark.parametrize("changes, error, message", [
    ({"kind": "elman"}, ValueError, "kind must be one of"),
    ({"length": 1}, ValueError, "length must be at least 2"),
    ({"steps": 0}, ValueError, "steps must be at least 1"),
    ({"lr": -1.0}, ValueError, "lr must be a finite positive number"),
    ({"clip": "1"}, TypeError, "clip must be a finite positive number"),
    ({"optimiser": "rmsprop"}, ValueError, "optimiser must be one of 'adam', 'sgd'"),
])
def test_config_errors(changes, error, message):
    with pytest.raises(error, match=message):
        Config(**changes)


TINY = Config(kind="gru", length=6, hidden=4, steps=8, batch=5)


def test_training_returns_plain_numbers_and_is_repeatable():
    run = recurrent.train(TINY, 0, on=CPU)
    assert run.losses.shape == (8,) and run.grad_norms.shape == (8,) and run.update_norms.shape == (8,)
    assert run.input_grads_start.shape == (6,) and run.input_grads_end.shape == (6,)
    assert run.solved == pytest.approx(1 - run.mse / recurrent.BASELINE_MSE)
    again = recurrent.train(TINY, 0, on=CPU)
    np.testing.assert_array_equal(run.losses, again.losses)
    assert not np.array_equal(run.losses, recurrent.train(TINY, 1, on=CPU).losses)


def test_update_norms_are_the_length_of_each_sgd_step():
    config = TINY.but(optimiser="sgd", lr=0.1)
    run = recurrent.train(config, 0, on=CPU)
    np.testing.assert_allclose(run.update_norms, 0.1 * run.grad_norms, rtol=1e-4)
    clipped = recurrent.train(config.but(clip=1e-3), 0, on=CPU)
    np.testing.assert_allclose(clipped.update_norms, 0.1 * 1e-3, rtol=1e-3)


def test_clipping_counts_the_clipped_steps():
    run = recurrent.train(TINY.but(clip=1e-6), 0, on=CPU)
    assert run.clipped == 1.0
    assert recurrent.train(TINY.but(clip=1e6), 0, on=CPU).clipped == 0.0


def test_a_short_adding_problem_is_learned():
    run = recurrent.train(Config(kind="lstm", length=4, hidden=16, steps=300, batch=32, lr=1e-2), 0, on=CPU)
    assert run.solved > 0.8


def test_train_errors():
    with pytest.raises(TypeError, match="config must be a recurrent.Config"):
        recurrent.train({"kind": "rnn"}, 0)
    with pytest.raises(ValueError, match=r"seed must be an integer from 0 to 2\*\*64 - 1, got -2"):
        recurrent.train(TINY, -2)


# --- failing loudly (issue 11) -------------------------------------------------------------------
def test_mse_refuses_targets_that_would_broadcast_to_a_matrix():
    torch.manual_seed(0)
    model = recurrent.Recurrent("rnn", hidden=4)
    x, y = recurrent.adding_problem(8, 5, torch.Generator().manual_seed(0), torch.device("cpu"))
    with torch.no_grad():
        expected = float(((model(x) - y) ** 2).mean())
    assert recurrent.mse(model, x, y) == pytest.approx(expected)
    for bad in (y[:, None], y[:4], y.long()):
        with pytest.raises((ValueError, TypeError),
                           match=r"y (one target per sequence|must hold floating-point)"):
            recurrent.mse(model, x, bad)
    with pytest.raises(ValueError, match=r"x must have shape \(sequences, steps, 2\)"):
        recurrent.input_gradients(model, x[..., :1], y)


def test_a_model_whose_output_would_broadcast_is_refused():
    class Column(torch.nn.Module):
        def forward(self, x):
            return x[:, -1, :1]                  # (n, 1): would broadcast against y of shape (n,)

    x, y = recurrent.adding_problem(6, 4, torch.Generator().manual_seed(1), torch.device("cpu"))
    with pytest.raises(ValueError,
                       match=r"the model must return one number per sequence, shape \(6,\), got \(6, 1\)"):
        recurrent.mse(Column(), x, y)


def test_adding_problem_refuses_bad_devices_and_sizes_too_large():
    with pytest.raises(ValueError, match=r"on must name a device such as 'cpu'"):
        recurrent.adding_problem(3, 4, on="gpu")
    with pytest.raises(ValueError, match=r"the sequences, 3 x n x length would be"):
        recurrent.adding_problem(10 ** 6, 10 ** 4)


def test_but_names_an_unknown_setting():
    with pytest.raises(TypeError,
                       match=r"a recurrent.Config has no setting 'lenght'; its settings are kind, length"):
        Config().but(lenght=3)


# --- Pascanu, Mikolov and Bengio's one-unit network and singular-value condition ---------------------
def test_one_unit_gradient_matches_finite_differences():
    w = np.array([5.0, 1.0, 8.0, -3.0, 12.0])
    b = np.array([-2.5, 0.3, -4.0, 1.0, -6.0])
    loss, dw, db = recurrent.one_unit(w, b, steps=30)
    eps = 1e-6
    fw = (recurrent.one_unit(w + eps, b, steps=30)[0]
          - recurrent.one_unit(w - eps, b, steps=30)[0]) / (2 * eps)
    fb = (recurrent.one_unit(w, b + eps, steps=30)[0]
          - recurrent.one_unit(w, b - eps, steps=30)[0]) / (2 * eps)
    np.testing.assert_allclose(dw, fw, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(db, fb, rtol=1e-5, atol=1e-7)
    assert loss.shape == (5,)


def test_one_unit_with_no_recurrence_is_its_bias():
    # w = 0: x_T = b, so L = (b - 0.7)^2, dL/db = 2 (b - 0.7),
    # dL/dw = 2 (b - 0.7) sigmoid(x_{T-1}) = ... sigmoid(b)
    b = np.array([-1.0, 0.0, 0.7, 2.0])
    loss, dw, db = recurrent.one_unit(0.0, b)
    np.testing.assert_allclose(loss, (b - 0.7) ** 2)
    np.testing.assert_allclose(db, 2 * (b - 0.7))
    np.testing.assert_allclose(dw, 2 * (b - 0.7) / (1 + np.exp(-b)))


def test_one_unit_broadcasts_a_grid_and_names_its_errors():
    loss, dw, db = recurrent.one_unit(np.linspace(0, 10, 7)[None, :], np.linspace(-5, 1, 4)[:, None], steps=5)
    assert loss.shape == dw.shape == db.shape == (4, 7)
    with pytest.raises(ValueError, match="w and b must broadcast together"):
        recurrent.one_unit(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="steps must be at least 1"):
        recurrent.one_unit(1.0, 0.0, steps=0)
    with pytest.raises(ValueError, match="w contains NaN"):
        recurrent.one_unit(np.nan, 0.0)


@pytest.mark.parametrize("nonlinearity", ["tanh", "sigmoid"])
def test_jacobian_norms_match_autograd(nonlinearity):
    rng = np.random.default_rng(0)
    n, steps = 6, 7
    W, u, x0 = 1.5 * rng.standard_normal((n, n)), rng.standard_normal((steps, n)), rng.standard_normal(n)
    norms = recurrent.jacobian_norms(W, steps, nonlinearity=nonlinearity, inputs=u, x0=x0)
    sigma = torch.tanh if nonlinearity == "tanh" else torch.sigmoid
    Wt, ut = torch.tensor(W), torch.tensor(u)
    for t in range(1, steps + 1):
        def state(x):
            for k in range(t):
                x = Wt @ sigma(x) + ut[k]
            return x
        J = torch.autograd.functional.jacobian(state, torch.tensor(x0))
        assert norms[t - 1] == pytest.approx(float(torch.linalg.matrix_norm(J, ord=2)), rel=1e-10)


def test_jacobian_norms_of_a_scaled_orthogonal_matrix_at_rest_are_its_powers():
    # x stays at 0, where tanh' = 1: dx_t/dx_0 = W^t, whose singular values are all s^t
    Q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((8, 8)))
    np.testing.assert_allclose(recurrent.jacobian_norms(0.9 * Q, 20), 0.9 ** np.arange(1, 21), rtol=1e-10)


@pytest.mark.parametrize("nonlinearity, gamma", [("tanh", 1.0), ("sigmoid", 0.25)])
def test_jacobian_norms_respect_the_singular_value_bound(nonlinearity, gamma):
    for seed in range(3):
        W = recurrent.scaled_matrix(16, 3.0, seed)
        assert np.linalg.norm(W, 2) == pytest.approx(3.0)
        u = np.random.default_rng(seed).standard_normal((30, 16))
        norms = recurrent.jacobian_norms(W, 30, nonlinearity=nonlinearity, inputs=u)
        assert np.all(norms <= (gamma * 3.0) ** np.arange(1, 31) * (1 + 1e-9))


@pytest.mark.parametrize("call, error, message", [
    (lambda: recurrent.jacobian_norms(np.zeros((3, 4)), 5), ValueError, "W must be a square matrix"),
    (lambda: recurrent.jacobian_norms(np.zeros(3), 5), ValueError, "W must be a 2-D array"),
    (lambda: recurrent.jacobian_norms(np.eye(3), 5, nonlinearity="relu"), ValueError,
     "nonlinearity must be one of"),
    (lambda: recurrent.jacobian_norms(np.eye(3), 5, inputs=np.zeros((4, 3))), ValueError,
     r"inputs must have shape \(steps, n\)"),
    (lambda: recurrent.jacobian_norms(np.eye(3), 5, x0=np.zeros(2)), ValueError,
     r"x0 must have shape \(3,\)"),
    (lambda: recurrent.scaled_matrix(4, 0.0, 0), ValueError,
     "top_singular_value must be a finite positive number"),
    (lambda: recurrent.scaled_matrix(4, 1.0, -1), ValueError, "seed"),
])
def test_jacobian_norm_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
