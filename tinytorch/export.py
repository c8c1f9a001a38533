"""Write a module notebook's ``#| export`` cells into the tinytorch package.

One exporter serves two users:

* maintainers: ``make generate`` exports the reference source
  (``src/07_optimizers/07_optimizers.py``) into the grader's
  ``content/m07_optimizers/solution/optimizers.py``, never into this package;
* students: ``python -m tinytorch.export modules/07_optimizers/optimizers.ipynb``
  (or the last cell of the notebook) exports *their* classes, so later modules
  train with their own optimizers.

A cell is exported when its first line is ``#| export``; ``#| default_exp
core.optimizers`` names the target module. Solution markers are dropped.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

EXPORT = "#| export"
DEFAULT_EXP = "#| default_exp"
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
# What nbgrader leaves where a solution was: the student has not written this part yet.
STUB = re.compile(r"#\s*YOUR CODE HERE\s*\n\s*raise NotImplementedError\(\)")
GENERATED_PREFIX = "# DO NOT EDIT: generated from src/"


class ExportRefused(RuntimeError):
    """The notebook still holds unfinished exercises."""


def read_notebook(path: Path):
    """Read a notebook from .ipynb, or from a Jupytext percent-format .py file."""
    path = Path(path)
    if path.suffix == ".py":
        import jupytext  # only needed for the maintainer's source

        return jupytext.read(path)
    import nbformat

    return nbformat.read(path, as_version=4)


def _lines(cell) -> list:
    return cell.source.splitlines()


def target_module(nb) -> str:
    """The dotted module named by ``#| default_exp``, e.g. ``core.optimizers``."""
    for cell in nb.cells:
        for line in _lines(cell) if cell.cell_type == "code" else ():
            if line.startswith(DEFAULT_EXP):
                return line[len(DEFAULT_EXP) :].strip()
    raise ExportRefused("the notebook has no '#| default_exp <module>' line: nothing says where to export")


def export_cells(nb) -> list:
    """The code cells whose first line is ``#| export``."""
    return [c for c in nb.cells if c.cell_type == "code" and _lines(c) and _lines(c)[0].strip() == EXPORT]


def without_markers(source: str) -> str:
    """Source without nbgrader's solution marker lines: what a finished exercise looks like."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in SOLUTION_MARKERS)


def cell_code(cell) -> str:
    """A cell's code without the export directive and the solution markers."""
    return without_markers("\n".join(_lines(cell)[1:])).strip("\n")


def unfinished(cells) -> list:
    """Names of exported definitions whose bodies are still nbgrader stubs."""
    names = []
    for cell in cells:
        if STUB.search(cell.source):
            match = re.search(r"^(?:class|def)\s+(\w+)", cell_code(cell), re.MULTILINE)
            names.append(match.group(1) if match else "an exported cell")
    return names


def module_text(nb, header: str) -> str:
    body = "\n\n\n".join(cell_code(c) for c in export_cells(nb))
    return f"{header}\n\n{body}\n"


def generated_header(source: str) -> str:
    return (
        f"{GENERATED_PREFIX}{source.removeprefix('src/')} by `make generate`.\n"
        "# Edit that file and regenerate; a test fails when this file drifts from it."
    )


def package_path(module: str, package_root: Path) -> Path:
    return Path(package_root).joinpath(*module.split(".")).with_suffix(".py")


def export_student_notebook(notebook: str | Path, package_root: Path | None = None) -> str:
    """Export a student's notebook into their tinytorch package and say what happened.

    Refuses (ExportRefused) while an exercise still raises NotImplementedError.
    Skips the instructor's notebook (its exercises hold nbgrader's solution regions): the
    reference build is the grader's (`make generate`), and never enters this package.
    """
    notebook = Path(notebook)
    nb = read_notebook(notebook)
    if package_root is None:
        package_root = Path(__file__).resolve().parent
    target = package_path(target_module(nb), package_root)
    if any(marker in cell.source for cell in export_cells(nb) for marker in SOLUTION_MARKERS):
        return (
            f"Not exporting: {notebook.name} is the instructor's notebook (it holds solution regions); "
            "`make generate` builds the reference into content/m07_optimizers/solution/, students export their own."
        )
    missing = unfinished(export_cells(nb))
    if missing:
        raise ExportRefused(
            f"Not exporting {notebook.name}: {', '.join(missing)} still raise NotImplementedError. "
            "Finish those exercises (their tests should pass), then export again."
        )
    header = (
        f"# Exported from your notebook {notebook.name} by `python -m tinytorch.export`.\n"
        "# Re-export after changing the notebook; edits made here are overwritten."
    )
    target.write_text(module_text(nb, header))
    return f"Exported {len(export_cells(nb))} cells to {target}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Export your notebook's classes into tinytorch.")
    parser.add_argument("notebook", help="e.g. modules/07_optimizers/optimizers.ipynb")
    args = parser.parse_args(argv)
    try:
        print(export_student_notebook(args.notebook))
    except (ExportRefused, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
