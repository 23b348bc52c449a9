"""The scripts behind `make matrix` and `make colab-check` (.ci/): the parts that decide what
is compared and installed, on small made-up inputs (the runs themselves are the targets')."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")   # part of the book's environment, not of `make matrix`'s

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / ".ci"))
import colab_check  # noqa: E402
import matrix  # noqa: E402
import venvs  # noqa: E402


def code(source: str, outputs: list[dict], tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": tags} if tags else {})
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    return cell


def stdout(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def glued(name: str, value: str) -> dict:
    return {"output_type": "display_data", "data": {"application/papermill.record/text/plain": value},
            "metadata": {"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}}}


@pytest.mark.parametrize("source, tags, checked", [
    ("# NBVAL_CHECK_OUTPUT\nprint(1)", None, True),
    ("print(1)", ["nbval-check-output"], True),
    ("# NBVAL_CHECK_OUTPUT\nprint(1)", ["nbval-ignore-output"], False),
    ("print(1)  # not a marker: NBVAL_CHECK_OUTPUT", None, False),
    ("print(1)", None, False),
])
def test_checked_cells_are_found_as_nbval_finds_them(source, tags, checked):
    assert colab_check.is_checked(code(source, [], tags)) is checked


def notebook(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def test_a_checked_cell_that_differs_only_in_a_full_precision_glue_is_told_apart():
    old = notebook(code("# NBVAL_CHECK_OUTPUT\nx", [glued("x", "5.595945028976736"), stdout("x = 5.6\n")]))
    new = notebook(code("# NBVAL_CHECK_OUTPUT\nx", [glued("x", "5.595945073755309"), stdout("x = 5.6\n")]))
    result = {}
    colab_check.analyse(result, old, new)
    assert result["checked"] == 1 and len(result["differences"]) == 1
    assert result["differences"][0]["only_full_precision"] is True
    assert result["glue"]["compared"] == 1 and result["glue"]["equal"] == 0


def test_a_changed_claim_is_a_real_difference_and_stderr_would_reach_the_page():
    old = notebook(code("# NBVAL_CHECK_OUTPUT\nprint(ok)", [stdout("it holds: True\n")]),
                   code("f()", [stdout("done\n")]))
    new = notebook(code("# NBVAL_CHECK_OUTPUT\nprint(ok)", [stdout("it holds: False\n")]),
                   code("f()", [{"output_type": "stream", "name": "stderr",
                                 "text": "UserWarning: careful\n"}]))
    result = {}
    colab_check.analyse(result, old, new)
    assert [d["only_full_precision"] for d in result["differences"]] == [False]
    assert len(result["page_warnings"]) == 1 and "careful" in result["page_warnings"][0]


def test_timings_in_a_checked_cell_are_sanitised_as_in_make_nbval():
    old = notebook(code("# NBVAL_CHECK_OUTPUT\nprint(t)", [stdout("took 3.2 s at 0x7f00aa\n")]))
    new = notebook(code("# NBVAL_CHECK_OUTPUT\nprint(t)", [stdout("took 4.9 s at 0x7f11bb\n")]))
    result = {}
    colab_check.analyse(result, old, new)
    assert result["differences"] == []


def test_the_install_cell_output_is_kept_apart_without_this_machines_pip_noise():
    cell = code('import sys\nif "google.colab" in sys.modules:\n'
                '    %pip install --quiet "nblib @ git+https://x/y"', [
        stdout("\x1b[33mWARNING: Location 'file:///opt/x/simple/numba/' is ignored: "
               "it is neither a file nor a directory.\x1b[0m\n"),
        stdout("ERROR: pip's dependency resolver does not currently take into account ...\n")])
    result = {}
    colab_check.analyse(result, notebook(cell), notebook(cell))
    assert result["install_noise_lines"] == 1
    assert result["install_output"].startswith("[stdout] ERROR: pip's dependency resolver")
    assert result["checked"] == 0 and result["page_warnings"] == []


def test_lowest_pins_each_declared_floor_and_names_the_unbounded():
    pins, unbounded = matrix.lowest(["numpy>=1.26", "tqdm >= 4.66", "pytest", "torch>=2.6"])
    assert pins == ["numpy==1.26", "tqdm==4.66", "pytest", "torch==2.6"]
    assert unbounded == ["pytest"]


def test_the_torch_extra_declares_the_floor_nblib_needs():
    assert matrix.torch_requirement() == ["torch>=2.6"]


def test_the_interpreter_running_the_tests_is_found_by_its_version():
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert venvs.find_interpreter(minor) is not None
    assert venvs.find_interpreter("2.1") is None


def test_the_key_changes_with_the_spec_and_the_week():
    a = venvs.key(sys.executable, ["numpy"], weekly=False)
    assert a == venvs.key(sys.executable, ["numpy"], weekly=False)
    assert a != venvs.key(sys.executable, ["numpy==1.26"], weekly=False)
    assert a != venvs.key(sys.executable, ["numpy"], weekly=True)


def test_make_help_lists_every_target():
    import re
    import shutil
    import subprocess
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[1]
    targets = set(re.findall(r"^([a-z][a-z-]*):", (root / "Makefile").read_text(), flags=re.M)) - {"help"}
    shown = subprocess.run(["make", "-s", "help"], cwd=root, capture_output=True, text=True,
                           check=True).stdout
    missing = sorted(t for t in targets if not re.search(rf"make {re.escape(t)}\b", shown))
    assert not missing, f"make help does not list: {missing}"
