"""Grade notebooks through the hardened ``nbgrader autograde``, each in a scratch course.

One bad submission never stops a batch: it becomes an entry with ``error`` set. Locally
each notebook is graded in a supervised worker process (autograder/workers.py), so even
a worker killed for memory or time costs only the notebook it was grading.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import nbformat

from . import tempdirs, workers
from .judge.content import COMPONENTS
from .preprocessors import RESULTS_KEY
from .submission import (NotANotebook, arrival_problem, component_cells, grade_points, instructor_content,
                         load_submission, written_points)

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT, NOTEBOOK = "07_optimizers", "optimizers"
SOURCE = ROOT / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
CONFIG_DIR = Path(__file__).resolve().parent


def course_config(course: Path):
    """Our nbgrader_config.py, pointed at ``course`` instead of the repository."""
    from traitlets.config.loader import PyFileConfigLoader

    os.environ["AUTOGRADER_COURSE_ROOT"] = str(course)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # alembic
    try:
        return PyFileConfigLoader("nbgrader_config.py", path=str(CONFIG_DIR)).load_config()
    finally:
        del os.environ["AUTOGRADER_COURSE_ROOT"]


def _api(course: Path):
    from nbgrader.apps import NbGraderAPI

    return NbGraderAPI(config=course_config(course))


def make_template(dest: Path) -> Path:
    """A scratch course holding the source notebook and a gradebook that knows it."""
    (dest / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copyfile(SOURCE, dest / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    result = _api(dest).generate_assignment(ASSIGNMENT, force=True)
    if not result["success"]:
        raise RuntimeError(f"could not prepare the course: {result.get('error') or result['log'][-2000:]}")
    shutil.rmtree(dest / "modules", ignore_errors=True)
    return dest


def ensure_submission(api, assignment: str, student: str) -> None:
    """Create the student's submission in the gradebook before ``nbgrader autograde`` does.

    nbgrader's ``Gradebook.add_submission`` builds the submission's notebooks and
    grades while the new object is not yet in the session; since SQLAlchemy 2 no
    longer cascades it in along backrefs, the lazy loads it triggers autoflush and
    print ``SAWarning: Object of type <SubmittedAssignment> not in session``. The
    same call with autoflush off adds the same rows; autograde then finds and updates them.
    """
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        gb.update_or_create_student(student)
        try:
            gb.find_submission(assignment, student)
        except MissingEntry:
            with gb.db.no_autoflush:
                gb.add_submission(assignment, student)


def student_id(path: Path, index: int) -> str:
    """``submitted/<student>/...`` gives the student; any other path its file name."""
    parts = Path(path).parts
    name = parts[-3] if len(parts) >= 3 and parts[-2] == ASSIGNMENT else Path(path).stem
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)[:60] or 'student'}-{index}"


@lru_cache(maxsize=1)
def source_notebook() -> nbformat.NotebookNode:
    """The instructor's notebook (read once per process)."""
    return nbformat.read(SOURCE, as_version=4)


@lru_cache(maxsize=1)
def max_scores() -> dict:
    """{component: maximum score}, from the source notebook (read once per process)."""
    source = source_notebook()
    points = grade_points(source)
    return {component: points[gid] for gid, component in component_cells(source).items()}


@lru_cache(maxsize=1)
def written_max_score() -> float:
    """Points of the written answers, which people grade (in the formgrader), never this grader."""
    return sum(written_points(nbformat.read(SOURCE, as_version=4)).values())


def empty_entry(path, error=None) -> dict:
    maxima = max_scores()
    return {"submission": str(path), "score": 0.0, "max_score": sum(maxima.values()), "error": error,
            "components": {c: {"score": 0.0, "max_score": maxima[c]} for c in COMPONENTS if c in maxima},
            "tests": [], "written_max_score": written_max_score()}


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    useful = [line for line in lines if "Error" in line or "error" in line] or lines or ["unknown error"]
    return useful[-1][:300]


