import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from nblib import degeneracy  # noqa: E402
from nblib.plots import plot_probe_history as plot_history  # noqa: E402  (drawing what a probe records)
from nblib.probe import METRICS, History, Probe  # noqa: E402


def known_relu_model() -> nn.Sequential:
    """x -> ReLU(W1 x) -> sum of the two units; W1 = [[1, 0], [0, -1]], no biases in the output."""
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        model[0].bias.zero_()
        model[2].weight.fill_(1.0)
    return model


X = torch.tensor([[1.0, 2.0], [3.0, 4.0]])   # pre-activations [[1, -2], [3, -4]]: unit 2 is dead


def one_step(model, probe, lr=0.1):
    optimiser = torch.optim.SGD(model.parameters(), lr=lr)
    with probe.step():
        loss = model(X).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def all_hooks(model):
    hooks = 0
    for m in model.modules():
        hooks += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
    for p in model.parameters():
        hooks += len(p._backward_hooks or {})
    return hooks


def test_numbers_on_a_model_whose_answer_is_known():
    model = known_relu_model()
    probe = Probe(model)
    assert probe.names == ["0"]
    one_step(model, probe, lr=0.1)
    h = probe.history()
    assert h.layers == ["0"] and list(h.steps) == [0]
    # activations [[1, 0], [3, 0]]: mean 1, sd sqrt(2) (n - 1), unit 2 dead on every example
    assert h["act_mean"][0, 0] == pytest.approx(1.0)
    assert h["act_std"][0, 0] == pytest.approx(math.sqrt(2.0))
    assert h["dead"][0, 0] == pytest.approx(0.5)
    assert math.isnan(h["saturated"][0, 0])
    # dL/da = 1 everywhere; dL/dz = [[1, 0], [1, 0]]; dL/dW1 = [[4, 6], [0, 0]]; dL/db1 = [2, 0]
    assert h["act_grad_rms"][0, 0] == pytest.approx(1.0)
    assert h["grad_norm"][0, 0] == pytest.approx(math.sqrt(52.0))
    assert h["bias_grad_norm"][0, 0] == pytest.approx(2.0)
    assert h["weight_norm"][0, 0] == pytest.approx(math.sqrt(2.0))
    assert h["update_ratio"][0, 0] == pytest.approx(0.1 * math.sqrt(52.0) / math.sqrt(2.0))
    # centred activations [[-1, 0], [1, 0]] have one direction
    assert h["eff_rank"][0, 0] == pytest.approx(1.0)


def test_effective_rank_is_that_of_the_centred_activations():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh())
    x = torch.randn(40, 5)
    stats = Probe(model).measure(x)
    a = torch.tanh(model[0](x)).detach().double().numpy()
    assert stats["eff_rank"][0] == pytest.approx(degeneracy.effective_rank(a - a.mean(axis=0)))
    assert stats["act_mean"][0] == pytest.approx(a.mean())
    assert stats["act_std"][0] == pytest.approx(a.std(ddof=1))


@pytest.mark.parametrize("activation, z, expected", [
    (nn.Sigmoid(), [0.0, 10.0, -10.0, 1.0], 0.5),     # sigma' = 0.25, 4.5e-5, 4.5e-5, 0.197
    (nn.Tanh(), [0.0, 3.0, -3.0, 0.5], 0.5),           # 1 - tanh^2 = 1, 0.0099, 0.0099, 0.79
])
def test_saturation_of_sigmoid_and_tanh(activation, z, expected):
    model = nn.Sequential(nn.Linear(1, 1), activation)
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
    stats = Probe(model).measure(torch.tensor(z).reshape(-1, 1))
    assert stats["saturated"][0] == pytest.approx(expected)
    assert math.isnan(stats["dead"][0])


def test_leaky_relu_units_count_as_dead_when_negative_for_every_example():
    model = nn.Sequential(nn.Linear(2, 2), nn.LeakyReLU(0.01))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        model[0].bias.zero_()
    assert Probe(model).measure(X)["dead"][0] == pytest.approx(0.5)


def test_hooks_exist_only_inside_a_recorded_step_and_are_removed_even_after_an_error():
    model = known_relu_model()
    probe = Probe(model, every=2)
    assert all_hooks(model) == 0
    with probe.step() as recorded:
        assert recorded and all_hooks(model) > 0
        model(X).sum().backward()
    assert all_hooks(model) == 0
    with probe.step() as recorded:          # step 1 is not recorded: nothing is attached
        assert not recorded and all_hooks(model) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with probe.step():
            model(X)
            raise RuntimeError("boom")
    assert all_hooks(model) == 0
    probe.measure(X)
    assert all_hooks(model) == 0


