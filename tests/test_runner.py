"""nblib.runner: jobs on worker processes, costliest first, answers in the jobs' order."""

import os

import pytest

pytest.importorskip("torch")

from nblib import runner  # noqa: E402

def dies(job: list[int]) -> list[int]:
    os._exit(3)                 # the worker process dies, as it would if it ran out of memory


def squares(job: list[int]) -> list[int]:
    return [x * x for x in job]


def process_id(job: list[int]) -> list[int]:
    import time
    time.sleep(0.5)             # long enough for both workers to take a job
    return [os.getpid() for _ in job]


def parent_and_torch(job: list[int]) -> list[tuple[int, bool]]:
    import sys
    return [(os.getppid(), "torch" in sys.modules) for _ in job]


def malloc_kept(job: list[int]) -> list[bool | None]:
    return [runner._KEEPING for _ in job]


def glibc() -> bool:
    import platform
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_freed_memory_is_kept_where_the_c_library_is_glibc():
    assert runner.keep_freed_memory() is glibc()
    assert runner.keep_freed_memory() is glibc()          # once per process: asking again is free


def test_elsewhere_than_linux_malloc_is_left_as_it_is(monkeypatch):
    monkeypatch.setattr(runner.sys, "platform", "darwin")
    monkeypatch.setattr(runner, "_KEEPING", None)
    assert runner.keep_freed_memory() is False


def test_freed_memory_is_kept_in_the_workers_and_for_jobs_run_here(monkeypatch):
    with runner.Workers(2) as workers:
        assert workers.run(malloc_kept, [[1], [2]], progress=False) == [[glibc()], [glibc()]]
    monkeypatch.setattr(runner, "_KEEPING", None)
    assert runner.Workers(1).run(malloc_kept, [[1]], progress=False) == [[glibc()]]


def test_workers_are_forked_from_a_server_that_has_imported_torch_on_linux_and_spawned_elsewhere(monkeypatch):
    linux = runner.sys.platform.startswith("linux")
    assert runner.start_method() == ("forkserver" if linux else "spawn")
    with runner.Workers(2) as workers:
        answers = workers.run(parent_and_torch, [[1], [2]], progress=False)
    parents = {parent for answer in answers for parent, _ in answer}
    assert all(has_torch for answer in answers for _, has_torch in answer)
    # a spawned worker is this process's child; a forked one is the fork server's
    assert (os.getpid() not in parents) if linux else (parents == {os.getpid()})
    for platform in ("darwin", "win32"):
        monkeypatch.setattr(runner.sys, "platform", platform)
        assert runner.start_method() == "spawn" and runner._context().get_start_method() == "spawn"


def test_answers_come_back_in_the_order_of_the_jobs_in_this_process():
    calls = []

    def local(job):
        calls.append(job)
        return squares(job)

    with runner.Workers(1) as workers:
        out = workers.run(squares, [[1], [2, 3, 4], [5, 6]], local=local, progress=False)
    assert out == [[1], [4, 9, 16], [25, 36]]
    assert calls == [[2, 3, 4], [5, 6], [1]]            # costliest (longest) first


def test_worker_processes_give_the_same_answers():
    with runner.Workers(2) as workers:
        assert workers.run(squares, [[1, 2], [3], [4, 5, 6]], progress=False) == [[1, 4], [9], [16, 25, 36]]
        assert workers.run(squares, [[7], [8]], progress=False) == [[49], [64]]   # the pool is kept


def test_a_job_that_answers_the_wrong_number_of_results_is_refused():
    with pytest.raises(RuntimeError, match="a training job of 2 items answered with 1 results"):
        runner.Workers(1).run(lambda job: [0], [[1, 2]], progress=False)


@pytest.mark.parametrize("call, error, words", [
    (lambda: runner.Workers(0), ValueError, "workers must be"),
    (lambda: runner.Workers(2, initializer=3), TypeError, "initializer must be"),
    (lambda: runner.Workers(1).run("f", [[1]]), TypeError, "train must be")])
