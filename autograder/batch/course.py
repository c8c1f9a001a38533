"""An nbgrader course as the batch sees it: its configuration, its NbGraderAPI, its assignment.

Nothing here knows which module is graded: the assignment is the one named on the command
line, or else the single assignment in the course's ``source/`` folder, and its notebook is
the single notebook in that assignment's folder. The default course is the folder that holds
this package (the repository is an nbgrader course).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent  # autograder/nbgrader_config.py
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
    notebook = _single(notebooks, "notebook", folder,
                       "run `nbgrader generate_assignment` sources first (`make generate` in the repository)")
    return Assignment(course, name, notebook)


def course_config(course: Path):
    """Our nbgrader_config.py, pointed at ``course`` instead of the repository.

    nbgrader_config.py reads the course root from ``AUTOGRADER_COURSE_ROOT`` while it loads
    (it derives the exchange and the source notebooks' paths from it), so the variable is
    set for the load only, and nowhere else in the batch.
    """
    from traitlets.config.loader import PyFileConfigLoader

    os.environ["AUTOGRADER_COURSE_ROOT"] = str(course)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # alembic
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


def _build_template(dest: Path, work: Assignment) -> Path:
    (dest / "source" / work.name).mkdir(parents=True)
    shutil.copyfile(work.source, dest / "source" / work.name / f"{work.notebook}.ipynb")
    result = api(dest).generate_assignment(work.name, force=True)
    if not result["success"]:
        raise RuntimeError(f"could not prepare the course: {result.get('error') or result['log'][-2000:]}")
    shutil.rmtree(dest / "modules", ignore_errors=True)
    return dest


def template_key(work: Assignment) -> str:
    """What a template depends on: the source notebook, nbgrader, and our code and configuration."""
    import nbgrader

    digest = hashlib.sha256(nbgrader.__version__.encode())
    digest.update(work.name.encode() + b"\0" + work.notebook.encode() + b"\0" + work.source.read_bytes())
    for path in sorted(CONFIG_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(CONFIG_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:32]


def template_cache() -> Path:
    """Where set-up courses are kept between runs (``AUTOGRADER_CACHE``, else the user's cache folder)."""
    base = os.environ.get("AUTOGRADER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "autograder")
    return Path(base) / "templates"


def make_template(dest: Path, work: Assignment) -> Path:
    """A scratch course holding ``work``'s source notebook and a gradebook that knows it, at ``dest``.

    Setting one up (``nbgrader generate_assignment``) takes seconds, so it is done once per
    source notebook and grader version, kept in :func:`template_cache`, and copied after that.
    A template is published by renaming a finished folder, so concurrent runs never see a
    half-built one.
    """
    cache = template_cache()
    cached = cache / template_key(work)
    if not cached.is_dir():
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        building = Path(tempfile.mkdtemp(prefix="building-", dir=cache))
        try:
            _build_template(building / "course", work)
            try:
                (building / "course").rename(cached)
            except OSError:
                if not cached.is_dir():  # not "another run published it first"
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(cached, dest, symlinks=True)
    return dest


def ensure_submission(nbapi, assignment_name: str, student: str) -> None:
    """Create the student's submission in the gradebook before ``nbgrader autograde`` does.

    nbgrader's ``Gradebook.add_submission`` builds the submission's notebooks and
    grades while the new object is not yet in the session; since SQLAlchemy 2 no
    longer cascades it in along backrefs, the lazy loads it triggers autoflush and
    print ``SAWarning: Object of type <SubmittedAssignment> not in session``. The
    same call with autoflush off adds the same rows; autograde then finds and updates them.
    """
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(nbapi.coursedir.db_url, nbapi.coursedir.course_id) as gb:
        gb.update_or_create_student(student)
        try:
            gb.find_submission(assignment_name, student)
        except MissingEntry:
            with gb.db.no_autoflush:
                gb.add_submission(assignment_name, student)
