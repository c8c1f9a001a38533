"""Write the student repository: a whitelist of course files plus rendered templates.

    python -m tools.student_dist DEST            # DEST must be new or empty
    python -m tools.student_dist DEST --force    # refresh a previous dist (its .git is kept)
    python -m tools.student_dist DEST --binder-venv VENV   # then try it as Binder would

Nothing is subtracted: the package holds no reference build (that is
content/m07_optimizers/solution/), the notebook is nbgrader's release (modules/, the same file
``nbgrader release_assignment`` publishes), and only the paths in COPY are copied.
README.md and .gitignore come from tools/templates/, pyproject.toml is written with
tomli-w. The result is scanned by tools/leaks.py before the command reports success.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tomllib
from pathlib import Path

import nbformat
import tomli_w
from nbconvert.preprocessors import ClearOutputPreprocessor
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tinytorch.export import package_path, target_module
from tools import leaks
from tools.binder_venv import BinderVenvError, build_binder_venv
from tools.generate import STUDENT
from tools.templates import render

ROOT = Path(__file__).resolve().parent.parent
# The whitelist: (glob in the course repository, path in the dist or None for the same path).
COPY = (
    ("modules/**/*.ipynb", None),
    ("tinytorch/**/*.py", None),
    ("binder/*", None),
    ("environment.yml", None),
    ("content/m07_optimizers/MISCONCEPTIONS.md", "MISCONCEPTIONS.md"),
)
RENDERED = ("README.md", ".gitignore", "pyproject.toml")
MANAGED = ("modules", "tinytorch", "binder", "environment.yml", "MISCONCEPTIONS.md", *RENDERED)
# A directory holding any of these is a course repository, not a student dist: never touched.
INSTRUCTOR_ONLY = ("src", "source", "autograder", "tests", "tools", "submitted", "autograded", "feedback")
# Packages a student never installs, whatever an instructor's extra lists.
NOT_FOR_STUDENTS = {"torch", "pytest", "playwright"}


class DistError(RuntimeError):
    """The dist would contain something a student must not get, or DEST is unusable."""


def whitelisted(root: Path = ROOT):
    """(source path, path relative to the dist) of every copied file."""
    for pattern, renamed in COPY:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and not leaks.SKIP_PARTS & set(path.parts):
                yield path, Path(renamed) if renamed else path.relative_to(root)


def cleared(path: Path) -> nbformat.NotebookNode:
    """A notebook with outputs and execution counts cleared (nbconvert's ClearOutputPreprocessor)."""
    nb, _ = ClearOutputPreprocessor().preprocess(nbformat.read(path, as_version=4), {})
    return nb


def student_pyproject(instructor: dict) -> str:
    """The student's pyproject.toml: the tinytorch package, runtime deps and the ``course`` extra."""
    project = instructor["project"]

    def for_students(requirements):
        return [r for r in requirements if canonicalize_name(Requirement(r).name) not in NOT_FOR_STUDENTS]

    return tomli_w.dumps(
        {
            "build-system": instructor["build-system"],
            "project": {
                "name": "tinytorch-student",
                "version": project["version"],
                "description": "TinyTorch module 07 (student copy): build SGD, Adam and AdamW yourself.",
                "readme": "README.md",
                "requires-python": project["requires-python"],
                **({"license": project["license"]} if "license" in project else {}),
                "dependencies": for_students(project.get("dependencies", [])),
                # JupyterLab with Jupytext and nbgrader's Validate button: the same tools as Binder.
                "optional-dependencies": {"course": for_students(project["optional-dependencies"]["course"])},
            },
            "tool": {"setuptools": {"packages": {"find": {"include": ["tinytorch*"]}}}},
        },
        multiline_strings=False,
    )


def rendered(root: Path = ROOT) -> dict:
    """Relative path -> text of the files written from templates."""
    nb = nbformat.read(root / STUDENT, as_version=4)
    module = target_module(nb)
    exercises = [
        name
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("solution")
        for name in re.findall(r"^class\s+(\w+)", c.source, re.MULTILINE)
    ]
    return {
        "README.md": render(
            "README.md.j2",
            notebook=STUDENT.as_posix(),
            module=module,
            module_path=package_path(module, Path("tinytorch")).as_posix(),
            exercises=exercises,
        ),
        ".gitignore": render("gitignore.j2"),
        "pyproject.toml": student_pyproject(tomllib.loads((root / "pyproject.toml").read_text())),
    }


def _remove_managed(dest: Path) -> None:
    for name in MANAGED:
        path = dest / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _prepare(dest: Path, force: bool) -> None:
    dest = dest.resolve()
    if dest == ROOT or dest in ROOT.parents:
        raise DistError(f"refusing to write the student dist into {dest}: it holds this repository")
    if dest.exists() and not dest.is_dir():
        raise DistError(f"{dest} exists and is not a directory")
    if dest.exists() and any(dest.iterdir()):
        if not force:
            raise DistError(
                f"{dest} is not empty; pass --force (FORCE=1) to replace a previous student dist "
                f"(only {', '.join(MANAGED)} are replaced; .git is kept)"
            )
        if any((dest / name).exists() for name in INSTRUCTOR_ONLY):
            raise DistError(f"{dest} does not look like a student dist (it holds course files); not touching it")
        _remove_managed(dest)
    dest.mkdir(parents=True, exist_ok=True)


def build(dest: Path, root: Path = ROOT, force: bool = False) -> list:
    """Write the student repository into DEST, scan it, and return the files written."""
    dest, root = Path(dest), Path(root)
    _prepare(dest, force)
    written = []
    for source, rel in whitelisted(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".ipynb":
            nbformat.write(cleared(source), target)
        else:
            shutil.copy2(source, target)  # keeps postBuild executable
        written.append(target)
    for rel, text in rendered(root).items():
        (dest / rel).write_text(text, encoding="utf-8")
        written.append(dest / rel)
    found = leaks.scan(dest, leaks.secret_material(root))
    if found:
        _remove_managed(dest)  # leave nothing half-clean behind
        raise DistError("the student dist is not clean: " + leaks.report(found))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="directory of the student repository")
    parser.add_argument("--force", action="store_true", help="replace a previous student dist in DEST (keeps .git)")
    parser.add_argument(
        "--binder-venv",
        type=Path,
        metavar="VENV",
        help="then build a new venv VENV from DEST/binder as Binder would, and run postBuild",
    )
    args = parser.parse_args(argv)
    try:
        written = build(args.dest, force=args.force)
        print(f"wrote {len(written)} files to {args.dest}: a student repository without solutions")
        if args.binder_venv:
            times = build_binder_venv(args.dest, args.binder_venv)
            print(
                f"built {args.binder_venv}: requirements {times['requirements']:.0f} s, "
                f"postBuild {times['postBuild']:.0f} s; try it with\n"
                f"  cd {args.dest} && {args.binder_venv.resolve()}/bin/jupyter lab"
            )
    except (DistError, BinderVenvError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
