"""The feedback page in Chromium: scores labelled, tables readable, every named misconception explained.

One notebook with three bugs (SGD's nesterov, Adam's eps-inside-sqrt that AdamW inherits,
and Adam's lr-cached) goes through the real pipeline (``python -m autograder grade
--feedback-dir``, sandbox required); the page is opened in headless Chromium and saved
as ``artifacts/feedback.png``.
"""

import json
import os
import subprocess
import sys

import nbformat
import pytest
from support import CHROMIUM, CHROMIUM_ARGS, ROOT

from content.m07_optimizers.misconceptions import EXPLANATIONS
from tools import corpus
from tools.sample_class import SOURCE, STUDENT

pytestmark = pytest.mark.slow
SCREENSHOT = ROOT / "artifacts" / "feedback.png"
NAMED = ("nesterov", "eps-inside-sqrt", "lr-cached")


@pytest.fixture(scope="module")
def feedback(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feedback")
    cells, added = corpus.style_a(sgd="nesterov")
    both = next(e for e in corpus.entries() if e.name == "bug-a-adam-eps-inside-sqrt+lr-cached")
    entry = corpus.Entry("student", dict(cells, adam=both.cells["adam"]), added)
    student, source = nbformat.read(STUDENT, as_version=4), nbformat.read(SOURCE, as_version=4)
    path = tmp / "submitted" / "student" / "07_optimizers" / "optimizers.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(corpus.notebook(entry, student, source), path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "autograder",
            "grade",
            str(path),
            "--json",
            "--no-progress",
            "--feedback-dir",
            str(tmp / "feedback"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "AUTOGRADER_SANDBOX": "required"},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [graded] = json.loads(result.stdout)
    [page] = sorted((tmp / "feedback").glob("*.html"))
    return graded, page


@pytest.fixture(scope="module")
def browser_page(feedback):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route(
            "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
        )  # the page must not need the network
        page.goto(feedback[1].as_uri(), wait_until="load")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        yield page
        browser.close()


def test_the_grading_names_the_three_bugs(feedback):
    graded, _ = feedback
    named = {(t["component"], slug) for t in graded["tests"] for slug in t["diagnoses"]}
    assert {
        ("SGD", "nesterov"),
        ("Adam", "eps-inside-sqrt"),
        ("Adam", "lr-cached"),
        ("AdamW", "eps-inside-sqrt"),
    } <= named
    assert any(t["inherited_from"] == {"eps-inside-sqrt": "Adam"} for t in graded["tests"] if t["component"] == "AdamW")


def test_every_named_misconception_is_explained_on_the_page(browser_page):
    text = browser_page.inner_text("body")
    for slug in NAMED:
        block = browser_page.locator(".autograder-misconception", has_text=slug).first
        assert block.is_visible()
        shown = block.inner_text()
        for part in (EXPLANATIONS[slug].does, EXPLANATIONS[slug].fix):
            assert part.replace("`", "") in shown, (slug, part)
        assert "What the code does:" in shown and "What to fix:" in shown
    assert "inherited from Adam" in text


def test_scores_are_labelled_and_come_before_the_students_output_and_the_table(browser_page, feedback):
    graded, _ = feedback
    text = browser_page.inner_text("body")
    for component in ("Optimizer", "SGD", "Adam", "AdamW"):
        score = graded["components"][component]["score"]
        label = f"Score for {component}: {score:g} / {graded['components'][component]['max_score']:g} points"
        assert browser_page.get_by_text(label).first.is_visible()
        table = text.index(f"Hidden checks for {component}:")
        assert text.index(label) < table
    score = text.index("Score for Optimizer")  # the cell's own code (which prints the line) is above
    assert score < text.index("Optimizer: all visible tests pass", score) < text.index("Hidden checks for Optimizer:")


def test_header_cells_are_separated_and_padded(browser_page):
    tables = browser_page.locator("table.autograder-checks")
    assert tables.count() == 4
    for n in range(tables.count()):
        headers = tables.nth(n).locator("thead th")
        assert [headers.nth(i).inner_text().strip() for i in range(headers.count())] == [
            "result",
            "check",
            "points",
            "misconception",
            "details",
        ]
        boxes = [headers.nth(i).bounding_box() for i in range(headers.count())]
        assert all(b["width"] > 20 for b in boxes)
        assert all(a["x"] + a["width"] <= b["x"] + 0.5 for a, b in zip(boxes, boxes[1:]))  # side by side
        padding = headers.first.evaluate(
            "e => parseFloat(getComputedStyle(e).paddingLeft) + parseFloat(getComputedStyle(e).paddingRight)"
        )
        assert padding >= 8
        text_width = headers.nth(1).evaluate(
            "e => { const r = document.createRange(); r.selectNodeContents(e); return r.getBoundingClientRect().width }"
        )
        assert boxes[1]["width"] >= text_width + 8  # room around the header text


def test_screenshot_saved(browser_page):
    assert SCREENSHOT.stat().st_size > 10_000
