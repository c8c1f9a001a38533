"""What a page trusts from a submission (issue 14, finding 6): nobody impersonates the grader, no URL leaves.

Only the grader's own outputs (the score and report HiddenChecks adds) keep the report's
``autograder-*`` classes: HiddenChecks records their digests in the notebook metadata it
owns, and the sanitizer honours exactly those, per grade cell. A student's HTML that copies
the report's markup, or a submission that forges the record, keeps none. URLs are judged as
the WHATWG parser reads them; the slow test asks Chromium's own parser.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import hostile_pages as hp
import html5lib
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from autograder.arrival.notebook import component_cells, grade_id
from autograder.judge.checks import CheckResult
from autograder.pages.render import render_markdown
from autograder.pages.sanitize import SanitizeSubmission, clean_html, clean_markdown, page_digest
from autograder.pipeline import hidden_checks as preprocessors
from autograder.pipeline.hidden_checks import HiddenChecks

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "source" / "07_optimizers" / "optimizers.ipynb"
STUDENT = ROOT / "modules" / "07_optimizers" / "optimizers.ipynb"


def sanitized(nb):
    return SanitizeSubmission().preprocess(copy.deepcopy(nb), {})[0]


def fake_results(cells, components, files=None, module=None):
    """Stands in for the sandboxed probes: every component fails one check (no sandbox needed here)."""
    return {c: [CheckResult(f"{c.lower()}-check", c, 0.0, 5, None, "first difference at step 2")] for c in components}


@pytest.fixture
def autograded(monkeypatch):
    """The released notebook after HiddenChecks, with a forged report printed in every grade cell by the
    student and a forged record of the grader's outputs in the submission's metadata."""
    monkeypatch.setattr(preprocessors, "check_code", fake_results)
    nb = nbformat.read(STUDENT, as_version=4)
    gids = component_cells(nbformat.read(SOURCE, as_version=4))
    forged = new_output("display_data", data={"text/html": hp.FORGED_SCORE})
    for cell in nb.cells:
        if grade_id(cell) in gids:
            cell.outputs = [copy.deepcopy(forged)]
    nb.metadata["autograder"] = {"own_outputs": {gid: [page_digest(hp.FORGED_SCORE)] for gid in gids}}
    checks = HiddenChecks(source_notebook=str(SOURCE))
    nb, _ = checks.preprocess(nb, {"nbgrader": {"assignment": "07_optimizers", "notebook": "optimizers"}})
    return nb, gids


def grade_cells(nb, gids):
    return [cell for cell in nb.cells if grade_id(cell) in gids and cell.cell_type == "code"]


def test_student_html_keeps_no_grader_class():
    assert hp.grader_classes(hp.FORGED_SCORE)  # the payload carries them
    assert hp.grader_classes(clean_html(hp.FORGED_SCORE)) == []
    assert "Score for SGD: 30 / 30" in clean_html(hp.FORGED_SCORE)  # shown, as plain student text
    markdown = clean_markdown(f"Look:\n\n{hp.FORGED_SCORE}\n")
    assert "Score for SGD" in markdown and hp.grader_classes(markdown.replace('class="autograder-sanitized"', "")) == []


def test_the_graders_report_keeps_its_classes_and_the_forged_one_loses_them(autograded):
    nb, gids = autograded
    clean = sanitized(nb)
    cells = grade_cells(clean, gids)
    assert len(cells) == len(gids) >= 3
    for cell in cells:
        score, forged, report = cell.outputs  # HiddenChecks' order: score, student, report
        assert hp.grader_classes(score.data["text/html"]) == ["autograder-score"]
        assert "autograder-report" in hp.grader_classes(report.data["text/html"])
        assert hp.grader_classes(forged.data["text/html"]) == []  # though the submission recorded its digest
        assert "Score for SGD: 30 / 30" in forged.data["text/html"]
    assert sanitized(clean) == clean  # at render time: the same verdicts


def test_a_forged_record_at_render_time_names_no_other_output(autograded):
    """A stored notebook whose outputs a student changed after grading keeps no class on them."""
    nb, gids = autograded
    for cell in grade_cells(nb, gids):
        cell.outputs[0].data["text/html"] = cell.outputs[0].data["text/html"].replace("0 / ", "30 / ")
        cell.outputs.insert(1, new_output("display_data", data=copy.deepcopy(cell.outputs[-1].data)))
    moved = copy.deepcopy(grade_cells(nb, gids)[0].outputs[-1])
    nb.cells.append(new_code_cell("x", outputs=[moved]))  # the genuine report, outside its cell
    clean = sanitized(nb)
    for cell in grade_cells(clean, gids):
        assert hp.grader_classes(cell.outputs[0].data["text/html"]) == []  # altered score: plain
        assert "autograder-report" in hp.grader_classes(cell.outputs[1].data["text/html"])  # a true copy, same cell
    assert hp.grader_classes(clean.cells[-1].outputs[0].data["text/html"]) == []


@pytest.mark.parametrize(
    "record",
    [None, "x", {"own_outputs": "x"}, {"own_outputs": {"test_sgd": "abc"}}, {"own_outputs": {"test_sgd": [1, None]}}],
)
def test_a_malformed_record_means_no_grader_outputs(record):
    cell = new_code_cell(
        "x", metadata={"nbgrader": {"grade": True, "solution": False, "points": 1, "grade_id": "test_sgd"}}
    )
    cell.outputs = [new_output("display_data", data={"text/html": hp.FORGED_SCORE})]
    nb = new_notebook(cells=[cell])
    if record is not None:
        nb.metadata["autograder"] = record
    assert hp.grader_classes(sanitized(nb).cells[0].outputs[0].data["text/html"]) == []


# -- URLs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(hp.OTHER_HOST_URLS))
def test_no_url_names_another_host(name):
    url = hp.OTHER_HOST_URLS[name]
    cleaned = clean_html(hp.url_carriers(url))
    assert "evil.invalid" not in cleaned, cleaned
    source = f"[x](<{url.strip()}>) ![y](<{url.strip()}>)"
    assert [v for v in url_values(render_markdown(clean_markdown(source))) if names_a_host(v)] == []


def names_a_host(url: str) -> bool:
    """WHATWG, against an https page: tabs/newlines go, ends are stripped, "\\" is "/"; "//" starts a host."""
    squeezed = re.sub(r"[\t\n\r]", "", url).strip("\x00- ").replace("\\", "/")
    return squeezed.startswith("//") or bool(re.match(r"https?:/*[^/]", squeezed))


def url_values(page: str) -> list:
    return [
        value
        for element in html5lib.parse(page).iter()
        if isinstance(element.tag, str)
        for attribute, value in element.attrib.items()
        if attribute in ("href", "src")
    ]


@pytest.mark.parametrize("name", sorted(hp.SAME_HOST_URLS))
def test_relative_urls_on_the_same_host_stay(name):
    url = hp.SAME_HOST_URLS[name]
    cleaned = clean_html(f'<a href="{url}">a</a><img src="{url}">')
    assert cleaned.count(f'="{url}"') == 2, cleaned


@pytest.mark.slow
def test_the_browsers_url_parser_finds_no_other_host():
    """Chromium's WHATWG parser is the oracle: unsanitized, every payload reaches evil.invalid; sanitized, none."""
    from test_sanitize import chromium_page

    with chromium_page() as page:
        page.goto("about:blank")
        for name, url in hp.OTHER_HOST_URLS.items():
            raw = set(page.evaluate(hp.HOSTS_PROBE, hp.url_carriers(url)))
            assert "evil.invalid" in raw, name  # the payload does what it says
            cleaned = set(page.evaluate(hp.HOSTS_PROBE, clean_html(hp.url_carriers(url))))
            assert cleaned <= {"grader.invalid"}, (name, cleaned)
        for name, url in hp.SAME_HOST_URLS.items():
            kept = page.evaluate(hp.HOSTS_PROBE, clean_html(hp.url_carriers(url)))
            assert set(kept) == {"grader.invalid"} and len(kept) >= 3, (name, kept)


def test_a_look_alike_report_built_from_inline_styles_loses_its_boxes():
    """Red team: background, border and padding rebuilt feedback.css around a fake '30 / 30' table."""
    from autograder.pages.sanitize import clean_html

    fake = (
        '<table style="border-collapse:collapse;width:100%"><thead><tr>'
        '<th style="padding:4px 10px;border-bottom:2px solid #777;background-color:#f3f3f3">result</th>'
        '</tr></thead><tbody><tr><td style="padding:4px 10px;border:1px solid #ddd;background:#efe;'
        'color:#262">&#10004; pass</td></tr></tbody></table>'
    )
    cleaned = clean_html(fake)
    for box in ("padding", "border-bottom", "border:", "background"):
        assert box not in cleaned, cleaned
    assert "color:#262" in cleaned and "pass" in cleaned  # text and its colour stay: only the boxes go