def grade_one(path: str, template: str, index: int = 0, feedback_dir: str | None = None) -> dict:
    """Grade one notebook; never raises for a bad submission."""
    entry = empty_entry(path)
    try:
        nb, raw = load_submission(Path(path))
    except NotANotebook as err:
        entry["error"] = str(err)
        return entry
    refused = instructor_content(nb, source_notebook())
    if refused:   # before any of it runs or reaches feedback
        entry["error"] = f"refused: {refused}"
        return entry
    student = student_id(Path(path), index)
    with tempfile.TemporaryDirectory(prefix="autograde-course-", dir=tempdirs.run_dir()) as tmp:
        course = Path(tmp) / "course"
        shutil.copytree(template, course)
        submitted = course / "submitted" / student / ASSIGNMENT
        submitted.mkdir(parents=True)
        if isinstance(nb.metadata.get("orig_nbformat"), int):   # an older format: graded as converted to v4
            nbformat.write(nb, submitted / f"{NOTEBOOK}.ipynb")
        else:                                             # the very bytes checked, never re-read via a link
            (submitted / f"{NOTEBOOK}.ipynb").write_bytes(raw)
        api = _api(course)
        ensure_submission(api, ASSIGNMENT, student)
        with _quiet():
            result = api.autograde(ASSIGNMENT, student, force=True, create=True)
        autograded = course / "autograded" / student / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
        if not result["success"] or not autograded.exists():
            entry["error"] = f"nbgrader autograde failed: {_one_line(result.get('error') or result.get('log', ''))}"
            return entry
        _fill_from_course(entry, api, course, student, autograded)
        if feedback_dir and not entry["error"]:
            with _quiet():
                fb = api.generate_feedback(ASSIGNMENT, student, force=True)
            html = course / "feedback" / student / ASSIGNMENT / f"{NOTEBOOK}.html"
            if fb["success"] and html.exists():
                Path(feedback_dir).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(html, Path(feedback_dir) / f"{student}.html")
            else:
                entry["error"] = f"feedback failed: {_one_line(fb.get('error') or fb.get('log', ''))}"
    return entry


# Fields of each per-check result in the JSON (and their value when an older notebook lacks them).
TEST_FIELDS = {"id": None, "component": None, "score": 0.0, "max_score": 0.0, "diagnosis": None, "message": "",
               "diagnoses": [], "inherited_from": {}}


def _fill_from_course(entry: dict, api, course: Path, student: str, autograded: Path) -> None:
    """Scores from the gradebook (what nbgrader recorded), per-check detail from the notebook."""
    from nbgrader.api import Gradebook

    source = nbformat.read(course / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    components = component_cells(source)
    with Gradebook(api.coursedir.db_url) as gb:
        notebook = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student)
        for grade in notebook.grades:
            if grade.name in components:
                entry["components"][components[grade.name]] = {"score": float(grade.score),
                                                               "max_score": float(grade.max_score)}
    entry["score"] = round(sum(c["score"] for c in entry["components"].values()), 2)
    entry["max_score"] = sum(c["max_score"] for c in entry["components"].values())
    results = nbformat.read(autograded, as_version=4).metadata.get(RESULTS_KEY)
    if results is None:
        entry["error"] = "the hidden checks did not run (no results in the autograded notebook)"
        return
    entry["tests"] = [{k: t.get(k, default) for k, default in TEST_FIELDS.items()} for t in results["tests"]]


@contextlib.contextmanager
def _quiet():
    """nbgrader logs to stderr at length; the API also captures it into its result."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _on_dask(scheduler: str, fn, calls: list, failed) -> list:
    """``fn(*args)`` for each of ``calls`` on a Dask cluster; a lost task becomes ``failed(args, why)``."""
    from distributed import Client

    with Client(scheduler).get_executor() as pool:
        futures = [pool.submit(fn, *args) for args in calls]
        out = []
        for future, args in zip(futures, calls):
            try:
                out.append(future.result())
            except Exception as err:  # e.g. KilledWorker: that notebook's loss, never the batch's
                out.append(failed(args, f"grading worker died: {type(err).__name__}: {_one_line(err)}"))
        return out


def grade_many(paths: list, jobs: int = 1, feedback_dir: str | None = None, scheduler: str | None = None,
               progress: bool = True, worker_seconds: float = workers.WORKER_SECONDS) -> list:
    """Grade every notebook, in input order; identical results whatever ``jobs`` is."""
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="autograde-template-", dir=tempdirs.run_dir()) as tmp:
        template = str(make_template(Path(tmp) / "template"))
        bar = tqdm(total=len(paths), unit="nb", desc="grading", disable=not progress, file=sys.stderr)
        calls = [[str(p), template, i, feedback_dir] for i, p in enumerate(paths)]
        if scheduler:
            results = _on_dask(scheduler, graded, calls, lambda args, why: empty_entry(args[0], why))
        else:
            outcomes = workers.run_tasks([("graded", args) for args in calls], jobs, bar.update,
                                         seconds=worker_seconds)
            results = [o.result if o.error is None else empty_entry(str(p), o.error)
                       for o, p in zip(outcomes, paths)]
        bar.close()
    return results


def graded(path: str, template: str, index: int, feedback_dir: str | None) -> dict:
    """One notebook's entry, whatever happens (a worker task)."""
    return _safe(grade_one, path, template, index, feedback_dir)


