import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from nblib import initialisation, plots, stats, testbed, testbed_batched  # noqa: E402
from nblib.testbed import Config  # noqa: E402
from testbed_helpers import small_data  # noqa: E402

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = Config(depth=3, width=8, steps=12, batch_size=10)


# --- configuration ----------------------------------------------------------------------------
@pytest.mark.parametrize("changes, error, message", [
    ({"depth": 0}, ValueError, "depth must be at least 1"),
    ({"width": 2.5}, TypeError, "width must be a positive integer"),
    ({"steps": True}, TypeError, "steps must be a positive integer"),
    ({"aux_every": -1}, ValueError, "aux_every must be at least 0"),
    ({"activation": "swish"}, ValueError,
     "activation must be one of 'sigmoid', 'tanh', 'relu', 'leaky_relu'"),
    ({"init": "lecun"}, ValueError, "init must be one of 'normal', 'xavier', 'he', 'orthogonal'"),
    ({"optimiser": "rmsprop"}, ValueError, "optimiser must be one of 'sgd', 'momentum', 'adam'"),
    ({"batch_norm": 1}, TypeError, "batch_norm must be True or False"),
    ({"lr": 0}, ValueError, "lr must be a finite positive number"),
    ({"lr": "0.1"}, TypeError, "lr must be a finite positive number"),
    ({"l2": -1.0}, ValueError, "l2 must be a finite non-negative number"),
    ({"clip": float("inf")}, ValueError, "clip must be a finite positive number"),
])
def test_config_refuses_bad_values(changes, error, message):
    with pytest.raises(error, match=message):
        Config(**changes)


def test_config_but_changes_one_field_and_configs_are_hashable():
    base = Config()
    tanh = base.but(activation="tanh")
    assert tanh.activation == "tanh" and tanh.depth == base.depth and base.activation == "relu"
    assert len({base, tanh, base.but()}) == 2


# --- the network ------------------------------------------------------------------------------
def test_network_shape_blocks_and_auxiliary_heads():
    model = testbed.DeepMLP(Config(depth=6, width=5, aux_every=2), n_in=7)
    assert len(model.blocks) == 6 and model.aux_at == [2, 4] and len(model.aux) == 2
    logits, aux = model.forward_all(torch.randn(3, 7))
    assert logits.shape == (3, 10) and [a.shape for a in aux] == [(3, 10), (3, 10)]
    assert list(model.probe_layers()) == [f"hidden {l}" for l in range(1, 7)]
    assert model(torch.randn(3, 7)).shape == (3, 10)


def test_residual_blocks_add_their_input_except_the_first():
    model = testbed.DeepMLP(Config(depth=3, width=4, residual=True, activation="relu"), n_in=6)
    assert [b.residual for b in model.blocks] == [False, True, True]
    block = model.blocks[1]
    h = torch.randn(2, 4)
    assert torch.allclose(block(h), h + torch.relu(block.linear(h)))


def test_batch_norm_blocks_have_no_bias():
    model = testbed.DeepMLP(Config(depth=2, width=4, batch_norm=True), n_in=3)
    assert model.blocks[0].linear.bias is None and isinstance(model.blocks[0].norm, nn.BatchNorm1d)


def test_network_refuses_a_non_config():
    with pytest.raises(TypeError, match="config must be a testbed.Config"):
        testbed.DeepMLP({"depth": 3})


@pytest.mark.parametrize("name", initialisation.ACTIVATIONS)
def test_activation_modules(name):
    z = torch.tensor([-2.0, 0.5])
    expected = {"sigmoid": torch.sigmoid(z), "tanh": torch.tanh(z), "relu": torch.relu(z),
                "leaky_relu": torch.tensor([-0.02, 0.5])}[name]
    assert torch.allclose(initialisation.activation_module(name)(z), expected)


def test_activation_module_refuses_unknown_names():
    with pytest.raises(ValueError, match="activation must be one of"):
        initialisation.activation_module("elu")


