"""Checks of the book's own files: table of contents, citations, launch buttons, install cells."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for entry in toc.get("chapters", []):
        files.append(entry["file"])
        files += [section["file"] for section in entry.get("sections", [])]
    return files


def notebook_text(path: Path, cell_type: str) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == cell_type)


def test_there_are_chapters():
    assert CHAPTERS, "no notebooks in chapters/"


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    listed = toc_files()
    for nb in CHAPTERS:
        assert str(nb.relative_to(ROOT).with_suffix("")) in listed, f"{nb.name} is not in _toc.yml"
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), (
            f"_toc.yml lists missing {entry}")


def test_every_citation_is_in_references_bib():
    keys = set(re.findall(r"@\w+\{([^,]+),", (ROOT / "references.bib").read_text()))
    pages = [ROOT / f"{f}.md" for f in toc_files() if (ROOT / f"{f}.md").exists()]
    texts = [p.read_text() for p in pages] + [notebook_text(nb, "markdown") for nb in CHAPTERS]
    cited = {k.strip() for t in texts for group in re.findall(r"\{cite[pt]?\}`([^`]+)`", t)
             for k in group.split(",")}
    assert cited, "no citations found"
    assert cited <= keys, f"cited but not in references.bib: {sorted(cited - keys)}"


def test_launch_buttons_and_repository_are_configured():
    url = CONFIG["repository"]["url"]
    assert url.startswith("https://github.com/"), url
    assert CONFIG["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["execute"]["execute_notebooks"] == "cache"
    assert CONFIG["execute"]["timeout"] >= 600


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.name)
def test_colab_install_cell_names_the_repository_of_config(nb):
    code = notebook_text(nb, "code")
    installs = re.findall(r"git\+(https://\S+?)[\"'\s]", code)
    assert installs, f"{nb.name}: no Colab install cell (pip install ... git+<repository URL>)"
    assert set(installs) == {CONFIG["repository"]["url"]}, (
        f"{nb.name} installs from {installs}, but _config.yml says {CONFIG['repository']['url']}")
    assert '"google.colab" in sys.modules' in code


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.name)
def test_notebooks_never_touch_sys_path(nb):
    assert "sys.path" not in notebook_text(nb, "code"), f"{nb.name}: import nblib, do not edit sys.path"


def test_binder_environment_uses_cpu_torch_and_the_pinned_versions():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "torch==2.13.0+cpu" in pip
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for line in pip:
        if "==" in line and not line.startswith("torch=="):
            name, version = line.split("==")
            assert pins.get(name) == version, f"environment.yml pins {line}, constraints.txt {pins.get(name)}"
    post_build = (ROOT / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post_build and "nblib.data" in post_build


def test_constraints_pin_torch_and_jupyter_book_1():
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["torch"] == "2.13.0"
    assert pins["jupyter-book"].startswith("1.")


def test_importing_nblib_does_not_import_torch():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import sys, nblib, nblib.data, nblib.networks, "
                          "nblib.training, nblib.metrics, nblib.plots; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.name)
def test_every_captioned_figure_cell_has_an_image(nb):
    cells = json.loads(nb.read_text())["cells"]
    figures = [c for c in cells if c["cell_type"] == "code" and "figure" in c["metadata"].get("mystnb", {})]
    assert figures or nb.stem.endswith("_exercises"), (f"{nb.name}: no figure cells with a caption "
                                                       "(metadata mystnb.figure)")
    for c in figures:
        images = [o for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert images, f"{nb.name}: figure cell without an image: {''.join(c['source'])[:80]!r}"


def sanitisers(name: str) -> list[tuple[str, str]]:
    """The (regex, replacement) pairs of a tests/ sanitiser file, read as nbval reads them."""
    text = (ROOT / "tests" / name).read_text()
    return re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.MULTILINE)


def test_the_portable_sanitisers_are_the_pinned_ones_plus_full_precision_numbers():
    pinned, portable = sanitisers("nbval_sanitize.cfg"), sanitisers("nbval_sanitize_portable.cfg")
    assert pinned and portable[:len(pinned)] == pinned, ("nbval_sanitize_portable.cfg must begin with every "
                                                         "pinned sanitiser")
    extra = portable[len(pinned):]
    assert len(extra) == 1
    full_precision = re.compile(extra[0][0])
    for glued in ("5.595945028976736", "96.28999999999999", "1.4293918059950836e-05", "-0.000123456\n"):
        assert full_precision.search(glued), glued
    for shown in ("95.5", "2", "0.812\n", "median 1/79.9", "the value 0.1234567", "'2.29 ± 0.01'", "True\n"):
        assert not full_precision.search(shown), shown


def test_the_readme_names_the_repository_of_config_and_no_placeholder():
    readme = (ROOT / "README.md").read_text()
    assert "<org>" not in readme and "<repo>" not in readme
    repository = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    binder = re.findall(r"https://mybinder\.org/v2/gh/([^/\s`]+/[^/\s`]+)/", readme)
    assert binder and set(binder) == {repository}, binder
    assert "The authors of this book" not in (ROOT / "_config.yml").read_text()     # no placeholder author
