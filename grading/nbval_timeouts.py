"""A pytest plugin for grading with nbval: after a cell times out, every later cell is still judged
on what it did. ``grade.run`` copies this file into its work folder as ``conftest.py``.

nbval, once a cell has run past ``--nbval-cell-timeout``, interrupts the kernel and marks every
later cell of the notebook as an expected failure: a later check that fails is then reported as
"xfailed" and one that passes as "xpassed", and pytest's JUnit XML records neither as a failure,
so a wrong answer after an endless loop would be graded "passed". And when the kernel's own
reply to the timed-out cell is lost (the interrupt landing while it reports the error of a
checker's time limit, say), nbval reports that cell as passed too. Here:

- before each cell, nbval's "a cell timed out" flag is cleared, so no cell is marked an expected
  failure: the kernel was interrupted, not restarted, and the later cells run as usual;
- a cell during which the flag was set (nbval's time limit ran out while it ran) fails with
  nbval's timeout message, whatever the kernel replied.
"""

from __future__ import annotations

from typing import Any

import pytest


def _is_cell(item: Any) -> bool:
    return hasattr(getattr(item, "parent", None), "timed_out") and hasattr(item, "raise_cell_error")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: Any) -> None:
    if _is_cell(item):
        item.parent.timed_out = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: Any) -> Any:
    result = yield                   # a cell that raised fails as nbval says
    if _is_cell(item) and item.parent.timed_out:
        timeout = item.config.option.nbval_cell_timeout
        item.raise_cell_error(f"Timeout of {float(timeout):g} seconds exceeded executing cell")
    return result
