"""Jobs of training on worker processes, costliest first: chapter 4's testbed and chapter 5's
recurrent networks both hand their batched jobs to :class:`Workers`.

A job is a list of items (a (config, seed) pair, say) that one call of a module-level function
trains together and answers with one result per item. On a CPU the jobs go to processes
(forked from a server that has imported torch, on Linux; spawned elsewhere: :func:`start_method`),
each using one torch thread (for layers this small, faster than one process using every core);
with one worker, or one job, they run in this process. Either way
``malloc`` keeps freed memory for reuse (:func:`keep_freed_memory`). A seeded job gives the same
numbers wherever it runs."""

from __future__ import annotations

import atexit
import ctypes
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

from . import checks
from .progress import bar as progress_bar

DEFAULT_MAX_WORKERS = 4
# glibc's mallopt parameters (malloc.h) and the values keep_freed_memory sets
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2 ** 20        # the largest that glibc's own adjustment would reach
TRIM_THRESHOLD = 256 * 2 ** 20
_KEEPING: bool | None = None          # what keep_freed_memory found, once per process


def default_workers(on_cpu: bool) -> int:
    """One per core on a CPU, at most 4 (more only wait on memory), or at most the environment
    variable NBLIB_WORKERS where it is set (1: train in this process; ``make nbval`` sets it, as
    it runs two notebooks at a time, one per core); 1 on a GPU."""
    if not on_cpu:
        return 1
    workers = min(os.cpu_count() or 1, DEFAULT_MAX_WORKERS)
    cap = os.environ.get("NBLIB_WORKERS", "").strip()
    if cap:
        if not cap.isdigit() or int(cap) < 1:
            raise ValueError(f"the environment variable NBLIB_WORKERS must be a whole number of at "
                             f"least 1 (the most worker processes to start), got {cap!r}")
        workers = min(workers, int(cap))
    return workers


def keep_freed_memory() -> bool:
    """Ask the C library's ``malloc`` to keep memory that is freed for the next allocation (up to
    256 MiB of it), rather than give it back to the operating system at once. A training step of
    a batched model allocates and frees tens of megabytes of temporaries; memory given back and
    asked for again costs a page fault per 4 KiB. On the book's 2-core machine chapter 5 ran
    about 18 % faster with it (two runs each, alternately); chapter 4 about 5 % (four each), less
    than the machine's drift. Only the placement of memory changes, never a number. It applies
    to this whole process, and only where the C library is glibc (Linux): elsewhere it does
    nothing and returns False. Returns whether the setting is in force."""
    global _KEEPING
    if _KEEPING is None:
        _KEEPING = _set_malloc_thresholds()
    return _KEEPING


def _set_malloc_thresholds() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):         # not glibc (musl has no libc.so.6)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # setting either threshold also stops glibc from adjusting them itself; both are needed
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1


