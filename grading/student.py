"""The student edition: the exercise notebooks with every trace of the solutions removed.

``python -m grading.student [--out DIR] [NOTEBOOK ...]`` (``make student``) writes, for each of
the book's exercise notebooks (default: all of them), a copy into ``DIR`` (default
``_build/student``) made by nbconvert's own preprocessors:

- ``TagRemovePreprocessor`` removes the cells tagged ``solution`` (reference answers, solution
  text and figures, the glued numbers they quote) and ``book-only`` (the page's timing);
- ``ClearOutputPreprocessor`` removes every output, so no "passed" and no figure remains;
- ``ClearMetadataPreprocessor`` removes execution times and the like, keeping only the cells'
  ``nblib`` roles and tags, which grading needs;
- ``StudentEdition`` (below) stamps the notebook with the name of its book notebook and refuses
  to write an edition in which an answer cell is not a stub or a solution has survived.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.exporters import NotebookExporter
from nbconvert.preprocessors import (ClearMetadataPreprocessor, ClearOutputPreprocessor, Preprocessor,
                                     TagRemovePreprocessor)
from traitlets import Unicode

from . import cells

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "_build" / "student"


class StudentEdition(Preprocessor):
    """Stamp a notebook as the student edition of ``notebook`` and check that it is one."""

    notebook = Unicode(help="the stem of the book's exercise notebook").tag(config=True)

    def preprocess(self, nb: Any, resources: dict) -> tuple[Any, dict]:
        for index, cell in enumerate(nb.cells):
            role = cells.role(cell)
            if role in ("reference", "solution") or cells.REMOVED_TAGS & set(cell.metadata.get("tags", [])):
                raise ValueError(f"{self.notebook}: cell {index} ({role}) would leak a solution into the "
                                 "student edition")
            if role == "answer" and "..." not in cells.source(cell):
                raise ValueError(f"{self.notebook}: answer cell {index} is not a stub (it has no ...): "
                                 "the book's answer cells must be stubs, with the answer in a reference cell")
        answers = [cells.exercise(c) for c in nb.cells if cells.role(c) == "answer"]
        checks = [cells.exercise(c) for c in nb.cells if cells.role(c) == "check"]
        if not answers or sorted(answers) != sorted(set(answers)) or sorted(answers) != sorted(checks):
            raise ValueError(f"{self.notebook}: every exercise needs exactly one answer cell and one "
                             f"check cell (answers for {answers}, checks for {checks})")
        nb.metadata["nblib"] = {"edition": "student", "notebook": self.notebook,
                                "chapter": cells.chapter_of(self.notebook), "exercises": sorted(answers)}
        return nb, resources


def student_edition(path: Path) -> Any:
    """The student edition of the exercise notebook at ``path``, as a notebook node."""
    path = Path(path)
    exporter = NotebookExporter()
    for preprocessor in (TagRemovePreprocessor(remove_cell_tags=cells.REMOVED_TAGS),
                         ClearOutputPreprocessor(),
                         ClearMetadataPreprocessor(preserve_cell_metadata_mask={"nblib", "tags"},
                                                   preserve_nb_metadata_mask={"kernelspec", "language_info"}),
                         StudentEdition(notebook=path.stem)):
        exporter.register_preprocessor(preprocessor, enabled=True)
    body, _ = exporter.from_filename(str(path))
    return nbformat.reads(body, as_version=4)


def reference_submission(path: Path) -> Any:
    """The student edition of ``path`` with the book's reference answers in its answer cells: what
    a student who answered exactly as the solutions do would hand in."""
    book = nbformat.read(Path(path), as_version=4)
    references = {cells.exercise(c): cells.source(c) for c in book.cells if cells.role(c) == "reference"}
    edition = student_edition(path)
    for cell in edition.cells:
        if cells.role(cell) == "answer":
            number = cells.exercise(cell)
            if number not in references:
                raise ValueError(f"{Path(path).name}: exercise {number} has no reference answer")
            cell.source = references[number]
    return edition


def write_editions(notebooks: list[Path], out: Path) -> list[Path]:
    """Write the student edition of each notebook into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        target = out / Path(path).name
        nbformat.write(student_edition(path), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading.student", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="exercise notebooks (default: all of the book's)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where to write them (default {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or cells.exercise_notebooks(ROOT)
    if not notebooks:
        print("no exercise notebooks found (chapters/*_exercises.ipynb)", file=sys.stderr)
        return 1
    for path in write_editions(notebooks, args.out):
        print(f"student edition: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
