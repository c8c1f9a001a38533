"""Nothing active from a submission reaches a page: sanitize what feedback and the formgrader render.

Everything a notebook carries is hostile data once a student has touched it: outputs,
markdown cells, attachments, raw cells, metadata. nbgrader renders the autograded
notebook into the feedback page (``generate_feedback``) and into the formgrader's
submission view, which an instructor opens in the Jupyter server's origin; both
templates insert output HTML and rendered markdown verbatim. ``SanitizeSubmission``
rewrites the notebook so that whatever template renders it gets inert HTML:

* outputs keep only the MIME types in ``KEPT_MIME_TYPES``; HTML, SVG and markdown are
  cleaned by nh3 (the ammonia sanitizer) with the allowlist below, everything else
  (``application/javascript``, widget views, PDFs, unknown types) is dropped with a note;
* a markdown cell whose source has no raw HTML, no mermaid block and only safe link
  URLs is left byte for byte; any other is rendered with nbconvert's own markdown
  renderer, cleaned, and stored as one HTML block (so it reads the same);
* attachments keep only raster images; raw cells are cleaned; cell and notebook
  metadata keep only the keys nbgrader and this grader use.

It runs in ``nbgrader autograde`` (so the stored notebook is clean) and again when
feedback or the formgrader renders it (see nbgrader_config.py).
"""

from __future__ import annotations

import re

from nbformat.corpus.words import generate_corpus_id
from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List

from .clean_html import RASTER_TYPES, clean_html, own_html, own_outputs, page_digest
from .clean_markdown import clean_markdown
from .render import (
    PAGE_MARKDOWN_CHARS,
    Allowance,
)

CLEANED_TYPES = frozenset({"text/html", "image/svg+xml", "text/markdown"})
# text/latex is printed escaped by the templates (then typeset by MathJax); text/plain is escaped.
KEPT_MIME_TYPES = frozenset({"text/plain", "text/latex"}) | RASTER_TYPES | CLEANED_TYPES
KEPT_CELL_METADATA = frozenset({"nbgrader", "tags", "deletable", "editable", "trusted", "alt"})  # alt: figure text
KEPT_NOTEBOOK_METADATA = frozenset({"kernelspec", "language_info", "nbgrader", "autograder"})

# Text a page escapes (streams, tracebacks, text/plain, text/latex) is cut beyond this many
# characters: nbconvert's ANSI colouring and the page's HTML parser cost ~7 us a character.
OUTPUT_CHARS = 100_000
# The templates put some metadata into attributes unescaped or space-split: tags become
# class="celltag_<tag>", a cell id becomes id="cell-id=<id>", the language becomes
# class="highlight hl-<lexer>", a grade id becomes id=/href=/name=. Each must be one token
# (a space would add a class such as Bootstrap's "hidden"): anything else is dropped.
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# language_info: what nbconvert reads (name, pygments_lexer, codemirror_mode) must be a token;
# the descriptive fields are kept only in their usual shapes.
LANGUAGE_INFO_FIELDS = {
    "name": TOKEN,
    "pygments_lexer": TOKEN,
    "nbconvert_exporter": TOKEN,
    "version": re.compile(r"[A-Za-z0-9_.+-]{1,32}"),
    "file_extension": re.compile(r"\.[A-Za-z0-9]{1,16}"),
    "mimetype": re.compile(r"[a-z]{1,16}/[A-Za-z0-9.+-]{1,64}"),
}
KERNELSPEC_FIELDS = {"name": TOKEN, "language": TOKEN, "display_name": re.compile(r"[\w .()+-]{1,64}")}


# -- the preprocessor -------------------------------------------------------------------------


