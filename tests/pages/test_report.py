"""`make report`: the class report from the gradebook and the grader's metadata, checked in Chromium."""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENT, ROOT, course_env

pytestmark = pytest.mark.slow
SCREENSHOT = ROOT / "artifacts" / "class-report.png"
PAYLOAD = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'


def make_report(course: Path) -> tuple:
    result = subprocess.run(
        ["make", "--no-print-directory", "report", f"COURSE={course}", f"VENV={Path(sys.executable).parent.parent}"],
        cwd=ROOT,
        env=course_env(course),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warn" not in (result.stdout + result.stderr).lower()
    return course / "reports" / f"{ASSIGNMENT}.html", course / "reports" / f"{ASSIGNMENT}.csv"


@pytest.fixture(scope="module")
def report(small_course, tmp_path_factory):
    course = tmp_path_factory.mktemp("report") / "course"
    shutil.copytree(small_course["root"], course)  # the course is shared; make report writes into it
    return make_report(course)


def open_page(browser, html: Path):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(html.as_uri(), wait_until="load")
    return page, requests


def table(page, selector: str) -> list:
    return page.eval_on_selector_all(f"{selector} tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))")


def test_report_shows_scores_checks_misconceptions_and_errors(report, chromium):
    html, _ = report
    page, requests = open_page(chromium, html)
    assert page.title() == f"Class report: {ASSIGNMENT}"
    assert [r for r in requests if not r.startswith(("file:", "data:"))] == []
    images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.alt, i.naturalWidth])")
    assert len(images) == 3 and all(len(alt) > 40 and width > 200 for alt, width in images), images
    summary = page.inner_text("#summary")
    assert "7\nsubmissions" in summary and "6\nautograded" in summary and "1\nwith errors" in summary
    checks = {row[0]: row[1] for row in table(page, "#checks")[1:]}
    from autograder.judge.checks import catalog

    assert {c.id for c in catalog()} <= set(checks) and checks["optimizer-interface"] == "6 / 6"
    assert checks["sgd-memory-dtype"] == "5 / 6"  # bug-state-dtype fails it
    who = {row[0]: row[2] for row in table(page, "#misconceptions")[1:]}
    assert who["nesterov"] == "bug-nesterov" and who["eps-inside-sqrt"] == "bug-eps-inside-sqrt"
    assert who["state-dtype"] == "bug-state-dtype" and who["zero-grad"] == "hostile-deleted-test-cell"
    errors = table(page, "#errors")[1:]
    assert [row[0] for row in errors] == ["broken-corrupt-json"] and "not autograded" in errors[0][1]
    students = {row[0]: row for row in table(page, "#students")[1:]}
    assert students["correct-reference"][1] == "100 / 100" and students["written-answers"][2] == "needs manual grading"
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.close()


def test_csv_has_one_row_per_student(report):
    _, table_path = report
    rows = list(csv.DictReader(table_path.open()))
    assert len(rows) == 7
    by_name = {row["student"]: row for row in rows}
    assert by_name["correct-reference"]["autograded_score"] == "100.0"
    assert by_name["bug-nesterov"]["misconceptions"] == "nesterov"
    assert by_name["written-answers"]["written_max"] == "10.0"
    assert by_name["broken-corrupt-json"]["error"].startswith("not autograded")


def test_hostile_metadata_is_escaped_bounded_and_never_runs(small_course, chromium, tmp_path):
    """Forged grader metadata in an autograded notebook: markup, formulas, wrong types, huge strings."""
    course = tmp_path / "course"
    shutil.copytree(small_course["root"], course, ignore=shutil.ignore_patterns("feedback", "reports"))
    path = course / "autograded" / "bug-nesterov" / ASSIGNMENT / "optimizers.ipynb"
    path.chmod(0o644)
    nb = nbformat.read(path, as_version=4)
    tests = nb.metadata["autograder"]["tests"]
    tests[0].update(id=PAYLOAD, score=0, diagnosis="=HYPERLINK(\"http://example.invalid\")" + "x" * 10_000)
    tests[1].update(score="ten", diagnosis=["not", "a", "string"])
    tests[2].update(diagnosis="unbalanced mathtext $\\frac{$ " + PAYLOAD)
    nbformat.write(nb, path)
    html, table_path = make_report(course)
    page, requests = open_page(chromium, html)
    assert page.title() == f"Class report: {ASSIGNMENT}"
    assert page.eval_on_selector_all("script", "s => s.length") == 0
    assert page.eval_on_selector_all("img:not([src^='data:image/png'])", "i => i.length") == 0
    assert PAYLOAD in page.inner_text("#checks")  # shown as text, not markup
    assert [r for r in requests if not r.startswith(("file:", "data:"))] == []
    page.close()
    assert max(len(line) for line in html.read_text().splitlines()) < 400_000
    row = next(r for r in csv.DictReader(table_path.open()) if r["student"] == "bug-nesterov")
    assert row["misconceptions"].startswith("'=HYPERLINK") and len(row["misconceptions"]) < 400
