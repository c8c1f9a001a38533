"""Write the student repository: notebooks, tinytorch without solutions, Binder files.

    python -m tools.student_dist DEST            # DEST must be new or empty
    python -m tools.student_dist DEST --force    # refresh a previous dist (its .git is kept)
    python -m tools.student_dist DEST --binder-venv VENV
        # and try it as Binder would: a new venv from DEST/binder/requirements.txt, then
        # DEST/binder/postBuild; run `VENV/bin/jupyter lab` in DEST afterwards

What goes into DEST:

* ``modules/``: the nbgrader release notebooks (stubs, visible tests only), outputs cleared;
* ``tinytorch/``: the package, except that every module built from the instructor's
  source (first line ``# DO NOT EDIT: generated from src/...``, i.e. the reference
  solution) is replaced by a placeholder that raises ImportError telling the student
  how to export their own notebook into it;
* ``binder/`` and ``environment.yml``, unchanged;
* ``pyproject.toml`` for the student package (tinytorch only: no autograder, no torch);
* ``README.md`` for students and a ``.gitignore``.

Never copied: ``src/``, ``source/``, ``autograder/``, ``tests/``, ``tools/``, nbgrader's
``submitted/``, ``autograded/``, ``feedback/``, the gradebook. The dist is checked
before this command reports success (``check_dist``); tests/test_student_dist.py scans it
line by line against the solutions, the hidden tests and the reference data.
"""
from __future__ import annotations

import argparse
import json
import re
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import nbformat

from tinytorch.export import GENERATED_PREFIX, target_module

ROOT = Path(__file__).resolve().parent.parent

# Top-level paths of the dist that this tool owns (and replaces with --force).
MANAGED = ("modules", "tinytorch", "binder", "environment.yml", "pyproject.toml", "README.md", ".gitignore")
# Never in a student repository.
FORBIDDEN = ("src", "source", "autograder", "tests", "tools", "submitted", "autograded", "feedback",
             "release", "gradebook.db", "artifacts")
NBGRADER_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
SKIP_NAMES = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}
# Packages a student never installs, whatever an instructor's extra lists.
INSTRUCTOR_ONLY_PACKAGES = {"torch", "pytest", "playwright"}
STUDENT_PROJECT_NAME = "tinytorch-student"


class DistError(RuntimeError):
    """The dist would contain something a student must not get, or DEST is unusable."""


# --------------------------------------------------------------------------- files
def _wanted(path: Path) -> bool:
    return not (SKIP_NAMES & set(path.parts)) and path.suffix not in SKIP_SUFFIXES


def _files(root: Path):
    for path in sorted(root.rglob("*")):
        if path.is_file() and _wanted(path.relative_to(root)):
            yield path


def student_notebook(path: Path) -> nbformat.NotebookNode:
    """A release notebook with outputs and execution counts cleared."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def exercise_names(nb) -> list:
    """Names of the classes/functions the student writes: exported nbgrader solution cells."""
    names = []
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            names += re.findall(r"^(?:class|def)\s+(\w+)", cell.source, re.MULTILINE)
    return names


def exporting_notebooks(modules: Path) -> dict:
    """Dotted module (e.g. ``core.optimizers``) -> (notebook path relative to the repo, exercise names)."""
    found = {}
    for path in sorted(modules.rglob("*.ipynb")):
        if not _wanted(path.relative_to(modules)):
            continue
        nb = nbformat.read(path, as_version=4)
        try:
            module = target_module(nb)
        except Exception:  # a notebook that exports nothing
            continue
        found[module] = (path.relative_to(modules.parent).as_posix(), exercise_names(nb))
    return found


def placeholder(dotted: str, notebook: str | None, names: list) -> str:
    """The text that stands where the reference solution module would be."""
    if notebook is None:
        how = "It is built from one of your module notebooks; export that notebook."
        command = "python -m tinytorch.export modules/<module>/<notebook>.ipynb"
    else:
        how = f"Work through {notebook}; its last cell exports your code here, as does"
        command = f"python -m tinytorch.export {notebook}"
    what = f" ({', '.join(names)})" if names else ""
    return f'''"""tinytorch.{dotted}: a placeholder until you export your own code{what}.

{how}

    {command}

