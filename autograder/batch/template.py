"""The batch's scratch courses: set up once per source notebook and grader version, then copied."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ..course import CONFIG_DIR, Assignment, api


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
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "autograder"
    )
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
