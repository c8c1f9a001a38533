"""Reading submissions: is it a notebook, which code is the student's, which component is which."""

from __future__ import annotations

import json
import re
import shutil
from functools import lru_cache
from pathlib import Path

import nbformat
from nbgrader import utils

import tinytorch
from tinytorch.export import cell_code, export_cells

from .files import (
    Refused,
    instructor_secrets,
    instructor_text,
    printable,
    read_regular,
    student_id_problem,
    tree_problem,
)

COMPONENT_CALL = re.compile(r"""assert_component\(\s*["'](\w+)["']""")
PACKAGE = Path(tinytorch.__file__).resolve().parent
# What student code may import from tinytorch while graded: the stand-in for
# modules 01-06. Not core/optimizers.py: the placeholders until a student exports.
PUBLIC_MODULES = ("__init__.py", "core/__init__.py", "core/tensor.py", "core/layers.py", "export.py")


class NotANotebook(ValueError):
    """The file cannot be graded as a notebook; the message says why and what to do."""


# nbgrader's own cap on a submitted file (CourseDirectory.max_file_size, 100000 KB).
MAX_NOTEBOOK_BYTES = 100_000_000
# The text of all cells together. Pages render a cell's text in time linear in its size (plain past a
# budget, autograder/pages/render.py), but a page of megabytes still takes minutes; the assignment is
# about 43 KB of text, so 1 MiB leaves room for any honest work and bounds every render.
MAX_SOURCE_CHARS = 1024**2


# Files beside the notebook that the probe gets, as the kernel does: plain names, regular files, small.
SUBMITTED_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
MAX_SUBMITTED_FILE, MAX_SUBMITTED_FILES_BYTES = 1024**2, 8 * 1024**2


def submitted_files(folder) -> dict:
    """{name: bytes} of the regular files a student submitted beside the notebook, for the probe.

    The kernel runs with them in its working folder, so code may import a submitted
    ``helper.py``; the probe must see the same (``hidden.PROBE_FILES`` keeps the probe's own names).
    Notebooks, names that are no plain file name, links and special files, files over 1 MiB,
    and whatever exceeds 8 MiB in all are left out (the probe's scratch is 64 MiB).
    """
    found, total = {}, 0
    folder = Path(folder)
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        name = path.name
        if not SUBMITTED_FILE.fullmatch(name) or name.endswith(".ipynb") or path.is_symlink() or not path.is_file():
            continue
        try:
            data = read_regular(str(path), MAX_SUBMITTED_FILE)
        except (Refused, OSError):
            continue
        if total + len(data) > MAX_SUBMITTED_FILES_BYTES:
            break
        found[name] = data
        total += len(data)
    return found


def source_size_problem(nb) -> str | None:
    """Why the cells' text is too large to grade and render, or None."""
    size = sum(len(cell.get("source", "")) for cell in nb.get("cells", []))
    if size > MAX_SOURCE_CHARS:
        return (
            f"its cells hold {size:,} characters of text, over the {MAX_SOURCE_CHARS:,} a submission may "
            "hold (the assignment is about 43,000): remove pasted data or logs from cells and submit again"
        )
    return None


def read_submission(path: Path) -> nbformat.NotebookNode:
    """Read and validate a submitted notebook, or raise NotANotebook with a one-line reason."""
    return load_submission(path)[0]


def load_submission(path: Path) -> tuple:
    """(notebook, the bytes it was read from), or NotANotebook with a one-line reason.

    The file itself must be a regular file, never a link (arrival.read_regular). Any
    nbformat nbformat can read (v3's worksheets, any 4.x) comes back as v4; a converted
    notebook says so in ``metadata.orig_nbformat`` (nbformat's own mark).
    """
    path = Path(path)
    try:
        raw = read_regular(str(path), MAX_NOTEBOOK_BYTES)
    except FileNotFoundError:
        raise NotANotebook(f"{path} does not exist") from None
    except Refused as err:
        raise NotANotebook(f"refused: {err}; submit the .ipynb file itself") from None
    if not raw.strip():
        raise NotANotebook("the file is empty: re-download the notebook from Jupyter and submit it again")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NotANotebook(
            f"not valid JSON ({err.__class__.__name__} at {getattr(err, 'pos', '?')}): "
            "the notebook file is damaged; submit the .ipynb saved by Jupyter"
        ) from None
    if not isinstance(data, dict) or "nbformat" not in data or not ({"cells", "worksheets"} & set(data)):
        raise NotANotebook(
            "valid JSON but not a Jupyter notebook (no 'cells'/'nbformat'): submit the .ipynb file, not another file"
        )
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # nbformat raises several types for malformed notebooks
        raise NotANotebook(f"not a valid notebook: {str(err).splitlines()[0][:200]}") from None
    too_large = source_size_problem(nb)
    if too_large:
        raise NotANotebook(too_large)
    return nb, raw


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
    return {
        grade_id(c): float(c.metadata["nbgrader"]["points"])
        for c in source_nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    }


def written_points(source_nb) -> dict:
    """{grade id: points} of the manually graded answers (nbgrader grade + solution cells in markdown)."""
    return {
        grade_id(c): float(c.metadata["nbgrader"]["points"])
        for c in source_nb.cells
        if c.cell_type == "markdown"
        and c.get("metadata", {}).get("nbgrader", {}).get("grade")
        and c.metadata["nbgrader"].get("solution")
    }


def _key(cell):
    """How a submission's cell is matched to the source: its grade id, else its cell id."""
    return grade_id(cell) or cell.get("id")


