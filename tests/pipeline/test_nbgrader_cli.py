"""Plain `nbgrader autograde`, `generate_feedback` and `export` with the course config: hardened as they stand."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import course_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
CASES = (
    "correct-reference",
    "bug-betas-swapped",
    "hostile-patched-asserts",
    "hostile-os-exit-adamw",
    "hostile-changed-grade-ids",
    "correct-noisy-stderr",
)


def nbgrader(course: Path, *args):
    env = course_env(course)  # the Makefile's environment, the course moved to COURSE
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True, text=True, timeout=1200
    )


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    sample = tmp_path_factory.mktemp("sample")
    subprocess.run([sys.executable, "-m", "tools.sample_class", str(sample)], cwd=ROOT, check=True, capture_output=True)
    course = tmp_path_factory.mktemp("course")
    (course / "source/07_optimizers").mkdir(parents=True)
    shutil.copy(ROOT / "source/07_optimizers/optimizers.ipynb", course / "source/07_optimizers/")
    for name in CASES:
        shutil.copytree(sample / "submitted" / name, course / "submitted" / name)
    assert nbgrader(course, "generate_assignment", "07_optimizers", "--force").returncode == 0
    result = nbgrader(course, "autograde", "07_optimizers", "--force")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return course, json.loads((sample / "expected.json").read_text())


def test_plain_nbgrader_autograde_records_the_trusted_scores(course):
    path, expected = course
    assert nbgrader(path, "export", "--to", str(path / "grades.csv")).returncode == 0
    rows = {row["student_id"]: float(row["score"]) for row in csv.DictReader(open(path / "grades.csv"))}
    want = {name: sum(c["score"] for c in expected[name]["components"].values()) for name in CASES}
    assert rows == want
    assert rows["correct-noisy-stderr"] == 100  # stderr and warnings cost nothing
    assert rows["hostile-changed-grade-ids"] < 100  # renamed test cell: the real one came back


def test_feedback_has_no_hidden_tests(course):
    path, _ = course
    result = nbgrader(path, "generate_feedback", "07_optimizers", "--force")
    assert result.returncode == 0, result.stderr[-2000:]
    pages = sorted((path / "feedback").glob("*/07_optimizers/optimizers.html"))
    assert len(pages) == len(CASES)
    for page in pages:
        html = page.read_text()
        assert "assert_component" not in html and "BEGIN HIDDEN TESTS" not in html
        assert "Hidden checks for AdamW" in html
