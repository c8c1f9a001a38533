"""Every command in the README works as written, from a plain shell (no venv on PATH).

``test_every_readme_command_is_exercised`` lists each command the README shows and the
test that runs it; a command added to the README without a test fails it. The other
tests run the commands no other test runs, in a fresh clone of the committed tree.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import LMS_PATTERN, PLAIN_PATH, SOLUTIONS, solve
from test_course_data import add_manual_grade, plant_course_data, snapshot

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VENV = Path(sys.executable).parent.parent
STARTS = (
    "make ",
    ".venv/bin/",
    "JUPYTER_CONFIG_PATH=",
    "NBGRADER_EXCHANGE_ROOT=",
    "AUTOGRADER_DB_URL=",
    "python -m ",
    "nbgrader ",
)
# README command (a regular expression matching its start) -> the test that runs it.
EXERCISED = {
    r"make demo": "tests/authoring/test_readme.py::test_make_targets_from_a_plain_shell_in_a_fresh_clone",
    r"make clean": "tests/authoring/test_course_data.py::test_make_clean_removes_build_outputs_and_never_course_data",
    r"make test": ".ci/run",  # the suite itself, as CI runs it
    r"make env": "tests/authoring/test_readme.py::test_make_env_is_students_jupyterlab_and_instructor_env_adds_the_tools",
    r"make instructor-env": "tests/authoring/test_readme.py::test_make_env_is_students_jupyterlab_and_instructor_env_adds_the_tools",
    r"\.venv/bin/jupyter lab": "tests/authoring/test_jupyterlab_journey.py::test_student_journey_in_jupyterlab",
    r"make student-dist": "tests/authoring/test_readme.py::test_make_targets_from_a_plain_shell_in_a_fresh_clone",
    r"make (autograde|feedback|grades)": "tests/authoring/test_readme.py::test_make_targets_from_a_plain_shell_in_a_fresh_clone",
    r"make generate": "tests/authoring/test_readme.py::test_make_targets_from_a_plain_shell_in_a_fresh_clone",
    r"make reference": "tests/authoring/test_readme.py::test_make_targets_from_a_plain_shell_in_a_fresh_clone",
    r"make report": "tests/pages/test_report.py::test_report_shows_scores_checks_misconceptions_and_errors",
    r"make book": "tests/authoring/test_book.py::test_build_passes_with_warnings_as_errors",
    r"make bench": "bench/__main__.py",
    r"python -m tinytorch\.export": "tests/authoring/test_student_dist.py::test_student_export_in_the_dist",
    r"nbgrader (fetch_assignment|submit) ": "tests/arrival/test_collection.py::test_exchange_release_fetch_submit_collect_autograde_feedback_export",
    r"NBGRADER_EXCHANGE_ROOT=\S+ JUPYTER_CONFIG_PATH=autograder \.venv/bin/nbgrader release_assignment": "tests/arrival/test_collection.py::test_exchange_release_fetch_submit_collect_autograde_feedback_export",
    r"JUPYTER_CONFIG_PATH=autograder \.venv/bin/nbgrader zip_collect": "tests/arrival/test_collection.py::test_zip_collect_of_an_lms_download_then_autograde",
    r"JUPYTER_CONFIG_PATH=autograder \.venv/bin/nbgrader <command>": "tests/authoring/test_readme.py::test_nbgrader_from_a_plain_shell_finds_its_tools",
    r"AUTOGRADER_DB_URL=\S+ \.venv/bin/python -m autograder course-autograde": "tests/batch/test_scale.py",
    r"\.venv/bin/python -m autograder grade": "tests/pipeline/test_autograde_e2e.py",
    r"nbgrader autograde$": "tests/pipeline/test_nbgrader_cli.py::test_plain_nbgrader_autograde_records_the_trusted_scores",
}


def readme_commands() -> list:
    """Commands in the README's code: bash blocks line by line, and inline code spans."""
    text = README.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
    return sorted({c for c in lines + spans if c.startswith(STARTS)})


def test_every_readme_command_is_exercised():
    commands = readme_commands()
    assert len(commands) >= 15, commands
    for command in commands:
        covering = [test for pattern, test in EXERCISED.items() if re.match(pattern, command)]
        assert covering, f"the README shows `{command}`, which no test runs: add one to EXERCISED"
        for test in covering:
            path, _, name = test.partition("::")
            assert (ROOT / path).exists(), test
            assert not name or re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), test
    # The zip_collect pattern the README gives is the one the test feeds nbgrader.
    assert f"--FileNameCollectorPlugin.named_regexp='{LMS_PATTERN}'" in README.read_text()


def plain_env(**extra) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("VIRTUAL_ENV", "PYTHONPATH", "JUPYTER_CONFIG_PATH", "AUTOGRADER_COURSE_ROOT", "MAKEFLAGS", "MAKELEVEL")
    }
    return {**env, "PATH": PLAIN_PATH, "AUTOGRADER_SANDBOX": "required", **extra}


