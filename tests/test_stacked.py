"""Tests for nblib.stacked: the initialisations, the stacked forward pass against one network at a
time, SGD with momentum against a hand-written update, independence of the stacked networks,
the recorded statistics on a case with a known answer, and the checks on what comes in."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nblib import stacked  # noqa: E402

CPU = torch.device("cpu")


def small_data(n=60, width=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, width)).astype(np.float32), rng.integers(0, classes, n)


def reference_forward(weights, biases, x):
    """One network, plain torch: sigmoid hidden layers, linear output scores."""
    h = x
    for w, b in zip(weights[:-1], biases[:-1]):
        h = torch.sigmoid(h @ w + b)
    return h @ weights[-1] + biases[-1]


# --- initialisation ------------------------------------------------------------------------------------
def test_init_bounds_and_spreads():
    assert stacked.init_bound("standard", 100, 10) == pytest.approx(0.1)
    assert stacked.init_bound("xavier", 100, 50) == pytest.approx(math.sqrt(6 / 150))
    assert stacked.init_bound("gaussian", 100, 50, scale=4.0) == pytest.approx(0.4)
    net = stacked.StackedMLP([400, 300, 10], ["standard", "xavier", "gaussian"], [0, 0, 0],
                             scales=[1, 1, 2], device=CPU, dtype=torch.float64)
    w = net.weights[0]
    assert w[0].abs().max() <= 1 / 20 and w[0].std().item() == pytest.approx(1 / 20 / math.sqrt(3), rel=0.02)
    bound = math.sqrt(6 / 700)
    assert w[1].abs().max() <= bound and w[1].std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert w[2].std().item() == pytest.approx(2 / 20, rel=0.02) and w[2].mean().abs() < 0.002
    assert all(torch.count_nonzero(b) == 0 for b in net.biases)


def test_same_seed_same_network_different_seed_different_network():
    net = stacked.StackedMLP([6, 4, 3], ["standard"] * 3, [5, 5, 6], device=CPU)
    assert torch.equal(net.weights[0][0], net.weights[0][1])
    assert not torch.equal(net.weights[0][0], net.weights[0][2])
    again = stacked.StackedMLP([6, 4, 3], ["standard"], [5], device=CPU)
    assert torch.equal(again.weights[1][0], net.weights[1][0])
    assert len(net) == 3 and "3 networks" in repr(net)


# --- forward pass and cost --------------------------------------------------------------------------------
def test_stacked_forward_equals_each_network_alone():
    net = stacked.StackedMLP([5, 7, 6, 3], ["standard", "xavier"], [1, 2], device=CPU,
                             dtype=torch.float64)
    x = torch.tensor(small_data()[0][:8], dtype=torch.float64)
    scores, hidden = net.forward(x)
    assert scores.shape == (2, 8, 3) and [h.shape for h in hidden] == [(2, 8, 7), (2, 8, 6)]
    for s in range(2):
        ref = reference_forward([w[s] for w in net.weights], [b[s] for b in net.biases], x)
        torch.testing.assert_close(scores[s], ref, rtol=1e-12, atol=1e-12)


def test_losses_are_mean_cross_entropy_per_network():
    net = stacked.StackedMLP([5, 4, 3], ["gaussian"] * 2, [0, 1], scales=[3.0, 0.5], device=CPU,
                             dtype=torch.float64)
    x, y = small_data(n=10)
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y)
    scores, _ = net.forward(xt)
    expected = [torch.nn.functional.cross_entropy(scores[s], yt).item() for s in range(2)]
    np.testing.assert_allclose(net.losses(xt, yt).numpy(), expected, rtol=1e-12)


# --- training ---------------------------------------------------------------------------------------------
def test_momentum_update_matches_a_hand_written_one():
    x, y = small_data(n=20)
    net = stacked.StackedMLP([5, 4, 3], ["xavier"], [3], device=CPU, dtype=torch.float64)
    params = [p[0].clone().requires_grad_(True) for p in net.parameters()]
    order = stacked._orders([3], 20, 3 * 5)[0]
    eta, mu = 0.5, 0.9
    velocity = [torch.zeros_like(p) for p in params]
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y)
    for step in range(3):                                     # three steps on mini-batches of 5, by hand
        batch = order[step * 5:(step + 1) * 5]
        ws, bs = params[:2], params[2:]
        loss = torch.nn.functional.cross_entropy(reference_forward(ws, [b[0] for b in bs], xt[batch]),
                                                 yt[batch])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, v, g in zip(params, velocity, grads):
                v.mul_(mu).sub_(eta * g)
                p.add_(v)
    stacked.train(net, x, y, steps=3, batch_size=5, eta=eta, momentum=mu, progress=False)
    for ours, theirs in zip(net.parameters(), params):
        torch.testing.assert_close(ours[0], theirs.detach(), rtol=1e-12, atol=1e-12)


def test_stacked_networks_train_independently():
    x, y = small_data(n=40)
    together = stacked.StackedMLP([5, 6, 3], ["standard", "gaussian"], [0, 1], scales=[1, 2], device=CPU,
                                  dtype=torch.float64)
    stacked.train(together, x, y, steps=6, batch_size=8, eta=[0.3, 0.1], momentum=[0.0, 0.5], progress=False)
    for s, (init, seed, scale, eta, mu) in enumerate([("standard", 0, 1, 0.3, 0.0),
                                                      ("gaussian", 1, 2, 0.1, 0.5)]):
        alone = stacked.StackedMLP([5, 6, 3], [init], [seed], scales=[scale], device=CPU, dtype=torch.float64)
        stacked.train(alone, x, y, steps=6, batch_size=8, eta=eta, momentum=mu, progress=False)
        for a, b in zip(together.parameters(), alone.parameters()):
            torch.testing.assert_close(a[s], b[0], rtol=1e-12, atol=1e-12)


def test_training_reduces_the_cost_and_records_when_asked():
    x, y = small_data(n=200, width=4, classes=2, seed=1)
    y = (x[:, 0] > x[:, 1]).astype(np.int64)                  # a learnable rule
    net = stacked.StackedMLP([4, 8, 2], ["xavier"] * 2, [0, 1], device=CPU)
    record = stacked.train(net, x, y, steps=300, batch_size=10, eta=0.5, momentum=0.9, probe_data=(x, y),
                           record_every=100, progress=False)
    arrays = record.arrays()
    assert list(arrays["steps"]) == [0, 100, 200, 300]
    assert arrays["mean"].shape == (4, 2, 1) and arrays["loss"].shape == (4, 2)
    assert np.all(arrays["loss"][-1] < arrays["loss"][0]) and np.all(arrays["accuracy"][-1] > 0.8)
    assert record.seconds > 0


def test_gradients_are_autograds():
    net = stacked.StackedMLP([5, 7, 6, 3], ["standard", "xavier", "gaussian"], [1, 2, 3],
                             scales=[1, 1, 3], device=CPU, dtype=torch.float64)
    x, y = small_data(n=9)
    xt = torch.tensor(x, dtype=torch.float64).expand(3, -1, -1)
    yt = torch.tensor(y).expand(3, -1)
    grads, loss = stacked.gradients(net, xt, yt)
    params = [p.clone().requires_grad_(True) for p in net.parameters()]
    expected = []
    for s in range(3):
        h = xt[s]
        for w, b in zip(params[:3][:-1], params[3:][:-1]):
            h = torch.sigmoid(h @ w[s] + b[s])
        expected.append(torch.nn.functional.cross_entropy(h @ params[2][s] + params[5][s], yt[s]))
    torch.autograd.backward(sum(expected))
    torch.testing.assert_close(loss, torch.stack(expected).detach(), rtol=1e-12, atol=1e-12)
    for ours, p in zip(grads, params):
        torch.testing.assert_close(ours, p.grad, rtol=1e-10, atol=1e-12)


def test_probe_statistics_are_the_direct_ones():
    net = stacked.StackedMLP([5, 7, 4, 3], ["gaussian"] * 2, [0, 1], scales=[2.0, 0.5], device=CPU,
                             dtype=torch.float64)
    x, y = small_data(n=30)
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y)
    stats = stacked.measure(net, xt, yt)
    _, hidden = net.forward(xt)
    for l, h in enumerate(hidden):
        for s in range(2):
            np.testing.assert_allclose(stats["mean"][s, l], h[s].mean().item(), rtol=1e-12)
            np.testing.assert_allclose(stats["std"][s, l], h[s].std().item(), rtol=1e-9)
            np.testing.assert_allclose(stats["slope"][s, l], (h[s] * (1 - h[s])).mean().item(), rtol=1e-9)


def test_the_result_of_train_does_not_depend_on_the_number_of_workers():
    x, y = small_data(n=50)
    runs = []
    for workers in (1, 2, 3):
        net = stacked.StackedMLP([5, 6, 4, 3], ["standard", "xavier", "gaussian"], [0, 1, 2], device=CPU,
                                 dtype=torch.float64)
        record = stacked.train(net, x, y, steps=12, batch_size=5, eta=[0.3, 0.2, 0.1],
                               momentum=[0.0, 0.9, 0.5], probe_data=(x, y), record_every=4, workers=workers,
                               progress=False)
        runs.append((net, record.arrays()))
    for net, arrays in runs[1:]:          # the same run, to rounding (a batched product of a different
        for a, b in zip(net.parameters(), runs[0][0].parameters()):          # number of matrices may add up
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)           # in another order)
        for key, value in arrays.items():
            np.testing.assert_allclose(value, runs[0][1][key], rtol=1e-12, atol=1e-14)
    assert list(runs[0][1]["steps"]) == [0, 4, 8, 12]


def test_probe_on_a_network_with_zero_weights():
    net = stacked.StackedMLP([3, 4, 4, 2], ["gaussian"], [0], device=CPU, dtype=torch.float64)
    for w in net.weights:
        w.zero_()
    x, y = np.random.default_rng(0).random((10, 3)), np.array([0, 1] * 5)
    stats = stacked.measure(net, torch.tensor(x), torch.tensor(y))
    np.testing.assert_allclose(stats["mean"], 0.5)                     # sigma(0) everywhere
    np.testing.assert_allclose(stats["std"], 0.0, atol=1e-15)
    np.testing.assert_allclose(stats["slope"], 0.25)                   # sigma'(0)
    np.testing.assert_allclose(stats["loss"], math.log(2))             # equal scores: ln(classes)
    assert stats["accuracy"].shape == (1,)


# --- the checks on what comes in ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    (dict(sizes=[3, 2], inits=["standard"], seeds=[0]), ValueError, "at least one hidden layer"),
    (dict(sizes=[3, 2, 2], inits="standard", seeds=[0]), TypeError, "inits must be a non-empty list"),
    (dict(sizes=[3, 2, 2], inits=["standard"], seeds=[0, 1]), ValueError, "one entry per network"),
    (dict(sizes=[3, 2, 2], inits=["glorot"], seeds=[0]), ValueError, "every init must be one of"),
    (dict(sizes=[3, 2, 2], inits=["standard"], seeds=[0.5]), TypeError,
     r"every seed must be an integer from 0 to 2\*\*64 - 1"),
    (dict(sizes=[3, 2, 2], inits=["standard"], seeds=[True]), TypeError,
     r"every seed must be an integer from 0 to 2\*\*64 - 1"),
    (dict(sizes=[3, 2, 2], inits=["standard"], seeds=[2 ** 62]), ValueError,
     r"every seed must be an integer from 0 to 1844674407370955"),
    (dict(sizes=[3, 2, 2], inits=["gaussian"], seeds=[0], scales=[-1]), ValueError,
     "every scale must be a finite positive number"),
    (dict(sizes=[3, 2, 2], inits=["standard"], seeds=[0], dtype=torch.int32), TypeError, "dtype must be"),
])
def test_bad_networks_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        stacked.StackedMLP(**kwargs, device=CPU)


def test_bad_inputs_are_refused():
    net = stacked.StackedMLP([3, 2, 2], ["standard"] * 2, [0, 1], device=CPU)
    x, y = np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1])
    cases = [
        (lambda: net.forward(np.zeros((2, 3))), TypeError, "x must be a torch tensor"),
        (lambda: net.forward(torch.zeros(2, 4)), ValueError, "x must have shape"),
        (lambda: net.losses(torch.zeros(2, 3), torch.zeros(2)), TypeError, "labels must be a torch int64"),
        (lambda: net.losses(torch.zeros(2, 3), torch.zeros(3, dtype=torch.int64)), ValueError,
         "labels must have shape"),
        (lambda: stacked.train(net, x, y, steps=0, batch_size=2, eta=0.1), ValueError,
         "steps must be at least 1"),
        (lambda: stacked.train(net, x, y, steps=1, batch_size=2.0, eta=0.1), TypeError,
         "batch_size must be a positive"),
        (lambda: stacked.train(net, x, y, steps=1, batch_size=2, eta=[0.1]), TypeError, "list of 2 numbers"),
        (lambda: stacked.train(net, x, y, steps=1, batch_size=2, eta=-0.1), ValueError, "every eta must be"),
        (lambda: stacked.train(net, x, y, steps=1, batch_size=2, eta=0.1, momentum=1.0), ValueError,
         "momentum must be below 1"),
        (lambda: stacked.train(net, x, y, steps=1, batch_size=2, eta=0.1, record_every=1), ValueError,
         "needs probe_data"),
        (lambda: stacked.train(net, x, y, steps=1, batch_size=2, eta=0.1, record_every=-1), ValueError,
         "record_every"),
        (lambda: stacked.train(net, x, y, steps=1, batch_size=2, eta=0.1, workers=0), ValueError,
         "workers must be an integer from 1 to 64"),
        (lambda: stacked.gradients("net", torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64)), TypeError,
         "stack must be"),
        (lambda: stacked.train(net, x[:, :2], y, steps=1, batch_size=2, eta=0.1), ValueError,
         "images must have shape"),
        (lambda: stacked.train(net, x, y[:3], steps=1, batch_size=2, eta=0.1), ValueError,
         "labels must have shape"),
        (lambda: stacked.train(net, x, y + 5, steps=1, batch_size=2, eta=0.1), ValueError,
         "labels must lie in"),
        (lambda: stacked.train(net, x, y * 1.0, steps=1, batch_size=2, eta=0.1), TypeError,
         "labels must be integers"),
        (lambda: stacked.train(net, x * np.nan, y, steps=1, batch_size=2, eta=0.1), ValueError,
         "NaN or infinity"),
        (lambda: stacked.train(net, x.astype(str), y, steps=1, batch_size=2, eta=0.1), TypeError,
         "numeric array"),
        # issue 11
        (lambda: stacked.train("net", x, y, steps=1, batch_size=2, eta=0.1), TypeError,
         "stack must be an nblib.stacked.StackedMLP"),
        (lambda: stacked.measure("net", torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64)), TypeError,
         "stack must be"),
        (lambda: stacked.train(net, x, y, steps=1, batch_size=2, eta=0.1, probe_data=x), TypeError,
         r"probe_data must be an nblib.data.Split or an \(images, labels\) pair"),
        (lambda: stacked.train(net, x, y, steps=10 ** 6, batch_size=10 ** 3, eta=0.1), ValueError,
         r"the examples' order, networks x steps x batch_size would be 2,000,000,000 numbers"),
        (lambda: stacked.init_bound("standard", 0, 2), ValueError, "n_in must be at least 1"),
        (lambda: stacked.init_bound("gaussian", 3, 2, scale=float("nan")), ValueError,
         "scale must be a finite positive"),
        (lambda: stacked.StackedMLP([3, 2, 2], ["standard"], [0], device="gpu"), ValueError,
         "device must name a device"),
    ]
    for make, error, message in cases:
        with pytest.raises(error, match=message):
            make()


def test_epoch_orders_are_permutations():
    orders = stacked._orders([0, 1], 5, 12)
    assert orders.shape == (2, 12)
    for row in orders:
        assert sorted(row[:5]) == list(range(5)) and sorted(row[5:10]) == list(range(5))
    assert not np.array_equal(orders[0], orders[1])
