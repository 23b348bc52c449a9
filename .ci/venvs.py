"""Virtual environments keyed on an interpreter and a dependency spec, kept between runs.

The environments behind `make matrix` and `make colab-check` (see the Makefile) are slow to make
and are the same from one run to the next, so each is made once and reused while its key is
unchanged. The key is the interpreter (its path and full version), the pip arguments, the
contents of any file they name (a constraints file, pyproject.toml), and, for environments of
the *newest* releases, the ISO week: such an environment is remade once a week, so that
"newest" stays roughly true without a resolve on every run. One not used for two weeks is removed
when another of its name is made.

They live outside the checkout, in ``$NBLIB_VENVS`` (default ``~/.cache/nblib/venvs``), so
that a fresh clone on the same machine (CI) reuses them. None of them has nblib installed in
it: tests run from the checkout (``python -m pytest`` puts it first on ``sys.path``), and the
Colab-like run installs nblib the way a chapter's install cell does.

Used as a script: ``python3 .ci/venvs.py PYTHON NAME [--weekly] -- PIP-ARGS...`` makes (or
finds) the environment and prints its folder.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """Where the keyed environments live."""
    return Path(os.environ.get("NBLIB_VENVS")
                or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nblib" / "venvs")


def interpreter(python: str) -> tuple[str, str]:
    """(full path, "X.Y.Z") of ``python``."""
    out = subprocess.run([python, "-c",
                          "import sys, platform; print(sys.executable); print(platform.python_version())"],
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0], out[1]


def find_interpreter(minor: str) -> str | None:
    """A working ``python{minor}`` (e.g. "3.12"): from PATH (pyenv's shims answer only for the
    active version, so each candidate is run), else from pyenv's versions; None when none runs."""
    candidates = [Path(d) / f"python{minor}" for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates += sorted(pyenv.glob(f"{minor}.*/bin/python{minor}"), reverse=True)
    for candidate in candidates:
        if not os.access(candidate, os.X_OK):
            continue
        try:
            path, version = interpreter(str(candidate))
        except (subprocess.CalledProcessError, OSError):
            continue
        if version.startswith(f"{minor}.") and subprocess.run([path, "-c", "import venv, ensurepip"],
                                                              capture_output=True).returncode == 0:
            return path
    return None


def key(python: str, pip_args: list[str], weekly: bool) -> str:
    """A short hash of everything that decides what the environment holds."""
    path, version = interpreter(python)
    parts = [path, version, *pip_args]
    for arg in pip_args:
        if os.path.isfile(arg):
            parts.append(Path(arg).read_text())
    if weekly:
        year, week, _ = datetime.date.today().isocalendar()
        parts.append(f"{year}w{week:02d}")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def pip(venv: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *args], check=True, text=True,
                          capture_output=capture)


def torch_is_a_cuda_build(venv: Path, spec: str) -> bool:
    """Whether pip would install a CUDA build of ``spec`` (e.g. ``torch==2.13.0``) into ``venv``:
    such a build needs several GB of NVIDIA packages. Found with a dry run, which reads only the
    wheel's metadata."""
    report = pip(venv, "install", "--quiet", "--dry-run", "--no-deps", "--ignore-installed",
                 "--report", "-", spec, capture=True).stdout
    wheels = json.loads(report[report.index("{"):])["install"]
    requires = [r for w in wheels for r in w["metadata"].get("requires_dist", []) or []]
    return any(r.startswith(("nvidia-", "cuda-")) and "extra ==" not in r for r in requires)


