"""Rendering a submission costs time linear in its size: highlighting within a budget, plain after.

Pygments' Python lexers are quadratic on some inputs (a cell of ``" \\n" * N`` takes the
IPython lexer 0.5 s at 2 KB and minutes at 128 KB; runs of blank lines cost every line
start a scan to the end of the run), other lexers a fence may name (``systemd``,
``registry``, ...) are slow too, and mistune is quadratic on some markdown (``"[" * N``).
nbgrader renders synchronously, so one such cell hangs the formgrader for everyone.

So pages (feedback, the formgrader's submission view, anything HTMLExporter renders with
this course's config) use the two filters here instead of nbconvert's ``highlight_code``
and ``markdown2html`` (``TemplateExporter.filters``, nbgrader_config.py), and the
sanitizer renders markdown with ``BoundedRenderer``:

* code (a cell or a fenced block) is highlighted only if it is at most ``CODE_CHARS``
  characters and ``CODE_LINES`` lines, and only with Pygments' Python lexer (for the
  ``python``/``ipython`` names) or the text lexer; whatever a fence or the notebook
  metadata names otherwise is shown plain. Plain = escaped, in the same
  ``<div class="highlight"><pre>`` a highlighted block has, so it looks the same uncoloured;
* markdown is parsed only within ``MARKDOWN_CHARS`` / ``MARKDOWN_LINES``; beyond, it is
  shown as escaped text in a ``<pre>``;
* ``strip_files_prefix`` (applied to rendered markdown) rewrites only ``src=``/``href=``
  attributes: nbconvert's second rule, for markdown link syntax left in the HTML, is
  quadratic on a line of ``[`` (a minute for 64 KB), and in rendered HTML such text is
  only ever literal text (code, escaped blocks), which it should not alter anyway.

Within those budgets the worst inputs we know cost about what ordinary code of the same
size costs (measured, see the report of issue 14). A page also has an allowance in all:
code beyond ``PAGE_CODE_CHARS`` (counted in the render's ``resources``) and markdown beyond
``PAGE_MARKDOWN_CHARS`` (counted by the sanitizer, which stores the rest as escaped blocks)
is shown plain, which costs little per character. So a page's cost is linear in its size
with a small constant, and the costly part is bounded.
"""

from __future__ import annotations

import html

from jinja2 import pass_context
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.filters.strings import files_url_pattern
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, TextLexer

CODE_CHARS, CODE_LINES = 10_000, 300  # the course's largest code cell: 3.5 KB, 79 lines
MARKDOWN_CHARS, MARKDOWN_LINES = 10_000, 400  # its largest markdown cell: 1.7 KB, 31 lines
# The names this course's notebooks and fences use. The IPython lexer is Python's plus
# magics (which the course does not use) and ten times slower on blank runs: Python's serves.
PAGE_CODE_CHARS, PAGE_MARKDOWN_CHARS = 100_000, 60_000  # the course notebook: 30 KB, 17 KB
LEXERS = {
    "python": PythonLexer,
    "python3": PythonLexer,
    "py": PythonLexer,
    "ipython": PythonLexer,
    "ipython3": PythonLexer,
    "text": TextLexer,
}


def within(text: str, chars: int, lines: int) -> bool:
    """True if ``text`` fits the budget; counts without splitting (linear, no copies)."""
    return len(text) <= chars and text.count("\n") < lines


class Allowance:
    """Characters a page may still spend on costly rendering; ``take`` says whether ``n`` fit."""

    def __init__(self, chars: int):
        self.left = chars

    def take(self, n: int) -> bool:
        if n > self.left:
            self.left = 0  # in document order: nothing after the first miss
            return False
        self.left -= n
        return True


def plain_code(source: str, language: str = "text") -> str:
    """Escaped code in the markup a highlighted block has, so pages look the same, uncoloured."""
    return f'<div class="highlight hl-{language}"><pre><span></span>{html.escape(source)}\n</pre></div>\n'


def highlight_within(source: str, language: str | None = None, allowance: Allowance | None = None) -> str:
    """Highlighted HTML of ``source`` if it fits the cell budget (and the page's allowance), else plain."""
    name = language if language in LEXERS else "ipython3" if language is None else "text"
    source = source or " "  # nbconvert highlights an empty cell as one space
    if not within(source, CODE_CHARS, CODE_LINES) or (allowance and not allowance.take(len(source))):
        return plain_code(source, name)
    return highlight(source, LEXERS[name](), HtmlFormatter(cssclass=f"highlight hl-{name}"))


@pass_context
def highlight_code(context, source: str, language: str | None = None, metadata=None) -> str:
    """nbconvert's ``highlight_code`` filter, within the budgets and with the course's lexers only.

    ``metadata`` (a cell's) is ignored: nbconvert would let ``magics_language`` pick any lexer.
    The page's allowance lives in this render's ``resources`` (one dict per page).
    """
    resources = context.get("resources")
    if not isinstance(resources, dict):
        return highlight_within(source, language, Allowance(0))
    allowance = resources.setdefault("autograder_code_allowance", Allowance(PAGE_CODE_CHARS))
    return highlight_within(source, language, allowance)


class BoundedRenderer(IPythonRenderer):
    """nbconvert's markdown renderer whose fenced code follows ``highlight_code``'s rules."""

    def block_code(self, code: str, info: str | None = None) -> str:
        words = (info or "").split(None, 1)
        if not words or words[0].startswith("mermaid"):
            return super().block_code(code, info)  # no highlighting (escaped), or mermaid's own block
        lang = words[0].lower()
        if lang not in LEXERS or not within(code, CODE_CHARS, CODE_LINES):
            return plain_code(code.rstrip("\n"))
        return highlight(code, LEXERS[lang](), HtmlFormatter())


def render_markdown(source: str, attachments: dict | None = None, **renderer_options) -> str:
    """Markdown → HTML with nbconvert's grammar and ``BoundedRenderer``; escaped text if over budget."""
    if not within(source, MARKDOWN_CHARS, MARKDOWN_LINES):
        return f"<pre>{html.escape(source)}</pre>"
    renderer = BoundedRenderer(escape=False, attachments=attachments or {}, **renderer_options)
    return MarkdownWithMath(renderer=renderer).render(source)


# A markdown cell the sanitizer stored as one cleaned HTML block (sanitize.py writes it; both read it).
SANITIZED_CLASS = "autograder-sanitized"
BLOCK_START, BLOCK_END = f'<div class="{SANITIZED_CLASS}">', "</div>"


def is_stored_block(source: str) -> bool:
    """Shaped like what the sanitizer stores: one line, in the wrapper (cheap: no parsing)."""
    return "\n" not in source and "\r" not in source and source.startswith(BLOCK_START) and source.endswith(BLOCK_END)


@pass_context
def markdown2html(context, source: str) -> str:
    """nbconvert's ``markdown2html`` filter (cell attachments from the template's context), bounded.

    A cell the sanitizer stored as one HTML block (over the budget, or cleaned) is a single
    line that mistune takes whole, without inline parsing: linear, so it is rendered as is.
    """
    cell = context.get("cell", {}) or {}
    if is_stored_block(source):
        return MarkdownWithMath(renderer=IPythonRenderer(escape=False)).render(source)
    return render_markdown(source, cell.get("attachments") or {})


def strip_files_prefix(text: str) -> str:
    """nbconvert's ``strip_files_prefix`` for HTML: ``src="files/x"`` → ``src="x"``, in linear time."""
    return files_url_pattern.sub(r"\1=\2", text)
