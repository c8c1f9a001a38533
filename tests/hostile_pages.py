"""Payloads that try to run script on a page that renders a submission, and an oracle that finds them.

Every payload, if it ran, sets ``document.title`` to something with PWNED in it and
``window.__pwned``; the static oracle (``active_content``) finds what a browser would run
in an HTML page, so the fast tests need no browser. Written for this project's tests.
"""

from __future__ import annotations

import base64
import re

import html5lib
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output, new_raw_cell

ACT = "document.title='PWNED';window.__pwned=1"
ACT_ENTITIES = "".join(f"&#{ord(ch)};" for ch in "javascript:") + ACT  # entity-encoded scheme

# -- rich outputs: (name, data, metadata) --------------------------------------------------------
HTML_OUTPUTS = {
    "script-tag": f"<script>{ACT}</script>",
    "script-mixed-case": f"<ScRiPt>{ACT}</sCrIpT>",
    "img-onerror": f'<img src="x" onerror="{ACT}">',
    "svg-onload": f'<svg onload="{ACT}"><rect width="1" height="1"/></svg>',
    "body-onload": f'<body onload="{ACT}"><p>body</p></body>',
    "details-ontoggle": f'<details open ontoggle="{ACT}"><summary>s</summary></details>',
    "iframe-srcdoc": f'<iframe srcdoc="<script>parent.{ACT}</script>"></iframe>',
    "javascript-href": f'<a href="javascript:{ACT}">click</a>',
    "javascript-href-mixed-case-tab": f'<a href="  JaVa\tScRiPt:{ACT}">click</a>',
    "javascript-href-entities": f'<a href="{ACT_ENTITIES}">click</a>',
    "vbscript-href": '<a href="vbscript:msgbox(PWNED)">click</a>',
    "data-html-href": f'<a href="data:text/html;base64,{base64.b64encode(f"<script>{ACT}</script>".encode()).decode()}">d</a>',
    "object-embed": f'<object data="data:text/html,<script>{ACT}</script>"></object><embed src="PWNED.swf">',
    "meta-refresh": f'<meta http-equiv="refresh" content="0;url=javascript:{ACT}">',
    "base-href": '<base href="https://PWNED.example/">',
    "form-action": f'<form action="javascript:{ACT}"><button formaction="javascript:{ACT}">go</button></form>',
    "style-overlay": '<style>/*PWNED*/ body {display:none}</style><div style="position:fixed;top:0">PWNED</div>',
    "comment-breakout": f'<!--<img src="--><img src=x onerror="{ACT}">-->',
    "cdata-breakout": f'<![CDATA[><img src=x onerror="{ACT}">]]>',
    "mxss-math-style": f'<math><mtext><table><mglyph><style><img src=x onerror="{ACT}">',
    "noscript-breakout": f'<noscript><p title="</noscript><img src=x onerror={ACT}>"></noscript>',
    "svg-script-foreignobject": (
        f'<svg xmlns="http://www.w3.org/2000/svg"><script>{ACT}</script><foreignObject width="9" height="9">'
        f'<body xmlns="http://www.w3.org/1999/xhtml"><img src="x" onerror="{ACT}"/></body></foreignObject>'
        f'<use href="https://PWNED.example/sprite.svg#a"/><a href="javascript:{ACT}"><text>t</text></a></svg>'
    ),
}
SVG_OUTPUT = (
    f'<svg xmlns="http://www.w3.org/2000/svg" onload="{ACT}"><script>{ACT}</script>'
    f'<foreignObject><iframe src="javascript:{ACT}"></iframe></foreignObject></svg>'
)
MARKDOWN_OUTPUT = f'Output *markdown* <img src=x onerror="{ACT}"> [x](javascript:{ACT})'

