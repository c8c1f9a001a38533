"""Markdown a student wrote, made inert: left byte for byte when it holds nothing active, else
rendered with nbconvert's own renderer, cleaned, and stored as one HTML block that reads the same."""

from __future__ import annotations

import html
import re

from nbconvert.filters.markdown_mistune import InvalidNotebook, MarkdownWithMath

from .clean_html import RASTER_TYPES, clean_html, safe_url
from .render import (
    BLOCK_END,
    BLOCK_START,
    MARKDOWN_CHARS,
    MARKDOWN_LINES,
    Allowance,
    is_stored_block,
    render_markdown,
    within,
)

# -- markdown ---------------------------------------------------------------------------------

_PARSER = MarkdownWithMath(renderer=None)  # nbconvert's own grammar (math, tables, ...), as an AST


def _needs_cleaning(tokens: list, attachments: dict) -> bool:
    for token in tokens:
        kind, attrs = token.get("type"), token.get("attrs") or {}
        if kind in ("block_html", "inline_html"):
            return True
        if kind == "block_code" and str(attrs.get("info") or "").strip().lower().startswith("mermaid"):
            return True  # nbconvert writes mermaid code into the page unescaped
        if kind in ("link", "image"):
            url = str(attrs.get("url", ""))
            if kind == "image" and url.startswith("attachment:"):
                if not RASTER_TYPES & set(attachments.get(url[len("attachment:") :], {})):
                    return True
            elif not safe_url(url):
                return True
        if _needs_cleaning(token.get("children") or [], attachments):
            return True
    return False


def _one_line(fragment: str) -> str:
    return fragment.replace("\r", "").replace("\n", "&#10;")


def _html_block(fragment: str) -> str:
    """Cleaned HTML as one markdown HTML block: a single ``<div>`` line, newlines as ``&#10;``.

    mistune takes such a line whole as raw HTML, so nothing inside is parsed as markdown again.
    The wrapper's class is the sanitizer's, added after cleaning (student HTML keeps none).
    """
    return f"{BLOCK_START}{_one_line(clean_html(fragment))}{BLOCK_END}"


def _is_one_clean_block(source: str) -> bool:
    if not is_stored_block(source):
        return False
    inner = source[len(BLOCK_START) : -len(BLOCK_END)]
    tokens = _PARSER.parse(source)[0]
    return (
        [t["type"] for t in tokens] == ["block_html"]
        and tokens[0]["raw"].strip() == source
        and _one_line(clean_html(inner)) == inner
    )  # a balanced, clean fragment: no stray </div>


def clean_markdown(source: str, attachments: dict | None = None, allowance: Allowance | None = None) -> str:
    """Markdown that renders to nothing active through nbconvert's markdown renderer.

    Ordinary markdown (headings, lists, code, $math$, tables, http(s) links) is returned
    unchanged, and so is a cell this function wrote before. Otherwise the cell is rendered
    with nbconvert's renderer, cleaned with nh3 and returned as one HTML block, which renders
    the same; should even that not re-parse as that block, the source is shown as escaped text.
    Beyond the size budget (per cell, and the page's ``allowance``) it is escaped text too.
    """
    attachments = {
        name: {m: v for m, v in (data or {}).items() if m in RASTER_TYPES} for name, data in (attachments or {}).items()
    }
    source = str(source)
    if _is_one_clean_block(source):
        return source
    if not within(source, MARKDOWN_CHARS, MARKDOWN_LINES) or (allowance and not allowance.take(len(source))):
        return _html_block(f"<pre>{html.escape(source)}</pre>")
    if not _needs_cleaning(_PARSER.parse(source)[0], attachments):
        return source
    # Attachments that are not raster images are gone; referring to one must not fail the render.
    renderable = {
        **{m.group(1): {"image/png": ""} for m in re.finditer(r"attachment:([^\s)\"'>]+)", source)},
        **{name: data for name, data in attachments.items() if data},
    }
    try:
        rendered = render_markdown(source, renderable, exclude_anchor_links=True)
        block = _html_block(rendered)
    except (InvalidNotebook, ValueError, RecursionError):
        block = ""
    if block and _is_one_clean_block(block):
        return block
    return _html_block(f"<pre>{html.escape(source)}</pre>")
