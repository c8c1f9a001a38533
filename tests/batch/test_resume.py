"""An interrupted ``course-autograde`` resumes: SIGINT, SIGTERM or SIGKILL, then a rerun grades each
submission exactly once, leaves no half-written row, changes no manual grade and skips what was done."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENT, course_env
from test_batch_resilience import SLOW_PROBE, submission
from test_scale import postgres  # noqa: F401  (the PostgreSQL server fixture)

from autograder import sandbox
from autograder.batch import resume
from autograder.pages.feedback import RESULTS_KEY
from tools.postgres import create_database

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "optimizers"
TESTS = ("test_optimizer", "test_sgd", "test_adam", "test_adamw")


# --- which students count as graded: every half-written state a kill can leave -----------------


def graded_copy(course: Path, student: str, results=True) -> Path:
    path = course / "autograded" / student / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    if results:
        nb.metadata[RESULTS_KEY] = {"tests": []}
    nbformat.write(nb, path)
    return path


def is_graded(course: Path, student: str, submissions=("ann",)) -> bool:
    return resume.already_graded(course, ASSIGNMENT, [NOTEBOOK], student, set(submissions))


def test_a_finished_grading_counts_as_graded(tmp_path):
    graded_copy(tmp_path, "ann")
    assert is_graded(tmp_path, "ann")


def test_half_written_states_count_as_not_graded(tmp_path):
    assert not is_graded(tmp_path, "ann")  # killed before the notebook was written
    (tmp_path / "autograded/ann" / ASSIGNMENT).mkdir(parents=True)
    assert not is_graded(tmp_path, "ann")  # nbgrader's own skip trusts this bare folder
    path = graded_copy(tmp_path, "ann")
    path.write_bytes(path.read_bytes()[:40])
    assert not is_graded(tmp_path, "ann")  # killed mid-write
    graded_copy(tmp_path, "ann", results=False)
    assert not is_graded(tmp_path, "ann")  # written without the hidden checks' results
    graded_copy(tmp_path, "ann")
    assert not is_graded(tmp_path, "ann", submissions=())  # a gradebook that lost (or never had) the row


def test_a_resubmission_after_grading_is_graded_again(tmp_path):
    copy = graded_copy(tmp_path, "ann")
    original = tmp_path / "submitted/ann" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    original.parent.mkdir(parents=True)
    original.write_text("{}")
    os.utime(copy, (time.time() - 60, time.time() - 60))
    assert not is_graded(tmp_path, "ann")


# --- the real command, interrupted and run again ------------------------------------------------


def make_course(tmp_path: Path, sample_class, students: dict) -> Path:
    """A course whose submitted/ holds ``{student: sample case, or None for the slow victim}``."""
    course = tmp_path / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(ROOT / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", course / "source" / ASSIGNMENT)
    for student, case in students.items():
        if case is None:
            submission(course, student, SLOW_PROBE)
        else:
            shutil.copytree(sample_class[0] / "submitted" / case, course / "submitted" / student)
    return course


def course_command(course: Path, db_url: str, *extra) -> tuple:
    env = {**course_env(course), "AUTOGRADER_DB_URL": db_url}
    return [sys.executable, "-m", "autograder", "course-autograde", ASSIGNMENT, "--course", str(course), *extra], env


def generate(course: Path, db_url: str) -> None:
    env = {**course_env(course), "AUTOGRADER_DB_URL": db_url}
    subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", ASSIGNMENT, "--force", "--log-level=WARN"],
        cwd=course,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )


def run(course: Path, db_url: str, *extra) -> subprocess.CompletedProcess:
    command, env = course_command(course, db_url, *extra)
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def finished(course: Path) -> set:
    return {
        p.parents[1].name
        for p in (course / "autograded").glob(f"*/{ASSIGNMENT}/{NOTEBOOK}.ipynb")
        if resume.complete_notebook(p)
    }


def as_from_a_terminal() -> None:
    """SIGINT as a shell's foreground command gets it. A suite started in the background (``make test &``,
    a CI runner) ignores SIGINT, and so would the command, which Python then never interrupts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(course: Path, db_url: str, signum: int, jobs: int) -> set:
    """Start the course run, deliver ``signum`` once some students are done and others are not."""
    command, env = course_command(course, db_url, "--jobs", str(jobs))
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    deadline = time.monotonic() + 900
    while not finished(course):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=300)
    if signum != signal.SIGKILL:
        assert proc.returncode == 130, err[-3000:]
        assert "interrupted: run the same command again" in err
    return finished(course)  # what the interrupted run completed (a second student may finish meanwhile)