The export replaces this whole file with the exported cells of your notebook, and
refuses while an exercise still raises NotImplementedError.
"""
raise ImportError(
    "tinytorch.{dotted} is not written yet: it is yours to build. Finish the exercises in "
    "{notebook or 'its module notebook'}, then run `{command}` (or the notebook's last cell) "
    "to export your classes{what} into tinytorch/{dotted.replace('.', '/')}.py.",
    name="tinytorch.{dotted}",
)
'''


def _copy_tree(src: Path, dest: Path) -> list:
    written = []
    for path in _files(src):
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        written.append(target)
    return written


# --------------------------------------------------------------------------- pyproject
def _toml_value(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string of printable text is a TOML basic string
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + "".join(f"    {_toml_value(v)},\n" for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def student_pyproject(instructor: dict) -> str:
    """pyproject.toml of the student repository, derived from the instructor's.

    Same version, Python and runtime dependencies; the ``course`` extra (JupyterLab,
    nbgrader, Jupytext...) so ``pip install -e .[course]`` and environment.yml work;
    only the tinytorch package, no autograder, no instructor test extras.
    """
    project = instructor["project"]
    course = [r for r in project.get("optional-dependencies", {}).get("course", [])
              if _requirement_name(r) not in INSTRUCTOR_ONLY_PACKAGES]
    dependencies = [r for r in project.get("dependencies", [])
                    if _requirement_name(r) not in INSTRUCTOR_ONLY_PACKAGES]
    lines = [
        "# The student copy of TinyTorch module 07, written by `make student-dist`.",
        "# Install for work:  pip install -r binder/requirements.txt && bash binder/postBuild",
        "",
        "[build-system]",
        f"requires = {_toml_value(instructor['build-system']['requires'])}",
        f"build-backend = {_toml_value(instructor['build-system']['build-backend'])}",
        "",
        "[project]",
        f"name = {_toml_value(STUDENT_PROJECT_NAME)}",
        f"version = {_toml_value(project['version'])}",
        f"description = {_toml_value('TinyTorch module 07 (student copy): build SGD, Adam and AdamW yourself.')}",
        'readme = "README.md"',
        f"requires-python = {_toml_value(project['requires-python'])}",
    ]
    if "license" in project:
        lines.append(f"license = {_toml_value(project['license'])}")
    lines += [
        f"dependencies = {_toml_value(dependencies)}",
        "",
        "[project.optional-dependencies]",
        "# JupyterLab with Jupytext and nbgrader's Validate button: the same tools as Binder.",
        f"course = {_toml_value(course)}",
        "",
        "[tool.setuptools.packages.find]",
        'include = ["tinytorch*"]',
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- README
def student_readme(notebooks: dict) -> str:
    nb_lines = "\n".join(f"* `{nb}`: write {', '.join(f'`{n}`' for n in names) or 'the exercises'}; "
                         f"export lands in `tinytorch/{module.replace('.', '/')}.py`"
                         for module, (nb, names) in sorted(notebooks.items()))
    first = next(iter(sorted(notebooks.values())), ("modules/<module>/<notebook>.ipynb", []))[0]
    return f"""# TinyTorch, module 07: Optimizers (your repository)

You build the optimizers that every training loop ends with: `Optimizer`, `SGD`
(with momentum and weight decay), `Adam` and `AdamW`, then measure their memory.
The notebook explains each update rule, gives you the signatures and docstrings,
and checks your code with tests.

{nb_lines}

## 1. Open the notebook