# --- initialisation -----------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", initialisation.INITS)
def test_initial_weight_variance_matches_the_formula(scheme):
    torch.manual_seed(0)
    layer = nn.Linear(300, 200)
    initialisation.initialise(layer, scheme, "relu")
    expected = initialisation.weight_variance(scheme, 300, 200, "relu")
    assert layer.weight.var().item() == pytest.approx(expected, rel=0.03)
    assert torch.count_nonzero(layer.bias) == 0


def test_xavier_is_uniform_within_its_bound_and_orthogonal_rows_are_orthonormal():
    torch.manual_seed(0)
    layer = initialisation.initialise(nn.Linear(50, 30), "xavier")
    assert layer.weight.abs().max() <= math.sqrt(6 / 80)
    layer = initialisation.initialise(nn.Linear(50, 30), "orthogonal", "tanh")
    assert torch.allclose(layer.weight @ layer.weight.T, torch.eye(30), atol=1e-5)
    layer = initialisation.initialise(nn.Linear(30, 30), "orthogonal", "relu")
    assert torch.allclose(layer.weight @ layer.weight.T, 2 * torch.eye(30), atol=1e-5)


@pytest.mark.parametrize("call, message", [
    (lambda: initialisation.initialise(nn.Linear(2, 2), "glorot"), "scheme must be one of"),
    (lambda: initialisation.initialise(nn.Linear(2, 2), "he", "elu"), "activation must be one of"),
    (lambda: initialisation.weight_variance("lecun", 2, 2), "scheme must be one of"),
    (lambda: initialisation.weight_variance("he", 0, 2), "fan_in must be at least 1"),
])
def test_initialisation_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- what the formulas predict ----------------------------------------------------------------
def test_predicted_moments_of_relu_networks_in_closed_form():
    forward, backward = initialisation.predicted_moments("he", "relu", 5, 10, input_sq=50.0, n_in=100)
    # q_1 = (2/100) * 50 = 1, E[relu(z)^2] = q/2, and He keeps it there; the gradient stays put
    np.testing.assert_allclose(forward, 0.5, rtol=1e-3)
    np.testing.assert_allclose(backward, 1.0, rtol=1e-3)
    forward, backward = initialisation.predicted_moments("xavier", "relu", 4, 10, input_sq=55.0, n_in=100)
    q1 = 2 / 110 * 55
    np.testing.assert_allclose(forward, [q1 / 2 / 2 ** l for l in range(4)], rtol=1e-3)
    np.testing.assert_allclose(backward, [1 / 8, 1 / 4, 1 / 2, 1], rtol=1e-3)


def test_predicted_moments_of_tanh_with_tiny_weights_is_linear():
    # with q tiny, tanh(z) ~ z: Xavier on square layers keeps E[a^2] and the gradient constant
    forward, backward = initialisation.predicted_moments("xavier", "tanh", 3, 20, input_sq=1e-6, n_in=20)
    np.testing.assert_allclose(forward, 1e-6 / 20, rtol=1e-3)
    np.testing.assert_allclose(backward, 1.0, rtol=1e-3)


def test_predicted_moments_errors():
    with pytest.raises(ValueError, match="activation must be one of"):
        initialisation.predicted_moments("he", "elu", 3, 4, 1.0)
    with pytest.raises(ValueError, match="input_sq must be a finite positive number"):
        initialisation.predicted_moments("he", "relu", 3, 4, 0.0)


def test_measured_moments_of_a_wide_relu_network_match_the_prediction():
    from nblib.probe import Probe
    torch.manual_seed(0)
    config = Config(depth=4, width=400)
    model = testbed.DeepMLP(config, n_in=50)
    x = torch.rand(500, 50)
    probe = Probe(model, model.probe_layers())
    with probe.step():
        model(x).logsumexp(1).mean().backward()
    h = probe.history()
    measured = h["act_std"][0] ** 2 + h["act_mean"][0] ** 2
    forward, backward = initialisation.predicted_moments("he", "relu", 4, 400, float((x ** 2).sum(1).mean()),
                                                         n_in=50)
    np.testing.assert_allclose(measured, forward, rtol=0.15)
    grads = h["act_grad_rms"][0] ** 2
    np.testing.assert_allclose(grads / grads[-1], backward, rtol=0.25)


