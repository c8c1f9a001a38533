"""Fixtures shared across test files: the expensive ones are built once per test session.

Under pytest-xdist (``make test`` runs three workers) a session fixture runs once per worker;
the folders below are built once for the whole session through ``sharing.built_once`` (a file
lock in the directory the workers share), and each worker reads them. Tests read these
shared results and never change them: a test that needs to change one copies it first.
"""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from sharing import built_once, machine, session_root, used_alone
from support import CHROMIUM, CHROMIUM_ARGS, Listener, grade_json, tree_digest

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "07_optimizers"
# A cross-section of the sample class: correct, three misconceptions, a deleted test cell, a broken file.
SMALL_CLASS = (
    "correct-reference",
    "bug-nesterov",
    "bug-eps-inside-sqrt",
    "bug-state-dtype",
    "hostile-deleted-test-cell",
    "broken-corrupt-json",
)
WRITTEN_STUDENT = "written-answers"  # correct-reference, plus an answer in every written cell
SAMPLE_CLASS_COMMAND = [sys.executable, "-m", "tools.sample_class"]
# What the sample class's attacks aim at: instructor notebooks, the reference build and data, the gradebook.
PROTECTED = (
    ROOT / "source",
    ROOT / "tinytorch",
    ROOT / "content" / "m07_optimizers" / "reference",
    ROOT / "gradebook.db",
)


# ----------------------------------------------------------------------------- the sample class
def _write_sample_class(folder: Path) -> None:
    subprocess.run([*SAMPLE_CLASS_COMMAND, str(folder)], cwd=ROOT, check=True, capture_output=True)


@pytest.fixture(scope="session")
def sample_class(tmp_path_factory):
    """(folder, expected): the sample class, written once per session by ``python -m tools.sample_class``."""
    course = built_once(session_root(tmp_path_factory), "sample-class", _write_sample_class)
    return course, json.loads((course / "expected.json").read_text())


@pytest.fixture(scope="session")
def _graded_class_folder(sample_class, tmp_path_factory) -> Path:
    """The whole sample class graded once per session by ``python -m autograder grade --json --jobs 2``.

    The folder holds ``result.json`` (the entries, the connections a loopback listener got
    during grading, whether grading changed what the attacks aim at) and ``feedback/``.
    """
    from tools.sample_class import NETWORK_PORT

    course, _ = sample_class

    def grade_the_class(folder: Path) -> None:
        before = tree_digest(*PROTECTED)
        listener = Listener(NETWORK_PORT)
        try:
            entries = grade_json(_class_paths(course), "--jobs", "2", "--feedback-dir", str(folder / "feedback"))
        finally:
            listener.close()
        result = {"entries": entries, "connections": listener.accepted, "unchanged": tree_digest(*PROTECTED) == before}
        (folder / "result.json").write_text(json.dumps(result))

    return built_once(session_root(tmp_path_factory), "graded-sample-class", grade_the_class)


def _class_paths(course: Path) -> list:
    return sorted((course / "submitted").glob(f"*/{ASSIGNMENT}/optimizers.ipynb"))


@pytest.fixture
def graded_class(_graded_class_folder, sample_class) -> dict:
    """The shared grading of the sample class, as a fresh dict per test (so no test sees another's changes).

    ``{"course", "expected", "paths", "entries", "connections", "unchanged", "feedback"}``.
    """
    course, _ = sample_class
    result = json.loads((_graded_class_folder / "result.json").read_text())
    return {
        "course": course,
        "expected": json.loads((course / "expected.json").read_text()),
        "paths": _class_paths(course),
        "feedback": _graded_class_folder / "feedback",
        **result,
    }


@pytest.fixture
def no_bwrap_path(tmp_path):
    """A PATH without bwrap: the venv's bin (no bwrap there) and an empty folder."""
    empty = tmp_path / "bin-without-bwrap"
    empty.mkdir()
    return f"{Path(sys.executable).parent}{os.pathsep}{empty}"