MARKDOWN_CELLS = {
    "md-script": f"My answer.\n\n<script>{ACT}</script>\n",
    "md-img-onerror": f'An image <img src=x onerror="{ACT}"> inline.',
    "md-svg-onload": f'<svg onload="{ACT}"></svg>',
    "md-iframe": f'<iframe srcdoc="<script>parent.{ACT}</script>"></iframe>',
    "md-javascript-link": f"[click me](javascript:{ACT.replace(' ', '')})",
    "md-javascript-link-entities": f"[click me]({ACT_ENTITIES.replace(' ', '')})",
    "md-autolink": "<javascript:alert('PWNED')>",
    "md-mermaid-breakout": f"```mermaid\n</pre><img src=x onerror=\"{ACT}\">\n```\n",
    "md-html-link-mixed-case": f'<a href="JAVASCRIPT:{ACT}">x</a>',
    "md-comment-breakout": f'<!-- x --><!--<img src="--><img src=x onerror="{ACT}">-->',
}
SVG_ATTACHMENT = f'<svg xmlns="http://www.w3.org/2000/svg" onload="{ACT}"><script>{ACT}</script></svg>'
HTML_ATTACHMENT = f"<script>{ACT}</script>"
RAW_CELL = f"<script>{ACT}</script><img src=x onerror=\"{ACT}\">"

# An ordinary written answer: must come through unchanged.
GOOD_MARKDOWN = (
    "## Why eps sits outside the root\n\n"
    "Adam divides by $\\sqrt{\\hat v_t} + \\epsilon$, so for $v \\to 0$ the step is "
    "$\\alpha \\hat m_t / \\epsilon$ and $a<b$ holds.\n\n"
    "| optimizer | state |\n|---|---|\n| SGD | 2x |\n| Adam | 3x |\n\n"
    "```python\nopt.step()\n```\n\nSee [the paper](https://arxiv.org/abs/1412.6980).\n"
)


def display_code() -> str:
    """A code cell that produces every hostile output when a kernel runs it."""
    lines = [
        "from IPython.display import display, HTML, SVG, Markdown, Javascript",
        f"for payload in {list(HTML_OUTPUTS.values())!r}:",
        "    display(HTML(payload))",
        f"display(SVG({SVG_OUTPUT!r}))",
        f"display(Markdown({MARKDOWN_OUTPUT!r}))",
        f"display(Javascript({ACT!r}))",
        "display({'application/vnd.jupyter.widget-view+json': {'model_id': 'PWNED', 'version_major': 2,"
        " 'version_minor': 0}, 'text/plain': 'widget'}, raw=True)",
        f"display({{'text/html': {'<b>isolated</b><script>' + ACT + '</script>'!r}}}, raw=True,"
        " metadata={'text/html': {'isolated': True}})",
        "print('outputs done')",
    ]
    return "\n".join(lines) + "\n"


def hostile_outputs() -> list:
    """The outputs ``display_code`` produces, written directly (no kernel needed)."""
    outs = [new_output("display_data", data={"text/html": v, "text/plain": "<HTML>"}) for v in HTML_OUTPUTS.values()]
    outs += [
        new_output("display_data", data={"image/svg+xml": SVG_OUTPUT, "text/plain": "<SVG>"}),
        new_output("display_data", data={"text/markdown": MARKDOWN_OUTPUT, "text/plain": "<Markdown>"}),
        new_output("display_data", data={"application/javascript": ACT, "text/plain": "<JS>"}),
        new_output(
            "display_data",
            data={
                "application/vnd.jupyter.widget-view+json": {
                    "model_id": "PWNED",
                    "version_major": 2,
                    "version_minor": 0,
                },
                "text/plain": "widget",
            },
        ),
        new_output(
            "display_data",
            data={"text/html": f"<b>isolated</b><script>{ACT}</script>"},
            metadata={"text/html": {"isolated": True}},
        ),
        new_output("execute_result", data={"text/html": f"<img src=x onerror=\"{ACT}\">"}, execution_count=3),
    ]
    return outs