def _one_thread(initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    import signal
    # Jupyter's interrupt (and its kernel shutdown) sends SIGINT to the kernel's whole process
    # group; a worker that took it would die with a traceback and leave its pool unusable. The
    # interrupt is the parent's to handle: Workers.run stops the workers when it gets one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch
    torch.set_num_threads(1)
    keep_freed_memory()
    if initializer is not None:
        initializer(*initargs)


PRELOADED = ["torch", "nblib.runner"]      # what the fork server imports once, for every worker


def start_method() -> str:
    """How worker processes start: "forkserver" on Linux, "spawn" elsewhere. A fork server is
    one process, started with the first pool, that imports torch once (about 2 s of CPU) and
    forks a worker for each pool from then on, so that a pool started afresh (after
    ``close()``, an interrupt or a worker's death) is ready at once; a spawned worker starts
    a new interpreter and imports torch itself. Windows cannot fork, and on macOS system
    libraries may start threads that make forking unsafe (which is why Python spawns there by
    default), so workers are spawned there."""
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


def _context() -> Any:
    import torch.multiprocessing
    context = torch.multiprocessing.get_context(start_method())
    if start_method() == "forkserver":
        context.set_forkserver_preload(PRELOADED)     # has effect only before the server starts
    return context


class Workers:
    """``workers`` processes, started when first needed and kept until :meth:`close` (or the end
    of a ``with`` block), so that data handed to ``initializer`` once is not sent with every job."""

    def __init__(self, workers: int, *, initializer: Callable[..., Any] | None = None,
                 initargs: Sequence[Any] = ()) -> None:
        self.workers = checks.integer(workers, "workers", 1, at_most=64)
        if initializer is not None:
            checks.function(initializer, "initializer")
        self._initializer, self._initargs = initializer, tuple(initargs)
        self._pool: ProcessPoolExecutor | None = None

    def run(self, train: Callable[[list[Any]], list[Any]], jobs: Sequence[list[Any]], *,
            cost: Callable[[list[Any]], float] = len, local: Callable[[list[Any]], list[Any]] | None = None,
            desc: str = "runs", progress: bool | None = None) -> list[list[Any]]:
        """``[train(job) for job in jobs]``, the costliest jobs started first, with one progress
        step per item. ``train`` must be a module-level function (it is sent to the workers by
        name); ``local`` (default ``train``) is what runs in this process when there is no point
        in workers. Each answer must have one result per item of its job."""
        checks.function(train, "train")
        jobs = [list(job) for job in jobs]
        local = train if local is None else checks.function(local, "local")
        order = sorted(range(len(jobs)), key=lambda i: -cost(jobs[i]))
        results: list[list[Any] | None] = [None] * len(jobs)
        with progress_bar(total=sum(map(len, jobs)), desc=desc, progress=progress) as shown:
            if self.workers == 1 or len(jobs) <= 1:
                keep_freed_memory()                    # as the workers do
                for i in order:
                    results[i] = _answer(local(jobs[i]), jobs[i])
                    shown.update(len(jobs[i]))
            else:
                futures = self._submit(train, jobs, order)
                try:
                    for f in as_completed(futures):
                        i = futures[f]
                        results[i] = _answer(f.result(), jobs[i])
                        shown.update(len(jobs[i]))
                except BaseException as exc:          # the other jobs are not waited for
                    for f in futures:
                        f.cancel()
                    if isinstance(exc, BrokenProcessPool):
                        self.close()                  # a process died: the next run starts new ones
                    elif not isinstance(exc, Exception):
                        self._stop_now()              # interrupted: the jobs still running stop too
                    raise
        return results        # type: ignore[return-value]

    def _submit(self, train: Callable[[list[Any]], list[Any]], jobs: list[list[Any]],
                order: list[int]) -> dict[Any, int]:
        for attempt in (1, 2):
            pool = self._start()
            try:
                return {pool.submit(train, jobs[i]): i for i in order}
            except BrokenProcessPool:                 # a process died since the last run: start afresh
                self._stop_now()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _stop_now(self) -> None:
        """Stop the worker processes at once, running jobs and all (the next run starts new ones)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            terminate = getattr(pool, "terminate_workers", None)       # Python 3.14 and later
            if terminate is not None:
                terminate()
            else:
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_context(),
                                             initializer=_one_thread,
                                             initargs=(self._initializer, self._initargs))
        return self._pool

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_SHARED: dict[int, Workers] = {}


def shared_workers(workers: int) -> Workers:
    """A pool of ``workers`` processes (without an initializer) kept for the next caller that asks
    for as many, as joblib's reusable executor is, so that a chapter calling ``train_all`` three
    times starts its processes once; stopped when Python exits (or by ``close()``, after which the
    next call starts a new one)."""
    workers = checks.integer(workers, "workers", 1, at_most=64)
    if workers not in _SHARED:
        if not _SHARED:
            atexit.register(_close_shared)
        _SHARED[workers] = Workers(workers)
    return _SHARED[workers]


def _close_shared() -> None:
    for pool in _SHARED.values():
        pool.close()


def _answer(result: Any, job: list[Any]) -> list[Any]:
    if not isinstance(result, list) or len(result) != len(job):
        raise RuntimeError(f"a training job of {len(job)} items answered with "
                           f"{len(result) if isinstance(result, list) else type(result).__name__} results")
    return result


def runs_of_equal(keys: Sequence[Any]) -> list[tuple[Any, int, int]]:
    """The maximal runs of equal neighbouring keys, (key, first index, last index + 1) each: the
    slices in which a batched model treats its networks alike."""
    runs: list[tuple[Any, int, int]] = []
    for i, key in enumerate(keys):
        if runs and runs[-1][0] == key:
            runs[-1] = (key, runs[-1][1], i + 1)
        else:
            runs.append((key, i, i + 1))
    return runs


def in_given_order(runs: list[Any], order: Sequence[int], seconds: float) -> list[Any]:
    """Runs trained in the order ``order`` (``runs[k]`` is the network given at ``order[k]``) put
    back in the order they were given, each with its share of the ``seconds`` they took together
    (its ``seconds`` attribute)."""
    if sorted(order) != list(range(len(runs))):
        raise ValueError(f"order must be a permutation of 0..{len(runs) - 1}, got {list(order)!r:.60}")
    result: list[Any] = [None] * len(runs)
    for k, i in enumerate(order):
        runs[k].seconds = seconds / len(runs)
        result[i] = runs[k]
    return result
