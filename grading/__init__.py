"""The instructor's tools: the student edition of the exercise notebooks, and grading.

- ``grading.cells``    what the tools know about an exercise notebook's cells (their roles)
- ``grading.student``  ``python -m grading.student``: the student edition (``make student``)
- ``grading.grade``    ``python -m grading.grade DIR``: grade a folder of submissions (``make grade``)

They are not part of ``nblib`` (the chapters never import them) and need the test
dependencies (nbconvert, pytest, nbval, pytest-xdist); run them from the repository's root.
"""