def gradebook(db_url: str) -> dict:
    """{student: {grade: (auto, manual)}} plus each student's number of submissions."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(db_url) as gb:
        for submission in gb.assignment_submissions(ASSIGNMENT):
            notebook = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, submission.student_id)
            out[submission.student_id] = {
                "rows": len(
                    [s for s in gb.find_student(submission.student_id).submissions if s.assignment.name == ASSIGNMENT]
                ),
                "grades": {g.name: (g.auto_score, g.manual_score) for g in notebook.grades},
                "comments": {c.name: c.manual_comment for c in notebook.comments if c.manual_comment},
            }
    return out


def add_manual_grades(db_url: str, student: str) -> None:
    """What a person enters in the formgrader: a written answer's grade, an override of a test, a comment."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        notebook = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student)
        for grade in notebook.grades:
            if grade.name in ("written_memory", "test_sgd"):
                grade.manual_score = 1.5
        for comment in notebook.comments:
            if comment.name == "written_memory":
                comment.manual_comment = "Good reasoning; see the state table."
        gb.db.commit()


def assert_resumed(course: Path, db_url: str, students: set, first: set, signum: int, jobs: int) -> None:
    person = sorted(first)[0]
    add_manual_grades(db_url, person)
    before = gradebook(db_url)[person]
    rerun = run(course, db_url, "--jobs", str(jobs))
    book = gradebook(db_url)
    assert set(book) == students and finished(course) == students
    for student, rows in book.items():
        assert rows["rows"] == 1, student  # graded exactly once
        assert all(rows["grades"][t][0] is not None for t in TESTS), student  # no half-written row
    assert book[person] == before  # manual grades kept
    assert f"skipped {len(first)} already graded" in rerun.stdout, rerun.stdout
    assert f"graded {len(students) - len(first)} of {len(students)}" in rerun.stdout, rerun.stdout


SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
needs_bwrap = pytest.mark.skipif(not sandbox.bwrap_available(), reason="bubblewrap unusable here")


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_sqlite_course_run_resumes_after_an_interruption(signum, sample_class, tmp_path):
    course = make_course(tmp_path, sample_class, {"ann": "correct-reference", "zed": None})
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    generate(course, db_url)
    first = interrupt(course, db_url, signum, jobs=1)
    assert first == {"ann"}
    assert_resumed(course, db_url, {"ann", "zed"}, first, signum, jobs=1)


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_postgresql_course_run_with_two_workers_resumes(signum, sample_class, postgres, tmp_path):  # noqa: F811
    course = make_course(tmp_path, sample_class, {"ann": "correct-reference", "bob": "bug-nesterov", "zed": None})
    db_url = create_database(postgres, f"resume_{signal.Signals(signum).name.lower()}")
    generate(course, db_url)
    first = interrupt(course, db_url, signum, jobs=2)
    assert first and "zed" not in first  # the slow one is always left half-done
    assert_resumed(course, db_url, {"ann", "bob", "zed"}, first, signum, jobs=2)


@pytest.mark.slow
@needs_bwrap
def test_force_grades_everyone_again_and_keeps_manual_grades(sample_class, tmp_path):
    course = make_course(tmp_path, sample_class, {"ann": "correct-reference"})
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    generate(course, db_url)
    run(course, db_url)
    add_manual_grades(db_url, "ann")
    before = gradebook(db_url)
    stamp = (course / "autograded/ann" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").stat().st_mtime_ns
    again = run(course, db_url, "--force")
    assert "graded 1 of 1" in again.stdout and "skipped" not in again.stdout
    assert (course / "autograded/ann" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").stat().st_mtime_ns > stamp
    assert gradebook(db_url) == before


@pytest.mark.slow
@needs_bwrap
def test_a_refused_resubmission_says_the_earlier_grade_still_stands(sample_class, tmp_path):
    """Refusal touches no gradebook row; the instructor is told the old grade is what export will show (red team)."""
    course = make_course(tmp_path, sample_class, {"ann": "correct-reference", "bob": "correct-reference"})
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    generate(course, db_url)
    run(course, db_url)
    carrying = course / "submitted/ann" / ASSIGNMENT / "extra.ipynb"
    shutil.copy(ROOT / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", carrying)  # the instructor's hidden tests
    again = run(course, db_url, "--force")
    [ann] = [line for line in again.stderr.splitlines() if line.startswith("not graded: 'ann'")]
    assert "earlier automatic grade" in ann and "make grades" in ann
    assert "refused 1" in again.stdout and "graded 1 of 2" in again.stdout