def course_env(root: Path) -> dict:
    """The environment the Makefile gives nbgrader, with the course moved to ``root``."""
    return {
        **os.environ,
        "AUTOGRADER_SANDBOX": "required",
        "AUTOGRADER_COURSE_ROOT": str(root),
        "JUPYTER_CONFIG_PATH": str(ROOT / "autograder"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def answered(nb):
    """The notebook with every written answer cell filled in, as a student would."""
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id", "").startswith("written_"):
            cell.source = f"My answer to {cell.metadata.nbgrader.grade_id}: it depends on the state."
    return nb


# ----------------------------------------------------------------------------- a small nbgrader course
@pytest.fixture(scope="session")
def small_course(sample_class, tmp_path_factory) -> dict:
    """A scratch nbgrader course run through the commands of `make autograde` and `make feedback`, once per session.

    Returns ``{"root": course folder, "output": everything the commands printed, "students": [...]}``.
    Shared: a test that writes into the course (a report, an edited notebook) copies it first.
    """
    sample = sample_class[0]

    def run_the_course(root: Path) -> None:
        shutil.copytree(ROOT / "source", root / "source")
        for name in SMALL_CLASS:
            shutil.copytree(sample / "submitted" / name, root / "submitted" / name)
        target = root / "submitted" / WRITTEN_STUDENT / ASSIGNMENT
        target.mkdir(parents=True)
        nb = nbformat.read(sample / "submitted" / "correct-reference" / ASSIGNMENT / "optimizers.ipynb", 4)
        nbformat.write(answered(nb), target / "optimizers.ipynb")
        nbgrader = [sys.executable, "-m", "nbgrader"]
        commands = [  # the Makefile's autograde and feedback targets
            # records the assignment in this scratch course's gradebook, as `tools.generate --gradebook`
            # does for the repository (which also rewrites the repository's generated files)
            [*nbgrader, "generate_assignment", ASSIGNMENT, "--force", "--log-level=WARN"],
            [sys.executable, "-m", "autograder", "course-autograde", ASSIGNMENT, "--course", str(root)],
            [*nbgrader, "generate_feedback", ASSIGNMENT, "--force", "--log-level=WARN"],
        ]
        output = []
        for command in commands:
            result = subprocess.run(
                command, cwd=root, env=course_env(root), capture_output=True, text=True, timeout=1800
            )
            output.append(result.stdout + result.stderr)
            assert result.returncode == 0, f"{command}:\n{output[-1][-3000:]}"
        # Beside the course, not in it: the course folder holds only what nbgrader wrote.
        (root.parent / f"{root.name}.output.txt").write_text("\n".join(output))

    root = built_once(session_root(tmp_path_factory), "small-course", run_the_course)
    return {
        "root": root,
        "output": (root.parent / f"{root.name}.output.txt").read_text(),
        "students": [*SMALL_CLASS, WRITTEN_STUDENT],
    }


# ----------------------------------------------------------------------------- one Binder venv
@dataclass(frozen=True)
class BinderRepo:
    """A student repository (``tools.student_dist``) and a venv built from its binder/ files alone."""

    dist: Path
    venv: Path
    times: dict  # seconds: requirements, postBuild, total (with the dist); postBuild_output


@pytest.fixture(scope="session")
def _binder_build(tmp_path_factory) -> Path:
    """Built once for the whole session (about 45 s and a PyPI download): a student dist, a venv from its
    binder/ files, a copy of the dist as postBuild left it, and the build's ``times.json``."""

    def build(work: Path) -> None:
        import time

        from tools import student_dist
        from tools.binder_venv import build_binder_venv

        start = time.monotonic()
        student_dist.build(work / "student-repo")
        times = build_binder_venv(work / "student-repo", work / "binder-venv")
        times["total"] = time.monotonic() - start
        shutil.copytree(work / "student-repo", work / "student-repo-after-postBuild", symlinks=True)
        (work / "times.json").write_text(json.dumps(times))

    return built_once(session_root(tmp_path_factory), "binder", build)


@pytest.fixture
def binder_repo(_binder_build) -> BinderRepo:
    """The session's Binder-like repository and venv, for this test alone, its dist exactly as postBuild left
    it (whatever an earlier test wrote into it, e.g. a student's exported classes, is gone). The venv's
    editable install names the dist's path, so tests take turns with the one dist instead of copying it."""
    times = json.loads((_binder_build / "times.json").read_text())
    with used_alone(_binder_build / "student-repo-after-postBuild", _binder_build / "student-repo") as dist:
        yield BinderRepo(dist, _binder_build / "binder-venv", times)


# The test files that take longest (`make test` lists the slowest tests), in that order. pytest-xdist's
# loadfile hands files out in collection order, so these go first: started last, the fresh-clone
# README test alone outlasted every other worker's share by about four minutes.
LONGEST_FIRST = (
    "tests/authoring/test_readme.py",
    "tests/batch/test_resume.py",
    "tests/pipeline/test_autograde_e2e.py",
    "tests/batch/test_scale.py",
)


def pytest_collection_modifyitems(items):
    def rank(item):
        path = item.path.relative_to(ROOT).as_posix()
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every other file, and the tests in a file, keep their order


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    """Each test holds the machine lock (tests/sharing.py): exclusively if it is marked ``alone``."""
    with machine(alone=item.get_closest_marker("alone") is not None):
        return (yield)


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for a test module's browser tests (Playwright driving Debian's chromium)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
