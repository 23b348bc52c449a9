"""Fixtures for the browser tests of the built book.

They need a built book and a browser, so they run only when ``NBLIB_BOOK_HTML`` names the
book's HTML folder (``make browser``, part of ``make test``, sets it after building the book);
otherwise every test is skipped with the reason. The browser is Debian's ``chromium``
(``NBLIB_CHROMIUM``, default /usr/bin/chromium) driven by Playwright's Python API; Playwright's
own browser download is never used. The book is served from 127.0.0.1 and every request to
any other host is blocked (and recorded), as for a reader without internet.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

import pytest

from book_pages import FIGURE_SCALES

CHROMIUM = os.environ.get("NBLIB_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: needs a built book and Debian's chromium (make browser)")


@pytest.fixture(scope="session")
def book_dir() -> Path:
    """The built book's HTML folder, or a skip that says how to get one."""
    folder = os.environ.get("NBLIB_BOOK_HTML")
    if not folder:
        pytest.skip("browser tests need a built book: run `make browser` after `make book-noexec`, "
                    "or set NBLIB_BOOK_HTML to the book's HTML folder")
    path = Path(folder)
    if not (path / "index.html").is_file():
        pytest.fail(f"NBLIB_BOOK_HTML={folder} holds no built book (no index.html): "
                    "build it first (make book-noexec)")
    return path


@pytest.fixture(scope="session")
def book_url(book_dir: Path) -> Iterator[str]:
    """The book served over HTTP on 127.0.0.1 (a free port), for as long as the tests run."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(book_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser(book_url: str) -> Iterator[object]:
    """Debian's chromium, headless, driven by Playwright (skipped where either is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; "
                    "`make browser` does it where apt-get runs as root)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield chromium
        chromium.close()


class LoadedPage:
    """A page opened offline, with what went wrong while it loaded."""

    def __init__(self, page: object, console_errors: list[str], page_errors: list[str],
                 blocked: list[str]) -> None:
        (self.page, self.console_errors,
         self.page_errors, self.blocked) = page, console_errors, page_errors, blocked


@pytest.fixture(scope="session")
def open_offline(browser: object) -> object:
    """``open_offline(url)``: the page at ``url`` loaded as by a reader without internet."""
    return functools.partial(_open_offline, browser)


@pytest.fixture(scope="session")
def book_page(open_offline, book_url: str) -> Callable[[str], LoadedPage]:
    """``book_page("chapters/01_....html")``: that page of the book, opened offline once for the
    whole session, so that every check of a page looks at the same load."""
    opened: dict[str, LoadedPage] = {}

    def get(relative: str) -> LoadedPage:
        if relative not in opened:
            opened[relative] = open_offline(f"{book_url}/{relative}")
        return opened[relative]

    return get


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not FIGURE_SCALES:
        return
    lines = ["smallest figure scale per page (displayed width / natural width, viewport 1280 px wide;"
             " below 0.7 the figure's text is shrunk too far):"]
    for page, (scale, count, image) in sorted(FIGURE_SCALES.items()):
        lines.append(f"  {scale:5.2f}  {page}  ({count} figures; smallest: {image})" if count else
                     f"    -    {page}  (no figures)")
    terminalreporter.write_sep("-", "figure scales")
    for line in lines:
        terminalreporter.write_line(line)
    folder = os.environ.get("NBLIB_BOOK_HTML")
    if folder and Path(folder).is_dir():
        out = Path(folder).parent / "figure-scales.txt"
        out.write_text("\n".join(lines) + "\n")
        terminalreporter.write_line(f"(written to {out})")


def _open_offline(browser: object, url: str) -> LoadedPage:
    """Open ``url`` in a fresh context that lets only 127.0.0.1 through, wait until it has loaded
    and MathJax (if any) has typeset, and return the page with its errors and blocked requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    console_errors: list[str] = []
    page_errors: list[str] = []
    blocked: list[str] = []

    def only_local(route: object) -> None:
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.on("console", lambda message: console_errors.append(f"{message.text} ({message.location})")
            if message.type == "error" else None)
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    page.evaluate("() => (window.MathJax && MathJax.startup && MathJax.startup.promise) "
                  "? MathJax.startup.promise.then(() => true) : false")
    return LoadedPage(page, console_errors, page_errors, blocked)
