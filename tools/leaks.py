"""The one leak scanner: does a directory hold instructor-only material?

Used by ``make student-dist`` (which refuses to finish a leaking release) and by the tests
(which scan the release, nbgrader's exchange copy, and planted leaks).

Secret sources:

* solution regions: lines between ``### BEGIN SOLUTION`` / ``### END SOLUTION`` in
  src/07_optimizers/07_optimizers.py;
* hidden tests: lines between ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``;
* the instructor notebook source/07_optimizers/optimizers.ipynb (every cell);
* reference data: every file under autograder/ and content/ (the reference build in content/m07_optimizers/solution/,
  the reference data's JSON, the grader's code), except the catalog the release ships (SHIPPED).

A secret line is a line of one of those, stripped of indentation, that

1. has at least ``MIN_CHARS`` (12) characters and a letter or digit: shorter lines
   (``return``, ``pass``, ``)``) occur in any Python file and say nothing about a solution;
2. does not also occur, as a substring, in the material the course publishes anyway: the
   source outside the solution and hidden-test regions (as written and as Jupytext turns it
   into cells), the package, binder/, environment.yml and pyproject.toml. (The student
   notebook and the shipped catalog are deliberately *not* in this allow-list: they are
   among the things under test.)

A file leaks when a secret line is a substring of a text view of it (its bytes as UTF-8
and, for JSON such as notebooks, every JSON string decoded, so escaping cannot hide a
line), when it is byte-identical to a secret file, when it holds sampled 32-byte chunks
of binary reference data, or when it holds an nbgrader region marker line.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import nbformat

from tinytorch.export import read_notebook

ROOT = Path(__file__).resolve().parent.parent
SRC = Path("src/07_optimizers/07_optimizers.py")
INSTRUCTOR_NB = Path("source/07_optimizers/optimizers.ipynb")
# Under autograder/ but written for students: the release ships it.
SHIPPED = (Path("content/m07_optimizers/MISCONCEPTIONS.md"),)
MIN_CHARS = 12
REGIONS = {
    "### BEGIN SOLUTION": ("### END SOLUTION", "solution"),
    "### BEGIN HIDDEN TESTS": ("### END HIDDEN TESTS", "hidden test"),
}
MARKERS = frozenset(REGIONS) | {end for end, _ in REGIONS.values()}
SKIP_PARTS = {".git", "__pycache__", ".ipynb_checkpoints"}


def _strip_lines(text: str) -> list:
    return [line.strip() for line in text.splitlines()]


def files(top: Path):
    """Regular files under TOP, sorted, without VCS and cache folders."""
    for path in sorted(Path(top).rglob("*")):
        if path.is_file() and not SKIP_PARTS & set(path.relative_to(top).parts):
            yield path


def split_regions(lines, where: str = "") -> tuple:
    """({'solution': [...], 'hidden test': [...]}, [other lines]) of stripped lines."""
    secret = {"solution": [], "hidden test": []}
    public, end, kind = [], None, None
    for line in lines:
        if end is None and line in REGIONS:
            end, kind = REGIONS[line]
        elif end is not None and line == end:
            end = kind = None
        elif kind is not None:
            secret[kind].append(line)
        else:
            public.append(line)
    if end is not None:
        raise ValueError(f"{where}: a {kind} region is not closed")
    return secret, public


def public_text(root: Path = ROOT) -> str:
    """What the course publishes anyway, one stripped line after another (rule 2)."""
    src = root / SRC
    _, public = split_regions(_strip_lines(src.read_text()), str(src))
    for cell in read_notebook(src).cells:
        public += split_regions(_strip_lines(cell.source), str(src))[1]
    lines = set(public)
    published = [*files(root / "tinytorch"), *files(root / "binder"), root / "environment.yml", root / "pyproject.toml"]
    for path in published:
        if path.suffix != ".pyc":
            lines.update(_strip_lines(path.read_text()))
    return "\n".join(sorted(lines))


def _distinctive(lines, public: str) -> list:
    return sorted(
        {line for line in lines if len(line) >= MIN_CHARS and re.search(r"[A-Za-z0-9]", line) and line not in public}
    )


def secret_material(root: Path = ROOT) -> dict:
    """kind -> {'lines': [...], 'hashes': {sha256: path}, 'chunks': [(bytes, path)]}."""
    root = Path(root)
    public = public_text(root)
    regions, _ = split_regions(_strip_lines((root / SRC).read_text()), str(SRC))
    secrets = {
        kind: {"lines": _distinctive(lines, public), "hashes": {}, "chunks": []} for kind, lines in regions.items()
    }
    instructor = root / INSTRUCTOR_NB
    cells = nbformat.read(instructor, as_version=4).cells
    secrets["instructor notebook"] = {
        "lines": _distinctive((line for c in cells for line in _strip_lines(c.source)), public),
        "hashes": {hashlib.sha256(instructor.read_bytes()).hexdigest(): INSTRUCTOR_NB},
        "chunks": [],
    }
    data = {"lines": [], "hashes": {}, "chunks": []}
    for path in [*files(root / "autograder"), *files(root / "content")]:
        rel = path.relative_to(root)
        if rel in SHIPPED or path.suffix == ".pyc":
            continue
        raw = path.read_bytes()
        if raw.strip():  # an empty file (a bare __init__.py) carries nothing to leak
            data["hashes"][hashlib.sha256(raw).hexdigest()] = rel
        try:
            data["lines"] += _distinctive(_strip_lines(raw.decode("utf-8")), public)
        except UnicodeDecodeError:  # binary reference data: sample its payload
            step = max(32, len(raw) // 16)
            data["chunks"] += [(raw[i : i + 32], rel) for i in range(len(raw) // 4, len(raw) - 32, step)][:8]
    data["lines"] = sorted(set(data["lines"]))
    secrets["reference data"] = data
    return secrets


def _json_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


def text_views(raw: bytes) -> list:
    text = raw.decode("utf-8", errors="replace")
    views = [text]
    try:
        views.append("\n".join(_json_strings(json.loads(text))))
    except ValueError:
        pass
    return views


def scan(top: Path, secrets: dict | None = None) -> list:
    """Every (relative path, kind, evidence) where TOP holds instructor-only material."""
    top = Path(top)
    secrets = secret_material() if secrets is None else secrets
    leaks = []
    for path in files(top):
        rel = path.relative_to(top).as_posix()
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        views = text_views(raw)
        for kind, found in secrets.items():
            if digest in found["hashes"]:
                leaks.append((rel, kind, f"identical to {found['hashes'][digest]}"))
            leaks += [(rel, kind, line) for line in found["lines"] if any(line in view for view in views)]
            leaks += [(rel, kind, f"bytes of {origin}") for chunk, origin in found["chunks"] if chunk in raw]
        for view in views:
            marker = MARKERS & set(_strip_lines(view))
            if marker:
                leaks.append((rel, "nbgrader marker", sorted(marker)[0]))
                break
    return leaks


def report(leaks: list, limit: int = 40) -> str:
    return f"{len(leaks)} pieces of instructor-only material:\n" + "\n".join(
        f"  {rel}: {kind}: {evidence}" for rel, kind, evidence in leaks[:limit]
    )
