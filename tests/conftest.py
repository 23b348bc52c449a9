"""Small synthetic data sets shared by the tests of networks, kernels, training and metrics.

Everything is built from fixed seeds, so every run of the tests sees the same numbers.
No MNIST is loaded anywhere.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

Pair = tuple[np.ndarray, np.ndarray]


def make_data(n: int, width: int, classes: int, *, seed: int = 0, zeros: float = 0.0,
              dtype: type = np.float64) -> Pair:
    """``n`` inputs in [0, 1) (a fraction ``zeros`` of them set to exactly 0, as in MNIST's
    background pixels) with integer labels in [0, classes)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, width))
    x[rng.random((n, width)) < zeros] = 0.0
    return x.astype(dtype), rng.integers(0, classes, n)


@pytest.fixture
def data() -> Callable[..., Pair]:
    """The factory ``make_data(n, width, classes, seed=, zeros=, dtype=)``."""
    return make_data


@pytest.fixture(scope="session")
def blobs() -> tuple[Pair, Pair]:
    """Two well-separated Gaussian blobs in the plane, class 0 around (-2, -2) and class 1 around
    (2, 2) with unit spread: (training, test) pairs of 200 points each. Any sensible classifier
    gets well over 90% of them right."""
    rng = np.random.default_rng(2024)

    def draw(n: int) -> Pair:
        labels = rng.integers(0, 2, n)
        centres = np.where(labels[:, None] == 1, 2.0, -2.0)
        return centres + rng.standard_normal((n, 2)), labels

    return draw(200), draw(200)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch tests on one thread (small layers run fastest that way, as in the
    chapters), and restore the thread count afterwards."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The tests that share test_grading's `graded` fixture (it grades 18 notebooks, about 100 s of CPU)
# go first. pytest-xdist's default distribution hands each worker a first chunk of consecutive
# tests (a quarter of its share: about 160 of them in `make unit` on two workers), so all of them
# land on one worker, which builds the module-scoped fixture once, at the start, while the other
# workers take the rest. In the middle of the collection a chunk boundary can fall among them, and
# then two workers each build it, as `pytest -n 2 tests/test_grading.py` does (its chunks are four
# tests long, so this order cannot help there). --dist loadgroup would say this with a mark, but
# with pytest 9.2 it silently stops grouping (pytest-xdist issue #1386).
EXPENSIVE_FIXTURES_FIRST = ("graded",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    first = [item for item in items if set(EXPENSIVE_FIXTURES_FIRST) & set(getattr(item, "fixturenames", ()))]
    if first:
        rest = [item for item in items if item not in first]
        items[:] = first + rest
