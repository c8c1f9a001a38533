"""``make demo``'s grading step with and without bubblewrap (python -m tools.demo on a small class).

The demo grades the sample class as a course of its own: its gradebook, autograded/ and
feedback/ sit in the class's folder, and it refuses any folder that is not a sample class.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import sandbox

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
# Two benign cases, one file that is not a notebook, and an attack that writes into the checkout.
CASES = ("correct-reference", "bug-betas-swapped", "broken-empty-file", "hostile-write-gradebook")


@pytest.fixture
def small_class(sample_class, tmp_path):
    source, expected = sample_class
    for name in CASES:
        shutil.copytree(source / "submitted" / name, tmp_path / "submitted" / name)
    (tmp_path / "expected.json").write_text(json.dumps({n: expected[n] for n in CASES}))
    return tmp_path


def test_every_sample_case_says_whether_it_is_an_attack(sample_class):
    """The demo without bubblewrap picks cases by this flag, so every block of the class must set it."""
    _, expected = sample_class
    flags = {name: case.get("attack") for name, case in expected.items()}
    assert all(isinstance(flag, bool) for flag in flags.values()), [n for n, f in flags.items() if f is None]
    assert {n for n, f in flags.items() if f} == {n for n in flags if n.startswith("hostile-")}


def demo(course: Path, path_env: str):
    env = {**os.environ, "PATH": path_env}
    env.pop("AUTOGRADER_SANDBOX", None)  # a newcomer's shell
    return subprocess.run(
        [sys.executable, "-m", "tools.demo", "--course", str(course)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def graded_names(stdout: str) -> set:
    return {line.split("/submitted/")[1].split("/")[0] for line in stdout.splitlines() if "/submitted/" in line}


def assert_graded_in_its_own_course(course: Path, names: set):
    """The demo's gradebook, autograded notebooks and feedback pages are the class folder's own,
    with the scores expected.json gives (so no attack raised one in that gradebook)."""
    from nbgrader.api import Gradebook

    expected = json.loads((course / "expected.json").read_text())
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s.student_id: s.code_score for s in gb.assignment_submissions("07_optimizers")}
    assert set(scores) == names  # a file that is no notebook is recorded, and not graded
    for name in names:
        assert scores[name] == pytest.approx(sum(c["score"] for c in expected[name]["components"].values())), name
    graded = {name for name in names if not expected[name]["error"]}
    assert (
        {p.name for p in (course / "autograded").iterdir()}
        == {p.name for p in (course / "feedback").iterdir()}
        == graded
    )


def test_without_bwrap_the_demo_grades_only_benign_notebooks_unsandboxed_and_says_so(small_class, no_bwrap_path):
    result = demo(small_class, no_bwrap_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert graded_names(result.stdout) == {"correct-reference", "bug-betas-swapped", "broken-empty-file"}
    for said in (
        "bwrap not found on PATH",
        "not attacks (skipping 1)",
        "AUTOGRADER_SANDBOX=off",
        "install bubblewrap (apt-get install bubblewrap)",
        sandbox.OFF_WARNING,
    ):
        assert said in result.stderr, said
    assert not (ROOT / "autograder" / "PWNED").exists()
    assert "100/100" in next(line for line in result.stdout.splitlines() if "correct-reference" in line)
    assert_graded_in_its_own_course(small_class, graded_names(result.stdout))
    assert sorted(p.name for p in (small_class / "attacks-not-graded").iterdir()) == ["hostile-write-gradebook"]


@pytest.mark.skipif(not sandbox.bwrap_available(), reason="bubblewrap unusable here")
def test_with_bwrap_the_demo_grades_the_whole_class_sandboxed(small_class):
    result = demo(small_class, os.environ["PATH"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert graded_names(result.stdout) == set(CASES)
    assert "AUTOGRADER_SANDBOX=off" not in result.stderr
    assert not (ROOT / "autograder" / "PWNED").exists()
    assert_graded_in_its_own_course(small_class, set(CASES))


def test_the_demo_refuses_a_folder_that_is_not_a_sample_class(tmp_path):
    """Neither the demo nor the sample class writes into a course: the repository, or submissions without expected.json."""
    (tmp_path / "submitted" / "alice").mkdir(parents=True)
    for command in (
        ["tools.demo", "--course", str(ROOT)],
        ["tools.demo", "--course", str(tmp_path)],
        ["tools.sample_class", str(ROOT)],
        ["tools.sample_class", str(tmp_path)],
    ):
        result = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode != 0 and "sample class" in result.stderr, (command, result.stderr)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["alice", "submitted"]