def _safe(fn, path, *args) -> dict:
    """The batch goes on even if grading itself breaks on one file."""
    try:
        return fn(path, *args)
    except Exception as err:  # reported in the entry, never swallowed
        return empty_entry(path, f"grader error: {type(err).__name__}: {_one_line(err)}")


def _autograde_student(root: str, assignment: str, student: str) -> tuple:
    """(student, None) or (student, why nbgrader could not grade it). Runs in a worker."""
    api = _api(Path(root))
    ensure_submission(api, assignment, student)
    with _quiet():
        result = api.autograde(assignment, student, force=True, create=True)
    return student, None if result["success"] else _one_line(result.get("error") or result.get("log", ""))


def autograde_course(assignment: str = ASSIGNMENT, root: Path = ROOT, jobs: int = 1,
                     scheduler: str | None = None) -> int:
    """``nbgrader autograde`` student by student on a course, with a progress bar.

    With ``jobs > 1`` (or a Dask scheduler) students are graded concurrently into the
    same gradebook, which needs a database server (``AUTOGRADER_DB_URL``); SQLite
    gets one worker.
    """
    from tqdm import tqdm

    students, refused = arrivals(root, assignment)
    for line in refused:
        print(f"not graded: {line}", file=sys.stderr)
    if not students and not refused:
        print(f"no submissions: expected submitted/<student>/{assignment}/{NOTEBOOK}.ipynb "
              "(`make sample-class` writes a sample class)", file=sys.stderr)
        return 1
    db_url = _api(root).coursedir.db_url
    if (jobs > 1 or scheduler) and db_url.startswith("sqlite"):
        print("SQLite cannot take concurrent graders: grading with one worker "
              "(set AUTOGRADER_DB_URL to a PostgreSQL URL for more)", file=sys.stderr)
        jobs, scheduler = 1, None
    bar = tqdm(total=len(students), unit="student", desc="nbgrader autograde", file=sys.stderr)
    calls = [[str(root), assignment, s] for s in students]
    if scheduler:
        outcomes = _on_dask(scheduler, _autograde_student, calls, lambda args, why: (args[2], why))
    else:
        done = workers.run_tasks([("_autograde_student", args) for args in calls], jobs, bar.update)
        outcomes = [o.result if o.error is None else (s, o.error) for o, s in zip(done, students)]
    bar.close()
    failed = [f"{student}: {why}" for student, why in outcomes if why]
    for line in failed:
        print(f"not graded: {line}", file=sys.stderr)
    print(f"graded {len(students) - len(failed)} of {len(students) + len(refused)} submissions into {db_url}"
          + (f"; refused {len(refused)} (see above)" if refused else ""))
    return 0


def arrivals(root: Path, assignment: str) -> tuple:
    """([students to grade], ["<folder>: why refused"]) of ``submitted/``, judged before any code runs."""
    source = nbformat.read(root / "source" / assignment / f"{NOTEBOOK}.ipynb", as_version=4)
    students, refused = [], []
    for folder in sorted((root / "submitted").iterdir()) if (root / "submitted").is_dir() else ():
        if not (folder.is_symlink() or (folder / assignment).exists() or (folder / assignment).is_symlink()):
            continue   # another assignment's submission
        problem = arrival_problem(folder, assignment, source)
        if problem:
            refused.append(f"{folder.name!r}: {problem}")
        elif any((folder / assignment).glob("*.ipynb")):
            students.append(folder.name)
    return students, refused
