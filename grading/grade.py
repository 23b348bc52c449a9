"""Grade a folder of submitted exercise notebooks with nbval, and report one row per exercise.

``python -m grading.grade DIR`` (``make grade SUBMISSIONS=DIR``) grades every ``*.ipynb`` in
``DIR`` against the student edition (``make student`` writes it into ``_build/student``):

1. **Assemble.** Each submission is matched to its student edition (by the notebook name the
   edition stamped into its metadata, or by its file name). The graded notebook is the student
   edition with the submission's answer cells put in (matched by cell id, or by their first line
   ``# Your answer to exercise N``): every other cell is restored as the edition has it.
2. **Tampering.** A locked code cell whose source the submission changed, and an answer cell that
   reaches outside the answer (imports ``os``/``sys``/``importlib``..., calls ``exec``/``setattr``...,
   assigns to an attribute of a module, rebinds a name the checks use, touches a ``__dunder__``)
   make that exercise "tampered" (an edited cell before the first exercise: every exercise).
3. **Run.** All graded notebooks run under pytest with nbval (``--nbval-lax``: no output is
   compared, a cell fails only when it raises), on every core (pytest-xdist, one notebook per
   worker), with a time limit per cell, in grading mode (``NBLIB_GRADING=1``): a checker raises on
   an answer that is not right, and tests functions on inputs drawn afresh from the grading seed.
   A cell that runs past the time limit is interrupted and fails; the cells after it still run
   and are judged on their own (``nbval_timeouts.py``: nbval alone would excuse their failures).
4. **Report.** pytest's JUnit XML report says which cells failed and why; each exercise is
   "passed", "not yet", "error" (its answer cell or the checker raised something else),
   "timed out" or "tampered". The table is printed and written to ``DIR/grades.csv`` (columns
   ``submission,exercise,result``), with the reasons in ``DIR/grades-details.csv``.

Grading runs the students' code on this machine: for submissions you do not trust, run it in a
container or a virtual machine.
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from . import cells

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STUDENT = ROOT / "_build" / "student"
RESULTS = ("passed", "not yet", "error", "timed out", "tampered")
CELL_TIMEOUT = 60          # seconds per cell
WORK = ".grading"          # the folder, inside the submissions folder, where graded copies run

# What an answer cell may not do: reach the machine, the interpreter or the checkers' insides.
FORBIDDEN_MODULES = {"os", "sys", "subprocess", "shutil", "pathlib", "importlib", "builtins", "ctypes", "gc",
                     "inspect", "io", "pickle", "marshal", "types", "signal", "threading", "multiprocessing",
                     "socket", "runpy", "code", "codeop", "site", "pty", "atexit", "unittest"}
FORBIDDEN_CALLS = {"exec", "eval", "compile", "__import__", "setattr", "delattr", "getattr", "globals",
                   "locals", "vars", "open", "breakpoint", "input", "exit", "quit", "memoryview",
                   "get_ipython"}


@dataclass
class Graded:
    """One submission: where it came from, the notebook that is run (``file``, in the work folder),
    and what was found on the way."""

    name: str
    source: Path
    file: str = ""
    edition: str | None = None
    notebook: Any = None
    exercises: list[int] = field(default_factory=list)
    tampered: dict[int | None, list[str]] = field(default_factory=dict)
    problem: str | None = None          # why it could not be graded at all


# --- 1. assembling the graded notebook -----------------------------------------------------------
def load_editions(folder: Path) -> dict[str, Any]:
    """The student editions in ``folder``, by the stem of their book notebook."""
    editions = {}
    for path in sorted(Path(folder).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        stem = nb.metadata.get("nblib", {}).get("notebook")
        if stem:
            editions[stem] = nb
    if not editions:
        raise FileNotFoundError(f"no student editions in {folder}: run `make student` first")
    return editions


def which_edition(nb: Any, path: Path, editions: dict[str, Any]) -> str | None:
    """The edition a submission was made from: its stamp, else the edition named in its file name."""
    stamp = (nb.metadata.get("nblib", {}).get("notebook") if isinstance(nb.metadata.get("nblib"), dict)
             else None)
    if stamp in editions:
        return stamp
    named = [stem for stem in editions if stem in path.stem]
    if len(named) == 1:
        return named[0]
    by_chapter = [stem for stem in editions if path.stem.startswith(stem.split("_", 1)[0] + "_")]
    return by_chapter[0] if len(by_chapter) == 1 else None


def assemble(submission: Any, edition: Any) -> tuple[Any, dict[int | None, list[str]]]:
    """The notebook to run (the edition with the submission's answers in) and the tampering found."""
    graded = copy.deepcopy(edition)
    by_id = {c.get("id"): c for c in submission.cells if c.get("id")}
    by_key = {}
    for c in submission.cells:
        if cells.key(c) and cells.key(c) not in by_key:
            by_key[cells.key(c)] = c
    tampered: dict[int | None, list[str]] = {}
    protected = protected_names(edition)
    position = {}
    for index, cell in enumerate(graded.cells):
        if cell.cell_type != "code":
            continue
        theirs = by_id.get(cell.get("id"))
        if theirs is None or theirs.cell_type != "code" or cells.key(theirs) != cells.key(cell):
            theirs = by_key.get(cells.key(cell)) if cells.key(cell) else theirs
        role, number = cells.role(cell), cells.exercise(cell)
        position[number] = position.get(number, index)
        if role == "answer":
            if theirs is not None:
                cell.source = cells.source(theirs)
            for reason in scan_answer(cell.source, protected):
                tampered.setdefault(number, []).append(f"answer cell: {reason}")
        elif theirs is not None and _normal(cells.source(theirs)) != _normal(cells.source(cell)):
            what = f"{role} cell" if role else f"code cell {index}"
            tampered.setdefault(number, []).append(f"edited the {what}")
        if role == "explore":
            cell.metadata.setdefault("tags", []).append("nbval-skip")   # it only draws
        cell.outputs, cell.execution_count = [], None
    return graded, tampered


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def protected_names(edition: Any) -> dict[str, str | None]:
    """Names an answer cell must not rebind: the modules and functions the locked cells import or
    define, and every name the check cells use, except the answer's own variables. Each maps to
    what an import binds it to (``numpy`` for ``import numpy as np``), so that importing the same
    thing again is allowed; None for anything else."""
    answers, used, locked = set(), set(), {}
    for cell in edition.cells:
        if cell.cell_type != "code":
            continue
        tree = _parse(cells.source(cell))
        if tree is None:
            continue
        bound = _bound_names(tree)
        if cells.role(cell) == "answer":
            answers |= bound["assigned"] | bound["defined"]
            continue
        locked.update(_imports(tree))
        locked.update({name: None for name in bound["defined"]})
        if cells.role(cell) == "check":
            used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names = {name: None for name in used} | locked
    return {name: origin for name, origin in names.items() if name not in answers}


def _imports(tree: ast.AST) -> dict[str, str]:
    """The names the imports of a piece of code bind, and what each is bound to."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _parse(text: str) -> ast.Module | None:
    """A cell's syntax tree, with IPython's ``%magic`` and ``!shell`` lines blanked out."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in text.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _bound_names(tree: ast.AST) -> dict[str, set[str]]:
    """The names a piece of code binds at its top level: by import, by def/class, by assignment."""
    out = {"imported": set(), "defined": set(), "assigned": set()}
    for node in getattr(tree, "body", []):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out["imported"] |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out["defined"].add(node.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out["assigned"].add(node.id)
    return out


def scan_answer(text: str, protected: dict[str, str | None] | set[str]) -> list[str]:
    """What an answer cell does that an answer never needs (empty: nothing), as reasons."""
    if "get_ipython" in text or re.search(r"^\s*[%!]", text, re.M):
        return ["uses IPython magics or the shell"]
    tree = _parse(text)
    if tree is None:
        # a syntax error: the cell fails when it runs, which is an error, not tampering
        return []
    reasons = []
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in FORBIDDEN_MODULES:
                    reasons.append(f"imports {name}")
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in FORBIDDEN_CALLS):
            reasons.append(f"calls {node.func.id}()")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("__") and node.attr.endswith("__"):
            reasons.append(f"uses {node.attr}")
        elif isinstance(node, ast.Name) and node.id.startswith("__") and node.id.endswith("__"):
            reasons.append(f"uses {node.id}")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            reasons.append(f"declares {', '.join(node.names)} {type(node).__name__.lower()}")
    local = (_bound_names(tree)["assigned"] | {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
             | {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}) - imported
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if (isinstance(sub, (ast.Attribute, ast.Subscript))
                        and isinstance(sub.ctx, (ast.Store, ast.Del))):
                    root = _root_name(sub)
                    if root is not None and (root in protected or root in imported or root not in local):
                        reasons.append(f"changes {ast.unparse(sub)}, which belongs to the notebook, "
                                       "not the answer")
    protected = protected if isinstance(protected, dict) else dict.fromkeys(protected)
    same = {name for name, origin in _imports(tree).items() if protected.get(name) == origin}
    rebound = (_bound_names(tree)["assigned"] | _bound_names(tree)["defined"] | imported) - same
    reasons += [f"rebinds {name}, which the checks use" for name in sorted(rebound & set(protected))]
    return list(dict.fromkeys(reasons))


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def prepare(submissions: Path, editions: dict[str, Any], work: Path) -> list[Graded]:
    """Assemble every submission in ``submissions`` into ``work``."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    graded, files = [], set()
    for path in sorted(Path(submissions).glob("*.ipynb")):
        file = f"{_safe(path.stem)}.ipynb"
        while file in files:                                  # two names that differ only in odd characters
            file = f"{file[:-6]}_.ipynb"
        files.add(file)
        item = Graded(name=path.stem, source=path, file=file)
        graded.append(item)
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not raised
            item.problem = f"not a readable notebook ({type(exc).__name__})"
            continue
        item.edition = which_edition(nb, path, editions)
        if item.edition is None:
            item.problem = "cannot tell which exercise notebook this is (its name and metadata match none)"
            continue
        edition = editions[item.edition]
        item.exercises = list(edition.metadata["nblib"]["exercises"])
        item.notebook, item.tampered = assemble(nb, edition)
        nbformat.write(item.notebook, work / item.file)
    return graded


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


# --- 2. running them under nbval --------------------------------------------------------------------
def run(work: Path, *, workers: int, timeout: int, seed: int) -> Path:
    """Run every notebook in ``work`` under pytest + nbval in grading mode; returns the JUnit XML."""
    report = work / "junit.xml"
    # none of the book's own pytest settings; every cell judged on its own after a timeout
    (work / "pytest.ini").write_text("[pytest]\naddopts =\n")
    shutil.copyfile(Path(__file__).with_name("nbval_timeouts.py"), work / "conftest.py")
    command = [sys.executable, "-m", "pytest", "-c", str(work / "pytest.ini"), "--rootdir", str(work),
               "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
               f"--nbval-cell-timeout={timeout}", f"--junitxml={report}", "-q", "--tb=line", "-o",
               "junit_family=xunit1", "-o", "junit_logging=no"]
    if workers > 1:
        command += ["-n", str(workers), "--dist", "loadfile"]
    command += [str(p) for p in sorted(work.glob("*.ipynb"))]
    env = dict(os.environ, NBLIB_GRADING="1", NBLIB_GRADING_SEED=str(seed), NBLIB_PROGRESS="0",
               MPLBACKEND="Agg", PYTHONHASHSEED="0")
    subprocess.run(command, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    if not report.exists():
        raise RuntimeError(f"pytest wrote no report: run it by hand to see why:\n  {' '.join(command)}")
    return report


@dataclass
class CellOutcome:
    passed: bool
    kind: str = ""            # for a failure: "timed out", "not yet", "out of time", "error"
    message: str = ""
    seconds: float = 0.0


ANSI = re.compile(r"(\x1b|#x1B)\[[0-9;]*m")       # colours, raw or as JUnit XML escapes them


def read_report(report: Path) -> dict[str, dict[int, CellOutcome]]:
    """{notebook file name: {code cell number: outcome}} from pytest's JUnit XML."""
    outcomes: dict[str, dict[int, CellOutcome]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        match = re.fullmatch(r"Cell (\d+)", case.get("name", ""))
        if not match:
            continue
        notebook = Path(case.get("file") or case.get("classname", "")).name     # xunit1 names the file
        seconds = float(case.get("time", 0) or 0)
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        skipped = case.find("skipped")
        if failure is None and skipped is not None and "xfail" in (skipped.get("type") or ""):
            # an expected failure (nbval's after a timeout; nbval_timeouts.py prevents them): not a pass
            outcomes.setdefault(notebook, {})[int(match.group(1))] = CellOutcome(
                False, "error", "not judged: " + (skipped.get("message") or "an expected failure"), seconds)
            continue
        if failure is None:
            outcomes.setdefault(notebook, {})[int(match.group(1))] = CellOutcome(True, seconds=seconds)
            continue
        text = ANSI.sub("", (failure.get("message") or "") + "\n" + (failure.text or ""))
        outcomes.setdefault(notebook, {})[int(match.group(1))] = CellOutcome(False, _kind(text),
                                                                             _message(text), seconds)
    return outcomes


def _kind(text: str) -> str:
    if "Timeout of" in text and "exceeded" in text:
        return "timed out"
    if re.search(r"\bOutOfTime\b", text):
        return "out of time"
    if re.search(r"\bNotYet\b", text):
        return "not yet"
    return "error"


def _message(text: str) -> str:
    """The line that says what went wrong: a checker's first complaint, or the exception's line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for k, line in enumerate(lines):
        if re.match(r"^(NotYet|OutOfTime|CheckerError)\b", line):
            complaint = next((l for l in lines[k + 1:] if l.startswith("✘")), line)
            return complaint.lstrip("✘ ")[:200]
    for line in lines:
        if "Timeout of" in line:
            return line[:200]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", line):
            return line[:200]
    return (lines[-1] if lines else "")[:200]


# --- 3. one result per exercise -----------------------------------------------------------------
def results(item: Graded, outcomes: dict[int, CellOutcome]) -> list[tuple[str, str, str]]:
    """(exercise, result, detail) for every exercise of one submission."""
    if item.problem:
        return [("-", "error", item.problem)]
    chapter = cells.chapter_of(item.edition)
    code = [c for c in item.notebook.cells if c.cell_type == "code"]
    rows = []
    for number in item.exercises:
        label = f"{chapter}.{number}"
        reasons = item.tampered.get(number, []) + [f"before the exercises: {r}"
                                                   for r in item.tampered.get(None, [])]
        if reasons:
            rows.append((label, "tampered", "; ".join(reasons)))
            continue
        mine = {k: c for k, c in enumerate(code)
                if cells.exercise(c) == number and cells.role(c) in ("answer", "check")}
        seen = {k: outcomes.get(k) for k in mine}
        failures = {k: o for k, o in seen.items() if o is not None and not o.passed}
        check = next((k for k, c in mine.items() if cells.role(c) == "check"), None)
        if any(o.kind in ("timed out", "out of time") for o in failures.values()):
            o = next(o for o in failures.values() if o.kind in ("timed out", "out of time"))
            rows.append((label, "timed out", o.message))
        elif any(cells.role(mine[k]) == "answer" for k in failures):
            o = next(o for k, o in failures.items() if cells.role(mine[k]) == "answer")
            rows.append((label, "error", f"the answer cell raised: {o.message}"))
        elif check in failures:
            o = failures[check]
            rows.append((label, "not yet" if o.kind == "not yet" else "error", o.message))
        elif check is not None and seen.get(check) is not None:
            rows.append((label, "passed", ""))
        else:
            rows.append((label, "error", "the check cell did not run"))
    return rows


def grade(submissions: Path, student: Path = DEFAULT_STUDENT, *, timeout: int = CELL_TIMEOUT,
          workers: int | None = None,
          seed: int | None = None) -> tuple[list[tuple[str, str, str, str]], dict]:
    """Grade every notebook in ``submissions``; returns the rows (submission, exercise, result,
    detail) and facts about the run (seed, seconds, seconds per submission)."""
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise NotADirectoryError(f"SUBMISSIONS must be a folder of notebooks, got {submissions}")
    seed = secrets.randbits(32) if seed is None else int(seed)
    start = time.perf_counter()
    work = submissions / WORK
    graded = prepare(submissions, load_editions(student), work)
    runnable = [g for g in graded if g.problem is None]
    outcomes: dict[str, dict[int, CellOutcome]] = {}
    if runnable:
        workers = max(1, min(workers or os.cpu_count() or 1, len(runnable)))
        outcomes = read_report(run(work, workers=workers, timeout=timeout, seed=seed))
    rows = []
    for item in graded:
        rows += [(item.name, *row) for row in results(item, outcomes.get(item.file, {}))]
    per_submission = {g.name: sum(o.seconds for o in outcomes.get(g.file, {}).values()) for g in runnable}
    facts = {"seed": seed, "seconds": time.perf_counter() - start, "per_submission": per_submission,
             "workers": workers if runnable else 0}
    return rows, facts


def write_reports(rows: list[tuple[str, str, str, str]], folder: Path) -> None:
    """``grades.csv`` (submission, exercise, result) and ``grades-details.csv`` (with the reason)."""
    with open(folder / "grades.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "exercise", "result"])
        writer.writerows(row[:3] for row in rows)
    with open(folder / "grades-details.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "exercise", "result", "detail"])
        writer.writerows(rows)


def table(rows: list[tuple[str, str, str, str]]) -> str:
    """The rows as a plain-text table."""
    header = ("submission", "exercise", "result", "detail")
    shown = [header] + [(s, e, r, d if len(d) <= 90 else d[:87] + "...") for s, e, r, d in rows]
    widths = [max(len(row[i]) for row in shown) for i in range(4)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in shown]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", type=Path, help="a folder of submitted notebooks (*.ipynb)")
    parser.add_argument("--student", type=Path, default=DEFAULT_STUDENT,
                        help=f"the student edition (default {DEFAULT_STUDENT.relative_to(ROOT)}; "
                             f"`make student` writes it)")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT,
                        help=f"seconds per cell (default {CELL_TIMEOUT})")
    parser.add_argument("--workers", type=int, default=None,
                        help="notebooks graded at once (default: one per core)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the seed of the checkers' fresh inputs (default: drawn)")
    args = parser.parse_args(argv)
    try:
        rows, facts = grade(args.submissions, args.student, timeout=args.timeout, workers=args.workers,
                            seed=args.seed)
    except (FileNotFoundError, NotADirectoryError, RuntimeError) as exc:
        print(f"grade: {exc}", file=sys.stderr)
        return 2
    write_reports(rows, args.submissions)
    print(table(rows))
    count = len({r[0] for r in rows})
    times = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in facts["per_submission"].items())
    print(f"\n{count} submission(s) graded in {facts['seconds']:.0f} s on {facts['workers']} worker(s); "
          f"grading seed {facts['seed']} (--seed {facts['seed']} repeats this run).")
    if times:
        print(f"time per submission (kernel start to last cell): {times}")
    print(f"wrote {args.submissions / 'grades.csv'} and {args.submissions / 'grades-details.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
