"""Which pages the built book has, and what the browser tests measured on them (shared by
conftest.py and the tests, which import it as a plain module: pytest puts this folder on
sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

# Pages of Sphinx's own that are no part of the book's text.
NOT_BOOK_PAGES = {"genindex.html", "search.html", "py-modindex.html"}

# The smallest displayed-over-natural width of a figure on each page, filled in by
# test_every_page.py, printed at the end of the run and written next to the book's HTML folder:
# {page: (scale, figures measured, the smallest figure's caption)}.
FIGURE_SCALES: dict[str, tuple[float, int, str]] = {}


def built_pages() -> list[str]:
    """Every page of the built book (``NBLIB_BOOK_HTML``), as paths relative to its folder:
    index, chapters, exercise pages, references, whatever has been added, found in the build
    rather than listed here. Sphinx's index and search pages, and anything under a folder whose
    name starts with ``_`` (static files, sources, vendored MathJax), are left out. Without a
    built book, one placeholder, so that the tests are collected and then skip with the reason."""
    folder = os.environ.get("NBLIB_BOOK_HTML")
    if not folder or not (Path(folder) / "index.html").is_file():
        return ["(no built book)"]
    root = Path(folder)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.html")
                  if p.name not in NOT_BOOK_PAGES
                  and not any(part.startswith("_") for part in p.relative_to(root).parts))
