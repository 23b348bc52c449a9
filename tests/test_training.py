"""Tests for nblib.training: sgd (both engines) against the per-example reference, what a
History records, determinism, run_parallel, and the checks on the arguments."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

import network2_reference as ref
from nblib import kernels
from nblib.metrics import learning_speeds
from nblib.networks import Network
from nblib.training import History, gradient_descent, run_parallel, sgd
from numeric_helpers import relative_error

ENGINES = ["numpy",
           pytest.param("numba", marks=pytest.mark.skipif(not kernels.available(), reason="no numba"))]



def train(engine="numpy", seed=0, net_seed=1, sizes=(2, 8, 2), data=None, **settings):
    """A float64 network trained with sgd; returns (net, history)."""
    net = Network(list(sizes), seed=net_seed, dtype=np.float64)
    settings = dict(epochs=3, mini_batch_size=10, eta=0.5) | settings
    history = sgd(net, data, seed=seed, engine=engine, progress=False, **settings)
    return net, history


@pytest.fixture
def small(data):
    """37 sparse-ish inputs of width 9, three classes: 37 is not a multiple of the batch size 5."""
    return data(37, 9, 3, seed=3, zeros=0.6)


# --- sgd is network2's SGD --------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_sgd_matches_the_reference_epoch_by_epoch(engine, small):
    x, labels = small
    sizes, epochs, m, eta, lmbda, seed = [9, 6, 5, 3], 3, 5, 0.7, 2.0, 11
    net = Network(sizes, seed=4, dtype=np.float64)
    weights, biases = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    rng = np.random.default_rng(seed)                  # sgd's shuffle: one permutation per epoch
    for _ in range(epochs):
        ref.sgd_epoch(weights, biases, x, labels, rng.permutation(len(x)), m, eta, lmbda)
    sgd(net, (x, labels), epochs=epochs, mini_batch_size=m, eta=eta, lmbda=lmbda, seed=seed,
        engine=engine, progress=False)
    for mine, theirs in zip(net.weights + net.biases, weights + biases):
        assert relative_error(mine, theirs) <= 1e-10


def test_numba_and_numpy_engines_agree_in_float32(small):
    nets = []
    for engine in ("numpy", "numba"):
        net = Network([9, 6, 3], seed=0)
        sgd(net, small, epochs=2, mini_batch_size=4, eta=0.5, lmbda=1.0, engine=engine, progress=False)
        nets.append(net)
    for a, b in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        assert a.dtype == b.dtype == np.float32
        assert relative_error(a, b) <= 1e-5


@pytest.mark.parametrize("engine", ENGINES)
def test_sgd_learns_two_blobs(engine, blobs):
    training, test = blobs
    net, history = train(engine, data=training, epochs=5, evaluation=test)
    assert history.final_accuracy > 0.9
    assert net.accuracy(*test) == history.final_accuracy


# --- what a History records ----------------------------------------------------------------------
def test_sgd_records_accuracy_after_each_epoch(blobs):
    training, test = blobs
    _, history = train(data=training, epochs=4, evaluation=test)
    assert len(history.accuracy) == 4 and all(0 <= a <= 1 for a in history.accuracy)
    assert history.speeds == [] and history.cost == []


def test_sgd_records_speeds_before_training_and_after_each_epoch(blobs):
    training, _ = blobs
    probe = (training[0][:50], training[1][:50])
    at_start = learning_speeds(Network([2, 8, 8, 2], seed=1, dtype=np.float64), *probe)
    net, history = train(sizes=(2, 8, 8, 2), data=training, epochs=3, probe=probe)
    assert len(history.speeds) == 4 and all(len(s) == 2 for s in history.speeds)
    np.testing.assert_allclose(history.speeds[0], at_start, rtol=1e-12)
    np.testing.assert_allclose(history.speeds[-1], learning_speeds(net, *probe), rtol=1e-12)
    assert history.accuracy == []


def test_history_records_the_settings(blobs):
    training, _ = blobs
    _, history = train("numpy", seed=5, data=training, epochs=2, mini_batch_size=7, eta=0.25, lmbda=0.5)
    assert history.sizes == [2, 8, 2]
    assert history.settings == dict(epochs=2, mini_batch_size=7, eta=0.25, lmbda=0.5, seed=5,
                                    engine="numpy", n=200, dtype="float64", frozen=[])
    assert history.seconds > 0
    assert history.as_dict()["settings"] == history.settings


def test_final_accuracy_without_evaluation_data_says_what_to_do(blobs):
    _, history = train(data=blobs[0], epochs=1)
    with pytest.raises(ValueError, match=r"recorded no accuracy: pass evaluation data to sgd\(\)"):
        history.final_accuracy
    with pytest.raises(ValueError, match=r"recorded no accuracy"):
        History([2, 2], {}).final_accuracy


@pytest.mark.parametrize("engine", ENGINES)
def test_sgd_accepts_a_split_like_object_or_a_pair(engine, blobs):
    (x, labels), test = blobs
    split = SimpleNamespace(images=x, labels=labels)
    evaluation = SimpleNamespace(images=test[0], labels=test[1])
    a, ha = train(engine, data=split, evaluation=evaluation, probe=split)
    b, hb = train(engine, data=(x, labels), evaluation=test, probe=(x, labels))
    c, _ = train(engine, data=[x, labels])
    for p, q, r in zip(a.weights + a.biases, b.weights + b.biases, c.weights + c.biases):
        np.testing.assert_array_equal(p, q)
        np.testing.assert_array_equal(p, r)
    assert ha.accuracy == hb.accuracy and ha.speeds == hb.speeds


def test_gradient_descent_records_speeds_and_a_falling_cost(blobs):
    x, labels = blobs[0]
    net = Network([2, 6, 6, 2], seed=0, dtype=np.float64)
    at_start = learning_speeds(net, x, labels)
    history = gradient_descent(net, (x, labels), epochs=30, eta=0.5, lmbda=0.1, progress=False)
    assert len(history.speeds) == 31 and all(len(s) == 2 for s in history.speeds)
    assert len(history.cost) == 30
    np.testing.assert_allclose(history.speeds[0], at_start, rtol=1e-12)
    np.testing.assert_allclose(history.speeds[-1], learning_speeds(net, x, labels), rtol=1e-12)
    assert history.cost[-1] == pytest.approx(net.cost(x, labels, 0.1, len(x)), rel=1e-12)
    assert np.all(np.diff(history.cost) < 0), "full-batch descent with a small step must lower the cost"
    assert history.cost[-1] < 0.5 * history.cost[0]
    assert net.accuracy(x, labels) > 0.9


def test_gradient_descent_is_one_update_over_the_whole_set(small):
    x, labels = small
    net = Network([9, 5, 3], seed=2, dtype=np.float64)
    weights, biases = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    gradient_descent(net, (x, labels), epochs=2, eta=0.4, lmbda=1.5, progress=False)
    for _ in range(2):
        ref.update_mini_batch(weights, biases, x, labels, 0.4, 1.5, len(x))
    for mine, theirs in zip(net.weights + net.biases, weights + biases):
        assert relative_error(mine, theirs) <= 1e-12


# --- determinism ------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_same_seed_gives_bit_identical_runs(engine, blobs):
    training, test = blobs
    runs = [train(engine, seed=3, data=training, evaluation=test, probe=test, lmbda=1.0) for _ in range(2)]
    (a, ha), (b, hb) = runs
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(p, q)
    assert ha.accuracy == hb.accuracy and ha.speeds == hb.speeds and ha.settings == hb.settings


@pytest.mark.parametrize("engine", ENGINES)
def test_different_seeds_give_different_runs(engine, blobs):
    a, _ = train(engine, seed=1, data=blobs[0])
    b, _ = train(engine, seed=2, data=blobs[0])              # same network, other order
    c, _ = train(engine, seed=1, net_seed=2, data=blobs[0])  # same order, other network
    assert not np.array_equal(a.weights[0], b.weights[0])
    assert not np.array_equal(a.weights[0], c.weights[0])


def test_run_parallel_gives_the_plain_loops_results_in_order(blobs):
    training, test = blobs

    def job(seed):
        net, history = train("auto", seed=seed, net_seed=seed, data=training, evaluation=test)
        return net.weights, history.accuracy

    seeds = [4, 1, 3, 2]
    parallel = run_parallel(job, seeds, workers=2, progress=False)
    alone = [job(s) for s in seeds]
    assert len(parallel) == len(seeds)
    for (w_par, acc_par), (w_alone, acc_alone) in zip(parallel, alone):
        assert acc_par == acc_alone
        for p, q in zip(w_par, w_alone):
            np.testing.assert_array_equal(p, q)


def test_run_parallel_keeps_the_order_of_the_arguments_not_of_finishing():
    def job(delay):
        time.sleep(delay)
        return delay

    delays = [0.2, 0.0, 0.1, 0.05]
    assert run_parallel(job, delays, workers=4, progress=False) == delays


def test_run_parallel_passes_exceptions_on():
    def job(a):
        raise RuntimeError(f"job {a} failed")

    with pytest.raises(RuntimeError, match="job 0 failed"):
        run_parallel(job, [0, 1], workers=2, progress=False)


@pytest.mark.parametrize("job, workers, error, message", [
    ("sgd", None, TypeError, r"job must be a function, got 'sgd'"),
    (None, None, TypeError, r"job must be a function, got None"),
    (abs, 0, ValueError, r"workers must be at least 1, got 0"),
    (abs, 1.5, TypeError, r"workers must be a positive integer, got 1.5"),
])
def test_run_parallel_refuses_bad_arguments(job, workers, error, message):
    with pytest.raises(error, match=message):
        run_parallel(job, [1, 2], workers=workers, progress=False)


# --- bad arguments to sgd and gradient_descent --------------------------------------------------
@pytest.mark.parametrize("change, error, message", [
    (dict(eta=-0.1), ValueError, r"eta must be a finite non-negative number, got -0.1"),
    (dict(eta=float("nan")), ValueError, r"eta must be a finite non-negative number, got nan"),
    (dict(eta=float("inf")), ValueError, r"eta must be a finite non-negative number, got inf"),
    (dict(eta="0.1"), TypeError, r"eta must be a finite non-negative number, got '0.1'"),
    (dict(lmbda=-1.0), ValueError, r"lmbda must be a finite non-negative number, got -1.0"),
    (dict(epochs=0), ValueError, r"epochs must be at least 1, got 0"),
    (dict(epochs=2.0), TypeError, r"epochs must be a positive integer, got 2.0"),
    (dict(mini_batch_size=0), ValueError, r"mini_batch_size must be at least 1, got 0"),
    (dict(mini_batch_size=2.5), TypeError, r"mini_batch_size must be a positive integer, got 2.5"),
    (dict(engine="cuda"), ValueError, r"engine must be one of 'auto', 'numba', 'numpy', got 'cuda'"),
    (dict(eta=1.0, lmbda=37.0), ValueError, r"eta \* lmbda / n = 1 must be below 1"),
    (dict(eta=3.0, lmbda=20.0), ValueError, r"eta \* lmbda / n = 1.62\d* must be below 1"),
    (dict(evaluation=(np.zeros((4, 8)), np.zeros(4, int))), ValueError,
     r"evaluation: inputs have 8 columns but the first layer has 9 neurons"),
    (dict(evaluation=(np.zeros((4, 9)), np.zeros(3, int))), ValueError,
     r"evaluation: got 4 inputs but 3 labels"),
    (dict(evaluation=(np.zeros((4, 9)), np.full(4, 3))), ValueError,
     r"evaluation: labels must lie in \[0, 2\]"),
    (dict(evaluation=np.zeros((4, 9))), TypeError,
     r"evaluation must be an nblib.data.Split or an \(images, labels\) pair"),
    (dict(probe=(np.zeros(9), np.zeros(1, int))), ValueError, r"probe: inputs must be a 2-D batch"),
])
def test_sgd_refuses_bad_settings(change, error, message, small):
    settings = dict(epochs=1, mini_batch_size=5, eta=0.5, progress=False) | change
    with pytest.raises(error, match=message):
        sgd(Network([9, 4, 3]), small, **settings)


@pytest.mark.parametrize("training, error, message", [
    (lambda x, y: (x[:, :5], y), ValueError,
     r"training: inputs have 5 columns but the first layer has 9 neurons"),
    (lambda x, y: (x[0], y[:1]), ValueError,
     r"training: inputs must be a 2-D batch of shape \(n, 9\); for one example"),
    (lambda x, y: (x[:0], y[:0]), ValueError, r"training: inputs are empty"),
    (lambda x, y: (x.astype(object), y), TypeError,
     r"training: inputs must be a numeric array, got dtype object"),
    (lambda x, y: (x.astype(str), y), TypeError, r"training: inputs must be a numeric array, got dtype <U"),
    (lambda x, y: (np.where(x > 0.9, np.nan, x), y), ValueError, r"training: inputs contain NaN or infinity"),
    (lambda x, y: (np.where(x > 0.9, -np.inf, x), y), ValueError,
     r"training: inputs contain NaN or infinity"),
    (lambda x, y: (x, y + 1), ValueError,
     r"training: labels must lie in \[0, 2\] for a network with 3 outputs"),
    (lambda x, y: (x, y.astype(float)), TypeError, r"training: labels must be integers"),
    (lambda x, y: (x, y[:, None]), ValueError, r"training: labels must be a 1-D array"),
    (lambda x, y: (x, y[:-1]), ValueError, r"training: got 37 inputs but 36 labels"),
    (lambda x, y: (x, y, y), TypeError,
     r"training must be an nblib.data.Split or an \(images, labels\) pair, got tuple"),
    (lambda x, y: {"x": x, "y": y}, TypeError,
     r"training must be an nblib.data.Split or an \(images, labels\) pair, got dict"),
])
@pytest.mark.parametrize("method", ["sgd", "gradient_descent"])
def test_training_refuses_bad_data(method, training, error, message, small):
    net = Network([9, 4, 3])
    data = training(*small)
    with pytest.raises(error, match=message):
        if method == "sgd":
            sgd(net, data, epochs=1, mini_batch_size=5, eta=0.5, progress=False)
        else:
            gradient_descent(net, data, epochs=1, eta=0.5, progress=False)


@pytest.mark.parametrize("change, error, message", [
    (dict(epochs=0), ValueError, r"epochs must be at least 1"),
    (dict(eta=-1.0), ValueError, r"eta must be a finite non-negative number"),
    (dict(lmbda=float("inf")), ValueError, r"lmbda must be a finite non-negative number, got inf"),
    (dict(eta=2.0, lmbda=20.0), ValueError, r"eta \* lmbda / n = 1.08\d* must be below 1"),
])
def test_gradient_descent_refuses_bad_settings(change, error, message, small):
    settings = dict(epochs=1, eta=0.5, progress=False) | change
    with pytest.raises(error, match=message):
        gradient_descent(Network([9, 4, 3]), small, **settings)


def test_a_refused_run_leaves_the_network_untouched(small):
    net = Network([9, 4, 3], seed=0)
    before = net.copy()
    with pytest.raises(ValueError):
        sgd(net, small, epochs=1, mini_batch_size=5, eta=0.5, evaluation=(np.zeros((2, 8)), np.zeros(2, int)),
            progress=False)
    for p, q in zip(net.weights + net.biases, before.weights + before.biases):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_frozen_layers_keep_their_weights_and_the_others_learn(blobs, engine):
    training, _ = blobs
    net = Network([2, 6, 5, 2], seed=3, dtype=np.float64)
    start = net.copy()
    sgd(net, training, epochs=2, mini_batch_size=10, eta=0.5, lmbda=1.0, seed=0, frozen=[0, -1],
        engine=engine, progress=False)
    for l in (0, 2):
        np.testing.assert_array_equal(net.weights[l], start.weights[l])
        np.testing.assert_array_equal(net.biases[l], start.biases[l])
    assert not np.allclose(net.weights[1], start.weights[1])
    assert not np.allclose(net.biases[1], start.biases[1])


def test_frozen_layers_give_the_same_run_with_both_engines(blobs):
    training, _ = blobs
    nets = []
    for engine in ("numpy", "numba"):
        net = Network([2, 6, 5, 2], seed=3, dtype=np.float64)
        sgd(net, training, epochs=3, mini_batch_size=7, eta=0.5, lmbda=2.0, seed=1, frozen=[1],
            engine=engine, progress=False)
        nets.append(net)
    for a, b in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not kernels.available(), reason="no numba")
@pytest.mark.parametrize("frozen", [[0], [0, 1], [0, 2], [0, 1, 2]])
def test_frozen_bottom_layers_give_the_same_run_with_both_engines(blobs, frozen):
    # with the compiled loop, the data are passed once through frozen layers at the bottom and the
    # layers above train on what comes out: the same run, and the same accuracies, as numpy's
    training, test = blobs
    runs = []
    for engine in ("numpy", "numba"):
        net = Network([2, 6, 5, 2], seed=3, dtype=np.float64)
        start = net.copy()
        history = sgd(net, training, epochs=3, mini_batch_size=7, eta=0.5, lmbda=2.0, seed=1, frozen=frozen,
                      evaluation=test, probe=test, engine=engine, progress=False)
        for l in frozen:
            np.testing.assert_array_equal(net.weights[l], start.weights[l])
        runs.append((net, history))
    (a, ha), (b, hb) = runs
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-12)
    assert ha.accuracy == hb.accuracy
    np.testing.assert_allclose(ha.speeds, hb.speeds, rtol=1e-9)


def test_blas_threads_sets_and_reports_the_number_and_run_parallel_restores_it():
    from nblib import _blas
    from nblib.training import blas_threads
    before = blas_threads(2)
    if before is None:
        pytest.skip("numpy's BLAS is not OpenBLAS here")
    try:
        assert _blas.threads() == 2 and blas_threads(1) == 2 and _blas.threads() == 1
        blas_threads(2)
        assert run_parallel(lambda _: _blas.threads(), [0, 1, 2], workers=2, progress=False) == [1, 1, 1]
        assert _blas.threads() == 2
        with _blas.limited(1):
            with _blas.limited(1):
                assert _blas.threads() == 1
            assert _blas.threads() == 1
        assert _blas.threads() == 2
    finally:
        blas_threads(before)
    for bad, error in ((0, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="n must be"):
            blas_threads(bad)


@pytest.mark.parametrize("frozen, error, message", [
    ([3], ValueError, "frozen layer 3 does not exist"),
    ([-4], ValueError, "frozen layer -4 does not exist"),
    ([0.5], TypeError, "integer layer indices"),
    ("0", TypeError, "list of layer indices"),
    (0, TypeError, "list of layer indices"),
])
def test_bad_frozen_layers_are_refused(blobs, frozen, error, message):
    training, _ = blobs
    with pytest.raises(error, match=message):
        sgd(Network([2, 6, 5, 2]), training, epochs=1, mini_batch_size=10, eta=0.1, frozen=frozen,
            progress=False)


# --- failing loudly (issue 11) -----------------------------------------------------------------
def test_gradient_descent_that_diverges_says_so_instead_of_reporting_cost_zero(small):
    net = Network([9, 3, 3], seed=0)
    with pytest.warns(RuntimeWarning,
                      match=r"gradient_descent diverged: .* at epoch 1, .* try a smaller eta"):
        history = gradient_descent(net, small, epochs=3, eta=1e300, progress=False)
    assert history.diverged and len(history.cost) == 1 and not np.isfinite(history.cost[-1])
    assert len(history.speeds) == len(history.cost) + 1


@pytest.mark.parametrize("engine", ENGINES)
def test_sgd_that_diverges_stops_and_says_so(engine, small):
    net = Network([9, 3, 3], seed=0)
    with pytest.warns(RuntimeWarning, match=r"sgd diverged: the weights stopped being finite at epoch 1"):
        history = sgd(net, small, epochs=4, mini_batch_size=5, eta=1e300, evaluation=small, engine=engine,
                      progress=False)
    assert history.diverged and len(history.accuracy) == 1 and not net.is_finite()


@pytest.mark.parametrize("method", [sgd, gradient_descent])
def test_training_refuses_a_network_that_has_diverged_or_is_not_a_network(method, small):
    settings = dict(epochs=1, eta=0.1, progress=False) | ({"mini_batch_size": 5} if method is sgd else {})
    net = Network([9, 3, 3], seed=0)
    net.biases[0][1] = np.inf
    with pytest.raises(ValueError, match=r"net has NaN or infinite weights \(it has diverged\)"):
        method(net, small, **settings)
    with pytest.raises(TypeError, match=r"net must be an nblib.networks.Network, got NoneType"):
        method(None, small, **settings)


def test_runs_that_do_not_diverge_say_so(blobs):
    _, history = train(data=blobs[0])
    assert history.diverged is False and history.as_dict()["diverged"] is False


@pytest.mark.parametrize("engine", ENGINES)
def test_a_mini_batch_larger_than_the_data_is_the_whole_data_set(engine, small):
    nets = [Network([9, 3, 3], seed=0, dtype=np.float64) for _ in range(2)]
    for net, m in zip(nets, (37, 10 ** 9)):
        sgd(net, small, epochs=2, mini_batch_size=m, eta=0.5, engine=engine, progress=False)
    for p, q in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        np.testing.assert_array_equal(p, q)


def test_history_with_a_numpy_seed_can_be_written_as_json(small):
    import json
    history = sgd(Network([9, 3, 3]), small, epochs=1, mini_batch_size=5, eta=0.1, seed=np.int64(3),
                  progress=False)
    assert type(history.settings["seed"]) is int
    assert json.loads(json.dumps(history.as_dict()))["settings"]["seed"] == 3


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (True, TypeError), (1.5, TypeError),
                                         (None, TypeError)])
def test_sgd_refuses_bad_seeds_naming_seed(seed, error, small):
    with pytest.raises(error, match=r"seed must be an integer from 0 to 2\*\*64 - 1, got"):
        sgd(Network([9, 3, 3]), small, epochs=1, mini_batch_size=5, eta=0.1, seed=seed, progress=False)


def test_progress_must_be_true_false_or_none(small):
    with pytest.raises(TypeError, match=r"progress must be True or False, got 'no'"):
        sgd(Network([9, 3, 3]), small, epochs=1, mini_batch_size=5, eta=0.1, progress="no")


def test_without_numba_training_says_once_what_to_install(monkeypatch, small):
    from nblib import training
    monkeypatch.setattr(kernels, "numba", None)
    monkeypatch.setattr(training, "_told_about_numba", False)
    with pytest.warns(UserWarning,
                      match=r"numba is not installed, so nblib trains with plain numpy .* pip install numba"):
        history = sgd(Network([9, 3, 3]), small, epochs=1, mini_batch_size=5, eta=0.1, progress=False)
    assert history.settings["engine"] == "numpy"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sgd(Network([9, 3, 3]), small, epochs=1, mini_batch_size=5, eta=0.1, progress=False)   # said once


@pytest.mark.parametrize("arguments", [5, "abc", None])
def test_run_parallel_refuses_arguments_that_are_not_a_list(arguments):
    with pytest.raises(TypeError, match=r"arguments must be a list of the jobs' arguments"):
        run_parallel(abs, arguments, progress=False)
