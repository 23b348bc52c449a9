"""`make matrix`: nblib's unit tests on every Python this machine has, beside the pinned run.

`make unit` runs the tests in the pinned environment (.venv, constraints.txt). This runs them
again, from the checkout, in environments that readers have instead (made once and reused, see
.ci/venvs.py):

- ``newest``: Python 3.11, 3.12 and 3.13 with the newest releases pip resolves of what nblib
  declares in pyproject.toml (its dependencies and its ``fast`` and ``widgets`` extras), plus
  pytest and PyYAML for the tests; remade every week.
- ``lowest``: Python 3.11 with exactly the lower bounds pyproject.toml declares (``numpy>=1.26``
  installs numpy 1.26.0, and so on); requirements without a bound are taken newest.

torch (``torch==2.13.0``, the release the book pins; for ``lowest``, the floor of nblib's
``torch`` extra when pip has a CPU build of it) is added only where pip would install a CPU
build of it. Where it would take a CUDA build (on this project's machines, Python 3.12 and 3.13:
the CPU wheels are on PyTorch's own index, which these machines cannot reach), torch is left out
and the tests that need it skip themselves, which the summary says. An interpreter that is not
found is skipped and named. The browser tests (tests/browser) are not run here.

The summary is printed and written to _build/matrix/summary.md, each run's log beside it. The
exit status is 1 when a run has a failing test.

Entries run two at a time (``--jobs N`` to change): most of the tests use one core.

usage: python3 .ci/matrix.py [--jobs N] [ENTRY ...]     (ENTRY like 3.12-newest; default: all)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import venvs  # noqa: E402

OUT = ROOT / "_build" / "matrix"
ENTRIES = ["3.11-newest", "3.11-lowest", "3.12-newest", "3.13-newest"]
TORCH = "torch==2.13.0"
TEST_TOOLS = ["pytest", "pyyaml"]
SHOWN = ["numpy", "matplotlib", "numba", "ipywidgets", "tqdm", "platformdirs", "torch"]


def requirements() -> list[str]:
    """What nblib declares for running (dependencies, and the fast and widgets extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *extras["fast"], *extras["widgets"]]


def torch_requirement() -> list[str]:
    """What nblib's ``torch`` extra declares."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["torch"]


def lowest(reqs: list[str]) -> tuple[list[str], list[str]]:
    """Each ``name>=X`` as ``name==X``; returns (the pins, the names that declare no lower bound)."""
    pins, unbounded = [], []
    for req in reqs:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([^,;\s]+)\s*", req)
        if match:
            pins.append(f"{match[1]}=={match[2]}")
        else:
            pins.append(req)
            unbounded.append(req)
    return pins, unbounded


def summary_line(log: str) -> str:
    lines = [ln.strip("= ") for ln in log.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    return lines[-1] if lines else "no pytest summary (see the log)"


def skipped_reasons(log: str) -> list[str]:
    """pytest -ra's SKIPPED lines, counted by reason."""
    reasons: dict[str, int] = {}
    for m in re.finditer(r"^SKIPPED \[(\d+)\] [^:]+(?::\d+)?: (.*)$", log, flags=re.MULTILINE):
        reasons[m[2]] = reasons.get(m[2], 0) + int(m[1])
    return [f"{n} × {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])]


def run_entry(entry: str) -> dict:
    minor, kind = entry.split("-")
    row = {"entry": entry, "python": "-", "result": "", "versions": "", "skipped": [], "seconds": 0.0,
           "ok": True}
    python = venvs.find_interpreter(minor)
    if not python:
        row["result"] = f"skipped: no Python {minor} found (python{minor} on PATH, or pyenv's)"
        return row
    reqs = requirements() + TEST_TOOLS
    note, torch = "", [TORCH]
    if kind == "lowest":
        reqs, unbounded = lowest(requirements())
        reqs += TEST_TOOLS
        note = "no lower bound declared, so newest: " + ", ".join(unbounded + TEST_TOOLS)
        floor = lowest(torch_requirement())[0]
        # the declared floor if pip has a CPU build of it
        torch = [*(floor if floor[0] != "torch" else []), TORCH]
    start = time.perf_counter()
    venv = venvs.ensure(python, f"matrix-{kind}", reqs, weekly=(kind == "newest"), torch=torch)
    py = venv / "bin" / "python"
    versions = subprocess.run([str(py), "-c", "import importlib.metadata as m, platform\n"
                               f"print('Python', platform.python_version())\n"
                               f"for n in {SHOWN!r}:\n"
                               "    try: print(n, m.version(n))\n"
                               "    except m.PackageNotFoundError: print(n, 'not installed')"],
                              capture_output=True, text=True, check=True).stdout.splitlines()
    row["python"] = versions[0].split()[1]
    row["versions"] = ", ".join(v for v in versions[1:])
    torch_note = venvs.torch_note(venv)
    OUT.mkdir(parents=True, exist_ok=True)
    # numba's cache of compiled kernels in the environment, not in nblib/__pycache__, where another
    # numba version (the pinned one's, the lowest one's) would replace it and compile again each run
    env = {**os.environ, "NUMBA_CACHE_DIR": str(venv / "numba-cache")}
    test = subprocess.run([str(py), "-m", "pytest", "tests", "--ignore=tests/browser", "-q",
                           "-p", "no:cacheprovider", "-o", "addopts=-ra"],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    log = test.stdout + test.stderr
    (OUT / f"{entry}.log").write_text(log)
    row["seconds"] = round(time.perf_counter() - start, 1)
    row["result"] = summary_line(log)
    row["ok"] = test.returncode == 0
    row["skipped"] = skipped_reasons(log)
    row["notes"] = [n for n in (torch_note, note) if n]
    return row


def main() -> int:
    args = sys.argv[1:]
    jobs = 2
    if args[:1] == ["--jobs"]:
        jobs, args = int(args[1]), args[2:]
    entries = args or ENTRIES
    unknown = [e for e in entries if e not in ENTRIES]
    if unknown:
        print(f"matrix: unknown entries {unknown}; known: {ENTRIES}", file=sys.stderr)
        return 2

    def one(entry: str) -> dict:
        print(f"matrix: {entry} ...", flush=True)
        row = run_entry(entry)
        print(f"matrix: {entry}: Python {row['python']}: {row['result']} ({row['seconds']:.0f} s)",
              flush=True)
        return row

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:   # each entry is its own process tree
        rows = list(pool.map(one, entries))
    wall = time.perf_counter() - start
    lines = ["# nblib's unit tests on other interpreters (make matrix)", "",
             "| entry | Python | result | time | versions |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['entry']} | {r['python']} | {r['result']} | {r['seconds']:.0f} s "
                     f"| {r['versions']} |")
    for r in rows:
        if r.get("notes") or r["skipped"]:
            lines += (["", f"{r['entry']}:"] + [f"- {n}" for n in r.get("notes", [])]
                      + [f"- skipped {s}" for s in r["skipped"]])
    lines += ["", f"{len(rows)} entries in {wall:.0f} s, {jobs} at a time."]
    text = "\n".join(lines)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "summary.md").write_text(text + "\n")
    print("\n" + text)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
