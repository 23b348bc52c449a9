"""Chapter 2 in a real browser, offline: what is particular to this page. Every page, this one
included, is also checked by test_every_page.py (no errors, nothing from outside, images,
mathematics, sliders that change the picture), and its exercises by test_exercise_pages.py;
see conftest.py for how a page is opened."""

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