# --- optimiser and clipping -------------------------------------------------------------------
def test_optimiser_kinds_and_l2_on_linear_weights_only():
    model = testbed.DeepMLP(Config(depth=2, width=4, batch_norm=True, l2=0.01), n_in=3)
    for name, cls, momentum in (("sgd", torch.optim.SGD, 0.0), ("momentum", torch.optim.SGD, 0.9),
                                ("adam", torch.optim.Adam, None)):
        opt = testbed.make_optimiser(Config(optimiser=name, l2=0.01), model)
        assert isinstance(opt, cls)
        if momentum is not None:
            assert opt.param_groups[0]["momentum"] == momentum
        decayed, rest = opt.param_groups
        assert decayed["weight_decay"] == 0.01 and rest["weight_decay"] == 0.0
        linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
        assert {id(p) for p in decayed["params"]} == linear_weights
        assert len(rest["params"]) == len(list(model.parameters())) - len(linear_weights)


def test_clip_by_norm_follows_the_formula_and_matches_torch():
    a, b = torch.zeros(3, requires_grad=True), torch.zeros(4, requires_grad=True)
    a.grad, b.grad = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 4.0, 0.0, 0.0])
    assert testbed.clip_by_norm([a, b], 1.0) == pytest.approx(5.0)
    assert (torch.allclose(a.grad, torch.tensor([0.6, 0.0, 0.0]))
            and torch.allclose(b.grad[1], torch.tensor(0.8)))
    assert testbed.clip_by_norm([a, b], 2.0) == pytest.approx(1.0)          # below the threshold: untouched
    assert torch.allclose(a.grad, torch.tensor([0.6, 0.0, 0.0]))
    torch.manual_seed(0)
    p, q = torch.randn(5, requires_grad=True), torch.randn(5, requires_grad=True)
    p.grad, q.grad = torch.randn(5), torch.randn(5)
    p2, q2 = p.detach().clone().requires_grad_(), q.detach().clone().requires_grad_()
    p2.grad, q2.grad = p.grad.clone(), q.grad.clone()
    ours = testbed.clip_by_norm([p, q], 0.5)
    theirs = torch.nn.utils.clip_grad_norm_([p2, q2], 0.5)
    assert ours == pytest.approx(float(theirs), rel=1e-6)
    assert torch.allclose(p.grad, p2.grad, atol=1e-6) and torch.allclose(q.grad, q2.grad, atol=1e-6)
    assert testbed.clip_by_norm([torch.zeros(2, requires_grad=True)], 1.0) == 0.0


@pytest.mark.parametrize("bad, error", [(0.0, ValueError), (-1, ValueError), ("1", TypeError)])
def test_clip_by_norm_refuses_bad_thresholds(bad, error):
    with pytest.raises(error, match="max_norm must be"):
        testbed.clip_by_norm([], bad)


# --- data, accuracy, training -------------------------------------------------------------------
def test_prepare_takes_the_first_images_of_each_split():
    split = lambda n, seed: type("Split", (), {"images": np.random.default_rng(seed).random((n, 4)),  # noqa: E731
                                               "labels": np.arange(n) % 10})()
    mnist = type("MNIST", (), {"training": split(30, 0), "validation": split(20, 1)})()
    data = testbed.prepare(mnist, n_train=10, on=CPU)
    assert data.x_train.shape == (10, 4) and data.x_val.shape == (20, 4) and data.y_train.dtype == torch.int64
    with pytest.raises(TypeError, match="mnist must be what nblib.data.load_mnist"):
        testbed.prepare((1, 2))
    with pytest.raises(ValueError, match="n_train must be an integer from 1 to 30, got 0"):
        testbed.prepare(mnist, n_train=0, on=CPU)
    with pytest.raises(ValueError, match="n_val must be an integer from 1 to 20, got 21"):   # not silently 20
        testbed.prepare(mnist, n_val=21, on=CPU)


def test_accuracy_of_a_model_whose_answer_is_known():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [2.0, 1.0]])
    assert testbed.accuracy(model, x, torch.tensor([0, 1, 1, 1]), batch=3) == 0.5
    assert model.training


