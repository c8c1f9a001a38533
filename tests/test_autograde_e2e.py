"""The sample class through the real, hardened nbgrader autograde: every expected grade, exactly.

Runs ``python -m autograder grade --json --jobs 2`` (nbgrader's own autograde in scratch
courses) with the sandbox required, and checks that no attack had an effect.
"""
import hashlib
import html as html_lib
import re
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from tools.sample_class import NETWORK_PORT

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def tree_digest(*paths) -> str:
    digest = hashlib.sha256()
    for base in paths:
        for path in sorted(Path(base).rglob("*")) if Path(base).is_dir() else [Path(base)] * Path(base).exists():
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


class Listener:
    """A loopback TCP server: any connection from a submission means the sandbox leaked."""

    def __init__(self, port: int):
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.accepted, self.running = 0, True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()
            except OSError:
                pass

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


def grade(paths, *extra):
    env = {**os.environ, "AUTOGRADER_SANDBOX": "required"}
    result = subprocess.run([sys.executable, "-m", "autograder", "grade", *map(str, paths), "--json",
                             "--no-progress", *extra], cwd=ROOT, capture_output=True, text=True, env=env,
                            timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def graded(sample_class):
    course, expected = sample_class                         # tests/conftest.py, shared with other modules
    paths = sorted((course / "submitted").glob("*/07_optimizers/optimizers.ipynb"))
    # What the attacks aim at: instructor notebooks, the reference build and data, the gradebook.
    protected = [ROOT / "source", ROOT / "tinytorch", ROOT / "content" / "m07_optimizers" / "reference", ROOT / "gradebook.db"]
    before = tree_digest(*protected)
    listener = Listener(NETWORK_PORT)
    try:
        entries = grade(paths, "--jobs", "2", "--feedback-dir", str(course / "feedback"))
    finally:
        listener.close()
    return {"course": course, "expected": expected, "paths": paths, "entries": entries,
            "connections": listener.accepted, "unchanged": tree_digest(*protected) == before}


def name_of(entry) -> str:
    return Path(entry["submission"]).parts[-3]


def test_sample_class_is_big_enough(graded):
    names = {name_of(e) for e in graded["entries"]}
    assert len(names) >= 30
    assert {n for n in names if n.startswith("bug-")} == {f"bug-{s}" for s in __import__(
        "m07_optimizers.misconceptions", fromlist=["SLUGS"]).SLUGS}


def test_every_component_score_and_diagnosis_is_as_expected(graded):
    mismatches = []
    for entry in graded["entries"]:
        expected = graded["expected"][name_of(entry)]
        assert (entry["error"] is not None) == expected["error"], (name_of(entry), entry["error"])
        for component, want in expected["components"].items():
            got = entry["components"][component]["score"]
            diagnoses = sorted({t["diagnosis"] for t in entry["tests"]
                                if t["component"] == component and t["diagnosis"]})
            if got != want["score"] or diagnoses != want["diagnoses"]:
                mismatches.append((name_of(entry), component, got, want["score"], diagnoses, want["diagnoses"]))
    assert mismatches == []


def test_json_contract(graded):
    for entry in graded["entries"]:
        assert set(entry) == {"submission", "score", "max_score", "error", "components", "tests", "written_max_score"}
        assert entry["max_score"] == 100 and entry["written_max_score"] == 10
        assert set(entry["components"]) == {"Optimizer", "SGD", "Adam", "AdamW"}
        assert entry["score"] == pytest.approx(sum(c["score"] for c in entry["components"].values()))
        for test in entry["tests"]:
            assert set(test) == {"id", "component", "score", "max_score", "diagnosis", "message", "diagnoses",
                                 "inherited_from"}


def test_catalogued_bugs_never_get_full_marks_and_correct_code_never_loses_points(graded):
    for entry in graded["entries"]:
        name = name_of(entry)
        if name.startswith("correct-"):
            assert entry["score"] == 100, (name, entry["tests"])
        if name.startswith("bug-"):
            assert entry["score"] < 100 and name[4:] in {t["diagnosis"] for t in entry["tests"]}


def test_student_styles_grade_right_and_name_every_bug_in_every_table_it_costs(graded):
    styles = [e for e in graded["entries"] if name_of(e).startswith("style-")]
    assert len(styles) == 6
    for entry in styles:
        want = graded["expected"][name_of(entry)]
        for component in ("Optimizer", "SGD", "Adam", "AdamW"):
            lost = [t for t in entry["tests"] if t["component"] == component and t["score"] < t["max_score"]]
            bugs = set(want["bugs"].get(component, []))
            assert bool(lost) == bool(bugs), (name_of(entry), component, lost)
            assert bugs <= {slug for t in lost for slug in t["diagnoses"]}, (name_of(entry), component)
            if component == "AdamW" and lost:
                assert {s for t in lost for s in t["inherited_from"]} == set(want["inherited"])


def test_pytorch_ordering_is_reported(graded):
    entry = next(e for e in graded["entries"] if name_of(e) == "correct-pytorch-adamw-order")
    assert any("PyTorch's ordering" in t["message"] for t in entry["tests"])


def test_broken_files_get_a_clear_error_and_the_batch_goes_on(graded):
    errors = {name_of(e): e["error"] for e in graded["entries"] if e["error"]}
    assert set(errors) == {"broken-empty-file", "broken-corrupt-json", "broken-json-not-a-notebook"}
    assert "empty" in errors["broken-empty-file"]
    assert "JSON" in errors["broken-corrupt-json"]
    assert "not a Jupyter notebook" in errors["broken-json-not-a-notebook"]


def test_no_attack_reached_the_network_the_files_or_outlived_grading(graded):
    assert graded["connections"] == 0
    assert graded["unchanged"], "grading changed source/, tinytorch/, content/m07_optimizers/reference/ or gradebook.db"
    assert not (ROOT / "autograder" / "PWNED").exists()
    leftovers = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
                 if p.info["cmdline"] and p.info["cmdline"][:2] == ["sleep", "617"]]
    assert leftovers == []


def test_feedback_shows_verdicts_but_no_hidden_tests(graded):
    feedback = sorted((graded["course"] / "feedback").glob("*.html"))
    assert len(feedback) == len([e for e in graded["entries"] if not e["error"]])
    source_secret = "assert_component"
    for page in feedback:
        html = page.read_text()
        assert source_secret not in html and "BEGIN HIDDEN TESTS" not in html
        assert "Hidden checks for SGD" in html
    nesterov = next(p for p in feedback if p.name.startswith("bug-nesterov"))
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", nesterov.read_text()))   # code is syntax-highlighted
    assert "class SGD(Optimizer)" in text                 # the student's code
    sgd = graded["expected"]["bug-nesterov"]["components"]["SGD"]["score"]
    assert f"Hidden checks for SGD: {sgd:g} / 30" in text
    assert "nesterov" in text and "First difference at" in text   # the verdict, its diagnosis and where
    assert "What to fix:" in text and "Score for SGD:" in text      # the explanation and the labelled score


def test_parallel_grading_gives_the_same_results_as_serial(graded):
    subset = [p for p in graded["paths"] if p.parts[-3] in (
        "correct-reference", "bug-nesterov", "bug-eps-inside-sqrt", "hostile-os-exit-adamw", "broken-corrupt-json")]
    serial = grade(subset, "--jobs", "1")
    parallel = {e["submission"]: e for e in graded["entries"]}
    for entry in serial:
        assert entry == parallel[entry["submission"]]