**On Binder.** Launch this repository on <https://mybinder.org>: the `binder/`
folder describes the environment (JupyterLab, Jupytext, nbgrader's Validate
button, and this repository's `tinytorch` package). Open `{first}`.
A Binder session is temporary: download your notebook before you leave.

**On your own machine** (Python 3.11 or newer):

```bash
python -m venv .venv
source .venv/bin/activate            # Windows: .venv\\Scripts\\activate
python -m pip install -r binder/requirements.txt
bash binder/postBuild                # installs tinytorch (editable), sets up JupyterLab
jupyter lab {first}
```

**With conda:** `conda env create -f environment.yml`, `conda activate tinytorch-07`,
then `bash binder/postBuild`.

## 2. Work through it, and run the tests

Each exercise cell holds a class whose method bodies read
`# YOUR CODE HERE` / `raise NotImplementedError()`. Replace those two lines with
your code; keep the class line, the signatures and the docstrings.

* **Test cells.** Under every exercise a "Test your ..." cell runs the visible
  tests. Run the exercise cell, then its test cell (Shift+Enter). It prints
  `...: all visible tests pass` when your class passes; until then it shows the
  failing assertion or the `NotImplementedError`.
* **Run everything.** *Run > Run All Cells* runs the notebook top to bottom,
  as the grader will. Later sections (training, memory, timing) use all four
  classes.
* **Validate.** The **Validate** button in the notebook toolbar saves the notebook,
  runs it from a fresh kernel and lists every test cell that fails. From a terminal:
  `nbgrader validate {first}`.

Your grade also uses tests you do not see; passing the visible ones is necessary,
not sufficient. Read the rules in each exercise's text.

## 3. Export your classes into tinytorch

Later modules import the optimizers from the package, so they train with *your* code:

```bash
python -m tinytorch.export {first}
```

(the notebook's last cell does the same). The export refuses, naming the classes,
while any exercise still raises `NotImplementedError`; finish them all, then export.
It writes the notebook's `#| export` cells to `tinytorch/core/optimizers.py`;
re-export after every change to the notebook (edits made in that file are overwritten).
Afterwards, in any Python of this environment:

```python
from tinytorch.core.optimizers import SGD, Adam, AdamW
```

Until you export, `tinytorch/core/optimizers.py` is a placeholder whose import fails
with a message saying exactly this.

## What is in this repository

| Path | What it is |
|------|------------|
| `modules/` | your notebooks |
| `tinytorch/` | the package your exports go into (`core/tensor.py` and `core/layers.py` stand in for modules 01-06) |
| `binder/` | the environment: `requirements.txt` and `postBuild` |
| `environment.yml` | the same environment for conda |
| `pyproject.toml` | the `tinytorch` package (`pip install -e .[course]`) |
"""


STUDENT_GITIGNORE = """\
.venv/
__pycache__/
*.egg-info/
.ipynb_checkpoints/
.pytest_cache/
"""


# --------------------------------------------------------------------------- check
def _texts(path: Path) -> list:
    """The text views of a file that a leak could hide in: the raw text, and a notebook's cell sources."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []
    texts = [raw]
    if path.suffix == ".ipynb":
        nb = nbformat.reads(raw, as_version=4)
        texts += [cell.source for cell in nb.cells]
    return texts


def check_dist(dest: Path) -> None:
    """Raise DistError if DEST holds instructor-only material (a coarse, fast guard).

    The thorough proof is tests/test_student_dist.py: this checks for nbgrader's
    solution/hidden-test marker lines, generated reference modules, instructor paths,
    autograder imports and notebook outputs.
    """
    dest = Path(dest)
    problems = [f"{name} must not be in a student repository"
                for name in FORBIDDEN if (dest / name).exists()]
    for path in _files(dest):
        rel = path.relative_to(dest)
        if rel.parts[0] == ".git":
            continue
        for text in _texts(path):
            lines = [line.strip() for line in text.splitlines()]
            for marker in NBGRADER_MARKERS:
                if marker in lines:
                    problems.append(f"{rel}: contains the nbgrader marker line {marker!r}")
            if lines and lines[0].startswith(GENERATED_PREFIX):
                problems.append(f"{rel}: is a reference module generated from src/")
            if re.search(r"^\s*(from|import)\s+autograder\b", text, re.MULTILINE):
                problems.append(f"{rel}: imports the instructor's autograder")
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            if any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"):
                problems.append(f"{rel}: has outputs")
    if problems:
        raise DistError("the student dist is not clean:\n  " + "\n  ".join(dict.fromkeys(problems)))


# --------------------------------------------------------------------------- build
def _prepare(dest: Path, force: bool) -> None:
    dest = dest.resolve()
    if dest == ROOT or dest in ROOT.parents:
        raise DistError(f"refusing to write the student dist into {dest}: it holds this repository")
    if dest.exists() and not dest.is_dir():
        raise DistError(f"{dest} exists and is not a directory")
    if dest.exists() and any(dest.iterdir()):
        if not force:
            raise DistError(f"{dest} is not empty; pass --force to replace a previous student dist "
                            f"(only {', '.join(MANAGED)} are replaced; .git is kept)")
        for name in FORBIDDEN:
            if (dest / name).exists():
                raise DistError(f"{dest / name} exists: {dest} does not look like a student dist; not touching it")
        for name in MANAGED:
            path = dest / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    dest.mkdir(parents=True, exist_ok=True)


def build(dest: Path, root: Path = ROOT, force: bool = False) -> list:
    """Write the student repository into DEST and return the files written."""
    dest = Path(dest)
    root = Path(root)
    _prepare(dest, force)
    written = []

    # Notebooks: the nbgrader release, outputs cleared.
    modules = root / "modules"
    for path in _files(modules):
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".ipynb":
            nbformat.write(student_notebook(path), target)
        else:
            shutil.copy2(path, target)
        written.append(target)
    notebooks = exporting_notebooks(modules)

    # The package, with every reference module replaced by a placeholder.
    for path in _files(root / "tinytorch"):
        rel = path.relative_to(root)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text(encoding="utf-8") if path.suffix == ".py" else None
        if text is not None and text.startswith(GENERATED_PREFIX):
            dotted = ".".join(rel.with_suffix("").parts[1:])
            notebook, names = notebooks.get(dotted, (None, []))
            target.write_text(placeholder(dotted, notebook, names), encoding="utf-8")
        else:
            shutil.copy2(path, target)
        written.append(target)

    # Environment files, unchanged: the same Binder setup as the course repository.
    written += _copy_tree(root / "binder", dest / "binder")
    shutil.copy2(root / "environment.yml", dest / "environment.yml")
    written.append(dest / "environment.yml")

    instructor = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    for name, text in (("pyproject.toml", student_pyproject(instructor)),
                       ("README.md", student_readme(notebooks)),
                       (".gitignore", STUDENT_GITIGNORE)):
        (dest / name).write_text(text, encoding="utf-8")
        written.append(dest / name)

    try:
        check_dist(dest)
    except DistError:
        for name in MANAGED:  # leave nothing half-clean behind
            path = dest / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        raise
    return written


# --------------------------------------------------------------------------- Binder-like venv
def binder_env(venv: Path, base: dict | None = None) -> dict:
    """Environment variables of a shell whose ``python``, ``pip`` and ``jupyter`` are VENV's."""
    env = dict(os.environ if base is None else base)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "CONDA_PREFIX"):
        env.pop(name, None)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{Path(venv) / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-60:])
        raise DistError(f"`{' '.join(map(str, command))}` failed with exit code {result.returncode}:\n{tail}")
    return result


