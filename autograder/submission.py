"""Reading submissions: is it a notebook, which code is the student's, which component is which."""
from __future__ import annotations

import json
import re
import shutil
from functools import lru_cache
from pathlib import Path

import nbformat

from tinytorch.export import cell_code, export_cells

COMPONENT_CALL = re.compile(r"""assert_component\(\s*["'](\w+)["']""")
PACKAGE = Path(__file__).resolve().parent.parent / "tinytorch"
# What student code may import from tinytorch while graded: the stand-in for
# modules 01-06. Not core/optimizers.py: the placeholders until a student exports.
PUBLIC_MODULES = ("__init__.py", "core/__init__.py", "core/tensor.py", "core/layers.py", "export.py")


class NotANotebook(ValueError):
    """The file cannot be graded as a notebook; the message says why and what to do."""


def read_submission(path: Path) -> nbformat.NotebookNode:
    """Read and validate a submitted notebook, or raise NotANotebook with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise NotANotebook(f"{path} does not exist or is not a file")
    raw = path.read_bytes()
    if not raw.strip():
        raise NotANotebook("the file is empty: re-download the notebook from Jupyter and submit it again")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NotANotebook(f"not valid JSON ({err.__class__.__name__} at {getattr(err, 'pos', '?')}): "
                           "the notebook file is damaged; submit the .ipynb saved by Jupyter") from None
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        raise NotANotebook("valid JSON but not a Jupyter notebook (no 'cells'/'nbformat'): "
                           "submit the .ipynb file, not another file")
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # nbformat raises several types for malformed notebooks
        raise NotANotebook(f"not a valid notebook: {str(err).splitlines()[0][:200]}") from None
    return nb


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def component_cells(source_nb) -> dict:
    """{grade cell id: component} from the hidden region of each grade cell in the source notebook."""
    mapping = {}
    for cell in source_nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        match = COMPONENT_CALL.search(cell.source) if meta.get("grade") else None
        if match:
            mapping[meta["grade_id"]] = match.group(1)
    return mapping


def grade_points(source_nb) -> dict:
    """{grade cell id: its points} from the source notebook: the maximum scores, whatever a submission says."""
    return {grade_id(c): float(c.metadata["nbgrader"]["points"]) for c in source_nb.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade")}


def graded_code(source_nb, student_nb) -> list:
    """[(name, code)] for the probe: the source's given export cells, the student's solution cells.

    Given code comes from the instructor's source, so a student cannot break or
    replace it; each solution cell comes from the submission, matched by grade id.
    """
    student = {grade_id(c): c for c in student_nb.cells if grade_id(c)}
    cells = []
    for cell in export_cells(source_nb):
        gid = grade_id(cell)
        if gid and cell.metadata["nbgrader"].get("solution"):
            if gid in student and student[gid].cell_type == "code":
                cells.append((f"your cell '{gid}'", cell_code(student[gid]) if student[gid].source.startswith("#|")
                              else student[gid].source))
        else:
            cells.append(("given code", cell_code(cell)))
    return cells


@lru_cache(maxsize=4)
def public_package(dest: str) -> Path:
    """A copy of tinytorch without the reference solution, for sandboxed imports."""
    root = Path(dest) / "tinytorch"
    for rel in PUBLIC_MODULES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE / rel, root / rel)
    return Path(dest)