def test_every_records_every_nth_step():
    model = known_relu_model()
    probe = Probe(model, every=3)
    for _ in range(7):
        one_step(model, probe)
    h = probe.history()
    assert list(h.steps) == [0, 3, 6]
    assert all(h[m].shape == (3, 1) for m in METRICS)


def test_measure_records_nothing_and_history_starts_empty():
    model = known_relu_model()
    probe = Probe(model)
    probe.measure(X)
    h = probe.history()
    assert len(h.steps) == 0 and h["grad_norm"].shape == (0, 1)


def test_gradient_is_summed_over_two_backward_passes_in_one_step():
    model = known_relu_model()
    probe = Probe(model)
    with probe.step():
        model(X).sum().backward()
        model(X).sum().backward()
    h = probe.history()
    assert h["grad_norm"][0, 0] == pytest.approx(2 * math.sqrt(52.0))
    assert h["act_mean"][0, 0] == pytest.approx(1.0)     # both forward passes, pooled
    assert h["update_ratio"][0, 0] == 0.0                # no optimiser step


def test_a_forward_pass_without_backward_leaves_gradients_nan():
    model = known_relu_model()
    probe = Probe(model)
    with probe.step(), torch.no_grad():
        model(X)
    h = probe.history()
    assert math.isnan(h["grad_norm"][0, 0]) and math.isnan(h["act_grad_rms"][0, 0])
    assert h["dead"][0, 0] == pytest.approx(0.5)


def test_default_layers_pair_weights_with_the_activation_after_them():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(),
                          nn.Linear(4, 2))
    probe = Probe(model)
    assert probe.names == ["0", "3"]
    assert probe.pairs == [(model[0], model[2]), (model[3], model[4])]


def test_explicit_layers_and_a_layer_without_activation():
    model = known_relu_model()
    probe = Probe(model, {"hidden": (model[0], model[1]), "output": (model[2], None)})
    one_step(model, probe)
    h = probe.history()
    assert h.layers == ["hidden", "output"]
    assert h["grad_norm"][0, 1] == pytest.approx(4.0)     # dL/dW2 = the sum of the activations, [4, 0]
    assert math.isnan(h["act_mean"][0, 1])
    assert Probe(model, [(model[0], model[1])]).names == ["layer 1"]


def test_convolutional_model_counts_channels_as_units():
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([1.0, -1.0, 0.5]))
    x = torch.randn(5, 1, 4, 4)
    probe = Probe(model)
    assert probe.names == ["0"]
    with probe.step():
        model(x).sum().backward()
    h = probe.history()
    assert h["dead"][0, 0] == pytest.approx(1 / 3)           # the channel with bias -1
    assert h["act_mean"][0, 0] == pytest.approx(0.5)
    assert h["eff_rank"][0, 0] == 0.0                         # every position gives the same output


def test_ratio_first_to_last_and_missing_metric():
    h = History(["a", "b"], np.array([0, 1]), {"grad_norm": np.array([[1.0, 4.0], [3.0, 3.0]])})
    np.testing.assert_allclose(h.ratio_first_to_last(), [0.25, 1.0])
    with pytest.raises(KeyError, match="no metric 'speed'"):
        h["speed"]
    with pytest.raises(ValueError, match="metric must be one of 'grad_norm', .*, got 'speed'"):
        h.ratio_first_to_last("speed")
    with pytest.raises(ValueError, match="this history has no 'dead'; it holds grad_norm"):
        h.ratio_first_to_last("dead")


def test_the_probe_does_not_change_training():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    b = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    probe = Probe(b)
    for model, p in ((a, None), (b, probe)):
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(3):
            if p is None:
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad(); loss.backward(); opt.step()  # noqa: E702
            else:
                with p.step():
                    loss = nn.functional.cross_entropy(model(x), y)
                    opt.zero_grad(); loss.backward(); opt.step()  # noqa: E702
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


# --- errors ---------------------------------------------------------------------------------
class FunctionalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return torch.relu(self.fc(x))


class TupleAct(nn.Module):
    def forward(self, x):
        return x, x