def ensure(python: str, name: str, pip_args: list[str], *, weekly: bool = False,
           torch: str | list[str] | None = None, cuda_torch: bool = False) -> Path:
    """The environment ``name`` for ``python`` with ``pip install PIP_ARGS`` done in it: reused
    when it exists with the same key, else made (and unused ones of the same name removed).

    ``torch`` (e.g. ``"torch==2.13.0"``, or a list of such requirements, the first that pip has
    a CPU build of winning) is installed too, unless pip would take a CUDA build of it and
    ``cuda_torch`` is false; ``torch_note(venv)`` says what was done and why."""
    _, version = interpreter(python)
    minor = ".".join(version.split(".")[:2])
    prefix = f"{name}-py{minor}-"
    spec = [*pip_args, f"torch: {torch} cuda: {cuda_torch}"]
    year, week, _ = datetime.date.today().isocalendar()
    this_week = f"{year}w{week:02d}-" if weekly else ""
    venv = home() / f"{prefix}{this_week}{key(python, spec, weekly)}"
    home().mkdir(parents=True, exist_ok=True)
    with open(home() / f".{venv.name}.lock", "w") as lock:   # one maker at a time (two checkouts, say)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".ready").is_file():
            prune(prefix, this_week)
            shutil.rmtree(venv, ignore_errors=True)         # what an interrupted make left
            make(python, version, venv, pip_args, torch, cuda_torch)
    os.utime(venv / ".ready")                               # used now: see prune()
    return venv


def prune(prefix: str, this_week: str) -> None:
    """Remove environments of the same name and interpreter that are not in use: those not used
    for two weeks (another checkout may still use a recent one with another key), and weekly ones
    of an earlier week not used for a day (the colab-check one holds about 5 GB)."""
    for old in home().glob(f"{prefix}*"):
        ready = old / ".ready"
        idle = time.time() - ready.stat().st_mtime if ready.is_file() else math.inf
        stale_week = bool(this_week) and not old.name.startswith(prefix + this_week)
        if old.is_dir() and (idle > 14 * 86400 or (stale_week and idle > 86400)):
            shutil.rmtree(old, ignore_errors=True)


def make(python: str, version: str, venv: Path, pip_args: list[str], torch: str | list[str] | None,
         cuda_torch: bool) -> None:
    minor = ".".join(version.split(".")[:2])
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip(venv, "install", "--quiet", "--upgrade", "pip")
    note = ""
    candidates = [torch] if isinstance(torch, str) else list(torch or [])
    torch = None
    cuda = []
    for candidate in candidates:
        if not torch_is_a_cuda_build(venv, candidate):
            torch = candidate
            break
        cuda.append(candidate)
    if cuda:
        note = (f"pip's {' and '.join(cuda)} for Python {minor} here: a CUDA build "
                "(several GB of NVIDIA packages)")
    if torch:
        note = (note + "; " if note else "") + f"{torch}: a CPU build, installed"
    elif cuda and cuda_torch:
        torch = cuda[0]
        note += "; installed anyway, it runs on the CPU"
    elif cuda:
        note += "; torch left out: no CPU build of it"
    install = [*pip_args, *([torch] if torch else [])]
    print(f"making {venv} (Python {version}): pip install {' '.join(install)}"
          + (f"\n  ({note})" if note else ""),
          file=sys.stderr, flush=True)
    if install:
        pip(venv, "install", "--quiet", *install)
    (venv / ".torch-note").write_text(note)
    (venv / ".ready").write_text(pip(venv, "freeze", "--all", capture=True).stdout)


def torch_note(venv: Path) -> str:
    """What ``ensure`` did about torch in ``venv`` ("" when it was not asked for)."""
    path = venv / ".torch-note"
    return path.read_text() if path.is_file() else ""


def main() -> None:
    argv = sys.argv[1:]
    ours, pip_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     usage="venvs.py PYTHON NAME [--weekly] [--torch SPEC] [--cuda-torch] "
                                           "-- PIP-ARGS...")
    parser.add_argument("python")
    parser.add_argument("name")
    parser.add_argument("--weekly", action="store_true", help="remake the environment every ISO week")
    parser.add_argument("--torch", help="a torch requirement, installed only when it is a CPU build ...")
    parser.add_argument("--cuda-torch", action="store_true", help="... or also when it is a CUDA build")
    args = parser.parse_args(ours)
    venv = ensure(args.python, args.name, pip_args, weekly=args.weekly, torch=args.torch,
                  cuda_torch=args.cuda_torch)
    if torch_note(venv):
        print(torch_note(venv), file=sys.stderr)
    print(venv)


if __name__ == "__main__":
    main()