def build_binder_venv(repo: Path, venv: Path, python: str | None = None, timeout: float = 1800) -> dict:
    """Do what repo2docker does with REPO/binder, in a new virtual environment VENV.

    ``python -m venv VENV``; ``pip install -r binder/requirements.txt`` from REPO; then
    ``binder/postBuild`` from REPO with VENV first on PATH. Returns the seconds each took.
    """
    repo, venv = Path(repo).resolve(), Path(venv).resolve()
    if venv.exists():
        raise DistError(f"{venv} already exists: a Binder-like environment starts empty")
    start = time.monotonic()
    _run([python or sys.executable, "-m", "venv", venv], timeout=timeout)
    env = binder_env(venv)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--no-input", "-r", repo / "binder" / "requirements.txt"],
         cwd=repo, env=env, timeout=timeout)
    installed = time.monotonic()
    post_build = _run(["bash", repo / "binder" / "postBuild"], cwd=repo, env=env, timeout=timeout)
    done = time.monotonic()
    return {"requirements": installed - start, "postBuild": done - installed,
            "postBuild_output": post_build.stdout + post_build.stderr}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="directory of the student repository")
    parser.add_argument("--force", action="store_true",
                        help="replace a previous student dist in DEST (keeps DEST/.git)")
    parser.add_argument("--binder-venv", type=Path, metavar="VENV",
                        help="then build a new venv VENV from DEST/binder as Binder would, and run postBuild")
    args = parser.parse_args(argv)
    try:
        written = build(args.dest, force=args.force)
        print(f"wrote {len(written)} files to {args.dest}: a student repository without solutions")
        if args.binder_venv:
            times = build_binder_venv(args.dest, args.binder_venv)
            check_dist(args.dest)
            print(f"built {args.binder_venv}: requirements {times['requirements']:.0f} s, "
                  f"postBuild {times['postBuild']:.0f} s; try it with\n"
                  f"  cd {args.dest} && {args.binder_venv.resolve()}/bin/jupyter lab")
    except DistError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
