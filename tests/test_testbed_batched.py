import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nblib import degeneracy, testbed, testbed_batched  # noqa: E402
from nblib.testbed import Config  # noqa: E402
from nblib.testbed_batched import Runner, _jobs, shape_of, singular_values, train_many  # noqa: E402
from testbed_helpers import small_data  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = Config(depth=3, width=8, steps=12, batch_size=10)
S = Config(depth=4, width=8, steps=30, batch_size=10, lr=0.05)
VARIANTS = [S, S.but(activation="tanh", init="xavier"), S.but(batch_norm=True),
            S.but(residual=True, residual_scale=0.5),
            S.but(residual=True, residual_scale=0.0, learn_scale=True),
            S.but(optimiser="adam", lr=0.01), S.but(optimiser="sgd", lr=0.1, clip=0.05), S.but(l2=0.01),
            S.but(aux_every=2), S.but(activation="sigmoid", init="xavier", batch_norm=True),
            S.but(activation="leaky_relu", init="orthogonal", optimiser="adam", lr=0.003, l2=0.001,
                  aux_every=1),
            S.but(activation="sigmoid", batch_norm=True, bn_noise=0.5)]


def test_batched_training_agrees_with_training_one_network_at_a_time():
    data = small_data(400)
    seeds = list(range(len(VARIANTS)))
    batched = train_many(VARIANTS, data, seeds, probe_every=5)
    for config, seed, b in zip(VARIANTS, seeds, batched):
        a = testbed.train(config, data, seed, probe_every=5)
        assert b.config == config and b.seed == seed and not b.diverged
        np.testing.assert_allclose(b.losses, a.losses, rtol=1e-5)
        np.testing.assert_allclose(b.grad_norms, a.grad_norms, rtol=1e-4)
        assert b.accuracy == pytest.approx(a.accuracy, abs=1e-9) and b.clipped == a.clipped
        np.testing.assert_allclose(b.aux_accuracy, a.aux_accuracy)
        np.testing.assert_array_equal(b.probe.steps, a.probe.steps)
        for metric in a.probe.metrics:
            np.testing.assert_allclose(b.probe[metric], a.probe[metric], rtol=1e-4, atol=1e-7, err_msg=metric)
        assert set(b.final) == set(a.final)
        for metric in a.final:
            np.testing.assert_allclose(b.final[metric], a.final[metric], rtol=1e-4, atol=1e-6, err_msg=metric)


def test_a_diverging_network_stops_and_leaves_the_others_untouched():
    data = small_data(400)
    wild = S.but(optimiser="sgd", lr=1e6)
    batched = train_many([S, wild, S.but(activation="tanh")], data, [0, 0, 1])
    alone = testbed.train(wild, data, 0)
    assert batched[1].diverged and alone.diverged and len(batched[1].losses) == len(alone.losses)
    assert batched[1].final == {} and not math.isfinite(batched[1].losses[-1])
    for i, (config, seed) in enumerate([(S, 0), (None, None), (S.but(activation="tanh"), 1)]):
        if config is not None:
            np.testing.assert_array_equal(batched[i].losses, train_many([config], data, [seed])[0].losses)


def test_a_network_gets_the_same_numbers_whatever_it_is_batched_with():
    data = small_data(400)
    alone = train_many([S], data, [0])[0]
    together = train_many([S.but(lr=0.02), S, S.but(batch_norm=True)], data, [1, 0, 2])[1]
    np.testing.assert_array_equal(alone.losses, together.losses)
    np.testing.assert_array_equal(alone.probe["eff_rank"], together.probe["eff_rank"])


def test_noise_after_batch_norm_moves_training_only():
    data = small_data(400)
    noisy, quiet = train_many([S.but(batch_norm=True, bn_noise=1.0), S.but(batch_norm=True)], data, [0, 0])
    assert not np.array_equal(noisy.losses, quiet.losses)
    assert noisy.losses[0] != quiet.losses[0] and np.isfinite(noisy.losses).all()
    with pytest.raises(ValueError,
                       match="bn_noise moves batch-normalised inputs, so it needs batch_norm=True"):
        S.but(bn_noise=0.5)


def test_a_learned_residual_scale_starting_at_zero_moves():
    data = small_data(400)
    run = train_many([S.but(residual=True, residual_scale=0.0, learn_scale=True, steps=40)], data, [0])[0]
    assert not run.diverged
    model = testbed.DeepMLP(S.but(residual=True, residual_scale=0.0, learn_scale=True))
    assert [b.alpha is not None for b in model.blocks] == [False, True, True, True]


def test_tracking_records_accuracy_and_percentiles_of_the_last_layers_inputs():
    data = small_data(400)
    runs = train_many([S, S.but(batch_norm=True)], data, [0, 0], track_every=10, track_units=3)
    for run in runs:
        t = run.tracked
        assert (list(t.steps) == [0, 10, 20, 30] and t.accuracy.shape == (4,)
                and t.percentiles.shape == (4, 3, 3))
        assert np.all(np.diff(t.percentiles, axis=-1) >= 0)        # 15th <= 50th <= 85th
        assert t.accuracy[-1] == pytest.approx(run.accuracy, abs=0.2)


def test_singular_values_match_numpy_and_give_the_effective_rank():
    a = torch.randn(3, 50, 8, dtype=torch.float64)
    s = singular_values(a)
    for k in range(3):
        np.testing.assert_allclose(s[k].numpy(), np.linalg.svd(a[k].numpy(), compute_uv=False), rtol=1e-8)
        expected = degeneracy.effective_rank(a[k].numpy())
        assert degeneracy.spectrum_effective_rank(s[k].numpy()) == pytest.approx(expected)
    wide = torch.randn(2, 4, 9, dtype=torch.float64)
    np.testing.assert_allclose(singular_values(wide)[0].numpy(),
                               np.linalg.svd(wide[0].numpy(), compute_uv=False), rtol=1e-8)


