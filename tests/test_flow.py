"""nblib's one way through the house: data -> networks -> training and measurement -> numbers ->
plots, then the exercises that use all of it. A module may import only modules listed before it
in FLOW (including imports inside functions), and only the presentation modules draw."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

NBLIB = Path(__file__).resolve().parent.parent / "nblib"

FLOW = [
    # what every module shares
    "_optional", "_blas", "checks", "progress", "stats",
    # data
    "data",
    # networks (numpy: Nielsen's; torch: the device, the initialisation schemes)
    "networks", "kernels", "torchutil", "initialisation",
    # training and measurement
    "metrics", "training", "chain", "degeneracy", "probe", "runner",
    "stacked", "linear", "random_nets",
    "testbed", "testbed_batched", "recurrent", "recurrent_batched",
    # numbers -> pictures
    "plots", "interactive",
    # the exercises: checkers on top of everything, one module per chapter
    "exercises", "exercises.vanishing", "exercises.unstable", "exercises.degeneracy",
    "exercises.remedies", "exercises.recurrent",
]
OUTSIDE_THE_FLOW = {"__init__", "sphinx_offline"}      # the package's docstring; the book's Sphinx extension
DRAWING = ("matplotlib", "ipywidgets")
MAY_DRAW = {"plots", "interactive", "exercises.unstable"}   # exercises.unstable builds its slider figures


def module_name(path: Path) -> str:
    parts = path.relative_to(NBLIB).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def imports(path: Path) -> tuple[set[str], set[str]]:
    """The nblib modules ``path`` imports (anywhere in it) and the outside packages it imports."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" and name != "__init__" else name.split(".")[:-1]
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                found = sub if (NBLIB / (sub.replace(".", "/") + ".py")).exists() else target
                ours.add(found)
        elif isinstance(node, ast.ImportFrom):
            theirs.add(node.module or "")
        elif isinstance(node, ast.Import):
            theirs.update(alias.name for alias in node.names)
    return {m for m in ours if m}, theirs


MODULES = sorted(p for p in NBLIB.rglob("*.py"))


def test_every_module_has_its_place_in_the_flow():
    names = {module_name(p) for p in MODULES} - OUTSIDE_THE_FLOW
    assert names == set(FLOW), ("add the new module to FLOW in tests/test_flow.py, where it sits "
                                f"in data -> networks -> training -> plots: {sorted(names ^ set(FLOW))}")


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_no_module_imports_one_above_it(path):
    name = module_name(path)
    ours, _ = imports(path)
    if name in OUTSIDE_THE_FLOW:
        return
    above = sorted(m for m in ours if m not in FLOW or FLOW.index(m) >= FLOW.index(name))
    assert not above, f"nblib.{name} imports {above}, which sit above (or beside) it in the flow"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_only_the_presentation_modules_draw(path):
    name = module_name(path)
    _, theirs = imports(path)
    drawing = sorted(m for m in theirs if m.startswith(DRAWING))
    assert name in MAY_DRAW or not drawing, f"nblib.{name} imports {drawing}: drawing belongs in plots"
