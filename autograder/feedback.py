"""What a student reads in a grade cell: the labelled score and the hidden-check report.

The HTML uses only plain tags with class attributes (table, thead, tbody, tr, th,
td, code, b, em, p, div, ul, li) with ``autograder-*`` classes, no style attribute or
element (the sanitizer would drop them): the feedback page's stylesheet lays them out,
``feedback.css``, added to the page by ``ReportCSS`` (JupyterLab pads tables itself);
and every piece of text is escaped, messages included. Explanations come verbatim from
MISCONCEPTIONS.md through ``misconceptions.EXPLANATIONS``. Pages keep the ``autograder-*``
classes only on these outputs as HiddenChecks wrote them (it records their digests,
``sanitize.page_digest``); on anything a student wrote they are dropped.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from .judge.content import EXPLANATIONS

_CODE = re.compile(r"`([^`]+)`")


def score_data(component: str, earned: float, points: float) -> dict:
    """The execute_result's data: the bare number for nbgrader, a labelled line for people.

    nbgrader's partial-credit parsing (``utils.get_partial_grade``) reads only
    ``text/plain`` as a float; the feedback page and notebook frontends show ``text/html``.
    """
    label = f"Score for {component}: {earned:g} / {points:g} points (from the hidden checks below)"
    return {"text/plain": repr(earned),
            "text/html": f"<p class='autograder-score'><b>{html.escape(label)}</b></p>"}


def _markdown_code(text: str) -> str:
    """Escape ``text`` and turn its `code` spans into <code> elements."""
    parts = _CODE.split(text)
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def named(checks: list) -> dict:
    """{slug: inherited from (or None)} over the failed checks, in order of first appearance."""
    out = {}
    for r in checks:
        if r.score < r.max_score:
            for slug in r.diagnoses or ([r.diagnosis] if r.diagnosis else []):
                out.setdefault(slug, (r.inherited_from or {}).get(slug))
    return out


def _slug_label(slug: str, inherited) -> str:
    return f"{slug} (inherited from {inherited})" if inherited else slug


def report_data(component: str, checks: list, earned: float, points: float) -> dict:
    """text/plain and text/html of the hidden-check report for one component."""
    title = f"Hidden checks for {component}: {earned:g} / {points:g} points"
    found = named(checks)
    lines = [title]
    for r in checks:
        mark = "PASS" if r.score == r.max_score else "FAIL"
        slugs = r.diagnoses or ([r.diagnosis] if r.diagnosis else [])
        hint = f" [misconception: {', '.join(_slug_label(s, (r.inherited_from or {}).get(s)) for s in slugs)}]" \
            if slugs else ""
        lines.append(f"  {mark} {r.id} ({r.score:g}/{r.max_score:g}){hint}: {r.message}")
    for slug, inherited in found.items():
        ex = EXPLANATIONS[slug]
        lines += ["", f"Misconception {_slug_label(slug, inherited)}",
                  f"  What the code does: {ex.does}", f"  What to fix: {ex.fix}"]
    rows = []
    for r in checks:
        passed = r.score == r.max_score
        slugs = r.diagnoses or ([r.diagnosis] if r.diagnosis else [])
        cell = "".join(f"<div><code>{html.escape(s)}</code>" + (f" <em>inherited from {html.escape(found[s])}</em>"
                                                                 if found.get(s) else "") + "</div>" for s in slugs)
        rows.append(f"<tr class='{'autograder-pass' if passed else 'autograder-fail'}'>"
                    f"<td>{'&#10004; pass' if passed else '&#10008; fail'}</td><td><code>{html.escape(r.id)}</code></td>"
                    f"<td>{r.score:g} / {r.max_score:g}</td><td>{cell}</td><td>{html.escape(r.message)}</td></tr>")
    explanations = "".join(
        f"<div class='autograder-misconception'><p><b>Misconception <code>{html.escape(slug)}</code></b>"
        + (f" <em>(inherited from {html.escape(inherited)}: fix it there)</em>" if inherited else "") + "</p>"
        f"<ul><li><b>What the code does:</b> {_markdown_code(EXPLANATIONS[slug].does)}</li>"
        f"<li><b>What to fix:</b> {_markdown_code(EXPLANATIONS[slug].fix)}</li></ul></div>"
        for slug, inherited in found.items())
    body = (f"<div class='autograder-report'><p><b>{html.escape(title)}</b></p>"
            "<table class='autograder-checks'><thead><tr><th>result</th><th>check</th><th>points</th>"
            "<th>misconception</th><th>details</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{explanations}</div>")
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
