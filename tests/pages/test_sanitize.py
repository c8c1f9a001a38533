"""Nothing active from a submission reaches a page (issue 9, item 5).

Fast tests: ``SanitizeSubmission`` on hostile notebooks, rendered by nbconvert's own HTML
templates (which insert output HTML and markdown verbatim), judged by a static oracle;
each payload is also shown to be active without the sanitizer, so the oracle can fail.
Slow tests: the real hardened ``nbgrader autograde`` (sandbox required) and
``generate_feedback``, and the real formgrader, with the pages opened in Chromium.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import hostile_pages as hp
import nbformat
import pytest
from conftest import course_env
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from nbformat.warnings import DuplicateCellId
from support import CHROMIUM, CHROMIUM_ARGS

from autograder.judge.checks import CheckResult
from autograder.pages.feedback import report_data
from autograder.pages.sanitize import KEPT_MIME_TYPES, TOKEN, SanitizeSubmission, clean_html, clean_markdown, own_html
from content.m07_optimizers.misconceptions import EXPLANATIONS


def sanitized(nb):
    return SanitizeSubmission().preprocess(copy.deepcopy(nb), {})[0]


@functools.cache
def exporter(template: str) -> HTMLExporter:
    return HTMLExporter(template_name=template)


def render(nb, template: str = "classic") -> str:
    """nbconvert's own HTML, with none of this project's configuration (so no sanitizer)."""
    return exporter(template).from_notebook_node(nb)[0]


def one_cell_notebook(cell):
    nb = new_notebook(cells=[cell])
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def html_output_cell(data: dict, metadata: dict | None = None):
    cell = new_code_cell("x")
    cell.outputs = [new_output("display_data", data=data, metadata=metadata or {})]
    return cell


OUTPUT_CASES = {
    **{f"html:{k}": ({"text/html": v}, {}) for k, v in hp.HTML_OUTPUTS.items()},
    "svg": ({"image/svg+xml": hp.SVG_OUTPUT}, {}),
    "markdown-output": ({"text/markdown": hp.MARKDOWN_OUTPUT}, {}),
    "application/javascript": ({"application/javascript": hp.ACT}, {}),
    "widget-view": ({"application/vnd.jupyter.widget-view+json": {"model_id": "PWNED"}}, {}),
    "isolated-html": ({"text/html": f"<b>i</b><script>{hp.ACT}</script>"}, {"text/html": {"isolated": True}}),
}

# A mutation-XSS payload aimed at sanitizers that re-parse, and a widget view the classic
# template cannot show: both must still come out inert, but are not active in nbconvert itself.
# nbconvert shows SVG through <img> (or bleach): inert there, but other renderers inline it.
NOT_ACTIVE_IN_NBCONVERT = {"html:mxss-math-style", "widget-view", "svg"}


# -- the oracle sees every payload when nothing is sanitized -------------------------------------


@pytest.mark.parametrize("template", ["classic", "lab"])
def test_the_oracle_finds_nothing_on_a_clean_page(template):
    nb = one_cell_notebook(new_markdown_cell(hp.GOOD_MARKDOWN))
    nb.cells.append(html_output_cell({"text/html": "<b>fine</b>", "text/plain": "fine"}))
    assert hp.active_content(render(nb, template)) == []


@pytest.mark.parametrize("name", sorted(OUTPUT_CASES))
def test_each_output_payload_is_active_unsanitized_and_inert_sanitized(name):
    data, metadata = OUTPUT_CASES[name]
    nb = one_cell_notebook(html_output_cell(data, metadata))
    if name not in NOT_ACTIVE_IN_NBCONVERT:
        assert hp.active_content(render(nb)), f"{name}: not active even unsanitized"
    assert hp.active_content(render(sanitized(nb))) == [], name


def test_svg_output_is_cleaned_for_renderers_that_inline_it():
    cell = html_output_cell({"image/svg+xml": hp.SVG_OUTPUT})
    assert hp.active_content(hp.SVG_OUTPUT)  # inlined into a page as it is, it runs
    out = sanitized(one_cell_notebook(cell)).cells[0].outputs[0]
    assert hp.active_content(out.data["image/svg+xml"]) == []
    assert "foreignobject" not in out.data["image/svg+xml"].lower()


def test_base_tag_is_removed():
    cell = html_output_cell({"text/html": hp.HTML_OUTPUTS["base-href"]})
    assert "<base" in render(one_cell_notebook(cell))
    assert "<base" not in render(sanitized(one_cell_notebook(cell)))


@pytest.mark.parametrize("name", sorted(hp.MARKDOWN_CELLS))
def test_each_markdown_payload_is_active_unsanitized_and_inert_sanitized(name):
    nb = one_cell_notebook(new_markdown_cell(hp.MARKDOWN_CELLS[name]))
    if name != "md-autolink":  # mistune already refuses that one
        assert hp.active_content(render(nb)), f"{name}: not active even unsanitized"
    for template in ("classic", "lab"):
        assert hp.active_content(render(sanitized(nb), template)) == [], (name, template)


def test_whole_hostile_notebook_renders_inert_in_nbconverts_templates():
    nb = hp.hostile_notebook()
    assert len(hp.active_content(render(nb))) > 20
    clean = sanitized(nb)
    for template in ("classic", "lab"):
        assert hp.active_content(render(clean, template)) == [], template


def test_only_allowlisted_mime_types_survive():
    clean = sanitized(hp.hostile_notebook())
    seen = {
        mime for cell in clean.cells if cell.cell_type == "code" for out in cell.outputs for mime in out.get("data", {})
    }
    assert seen <= KEPT_MIME_TYPES
    assert "application/javascript" not in seen and not any(m.startswith("application/vnd") for m in seen)
    notes = [out.text for out in clean.cells[0].outputs if out.output_type == "stream"]
    assert any("application/javascript" in note for note in notes)  # said, not silently dropped
    for cell in clean.cells:
        for out in cell.get("outputs", []):
            assert "isolated" not in str(out.get("metadata", {}))


def test_metadata_that_renderers_read_is_dropped():
    clean = sanitized(hp.hostile_notebook())
    assert "widgets" not in clean.metadata and "title" not in clean.metadata
    for cell in clean.cells:
        assert "jupyter" not in cell.metadata
    assert hp.active_content(render(clean, "lab")) == []


def test_attachments_keep_only_raster_images():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    cell = new_markdown_cell("![a](attachment:a.png) ![b](attachment:b.svg) ![c](attachment:c.html)")
    cell.attachments = {
        "a.png": {"image/png": png},
        "b.svg": {"image/svg+xml": base64.b64encode(hp.SVG_ATTACHMENT.encode()).decode()},
        "c.html": {"text/html": base64.b64encode(hp.HTML_ATTACHMENT.encode()).decode()},
    }
    clean = sanitized(one_cell_notebook(cell)).cells[0]
    assert clean.attachments == {"a.png": {"image/png": png}}
    page = render(one_cell_notebook(clean))
    assert f"data:image/png;base64,{png}" in page
    assert "svg+xml" not in page and "text/html;base64" not in page


def test_raw_cells_are_cleaned():
    clean = sanitized(hp.hostile_notebook())
    raw = next(c for c in clean.cells if c.cell_type == "raw")
    assert hp.active_content(raw.source) == [] and "PWNED" not in raw.source


# -- what must survive ---------------------------------------------------------------------------


def test_ordinary_markdown_is_left_byte_for_byte():
    for text in (
        hp.GOOD_MARKDOWN,
        "plain *text* with `a < b` and $x_{t+1} = x_t - \\eta g$",
        "- [ ] task\n- item with <https://example.org>\n\n> quote\n\n1. one\n2. two\n",
    ):
        assert clean_markdown(text) == text


def test_markdown_with_raw_html_still_reads_well_and_cleaning_is_idempotent():
    text = (
        "Answer: <b>bold</b>, $a<b$ and <sub>sub</sub>.\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\n"
        f"<img src=x onerror=\"{hp.ACT}\">"
    )
    once = clean_markdown(text)
    assert clean_markdown(once) == once
    page = render(one_cell_notebook(new_markdown_cell(once)))
    for fragment in ("<b>bold</b>", "$a&lt;b$", "<sub>sub</sub>", "<table>", "<td>1</td>"):
        assert fragment in page, fragment
    assert hp.active_content(page) == []


def test_report_html_keeps_its_structure():
    report = report_data(
        "Adam",
        [
            CheckResult("adam-bias", "Adam", 5, 5, None, "ok"),
            CheckResult(
                "adam-eps", "Adam", 0, 5, "eps-inside-sqrt", "First difference at <step 2>", ["eps-inside-sqrt"]
            ),
        ],
        5,
        10,
        EXPLANATIONS,
    )
    cleaned = own_html(report["text/html"])  # the grader's own output keeps the report's classes
    for fragment in (
        "<div class=\"autograder-report\">",
        "<table class=\"autograder-checks\">",
        "<th>check</th>",
        "<code>adam-eps</code>",
        "<b>Hidden checks for Adam: 5 / 10 points</b>",
        "eps-inside-sqrt",
        "First difference at &lt;step 2&gt;",
        "<b>What to fix:</b>",
    ):
        assert fragment in cleaned, fragment
    extra = own_html(
        "<details class='autograder-why'><summary>Why</summary><p><em>e</em> <strong>s</strong>"
        "</p><ul><li><span class='autograder-fix'>fix</span></li></ul></details>"
        "<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>b</td></tr></tbody></table>"
    )
    for fragment in (
        "<details class=\"autograder-why\">",
        "<summary>Why</summary>",
        "<em>e</em>",
        "<strong>s</strong>",
        "<span class=\"autograder-fix\">",
        "<thead>",
        "<tbody>",
    ):
        assert fragment in extra, fragment


def test_page_classes_and_layout_styles_are_not_borrowed():
    cleaned = clean_html(
        '<div class="modal fixed-top autograder-x" style="position:fixed;color:red;'
        'background-image:url(https://t.example/x)" id="notebook">x</div>'
    )
    assert "class=" not in cleaned and "modal" not in cleaned and "position" not in cleaned
    assert "url(" not in cleaned and 'id="notebook"' not in cleaned


def test_harmless_outputs_pass_unchanged():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><defs><path id="m" d="M0 0L1 1"/>'
        '</defs><g style="fill:#ff0000;stroke:#000000"><use href="#m" x="1" y="2"/>'
        '<circle cx="5" cy="5" r="4"/></g></svg>'
    )
    cell = new_code_cell("x")
    cell.outputs = [
        new_output("stream", name="stdout", text="<not html>\n"),
        new_output("execute_result", data={"text/plain": "10.0"}, execution_count=9),
        new_output(
            "display_data", data={"image/png": png, "text/plain": "<Figure>"}, metadata={"image/png": {"width": 300}}
        ),
        new_output("display_data", data={"image/svg+xml": svg}),
        new_output("display_data", data={"text/latex": "$x^2$"}),
        new_output("error", ename="ValueError", evalue="<bad>", traceback=["ValueError: <bad>"]),
    ]
    clean = sanitized(one_cell_notebook(cell)).cells[0].outputs
    assert clean[0].text == "<not html>\n" and clean[1].data == {"text/plain": "10.0"}
    assert clean[1].execution_count == 9
    assert clean[2].data["image/png"] == png and clean[2].metadata == {"image/png": {"width": 300}}
    for fragment in ('<use href="#m"', "<circle", "fill:#ff0000", "<path id=\"user-m\""):
        assert fragment in clean[3].data["image/svg+xml"], fragment
    assert clean[4].data["text/latex"] == "$x^2$"
    assert clean[5].ename == "ValueError" and clean[5].traceback == ["ValueError: <bad>"]


def test_sanitizing_twice_changes_nothing():
    once = sanitized(hp.hostile_notebook())
    assert sanitized(once) == once


# -- registration --------------------------------------------------------------------------------


def test_registered_in_autograde_feedback_and_every_html_export(tmp_path):
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades, SaveAutoGrades

    from autograder.course import course_config
    from autograder.pipeline.execute import SandboxedExecute
    from autograder.pipeline.hidden_checks import HiddenChecks

    config = course_config(tmp_path)
    steps = list(config.Autograde.autograde_preprocessors)
    assert steps.index(SandboxedExecute) < steps.index(SanitizeSubmission)
    assert steps.index(HiddenChecks) < steps.index(SanitizeSubmission) < steps.index(SaveAutoGrades)
    from autograder.pages.feedback import ReportCSS

    assert list(config.GenerateFeedback.preprocessors) == [
        GetGrades,
        SanitizeSubmission,
        CSSHTMLHeaderPreprocessor,
        ReportCSS,
    ]
    assert SanitizeSubmission in config.HTMLExporter.preprocessors  # the formgrader's exporter reads this
    assert SanitizeSubmission().enabled


def test_nbformat_still_validates_a_sanitized_notebook():
    nbformat.validate(sanitized(hp.hostile_notebook()))


# -- metadata that the templates interpolate into class / id attributes ----------------------------


@pytest.mark.parametrize("template", ["classic", "lab"])
@pytest.mark.parametrize("name", sorted(hp.TAG_PAYLOADS))
def test_cell_tags_cannot_add_page_classes(name, template):
    cell = new_code_cell("x = 1")
    cell.metadata["tags"] = [hp.TAG_PAYLOADS[name], *hp.LEGIT_TAGS]
    nb = one_cell_notebook(cell)
    if name not in ("too-long", "quote"):  # those two carry no page class: dropped all the same
        assert hp.page_classes(render(nb, template))  # the payload works without the sanitizer
    clean = sanitized(nb)
    assert clean.cells[0].metadata["tags"] == hp.LEGIT_TAGS  # the others are kept, in order
    page = render(clean, template)
    assert hp.page_classes(page) == set() and hp.active_content(page) == []
    assert all(f"celltag_{tag}" in page for tag in hp.LEGIT_TAGS)


def test_the_overlay_submission_loses_its_classes_and_keeps_its_grade_cells():
    nb = one_cell_notebook(new_code_cell("assert True"))
    nb.cells[0].metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "sgd_hidden",
        "points": 1,
        "solution": False,
        "locked": True,
        "schema_version": 3,
    }
    hp.overlay_submission(nb, with_outputs=True)
    assert hp.page_classes(render(nb)) == {"hidden", "dropdown-backdrop"}
    clean = sanitized(nb)
    assert [cell.metadata["tags"] for cell in clean.cells] == [[], []]
    assert clean.cells[0].metadata["nbgrader"]["grade_id"] == "sgd_hidden"
    assert hp.page_classes(render(clean)) == set()


@pytest.mark.parametrize("template", ["classic", "lab"])
@pytest.mark.parametrize("name", sorted(hp.LANGUAGE_PAYLOADS))
def test_language_info_cannot_add_page_classes(name, template):
    nb = new_notebook(cells=[new_code_cell("x = 1")])
    nb.metadata["language_info"] = dict(hp.LANGUAGE_PAYLOADS[name])
    if name != "codemirror-space":  # no template reads codemirror_mode today: clamped anyway
        with pytest.warns(UserWarning, match="No lexer found"):  # pygments knows no such lexer
            unsanitized = render(nb, template)
        # nbconvert escapes quotes in that class, but not spaces: the page gains a class
        assert name == "name-quote" or hp.page_classes(unsanitized)
    clean = sanitized(nb)
    info = clean.metadata.get("language_info", {})
    assert all(TOKEN.fullmatch(info[k]) for k in ("name", "pygments_lexer", "codemirror_mode") if k in info)
    page = render(clean, template)
    assert hp.page_classes(page) == set() and hp.active_content(page) == []
    nbformat.validate(clean)


def test_ordinary_language_info_and_kernelspec_are_kept():
    nb = new_notebook(cells=[new_code_cell("x = 1")])
    nb.metadata["language_info"] = copy.deepcopy(hp.LEGIT_LANGUAGE_INFO)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    clean = sanitized(nb)
    assert clean.metadata["language_info"] == hp.LEGIT_LANGUAGE_INFO
    assert clean.metadata["kernelspec"] == nb.metadata["kernelspec"]


def test_kernelspec_fields_are_tokens_or_dropped():
    nb = new_notebook(cells=[new_code_cell("x = 1")])
    nb.metadata["kernelspec"] = {"name": "python3 hidden", "display_name": "<b>x</b>", "language": "python"}
    assert "kernelspec" not in sanitized(nb).metadata
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "py thon", "env": {}}
    assert sanitized(nb).metadata["kernelspec"] == {"name": "python3", "display_name": "Python 3"}


@pytest.mark.parametrize("template", ["classic", "lab"])
def test_cell_ids_are_valid_unique_tokens(template):
    nb = one_cell_notebook(new_code_cell("x = 1"))
    nb.cells = [new_code_cell("x = 1") for _ in range(len(hp.CELL_ID_PAYLOADS) + 3)]
    for cell, bad in zip(nb.cells, hp.CELL_ID_PAYLOADS):  # set afterwards: nbformat's constructors validate
        cell.id = bad
    nb.cells[-3].id, nb.cells[-2].id, nb.cells[-1].id = "keep-me", "twice", "twice"
    with pytest.raises(nbformat.ValidationError), pytest.warns(DuplicateCellId):
        render(nb, template)  # without the sanitizer the page is not rendered
    clean = sanitized(nb)
    ids = [cell.id for cell in clean.cells]
    assert len(set(ids)) == len(ids) and all(TOKEN.fullmatch(i) for i in ids)
    assert ids[-3:-1] == ["keep-me", "twice"]  # valid ids are untouched, the repeat is renamed
    assert hp.bad_ids(render(clean, template)) == []
    nbformat.validate(clean)
    assert [cell.id for cell in sanitized(clean).cells] == ids


def test_invalid_grade_id_makes_the_cell_plain_and_execution_count_is_an_int():
    nb = one_cell_notebook(new_code_cell("x = 1"))
    cell = nb.cells[0]
    cell.execution_count = "1]: <b>fake</b>"  # set afterwards: nbformat's constructors validate
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": 'x" onmouseover="1', "points": 100}
    clean = sanitized(nb).cells[0]
    assert "nbgrader" not in clean.metadata and clean.execution_count is None


# == slow: the real nbgrader autograde and generate_feedback, the real formgrader, Chromium =======

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "07_optimizers"
GRADED = "hostile-pages"  # hostile cells go through autograde: the stored notebook must be clean
RENDER_ONLY = "render-only"  # hostile outputs written into autograded/ afterwards: rendering must clean
# The finding's cell: never executed, yet highlighting it took nbconvert minutes (issue 14).
WHITESPACE_CELL = " \n" * 64 * 1024
FORGED_CELL = f"from IPython.display import HTML, display\ndisplay(HTML({hp.FORGED_SCORE!r}))"
COMMENT = f'Nice work. <img src=x onerror="{hp.ACT}"> [more](javascript:{hp.ACT.replace(" ", "")})'


def nbgrader(course: Path, *args):
    env = course_env(course)  # the Makefile's environment, the course moved to COURSE
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args, "--force"],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def autograded(course: Path, student: str) -> Path:
    return course / "autograded" / student / ASSIGNMENT / "optimizers.ipynb"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    from tools.sample_class import SOURCE, STUDENT, fill

    course = tmp_path_factory.mktemp("course")
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(SOURCE, course / "source" / ASSIGNMENT / "optimizers.ipynb")
    answered = fill(nbformat.read(STUDENT, as_version=4), nbformat.read(SOURCE, as_version=4), {})
    hostile = copy.deepcopy(answered)
    hostile.cells += [*hp.hostile_cells(with_outputs=False), new_code_cell(FORGED_CELL)]
    hp.add_hostile_metadata(hostile)
    hp.overlay_submission(hostile, with_outputs=False)
    for student, nb in ((GRADED, hostile), (RENDER_ONLY, answered)):
        (course / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
        nbformat.write(nb, course / "submitted" / student / ASSIGNMENT / "optimizers.ipynb")
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    nbgrader(course, "autograde", ASSIGNMENT)
    stored = nbformat.read(autograded(course, RENDER_ONLY), as_version=4)
    stored.cells += hp.hostile_cells(with_outputs=True)  # as if autograded/ were reached another way
    forged = new_code_cell(FORGED_CELL, outputs=[new_output("display_data", data={"text/html": hp.FORGED_SCORE})])
    stored.cells += [forged, new_code_cell(WHITESPACE_CELL)]
    hp.add_hostile_metadata(stored)
    hp.overlay_submission(stored, with_outputs=True)
    nbformat.write(stored, autograded(course, RENDER_ONLY))
    # A grader's comment is markdown in the feedback too (added by GetGrades at feedback time),
    # perhaps pasted from a student's message.
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.find_comment("sgd", "optimizers", ASSIGNMENT, GRADED).manual_comment = COMMENT
        gb.db.commit()
    nbgrader(course, "generate_feedback", ASSIGNMENT)
    return course


@contextlib.contextmanager
def chromium_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def visit(page, url: str) -> dict:
    """Load a page, let every payload have its chance (errors, loads, timers), report what ran."""
    page.goto(url, wait_until="load")
    page.wait_for_timeout(1500)
    return {
        "title": page.title(),
        "pwned": page.evaluate("() => window.__pwned === undefined ? null : 1"),
        "grader": page.evaluate(hp.GRADER_CLASS_PROBE),
        "active": page.evaluate(hp.DOM_PROBE, "#notebook-container *"),
        "text": page.inner_text("body"),  # rendered text: display:none is not in it
        "fixed": page.evaluate(hp.FIXED_PROBE, "#notebook-container *"),
    }


@pytest.mark.slow
def test_autograded_notebook_is_stored_clean_and_scores_are_untouched(course):
    nb = nbformat.read(autograded(course, GRADED), as_version=4)
    html_outputs = [
        out.data["text/html"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "text/html" in out.get("data", {})
    ]
    assert len(html_outputs) >= len(hp.HTML_OUTPUTS)  # the student's cell ran, in the sandbox
    assert any("outputs done" in out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert hp.GOOD_MARKDOWN in [cell.source for cell in nb.cells]  # the written answer, byte for byte
    for template in ("classic", "lab"):  # stock nbconvert, no sanitizer of ours
        assert hp.active_content(render(nb, template)) == [], template
    scores = nb.metadata["autograder"]["components"]
    assert sum(c["score"] for c in scores.values()) == 100  # hostile pages cost no points


@pytest.mark.slow
def test_the_browser_oracle_sees_an_unsanitized_page(course, tmp_path):
    """The check below can fail: the same hostile notebook rendered without sanitizing sets the title."""
    raw = tmp_path / "raw.html"
    raw.write_text(render(hp.hostile_notebook()))
    with chromium_page() as page:
        seen = visit(page, raw.as_uri())
    assert "PWNED" in seen["title"] and seen["pwned"] == 1 and seen["active"]


@pytest.mark.slow
@pytest.mark.parametrize("student", [GRADED, RENDER_ONLY])
def test_feedback_page_runs_nothing_from_the_submission(course, student):
    page_path = course / "feedback" / student / ASSIGNMENT / "optimizers.html"
    with chromium_page() as page:
        seen = visit(page, page_path.as_uri())
    assert seen["title"] == "optimizers" and seen["pwned"] is None, seen["title"]
    assert seen["active"] == [] and seen["fixed"] == []  # nothing laid over the page
    assert "Hidden checks for SGD" in seen["text"]  # the page did render, the report is visible
    assert hp.FAKE_REPORT in seen["text"]  # the student's output is shown, as text
    assert hp.FORGED in seen["text"] and not [g for g in seen["grader"] if hp.FORGED in g]  # not as the grader
    assert any("autograder-score" in g and "Score for SGD" in g for g in seen["grader"])  # the real score is
    if student == RENDER_ONLY:  # the finding's cell, plain and whole
        assert f"<pre><span></span>{WHITESPACE_CELL}\n</pre>" in page_path.read_text()
    if student == GRADED:
        assert "Why eps sits outside the root" in seen["text"] and "Nice work." in seen["text"]


class Formgrader:
    """A Jupyter server with nbgrader's formgrader on loopback, for ``course``; stopped by its own group."""

    def __init__(self, course: Path, home: Path):
        from support import free_port

        self.port, self.token = free_port(), secrets.token_hex(16)
        env = {
            **os.environ,
            "JUPYTER_CONFIG_PATH": str(ROOT / "autograder"),
            "AUTOGRADER_COURSE_ROOT": str(course),
            "AUTOGRADER_SANDBOX": "required",
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
            env[name] = str(home / name.lower())
        self.log_path = home / "server.log"
        home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("w") as log:  # the server keeps its own copy of the fd
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jupyter",
                    "server",
                    "--no-browser",
                    "--ip=127.0.0.1",
                    f"--port={self.port}",
                    f"--IdentityProvider.token={self.token}",
                    f"--ServerApp.root_dir={course}",
                    # on for this server only: `make env` switches the formgrader off in the venv (binder/postBuild)
                    "--ServerApp.jpserver_extensions=nbgrader.server_extensions.formgrader=True",
                    *(["--allow-root"] if os.geteuid() == 0 else []),
                ],
                cwd=course,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(self.url("/api/status"), timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise AssertionError(f"the formgrader did not start:\n{self.log_path.read_text()[-3000:]}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}?token={self.token}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.mark.slow
def test_formgrader_submission_view_runs_nothing_from_the_submission(course, tmp_path):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        ids = {s: gb.find_submission_notebook("optimizers", ASSIGNMENT, s).id for s in (GRADED, RENDER_ONLY)}
    server = Formgrader(course, tmp_path / "home")
    try:
        with chromium_page() as page:
            for student, submission in ids.items():
                seen = visit(page, server.url(f"/formgrader/submissions/{submission}/"))
                assert seen["title"] == "optimizers" and seen["pwned"] is None, (student, seen["title"])
                assert seen["active"] == [], student
                assert "Hidden checks for SGD" in seen["text"], student  # the submission is shown
                assert hp.FORGED in seen["text"] and not [g for g in seen["grader"] if hp.FORGED in g], student
    finally:
        server.stop()


@pytest.mark.slow
def test_formgrader_serves_another_student_while_the_whitespace_cell_renders(course, tmp_path):
    """Issue 14's done-when: nbgrader renders synchronously, so the slow page must not be slow."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        ids = {s: gb.find_submission_notebook("optimizers", ASSIGNMENT, s).id for s in (GRADED, RENDER_ONLY)}
    server = Formgrader(course, tmp_path / "home")
    try:
        with chromium_page() as page:
            page.goto(server.url("/formgrader"), wait_until="load")
            page.evaluate(
                "url => { window.slow = fetch(url).then(r => r.text()); }",
                server.url(f"/formgrader/submissions/{ids[RENDER_ONLY]}/"),
            )
            page.wait_for_timeout(500)  # let that request reach the server first
            other = page.context.browser.new_page()  # a second user, its own context
            other.set_default_timeout(120_000)  # hang guard: was > 300 s before the budget
            seen = visit(other, server.url(f"/formgrader/submissions/{ids[GRADED]}/"))
            assert seen["title"] == "optimizers" and "Hidden checks for SGD" in seen["text"]
            slow = page.evaluate("() => window.slow")
            assert f"<pre><span></span>{WHITESPACE_CELL}\n</pre>" in slow  # shown plain, whole
    finally:
        server.stop()
