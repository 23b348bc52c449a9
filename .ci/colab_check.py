"""`make colab-check`: every notebook under chapters/ executed the way a Colab reader runs it.

Colab keeps its own Python (3.12 today), numpy, matplotlib and torch, and a chapter's first
cell installs nblib on top (``%pip install "nblib[fast] @ git+<repository URL>"``, only when
``"google.colab" in sys.modules``). This script imitates that, and reports what differs from the
pinned build that `make test` checks:

1. A virtualenv on ``--python`` (default: Python 3.12) with the newest numpy, matplotlib,
   ipywidgets and tqdm that pip resolves, ``--torch`` (default ``torch==2.13.0``), and ipykernel and
   nbclient to run the notebooks; no constraints.txt and no nblib. It is kept between runs (see
   .ci/venvs.py: remade every week, or when the spec changes) and put back to that state before
   every run, so each run starts like a fresh Colab runtime.
2. Each notebook runs, top to bottom, in a fresh kernel of that environment whose IPython startup
   file (a) puts ``google.colab`` into ``sys.modules`` and (b) rewrites the install cell's
   ``git+<repository URL>`` to a copy of this checkout (a ``file://`` URL; the files a push would
   hold: tracked ones and new ones git does not ignore), so the Colab branch of the
   install cell really runs and installs nblib (non-editable, with its ``[fast]`` extra, resolved
   by pip against what is there, as on Colab). It also stands in for myst-nb's ``glue`` (absent on
   Colab, where nblib's glue then does nothing), so that glued numbers are output as in the pinned
   build: nbval compares those of checked cells, and the report says how far the others moved.
3. The report (printed, and written to ``_build/colab-check/report.md`` with the executed notebooks
   beside it) gives, per notebook: passed or the failing cell, wall time, every
   ``# NBVAL_CHECK_OUTPUT`` cell whose output differs from the committed one (nbval's rules:
   ``--nbval-lax`` with tests/nbval_sanitize.cfg; images and widget views are not compared), every
   stderr output or warning in a cell that the book would show, what the install cell printed,
   and how far the glued numbers moved.

``NBLIB_PROGRESS=0`` and
``PYTHONHASHSEED=0`` are set as in the pinned build, so the two runs differ only in the environment.

The exit status is 1 when a notebook failed, or when a checked cell prints something other than
what is committed; a checked cell that differs only in full-precision glued values is reported but
does not fail the check (tests/nbval_sanitize_portable.cfg says why).

usage: python3 .ci/colab_check.py [--python PY] [--torch SPEC] [--no-cuda-torch]
                                  [--reanalyse | --against DIR] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import venvs  # noqa: E402

OUT = ROOT / "_build" / "colab-check"
BASE = ["numpy", "matplotlib", "ipywidgets", "tqdm", "ipykernel", "nbclient", "nbformat"]
# Lines of pip's that come from this machine's pip configuration, not from what pip did.
ANSI = re.compile(r"\x1b\[[0-9;]*m")
MACHINE_NOISE = re.compile(r"^WARNING: Location '[^']*' is ignored: it is neither a file nor a directory\.$")

STARTUP = r'''
def _nblib_colab_like():
    """Installed by .ci/colab_check.py: make this kernel look like Colab's to the chapters."""
    import json, os, sys, types
    sys.modules.setdefault("google.colab", types.ModuleType("google.colab"))
    url, local = os.environ["NBLIB_COLAB_URL"], os.environ["NBLIB_COLAB_LOCAL"]
    record = os.environ["NBLIB_COLAB_RECORD"]
    shell = get_ipython()

    def install_from_checkout(lines):
        return [line.replace("git+" + url, local) for line in lines]

    shell.input_transformers_cleanup.append(install_from_checkout)

    def glue(name, variable, display=True):   # myst-nb's own glue, as myst_nb.ext.glue has it
        from IPython.core.formatters import format_display_data
        from IPython.display import display as show
        bundle, metadata = format_display_data(variable)
        prefix = "" if display else "application/papermill.record/"
        metadata["scrapbook"] = dict(name=name, mime_prefix=prefix)
        show({prefix + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)

    sys.modules["myst_nb"] = types.SimpleNamespace(glue=glue, __version__="colab-check stand-in")

    def write(result=None):
        info = {"python": sys.version.split()[0], "executable": sys.executable,
                "google.colab in sys.modules": "google.colab" in sys.modules}
        if "nblib" in sys.modules:
            info["nblib_file"] = sys.modules["nblib"].__file__
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            info["torch_cuda_build"] = torch.version.cuda
            info["torch_device"] = "cuda" if torch.cuda.is_available() else "cpu"
        with open(record, "w") as f:
            json.dump(info, f)

    shell.events.register("post_run_cell", write)


_nblib_colab_like()
del _nblib_colab_like
'''


# --- the driver (any python3) -----------------------------------------------------------------

def restore(venv: Path) -> None:
    """Put ``venv`` back to the packages it was made with (a previous run's install cell added
    nblib and numba, and may have moved numpy)."""
    base = dict(line.split("==", 1) for line in (venv / ".ready").read_text().splitlines() if "==" in line)
    now = venvs.pip(venv, "freeze", "--all", capture=True).stdout.splitlines()
    current = {}
    for line in now:
        if "==" in line:
            name, version = line.split("==", 1)
            current[name] = version
        elif " @ " in line:
            current[line.split(" @ ", 1)[0]] = None
    extra = sorted(n for n in current if n not in base)
    changed = sorted(f"{n}=={v}" for n, v in base.items() if n in current and current[n] != v)
    if extra:
        venvs.pip(venv, "uninstall", "--quiet", "--yes", *extra)
    if changed:
        venvs.pip(venv, "install", "--quiet", "--no-deps", *changed)


def drive(args: argparse.Namespace) -> int:
    python = args.python or venvs.find_interpreter("3.12")
    if not python:
        print("colab-check: no Python 3.12 found (python3.12 on PATH, or pyenv's); give one with "
              "COLAB_PYTHON=...", file=sys.stderr)
        return 2
    venv = venvs.ensure(python, "colab", BASE, weekly=True, torch=args.torch,
                        cuda_torch=not args.no_cuda_torch)
    if not (args.reanalyse or args.against):
        restore(venv)
    note = venvs.torch_note(venv)
    print(f"colab-check: {venv}\n  {note}" if note else f"colab-check: {venv}", flush=True)
    command = [str(venv / "bin" / "python"), __file__, "--run", "--torch-note", note,
               *(["--reanalyse"] if args.reanalyse else []),
               *(["--against", str(args.against.resolve())] if args.against else []),
               *map(str, args.notebooks)]
    return subprocess.run(command).returncode


# --- the runner (inside the Colab-like environment) ---------------------------------------------

def repository_url() -> str:
    text = (ROOT / "_config.yml").read_text()
    block = text[text.index("\nrepository:"):]
    return re.search(r"^\s+url:\s*(\S+)", block, flags=re.MULTILINE).group(1)


def sanitizers(name: str) -> list[tuple[str, str]]:
    """The (regex, replacement) pairs of tests/``name``, read as nbval reads them."""
    text = (ROOT / "tests" / name).read_text()
    return re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.MULTILINE)


def is_checked(cell: dict) -> bool:
    """Whether nbval --nbval-lax compares this cell's output (its marker comment or tag)."""
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    markers = {line.strip().lstrip("#").strip() for line in source.splitlines()
               if line.strip().startswith("#")}
    tags = set(cell.get("metadata", {}).get("tags", []))
    ignored = "NBVAL_IGNORE_OUTPUT" in markers or "nbval-ignore-output" in tags
    return ("NBVAL_CHECK_OUTPUT" in markers or "nbval-check-output" in tags) and not ignored


SKIP = {"metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
        "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg", "transient"}


def comparable(outputs: list[dict], patterns: list[tuple[str, str]]) -> dict[str, list]:
    """nbval's view of a cell's outputs: {key: [sanitised values]}, streams keyed by their name."""
    def clean(value):
        if isinstance(value, list):
            value = "".join(value)
        if isinstance(value, str):
            for regex, replace in patterns:
                value = re.sub(regex, replace, value)
        return value

    flat: dict[str, list] = {}
    for out in outputs:
        if out["output_type"] == "stream":
            out = {"output_type": "stream", out["name"]: out["text"]}
        for k, v in out.items():
            if k in SKIP:
                continue
            if k == "data":
                for mime, value in v.items():
                    if mime not in SKIP:
                        flat.setdefault(mime, []).append(clean(value))
            else:
                flat.setdefault(k, []).append(clean(v))
    return flat


def differing_values(differing: dict[str, tuple]) -> list[str]:
    """Which output fields differ and how: for lists of values (one per output), the pairs that differ."""
    lines = []
    for key, (a, b) in differing.items():
        a, b = a or [], b or []
        pairs = [(x, y) for x, y in zip(a, b) if x != y]
        if len(a) != len(b):
            lines.append(f"{key}: {len(a)} outputs committed, {len(b)} now")
        for x, y in pairs[:6]:
            lines.append(f"{key}: {str(x).strip()[:160]!r} -> {str(y).strip()[:160]!r}")
    return lines


def text_of(outputs: list[dict]) -> str:
    parts = []
    for out in outputs:
        if out["output_type"] == "stream":
            parts.append(f"[{out['name']}] " + "".join(out["text"]))
        elif out["output_type"] == "error":
            parts.append(f"[error] {out['ename']}: {out['evalue']}")
        else:
            parts.append("".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def needs_torch(nb) -> bool:
    return any(re.search(r"\btorch", c.source) for c in nb.cells if c.cell_type == "code")


def glued(nb) -> dict[str, str]:
    """{name: text} of every value a notebook glues (myst-nb's outputs)."""
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            scrapbook = out.get("metadata", {}).get("scrapbook", {})
            if "name" in scrapbook:
                values[scrapbook["name"]] = "".join(out["data"].get(scrapbook["mime_prefix"] + "text/plain",
                                                                    ""))
    return values


def glue_changes(committed, executed) -> tuple[int, int, list[tuple[str, str, str, float]]]:
    """(how many glued numbers, how many equal, the changed ones as (name, committed, now, relative
    change)), leaving out the timings (names with seconds, minutes or time in them)."""
    before, now_values = glued(committed), glued(executed)
    names = [n for n in before if not re.search(r"second|minute|time", n)]
    changes = []
    for n in names:
        now = now_values.get(n, "<not glued>")
        if now == before[n]:
            continue
        try:
            a, b = float(before[n]), float(now)
            rel = abs(b - a) / max(abs(a), 1e-300) if not (math.isnan(a) and math.isnan(b)) else 0.0
        except ValueError:
            rel = math.inf
        if rel:
            changes.append((n, before[n], now, rel))
    return len(names), len(names) - len(changes), sorted(changes, key=lambda c: -c[3])


def run_one(path: Path, work: Path, url: str, skip_reason: str | None) -> dict:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    committed = nbformat.read(path, as_version=4)
    result = {"notebook": str(path.relative_to(ROOT)), "status": "passed", "seconds": 0.0, "failure": None,
              "checked": 0, "differences": [], "page_warnings": [], "install_output": "", "environment": {}}
    if skip_reason and needs_torch(committed):
        result["status"] = f"not run: {skip_reason}"
        return result
    nb = nbformat.read(path, as_version=4)
    record = work / f"{path.stem}.record.json"
    os.environ.update(NBLIB_COLAB_URL=url, NBLIB_COLAB_LOCAL=(work / "repository").as_uri(),
                      NBLIB_COLAB_RECORD=str(record))
    client = NotebookClient(nb, timeout=1200, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        result["status"] = "FAILED"
        first = str(error).strip().splitlines()
        result["failure"] = "\n".join(first[-12:])
    result["seconds"] = round(time.perf_counter() - start, 1)
    (OUT / "executed").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, OUT / "executed" / path.name)
    if record.is_file():
        result["environment"] = json.loads(record.read_text())

    analyse(result, committed, nb)
    if committed.metadata.get("nblib", {}).get("edition") == "student":
        student_verdicts(result, nb)
    return result


def student_verdicts(result: dict, nb) -> None:
    """A student edition, run as handed out, must say "not yet" in every check cell, and nothing else."""
    verdicts = []
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.lstrip().startswith("# Checks exercise"):
            text = text_of(cell.get("outputs", []))
            verdicts.append("not yet" if ": not yet" in text
                            else "passed" if ": passed" in text else "nothing")
    result["student_verdicts"] = verdicts
    if not verdicts or any(v != "not yet" for v in verdicts):
        result["status"] = "FAILED"
        result["failure"] = ((result.get("failure") or "")
                             + f"\nthe student edition's checkers said {verdicts}, not 'not yet' everywhere")


def analyse(result: dict, committed, nb) -> None:
    """Fill in ``result`` from the committed and the executed notebook: checked cells compared as
    nbval compares them (tests/nbval_sanitize.cfg), and again with the portable sanitisers
    (tests/nbval_sanitize_portable.cfg: full-precision glued values left out); warnings that
    the book would show; what the install cell printed; how far the glued numbers moved."""
    exact, portable = sanitizers("nbval_sanitize.cfg"), sanitizers("nbval_sanitize_portable.cfg")
    result.update(checked=0, differences=[], page_warnings=[], install_output="", install_noise_lines=0)
    for index, (old, new) in enumerate(zip(committed.cells, nb.cells)):
        if new.cell_type != "code":
            continue
        label = f"cell {index} ({new.source.splitlines()[0][:60] if new.source else ''})"
        if "google.colab" in new.source and "pip install" in new.source:
            lines = text_of(new.get("outputs", [])).splitlines()
            lines = [ANSI.sub("", ln) for ln in lines if ln.strip()]
            kept = [ln for ln in lines
                    if not MACHINE_NOISE.match(re.sub(r"^\[std(out|err)\] ", "", ln).strip())]
            result["install_output"] = "\n".join(kept).strip()
            result["install_noise_lines"] = len(lines) - len(kept)
            continue
        if is_checked(old) and old.get("outputs"):
            result["checked"] += 1
            a, b = comparable(old["outputs"], exact), comparable(new.get("outputs", []), exact)
            if a != b:
                differing = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
                only_full_precision = (comparable(old["outputs"], portable)
                                       == comparable(new.get("outputs", []), portable))
                result["differences"].append({"cell": label, "what": differing_values(differing),
                                              "only_full_precision": only_full_precision,
                                              "committed": text_of(old["outputs"]),
                                              "now": text_of(new.get("outputs", []))})
        for out in new.get("outputs", []):
            text = text_of([out])
            if ((out["output_type"] == "stream" and out["name"] == "stderr")
                    or re.search(r"\w+Warning\b", text)):
                result["page_warnings"].append(f"{label}: {text.strip()[:400]}")
    total, equal, changes = glue_changes(committed, nb)
    result["glue"] = {"compared": total, "equal": equal, "largest_changes": changes[:8]}


def installed() -> dict[str, str]:
    """Versions in this environment, read after the run (the install cells have added nblib and numba)."""
    import importlib.metadata as metadata
    import platform
    versions = {"Python": platform.python_version()}
    for name in ("numpy", "matplotlib", "ipywidgets", "tqdm", "numba", "torch", "ipykernel", "nblib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def report(results: list[dict], note: str, wall: float) -> str:
    env = next((r["environment"] for r in results if r["environment"].get("torch_cuda_build") is not None),
               next((r["environment"] for r in results if r["environment"]), {}))
    where = env.get("nblib_file", "?")
    lines = ["# Colab-like run (make colab-check)", "",
             "Environment: " + ", ".join(f"{k} {v}" for k, v in installed().items()) + ".",
             f"In the kernels: google.colab in sys.modules: {env.get('google.colab in sys.modules')}; "
             "nblib imported from "
             f"{'site-packages (installed by the install cell)' if 'site-packages' in where else where}; "
             f"torch's CUDA build: {env.get('torch_cuda_build')}, device: {env.get('torch_device')}.",
             f"torch: {note}" if note else "", "",
             "| notebook | result | wall time | checked cells that differ | ... other than in full-precision "
             "glued values | warnings on the page |",
             "|---|---|---|---|---|---|"]
    for r in results:
        real = [d for d in r["differences"] if not d.get("only_full_precision")]
        lines.append(f"| {r['notebook']} | {r['status']} | {r['seconds']:.0f} s | "
                     f"{len(r['differences'])} of {r['checked']} | {len(real)} | {len(r['page_warnings'])} |")
    lines += ["", f"Total wall time: {wall:.0f} s.", ""]
    for r in results:
        lines.append(f"## {r['notebook']}: {r['status']}")
        if r["failure"]:
            lines += ["", "```", r["failure"], "```"]
        for d in r["differences"]:
            how = ("only in full-precision glued values (what it prints is unchanged)"
                   if d.get("only_full_precision") else "in what it prints")
            lines += ["", f"Checked output differs, {d['cell']}, {how}:", *[f"- {w}" for w in d["what"]],
                      "", "```", "committed:", d["committed"].strip(), "now:", d["now"].strip(), "```"]
        for w in r["page_warnings"]:
            lines += ["", f"Would reach the page: {w}"]
        if r.get("install_output"):
            lines += ["", "The install cell printed:", "```", r["install_output"][:2000], "```"]
        if r.get("install_noise_lines"):
            lines.append(f"(and {r['install_noise_lines']} lines about this machine's pip configuration, "
                         "left out)")
        g = r.get("glue")
        if g and g["compared"]:
            lines += ["", f"Glued numbers: {g['equal']} of {g['compared']} as committed (timings left out)."]
            for name, a, b, rel in g["largest_changes"]:
                lines.append(f"- `{name}`: {a} → {b} (relative change {rel:.2g})")
        lines.append("")
    return "\n".join(lines)


def reanalyse(against: Path | None = None) -> tuple[list[dict], float, str]:
    """The last run's results (report.json), compared again with the committed notebooks as they
    are now (after a change to this script or to the sanitisers), without running anything; or,
    with ``against``, with the notebooks of that folder (say, the chapters executed in the pinned
    environment on this machine: ``jupyter execute --output=DIR/{notebook_name}.ipynb ...``), to
    tell what the environment changes from what the machine changes."""
    import nbformat
    saved = json.loads((OUT / "report.json").read_text())
    if isinstance(saved, list):
        saved = {"results": saved, "wall": sum(r["seconds"] for r in saved), "torch_note": ""}
    for r in saved["results"]:
        executed = OUT / "executed" / Path(r["notebook"]).name
        reference = (against / Path(r["notebook"]).name) if against else ROOT / r["notebook"]
        if executed.is_file() and reference.is_file():
            analyse(r, nbformat.read(reference, as_version=4), nbformat.read(executed, as_version=4))
        elif against:
            r.update(checked=0, differences=[], glue={"compared": 0, "equal": 0, "largest_changes": []},
                     status=r["status"] + f" (no {reference.name} in {against} to compare with)")
    return saved["results"], saved["wall"], saved.get("torch_note", "")


def copy_of_the_repository(into: Path) -> None:
    """The files a push of this checkout would hold (tracked, and new ones git does not ignore),
    as the install cell's pip gets them from the repository URL: pip builds nblib in that copy,
    so no build/ folder is left in the checkout."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def run(args: argparse.Namespace) -> int:
    if args.reanalyse or args.against:
        results, wall, note = reanalyse(args.against.resolve() if args.against else None)
        if args.against:
            note = ((note or args.torch_note)
                    + f"\n\nCompared with the notebooks in {args.against}, not the committed ones.")
        return finish(results, wall, note or args.torch_note, write=not args.against)
    notebooks = [Path(n).resolve() for n in args.notebooks] or (
        sorted((ROOT / "chapters").glob("*.ipynb")) + sorted((ROOT / "_build" / "student").glob("*.ipynb")))
    os.environ.setdefault("NBLIB_PROGRESS", "0")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    skip = None if "torch" in sys.modules or _has("torch") else "no torch in this environment"
    OUT.mkdir(parents=True, exist_ok=True)
    url = repository_url()
    results = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="colab-check-") as tmp:
        work = Path(tmp)
        startup = work / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-colab-like.py").write_text(STARTUP)
        os.environ["IPYTHONDIR"] = str(work / "ipython")
        copy_of_the_repository(work / "repository")
        for path in notebooks:
            print(f"colab-check: {path.relative_to(ROOT)} ...", flush=True)
            r = run_one(path, work, url, skip)
            print(f"colab-check: {path.relative_to(ROOT)}: {r['status']} in {r['seconds']:.0f} s, "
                  f"{len(r['differences'])} of {r['checked']} checked cells differ, "
                  f"{len(r['page_warnings'])} warnings on the page", flush=True)
            results.append(r)
    return finish(results, time.perf_counter() - start, args.torch_note)


def finish(results: list[dict], wall: float, note: str, write: bool = True) -> int:
    """Write (unless it is a comparison with other notebooks) and print the report; the exit status."""
    text = report(results, note, wall)
    if write:
        (OUT / "report.md").write_text(text)
        (OUT / "report.json").write_text(json.dumps({"wall": wall, "torch_note": note, "results": results},
                                                    indent=1))
    print("\n" + text + (f"\n(written to {(OUT / 'report.md').relative_to(ROOT)})" if write else ""))
    bad = [r for r in results if r["status"] == "FAILED"
           or any(not d.get("only_full_precision") for d in r["differences"])]
    return 1 if bad else 0


def _has(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=os.environ.get("COLAB_PYTHON") or None,
                        help="the interpreter (default: Python 3.12, from PATH or pyenv)")
    parser.add_argument("--torch", default=os.environ.get("COLAB_TORCH", "torch==2.13.0"),
                        help="the torch requirement (default torch==2.13.0)")
    parser.add_argument("--no-cuda-torch", action="store_true",
                        help="leave torch out when pip would take a CUDA build (then the notebooks that "
                             "use torch are reported as not run)")
    parser.add_argument("--reanalyse", action="store_true",
                        help="compare the last run's executed notebooks again, without running them")
    parser.add_argument("--against", type=Path, metavar="DIR",
                        help="compare the last run's executed notebooks with those in DIR instead "
                             "(prints only)")
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torch-note", default="", help=argparse.SUPPRESS)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapters/*.ipynb")
    args = parser.parse_args()
    return run(args) if args.run else drive(args)


if __name__ == "__main__":
    sys.exit(main())
