"""Fail closed: without a working bubblewrap no entry point runs student code, unless AUTOGRADER_SANDBOX=off."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import sandbox
from tools.sample_class import SOURCE, STUDENT, fill

ROOT = Path(__file__).resolve().parents[2]
FAKE_FAILURE = "setpriv: failed to execute /nowhere/bin/python: No such file or directory"


@pytest.fixture
def tattler(tmp_path):
    """A submission whose code, if it ever runs, leaves a file behind: (notebook, that file)."""
    marker = tmp_path / "student-code-ran"
    nb = fill(
        nbformat.read(STUDENT, as_version=4),
        nbformat.read(SOURCE, as_version=4),
        {"sgd": lambda code: f"open({str(marker)!r}, 'w').write('ran')\n" + code},
    )
    path = tmp_path / "submitted" / "tattler" / "07_optimizers" / "optimizers.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    return path, marker


@pytest.fixture
def broken_bwrap_path(tmp_path):
    """A PATH whose bwrap exists but fails the way a broken setup does (setpriv cannot exec Python)."""
    bin_dir = tmp_path / "broken-bin"
    bin_dir.mkdir()
    fake = bin_dir / "bwrap"
    fake.write_text(f"#!/bin/sh\necho '{FAKE_FAILURE}' >&2\nexit 127\n")
    fake.chmod(0o755)
    (bin_dir / "setpriv").symlink_to(shutil.which("setpriv") or "/usr/bin/setpriv")
    return f"{Path(sys.executable).parent}{os.pathsep}{bin_dir}"


def run(args, path_env, mode=None, cwd=ROOT, **env):
    full = {**os.environ, "PATH": path_env, **env}
    full.pop("AUTOGRADER_SANDBOX", None)
    if mode is not None:
        full["AUTOGRADER_SANDBOX"] = mode
    return subprocess.run(args, cwd=cwd, env=full, capture_output=True, text=True, timeout=600)


def assert_refused(result, failure: str):
    assert result.returncode != 0, result.stdout[-2000:]
    text = result.stderr
    for needed in (
        "bubblewrap",
        failure,
        "apt-get install bubblewrap",
        "fix the path",
        "AUTOGRADER_SANDBOX=off",
        "No student code was run",
    ):
        assert needed in text, (needed, text[-3000:])


@pytest.mark.parametrize("mode", [None, "auto", "required"], ids=["unset", "auto", "required"])
def test_grade_refuses_without_bwrap_before_student_code(tattler, no_bwrap_path, mode):
    notebook, marker = tattler
    result = run([sys.executable, "-m", "autograder", "grade", str(notebook), "--no-progress"], no_bwrap_path, mode)
    assert_refused(result, "bwrap not found on PATH")
    assert not marker.exists()


def test_grade_names_the_probes_actual_failure(tattler, broken_bwrap_path):
    notebook, marker = tattler
    result = run([sys.executable, "-m", "autograder", "grade", str(notebook), "--no-progress"], broken_bwrap_path)
    assert_refused(result, FAKE_FAILURE)
    assert not marker.exists()


def test_course_autograde_refuses_without_bwrap(tattler, no_bwrap_path):
    notebook, marker = tattler
    course = notebook.parents[3]
    result = run([sys.executable, "-m", "autograder", "course-autograde", "--course", str(course)], no_bwrap_path)
    assert_refused(result, "bwrap not found on PATH")
    assert not marker.exists()


def test_an_unknown_mode_is_refused_too(tattler):
    notebook, marker = tattler
    result = run([sys.executable, "-m", "autograder", "grade", str(notebook)], os.environ["PATH"], "sometimes")
    assert result.returncode != 0
    assert "AUTOGRADER_SANDBOX='sometimes' is not one of auto, required, off" in result.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_hardened_nbgrader_autograde_fails_the_submission_without_running_it(tattler, no_bwrap_path):
    notebook, marker = tattler
    course = notebook.parents[3]
    (course / "source" / "07_optimizers").mkdir(parents=True)
    shutil.copy(ROOT / "source/07_optimizers/optimizers.ipynb", course / "source/07_optimizers/")
    env = {"JUPYTER_CONFIG_PATH": str(ROOT / "autograder"), "AUTOGRADER_COURSE_ROOT": str(course)}
    nbgrader = [sys.executable, "-m", "nbgrader"]
    prepared = run([*nbgrader, "generate_assignment", "07_optimizers", "--force"], no_bwrap_path, cwd=course, **env)
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    result = run([*nbgrader, "autograde", "07_optimizers", "--force"], no_bwrap_path, cwd=course, **env)
    assert_refused(result, "bwrap not found on PATH")
    assert "There was an error processing assignment '07_optimizers' for student 'tattler'" in result.stderr
    assert not marker.exists()
    assert not (course / "autograded" / "tattler" / "07_optimizers" / "optimizers.ipynb").exists()


@pytest.mark.slow
def test_off_is_announced_on_every_run(tmp_path, no_bwrap_path):
    empty = tmp_path / "empty.ipynb"
    empty.write_text("")
    for _ in range(2):
        result = run(
            [sys.executable, "-m", "autograder", "grade", str(empty), "--no-progress", "--jobs", "1"],
            no_bwrap_path,
            "off",
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert sandbox.OFF_WARNING in result.stderr
        assert "the file is empty" in result.stdout


def test_off_is_announced_on_every_check_in_one_process(monkeypatch):
    monkeypatch.setenv("AUTOGRADER_SANDBOX", "off")
    said = []
    assert sandbox.check(announce=said.append) is False
    assert sandbox.check(announce=said.append) is False
    assert said == [sandbox.OFF_WARNING] * 2


def test_run_refuses_instead_of_falling_back(monkeypatch, tmp_path):
    """Defence in depth: even a caller that skipped check() cannot run code unsandboxed."""
    monkeypatch.delenv("AUTOGRADER_SANDBOX", raising=False)
    monkeypatch.setattr(sandbox.policy, "_probe", lambda: "bwrap not found on PATH")
    marker = tmp_path / "ran"
    with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
        sandbox.run([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], tmp_path / "scratch")
    assert not marker.exists()


@pytest.mark.skipif(not sandbox.bwrap_available(), reason="bubblewrap unusable here")
def test_a_venv_reached_through_a_symlink_runs_sandboxed(tmp_path):
    link = tmp_path / "venv-link"
    link.symlink_to(Path(sys.prefix).resolve())
    code = (
        "import sys, pathlib\n"
        "from autograder import sandbox\n"
        "assert sandbox.check()\n"
        "r = sandbox.run([sys.executable, '-c', 'import sys, numpy; print(sys.prefix)'],"
        " pathlib.Path(sys.argv[1]))\n"
        "print(r.sandboxed, r.returncode, r.stdout.strip(), r.stderr.strip())\n"
    )
    result = run([str(link / "bin" / "python"), "-c", code, str(tmp_path / "scratch")], os.environ["PATH"], "required")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split(maxsplit=3) == ["True", "0", str(link)], result.stdout
