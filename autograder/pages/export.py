"""CSV a spreadsheet reads as data: the cell rule of every CSV the course writes, and ``make grades``.

Every value a CSV cell holds may come from a student (ids are folder names, names and
emails come from an LMS roster, report strings from grader metadata), so the file is
written by the ``csv`` module, never by joining text, and with one rule for every cell:

* numbers (``int``/``float`` from the gradebook or the grader, finite) are written bare, so
  a spreadsheet and ``csv.reader(quoting=csv.QUOTE_NONNUMERIC)`` read them as numbers;
  a negative score stays ``-2.5``: a bare number cannot carry a formula;
* everything else is text, always double-quoted, and text that a spreadsheet would run as a
  formula (first character ``= + - @``, tab, carriage return, line feed, or their full-width
  forms, per OWASP's CSV injection guidance) gets a leading apostrophe: ``'=cmd|...``.
  Text that looks like a number (a student id ``-1``) is text and gets the apostrophe too.

``GradesCsvExport`` is nbgrader's ``CsvExportPlugin`` with that rule (the same columns, the
same scores), set as ``ExportApp.plugin_class`` in ``nbgrader_config.py``.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from numbers import Real
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin

# First characters that make a spreadsheet cell a formula (OWASP), and their full-width forms,
# which some spreadsheets (Excel with East Asian input) also take as formula starts.
FORMULA_STARTS = frozenset("=+-@\t\r\n" + "\uff1d\uff0b\uff0d\uff20")
# nbgrader's CsvExportPlugin columns, in its order.
GRADE_COLUMNS = (
    "assignment",
    "duedate",
    "timestamp",
    "student_id",
    "last_name",
    "first_name",
    "email",
    "raw_score",
    "late_submission_penalty",
    "score",
    "max_score",
)


def csv_cell(value):
    """``value`` as a CSV cell: a finite number as itself, anything else as text no spreadsheet runs."""
    if isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value):
        return value if isinstance(value, int) else float(value)
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in FORMULA_STARTS else text


def spreadsheet_writer(handle):
    """A ``csv.writer`` that quotes all text and leaves numbers bare; give it rows of ``csv_cell`` values."""
    return csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")


def write_rows(path: Path, header, rows) -> None:
    """Write a CSV atomically: on any error the previous file, if any, is left as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = spreadsheet_writer(handle)
            writer.writerow([csv_cell(h) for h in header])
            writer.writerows([csv_cell(v) for v in row] for row in rows)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def grade_row(gradebook: Gradebook, assignment, student) -> dict:
    """One student's row for one assignment, valued as nbgrader's CsvExportPlugin values it."""
    row = {
        "assignment": assignment.name,
        "duedate": assignment.duedate,
        "student_id": student.id,
        "last_name": student.last_name,
        "first_name": student.first_name,
        "email": student.email,
        "max_score": assignment.max_score,
    }
    try:
        submission = gradebook.find_submission(assignment.name, student.id)
    except MissingEntry:  # no submission: zero, as nbgrader exports it
        return {**row, "timestamp": None, "raw_score": 0.0, "late_submission_penalty": 0.0, "score": 0.0}
    penalty = submission.late_submission_penalty
    return {
        **row,
        "timestamp": submission.timestamp,
        "raw_score": submission.score,
        "late_submission_penalty": penalty,
        "score": max(0.0, submission.score - penalty),
    }


def selected(names, wanted) -> bool:
    """nbgrader's --student/--assignment filters: an empty list selects everything."""
    return not wanted or names in {str(w) for w in wanted}


class GradesCsvExport(ExportPlugin):
    """``nbgrader export`` (``make grades``): nbgrader's CSV columns, every cell quoted by ``csv_cell``."""

    def export(self, gradebook: Gradebook) -> None:
        dest = Path(self.to or "grades.csv")
        self.log.info("Exporting grades to %s", dest)
        rows = [
            grade_row(gradebook, assignment, student)
            for assignment in gradebook.assignments
            if selected(assignment.name, self.assignment)
            for student in gradebook.students
            if selected(student.id, self.student)
        ]
        write_rows(dest, GRADE_COLUMNS, ([row[key] for key in GRADE_COLUMNS] for row in rows))