def added_cells(source_nb, student_nb) -> dict:
    """{key of the source cell each added cell follows (None: before all): [cells]}, in notebook order.

    A code cell is the student's own addition when neither its grade id nor its
    cell id is one of the source notebook's (Jupyter gives new cells fresh ids)
    and, for notebooks without cell ids, its text is not one of the source's cells.
    """
    known = {_key(c) for c in source_nb.cells} - {None}
    texts = {c.source.strip() for c in source_nb.cells}
    groups, anchor = {}, None
    for cell in student_nb.cells:
        key = _key(cell)
        if key in known:
            anchor = key
        elif (
            cell.cell_type == "code"
            and "nbgrader" not in cell.get("metadata", {})
            and cell.source.strip()
            and cell.source.strip() not in texts
        ):
            groups.setdefault(anchor, []).append(cell)
    return groups


def solution_cells(student_nb) -> dict:
    """{grade id: the cell nbgrader grades under that id}, as nbgrader's ``DeduplicateIds`` decides.

    Among cells carrying the same grade id with a grade, solution or locked flag,
    ``DeduplicateIds`` keeps the *last* and clears the others' nbgrader metadata
    (a copied exercise cell: the kernel, too, ran the last definition); a cell with
    a grade id but none of those flags is no nbgrader cell at all, so it is ignored.
    """
    cells = {}
    for cell in student_nb.cells:
        if grade_id(cell) and (utils.is_grade(cell) or utils.is_solution(cell) or utils.is_locked(cell)):
            cells[grade_id(cell)] = cell
    return cells


def edited_given_cells(source_nb, student_nb) -> dict:
    """{id(source cell): the student's version} of given code cells the student edited.

    Given cells are the source's code cells that are neither solution nor grade
    cells; the student's version is the first cell with the same cell id whose text differs.
    """
    student = {}
    for cell in student_nb.cells:
        if cell.cell_type == "code" and not grade_id(cell) and cell.get("id"):
            student.setdefault(cell.id, cell)
    edited = {}
    for cell in source_nb.cells:
        mine = student.get(cell.get("id")) if cell.cell_type == "code" and not grade_id(cell) else None
        if mine is not None and mine.source.strip() != cell.source.strip():
            edited[id(cell)] = mine
    return edited


def graded_code(source_nb, student_nb) -> list:
    """[(name, code[, "added"])] for the probe: what the student's kernel ran to define the classes.

    In source order: the source's given export cells (from the instructor's
    notebook, so a student cannot break or replace them), the student's
    solution cells (``solution_cells``: the one nbgrader grades under each id),
    each given cell the student edited, right after the instructor's version
    (so an ``import copy`` added to the import cell is there), and each code
    cell the student added (helpers, imports), placed after the source cell it
    follows. Grade cells (visible tests), the instructor's other cells (demos,
    plots) as given, and markdown are never run. Added and edited given cells
    carry the mode "added": the probe runs only their definitions (see
    ``probe.definitions``). The probe parses every cell as IPython does (``probe.parse``).
    """
    student = solution_cells(student_nb)
    added = added_cells(source_nb, student_nb)
    edited = edited_given_cells(source_nb, student_nb)
    numbers = {id(c): n for n, c in enumerate(student_nb.cells, 1)}
    cells = [(f"your added cell {numbers[id(c)]}", c.source, "added") for c in added.get(None, [])]
    exported = {id(c) for c in export_cells(source_nb)}
    for cell in source_nb.cells:
        gid = grade_id(cell)
        if id(cell) in exported:
            if gid and cell.metadata["nbgrader"].get("solution"):
                if gid in student and student[gid].cell_type == "code":
                    cells.append(
                        (
                            f"your cell '{gid}'",
                            cell_code(student[gid]) if student[gid].source.startswith("#|") else student[gid].source,
                        )
                    )
            else:
                cells.append(("given code", cell_code(cell)))
        if id(cell) in edited:
            cells.append((f"your edited cell {numbers[id(edited[id(cell)])]}", edited[id(cell)].source, "added"))
        cells.extend((f"your added cell {numbers[id(c)]}", c.source, "added") for c in added.get(_key(cell), []))
    return cells


@lru_cache(maxsize=4)
def public_package(dest: str) -> Path:
    """A copy of tinytorch without the reference solution, for sandboxed imports."""
    root = Path(dest) / "tinytorch"
    for rel in PUBLIC_MODULES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE / rel, root / rel)
    return Path(dest)


def instructor_content(nb, source_nb) -> str | None:
    """What of the instructor's notebook (solution, hidden tests) ``nb`` carries, or None."""
    found = instructor_text((cell.source for cell in nb.cells), instructor_secrets(source_nb))
    return found and f"it carries the instructor's solution or hidden tests ({found!r})"


def arrival_problem(student_dir: Path, assignment: str, source_nb) -> str | None:
    """Why ``submitted/<student>/`` must not be graded, or None.

    Its name must be a plain student id; it and everything in it must be plain folders
    and regular files (no link, FIFO, device or hard link); no notebook of ``assignment``
    may carry the instructor's solution or hidden tests. A notebook that is merely
    unreadable is not refused here: grading reports it as usual.
    """
    problem = student_id_problem(student_dir.name) or tree_problem(str(student_dir))
    for path in sorted((student_dir / assignment).glob("*.ipynb")) if problem is None else ():
        try:
            problem = instructor_content(read_submission(path), source_nb)
        except NotANotebook:
            continue
        if problem:
            return printable(f"{path.name}: {problem}")
    return problem
