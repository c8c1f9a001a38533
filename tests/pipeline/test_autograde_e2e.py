"""The sample class through the real, hardened nbgrader autograde: every expected grade, exactly.

Runs ``python -m autograder grade --json --jobs 2`` (nbgrader's own autograde in scratch
courses) with the sandbox required, and checks that no attack had an effect.
"""

import html as html_lib
import re
from pathlib import Path

import psutil
import pytest
from support import grade_json as grade

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def graded(graded_class):
    return graded_class  # tests/conftest.py: the sample class graded once per session, shared


def name_of(entry) -> str:
    return Path(entry["submission"]).parts[-3]


def test_sample_class_is_big_enough(graded):
    names = {name_of(e) for e in graded["entries"]}
    assert len(names) >= 30
    assert {n for n in names if n.startswith("bug-")} == {
        f"bug-{s}" for s in __import__("content.m07_optimizers.misconceptions", fromlist=["SLUGS"]).SLUGS
    }


def test_every_component_score_and_diagnosis_is_as_expected(graded):
    mismatches = []
    for entry in graded["entries"]:
        expected = graded["expected"][name_of(entry)]
        assert (entry["error"] is not None) == expected["error"], (name_of(entry), entry["error"])
        for component, want in expected["components"].items():
            got = entry["components"][component]["score"]
            diagnoses = sorted(
                {t["diagnosis"] for t in entry["tests"] if t["component"] == component and t["diagnosis"]}
            )
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
            assert set(test) == {
                "id",
                "component",
                "score",
                "max_score",
                "diagnosis",
                "message",
                "diagnoses",
                "inherited_from",
            }


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


@pytest.mark.alone  # any live `sleep 617` counts, so no other test may be grading the class now
def test_no_attack_reached_the_network_the_files_or_outlived_grading(graded):
    assert graded["connections"] == 0
    assert graded["unchanged"], "grading changed source/, tinytorch/, content/m07_optimizers/reference/ or gradebook.db"
    assert not (ROOT / "autograder" / "PWNED").exists()
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and p.info["cmdline"][:2] == ["sleep", "617"]
    ]
    assert leftovers == []


def test_feedback_shows_verdicts_but_no_hidden_tests(graded):
    feedback = sorted(graded["feedback"].glob("*.html"))
    assert len(feedback) == len([e for e in graded["entries"] if not e["error"]])
    source_secret = "assert_component"
    for page in feedback:
        html = page.read_text()
        assert source_secret not in html and "BEGIN HIDDEN TESTS" not in html
        assert "Hidden checks for SGD" in html
    nesterov = next(p for p in feedback if p.name.startswith("bug-nesterov"))
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", nesterov.read_text()))  # code is syntax-highlighted
    assert "class SGD(Optimizer)" in text  # the student's code
    sgd = graded["expected"]["bug-nesterov"]["components"]["SGD"]["score"]
    assert f"Hidden checks for SGD: {sgd:g} / 30" in text
    assert "nesterov" in text and "First difference at" in text  # the verdict, its diagnosis and where
    assert "What to fix:" in text and "Score for SGD:" in text  # the explanation and the labelled score


def test_parallel_grading_gives_the_same_results_as_serial(graded):
    subset = [
        p
        for p in graded["paths"]
        if p.parts[-3]
        in ("correct-reference", "bug-nesterov", "bug-eps-inside-sqrt", "hostile-os-exit-adamw", "broken-corrupt-json")
    ]
    serial = grade(subset, "--jobs", "1")
    parallel = {e["submission"]: e for e in graded["entries"]}
    for entry in serial:
        assert entry == parallel[entry["submission"]]
