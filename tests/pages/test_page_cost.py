"""Rendering a submission costs time linear in its size (issue 14, finding 3).

Structure only, no timings: a cell over the budget is rendered plain (escaped, in the
highlight markup, no token spans), a fence naming a foreign lexer is not lexed, a cell
within the budget is still highlighted, a page's allowance ends highlighting, long outputs
are cut. Each page is rendered through this course's HTMLExporter configuration (what
feedback and the formgrader use), and where it matters also through stock nbconvert, to
show the test sees the difference. The hang guard (a real formgrader in Chromium, with the
whitespace cell of the finding) is in test_sanitize.py.
"""

from __future__ import annotations

import copy
import functools
import re

import html5lib
import pytest
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from autograder.pages.render import (
    CODE_CHARS,
    CODE_LINES,
    MARKDOWN_CHARS,
    PAGE_CODE_CHARS,
    PAGE_MARKDOWN_CHARS,
    is_stored_block,
)
from autograder.pages.sanitize import OUTPUT_CHARS, SanitizeSubmission

TOKEN_SPAN = re.compile(r'<span class="[a-z]{1,3}[0-9]?">')  # a Pygments token


@functools.cache
def course_exporter() -> HTMLExporter:
    import tempfile
    from pathlib import Path

    from autograder.course import course_config

    return HTMLExporter(config=course_config(Path(tempfile.mkdtemp())), template_name="classic")


def notebook(*cells):
    nb = new_notebook(cells=list(cells))
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    return nb


def course_page(nb) -> str:
    return course_exporter().from_notebook_node(copy.deepcopy(nb))[0]


def stock_page(nb) -> str:
    return HTMLExporter(template_name="classic").from_notebook_node(copy.deepcopy(nb))[0]


def code_blocks(page: str) -> list:
    """The inner HTML of every ``div.highlight`` on the page (code cells and fences), in order."""
    return re.findall(r'<div class="[^"]*highlight[^"]*"><pre>(.*?)</pre></div>', page, flags=re.S)


def is_plain(block: str) -> bool:
    return TOKEN_SPAN.search(block) is None


def test_the_course_config_replaces_the_costly_filters():
    from autograder.pages.render import highlight_code, markdown2html, strip_files_prefix

    filters = course_exporter().filters
    assert {name: filters[name] for name in ("highlight_code", "markdown2html", "strip_files_prefix")} == {
        "highlight_code": "autograder.pages.render.highlight_code",
        "markdown2html": "autograder.pages.render.markdown2html",
        "strip_files_prefix": "autograder.pages.render.strip_files_prefix",
    }
    environment = course_exporter().environment
    assert environment.filters["markdown2html"] is markdown2html
    assert environment.filters["strip_files_prefix"] is strip_files_prefix
    assert highlight_code  # registered per page by HTMLExporter.from_notebook_node (below)