def test_training_returns_plain_numbers_and_is_repeatable():
    data = small_data()
    run = testbed.train(SMALL, data, seed=1, probe_every=4)
    assert isinstance(run, testbed.Run) and not run.diverged
    assert run.losses.shape == (12,) and run.grad_norms.shape == (12,) and list(run.probe.steps) == [0, 4, 8]
    assert run.probe["grad_norm"].shape == (3, 3) and run.final["dead"].shape == (3,)
    assert 0 <= run.accuracy <= 1 and run.clipped == 0.0 and run.seconds > 0
    again = testbed.train(SMALL, data, seed=1, probe_every=4)
    np.testing.assert_array_equal(run.losses, again.losses)
    assert run.accuracy == again.accuracy
    other = testbed.train(SMALL, data, seed=2, probe_every=4)
    assert not np.array_equal(run.losses, other.losses)
    assert run.grad_ratio("start") == pytest.approx(run.probe["grad_norm"][0, 0]
                                                    / run.probe["grad_norm"][0, -1])
    assert run.grad_ratio("end", records=2) == pytest.approx(np.mean(run.probe.ratio_first_to_last()[-2:]))
    with pytest.raises(ValueError, match="when must be one of 'start', 'end', got 'middle'"):
        run.grad_ratio("middle")


def test_training_learns_the_toy_problem():
    run = testbed.train(Config(depth=2, width=32, steps=300, batch_size=20, optimiser="adam", lr=3e-3),
                        small_data(n=1000), seed=0)
    assert run.accuracy > 0.4        # chance is 0.1
    assert run.losses[-20:].mean() < run.losses[:20].mean()


def test_clipping_and_deep_supervision_and_divergence():
    data = small_data()
    run = testbed.train(SMALL.but(clip=1e-3, aux_every=1), data, seed=0)
    assert run.clipped == 1.0
    exploding = Config(depth=6, width=32, init="normal", optimiser="sgd", lr=1e3, steps=50, batch_size=10)
    run = testbed.train(exploding, data, seed=0)
    assert run.diverged and len(run.losses) < 50 and run.final == {}


@pytest.mark.parametrize("args, error, message", [
    (("config", "data", 0), TypeError, "config must be a testbed.Config"),
    ((SMALL, "data", 0), TypeError, "data must be a testbed.Data"),
    ((SMALL, None, -1), TypeError, "data must be a testbed.Data"),
])
def test_train_errors(args, error, message):
    with pytest.raises(error, match=message):
        testbed.train(*args)


def test_train_refuses_negative_seeds():
    with pytest.raises(ValueError, match=r"seed must be an integer from 0 to 2\*\*64 - 1, got -1"):
        testbed.train(SMALL, small_data(), -1)


# --- summaries and tables -----------------------------------------------------------------------
def test_summary_numbers_of_known_runs():
    data = small_data()
    runs = [testbed.train(SMALL, data, seed=s, probe_every=4) for s in (0, 1)]
    s = testbed.summarise(runs)
    np.testing.assert_allclose(s.accuracy, [100 * r.accuracy for r in runs])
    np.testing.assert_allclose(s.ratio_start, [r.grad_ratio("start") for r in runs])
    np.testing.assert_allclose(s.dead, [100 * np.mean(r.final["dead"]) for r in runs])
    assert np.all(np.isnan(s.saturated)) and not s.diverged.any() and s.seconds.shape == (2,)
    table = plots.results_table({"small": testbed.summarise(runs)}, caption="c")
    assert table.rows[0][0] == "small" and table.rows[0][7] == "0/2" and "c" in repr(table)
    with pytest.raises(TypeError, match="runs must be a non-empty list of testbed.Run"):
        testbed.summarise([])


def test_a_diverged_run_is_summarised_with_nans():
    exploding = Config(depth=6, width=32, init="normal", optimiser="sgd", lr=1e3, steps=50, batch_size=10)
    s = testbed.summarise([testbed.train(exploding, small_data(), seed=0)])
    assert s.diverged.all() and np.isnan(s.ratio_end[0]) and np.isnan(s.dead[0]) and np.isnan(s.eff_rank[0])