def test_bad_arguments_are_named(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_default_workers():
    assert runner.default_workers(False) == 1
    assert 1 <= runner.default_workers(True) <= runner.DEFAULT_MAX_WORKERS


def test_runs_trained_in_another_order_come_back_in_the_given_one_with_their_share_of_time():
    from types import SimpleNamespace
    trained = [SimpleNamespace(name=n, seconds=None) for n in ("c", "a", "b")]   # given as a, b, c
    back = runner.in_given_order(trained, [2, 0, 1], seconds=6.0)
    assert [r.name for r in back] == ["a", "b", "c"] and all(r.seconds == 2.0 for r in back)
    with pytest.raises(ValueError, match="order must be a permutation of 0..2"):
        runner.in_given_order(trained, [0, 0, 1], seconds=1.0)


def test_nblib_workers_caps_the_worker_processes(monkeypatch):
    monkeypatch.setenv("NBLIB_WORKERS", "1")
    assert runner.default_workers(on_cpu=True) == 1
    monkeypatch.setenv("NBLIB_WORKERS", "64")                   # a cap, never more than the default
    assert runner.default_workers(on_cpu=True) == min(os.cpu_count() or 1, runner.DEFAULT_MAX_WORKERS)
    assert runner.default_workers(on_cpu=False) == 1
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv("NBLIB_WORKERS", bad)
        with pytest.raises(ValueError, match=r"NBLIB_WORKERS must be a whole number of at least 1 .* got"):
            runner.default_workers(on_cpu=True)


def test_shared_workers_are_kept_for_the_next_caller_and_restart_after_close():
    pool = runner.shared_workers(2)
    assert runner.shared_workers(2) is pool and runner.shared_workers(1) is not pool
    assert pool.run(squares, [[1, 2], [3]], progress=False) == [[1, 4], [9]]
    started = pool._pool
    assert pool.run(squares, [[4], [5]], progress=False) == [[16], [25]] and pool._pool is started
    pool.close()
    assert pool.run(squares, [[6], [7]], progress=False) == [[36], [49]]      # a new pool, same answers
    pool.close()
    with pytest.raises(ValueError, match="workers must be"):
        runner.shared_workers(0)


def test_a_pool_whose_process_died_says_so_and_starts_afresh_next_time():
    from concurrent.futures.process import BrokenProcessPool
    pool = runner.shared_workers(2)
    with pytest.raises(BrokenProcessPool):
        pool.run(dies, [[1], [2]], progress=False)
    assert pool.run(squares, [[3], [4]], progress=False) == [[9], [16]]
    pool.close()


def test_an_interrupt_sent_to_the_workers_leaves_the_pool_usable():
    # Jupyter's interrupt and its kernel shutdown send SIGINT to every process of the kernel's group
    import signal
    import time
    pool = runner.Workers(2)
    try:
        pids = {p for answer in pool.run(process_id, [[1], [2]], progress=False) for p in answer}
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        assert pool.run(squares, [[3], [4]], progress=False) == [[9], [16]]
    finally:
        pool.close()


def interrupts_the_parent(job: list[int]) -> list[int]:
    import signal
    import time
    os.kill(job[0], signal.SIGINT)            # as a reader's interrupt reaches the kernel: job[0] is its pid
    time.sleep(60)
    return job


def test_an_interrupted_run_stops_its_workers_at_once_and_the_next_run_starts_new_ones():
    import time
    pool = runner.Workers(2)
    try:
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            pool.run(interrupts_the_parent, [[os.getpid()], [os.getpid()]], progress=False)
        assert time.perf_counter() - start < 30          # not waiting for the jobs' 60 seconds
        assert pool.run(squares, [[3], [4]], progress=False) == [[9], [16]]
    finally:
        pool.close()


def test_a_pool_broken_between_two_runs_is_started_afresh():
    import signal
    import time
    pool = runner.Workers(2)
    try:
        pids = {p for answer in pool.run(process_id, [[1], [2]], progress=False) for p in answer}
        for pid in pids:
            os.kill(pid, signal.SIGKILL)      # killed while idle: the pool learns it only at the next run
        time.sleep(0.5)
        assert pool.run(squares, [[3], [4]], progress=False) == [[9], [16]]
    finally:
        pool.close()


def test_runs_of_equal_neighbours():
    assert runner.runs_of_equal(["a", "a", "b", "a"]) == [("a", 0, 2), ("b", 2, 3), ("a", 3, 4)]
    assert runner.runs_of_equal([]) == [] and runner.runs_of_equal([(1, True)]) == [((1, True), 0, 1)]