@pytest.mark.parametrize("model, kwargs, error, message", [
    ("not a model", {}, TypeError, "model must be a torch.nn.Module"),
    (FunctionalNet(), {}, ValueError,
     "found no layer to probe in FunctionalNet.*torch.relu cannot be hooked"),
    (nn.Sequential(nn.ReLU(), nn.Tanh()), {}, ValueError, "found no layer to probe"),
    (known_relu_model(), {"every": 0}, ValueError, "every must be at least 1"),
    (known_relu_model(), {"every": 1.5}, TypeError, "every must be a positive integer"),
    (known_relu_model(), {"saturation": 1.0}, ValueError, "saturation must be a number between 0 and 1"),
    (known_relu_model(), {"rank_rows": 0}, ValueError, "rank_rows must be at least 1"),
    (known_relu_model(), {"layers": "0"}, TypeError, "layers must be a dict or list"),
    (known_relu_model(), {"layers": []}, ValueError, "layers is empty"),
    (known_relu_model(), {"layers": [nn.ReLU()]}, TypeError,
     r"must be a \(weight module, activation module\) pair"),
    (known_relu_model(), {"layers": [(nn.ReLU(), None)]}, TypeError,
     "must be a module with a weight parameter"),
    (known_relu_model(), {"layers": [(nn.Linear(2, 2), nn.ReLU())]}, ValueError, "is not part of the model"),
    (known_relu_model(), {"layers": {"x": (nn.Linear(2, 2), "relu")}}, TypeError, "must be a module or None"),
])
def test_modules_and_arguments_it_cannot_probe(model, kwargs, error, message):
    with pytest.raises(error, match=message):
        Probe(model, **kwargs)


def test_a_watched_module_returning_a_tuple_is_refused_and_hooks_are_removed():
    model = nn.Sequential(nn.Linear(2, 2), TupleAct())
    probe = Probe(model, [(model[0], model[1])])
    with pytest.raises(TypeError, match="only watch modules that return one tensor; TupleAct returned tuple"):
        probe.measure(X)
    assert all_hooks(model) == 0


def test_measure_refuses_non_tensors():
    with pytest.raises(TypeError, match="inputs must be a torch.Tensor"):
        Probe(known_relu_model()).measure([[1.0, 2.0]])


# --- the picture ------------------------------------------------------------------------------
def recorded_history(steps=6):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    probe = Probe(model)
    x = torch.randn(8, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        with probe.step():
            loss = model(x).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()  # noqa: E702
    return probe.history()


def test_plot_history_draws_one_line_per_layer_in_each_panel():
    import matplotlib
    matplotlib.use("Agg")
    axes = plot_history(recorded_history(), ("grad_norm", "dead"), title="t", smooth=2)
    assert len(axes) == 2 and all(len(ax.lines) == 2 for ax in axes)
    assert len(axes[0].lines[0].get_xdata()) == 5      # 6 records smoothed over 2


@pytest.mark.parametrize("kwargs, error, message", [
    ({"history": "h"}, TypeError, "history must be what a probe recorded"),
    ({"metrics": "grad_norm"}, ValueError, "metrics must be a non-empty list"),
    ({"metrics": ["speed"]}, ValueError, "unknown metric 'speed'"),
    ({"smooth": 0}, ValueError, "smooth must be at least 1"),
    ({"axes": [None, None, None]}, ValueError, "axes must be a list of 4 matplotlib Axes, one per metric"),
    ({"axes": "abcd"}, ValueError, "axes must be a list of 4 matplotlib Axes"),
    ({"axes": [None] * 4}, ValueError, "axes must be a list of 4 matplotlib Axes"),
    ({"title": None}, TypeError, "title must be a string, got None"),
])
def test_plot_history_errors(kwargs, error, message):
    args = {"history": recorded_history(2), "title": "t", **kwargs}
    with pytest.raises(error, match=message):
        plot_history(args.pop("history"), **args)


def test_plot_history_refuses_an_empty_history():
    model = known_relu_model()
    with pytest.raises(ValueError, match="history is empty"):
        plot_history(Probe(model).history(), title="t")


def test_measure_runs_in_evaluation_mode_and_leaves_batch_norm_statistics_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    before = (model[1].running_mean.clone(), model[1].running_var.clone(), int(model[1].num_batches_tracked))
    Probe(model).measure(3.0 + 2.0 * torch.randn(50, 4))
    assert model.training                                      # the mode it was in is restored
    assert torch.equal(model[1].running_mean, before[0]) and torch.equal(model[1].running_var, before[1])
    assert int(model[1].num_batches_tracked) == before[2]
    model.eval()
    Probe(model).measure(torch.randn(5, 4))
    assert not model.training


def test_effective_rank_uses_rows_spread_over_the_whole_batch():
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(3))
    x = torch.rand(40, 3) + 0.1            # positive: the ReLU passes it unchanged
    x[:10] = x[0]                            # the first ten rows are one point
    rank = Probe(model, rank_rows=10).measure(x)["eff_rank"][0]
    rows = x[torch.linspace(0, 39, 10).round().long()]
    assert rank == pytest.approx(degeneracy.effective_rank((rows - rows.mean(0)).numpy()))
    assert rank > 1.5                        # the first ten rows alone would give 0