def hostile_cells(with_outputs: bool) -> list:
    """Cells a student could add: the output cell, markdown with raw HTML, attachments, a raw cell."""
    code = new_code_cell(display_code())
    if with_outputs:
        code.outputs = hostile_outputs()
    cells = [code, new_markdown_cell(GOOD_MARKDOWN)]
    cells += [new_markdown_cell(text) for text in MARKDOWN_CELLS.values()]
    attached = new_markdown_cell("![diagram](attachment:plot.svg) and ![page](attachment:page.html)")
    attached.attachments = {
        "plot.svg": {"image/svg+xml": base64.b64encode(SVG_ATTACHMENT.encode()).decode()},
        "page.html": {"text/html": base64.b64encode(HTML_ATTACHMENT.encode()).decode()},
    }
    cells.append(attached)
    raw = new_raw_cell(RAW_CELL)
    raw.metadata["raw_mimetype"] = "text/html"
    cells.append(raw)
    tricked = new_markdown_cell("metadata tricks")
    tricked.metadata["jupyter"] = {"source_hidden": True}
    tricked.metadata["tags"] = [f'"><img src=x onerror="{ACT}">']
    cells.append(tricked)
    return cells


def add_hostile_metadata(nb) -> None:
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {
            "version_major": 2,
            "version_minor": 0,
            "state": {"PWNED": {"model_name": f"</script><script>{ACT}"}},
        }
    }
    nb.metadata["title"] = f"</title><script>{ACT}</script>"


def hostile_notebook(with_outputs: bool = True):
    nb = nbformat.v4.new_notebook()
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = hostile_cells(with_outputs)
    add_hostile_metadata(nb)
    return nb


# -- the static oracle -------------------------------------------------------------------------

ACTIVE_TAGS = {
    "script",
    "iframe",
    "frame",
    "object",
    "embed",
    "applet",
    "form",
    "base",
    "foreignobject",
    "noscript",
    "portal",
}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "srcdoc", "background", "poster"}
BAD_URL = re.compile(r"^(javascript|vbscript|data:(?!image/(png|jpeg|gif);))", re.IGNORECASE)


def _squeeze(value: str) -> str:
    return re.sub(r"[\x00-\x20\x7f]+", "", value or "")


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].lower()


def active_content(page: str, marker: str = "PWNED") -> list:
    """What in an HTML page would run (or lay itself over the page): student-made script and friends.

    The page is parsed as a browser does (html5lib, WHATWG algorithm); the page's own scripts
    and styles are told apart from a submission's by the marker every payload carries.
    """
    found = []
    for element in html5lib.parse(page).iter():
        if not isinstance(element.tag, str):  # comments, doctype
            continue
        tag, attributes = _local(element.tag), {_local(k): v for k, v in element.attrib.items()}
        if tag in ("script", "style"):
            if marker in "".join(element.itertext()) or any(marker in v for v in attributes.values()):
                found.append(f"<{tag}>")
        elif tag == "meta" and "http-equiv" in attributes or tag in ACTIVE_TAGS:
            found.append(f"<{tag}>")
        for name, value in attributes.items():
            if name.startswith("on"):
                found.append(f"<{tag} {name}>")
            elif (
                name in URL_ATTRIBUTES
                and BAD_URL.match(_squeeze(value))
                and not (tag == "img" and name == "src" and _squeeze(value).startswith("data:image/svg+xml;"))
            ):
                # an SVG as an <img> runs no script, so nbconvert's way of showing SVG is fine
                found.append(f"<{tag} {name}={value[:40]!r}>")
            elif name == "style" and re.search(r"position\s*:\s*fixed|url\(", value, re.IGNORECASE):
                found.append(f"<{tag} style={value[:40]!r}>")
    return found


