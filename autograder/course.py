"""An nbgrader course as the engine sees it: its configuration, its NbGraderAPI, its assignment.

Nothing here knows which module is graded: the assignment is the one named on the command
line, or else the single assignment in the course's ``source/`` folder, and its notebook is
the single notebook in that assignment's folder. The default course is the folder that holds
this package (the repository is an nbgrader course). Imports nothing else from ``autograder``:
every layer may use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent  # autograder/nbgrader_config.py
DEFAULT_COURSE = CONFIG_DIR.parent


class CourseError(SystemExit):
    """The course folder does not say what to grade; the message says what to do."""


@dataclass(frozen=True)
class Assignment:
    """One assignment of one course: where its instructor notebook lives."""

    course: Path
    name: str
    notebook: str  # the notebook's name without .ipynb

    @property
    def source(self) -> Path:
        return self.course / "source" / self.name / f"{self.notebook}.ipynb"


def _single(items: list, what: str, where: Path, hint: str) -> str:
    if len(items) != 1:
        found = ", ".join(sorted(items)) or "none"
        raise CourseError(f"expected exactly one {what} in {where} (found: {found}); {hint}")
    return items[0]


def assignment(course: Path | None = None, name: str | None = None) -> Assignment:
    """The assignment ``name`` of ``course`` (default: the single one in its source/ folder)."""
    course = Path(course or DEFAULT_COURSE).resolve()
    source = course / "source"
    if name is None:
        folders = [p.name for p in source.iterdir() if p.is_dir()] if source.is_dir() else []
        name = _single(folders, "assignment folder", source, "name the assignment on the command line")
    folder = source / name
    notebooks = [p.stem for p in folder.glob("*.ipynb")] if folder.is_dir() else []
    notebook = _single(
        notebooks,
        "notebook",
        folder,
        "run `nbgrader generate_assignment` sources first (`make generate` in the repository)",
    )
    return Assignment(course, name, notebook)


def course_config(course: Path):
    """Our nbgrader_config.py, pointed at ``course`` instead of the repository.

    nbgrader_config.py reads the course root from ``AUTOGRADER_COURSE_ROOT`` while it loads
    (it derives the exchange and the source notebooks' paths from it), so the variable is
    set for the load only, and nowhere else in the batch.
    """
    from traitlets.config.loader import PyFileConfigLoader

    os.environ["AUTOGRADER_COURSE_ROOT"] = str(course)
    try:
        return PyFileConfigLoader("nbgrader_config.py", path=str(CONFIG_DIR)).load_config()
    finally:
        del os.environ["AUTOGRADER_COURSE_ROOT"]


def api(course: Path, db_url: str | None = None):
    """nbgrader's API on ``course``, configured by our nbgrader_config.py (and its gradebook at ``db_url``).

    ``db_url`` travels with the task, so a Dask worker started without the instructor's
    ``AUTOGRADER_DB_URL`` still writes into the course's gradebook.
    """
    from nbgrader.apps import NbGraderAPI

    config = course_config(Path(course))
    if db_url:
        config.CourseDirectory.db_url = db_url
    return NbGraderAPI(config=config)


def db_url(course: Path) -> str:
    """Where ``course``'s gradebook lives (``AUTOGRADER_DB_URL``, else its gradebook.db)."""
    return api(course).coursedir.db_url
