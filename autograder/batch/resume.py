"""Which students of a course are already graded, so an interrupted run resumes where it stopped.

``nbgrader autograde`` writes a submission in steps: the gradebook rows, then each test
cell's score (one commit per cell, in ``SaveAutoGrades``), then the autograded notebook
(after every score is committed). An interruption (SIGINT, SIGTERM, SIGKILL, a reboot)
can stop it between any two steps, and nbgrader's own skip ("Skipping existing
assignment") trusts the mere folder ``autograded/<student>/<assignment>/``. Here a student
counts as graded only when the last step finished: every notebook of the assignment is in
that folder, reads as a notebook, and carries the hidden checks' results; the gradebook
holds the submission; and no submitted notebook is newer than its graded copy (a
resubmission is graded again, as nbgrader does). Anything less is graded again from the
start, with ``force``, which rewrites the autograded folder and every automatic score and
keeps the manual grades and comments (nbgrader's ``SaveAutoGrades`` never writes those).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from ..pages.feedback import RESULTS_KEY


def complete_notebook(path: Path) -> bool:
    """An autograded notebook whose writing finished: it parses, and the hidden checks' results are in it."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # truncated or garbled by an interruption: any parse error means "not finished"
        return False
    return isinstance(nb.metadata.get(RESULTS_KEY), dict)


def already_graded(course: Path, assignment: str, notebooks: list[str], student: str, submissions: set) -> bool:
    """True when ``student``'s grading finished (see the module's docstring).

    ``submissions``: the students the gradebook holds a submission of ``assignment`` for.
    """
    if student not in submissions:
        return False
    graded = course / "autograded" / student / assignment
    submitted = course / "submitted" / student / assignment
    for name in notebooks:
        copy, original = graded / f"{name}.ipynb", submitted / f"{name}.ipynb"
        if not complete_notebook(copy):
            return False
        if original.exists() and original.stat().st_mtime > copy.stat().st_mtime:
            return False
    return True


def gradebook_submissions(db_url: str, course_id: str, assignment: str) -> set:
    """The students with a submission of ``assignment`` in the gradebook (none if it is not there yet)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id) as gb:
        try:
            return {s.student_id for s in gb.assignment_submissions(assignment)}
        except MissingEntry:
            return set()