def test_means_and_number_formatting():
    assert stats.geometric_mean([1e-2, 1e2, np.nan, 0.0]) == pytest.approx(1.0)
    assert np.isnan(stats.geometric_mean([np.nan]))
    assert stats.finite_mean([1.0, np.nan, 3.0]) == 2.0 and np.isnan(stats.finite_mean([np.nan]))
    assert plots.short_number(3.14159) == "3.14" and plots.short_number(1.5e-9) == "1.5e-09"
    assert plots.short_number(123456.0) == "1.2e+05" and plots.short_number(np.nan) == "–"
    assert plots.short_number(0.0, 1) == "0.0" and plots.short_number(2.345, 1) == "2.3"


def test_moments_at_init_shapes_and_errors():
    x, y = torch.rand(50, 6), torch.randint(0, 10, (50,))
    f, b = testbed.moments_at_init(Config(depth=3, width=5), x, y, seeds=[0, 1])
    assert f.shape == (2, 3) and b.shape == (2, 3) and np.all(f > 0) and np.all(b > 0)
    with pytest.raises(TypeError, match="config must be a testbed.Config"):
        testbed.moments_at_init("c", x, y, [0])
    with pytest.raises(ValueError, match="seeds is empty"):
        testbed.moments_at_init(Config(depth=3, width=5), x, y, [])


def test_auxiliary_classifiers_are_scored():
    run = testbed.train(SMALL.but(depth=4, aux_every=2), small_data(), seed=0)
    assert len(run.aux_accuracy) == 1 and 0 <= run.aux_accuracy[0] <= 1


# --- failing loudly (issue 11) -------------------------------------------------------------------
def test_grad_ratio_refuses_a_number_of_records_that_is_not_positive():
    run = testbed.train(SMALL, small_data(), seed=0, probe_every=4)
    ratios = run.probe.ratio_first_to_last("grad_norm")
    assert run.grad_ratio("end", records=2) == pytest.approx(ratios[-2:].mean())
    assert run.grad_ratio("end", records=100) == pytest.approx(ratios.mean())      # all there are
    for records, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError)):
        with pytest.raises(error, match="records must be"):
            run.grad_ratio("end", records=records)


@pytest.mark.parametrize("change, error, message", [
    (dict(y_train=lambda d: d.y_train.int()), TypeError,
     r"y_train must hold int64 class indices \(torch.long; use y_train.long\(\)\), got torch.int32"),
    (dict(y_val=lambda d: d.y_val + 10), ValueError,
     r"y_val must lie in \[0, 9\] \(DeepMLP has 10 outputs\), got values from 10"),
    (dict(y_train=lambda d: d.y_train[:-1]), ValueError,
     r"y_train must have one label per image, 100, got 99"),
    (dict(x_val=lambda d: d.x_val[:, :5]), ValueError, r"x_val must have shape \(n, 20\)"),
    (dict(x_train=lambda d: d.x_train.long()), TypeError, r"x_train must hold floating-point numbers"),
    (dict(x_train=lambda d: torch.full_like(d.x_train, float("nan"))), ValueError, r"x_train contains NaN"),
    (dict(x_val=lambda d: d.x_val.numpy()), TypeError, r"x_val must be a torch tensor, got ndarray"),
    (dict(x_val=lambda d: d.x_val[:0]), ValueError, r"x_val must have shape \(n, 20\) with n >= 1"),
])
def test_data_refuses_what_training_would_fail_on_deep_inside_torch(change, error, message):
    good = small_data()
    fields = {k: getattr(good, k) for k in ("x_train", "y_train", "x_val", "y_val")}
    fields.update({k: f(good) for k, f in change.items()})
    with pytest.raises(error, match=message):
        testbed.Data(**fields)


