"""The one progress bar every long loop in nblib draws (``tqdm.auto``).

``progress=None`` means: draw it unless the environment variable NBLIB_PROGRESS is "0", which the
book's build sets (a finished bar is noise on a printed page). ``True`` or ``False`` decide."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

from . import checks


def enabled(progress: bool | None) -> bool:
    """Whether to draw a bar: ``progress`` if given, else yes unless NBLIB_PROGRESS is "0"."""
    if progress is None:
        return os.environ.get("NBLIB_PROGRESS", "1") != "0"
    return checks.boolean(progress, "progress")


def bar(iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None,
        progress: bool | None = None, leave: bool = True) -> tqdm:
    """A tqdm bar over ``iterable`` (or one to ``update`` by hand, of ``total`` steps), shown
    when ``enabled(progress)``; ``leave=False`` clears it when done (for a bar inside a bar)."""
    return tqdm(iterable, total=total, desc=checks.text(desc, "desc"), disable=not enabled(progress),
                leave=checks.boolean(leave, "leave"))
