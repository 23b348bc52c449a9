"""The book's own Sphinx extension (``sphinx.extra_extensions`` in ``_config.yml``): an HTML
book that works offline and without script errors. It lives in ``nblib`` so that it can be
imported however the book is built (a configuration file written elsewhere included); the
chapters never import it, and it is the only module of ``nblib`` that imports Sphinx.

1. **No inline script twice.** Sphinx 7.4 registers an inline script added after the builder
   starts (``app.add_js_file(None, body=...)``) both as ``_JavaScript(None, ...)`` and, when it
   prepares to write, again as ``_JavaScript('', ...)``; the two do not compare equal, so the
   script is emitted twice. sphinx-thebe's ``const THEBE_JS_URL = ...`` then fails on every page
   with "Identifier 'THEBE_JS_URL' has already been declared". Sphinx 8.2 fixed this
   (sphinx-doc/sphinx#13402) by passing ``''`` for ``None``; the book needs Sphinx 7 (Jupyter
   Book 1), so this extension applies the same one-line fix.

2. **MathJax from the book itself.** By default every page with mathematics loads MathJax from
   a CDN, so offline the formulas stay as raw TeX and the browser logs a failed request. When
   ``make assets`` has installed MathJax from the npm registry (at the version pinned in the
   Makefile) into ``offline_vendor_dir``, this extension points ``mathjax_path`` at a copy
   served from the book's ``_static/vendor/mathjax/`` folder. Without it, the CDN is used and
   the build says so (an info line, not a warning).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.builders.html import StandaloneHTMLBuilder
from sphinx.util import logging

logger = logging.getLogger(__name__)

MATHJAX_ENTRY = "tex-mml-chtml.js"                       # Sphinx's default MathJax 3 component
MATHJAX_PARTS = (MATHJAX_ENTRY, "input", "output", "ui", "a11y", "sre", "adaptors")  # what it loads on demand
SERVED_AT = "vendor/mathjax"                             # under the book's _static folder


def _add_js_file_once(original: Any) -> Any:
    def add_js_file(self: StandaloneHTMLBuilder, filename: str | None, **kwargs: Any) -> None:
        original(self, filename or "", **kwargs)
    add_js_file.__doc__ = original.__doc__
    add_js_file.__wrapped__ = original
    return add_js_file


def mathjax_source(app: Sphinx) -> Path | None:
    """The folder holding MathJax's ``es5`` build, if ``make assets`` installed it completely."""
    folder = Path(app.srcdir, app.config.offline_vendor_dir, "mathjax", "es5")
    return folder if not _missing(folder) else None


def _missing(folder: Path) -> list[str]:
    """What an installed MathJax ``es5`` folder lacks: its entry script, its ``output`` folder
    (the fonts), a readable ``package.json`` beside it. An interrupted ``npm install`` leaves
    some of these out."""
    missing = [part for part, ok in ((MATHJAX_ENTRY, (folder / MATHJAX_ENTRY).is_file()),
                                     ("output/", (folder / "output").is_dir())) if not ok]
    if _version(folder) is None:
        missing.append("../package.json")
    return missing


def _version(folder: Path) -> str | None:
    try:
        version = json.loads((folder.parent / "package.json").read_text()).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


def use_local_mathjax(app: Sphinx, config: Any) -> None:
    source = mathjax_source(app)
    if source is None:
        folder = Path(app.srcdir, config.offline_vendor_dir, "mathjax")
        if folder.exists():
            logger.info("offline_book: MathJax in %s is incomplete (missing %s: run `make assets` again); "
                        "pages load it from its CDN", folder, ", ".join(_missing(folder / "es5")))
        else:
            logger.info("offline_book: MathJax is not installed in %s (run `make assets`); "
                        "pages load it from its CDN",
                        Path(config.offline_vendor_dir) / "mathjax")
        return
    config.mathjax_path = f"{SERVED_AT}/{MATHJAX_ENTRY}"     # relative to _static
    logger.info("offline_book: serving MathJax %s from the book (_static/%s)", _version(source), SERVED_AT)


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if (exception is not None or app.builder.format != "html"
            or app.config.mathjax_path != f"{SERVED_AT}/{MATHJAX_ENTRY}"):
        return
    source = Path(app.srcdir, app.config.offline_vendor_dir, "mathjax", "es5")
    target = Path(app.outdir, "_static", SERVED_AT)
    try:
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for part in MATHJAX_PARTS:
            if (source / part).is_dir():
                shutil.copytree(source / part, target / part)
            elif (source / part).is_file():
                shutil.copy2(source / part, target / part)
    except OSError as error:    # removed or damaged while the book was built
        logger.warning("offline_book: could not copy MathJax from %s into the book (%s: %s): "
                       "run `make assets` again; the pages would show raw TeX",
                       source, type(error).__name__, error)


def setup(app: Sphinx) -> dict[str, Any]:
    if not hasattr(StandaloneHTMLBuilder.add_js_file, "__wrapped__"):
        StandaloneHTMLBuilder.add_js_file = _add_js_file_once(StandaloneHTMLBuilder.add_js_file)
    app.add_config_value("offline_vendor_dir", "_build/vendor/node_modules", "html")
    app.connect("config-inited", use_local_mathjax)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