@pytest.mark.parametrize("call, error, message", [
    (lambda m, d: testbed.accuracy(m, d.x_val[:0], d.y_val[:0]), ValueError,
     r"x must have shape \(n, features\) with n >= 1"),
    (lambda m, d: testbed.accuracy(m, d.x_val, d.y_val, batch=0), ValueError, r"batch must be at least 1"),
    (lambda m, d: testbed.accuracy(m, d.x_val, d.y_val[:3]), ValueError, r"y must have one label per image"),
    (lambda m, d: testbed.accuracy("m", d.x_val, d.y_val), TypeError,
     r"model must be a torch.nn.Module, got str"),
    (lambda m, d: testbed.moments_at_init(SMALL, d.x_val, d.y_val.int(), [0]), TypeError,
     r"y must hold int64"),
    (lambda m, d: testbed.moments_at_init(SMALL, d.x_val, d.y_val, 3), TypeError,
     r"seeds must be a list of seeds"),
    (lambda m, d: testbed_batched.moments_at_init(SMALL, d.x_val, d.y_val.int(), [0]), TypeError,
     r"y must hold int64"),
    (lambda m, d: testbed_batched.moments_at_init(SMALL, d.x_val[:, :3], d.y_val[:5], [0]), ValueError,
     r"y must have one label per image"),
    (lambda m, d: testbed_batched.moments_at_init("c", d.x_val, d.y_val, [0]), TypeError,
     r"config must be a testbed.Config, got str"),
    (lambda m, d: testbed.train(SMALL, d, 0, probe_every=0), ValueError, r"probe_every must be at least 1"),
    (lambda m, d: initialisation.predicted_moments("he", "relu", 10 ** 7, 48, 1.0), ValueError,
     r"depth must be an integer from 1 to 10000, got 10000000"),
    (lambda m, d: initialisation.predicted_moments("he", ["relu"], 3, 4, 1.0), ValueError,
     r"activation must be one of"),
    (lambda m, d: initialisation.predicted_moments("bogus", "relu", 3, 4, 1.0), ValueError,
     r"scheme must be one of"),
    (lambda m, d: initialisation.weight_variance("he", 4, 4, "swish"), ValueError,
     r"activation must be one of"),
    (lambda m, d: initialisation.initialise("m", "he"), TypeError, r"model must be a torch.nn.Module"),
    (lambda m, d: testbed.make_optimiser(SMALL, "m"), TypeError, r"model must be a torch.nn.Module"),
    (lambda m, d: testbed.clip_by_norm(3, 1.0), TypeError, r"parameters must be the model's parameters"),
    (lambda m, d: stats.finite_mean(["a"]), TypeError, r"values must hold real numbers"),
    (lambda m, d: stats.geometric_mean(None), TypeError, r"values must hold real numbers"),
    (lambda m, d: plots.short_number("1.5"), TypeError, r"x must be a real number, got '1.5'"),
    (lambda m, d: plots.short_number(1.5, decimals=-1), ValueError,
     r"decimals must be an integer from 0 to 20"),
    (lambda m, d: plots.results_table([]), TypeError, r"summaries must be a non-empty dict"),
    (lambda m, d: plots.results_table({"a": [1]}), TypeError,
     r"summaries\['a'\] must be a summary over seeds"),
    (lambda m, d: testbed.Block(-1, 4, "relu", False, False), ValueError, r"n_in must be at least 1, got -1"),
    (lambda m, d: testbed.Block(4, 4, "relu", 0, False), TypeError, r"batch_norm must be True or False"),
])
def test_helpers_check_their_arguments(call, error, message):
    data = small_data()
    with pytest.raises(error, match=message):
        call(testbed.DeepMLP(SMALL, n_in=20), data)


def test_the_helpers_still_accept_what_the_chapter_gives_them():
    assert stats.finite_mean([1.0, np.nan, 3.0]) == 2.0 and math.isnan(stats.finite_mean([]))
    assert stats.geometric_mean(np.array([[1.0, 100.0]])) == pytest.approx(10.0)
    assert plots.short_number(np.float64(0.5)) == "0.50" and plots.short_number(math.nan) == "–"


def test_but_names_an_unknown_setting():
    with pytest.raises(TypeError,
                       match=r"a testbed.Config has no setting 'dpth'; its settings are depth, width"):
        SMALL.but(dpth=3)