def _image_metadata(metadata: dict) -> dict:
    """Per-type metadata the templates read: numeric width/height of raster images only."""
    kept = {}
    for mime in RASTER_TYPES:
        entry = metadata.get(mime) if isinstance(metadata.get(mime), dict) else {}
        sizes = {
            k: v
            for k, v in entry.items()
            if k in ("width", "height") and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if sizes:
            kept[mime] = sizes
    return kept


CUT_NOTE = f"\n[the autograder cut the rest of this output here: pages show at most {OUTPUT_CHARS} characters]\n"


def _cut(text: str) -> str:
    """Text a page escapes, at most ``OUTPUT_CHARS`` of it, then the note (cutting twice = once)."""
    return text if len(text) <= OUTPUT_CHARS else text[:OUTPUT_CHARS] + CUT_NOTE


def _cut_lines(lines: list) -> list:
    """A traceback's lines up to ``OUTPUT_CHARS`` characters in all, the last one cut."""
    kept, room = [], OUTPUT_CHARS
    for line in lines:
        if len(line) > room:
            return [*kept, line[:room] + CUT_NOTE]
        kept.append(line)
        room -= len(line)
    return kept


def clean_output(output: dict, own: frozenset = frozenset(), allowance: Allowance | None = None) -> list:
    """One output with only inert content (as a list: a note follows if anything was dropped).

    Dropped rich data is said in a separate stream output, so an ``execute_result``'s
    text/plain (nbgrader's partial-credit value) is altered only when too long to be a number.
    HTML whose digest is in ``own`` (the grader's own, for this cell) keeps the report's classes.
    """
    kind = output.get("output_type")
    if kind == "stream":
        return [
            new_output(
                "stream",
                name="stderr" if output.get("name") == "stderr" else "stdout",
                text=_cut(str(output.get("text", ""))),
            )
        ]
    if kind == "error":
        return [
            new_output(
                "error",
                ename=_cut(str(output.get("ename", ""))),
                evalue=_cut(str(output.get("evalue", ""))),
                traceback=_cut_lines([str(line) for line in output.get("traceback") or []]),
            )
        ]
    if kind not in ("display_data", "execute_result"):
        return [_dropped([f"an output of type {kind!r}"])]
    data, dropped = {}, []
    for mime, value in (output.get("data") or {}).items():
        text = "".join(value) if isinstance(value, list) else value
        if mime not in KEPT_MIME_TYPES or not isinstance(text, str):
            dropped.append(mime)
        elif mime == "text/html" and own and page_digest(text) in own:
            data[mime] = own_html(text)
        elif mime in ("text/html", "image/svg+xml"):
            data[mime] = clean_html(text)
        elif mime == "text/markdown":
            data[mime] = clean_markdown(text, allowance=allowance)
        else:
            data[mime] = _cut(text)
    notes = [_dropped(dropped)] if dropped else []
    if not data:
        return notes or [_dropped([])]
    cleaned = new_output(kind, data=data, metadata=_image_metadata(output.get("metadata") or {}))
    if kind == "execute_result":
        count = output.get("execution_count")
        cleaned["execution_count"] = count if isinstance(count, int) and not isinstance(count, bool) else None
    return [cleaned, *notes]


def _dropped(what: list) -> dict:
    return new_output(
        "stream",
        name="stdout",
        text=f"[the autograder removed {', '.join(what) or 'an empty output'} here: "
        "pages show no active content from a submission]\n",
    )


def _is_token(value) -> bool:
    return isinstance(value, str) and TOKEN.fullmatch(value) is not None


def _clamp_fields(entry, patterns: dict) -> dict:
    entry = entry if isinstance(entry, dict) else {}
    return {k: v for k, v in entry.items() if k in patterns and isinstance(v, str) and patterns[k].fullmatch(v)}


def _clamp_notebook_metadata(metadata) -> None:
    """language_info / kernelspec keep only well-shaped fields; without a valid name they go whole."""
    if "language_info" in metadata:
        info = _clamp_fields(metadata["language_info"], LANGUAGE_INFO_FIELDS)
        mode = (
            (metadata["language_info"] or {}).get("codemirror_mode")
            if isinstance(metadata["language_info"], dict)
            else None
        )
        if _is_token(mode):
            info["codemirror_mode"] = mode
        elif isinstance(mode, dict) and _is_token(mode.get("name")):
            version = mode.get("version")
            info["codemirror_mode"] = {
                "name": mode["name"],
                **({"version": version} if isinstance(version, int) and not isinstance(version, bool) else {}),
            }
        if "name" in info:
            metadata["language_info"] = info
        else:
            del metadata["language_info"]
    if "kernelspec" in metadata:
        spec = _clamp_fields(metadata["kernelspec"], KERNELSPEC_FIELDS)
        if "name" in spec and "display_name" in spec:  # both required by nbformat
            metadata["kernelspec"] = spec
        else:
            del metadata["kernelspec"]


def _clamp_cell_id(cell, seen: set) -> None:
    """A cell id is rendered as id="cell-id=<id>": a valid nbformat id, unique, or a fresh one."""
    if "id" not in cell:  # nbformat < 4.5 has none; the templates then skip it
        return
    if not _is_token(cell.id) or cell.id in seen:
        fresh = generate_corpus_id()
        while fresh in seen:
            fresh = generate_corpus_id()
        cell.id = fresh
    seen.add(cell.id)


class SanitizeSubmission(NbGraderPreprocessor):
    """Make a submission safe to render as HTML (feedback, formgrader): see the module docstring.

    An NbGraderPreprocessor so that it is enabled wherever it is listed (nbconvert's are off by default).
    """

    # nbconvert's HTMLExporter configures NbConvertBase.display_data_priority for every preprocessor
    # it holds; nbgrader's base class redefines the trait without config=True, which makes traitlets
    # warn "not recognized". Configurable here, as in nbgrader's own GetGrades.
    display_data_priority = List(NbGraderPreprocessor.display_data_priority.default_value).tag(config=True)

    def preprocess(self, nb, resources):
        for key in [k for k in nb.metadata if k not in KEPT_NOTEBOOK_METADATA]:
            del nb.metadata[key]  # e.g. widget state, which the templates turn into script
        _clamp_notebook_metadata(nb.metadata)
        seen_ids, own = set(), own_outputs(nb.metadata)
        allowance = Allowance(PAGE_MARKDOWN_CHARS)  # mistune's cost, for the whole page
        for cell in nb.cells:
            for key in [k for k in cell.get("metadata", {}) if k not in KEPT_CELL_METADATA]:
                del cell.metadata[key]
            _clamp_cell_id(cell, seen_ids)
            if "execution_count" in cell:  # printed into the page as In [..]
                count = cell.execution_count
                cell.execution_count = count if isinstance(count, int) and not isinstance(count, bool) else None
            if "alt" in cell.metadata:  # the feedback template escapes it; keep it text, short
                alt = cell.metadata["alt"]
                cell.metadata["alt"] = " ".join(alt.split())[:300] if isinstance(alt, str) else ""
            tags = cell.metadata.get("tags")
            if tags is not None:  # each tag becomes a class: one token each, or dropped
                tags = tags if isinstance(tags, list) else []
                cell.metadata["tags"] = list(dict.fromkeys(t for t in tags if _is_token(t)))
            grading = cell.metadata.get("nbgrader")
            if isinstance(grading, dict) and "grade_id" in grading and not _is_token(grading["grade_id"]):
                # nbgrader itself only accepts such ids, so this cell is no real grade cell: make it plain
                del cell.metadata["nbgrader"]
                grading = None
            if isinstance(grading, dict) and isinstance(grading.get("comment"), str):
                # shown as markdown in feedback
                grading["comment"] = clean_markdown(grading["comment"], allowance=allowance)
            if cell.cell_type == "code":
                mine = own.get(grading.get("grade_id")) if isinstance(grading, dict) else None
                cell.outputs = [
                    kept
                    for output in cell.get("outputs", [])
                    for kept in clean_output(output, mine or frozenset(), allowance)
                ]
            elif cell.cell_type == "markdown":
                cell.source = clean_markdown(cell.source, cell.get("attachments"), allowance)
                attachments = {
                    name: {m: v for m, v in data.items() if m in RASTER_TYPES}
                    for name, data in (cell.get("attachments") or {}).items()
                }
                attachments = {name: data for name, data in attachments.items() if data}
                if attachments:
                    cell.attachments = attachments
                else:
                    cell.pop("attachments", None)
            elif cell.cell_type == "raw":
                cell.source = clean_html(cell.source)
        return nb, resources
