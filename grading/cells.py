"""What the grading tools know about the cells of an exercise notebook.

Each exercise notebook (``chapters/NN_topic_exercises.ipynb``) marks its cells in
``metadata.nblib``: ``exercise`` (the number of the exercise a cell belongs to) and ``role``:

- ``answer``     the reader's cell: a stub (``...``) in the book, the one cell a student edits;
- ``check``      calls the exercise's checker;
- ``explore``    a figure with sliders (skipped when grading: it only draws);
- ``reference``  a reference answer (replaces the stub to make the reference submission);
- ``solution``   the rest of a solution: text, figures, glued numbers.

Reference and solution cells also carry the tag ``solution`` and book-only cells the tag
``book-only``: the student edition removes both. An answer cell's first line is
``# Your answer to exercise N`` and a check cell's ``# Checks exercise N``, so that cells can be
matched even where a notebook front end dropped their ids or metadata.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

REMOVED_TAGS = {"solution", "book-only"}
ANSWER_MARK = re.compile(r"^#\s*Your answer to exercise (\d+)")
CHECK_MARK = re.compile(r"^#\s*Checks exercise (\d+)")


def info(cell: Any) -> dict[str, Any]:
    """The cell's ``metadata.nblib`` (empty if it has none)."""
    value = cell.get("metadata", {}).get("nblib", {})
    return value if isinstance(value, dict) else {}


def role(cell: Any) -> str | None:
    """The cell's role, from its metadata or, for answer and check cells, from its first line."""
    given = info(cell).get("role")
    if given:
        return given
    if cell.get("cell_type") == "code":
        first = source(cell).lstrip().split("\n", 1)[0]
        if ANSWER_MARK.match(first):
            return "answer"
        if CHECK_MARK.match(first):
            return "check"
    return None


def exercise(cell: Any) -> int | None:
    """The number of the exercise the cell belongs to (None before the first exercise)."""
    given = info(cell).get("exercise")
    if given is not None:
        return int(given)
    first = source(cell).lstrip().split("\n", 1)[0]
    match = ANSWER_MARK.match(first) or CHECK_MARK.match(first)
    return int(match.group(1)) if match else None


def source(cell: Any) -> str:
    """A cell's source as one string (nbformat allows a list of lines)."""
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else str(text)


def key(cell: Any) -> tuple[str, int] | None:
    """The (role, exercise) of an answer or check cell, by which it is matched when ids differ."""
    r = role(cell)
    return (r, exercise(cell)) if r in ("answer", "check") else None


def exercise_notebooks(root: Path) -> list[Path]:
    """The book's exercise notebooks, in chapter order."""
    return sorted((Path(root) / "chapters").glob("*_exercises.ipynb"))


def chapter_of(stem: str) -> int:
    """The chapter number in a notebook's name: 2 for ``02_unstable_gradients_exercises``."""
    match = re.match(r"(\d+)_", stem)
    if not match:
        raise ValueError(f"an exercise notebook's name starts with its chapter number, "
                         f"e.g. 02_topic_exercises; got {stem!r}")
    return int(match.group(1))
