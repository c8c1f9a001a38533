"""`make grades` (nbgrader export with the course config) and the CSV cell rule every course CSV uses.

nbgrader's own CsvExportPlugin joins fields with commas, unquoted: a student id
``mallory,,,,100,0,100,100`` with a score of 0 read back as 100 of 100. Everything in the
gradebook may come from a student or an LMS roster, so the tests fill one with hostile ids,
names and emails and read the exported file back with the ``csv`` module.
"""

import csv
import math
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from conftest import ASSIGNMENT, course_env
from nbgrader.api import Gradebook

from autograder.pages.export import csv_cell, write_rows

# OWASP's CSV injection list: a cell starting with one of these is a formula to a spreadsheet.
FORMULA = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
FORGED_ID = "mallory,,,,100,0,100,100"
HOSTILE_TEXT = [
    FORGED_ID,
    'quote"d,id',
    "new\nline,,,,100",
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "\uff1dcmd|'/C calc'!A0",
    "-1",
    "plain-student",
]
STUDENTS = {  # id -> (first name, last name, email, autograded score or None for no submission)
    FORGED_ID: ("Mal", "Lory", "m@example.org", 0.0),
    'eve"quote': ('=HYPERLINK("http://example.invalid","x")', "O'Brien, Jr.", '"eve"@example.org', 37.5),
    "new\nline,,,,100,0,100,100": ("-2+3", "\r\nSmith", "@evil", 12.25),
    "=cmd|' /C calc'!A0": ("+1", "\tTab", "-1", None),
    "-7": (None, None, None, 99.0),
    "alice": ("Alice", "Archer", "alice@example.org", 100.0),
}
NUMBER_COLUMNS = ("raw_score", "late_submission_penalty", "score", "max_score")


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_no_text_cell_starts_a_formula_and_the_text_is_kept(text):
    cell = csv_cell(text)
    assert isinstance(cell, str) and not cell.startswith(FORMULA)
    assert cell == text or (cell == "'" + text and text.startswith(FORMULA))


@pytest.mark.parametrize("number", [0, 3, -3, 100.0, -2.5, 1e-9, -0.0])
def test_finite_numbers_stay_bare_numbers_even_when_negative(number, tmp_path):
    path = tmp_path / "n.csv"
    write_rows(path, ["value", "label"], [[number, str(number)]])
    with path.open(newline="") as handle:
        _, (value, label) = csv.reader(handle, quoting=csv.QUOTE_NONNUMERIC)
    assert value == number and isinstance(value, float)  # a number column stays numbers
    assert label == str(number) or (label == "'" + str(number) and str(number).startswith("-"))


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, True, None])
def test_values_that_are_not_finite_numbers_are_text(value, tmp_path):
    cell = csv_cell(value)
    assert isinstance(cell, str) and not cell.startswith(FORMULA)


def hostile_gradebook(course: Path, monkeypatch) -> str:
    """A course gradebook with hostile ids, names and emails, and known scores."""
    # nbgrader runs `alembic` (a script beside this interpreter) to create a gradebook
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    url = f"sqlite:///{course / 'gradebook.db'}"
    with Gradebook(url) as gb:
        gb.add_assignment(ASSIGNMENT, duedate=datetime(2026, 11, 20, 17, 0))
        gb.add_notebook("optimizers", ASSIGNMENT)
        gb.add_grade_cell("test_sgd", "optimizers", ASSIGNMENT, max_score=100, cell_type="code")
        for student, (first, last, email, score) in STUDENTS.items():
            gb.add_student(student, first_name=first, last_name=last, email=email)
            if score is None:
                continue
            with gb.db.no_autoflush:  # as autograder.batch.template.ensure_submission (no SAWarning)
                gb.add_submission(ASSIGNMENT, student, timestamp=datetime(2026, 11, 19, 9, 30))
            gb.find_grade("test_sgd", "optimizers", ASSIGNMENT, student).auto_score = score
        gb.db.commit()
    return url


def make_grades(course: Path) -> Path:
    """What `make grades` runs, on ``course``."""
    out = course / "grades.csv"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), "export", "--to", str(out), "--log-level=WARN"],
        cwd=course,
        env=course_env(course),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warn" not in (result.stdout + result.stderr).lower()
    return out


def shown(cell: str, value) -> bool:
    """The cell shows ``value`` (None is empty), with an apostrophe only in front of a formula start."""
    text = "" if value is None else str(value)
    return cell == text or (cell == "'" + text and text.startswith(FORMULA))


def test_make_grades_reads_back_as_the_gradebook_with_hostile_ids_and_names(tmp_path, monkeypatch):
    url = hostile_gradebook(tmp_path, monkeypatch)
    path = make_grades(tmp_path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "assignment",
        "duedate",
        "timestamp",
        "student_id",
        "last_name",
        "first_name",
        "email",
        *NUMBER_COLUMNS[:2],
        "score",
        "max_score",
    ]  # nbgrader's columns
    forged = [row for row in rows if row["student_id"] == FORGED_ID]
    assert [(row["score"], row["max_score"], row["last_name"]) for row in forged] == [("0.0", "100.0", "Lory")]
    assert len(rows) == len(STUDENTS)  # no row forged by a newline, none lost
    cells = [cell for row in rows for cell in row.values()]
    assert all(not cell.startswith(FORMULA) or _number(cell) for cell in cells), cells
    with path.open(newline="") as handle:
        typed = list(csv.reader(handle, quoting=csv.QUOTE_NONNUMERIC))[1:]
    with Gradebook(url) as gb:
        for row, values in zip(rows, typed):
            student = next(s for s in gb.students if shown(row["student_id"], s.id))
            assert shown(row["first_name"], student.first_name) and shown(row["last_name"], student.last_name)
            assert shown(row["email"], student.email) and row["assignment"] == ASSIGNMENT
            submitted = STUDENTS[student.id][3] is not None
            score = gb.find_submission(ASSIGNMENT, student.id).score if submitted else 0.0
            assert float(row["score"]) == float(row["raw_score"]) == score == (STUDENTS[student.id][3] or 0.0)
            assert float(row["max_score"]) == 100.0
            assert row["timestamp"] == ("2026-11-19 09:30:00" if submitted else "")
            numbers = dict(zip(rows[0], values))
            assert all(isinstance(numbers[c], float) for c in NUMBER_COLUMNS)  # bare numbers, not text
            assert all(isinstance(v, str) for c, v in numbers.items() if c not in NUMBER_COLUMNS)  # quoted


def _number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def test_a_failed_export_leaves_the_previous_grades_file(tmp_path):
    path = tmp_path / "grades.csv"
    path.write_text("assignment,score\n07_optimizers,80.0\n")
    before = path.read_bytes()

    class Unprintable:
        def __str__(self):
            raise RuntimeError("a value the writer cannot convert")

    with pytest.raises(RuntimeError):
        write_rows(path, ["a"], [["fine"], [Unprintable()]])
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["grades.csv"]
