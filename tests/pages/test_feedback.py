"""The grade cell's score and report (autograder/feedback.py), fast and in-process."""

import re

from nbformat.v4 import new_code_cell, new_output
from nbgrader.utils import determine_grade

from autograder.judge.checks import CheckResult
from autograder.pages.feedback import report_data, score_data
from content.m07_optimizers.misconceptions import CATALOG, EXPLANATIONS, SLUGS, read_explanations

ALLOWED = {
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "code",
    "b",
    "strong",
    "em",
    "p",
    "div",
    "span",
    "ul",
    "li",
    "details",
    "summary",
}
ROWS = [
    CheckResult(
        "adamw-decoupled-decay",
        "AdamW",
        0.0,
        12,
        "eps-inside-sqrt",
        "failed: <script>x</script>",
        ["eps-inside-sqrt", "lr-cached"],
        {"eps-inside-sqrt": "Adam"},
    ),
    CheckResult("adamw-resume", "AdamW", 6, 6, None, "passed: stepping on"),
    CheckResult("adamw-validation", "AdamW", 0.0, 4, None, "failed: x. Look at __init__"),
]


def test_every_slug_has_its_explanation_and_the_table_is_the_one_source():
    assert set(EXPLANATIONS) == set(SLUGS)
    assert read_explanations(CATALOG.read_text()) == EXPLANATIONS
    row = "| `made-up` | SGD | does this | fix that |\n"
    assert read_explanations(row)["made-up"].fix == "fix that"


def test_report_shows_each_named_misconception_with_its_text_verbatim():
    data = report_data("AdamW", ROWS, 6, 30, EXPLANATIONS)
    for slug in ("eps-inside-sqrt", "lr-cached"):
        assert f"What the code does: {EXPLANATIONS[slug].does}" in data["text/plain"]
        assert f"What to fix: {EXPLANATIONS[slug].fix}" in data["text/plain"]
    assert "eps-inside-sqrt (inherited from Adam)" in data["text/plain"]
    page = re.sub(r"<[^>]+>", "", data["text/html"])
    assert "What to fix: sqrt(v_hat) + eps" in page and "inherited from Adam" in page


def test_report_html_uses_only_plain_tags_and_escapes_messages():
    html = report_data("AdamW", ROWS, 6, 30, EXPLANATIONS)["text/html"]
    assert set(re.findall(r"<(\w+)", html)) <= ALLOWED
    assert not re.search(r"<\w+[^>]*\s(?!class=)\w+=", html)  # class is the only attribute
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<thead><tr><th>result</th><th>check</th><th>points</th><th>misconception</th><th>details</th>" in html


def test_the_score_is_labelled_for_people_and_still_read_by_nbgrader():
    data = score_data("SGD", 13.0, 30)
    assert "Score for SGD: 13 / 30 points" in data["text/html"]
    cell = new_code_cell(
        "test_sgd()", metadata={"nbgrader": {"grade": True, "solution": False, "points": 30, "grade_id": "test_sgd"}}
    )
    cell.outputs = [
        new_output("execute_result", data=data, execution_count=1),
        new_output("error", ename="AssertionError", evalue="visible test", traceback=[]),
    ]
    assert determine_grade(cell) == (13.0, 30.0)
