"""Student HTML made inert: the nh3 allowlist, the URL and class rules, and the grader's own outputs.

What a page may show from a submission (``clean_html``), and which outputs may keep the report's
``autograder-*`` classes (``own_html``, ``page_digest``, ``own_outputs``). ``sanitize.py`` applies
these to every output, markdown cell and attachment of a notebook.
"""

from __future__ import annotations

import hashlib
import html
import re
from functools import partial

import nh3

RASTER_TYPES = frozenset({"image/png", "image/jpeg", "image/gif"})
SVG_TAGS = {
    "svg",
    "g",
    "path",
    "circle",
    "ellipse",
    "line",
    "polyline",
    "polygon",
    "rect",
    "text",
    "tspan",
    "title",
    "desc",
    "defs",
    "use",
    "symbol",
    "clippath",
    "lineargradient",
    "radialgradient",
    "stop",
    "marker",
    "pattern",
    "mask",
}
HTML_TAGS = (set(nh3.ALLOWED_TAGS) - {"area", "map"}) | {"sub", "sup", "hr", "br", "img", "span", "div"}
TAGS = HTML_TAGS | SVG_TAGS
GENERIC_ATTRIBUTES = {"class", "title", "style", "id", "align", "colspan", "rowspan", "width", "height"}
SVG_ATTRIBUTES = {
    "viewbox",
    "viewBox",
    "xmlns",
    "version",
    "d",
    "x",
    "y",
    "x1",
    "x2",
    "y1",
    "y2",
    "cx",
    "cy",
    "r",
    "rx",
    "ry",
    "dx",
    "dy",
    "points",
    "transform",
    "fill",
    "fill-opacity",
    "fill-rule",
    "stroke",
    "stroke-width",
    "stroke-linecap",
    "stroke-linejoin",
    "stroke-dasharray",
    "stroke-opacity",
    "opacity",
    "offset",
    "stop-color",
    "stop-opacity",
    "clip-path",
    "font-size",
    "font-family",
    "font-weight",
    "text-anchor",
    "dominant-baseline",
    "preserveaspectratio",
    "preserveAspectRatio",
    "gradientunits",
    "href",
    "xlink:href",
    "markerwidth",
    "markerheight",
    "refx",
    "refy",
    "orient",
}
# Layout-neutral properties only: no position, z-index, display, or anything that can lay a
# fake page over the formgrader; values with url() or CSS escapes are dropped whole (below).
# No background, border or padding either: with them a student rebuilds every rule of
# feedback.css and draws a look-alike of the grader's report next to the real one.
STYLE_PROPERTIES = {
    "color",
    "font-weight",
    "font-style",
    "font-size",
    "font-family",
    "text-align",
    "text-decoration",
    "vertical-align",
    "white-space",
    "margin-left",
    "margin-right",
    "border-collapse",
    "fill",
    "fill-opacity",
    "stroke",
    "stroke-width",
    "stroke-linecap",
    "stroke-linejoin",
    "stroke-opacity",
    "stroke-dasharray",
    "opacity",
    "text-anchor",
}
URL_ATTRIBUTES = {"href", "src", "xlink:href", "cite", "action", "formaction", "background", "poster", "data"}
LINK_SCHEMES = {"http", "https", "mailto"}
# Classes the page's own CSS gives meaning to (bootstrap's "modal", "fixed-top", ...) could
# dress student HTML as grader UI; only code highlighting passes. Our report's autograder-*
# classes pass only in the grader's own outputs (``own_outputs`` below), never in a student's.
CLASS_TOKEN = re.compile(r"highlight|anchor-link|[a-z]{1,3}[0-9]?")
OWN_CLASS_TOKEN = re.compile(rf"autograder-[A-Za-z0-9_-]+|{CLASS_TOKEN.pattern}")
DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]*", re.IGNORECASE)


SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def safe_url(value: str, *, image: bool = False) -> bool:
    """http(s)/mailto, relative to the page's own host, or (for images) an inline raster.

    Judged as the WHATWG URL parser reads it against an http(s) page: tabs and newlines
    anywhere and C0 controls/spaces at the ends are dropped (we drop every control and
    space: stricter), then a relative URL that starts with two slashes, ``/`` and ``\\``
    alike (a backslash is a slash in special schemes), names another host: refused.
    Percent-encoded slashes are no slashes to the parser (``/%2F/x`` stays on the host).
    """
    squeezed = re.sub(r"[\x00-\x20\x7f]+", "", html.unescape(value))
    if image and DATA_IMAGE.fullmatch(value.strip()):
        return True
    scheme = SCHEME.match(squeezed)
    if scheme:
        return scheme.group(1).lower() in LINK_SCHEMES
    return not (len(squeezed) >= 2 and squeezed[0] in "/\\" and squeezed[1] in "/\\")


def _attribute_filter(tag: str, attribute: str, value: str, *, classes: re.Pattern = CLASS_TOKEN) -> str | None:
    if attribute in URL_ATTRIBUTES:
        if tag == "use":  # only references inside the same SVG
            return value if value.startswith("#") else None
        return value if safe_url(value, image=(tag == "img" and attribute == "src")) else None
    if attribute == "class":
        kept = [token for token in value.split() if classes.fullmatch(token)]
        return " ".join(kept) or None
    if attribute == "style" and ("url" in value.lower() or "\\" in value or "expression" in value.lower()):
        return None
    return value


def _cleaner(classes: re.Pattern) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=TAGS,
        clean_content_tags={"script", "style"},
        attributes={
            "*": GENERIC_ATTRIBUTES | SVG_ATTRIBUTES,
            "a": {"href"},
            "img": {"src", "alt"},
            "th": {"scope"},
            "ol": {"start"},
        },
        attribute_filter=partial(_attribute_filter, classes=classes),
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
        url_schemes=LINK_SCHEMES | {"data"},
        filter_style_properties=STYLE_PROPERTIES,
        id_prefix="user-",
    )  # no clobbering of the page's own element ids


CLEANER, OWN_CLEANER = _cleaner(CLASS_TOKEN), _cleaner(OWN_CLASS_TOKEN)


def clean_html(text: str) -> str:
    """HTML (or SVG) fragment → the same fragment with nothing active left (nh3 allowlist)."""
    return CLEANER.clean(str(text))


# -- the grader's own outputs -----------------------------------------------------------------
# Only the report HiddenChecks writes may wear the report's classes. HiddenChecks records the
# digest of each HTML it adds, per grade cell, in the notebook metadata it owns
# (``autograder.own_outputs``: it replaces whatever a submission put there); an output keeps
# autograder-* classes only if its cleaned HTML has one of its cell's digests. A student can
# match a digest only by printing the grader's genuine report for that cell, unchanged.


def own_html(text: str) -> str:
    """The grader's own HTML, cleaned like any other but keeping the report's classes."""
    return OWN_CLEANER.clean(str(text))


def page_digest(text: str) -> str:
    """What HiddenChecks records for an HTML output it adds (stable: cleaning is idempotent)."""
    return hashlib.sha256(own_html(text).encode("utf-8")).hexdigest()


def own_outputs(metadata) -> dict:
    """{grade id: {digest}} from the notebook's ``autograder`` metadata; anything malformed is none."""
    recorded = metadata.get("autograder") if isinstance(metadata, dict) else None
    recorded = recorded.get("own_outputs") if isinstance(recorded, dict) else None
    if not isinstance(recorded, dict):
        return {}
    return {
        gid: frozenset(d for d in digests if isinstance(d, str))
        for gid, digests in recorded.items()
        if isinstance(gid, str) and isinstance(digests, list)
    }
