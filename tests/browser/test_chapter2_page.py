"""Chapter 2 in a real browser, offline: no errors, every figure and exercise there, and the
pre-rendered sliders really change the picture. See conftest.py for how the page is opened."""

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
    """Chapter 2, opened once for all the tests of this module (the slider test runs last)."""
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


@pytest.mark.parametrize("number, answer", [(1, "best_scale = ..."), (2, "def width(w):"), (3, "v = ...")])
def test_every_exercise_is_visible(chapter, number: int, answer: str):
    page = chapter.page
    heading = page.locator("h3", has_text=f"Exercise {number}:")
    assert heading.count() == 1 and heading.is_visible()
    section = page.locator("section", has=heading).last
    assert section.locator(".nblib-player img").is_visible(), "the exercise's pre-rendered figure is not visible"
    assert section.get_by_text(answer, exact=False).first.is_visible(), "the answer cell is not visible"
    assert section.locator(".nblib-feedback").first.is_visible(), "the checker's feedback is not visible"
    assert section.locator("details, .dropdown").count() >= 1, "no folded solution"


def test_prerendered_sliders_change_the_picture(chapter):
    page = chapter.page
    players = page.locator(".nblib-player")
    assert players.count() == 3
    for p in range(players.count()):
        player = players.nth(p)
        player.scroll_into_view_if_needed()
        image, readout = player.locator("img"), player.locator(".nblib-player-readout")
        sliders = player.locator('input[type="range"]')
        assert sliders.count() >= 1
        for s in range(sliders.count()):
            slider = sliders.nth(s)
            before = (image.get_attribute("src"), image.get_attribute("data-frame"), readout.inner_text(),
                      image.screenshot())
            label_before = slider.evaluate("el => el.parentNode.querySelector('output').textContent")
            key = "ArrowLeft" if slider.input_value() == slider.get_attribute("max") else "ArrowRight"
            slider.focus()
            page.keyboard.press(key)
            after = (image.get_attribute("src"), image.get_attribute("data-frame"), readout.inner_text(),
                     image.screenshot())
            assert after[1] != before[1], f"player {p + 1}, slider {s + 1}: the frame did not change"
            assert after[0] != before[0], f"player {p + 1}, slider {s + 1}: the image did not change"
            assert after[3] != before[3], f"player {p + 1}, slider {s + 1}: the picture on screen did not change"
            assert after[2] != before[2], f"player {p + 1}, slider {s + 1}: the readout did not change"
            assert slider.evaluate("el => el.parentNode.querySelector('output').textContent") != label_before


def test_no_inline_script_is_written_twice(book_dir: Path):
    for page in [book_dir / f"{CHAPTER}.html", *sorted(book_dir.glob("chapters/*.html")), book_dir / "index.html"]:
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        inline = Counter(s.string.strip() for s in soup.find_all("script") if not s.get("src") and s.string
                         and s.string.strip() and s.get("type") in (None, "text/javascript"))
        twice = [text[:60] for text, n in inline.items() if n > 1]
        assert twice == [], f"{page.name}: inline scripts written more than once: {twice}"
        assert len(re.findall(r"const THEBE_JS_URL", page.read_text(encoding="utf-8"))) <= 1
