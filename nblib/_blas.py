"""How many threads numpy's OpenBLAS may use (what ``threadpoolctl`` does, for OpenBLAS only).

The book's matrices are small: a product of a 1,000 x 784 batch with a 784 x 30 layer gains
nothing from a second thread, and when several networks train at once (``run_parallel``), or
another program keeps the cores busy, OpenBLAS's threads wait for each other and the same
product takes ten times as long (measured on the book's 2-core machine: one full-batch step of
chapter 1's network, 30 ms of CPU time with OpenBLAS's default threads against 3 ms with one).

numpy has no call for this, so this module finds the OpenBLAS library numpy has loaded and calls
its ``openblas_set_num_threads``. Where numpy uses another BLAS (Apple's Accelerate, MKL), the
functions here change nothing and say so by returning None.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")
_lock = threading.RLock()
_found: list = []            # [(setter, getter)] once looked up; [None] if there is no OpenBLAS


def _library() -> tuple | None:
    """numpy's OpenBLAS (its set and get functions), looked up once."""
    with _lock:
        if not _found:
            _found.append(_find())
        return _found[0]


def _candidates() -> list[str]:
    """Paths of the OpenBLAS libraries that may be loaded: those this process has mapped (Linux),
    then those shipped inside numpy's wheel."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            paths = [line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line]
    except OSError:
        pass
    here = os.path.dirname(np.__file__)
    for pattern in ("../numpy.libs/*openblas*", ".dylibs/*openblas*", "../numpy.libs/*OpenBLAS*"):
        paths += glob.glob(os.path.join(here, pattern))
    return list(dict.fromkeys(paths))


def _find() -> tuple | None:
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, name) for name in _SETTERS if hasattr(lib, name)), None)
        getter = next((getattr(lib, name) for name in _GETTERS if hasattr(lib, name)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
            return setter, getter
    return None


def threads() -> int | None:
    """How many threads OpenBLAS uses now (None when numpy's BLAS is not OpenBLAS)."""
    lib = _library()
    return None if lib is None else int(lib[1]())


def set_threads(n: int) -> int | None:
    """Let OpenBLAS use ``n`` threads; returns how many it used before (None, and nothing
    changed, when numpy's BLAS is not OpenBLAS)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer (a number of threads), got {n!r}")
    lib = _library()
    if lib is None:
        return None
    before = int(lib[1]())
    lib[0](n)
    return before


_depth = 0                   # how many ``limited`` blocks are open, in any thread
_saved: list = [None]        # the setting to restore when the last one closes


@contextmanager
def limited(n: int = 1) -> Iterator[None]:
    """OpenBLAS restricted to ``n`` threads inside the block, and put back as it was after it.
    Blocks may nest and may be open in several threads at once: the first to open sets the
    limit, and the last to close restores the setting from before the first."""
    global _depth
    with _lock:
        if _depth == 0:
            _saved[0] = set_threads(n)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved[0] is not None:
                set_threads(_saved[0])