# Run in a page by Playwright: the same questions, asked of the DOM the browser built.
DOM_PROBE = """(selector) => {
  const bad = [];
  const urlish = ['href', 'src', 'action', 'formaction', 'xlink:href', 'data', 'srcdoc', 'background', 'poster'];
  for (const el of document.querySelectorAll(selector)) {
    const tag = el.tagName.toLowerCase();
    if (['iframe', 'frame', 'object', 'embed', 'form', 'base', 'foreignobject', 'portal'].includes(tag)) bad.push(tag);
    if (tag === 'meta' && el.getAttribute('http-equiv')) bad.push('meta http-equiv');
    if (tag === 'script' && el.textContent.includes('PWNED')) bad.push('script');
    if (tag === 'style' && el.textContent.includes('PWNED')) bad.push('style');
    for (const a of el.attributes) {
      const v = a.value.replace(/[\\u0000-\\u0020\\u007f]+/g, '');
      if (a.name.toLowerCase().startsWith('on')) bad.push(tag + ' ' + a.name);
      const svgImage = tag === 'img' && a.name === 'src' && /^data:image\\/svg\\+xml;/i.test(v);  // runs no script
      if (urlish.includes(a.name.toLowerCase()) && !svgImage &&
          /^(javascript|vbscript|data:(?!image\\/(png|jpeg|gif);))/i.test(v))
        bad.push(tag + ' ' + a.name + '=' + v.slice(0, 30));
    }
  }
  return bad;
}"""


# -- metadata the templates interpolate into attributes ---------------------------------------
# A tag becomes class="celltag_<tag>", so a space adds a page class: Bootstrap's
# "dropdown-backdrop" is position:fixed over the whole page, "hidden" is display:none.
PAGE_CLASSES = {"dropdown-backdrop", "hidden", "modal", "fixed-top", "sr-only"}
TAG_PAYLOADS = {
    "space-overlay": "x dropdown-backdrop",
    "space-hidden": "x hidden",
    "tab-hidden": "x\thidden",
    "newline-modal": "x\nmodal",
    "many": "x fixed-top sr-only",
    "too-long": "a" * 65,
    "quote": f'"><img src=x onerror="{ACT}">',
}
LEGIT_TAGS = ["raises-exception", "remove_input", "hide-cell", "nbgrader_07"]
# nbconvert writes the lexer into class="highlight hl-<lexer>" (pygments_lexer, else name).
LANGUAGE_PAYLOADS = {
    "lexer-space": {"name": "python", "pygments_lexer": "ipython3 hidden"},
    "name-space": {"name": "python dropdown-backdrop"},
    "name-quote": {"name": f'python"><img src=x onerror="{ACT}">'},
    "codemirror-space": {"name": "python", "codemirror_mode": "ipython hidden"},
}
LEGIT_LANGUAGE_INFO = {
    "name": "python",
    "pygments_lexer": "ipython3",
    "version": "3.11.4",
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "nbconvert_exporter": "python",
    "codemirror_mode": {"name": "ipython", "version": 3},
}
CELL_ID_PAYLOADS = ["a hidden", "b\tdropdown-backdrop", 'c"><img src=x onerror="1">', "", "d" * 65]
FAKE_REPORT = "Hidden checks: 100 / 100"


def overlay_submission(nb, with_outputs: bool) -> None:
    """The red team's page: a fake full-page report over the real one, every grade cell hidden."""
    fake = new_code_cell(f"print({FAKE_REPORT!r})")
    fake.metadata["tags"] = ["x dropdown-backdrop"]
    if with_outputs:
        fake.outputs = [new_output("stream", name="stdout", text=FAKE_REPORT + "\n")]
    for cell in nb.cells:
        if (cell.metadata.get("nbgrader") or {}).get("grade"):
            cell.metadata["tags"] = ["x hidden"]
    nb.cells.append(fake)


def page_classes(page: str) -> set:
    """Classes of the page's own CSS that something on the page carries (a clean page has none)."""
    found = set()
    for element in html5lib.parse(page).iter():
        if isinstance(element.tag, str):
            found |= PAGE_CLASSES & set(element.attrib.get("class", "").split())
    return found


def bad_ids(page: str) -> list:
    """id attributes that are no single token (nbconvert writes id="cell-id=<id>")."""
    return [
        element.attrib["id"]
        for element in html5lib.parse(page).iter()
        if isinstance(element.tag, str)
        and "id" in element.attrib
        and not re.fullmatch(r"[A-Za-z0-9_=-]+", element.attrib["id"])
    ]


