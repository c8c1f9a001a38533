"""`make demo`, `make autograde` and `make feedback` print no warning: causes fixed, logs not filtered."""

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENT, ROOT, course_env

from autograder.course import api as _api
from autograder.pipeline.released_cells import OverwriteReleasedCells

pytestmark = pytest.mark.slow
# Each of these used to appear on every run (issue 11); none may come back.
KNOWN_NOISE = (
    "db_assignments",
    "not recognized by",
    "SAWarning",
    "not in session",
    "has changed!",
    "Alternative text is missing",
    "MissingIDFieldWarning",
    "without encryption",
)
WARNING_LINE = re.compile(r"warn", re.IGNORECASE)


def assert_quiet(output: str):
    for noise in KNOWN_NOISE:
        assert noise not in output, noise
    assert [line for line in output.splitlines() if WARNING_LINE.search(line)] == []


def test_make_autograde_and_feedback_print_no_warning(small_course):
    """The fixture ran generate_assignment, course-autograde and generate_feedback as the Makefile does."""
    assert "graded 6 of 7 submissions" in small_course["output"]  # broken-corrupt-json is not a notebook
    assert_quiet(small_course["output"])


def test_feedback_pages_show_no_figure_since_grading_draws_none(small_course):
    """The notebook's GRADING guard skips every figure under nbgrader (issue 17); the alt text of
    the figures students do see is checked on a rendered page in test_grading_guard.py."""
    page = (small_course["root"] / "feedback/correct-reference" / ASSIGNMENT / "optimizers.html").read_text()
    assert "ladder" in page and "memory_ratios" in page  # the figure cells are there, drawing nothing
    assert re.findall(r"<img\b[^>]*>", page) == []


def test_demo_grading_prints_no_warning(sample_class, tmp_path):
    """`make demo`'s grading command, on an untouched submission and one whose test cell was deleted."""
    names = ("correct-reference", "hostile-deleted-test-cell")
    for name in names:
        shutil.copytree(sample_class[0] / "submitted" / name, tmp_path / "submitted" / name)
    (tmp_path / "expected.json").write_text(json.dumps({n: sample_class[1][n] for n in names}))
    result = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--course", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=course_env(tmp_path / "unused"),
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((tmp_path / "feedback").glob(f"*/{ASSIGNMENT}/*.html"))) == 2
    assert_quiet(result.stdout + result.stderr)


def test_running_a_notebook_prints_no_warning(tmp_path):
    """`make demo` runs the instructor notebook with tools.run_notebook; a small notebook shows the kernel's log."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    result = subprocess.run(
        [sys.executable, "-m", "tools.run_notebook", str(tmp_path / "tiny.ipynb")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert_quiet(result.stdout + result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.ipynb"]  # no socket files left behind


def _overwrite(course: Path, nb):
    """Run OverwriteReleasedCells on ``nb`` against the course gradebook; return the warnings it logged."""
    api = _api(course)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    pp = OverwriteReleasedCells(config=api.config)
    pp.log = logging.getLogger("test-overwrite")
    pp.log.addHandler(handler)
    try:
        resources = {"nbgrader": {"notebook": "optimizers", "assignment": ASSIGNMENT, "db_url": api.coursedir.db_url}}
        nb, _ = pp.preprocess(nb, resources)
    finally:
        pp.log.removeHandler(handler)
    return nb, [r.getMessage() for r in records if r.levelno >= logging.WARNING]


def test_untouched_test_cells_match_and_an_edited_one_is_still_reported(small_course, sample_class):
    submission = sample_class[0] / "submitted/correct-reference" / ASSIGNMENT / "optimizers.ipynb"
    nb, warnings = _overwrite(small_course["root"], nbformat.read(submission, as_version=4))
    assert warnings == []
    tests = {
        c.metadata.nbgrader.grade_id: c.source
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_")
    }
    assert len(tests) == 4 and all("BEGIN HIDDEN TESTS" in source for source in tests.values())

    edited = nbformat.read(submission, as_version=4)
    cell = next(c for c in edited.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_sgd")
    cell.source = "assert True  # nothing to see here"
    nb, warnings = _overwrite(small_course["root"], edited)
    assert [w for w in warnings if "test_sgd" in w and "checksum" in w], warnings
    assert "assert True  # nothing" not in next(
        c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_sgd"
    )


def test_a_re_added_test_cell_gets_a_cell_id(small_course):
    autograded = small_course["root"] / "autograded/hostile-deleted-test-cell" / ASSIGNMENT / "optimizers.ipynb"
    nb = nbformat.read(autograded, as_version=4)
    ids = [cell.get("id") for cell in nb.cells]
    assert all(ids) and len(set(ids)) == len(ids)
    assert any(c.metadata.get("nbgrader", {}).get("grade_id") == "test_optimizer" for c in nb.cells)
