"""The variant corpus (tools/corpus.py): no false pass, no false fail, every bug named where it costs points.

Every entry is graded the way ``run_hidden_checks`` grades it (the same cells from
``graded_code``, the same probe code, the same judge); the whole corpus runs
in-process for speed, and a sample of it runs sandboxed through ``run_hidden_checks``
to show both paths agree.
"""

import warnings

import nbformat
import pytest

from autograder.arrival.notebook import graded_code
from autograder.judge import checks
from tools import corpus, reference
from tools.sample_class import SOURCE, STUDENT

ENTRIES = corpus.entries()
IN_PROCESS = [e for e in ENTRIES if not e.sandboxed_only]
SANDBOXED = tuple(e.name for e in ENTRIES if e.sandboxed_only) + (
    "correct-b",
    "correct-a-own-adamw",
    "bug-b-adam-none-grad-not-skipped",
    "bug-b-adam-state-dtype",
    "bug-a-adam-eps-inside-sqrt",
    "bug-b-own-adamw-step-count-per-param",
    "bug-b-zero-grad",
    "bug-b-adam-eps-inside-sqrt+lr-cached",
    "correct-magic",
    "correct-edited-given-imports",
    "correct-stray-grade-id",
)


@pytest.fixture(scope="module")
def notebooks():
    return nbformat.read(STUDENT, as_version=4), nbformat.read(SOURCE, as_version=4)


def grade_in_process(entry, notebooks) -> dict:
    student, source = notebooks
    cells = graded_code(source, corpus.notebook(entry, student, source))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # some bugs divide by zero
        return {
            c: checks.judge_component(c, reference.run_cells(cells, c), reference.load()) for c in checks.COMPONENTS
        }


def problems(entry, results: dict) -> list:
    """Everything wrong with how ``results`` grade ``entry``; [] when graded right."""
    out = []
    for component, rows in results.items():
        lost = [r for r in rows if r.score < r.max_score]
        if component in entry.scores:  # a fault no slug names: its exact score is the claim
            if sum(r.score for r in rows) != entry.scores[component]:
                out.append(
                    f"{component} scored {sum(r.score for r in rows)}, expected {entry.scores[component]}: "
                    f"{[(r.id, r.message[:160]) for r in lost]}"
                )
            continue
        want = entry.bugs.get(component, set())
        if want and not lost:
            out.append(f"false pass: {component} has {sorted(want)} but lost nothing")
        if not want and lost:
            out.append(f"false fail: {component} lost {[(r.id, r.message[:160]) for r in lost]}")
        named = {slug for r in lost for slug in r.diagnoses}
        if lost and not want <= named:
            out.append(f"unnamed in {component}'s table: {sorted(want - named)}")
        inherited = {slug for r in lost for slug in r.inherited_from}
        if component == "AdamW" and lost and inherited != set(entry.inherited):
            out.append(f"AdamW marks {sorted(inherited)} inherited, expected {sorted(entry.inherited)}")
    return out


def test_corpus_is_big_and_covers_every_slug_in_two_styles():
    from content.m07_optimizers.misconceptions import SLUGS

    assert len(ENTRIES) >= 60
    for slug in SLUGS:
        styles = {e.name.split("-")[1] for e in ENTRIES if any(slug in s for s in e.bugs.values())}
        assert len(styles) >= 2, slug
    assert sum(e.name.startswith("correct-") for e in ENTRIES) >= 4


@pytest.mark.parametrize("entry", IN_PROCESS, ids=lambda e: e.name)
def test_corpus_entry_is_graded_right(entry, notebooks):
    assert problems(entry, grade_in_process(entry, notebooks)) == []


@pytest.mark.parametrize("name", SANDBOXED)
def test_sandboxed_grading_agrees(name, notebooks, monkeypatch):
    from autograder.judge.hidden import run_hidden_checks

    monkeypatch.setenv("AUTOGRADER_SANDBOX", "required")
    entry = next(e for e in ENTRIES if e.name == name)
    student, source = notebooks
    # faults hang for the per-check cap: a short one keeps the test fast, the production one is the same code
    sandboxed = run_hidden_checks(
        source, corpus.notebook(entry, student, source), **({"check_seconds": 1.0} if entry.sandboxed_only else {})
    )
    assert problems(entry, sandboxed) == []
    if entry.sandboxed_only:  # it hangs, exits or writes files: the trusted process must not run it
        return
    in_process = grade_in_process(entry, notebooks)
    assert {c: [(r.id, r.score, r.diagnoses) for r in rows] for c, rows in sandboxed.items()} == {
        c: [(r.id, r.score, r.diagnoses) for r in rows] for c, rows in in_process.items()
    }