# Run in a page by Playwright: elements inside the notebook that are laid over the page.
FIXED_PROBE = """(selector) => [...document.querySelectorAll(selector)]
  .filter(el => ['fixed', 'sticky'].includes(getComputedStyle(el).position))
  .map(el => el.tagName.toLowerCase() + '.' + el.className)"""


# -- impersonating the grader (issue 14) ----------------------------------------------------------
# The report's own markup with a score the grader never gave: must keep none of its classes.
FORGED = "forged by the student"
FORGED_SCORE = (
    f"<p class='autograder-score'><b>Score for SGD: 30 / 30 points ({FORGED})</b></p>"
    "<div class='autograder-report'><table class='autograder-checks'><tr class='autograder-pass'>"
    "<td>pass</td></tr></table></div><div class='autograder-sanitized'>x</div>"
)


def grader_classes(html_text: str) -> list:
    """autograder-* class tokens anywhere in an HTML fragment or page."""
    return [
        token
        for element in html5lib.parse(html_text).iter()
        if isinstance(element.tag, str)
        for token in element.attrib.get("class", "").split()
        if token.startswith("autograder-")
    ]


# -- URLs a browser reads as another host (WHATWG: "\" is "/" for http(s), tabs/newlines dropped) ----
OTHER_HOST_URLS = {
    "slash-backslash": "/\\evil.invalid/px.png",
    "backslash-slash": "\\/evil.invalid/px.png",
    "two-backslashes": "\\\\evil.invalid/px.png",
    "two-slashes": "//evil.invalid/px.png",
    "tab-between": "/\t/evil.invalid/px.png",
    "newline-between": "/\n\\evil.invalid/px.png",
    "leading-space": "  //evil.invalid/px.png",
    "leading-control": "\x01//evil.invalid/px.png",
    "entity-backslash": "/&#92;evil.invalid/px.png",
    "entity-tab": "/&Tab;/evil.invalid/px.png",
    "three-mixed": "\\/\\evil.invalid/px.png",
}
# Relative URLs that stay on the page's host (percent-encoded slashes are no slashes to the parser).
SAME_HOST_URLS = {
    "path": "/files/plot.png",
    "relative": "plot.png",
    "percent-slashes": "/%2F%2Fevil.invalid/px.png",
    "percent-backslash": "/%5Cevil.invalid/px.png",
    "dot": "./a/b.png",
    "query": "?x=//evil.invalid",
}


def url_carriers(url: str) -> str:
    """Every place student HTML can put a URL: links, images, srcset, SVG href and xlink:href."""
    quoted = url.replace('"', "&quot;")
    return (
        f'<a href="{quoted}">a</a><img src="{quoted}"><img srcset="{quoted} 1x" src="/ok.png">'
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        f'<a href="{quoted}"><text>t</text></a><image href="{quoted}"/><use xlink:href="{quoted}"/>'
        f'<use href="{quoted}"/></svg>'
    )


# Run in a page by Playwright: the hosts the browser's own URL parser resolves each URL-bearing
# attribute to, against an https page on grader.invalid (the WHATWG parser, not ours).
HOSTS_PROBE = """(fragment) => {
  const box = document.createElement('div'); box.innerHTML = fragment;
  const hosts = [];
  for (const el of box.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (!['href', 'src', 'xlink:href', 'srcset', 'action', 'poster', 'background'].includes(attr.name)) continue;
      const value = attr.name === 'srcset' ? attr.value.trim().split(/\\s+/)[0] : attr.value;
      try { hosts.push(new URL(value, 'https://grader.invalid/formgrader/submissions/1/').host); }
      catch (e) { hosts.push('unparsable'); }
    }
  }
  return hosts;
}"""

# Run in a page by Playwright: texts of elements wearing the report's classes.
GRADER_CLASS_PROBE = """() => [...document.querySelectorAll('[class*="autograder-"]')]
  .filter(el => [...el.classList].some(c => c.startsWith('autograder-') && c !== 'autograder-sanitized'))
  .map(el => el.className + ': ' + el.textContent)"""
