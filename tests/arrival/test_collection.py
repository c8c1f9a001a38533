"""Submissions arrive the two ways real courses collect them, and are graded sandboxed.

1. nbgrader's exchange (a JupyterHub course): release_assignment -> fetch_assignment (two
   students, each in their own home, without the course config) -> solve -> submit ->
   collect -> hardened autograde -> generate_feedback -> export.
2. An LMS download (Binder or a laptop, then an upload): ``nbgrader zip_collect`` of a zip
   whose file names follow the LMS's pattern -> hardened autograde.

Every instructor command runs as the README writes it: ``.venv/bin/nbgrader`` and
``.venv/bin/python`` from a shell whose PATH does not hold the venv.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support import LMS_PATTERN, PLAIN_PATH, SOLUTIONS, solve

from tools import generate, leaks, student_dist

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ASSIGNMENT, COURSE_ID = "07_optimizers", "tinytorch-07"
RELEASED = Path("modules") / ASSIGNMENT / "optimizers.ipynb"
pytestmark = pytest.mark.slow


def plain_env(**extra) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "JUPYTER_CONFIG_PATH", "AUTOGRADER_COURSE_ROOT")
    }
    return {**env, "PATH": PLAIN_PATH, "AUTOGRADER_SANDBOX": "required", **extra}


def run(args, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def new_course(path: Path) -> Path:
    """A course like this repository: source/ and the committed release; the gradebook knows the assignment."""
    for rel in (generate.INSTRUCTOR, RELEASED):
        (path / rel).parent.mkdir(parents=True)
        shutil.copy2(ROOT / rel, path / rel)
    generate.student_notebook(generate.instructor_notebook(), db_url=f"sqlite:///{path / 'gradebook.db'}")
    return path


def instructor_env(course: Path, exchange: Path | None = None) -> dict:
    env = plain_env(JUPYTER_CONFIG_PATH=str(ROOT / "autograder"), AUTOGRADER_COURSE_ROOT=str(course))
    if exchange:
        env["NBGRADER_EXCHANGE_ROOT"] = str(exchange)
    return env


def grades(course: Path, env: dict) -> dict:
    run([BIN / "nbgrader", "export", "--to", course / "grades.csv"], course, env)
    with open(course / "grades.csv", newline="") as grades_csv:
        return {row["student_id"]: float(row["score"]) for row in csv.DictReader(grades_csv)}


def autograde_and_feedback(course: Path, env: dict) -> dict:
    """What `make autograde` and `make feedback` run, in COURSE."""
    run([BIN / "python", "-m", "autograder", "course-autograde", ASSIGNMENT, "--course", course], ROOT, env)
    run([BIN / "nbgrader", "generate_feedback", ASSIGNMENT, "--force"], course, env)
    return {
        student: (course / "feedback" / student / ASSIGNMENT / "optimizers.html").read_text() for student in SOLUTIONS
    }


def check_results(scores: dict, feedback: dict) -> None:
    assert set(scores) == set(SOLUTIONS), scores
    assert scores["alice"] == 100, scores
    assert 0 < scores["bob"] < 100, scores
    assert "betas-swapped" in feedback["bob"] and "betas-swapped" not in feedback["alice"]
    for page in feedback.values():
        assert "assert_component" not in page and "BEGIN HIDDEN TESTS" not in page


def test_exchange_release_fetch_submit_collect_autograde_feedback_export(tmp_path):
    course = new_course(tmp_path / "course")
    exchange = tmp_path / "exchange"
    env = instructor_env(course, exchange)
    run([BIN / "nbgrader", "release_assignment", ASSIGNMENT], course, env)

    # The released file is the committed release is the student-dist notebook, byte for byte.
    outbound = exchange / COURSE_ID / "outbound" / ASSIGNMENT / "optimizers.ipynb"
    dist = tmp_path / "student-dist"
    student_dist.build(dist)
    assert outbound.read_bytes() == (ROOT / RELEASED).read_bytes() == (dist / RELEASED).read_bytes()
    secrets = leaks.secret_material()
    assert leaks.scan(outbound.parent, secrets) == [] and leaks.scan(dist, secrets) == []

    for student, case in SOLUTIONS.items():
        home = tmp_path / "home" / student
        home.mkdir(parents=True)
        # A student's nbgrader: their own home, no course config, the hub's user name.
        student_env = plain_env(HOME=str(home), JUPYTERHUB_USER=student)
        exchange_args = ["--course", COURSE_ID, f"--Exchange.root={exchange}"]
        run([BIN / "nbgrader", "fetch_assignment", ASSIGNMENT, *exchange_args], home, student_env)
        fetched = home / ASSIGNMENT / "optimizers.ipynb"
        assert fetched.read_bytes() == outbound.read_bytes()
        solve(fetched, case)
        run([BIN / "nbgrader", "submit", ASSIGNMENT, *exchange_args, f"--student={student}"], home, student_env)

    # A hub user may write any folder into inbound (mode 2733): one linking the instructor's notebook
    # and the reference build (issue 14, finding 1) is refused, and nothing of it reaches submitted/.
    mallory = exchange / COURSE_ID / "inbound" / f"mallory+{ASSIGNMENT}+2026-11-20 10:00:00.000000 UTC+x"
    mallory.mkdir()
    (mallory / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")
    os.symlink(course / generate.INSTRUCTOR, mallory / "optimizers.ipynb")
    os.symlink(ROOT / "content" / "m07_optimizers" / "solution" / "optimizers.py", mallory / "optimizers.py")
    collected = run([BIN / "nbgrader", "collect", ASSIGNMENT], course, env)
    assert "Refused inbound submission 'mallory+" in collected.stdout + collected.stderr
    assert sorted(p.name for p in (course / "submitted").iterdir()) == sorted(SOLUTIONS)
    for student in SOLUTIONS:
        assert (course / "submitted" / student / ASSIGNMENT / "optimizers.ipynb").is_file()
    feedback = autograde_and_feedback(course, env)
    check_results(grades(course, env), feedback)


def test_zip_collect_of_an_lms_download_then_autograde(tmp_path):
    course = new_course(tmp_path / "course")
    env = instructor_env(course)
    # An LMS download: one zip, a file per student named <id>_<attempt>_<original name>.
    downloads = course / "downloaded" / ASSIGNMENT / "archive"
    downloads.mkdir(parents=True)
    with zipfile.ZipFile(downloads / "optimizers-submissions.zip", "w") as archive:
        for number, (student, case) in enumerate(SOLUTIONS.items()):
            notebook = tmp_path / f"{student}.ipynb"
            shutil.copy(ROOT / RELEASED, notebook)
            solve(notebook, case)
            archive.write(notebook, f"{student}_attempt_2026-11-2{number}_optimizers.ipynb")
    run(
        [BIN / "nbgrader", "zip_collect", ASSIGNMENT, f"--FileNameCollectorPlugin.named_regexp={LMS_PATTERN}"],
        course,
        env,
    )
    for student in SOLUTIONS:
        assert (course / "submitted" / student / ASSIGNMENT / "optimizers.ipynb").is_file(), student
    feedback = autograde_and_feedback(course, env)
    check_results(grades(course, env), feedback)
