"""The course's own data is sacred: no make target but grading writes it, none deletes it.

This repository is the instructor's nbgrader course: ``submitted/``, ``autograded/``,
``feedback/``, ``gradebook.db`` (with people's manual grades and comments), ``grades.csv``,
``reports/``, ``exchange/`` and ``downloaded/`` are data no tool may lose. ``make demo`` grades
its sample class in ``demo/``; ``make clean`` removes build outputs only. The expensive
``make demo`` check runs once, in tests/authoring/test_readme.py's fresh clone, with ``snapshot`` and
``plant_course_data`` from here.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
ASSIGNMENT = "07_optimizers"
COURSE_DATA = ("submitted", "autograded", "feedback", "gradebook.db", "grades.csv", "reports", "exchange", "downloaded")
GRADING_TARGETS = {"autograde", "feedback", "grades", "report"}  # write course data on purpose
MANUAL_COMMENT = "Right idea; the 3x comes from m, v and the parameters themselves."


def snapshot(root: Path) -> dict:
    """{relative path: sha256} of every file and symlink of the course data under ``root``."""
    out = {}
    for name in COURSE_DATA:
        top = root / name
        paths = [top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []
        for path in paths:
            if path.is_symlink():
                out[str(path.relative_to(root))] = "-> " + os.readlink(path)
            elif path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[str(path.relative_to(root))] = "dir"
    return out


def add_manual_grade(db_url: str, student: str) -> None:
    """A person's grade and comment on ``student``'s first written answer, as the formgrader saves them."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        submission = gb.find_submission_notebook("optimizers", ASSIGNMENT, student)
        grade = next(g for g in submission.grades if g.name.startswith("written_"))
        grade.manual_score = 1.5
        comment = next(c for c in submission.comments if c.name == grade.name)
        comment.manual_comment = MANUAL_COMMENT
        gb.db.commit()


def plant_course_data(root: Path, with_gradebook: bool = True) -> None:
    """Course data in every place the rule names: a submission, a graded gradebook, exchange files..."""
    notebook = nbformat.read(ROOT / "modules" / ASSIGNMENT / "optimizers.ipynb", as_version=4)
    for folder in ("submitted", "autograded"):
        (root / folder / "carol" / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, root / folder / "carol" / ASSIGNMENT / "optimizers.ipynb")
    files = {
        "feedback/carol/07_optimizers/optimizers.html": "<p>feedback</p>",
        "grades.csv": '"assignment","student_id","score"\n"07_optimizers","carol",42.0\n',
        "reports/07_optimizers.html": "<p>report</p>",
        "exchange/tinytorch-07/inbound/carol+07_optimizers+2026-11-20 10:00:00.000000 UTC/optimizers.ipynb": "{}",
        "downloaded/07_optimizers/archive/carol_attempt_2026-11-20_optimizers.ipynb": "{}",
    }
    for relative, text in files.items():
        if not (root / relative).exists():  # a real course's own files stay as they are
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text)
    if with_gradebook:
        gradebook_with_manual_grade(root)


def gradebook_with_manual_grade(root: Path) -> None:
    """``root/gradebook.db``: carol's submission with a manual grade and a comment.

    nbgrader runs ``alembic`` to create a gradebook: the venv's bin must be on PATH.
    """
    from nbgrader.api import Gradebook

    url = f"sqlite:///{root / 'gradebook.db'}"
    with Gradebook(url) as gb:
        gb.add_assignment(ASSIGNMENT, duedate=datetime(2026, 11, 20, 17, 0))
        gb.add_notebook("optimizers", ASSIGNMENT)
        gb.add_grade_cell("written_state", "optimizers", ASSIGNMENT, max_score=2, cell_type="markdown")
        gb.add_solution_cell("written_state", "optimizers", ASSIGNMENT)
        gb.add_student("carol")
        with gb.db.no_autoflush:  # as autograder.batch.template.ensure_submission (no SAWarning)
            gb.add_submission(ASSIGNMENT, "carol")
    add_manual_grade(url, "carol")


def clone(dest: Path) -> Path:
    """A fresh clone of the committed tree (as tests/authoring/test_readme.py makes one)."""
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True, capture_output=True)
    os.utime(dest / "pyproject.toml", (0, 0))  # the shared venv is up to date: `make env` does nothing
    return dest


def make(target: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", f"VENV={VENV}", target, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def test_make_clean_removes_build_outputs_and_never_course_data(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")  # alembic
    course = clone(tmp_path / "course")
    plant_course_data(course)
    before = snapshot(course)
    assert len(before) > 15 and "gradebook.db" in before
    for output in ("_build/html/index.html", "artifacts/shot.png", "demo/gradebook.db", "demo/submitted/x/a"):
        (course / output).parent.mkdir(parents=True, exist_ok=True)
        (course / output).write_text("build output")
    result = make("clean", course)
    assert result.returncode == 0, result.stderr
    assert snapshot(course) == before
    assert not any((course / d).exists() for d in ("_build", "artifacts", "demo"))


def removals(target: str) -> list:
    """The recipe lines ``make -n target`` would run that remove or move files."""
    result = make(target, ROOT, "-n")
    assert result.returncode == 0, result.stderr
    return [
        line
        for line in result.stdout.splitlines()
        if re.search(r"(^|[\s;&|(])(rm|mv|rmdir|shred|unlink)\s|--delete|-delete\b|shutil\.rmtree", line)
    ]


def phony_targets() -> list:
    text = (ROOT / "Makefile").read_text()
    block = re.search(r"^\.PHONY:(.*?)(?<!\\)\n", text, re.M | re.S).group(1)
    return sorted(set(block.replace("\\\n", " ").split()) - GRADING_TARGETS - {"help"})


@pytest.mark.parametrize("target", phony_targets())
def test_no_target_but_grading_removes_or_moves_course_data(target):
    """A dry run of every target: no command it would run deletes or moves a course-data path."""
    for line in removals(target):
        words = {w.rstrip("/").removeprefix("./") for w in shlex.split(line, posix=True)}
        assert not words & set(COURSE_DATA), f"`make {target}` would run `{line}` on the course's data"
