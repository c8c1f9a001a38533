"""src/07_optimizers/07_optimizers.py -> tinytorch/core/optimizers.py, source/ and modules/ notebooks.

``python -m tools.generate`` writes all three; ``--check`` only reports drift (exit 1).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat

from tinytorch.export import generated_header, module_text, package_path, read_notebook, target_module

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "07_optimizers"
NOTEBOOK = "optimizers.ipynb"
SRC = Path("src") / ASSIGNMENT / f"{ASSIGNMENT}.py"
INSTRUCTOR = Path("source") / ASSIGNMENT / NOTEBOOK
STUDENT = Path("modules") / ASSIGNMENT / NOTEBOOK
CONFIG = Path("autograder") / "nbgrader_config.py"


def instructor_notebook(src: Path = ROOT / SRC):
    """The nbgrader instructor notebook: the source as ipynb, with stable cell ids."""
    nb = read_notebook(src)
    nb.metadata.pop("jupytext", None)
    for index, cell in enumerate(nb.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        cell.id = grade_id or f"cell-{index:02d}"
    nbformat.validate(nb)
    return nb


def package_module(src: Path = ROOT / SRC) -> tuple:
    """(relative path, text) of the package module exported from the source."""
    nb = read_notebook(src)
    path = package_path(target_module(nb), Path("tinytorch"))
    return path, module_text(nb, generated_header(str(SRC)))


def nbgrader_config(course: Path):
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(CONFIG.name, path=str(ROOT / CONFIG.parent)).load_config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    return config


def student_notebook(instructor_nb) -> nbformat.NotebookNode:
    """Run the real ``nbgrader generate_assignment`` in a scratch course and return its release."""
    from nbgrader.apps import NbGraderAPI

    # nbgrader runs `alembic` as a command: make this environment's scripts findable.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with tempfile.TemporaryDirectory(prefix="tt07-generate-") as tmp:
        course = Path(tmp)
        (course / INSTRUCTOR).parent.mkdir(parents=True)
        nbformat.write(instructor_nb, course / INSTRUCTOR)
        api = NbGraderAPI(config=nbgrader_config(course))
        result = api.generate_assignment(ASSIGNMENT, force=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment failed:\n{result['log']}\n{result.get('error', '')}")
        return nbformat.read(course / STUDENT, as_version=4)


def outputs() -> dict:
    """Every generated file, relative path -> text."""
    package_path_, package_text = package_module()
    instructor = instructor_notebook()
    return {
        package_path_: package_text,
        INSTRUCTOR: nbformat.writes(instructor) + "\n",
        STUDENT: nbformat.writes(student_notebook(instructor)) + "\n",
    }


def drifted(root: Path = ROOT) -> list:
    """Generated files whose committed text differs from a fresh generation."""
    return [str(path) for path, text in outputs().items()
            if not (root / path).exists() or (root / path).read_text() != text]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift instead of writing")
    args = parser.parse_args(argv)
    if args.check:
        stale = drifted()
        for path in stale:
            print(f"drift: {path} differs from what {SRC} generates; run `make generate`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs().items():
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
