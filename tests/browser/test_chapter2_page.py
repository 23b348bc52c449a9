"""Chapter 2 in a real browser, offline: what is particular to this page. Every page, this one
included, is also checked by test_every_page.py (no errors, nothing from outside, images,
mathematics, sliders that change the picture); see conftest.py for how a page is opened."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

CHAPTER = "chapters/02_unstable_gradients.html"


@pytest.fixture(scope="module")
def chapter(book_page):
    """Chapter 2, the same load as test_every_page.py's."""
    return book_page(CHAPTER)


def test_a_good_deal_of_mathematics_is_typeset(chapter):
    assert chapter.page.locator("mjx-container").count() > 20


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


def test_the_three_players_are_there(chapter):
    assert chapter.page.locator(".nblib-player").count() == 3