@pytest.mark.parametrize("call, error, message", [
    (lambda d: train_many([], d, []), TypeError, "configs must be a non-empty list"),
    (lambda d: train_many([S, "x"], d, [0, 1]), TypeError, r"configs\[1\] must be a testbed.Config"),
    (lambda d: train_many([S], "data", [0]), TypeError, "data must be a testbed.Data"),
    (lambda d: train_many([S], d, 0), TypeError, "seeds must be a list"),
    (lambda d: train_many([S], d, [0, 1]), ValueError, "one entry per network"),
    (lambda d: train_many([S, S.but(depth=5)], d, [0, 1]), ValueError,
     "must share depth, width, steps, batch_size"),
    (lambda d: train_many([S], d, [0], track_every=-1), ValueError, "track_every must be at least 0"),
    (lambda d: shape_of("x"), TypeError, "config must be a testbed.Config"),
])
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(small_data(400))


@pytest.mark.parametrize("config", [S, S.but(batch_norm=True), S.but(residual=True),
                                    S.but(activation="tanh", init="xavier")])
def test_moments_at_init_for_all_seeds_at_once_agree_with_the_probe_one_network_at_a_time(config):
    data = small_data(400)
    x, y = data.x_train[:50], data.y_train[:50]
    f, b = testbed_batched.moments_at_init(config, x, y, seeds=range(4))
    f1, b1 = testbed.moments_at_init(config, x, y, seeds=range(4))
    assert f.shape == b.shape == (4, config.depth)
    np.testing.assert_allclose(f, f1, rtol=1e-5)
    np.testing.assert_allclose(b, b1, rtol=1e-4)


# --- the runner ---------------------------------------------------------------------------------
def test_runner_trains_each_config_and_seed_once():
    data = small_data()
    runner = Runner(data, [0, 1], probe_every=5, workers=1)
    runs = runner.run({"a": SMALL, "b": SMALL.but(activation="tanh")}, progress=False)
    assert [r.seed for r in runs["a"]] == [0, 1] and runs["b"][0].config.activation == "tanh"
    again = runner.run({"same as a": SMALL}, progress=False)
    assert again["same as a"][0] is runs["a"][0] and len(runner.runs) == 4
    runner.close()


def test_runner_gives_the_same_numbers_in_worker_processes():
    # the runner trains batched models (testbed_batched.train_many); a run's numbers do not depend
    # on the process, or on which other networks share its batched model
    data = small_data()
    with Runner(data, [3], workers=2) as runner:
        parallel = runner.run({"a": SMALL, "b": SMALL.but(init="orthogonal")}, progress=False)
    torch.set_num_threads(1)
    alone = train_many([SMALL.but(init="orthogonal")], data, [3])[0]
    np.testing.assert_array_equal(parallel["b"][0].losses, alone.losses)
    np.testing.assert_array_equal(parallel["b"][0].probe["eff_rank"], alone.probe["eff_rank"])
    # and they are testbed.train's numbers, to float rounding
    np.testing.assert_allclose(alone.losses, testbed.train(SMALL.but(init="orthogonal"), data, 3).losses,
                               rtol=1e-5)


def test_runner_groups_networks_of_one_shape_into_balanced_jobs():
    todo = ([(SMALL.but(activation=a), s) for a in ("tanh", "relu") for s in (0, 1, 2)]
            + [(SMALL.but(depth=5), 0)])
    jobs = _jobs(todo, 2)
    assert sorted(len(j) for j in jobs) == [1, 3, 3]
    key = lambda cs: (cs[0].activation, cs[0].depth, cs[1])  # noqa: E731
    assert sorted((cs for j in jobs for cs in j), key=key) == sorted(todo, key=key)
    for job in jobs:
        assert len({shape_of(c) for c, _ in job}) == 1
        names = [c.activation for c, _ in job]
        assert names == sorted(names)


@pytest.mark.parametrize("call, error, message", [
    (lambda d: Runner("data", [0]), TypeError, "data must be a testbed.Data"),
    (lambda d: Runner(d, []), ValueError, "seeds is empty"),
    (lambda d: Runner(d, [0], workers=0), ValueError, "workers must be at least 1"),
    (lambda d: Runner(d, [0]).run({}), TypeError, "configs must be a non-empty dict"),
    (lambda d: Runner(d, [0]).run({"a": 3}), TypeError, r"configs\['a'\] must be a testbed.Config"),
    (lambda d: Runner(d, 5), TypeError, r"seeds must be a list of seeds"),
])
def test_runner_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(small_data())


def test_a_diverging_network_among_other_optimisers_leaves_their_state_untouched():
    # the stack orders Adam's models last and steps SGD's and Adam's on their own slices; a model
    # that diverges leaves both slices, and every survivor trains on as it would alone
    data = small_data(400)
    wild = S.but(optimiser="momentum", lr=1e6)
    configs = [S.but(optimiser="adam", lr=0.01), wild, S.but(optimiser="momentum", lr=0.01),
               S.but(optimiser="adam", lr=0.003, batch_norm=True), S.but(residual=True, l2=0.01)]
    batched = train_many(configs, data, [0, 1, 2, 3, 4])
    assert [r.config for r in batched] == configs and batched[1].diverged
    for i, config in enumerate(configs):
        if i != 1:
            assert not batched[i].diverged
            np.testing.assert_array_equal(batched[i].losses, train_many([config], data, [i])[0].losses)
            np.testing.assert_allclose(batched[i].losses, testbed.train(config, data, i).losses, rtol=1e-5)