def sh(command: str, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env or plain_env(), capture_output=True, text=True, timeout=1800
    )
    if check:
        assert result.returncode == 0, f"`{command}` failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_nbgrader_from_a_plain_shell_finds_its_tools(tmp_path):
    """nbgrader runs `alembic` to create a gradebook; without the venv on PATH that used to crash."""
    (tmp_path / "source" / "07_optimizers").mkdir(parents=True)
    shutil.copy(ROOT / "source/07_optimizers/optimizers.ipynb", tmp_path / "source/07_optimizers/")
    env = plain_env(AUTOGRADER_COURSE_ROOT=str(tmp_path))
    result = sh(f"JUPYTER_CONFIG_PATH={ROOT}/autograder {VENV}/bin/nbgrader db assignment list", tmp_path, env)
    assert "FileNotFoundError" not in result.stderr and (tmp_path / "gradebook.db").exists()


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh clone of the committed tree, using this checkout's venv (as `make VENV=...`)."""
    clone = tmp_path_factory.mktemp("clone") / "optimizers-07"
    sh(f"git clone --quiet {ROOT} {clone}", ROOT)
    # The shared venv is up to date: a fresh checkout's newer pyproject.toml must not make
    # `make env` reinstall it (that would point its editable install at this temporary clone).
    os.utime(clone / "pyproject.toml", (0, 0))
    return clone


@pytest.mark.slow
def test_make_targets_from_a_plain_shell_in_a_fresh_clone(clone, tmp_path):
    make = f"make VENV={VENV}"
    status = sh("git status --porcelain", clone).stdout
    # make generate / reference: deterministic, so a fresh clone stays clean.
    sh(f"{make} generate reference", clone)
    assert sh("git status --porcelain", clone).stdout == status == ""

    # make autograde / feedback / grades on two submissions put where the README says.
    for student, case in SOLUTIONS.items():
        notebook = clone / "submitted" / student / "07_optimizers" / "optimizers.ipynb"
        notebook.parent.mkdir(parents=True)
        shutil.copy(clone / "modules/07_optimizers/optimizers.ipynb", notebook)
        solve(notebook, case)
    sh(f"{make} autograde", clone)
    sh(f"{make} feedback", clone)
    sh(f"{make} grades", clone)
    scores = {row["student_id"]: float(row["score"]) for row in csv.DictReader(open(clone / "grades.csv"))}
    assert scores["alice"] == 100 and scores["bob"] < 100, scores
    assert (clone / "feedback/bob/07_optimizers/optimizers.html").is_file()

    # make student-dist DEST=dir, then again with FORCE=1.
    dest = tmp_path / "student"
    sh(f"{make} student-dist DEST={dest}", clone)
    assert sh(f"{make} student-dist DEST={dest}", clone, check=False).returncode != 0
    sh(f"{make} student-dist DEST={dest} FORCE=1", clone)
    assert (dest / "modules/07_optimizers/optimizers.ipynb").read_bytes() == (
        clone / "modules/07_optimizers/optimizers.ipynb"
    ).read_bytes()

    # The course now holds data no tool may lose: a person's manual grade and comment, files in
    # every course folder. make demo grades its own course, demo/; make clean removes build outputs.
    add_manual_grade(f"sqlite:///{clone / 'gradebook.db'}", "bob")
    plant_course_data(clone, with_gradebook=False)
    course_data = snapshot(clone)
    assert {"gradebook.db", "grades.csv", "submitted/alice/07_optimizers/optimizers.ipynb"} <= set(course_data)

    # make demo: regenerate, run the notebook, grade the sample class in demo/.
    result = sh(f"{make} demo", clone)
    assert "correct-reference" in result.stdout
    assert snapshot(clone) == course_data
    sh(f"{make} report COURSE=demo", clone)
    assert (clone / "demo/reports/07_optimizers.html").is_file() and (clone / "demo/gradebook.db").is_file()
    assert snapshot(clone) == course_data
    # Nothing a command wrote is committed or unignored; the committed files are untouched.
    assert sh("git status --porcelain", clone).stdout == ""
    sh(f"{make} clean", clone)
    assert snapshot(clone) == course_data and not (clone / "demo").exists()


@pytest.mark.slow
@pytest.mark.alone  # reinstalls the venv every other test runs from
def test_make_env_is_students_jupyterlab_and_instructor_env_adds_the_tools():
    """`make env` runs binder/postBuild (students' JupyterLab); `make instructor-env` undoes exactly that."""
    from tools.instructor_env import switched_off

    env = plain_env(PATH=f"{VENV}/bin:{PLAIN_PATH}")  # what the Makefile's recipe sees
    try:
        sh("bash binder/postBuild", ROOT, env)
        plugins, extensions = switched_off()
        assert "@jupyter/nbgrader:formgrader" in plugins and "@jupyter/nbgrader:create-assignment" in plugins
        assert "nbgrader.server_extensions.formgrader" in extensions
        sh(f"make VENV={VENV} instructor-env", ROOT)
        assert switched_off() == ([], [])
        page = json.loads((VENV / "etc/jupyter/labconfig/page_config.json").read_text())
        assert not any(page.get("lockedExtensions", {}).get(p) for p in plugins)
    finally:
        sh("bash binder/postBuild", ROOT, env)  # leave the venv as `make env` makes it
    assert re.search(r"^\tbash binder/postBuild$", (ROOT / "Makefile").read_text(), re.M)
