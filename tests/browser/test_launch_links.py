"""The launch buttons of the built pages open the right notebook, read from the built HTML (not
from _config.yml): on every page built from a notebook (each chapter, each exercise page), the
Binder and the Colab link name the same GitHub repository and branch, point at that page's own
notebook at the path it has in this repository (tracked by git), and that notebook's Colab
install cell installs nblib from the same repository. Needs only the built book, not a browser."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from bs4 import BeautifulSoup

from book_pages import built_pages

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_PAGES = [p for p in built_pages()
                  if (ROOT / Path(p).with_suffix(".ipynb")).is_file()] or ["(no built book)"]


def links(html: str) -> dict[str, list[str]]:
    soup = BeautifulSoup(html, "html.parser")
    hrefs = [a["href"] for a in soup.find_all("a", href=True)]
    return {"binder": [h for h in hrefs if urlparse(h).hostname == "mybinder.org"],
            "colab": [h for h in hrefs if urlparse(h).hostname == "colab.research.google.com"]}


def binder_target(url: str) -> tuple[str, str, str]:
    """(org/repo, branch, path) of https://mybinder.org/v2/gh/ORG/REPO/BRANCH?urlpath=lab/tree/PATH."""
    parsed = urlparse(url)
    match = re.fullmatch(r"/v2/gh/([^/]+/[^/]+)/([^/]+)", parsed.path)
    assert match, f"not a Binder link to a GitHub repository: {url}"
    urlpath = parse_qs(parsed.query).get("urlpath", [""])[0]
    tree = re.fullmatch(r"(?:lab/tree|tree)/(.+)", urlpath)
    assert tree, f"the Binder link opens no file: {url}"
    return match[1], match[2], tree[1]


def colab_target(url: str) -> tuple[str, str, str]:
    """(org/repo, branch, path) of https://colab.research.google.com/github/ORG/REPO/blob/BRANCH/PATH."""
    match = re.fullmatch(r"/github/([^/]+/[^/]+)/blob/([^/]+)/(.+)", urlparse(url).path)
    assert match, f"not a Colab link to a notebook on GitHub: {url}"
    return match[1], match[2], match[3]


def tracked_by_git(path: str) -> bool:
    out = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=ROOT, capture_output=True)
    if out.returncode != 0 and b"not a git repository" in out.stderr:
        return (ROOT / path).is_file()
    return out.returncode == 0


def install_urls(notebook: Path) -> list[str]:
    """The repository URLs the notebook's Colab install cell installs nblib from."""
    cells = json.loads(notebook.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells
                     if c["cell_type"] == "code" and "google.colab" in "".join(c["source"]))
    return re.findall(r"git\+(https://github\.com/[^\s\"'@#]+)", code)


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_launch_links_open_this_pages_notebook_from_the_repository_it_installs_from(page, book_dir):
    html = (book_dir / page).read_text(encoding="utf-8")
    found = links(html)
    assert len(found["binder"]) == 1, f"{page}: expected one Binder link, found {found['binder']}"
    assert len(found["colab"]) == 1, f"{page}: expected one Colab link, found {found['colab']}"
    binder, colab = binder_target(found["binder"][0]), colab_target(found["colab"][0])
    notebook = str(Path(page).with_suffix(".ipynb"))
    assert binder == colab, f"{page}: Binder opens {binder}, Colab {colab}"
    repository, branch, path = binder
    assert path == notebook, f"{page}: the launch links open {path}, but the page was built from {notebook}"
    assert tracked_by_git(path), f"{page}: {path} is not in the repository (git add it)"
    installs = install_urls(ROOT / path)
    assert installs, f"{path}: no Colab install cell (pip install ... git+https://github.com/...)"
    assert {u.removesuffix(".git").rstrip("/") for u in installs} == {f"https://github.com/{repository}"}, (
        f"{path} installs nblib from {installs}, but its page's launch links open github.com/{repository}")
    assert branch, f"{page}: the launch links name no branch"
    source = [a["href"] for a in BeautifulSoup(html, "html.parser").select("a.btn-source-repository-button")]
    assert source in ([], [f"https://github.com/{repository}"]), (
        f"{page}: the repository button opens {source}, the launch links github.com/{repository}")
