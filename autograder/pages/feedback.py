"""What a student reads in a grade cell: the labelled score and the hidden-check report.

The HTML (Jinja2 templates in ``templates/``, autoescaped) uses only plain tags with class attributes (table, thead, tbody, tr, th,
td, code, b, em, p, div, ul, li) with ``autograder-*`` classes, no style attribute or
element (the sanitizer would drop them): the feedback page's stylesheet lays them out,
``feedback.css``, added to the page by ``ReportCSS`` (JupyterLab pads tables itself);
and every piece of text is escaped, messages included. Explanations come verbatim from
the module's MISCONCEPTIONS.md (the caller passes them). Pages keep the ``autograder-*``
classes only on these outputs as HiddenChecks wrote them (it records their digests,
``sanitize.page_digest``); on anything a student wrote they are dropped.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

# The key of notebook metadata under which the pipeline stores a submission's per-check results.
RESULTS_KEY = "autograder"

_CODE = re.compile(r"`([^`]+)`")


TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    keep_trailing_newline=False,
)
TEMPLATES.filters["code_spans"] = lambda text: Markup(_markdown_code(text))


def score_data(component: str, earned: float, points: float) -> dict:
    """The execute_result's data: the bare number for nbgrader, a labelled line for people.

    nbgrader's partial-credit parsing (``utils.get_partial_grade``) reads only
    ``text/plain`` as a float; the feedback page and notebook frontends show ``text/html``.
    """
    label = f"Score for {component}: {earned:g} / {points:g} points (from the hidden checks below)"
    return {"text/plain": repr(earned), "text/html": TEMPLATES.get_template("score.html.j2").render(label=label)}


def _markdown_code(text: str) -> str:
    """Escape ``text`` and turn its `code` spans into <code> elements."""
    parts = _CODE.split(text)
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def named(checks: list) -> dict:
    """{slug: inherited from (or None)} over the failed checks, in order of first appearance."""
    out = {}
    for r in checks:
        if r.score < r.max_score:
            for slug in _slugs(r):
                out.setdefault(slug, (r.inherited_from or {}).get(slug))
    return out


def _slugs(result) -> list:
    return result.diagnoses or ([result.diagnosis] if result.diagnosis else [])


def _slug_label(slug: str, inherited) -> str:
    return f"{slug} (inherited from {inherited})" if inherited else slug


def report_data(component: str, checks: list, earned: float, points: float, explanations: dict) -> dict:
    """text/plain and text/html of the hidden-check report for one component.

    ``explanations`` maps a misconception's slug to its entry (``does``, ``fix``) in the module's catalog.
    """
    title = f"Hidden checks for {component}: {earned:g} / {points:g} points"
    found = named(checks)
    lines = [title]
    for r in checks:
        mark = "PASS" if r.score == r.max_score else "FAIL"
        slugs = _slugs(r)
        hint = (
            f" [misconception: {', '.join(_slug_label(s, (r.inherited_from or {}).get(s)) for s in slugs)}]"
            if slugs
            else ""
        )
        lines.append(f"  {mark} {r.id} ({r.score:g}/{r.max_score:g}){hint}: {r.message}")
    for slug, inherited in found.items():
        ex = explanations[slug]
        lines += [
            "",
            f"Misconception {_slug_label(slug, inherited)}",
            f"  What the code does: {ex.does}",
            f"  What to fix: {ex.fix}",
        ]
    rows = [
        {
            "passed": r.score == r.max_score,
            "id": r.id,
            "points": f"{r.score:g} / {r.max_score:g}",
            "slugs": [(s, found.get(s)) for s in _slugs(r)],
            "message": r.message,
        }
        for r in checks
    ]
    misconceptions = [
        {"slug": slug, "inherited": inherited, "does": explanations[slug].does, "fix": explanations[slug].fix}
        for slug, inherited in found.items()
    ]
    body = TEMPLATES.get_template("check_report.html.j2").render(title=title, rows=rows, misconceptions=misconceptions)
    return {"text/plain": "\n".join(lines), "text/html": body}


class ReportCSS(Preprocessor):
    """Add the report's stylesheet (``feedback.css``, trusted, from this package) to the feedback page.

    nbgrader's feedback template inlines every entry of ``resources["inlining"]["css"]``.
    Enabled by default: nbconvert registers listed preprocessor classes disabled.
    """

    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb, resources):
        css = (Path(__file__).parent / "feedback.css").read_text(encoding="utf-8")
        resources.setdefault("inlining", {}).setdefault("css", []).append(css)
        return nb, resources
