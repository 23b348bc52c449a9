"""Tests for nblib.sphinx_offline, the book's Sphinx extension: on a tiny Sphinx project, an inline
script added after the builder starts is written once (twice without the extension), and
MathJax is served from the book when it has been installed, from its CDN otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

sphinx_application = pytest.importorskip("sphinx.application")

EXTENSION = '''
def setup(app):
    # an inline script registered after the builder starts, as sphinx-thebe does
    app.connect("env-before-read-docs", lambda app, env, docs: app.add_js_file(None, body="const ONCE = 1"))
'''


def build(tmp_path: Path, extensions: list[str], **overrides: object) -> str:
    """Build a one-page project with some mathematics; return the page's HTML."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "conf.py").write_text("")
    (src / "late_script.py").write_text(EXTENSION)
    (src / "index.rst").write_text("Title\n=====\n\nSome mathematics: :math:`a^2 + b^2`.\n")
    import sys
    sys.path.insert(0, str(src))
    try:
        app = sphinx_application.Sphinx(str(src), str(src), str(tmp_path / "out"),
                                        str(tmp_path / "doctrees"), "html",
                                        confoverrides={"extensions": ["late_script", *extensions],
                                                       **overrides},
                                        status=None, warning=None, freshenv=True)
        app.build()
    finally:
        sys.path.remove(str(src))
        sys.modules.pop("late_script", None)
    return (tmp_path / "out" / "index.html").read_text()


def test_without_the_extension_sphinx_writes_the_script_twice(tmp_path, monkeypatch):
    from sphinx.builders.html import StandaloneHTMLBuilder
    original = getattr(StandaloneHTMLBuilder.add_js_file, "__wrapped__", StandaloneHTMLBuilder.add_js_file)
    monkeypatch.setattr(StandaloneHTMLBuilder, "add_js_file", original)      # as if never patched
    assert build(tmp_path, []).count("const ONCE = 1") == 2


def test_with_the_extension_the_script_is_written_once(tmp_path):
    assert build(tmp_path, ["nblib.sphinx_offline"]).count("const ONCE = 1") == 1


def test_mathjax_comes_from_its_cdn_when_not_installed(tmp_path):
    page = build(tmp_path, ["nblib.sphinx_offline"], offline_vendor_dir=str(tmp_path / "nothing"))
    assert "cdn.jsdelivr.net/npm/mathjax@3" in page
    assert not (tmp_path / "out" / "_static" / "vendor").exists()


def install_mathjax(tmp_path: Path) -> Path:
    es5 = tmp_path / "vendor" / "mathjax" / "es5"
    (es5 / "output" / "chtml" / "fonts").mkdir(parents=True)
    (es5 / "tex-mml-chtml.js").write_text("/* MathJax */")
    (es5 / "output" / "chtml" / "fonts" / "font.woff").write_text("font")
    (es5 / "unused-bundle.js").write_text("not copied")
    (es5.parent / "package.json").write_text(json.dumps({"version": "3.2.2"}))
    return es5


def test_mathjax_is_served_by_the_book_when_installed(tmp_path):
    install_mathjax(tmp_path)
    page = build(tmp_path, ["nblib.sphinx_offline"], offline_vendor_dir=str(tmp_path / "vendor"))
    assert "cdn.jsdelivr.net" not in page and "_static/vendor/mathjax/tex-mml-chtml.js" in page
    served = tmp_path / "out" / "_static" / "vendor" / "mathjax"
    assert (served / "tex-mml-chtml.js").read_text() == "/* MathJax */"
    assert (served / "output" / "chtml" / "fonts" / "font.woff").exists()
    assert not (served / "unused-bundle.js").exists()


@pytest.mark.parametrize("damage", ["package.json", "output", "entry", "bad json"])
def test_a_half_installed_mathjax_falls_back_to_its_cdn_instead_of_crashing_the_build(tmp_path, damage):
    import shutil
    es5 = install_mathjax(tmp_path)
    if damage == "package.json":
        (es5.parent / "package.json").unlink()
    elif damage == "output":
        shutil.rmtree(es5 / "output")
    elif damage == "entry":
        (es5 / "tex-mml-chtml.js").unlink()
    else:
        (es5.parent / "package.json").write_text("{not json")
    page = build(tmp_path, ["nblib.sphinx_offline"], offline_vendor_dir=str(tmp_path / "vendor"))
    assert "cdn.jsdelivr.net/npm/mathjax@3" in page
    assert not (tmp_path / "out" / "_static" / "vendor").exists()


def test_what_an_incomplete_install_lacks_is_named():
    from nblib import sphinx_offline
    assert sphinx_offline._missing(Path("/nowhere")) == ["tex-mml-chtml.js", "output/", "../package.json"]