@pytest.mark.parametrize(
    "source",
    [
        "x = 1\n" * (CODE_LINES + 1),  # too many lines
        "y = " + "a + " * (CODE_CHARS // 4) + "a\n",  # too many characters, one line
    ],
    ids=["lines", "chars"],
)
def test_a_code_cell_over_the_budget_is_shown_plain(source):
    nb = notebook(new_code_cell(source))
    assert not is_plain(code_blocks(stock_page(nb))[0])  # nbconvert highlights it (the costly part)
    block = code_blocks(course_page(nb))[0]
    assert is_plain(block) and block.startswith("<span></span>x = 1\n" if source[0] == "x" else "<span></span>y = a")


def test_the_whitespace_cell_of_the_finding_is_shown_plain_and_whole():
    source = " \n" * 4096  # 8 KB: 12 s through nbconvert's IPython lexer
    block = code_blocks(course_page(notebook(new_code_cell(source))))[0]
    assert is_plain(block) and block == f"<span></span>{source}\n"


def test_a_cell_within_the_budget_is_still_highlighted():
    line = "opt.step()  # one update\n"
    source = line * min(CODE_LINES - 1, CODE_CHARS // len(line))
    block = code_blocks(course_page(notebook(new_code_cell(source))))[0]
    assert '<span class="n">opt</span>' in block and not is_plain(block)


@pytest.mark.parametrize("lexer", ["systemd", "registry", "basemake", "bash", "Javascript extra words"])
def test_a_fence_naming_another_lexer_is_shown_plain(lexer):
    nb = notebook(new_markdown_cell(f"Config:\n\n```{lexer}\n[Unit]\nDescription=x\n$x = 1;\n```\n"))
    assert not is_plain(code_blocks(stock_page(nb))[0])  # nbconvert lexes it with that lexer
    block = code_blocks(course_page(nb))[0]
    assert is_plain(block) and "[Unit]\nDescription=x\n$x = 1;" in block


def test_a_python_fence_is_highlighted_within_the_budget_and_plain_beyond():
    small = "```python\nopt.step()\n```\n"
    big = "```python\n" + "opt.step()\n" * (CODE_LINES + 1) + "```\n"
    blocks = code_blocks(course_page(notebook(new_markdown_cell(small), new_markdown_cell(big))))
    assert not is_plain(blocks[0]) and is_plain(blocks[1]) and "opt.step()" in blocks[1]


@pytest.mark.parametrize(
    "source",
    [  # each over a cell's budget, within a page's
        "```python\n x\n```\n\n" * 1000,  # a thousand fences
        "[" * 30_000,  # quadratic in mistune and strip_files_prefix
        "*_" * 12_000,
        "$" + "\\frac{a}{b}" * 2_000 + "$",  # long LaTeX
        "a\n" * 1000,  # many short lines
    ],
    ids=["fences", "brackets", "emphasis", "latex", "lines"],
)
def test_markdown_over_the_budget_is_stored_and_shown_as_escaped_text(source):
    nb = SanitizeSubmission().preprocess(notebook(new_markdown_cell(source)), {})[0]
    stored = nb.cells[0].source
    assert is_stored_block(stored) and "<pre>" in stored
    page = course_page(nb)
    assert code_blocks(page) == []  # no fence was highlighted
    text = "".join(html5lib.parse(page, namespaceHTMLElements=False).find(".//body").itertext())
    assert source[:2000] in text  # shown as the text it is


def test_a_page_stops_highlighting_when_its_allowance_is_spent():
    line = "opt.step()  # one update, and then the next one\n"  # cells within both cell budgets
    cell = line * (CODE_CHARS // len(line))
    count = PAGE_CODE_CHARS // len(cell) + 3
    blocks = code_blocks(course_page(notebook(*[new_code_cell(cell) for _ in range(count)])))
    highlighted = [not is_plain(b) for b in blocks]
    assert len(blocks) == count and highlighted == sorted(highlighted, reverse=True)  # plain only at the end
    assert sum(highlighted) == PAGE_CODE_CHARS // len(cell)
    fresh = code_blocks(course_page(notebook(new_code_cell(cell))))  # the allowance is per page, not per exporter
    assert not is_plain(fresh[0])


def test_a_page_parses_markdown_only_up_to_its_allowance():
    answer = "An *answer* with `code`, in one paragraph. " * (MARKDOWN_CHARS // 50) + "\n"
    count = PAGE_MARKDOWN_CHARS // len(answer) + 2
    nb = SanitizeSubmission().preprocess(notebook(*[new_markdown_cell(answer) for _ in range(count)]), {})[0]
    kept = [cell.source == answer for cell in nb.cells]
    assert kept == sorted(kept, reverse=True) and sum(kept) == PAGE_MARKDOWN_CHARS // len(answer)
    assert all(is_stored_block(cell.source) for cell in nb.cells[sum(kept) :])


def test_long_outputs_are_cut_with_a_note_and_cutting_twice_changes_nothing():
    ansi = "\x1b[31mred\x1b[0m \x1b[1;32mgreen\x1b[0m\n" * (OUTPUT_CHARS // 10)
    cell = new_code_cell("x")
    cell.outputs = [
        new_output("stream", name="stdout", text=ansi),
        new_output("error", ename="E", evalue="v", traceback=["\x1b[31m" + "t" * 999] * 1000),
        new_output(
            "display_data",
            data={"text/latex": "$" + "x^2+" * OUTPUT_CHARS + "$", "text/plain": "p" * (OUTPUT_CHARS + 1)},
        ),
    ]
    once = SanitizeSubmission().preprocess(notebook(cell), {})[0]
    stream, error, latex = once.cells[0].outputs
    assert stream.text.startswith(ansi[:OUTPUT_CHARS]) and "the autograder cut the rest" in stream.text
    assert len(stream.text) < OUTPUT_CHARS + 200
    assert sum(map(len, error.traceback)) < OUTPUT_CHARS + 200 and "the autograder cut" in error.traceback[-1]
    assert all(len(value) < OUTPUT_CHARS + 200 for value in latex.data.values())
    assert SanitizeSubmission().preprocess(copy.deepcopy(once), {})[0] == once
    short = new_code_cell("x")
    short.outputs = [new_output("stream", name="stdout", text=ansi[:5000])]
    assert SanitizeSubmission().preprocess(notebook(short), {})[0].cells[0].outputs[0].text == ansi[:5000]


def test_files_prefix_is_stripped_from_attributes_and_text_is_left_alone():
    nb = notebook(new_markdown_cell("![plot](files/p.png)\n\n```text\n[data](files/d.csv)\n```\n"))
    page = course_page(nb)
    assert 'src="p.png"' in page and "[data](files/d.csv)" in page  # nbconvert's other rule rewrote the code
