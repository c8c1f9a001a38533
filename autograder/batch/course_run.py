"""``course-autograde``: ``nbgrader autograde`` student by student on a course, resumable.

Students already graded (:mod:`resume`) are skipped unless ``force``; the rest are graded
in pool workers (or on a Dask cluster), each into the course's gradebook. With more than one
grader at once the gradebook needs a database server (``AUTOGRADER_DB_URL``); SQLite gets one.
SIGTERM is handled as Ctrl-C is, so the workers stop and the temporary folders go; a SIGKILL
leaves rows and folders half-written, which the next run finds incomplete and grades again.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import nbformat

from ..arrival.notebook import arrival_problem
from ..course import Assignment, api
from ..sandbox import spare
from . import cluster, pool, resume
from .grade import one_line, quiet
from .template import ensure_submission


def arrivals(root: Path, assignment: str, source: Path) -> tuple:
    """([students to grade], [(folder, "<folder>: why refused")]) of ``submitted/``, judged before any code runs."""
    source_nb = nbformat.read(source, as_version=4)
    students, refused = [], []
    for folder in sorted((root / "submitted").iterdir()) if (root / "submitted").is_dir() else ():
        if not (folder.is_symlink() or (folder / assignment).exists() or (folder / assignment).is_symlink()):
            continue  # another assignment's submission
        problem = arrival_problem(folder, assignment, source_nb)
        if problem:
            refused.append((folder.name, f"{folder.name!r}: {problem}"))
        elif any((folder / assignment).glob("*.ipynb")):
            students.append(folder.name)
    return students, refused


# A refused resubmission changes nothing in the gradebook: the instructor must know the old grade stands.
STALE = (
    "; the gradebook still holds this student's earlier automatic grade, and `make grades` exports it: "
    "grade a fixed resubmission, or change the grade in the formgrader"
)


def autograde_student(root: str, assignment: str, student: str, db_url: str) -> tuple:
    """(student, None) or (student, why nbgrader could not grade it). Runs in a worker."""
    spare.keep_ready()  # a worker grades student after student: the next kernel starts meanwhile
    nbapi = api(Path(root), db_url)
    ensure_submission(nbapi, assignment, student)
    with quiet():
        # force: a half-written earlier attempt is redone whole (nbgrader's own skip trusts a bare folder)
        result = nbapi.autograde(assignment, student, force=True, create=True)
    return student, None if result["success"] else one_line(result.get("error") or result.get("log", ""))


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def summary(graded: int, total: int, skipped: int, refused: int, db_url: str) -> str:
    return (
        f"graded {graded} of {total} submissions into {db_url}"
        + (f"; skipped {skipped} already graded (--force grades them again)" if skipped else "")
        + (f"; refused {refused} (see above)" if refused else "")
    )


def autograde_course(work: Assignment, jobs: int = 1, scheduler: str | None = None, force: bool = False) -> int:
    """Grade every submitted student of ``work`` not graded yet (all of them with ``force``)."""
    from tqdm import tqdm

    root = work.course
    students, refused = arrivals(root, work.name, work.source)
    if not students and not refused:
        print(
            f"no submissions: expected submitted/<student>/{work.name}/{work.notebook}.ipynb "
            "(`make sample-class` writes a sample class)",
            file=sys.stderr,
        )
        return 1
    coursedir = api(root).coursedir
    db_url = coursedir.db_url
    in_gradebook = resume.gradebook_submissions(db_url, coursedir.course_id, work.name)
    for name, line in refused:
        print(f"not graded: {line}{STALE if name in in_gradebook else ''}", file=sys.stderr)
    if (jobs > 1 or scheduler) and db_url.startswith("sqlite"):
        print(
            "SQLite cannot take concurrent graders: grading with one worker "
            "(set AUTOGRADER_DB_URL to a PostgreSQL URL for more)",
            file=sys.stderr,
        )
        jobs, scheduler = 1, None
    skipped = []
    if not force:
        skipped = [s for s in students if resume.already_graded(root, work.name, [work.notebook], s, in_gradebook)]
    todo = [s for s in students if s not in skipped]
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        bar = tqdm(total=len(todo), unit="student", desc="nbgrader autograde", file=sys.stderr)
        calls = [[str(root), work.name, s, db_url] for s in todo]
        if not calls:
            outcomes = []
        elif scheduler:
            outcomes = cluster.run_on_dask(
                scheduler, autograde_student, calls, lambda args, why: (args[2], why), bar.update
            )
        else:
            done_calls = pool.run_tasks(autograde_student, calls, jobs, bar.update)
            outcomes = [o.result if o.error is None else (s, o.error) for o, s in zip(done_calls, todo)]
        bar.close()
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: run the same command again to grade the rest ({len(skipped)} were graded before "
            "this run; what this run finished is kept)",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    failed = [f"{student}: {why}" for student, why in outcomes if why]
    for line in failed:
        print(f"not graded: {line}", file=sys.stderr)
    print(summary(len(todo) - len(failed), len(students) + len(refused), len(skipped), len(refused), db_url))
    return 0
