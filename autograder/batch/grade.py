"""Grade notebooks through the hardened ``nbgrader autograde``, each in a scratch course.

One bad submission never stops a batch: it becomes an entry with ``error`` set. Locally
each notebook is graded in a supervised worker process (autograder/batch/pool.py), so even
a worker killed for memory or time costs only the notebook it was grading.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import nbformat

from ..arrival.notebook import (
    NotANotebook,
    component_cells,
    grade_points,
    instructor_content,
    load_submission,
    written_points,
)
from ..course import Assignment, api
from ..pages.feedback import RESULTS_KEY
from ..sandbox import spare, tempdirs
from . import cluster, pool
from .template import ensure_submission, make_template


def student_id(path: Path, index: int, assignment_name: str) -> str:
    """``submitted/<student>/<assignment>/...`` gives the student; any other path its file name."""
    parts = Path(path).parts
    name = parts[-3] if len(parts) >= 3 and parts[-2] == assignment_name else Path(path).stem
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)[:60] or 'student'}-{index}"


@lru_cache(maxsize=4)
def source_notebook(source: Path) -> nbformat.NotebookNode:
    """The instructor's notebook (read once per process)."""
    return nbformat.read(source, as_version=4)


def max_scores(work: Assignment) -> dict:
    """{component: maximum score}, from the source notebook, in the notebook's order."""
    source = source_notebook(work.source)
    points = grade_points(source)
    return {component: points[gid] for gid, component in component_cells(source).items()}


def written_max_score(work: Assignment) -> float:
    """Points of the written answers, which people grade (in the formgrader), never this grader."""
    return sum(written_points(source_notebook(work.source)).values())


def empty_entry(path, work: Assignment, error=None) -> dict:
    maxima = max_scores(work)
    return {
        "submission": str(path),
        "score": 0.0,
        "max_score": sum(maxima.values()),
        "error": error,
        "components": {c: {"score": 0.0, "max_score": points} for c, points in maxima.items()},
        "tests": [],
        "written_max_score": written_max_score(work),
    }


def one_line(text: str) -> str:
    """The most telling line of a (multi-line) error, for a JSON entry or a summary."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    useful = [line for line in lines if "Error" in line or "error" in line] or lines or ["unknown error"]
    return useful[-1][:300]


def grade_one(path: str, template: str, work: Assignment, index: int = 0, feedback_dir: str | None = None) -> dict:
    """Grade one notebook; never raises for a bad submission."""
    entry = empty_entry(path, work)
    try:
        nb, raw = load_submission(Path(path))
    except NotANotebook as err:
        entry["error"] = str(err)
        return entry
    refused = instructor_content(nb, source_notebook(work.source))
    if refused:  # before any of it runs or reaches feedback
        entry["error"] = f"refused: {refused}"
        return entry
    student = student_id(Path(path), index, work.name)
    notebook = f"{work.notebook}.ipynb"
    with tempfile.TemporaryDirectory(prefix="autograde-course-", dir=tempdirs.run_dir()) as tmp:
        course = Path(tmp) / "course"
        shutil.copytree(template, course)
        submitted = course / "submitted" / student / work.name
        submitted.mkdir(parents=True)
        if isinstance(nb.metadata.get("orig_nbformat"), int):  # an older format: graded as converted to v4
            nbformat.write(nb, submitted / notebook)
        else:  # the very bytes checked, never re-read via a link
            (submitted / notebook).write_bytes(raw)
        nbapi = api(course)
        ensure_submission(nbapi, work.name, student)
        with quiet():
            result = nbapi.autograde(work.name, student, force=True, create=True)
        autograded = course / "autograded" / student / work.name / notebook
        if not result["success"] or not autograded.exists():
            entry["error"] = f"nbgrader autograde failed: {one_line(result.get('error') or result.get('log', ''))}"
            return entry
        _fill_from_course(entry, nbapi, work, student, autograded)
        if feedback_dir and not entry["error"]:
            with quiet():
                fb = nbapi.generate_feedback(work.name, student, force=True)
            html = course / "feedback" / student / work.name / f"{work.notebook}.html"
            if fb["success"] and html.exists():
                Path(feedback_dir).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(html, Path(feedback_dir) / f"{student}.html")
            else:
                entry["error"] = f"feedback failed: {one_line(fb.get('error') or fb.get('log', ''))}"
    return entry


# Fields of each per-check result in the JSON (and their value when an older notebook lacks them).
TEST_FIELDS = {
    "id": None,
    "component": None,
    "score": 0.0,
    "max_score": 0.0,
    "diagnosis": None,
    "message": "",
    "diagnoses": [],
    "inherited_from": {},
}


def _fill_from_course(entry: dict, nbapi, work: Assignment, student: str, autograded: Path) -> None:
    """Scores from the gradebook (what nbgrader recorded), per-check detail from the notebook."""
    from nbgrader.api import Gradebook

    components = component_cells(source_notebook(work.source))
    with Gradebook(nbapi.coursedir.db_url) as gb:
        notebook = gb.find_submission_notebook(work.notebook, work.name, student)
        for grade in notebook.grades:
            if grade.name in components:
                entry["components"][components[grade.name]] = {
                    "score": float(grade.score),
                    "max_score": float(grade.max_score),
                }
    entry["score"] = round(sum(c["score"] for c in entry["components"].values()), 2)
    entry["max_score"] = sum(c["max_score"] for c in entry["components"].values())
    results = nbformat.read(autograded, as_version=4).metadata.get(RESULTS_KEY)
    if results is None:
        entry["error"] = "the hidden checks did not run (no results in the autograded notebook)"
        return
    entry["tests"] = [{k: t.get(k, default) for k, default in TEST_FIELDS.items()} for t in results["tests"]]


@contextlib.contextmanager
def quiet():
    """nbgrader logs to stderr at length; the API also captures it into its result."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def grade_many(
    paths: list,
    work: Assignment,
    jobs: int = 1,
    feedback_dir: str | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    worker_seconds: float = pool.WORKER_SECONDS,
) -> list:
    """Grade every notebook of ``work``, in input order; identical results whatever ``jobs`` is."""
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="autograde-template-", dir=tempdirs.run_dir()) as tmp:
        template = str(make_template(Path(tmp) / "template", work))
        bar = tqdm(total=len(paths), unit="nb", desc="grading", disable=not progress, file=sys.stderr)
        calls = [[str(p), template, work, i, feedback_dir] for i, p in enumerate(paths)]
        if scheduler:
            results = cluster.run_on_dask(
                scheduler, graded, calls, lambda args, why: empty_entry(args[0], work, why), bar.update
            )
        else:
            outcomes = pool.run_tasks(graded, calls, jobs, bar.update, seconds=worker_seconds)
            results = [
                o.result if o.error is None else empty_entry(str(p), work, o.error) for o, p in zip(outcomes, paths)
            ]
        bar.close()
    return results


def graded(path: str, template: str, work: Assignment, index: int, feedback_dir: str | None) -> dict:
    """One notebook's entry, whatever happens (a worker task): the batch goes on even if grading breaks."""
    spare.keep_ready()  # a worker grades notebook after notebook: the next kernel starts meanwhile
    try:
        return grade_one(path, template, work, index, feedback_dir)
    except Exception as err:  # reported in the entry, never swallowed
        return empty_entry(path, work, f"grader error: {type(err).__name__}: {one_line(err)}")