# --- one activation module shared by several layers (issue 11) ----------------------------------
class SharedAct(nn.Module):
    """The common pattern: one self.act = nn.ReLU() applied after every hidden layer in forward."""

    def __init__(self, widths=(3, 5, 4, 2)):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = (nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


@pytest.mark.parametrize("widths", [(3, 5, 4, 2), (3, 4, 4, 4)],
                         ids=["layers of different widths", "equal widths"])
def test_a_shared_activation_found_by_itself_is_refused_saying_how_to_pass_layers(widths):
    torch.manual_seed(0)
    model = SharedAct(widths)
    probe = Probe(model)
    with pytest.raises(ValueError,
                       match=r"the activation module 'act' ran after 'fc1', but the probe pairs it only "
                             r"with 'fc3'.*Probe\(model, layers=\{\"fc1\": \(model.fc1, model.act\)"):
        with probe.step():
            model(torch.randn(6, widths[0])).sum().backward()
    assert all_hooks(model) == 0 and len(probe.history().steps) == 0
    with pytest.raises(ValueError, match=r"pass the layers"):
        probe.measure(torch.randn(6, widths[0]))


def test_a_shared_activation_passed_as_layers_is_measured_after_each_layer_separately():
    torch.manual_seed(0)
    model = SharedAct()
    x = torch.randn(6, 3)
    probe = Probe(model, {"first": (model.fc1, model.act), "second": (model.fc2, model.act)})
    with probe.step():
        model(x).sum().backward()
    h = probe.history()
    with torch.no_grad():
        a1 = torch.relu(model.fc1(x))
        a2 = torch.relu(model.fc2(a1))
    assert h["act_mean"][0].tolist() == pytest.approx([float(a1.mean()), float(a2.mean())])
    assert h["act_std"][0].tolist() == pytest.approx([float(a1.std()), float(a2.std())])
    stats = probe.measure(x)
    assert stats["act_mean"].tolist() == pytest.approx([float(a1.mean()), float(a2.mean())])


def test_one_relu_placed_twice_in_a_sequential_gives_two_layers():
    torch.manual_seed(0)
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(3, 5), relu, nn.Linear(5, 4), relu, nn.Linear(4, 2))
    probe = Probe(model)
    assert probe.names == ["0", "2"]
    x = torch.randn(7, 3)
    stats = probe.measure(x)
    with torch.no_grad():
        a1 = torch.relu(model[0](x))
        a2 = torch.relu(model[2](a1))
    assert stats["act_mean"].tolist() == pytest.approx([float(a1.mean()), float(a2.mean())])


def test_saturation_may_be_a_numpy_number():
    assert Probe(known_relu_model(), saturation=np.float32(0.1)).saturation == pytest.approx(0.1)
    with pytest.raises(TypeError, match=r"saturation must be a number between 0 and 1, got '0.1'"):
        Probe(known_relu_model(), saturation="0.1")


def test_plot_history_accepts_the_array_of_axes_that_plt_subplots_returns():
    import matplotlib.pyplot as plt
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    probe = Probe(model)
    with probe.step():
        model(torch.randn(5, 3)).sum().backward()
    fig, axes = plt.subplots(1, 2)
    assert len(plot_history(probe.history(), ("grad_norm", "dead"), title="t", axes=axes)) == 2
    plt.close(fig)


def test_plot_history_draws_the_chosen_layers_with_a_colour_bar_for_many_layers():
    import matplotlib.pyplot as plt
    history = History([f"hidden {l}" for l in range(1, 11)], np.array([0, 5]),
                           {m: np.ones((2, 10)) for m in METRICS})
    axes = plot_history(history, ("grad_norm", "dead", "eff_rank"), title="t", layers=[1, 5, 10], ncols=3)
    assert [len(ax.lines) for ax in axes] == [3, 3, 3]
    assert len(axes[0].figure.axes) == 4                 # three panels and the colour bar
    assert axes[0].figure.get_size_inches()[0] == 8
    plt.close("all")
    with pytest.raises(ValueError, match="every entry of layers must be an integer from 1 to 10"):
        plot_history(history, ("grad_norm",), title="t", layers=[0])
