"""src/07_optimizers/07_optimizers.py -> the reference build, both notebooks and the student's module.

``python -m tools.generate`` writes all four; ``--check`` only reports drift (exit 1):

* ``content/m07_optimizers/solution/optimizers.py``: the export cells of the source (instructor-only);
* ``source/07_optimizers/optimizers.ipynb``: the nbgrader instructor notebook;
* ``modules/07_optimizers/optimizers.ipynb``: the student notebook (nbgrader's release);
* ``tinytorch/core/optimizers.py``: what a student starts from, placeholders that say the
  notebook's export cell has not run yet.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
from pathlib import Path

import nbformat

from tinytorch.export import (
    cell_code,
    export_cells,
    generated_header,
    module_text,
    package_path,
    read_notebook,
    target_module,
)
from tools.templates import render

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "07_optimizers"
NOTEBOOK = "optimizers.ipynb"
SRC = Path("src") / ASSIGNMENT / f"{ASSIGNMENT}.py"
INSTRUCTOR = Path("source") / ASSIGNMENT / NOTEBOOK
STUDENT = Path("modules") / ASSIGNMENT / NOTEBOOK
CONFIG = Path("autograder") / "nbgrader_config.py"
# The reference build lives with the grader, never in the package students import.
SOLUTION_PACKAGE = Path("content") / "m07_optimizers" / "solution"


def instructor_notebook(src: Path = ROOT / SRC):
    """The nbgrader instructor notebook: the source as ipynb, with stable cell ids."""
    nb = read_notebook(src)
    nb.metadata.pop("jupytext", None)
    for index, cell in enumerate(nb.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        cell.id = grade_id or f"cell-{index:02d}"
    nbformat.validate(nb)
    return nb


def reference_module(src: Path = ROOT / SRC) -> tuple:
    """(relative path, text) of the reference build: the source's export cells."""
    nb = read_notebook(src)
    path = SOLUTION_PACKAGE / package_path(target_module(nb), Path()).name
    return path, module_text(nb, generated_header(str(SRC)))


def starter_module(student_nb) -> tuple:
    """(relative path, text) of the student's module before their first export.

    One placeholder per public class and function of the notebook's export cells;
    each raises NotExportedError naming the notebook and how to export it.
    """
    classes, functions = [], []
    for cell in export_cells(student_nb):
        for node in ast.parse(cell_code(cell)).body:
            if isinstance(node, ast.ClassDef):
                classes.append(node.name)
            elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                functions.append(node.name)
    module = target_module(student_nb)
    text = render(
        "student_module.py.j2", module=module, notebook=STUDENT.as_posix(), classes=classes, functions=functions
    )
    return package_path(module, Path("tinytorch")), text


def nbgrader_config(course: Path, db_url: str | None = None):
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(CONFIG.name, path=str(ROOT / CONFIG.parent)).load_config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.db_url = db_url or f"sqlite:///{course / 'gradebook.db'}"
    return config


def course_gradebook_url() -> str:
    """The course's gradebook, as nbgrader_config.py configures it (nbgrader's default: root/gradebook.db)."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(CONFIG.name, path=str(ROOT / CONFIG.parent)).load_config()
    root = Path(config.CourseDirectory.get("root", ROOT))
    return config.CourseDirectory.get("db_url") or f"sqlite:///{root / 'gradebook.db'}"


def student_notebook(instructor_nb, db_url: str | None = None) -> nbformat.NotebookNode:
    """Run the real ``nbgrader generate_assignment`` in a scratch course and return its release.

    Never in the course itself: nbgrader deletes the release folder before it writes, so a
    failure there would delete the committed student notebook. With DB_URL, the assignment's
    cells are recorded in that gradebook (what ``nbgrader autograde`` needs).
    """
    from nbgrader.apps import NbGraderAPI

    # nbgrader runs `alembic` as a command: make this environment's scripts findable.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with tempfile.TemporaryDirectory(prefix="tt07-generate-") as tmp:
        course = Path(tmp)
        (course / INSTRUCTOR).parent.mkdir(parents=True)
        nbformat.write(instructor_nb, course / INSTRUCTOR)
        api = NbGraderAPI(config=nbgrader_config(course, db_url))
        result = api.generate_assignment(ASSIGNMENT, force=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment failed:\n{result['log']}\n{result.get('error', '')}")
        return nbformat.read(course / STUDENT, as_version=4)


def outputs(db_url: str | None = None) -> dict:
    """Every generated file, relative path -> text (DB_URL: see student_notebook)."""
    reference_path, reference_text = reference_module()
    instructor = instructor_notebook()
    student = student_notebook(instructor, db_url)
    starter_path, starter_text = starter_module(student)
    return {
        reference_path: reference_text,
        INSTRUCTOR: nbformat.writes(instructor) + "\n",
        STUDENT: nbformat.writes(student) + "\n",
        starter_path: starter_text,
    }


def drifted(root: Path = ROOT) -> list:
    """Generated files whose committed text differs from a fresh generation."""
    return [
        str(path) for path, text in outputs().items() if not (root / path).exists() or (root / path).read_text() != text
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift instead of writing")
    parser.add_argument(
        "--gradebook",
        action="store_true",
        help="also record the assignment in the course gradebook, for `nbgrader autograde` "
        "(use this instead of `nbgrader generate_assignment`)",
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = drifted()
        for path in stale:
            print(f"drift: {path} differs from what {SRC} generates; run `make generate`", file=sys.stderr)
        return 1 if stale else 0
    generated = outputs(course_gradebook_url() if args.gradebook else None)  # all or nothing: then write
    for path, text in generated.items():
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(text)
        print(f"wrote {path}")
    if args.gradebook:
        print(f"recorded {ASSIGNMENT} in {course_gradebook_url()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
