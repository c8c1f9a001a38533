"""Jinja2 templates of the files the release tooling writes (tools/templates/)."""

from __future__ import annotations

from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    autoescape=False,
)


def render(name: str, **context) -> str:
    """The template NAME rendered with CONTEXT; a missing variable is an error, not an empty string."""
    return _ENV.get_template(name).render(**context)
