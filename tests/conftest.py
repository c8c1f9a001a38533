"""Fixtures shared across test files (expensive ones are built once per session)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "07_optimizers"
# A cross-section of the sample class: correct, three misconceptions, a deleted test cell, a broken file.
SMALL_CLASS = ("correct-reference", "bug-nesterov", "bug-eps-inside-sqrt", "bug-state-dtype",
               "hostile-deleted-test-cell", "broken-corrupt-json")
WRITTEN_STUDENT = "written-answers"     # correct-reference, plus an answer in every written cell


@pytest.fixture(scope="session")
def sample_class(tmp_path_factory):
    """(folder, expected): the sample class written once by ``python -m tools.sample_class``."""
    course = tmp_path_factory.mktemp("shared-sample-class")
    subprocess.run([sys.executable, "-m", "tools.sample_class", str(course)], cwd=ROOT, check=True,
                   capture_output=True)
    return course, json.loads((course / "expected.json").read_text())


@pytest.fixture
def no_bwrap_path(tmp_path):
    """A PATH without bwrap: the venv's bin (no bwrap there) and an empty folder."""
    empty = tmp_path / "bin-without-bwrap"
    empty.mkdir()
    return f"{Path(sys.executable).parent}{os.pathsep}{empty}"


def course_env(root: Path) -> dict:
    """The environment the Makefile gives nbgrader, with the course moved to ``root``."""
    return {**os.environ, "AUTOGRADER_SANDBOX": "required", "AUTOGRADER_COURSE_ROOT": str(root),
            "JUPYTER_CONFIG_PATH": str(ROOT / "autograder"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def answered(nb):
    """The notebook with every written answer cell filled in, as a student would."""
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id", "").startswith("written_"):
            cell.source = f"My answer to {cell.metadata.nbgrader.grade_id}: it depends on the state."
    return nb


@pytest.fixture(scope="session")
def small_course(sample_class, tmp_path_factory) -> dict:
    """A scratch nbgrader course run through the commands of `make autograde` and `make feedback`.

    Returns ``{"root": course folder, "output": everything the commands printed, "students": [...]}``.
    """
    sample_class = sample_class[0]
    root = tmp_path_factory.mktemp("small-course")
    shutil.copytree(ROOT / "source", root / "source")
    for name in SMALL_CLASS:
        shutil.copytree(sample_class / "submitted" / name, root / "submitted" / name)
    target = root / "submitted" / WRITTEN_STUDENT / ASSIGNMENT
    target.mkdir(parents=True)
    nb = nbformat.read(sample_class / "submitted" / "correct-reference" / ASSIGNMENT / "optimizers.ipynb", 4)
    nbformat.write(answered(nb), target / "optimizers.ipynb")
    nbgrader = [sys.executable, "-m", "nbgrader"]
    commands = [                                      # the Makefile's autograde and feedback targets
        # records the assignment in this scratch course's gradebook, as `tools.generate --gradebook`
        # does for the repository (which also rewrites the repository's generated files)
        [*nbgrader, "generate_assignment", ASSIGNMENT, "--force", "--log-level=WARN"],
        [sys.executable, "-m", "autograder", "course-autograde", ASSIGNMENT, "--course", str(root)],
        [*nbgrader, "generate_feedback", ASSIGNMENT, "--force", "--log-level=WARN"],
    ]
    output = []
    for command in commands:
        result = subprocess.run(command, cwd=root, env=course_env(root), capture_output=True, text=True,
                                timeout=1800)
        output.append(result.stdout + result.stderr)
        assert result.returncode == 0, f"{command}:\n{output[-1][-3000:]}"
    return {"root": root, "output": "\n".join(output), "students": [*SMALL_CLASS, WRITTEN_STUDENT]}
