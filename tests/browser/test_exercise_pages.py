"""The exercise pages in a real browser, offline: every exercise shows its question, its answer
cell and the checker's "not yet"; nothing of a solution (text, code, output, figure, glued number)
is visible until the reader opens it, and opening it shows it; chapter 2's pre-rendered sliders
change the picture. See conftest.py for how the pages are opened."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p.relative_to(ROOT).with_suffix("").as_posix()
               for p in (ROOT / "chapters").glob("*_exercises.ipynb"))


@pytest.fixture(scope="module", params=PAGES)
def exercises(request, open_offline, book_url: str):
    return open_offline(f"{book_url}/{request.param}.html")


def solutions_section(page):
    heading = page.locator("h2", has_text="Solutions")
    assert heading.count() == 1, "no Solutions section"
    return page.locator("section", has=heading).last


def test_no_errors_and_nothing_from_the_internet(exercises):
    assert exercises.page_errors == [] and exercises.console_errors == []
    assert exercises.blocked == []


def test_every_exercise_shows_its_answer_cell_and_a_not_yet(exercises):
    page = exercises.page
    headings = page.locator("h2", has_text="Exercise ")
    assert headings.count() >= 3
    for k in range(headings.count()):
        section = page.locator("section", has=headings.nth(k)).last
        assert section.get_by_text("# Your answer to exercise", exact=False).first.is_visible()
        feedback = section.locator(".nblib-feedback").first
        assert feedback.is_visible() and "not yet" in feedback.inner_text()


def test_nothing_of_a_solution_is_visible_before_it_is_opened(exercises):
    section = solutions_section(exercises.page)
    folded = section.locator("details")
    assert folded.count() >= 3
    assert section.locator("details[open]").count() == 0
    for selector in (".nblib-feedback", "img", ".cell_output", ".cell_input", ".sd-card-body"):
        shown = section.locator(selector)
        assert all(not shown.nth(k).is_visible() for k in range(shown.count())), (
            f"a solution's {selector} is visible")
    assert "Your width agrees" not in section.inner_text() and "passed" not in section.inner_text()


def test_opening_a_solution_shows_it(exercises):
    page = exercises.page
    section = solutions_section(page)
    dropdown = section.locator(".sd-dropdown").first
    dropdown.locator("summary").first.click()
    page.wait_for_timeout(200)
    assert dropdown.evaluate("el => el.open") and dropdown.locator(".sd-card-body").first.is_visible()
    hidden = section.locator("details.hide")
    for k in range(hidden.count()):
        hidden.nth(k).locator("summary").first.click()
    page.wait_for_timeout(200)
    assert section.locator("details.hide:not([open])").count() == 0
    assert section.locator(".nblib-feedback", has_text="passed").first.is_visible(), (
        "no reference answer passes")


@pytest.fixture(scope="module")
def chapter2_exercises(open_offline, book_url: str):
    return open_offline(f"{book_url}/chapters/02_unstable_gradients_exercises.html")


def test_prerendered_sliders_change_the_picture(chapter2_exercises):
    page = chapter2_exercises.page
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
            assert after[3] != before[3], (
                f"player {p + 1}, slider {s + 1}: the picture on screen did not change")
            assert after[2] != before[2], f"player {p + 1}, slider {s + 1}: the readout did not change"
            assert slider.evaluate("el => el.parentNode.querySelector('output').textContent") != label_before
