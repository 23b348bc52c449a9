"""Chapter 2 in a real browser, offline: no errors, every figure there, and no inline script
written twice on any page. (Its exercises and their sliders are on their own page:
test_exercise_pages.py.) See conftest.py for how the page is opened."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

pytestmark = pytest.mark.browser

CHAPTER = "chapters/02_unstable_gradients"
NOTEBOOK = Path(__file__).resolve().parents[2] / f"{CHAPTER}.ipynb"


@pytest.fixture(scope="module")
def chapter(open_offline, book_url: str):
    """Chapter 2, opened once for all the tests of this module."""
    return open_offline(f"{book_url}/{CHAPTER}.html")


def captioned_figures() -> int:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return sum(1 for c in cells if "figure" in c.get("metadata", {}).get("mystnb", {}))


def test_no_console_errors_and_no_page_errors(chapter):
    assert chapter.page_errors == [], f"errors thrown by the page's scripts: {chapter.page_errors}"
    assert chapter.console_errors == [], f"errors in the console: {chapter.console_errors}"


def test_the_page_needs_nothing_from_the_internet(chapter):
    assert chapter.blocked == [], (
        f"the page asked for {chapter.blocked}; offline these fail. (MathJax from a CDN means `make assets` "
        "did not run before the book was built.)")


def test_mathematics_is_typeset(chapter):
    assert chapter.page.locator("mjx-container").count() > 20


def test_every_figure_is_present(chapter):
    page = chapter.page
    figures = page.locator("figure img")
    assert figures.count() >= captioned_figures() > 0
    broken = page.evaluate("() => Array.from(document.images)"
                           ".filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src.slice(0, 80))")
    assert broken == [], f"images that did not load: {broken}"
    for k in range(figures.count()):
        assert figures.nth(k).evaluate("img => img.naturalWidth") > 0


def test_no_inline_script_is_written_twice(book_dir: Path):
    for page in [book_dir / f"{CHAPTER}.html", *sorted(book_dir.glob("chapters/*.html")), book_dir / "index.html"]:
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        inline = Counter(s.string.strip() for s in soup.find_all("script") if not s.get("src") and s.string
                         and s.string.strip() and s.get("type") in (None, "text/javascript"))
        twice = [text[:60] for text, n in inline.items() if n > 1]
        assert twice == [], f"{page.name}: inline scripts written more than once: {twice}"
        assert len(re.findall(r"const THEBE_JS_URL", page.read_text(encoding="utf-8"))) <= 1
