"""How long each notebook of the book takes to execute, each in a fresh kernel.

    python benchmarks/chapters.py [NOTEBOOK ...]

executes every notebook of the book (the chapters, their exercise pages and the teaching page,
in the order of ``_toc.yml``; or the ones named) with nbclient, as ``make book`` does, without
writing anything back, and prints one line per notebook, then on
its last line ``total_s=<seconds> slowest=<notebook>:<seconds>``. Progress bars are off
(``NBLIB_PROGRESS=0``), as in the book's build. Run it on a quiet machine: it measures wall time.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def book_notebooks() -> list[Path]:
    """The notebooks listed in ``_toc.yml``, in its order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = []
    for entry in toc.get("chapters", []):
        files.append(entry["file"])
        files += [section["file"] for section in entry.get("sections", [])]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def execute(path: Path, timeout: int = 1200) -> float:
    """Seconds to execute ``path`` top to bottom in a fresh kernel started in the notebook's own
    folder, as the book's build does. The executed copy stays in memory: the file is not changed."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    os.environ["NBLIB_PROGRESS"] = "0"
    os.environ.setdefault("PYTHONHASHSEED", "0")
    notebooks = [Path(a).resolve() for a in argv] or book_notebooks()
    missing = [str(p) for p in notebooks if not p.is_file()]
    if missing:
        print(f"no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    times = {}
    for path in notebooks:
        name = str(path.relative_to(ROOT))
        times[name] = execute(path)
        print(f"{name}: {times[name]:.1f} s", flush=True)
    slowest = max(times, key=times.get)
    print(f"total_s={sum(times.values()):.1f} slowest={slowest}:{times[slowest]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
