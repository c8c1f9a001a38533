"""The student distribution holds no solution, and the environment files agree.

What counts as instructor-only ("secret") material, and how a leak is detected
------------------------------------------------------------------------------
Secret sources:

* solution regions: lines between ``### BEGIN SOLUTION`` / ``### END SOLUTION`` in
  src/07_optimizers/07_optimizers.py;
* hidden tests: lines between ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``;
* the instructor notebook source/07_optimizers/optimizers.ipynb (every cell);
* the reference build tinytorch/core/optimizers.py (``# DO NOT EDIT: generated from src/``);
* reference data: every file under autograder/.

A secret line is a line of one of those, stripped of indentation, that

1. has at least ``MIN_CHARS`` (12) characters and a letter or digit: shorter lines
   (``return``, ``continue``, ``return None``, ``pass``, ``\"\"\"``, ``)``) occur in
   any Python file and say nothing about a solution; every solution line of this
   module of 12 characters or more is a statement specific to it;
2. does not also occur, anywhere (as a substring), in the material the course
   publishes anyway: the source outside the solution and hidden-test regions (as
   written and as Jupytext turns it into cells), and the instructor repository's own
   non-reference package and environment files. ``import numpy as np`` in
   autograder/ is no secret when the notebook students get starts with it, and the
   solution line ``self.step_count = 0`` is no secret when the docstring students get
   says "set ``self.step_count = 0``". (The student notebook in modules/ is deliberately
   *not* part of this allow-list: it is one of the things under test.)

A file of the dist leaks when any secret line is a substring of any text view of
it: its bytes decoded as UTF-8, and, for JSON files such as notebooks, every JSON
string decoded (so escaped quotes and newlines in cell sources cannot hide a line).
Whole files are compared by SHA-256 as well, and binary reference data by sampled
32-byte chunks. ``test_scanner_finds_planted_leaks`` plants leaks and proves the scan
reports them, so a broken scanner cannot pass silently.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import nbformat
import pytest
from support import STUDENT_SGD_CHECK, solution_source
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from tinytorch.export import read_notebook
from tools import student_dist

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "07_optimizers" / "07_optimizers.py"
INSTRUCTOR_NB = ROOT / "source" / "07_optimizers" / "optimizers.ipynb"
REFERENCE_MODULE = ROOT / "tinytorch" / "core" / "optimizers.py"
STUDENT_NB = Path("modules") / "07_optimizers" / "optimizers.ipynb"
GENERATED_PREFIX = "# DO NOT EDIT: generated from src/"
MIN_CHARS = 12
REGIONS = {"### BEGIN SOLUTION": ("### END SOLUTION", "solution"),
           "### BEGIN HIDDEN TESTS": ("### END HIDDEN TESTS", "hidden test")}
# The tools students need, which Binder must install and the `course` extra must list.
STUDENT_TOOLS = {"jupyterlab", "notebook", "jupytext", "nbgrader", "ipykernel"}
DIST_TOP_LEVEL = {"modules", "tinytorch", "binder", "environment.yml", "pyproject.toml", "README.md", ".gitignore"}
STUB = re.compile(r"#\s*YOUR CODE HERE\s*\n\s*raise NotImplementedError\(\)")  # nbgrader's stub, indented


# ----------------------------------------------------------------------------- secrets
def _strip_lines(text: str) -> list:
    return [line.strip() for line in text.splitlines()]


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
    assert end is None, f"{where}: a region is not closed"
    return secret, public


def source_regions() -> tuple:
    """Solution and hidden-test lines of the hand-written source, and its other lines.

    The other lines are taken both as written in the .py file and as Jupytext reads them
    into notebook cells (markdown without its leading '# '), which is how students see them.
    """
    secret, public = split_regions(_strip_lines(SRC.read_text()), str(SRC))
    for cell in read_notebook(SRC).cells:
        public += split_regions(_strip_lines(cell.source), str(SRC))[1]
    return secret, public


def _is_generated(path: Path) -> bool:
    return path.suffix == ".py" and path.read_text().startswith(GENERATED_PREFIX)


def _repo_files(top: Path):
    for path in sorted(top.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and ".ipynb_checkpoints" not in path.parts:
            yield path


def public_text() -> str:
    """The text the course publishes anyway, one stripped line after another (module docstring, rule 2)."""
    _, public = source_regions()
    lines = set(public)
    for path in _repo_files(ROOT / "tinytorch"):
        if path.suffix == ".py" and not _is_generated(path):
            lines.update(_strip_lines(path.read_text()))
    for path in [*_repo_files(ROOT / "binder"), ROOT / "environment.yml", ROOT / "pyproject.toml"]:
        lines.update(_strip_lines(path.read_text()))
    return "\n".join(sorted(lines))


def distinctive(lines, public: str) -> list:
    return sorted({line for line in lines
                   if len(line) >= MIN_CHARS and re.search(r"[A-Za-z0-9]", line) and line not in public})


def secret_material() -> dict:
    """kind -> {'lines': [...], 'hashes': {sha256: path}, 'chunks': [(bytes, path)]}."""
    public = public_text()
    regions, _ = source_regions()
    secrets = {kind: {"lines": distinctive(lines, public), "hashes": {}, "chunks": []}
               for kind, lines in regions.items()}

    instructor = nbformat.read(INSTRUCTOR_NB, as_version=4)
    secrets["instructor notebook"] = {
        "lines": distinctive((l for c in instructor.cells for l in _strip_lines(c.source)), public),
        "hashes": {hashlib.sha256(INSTRUCTOR_NB.read_bytes()).hexdigest(): INSTRUCTOR_NB}, "chunks": []}

    generated = [p for p in _repo_files(ROOT / "tinytorch") if _is_generated(p)]
    assert REFERENCE_MODULE in generated, "the reference build tinytorch/core/optimizers.py is missing: run generate"
    secrets["reference module"] = {
        "lines": distinctive((l for p in generated for l in _strip_lines(p.read_text())), public),
        "hashes": {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in generated}, "chunks": []}

    data = {"lines": [], "hashes": {}, "chunks": []}
    for path in _repo_files(ROOT / "autograder"):
        raw = path.read_bytes()
        data["hashes"][hashlib.sha256(raw).hexdigest()] = path
        try:
            data["lines"] += distinctive(_strip_lines(raw.decode("utf-8")), public)
        except UnicodeDecodeError:  # binary reference data: sample its payload
            data["chunks"] += [(raw[i:i + 32], path) for i in range(len(raw) // 4, len(raw) - 32,
                                                                      max(32, len(raw) // 16))][:8]
    secrets["reference data"] = data
    return secrets


@pytest.fixture(scope="module")
def secrets() -> dict:
    found = secret_material()
    # Guards against a vacuous scan: the source really has this much to hide.
    assert len(found["solution"]["lines"]) >= 50, found["solution"]["lines"]
    assert len(found["hidden test"]["lines"]) >= 2, found["hidden test"]["lines"]
    assert found["reference data"]["hashes"], "autograder/ has no files to protect"
    return found


# ----------------------------------------------------------------------------- scan
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


def scan(dist: Path, secrets: dict) -> list:
    """Every (file, kind, evidence) where the dist holds secret material."""
    leaks = []
    for path in sorted(dist.rglob("*")):
        if not path.is_file() or ".git" in path.relative_to(dist).parts:
            continue
        rel = path.relative_to(dist).as_posix()
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        views = text_views(raw)
        for kind, found in secrets.items():
            if digest in found["hashes"]:
                leaks.append((rel, kind, f"identical to {found['hashes'][digest].relative_to(ROOT)}"))
            for line in found["lines"]:
                if any(line in view for view in views):
                    leaks.append((rel, kind, line))
            for chunk, origin in found["chunks"]:
                if chunk in raw:
                    leaks.append((rel, kind, f"bytes of {origin.relative_to(ROOT)}"))
    return leaks


def assert_no_leaks(dist: Path, secrets: dict) -> int:
    leaks = scan(dist, secrets)
    report = "\n".join(f"  {rel}: {kind}: {evidence}" for rel, kind, evidence in leaks[:40])
    assert not leaks, f"{len(leaks)} pieces of instructor-only material in the student dist:\n{report}"
    paths = [p.relative_to(dist) for p in dist.rglob("*")]
    forbidden = [p for p in paths if {"src", "source", "autograder", "tests", "tools"} & set(p.parts)]
    assert not forbidden, f"instructor paths in the student dist: {forbidden}"
    return sum(1 for p in paths if (dist / p).is_file())


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("student-dist") / "repo"
    result = subprocess.run([sys.executable, "-m", "tools.student_dist", str(dest)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "without solutions" in result.stdout
    return dest


@pytest.fixture
def dist_copy(dist, tmp_path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(dist, copy)
    return copy




def fill_in(notebook: Path, grade_ids, extra: str = "") -> None:
    nb = nbformat.read(notebook, as_version=4)
    ids = set(grade_ids)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in ids:
            assert STUB.search(cell.source), f"{grade_id} should still hold the stub"
            cell.source = solution_source(grade_id) + (extra if grade_id == "sgd" else "")
            ids.discard(grade_id)
    assert not ids, f"no cells {ids} in {notebook}"
    nbformat.write(nb, notebook)


def run_python(code_or_args, cwd: Path, python: str = sys.executable, env=None) -> subprocess.CompletedProcess:
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONPATH", None)
    return subprocess.run([python, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# ----------------------------------------------------------------------------- environment files
def _requirements(lines) -> dict:
    """name -> SpecifierSet of requirement lines (options, comments and local paths skipped)."""
    found = {}
    for line in lines:
        line = line.split(" #")[0].strip()
        if not line or line.startswith(("#", "-", ".")):
            continue
        requirement = Requirement(line)
        found[canonicalize_name(requirement.name)] = requirement.specifier
    return found


def conda_requirement(entry: str) -> tuple:
    """A conda match spec ('numpy', 'numpy=2.1', 'numpy>=1.26,<3') as (name, SpecifierSet)."""
    match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(.*)", entry)
    name, spec = canonicalize_name(match.group(1)), match.group(2).strip()
    if re.fullmatch(r"=[^=<>!]+", spec):  # conda's '=3.11' means 3.11.*
        spec = f"=={spec[1:].rstrip('.*')}.*"
    return name, SpecifierSet(spec)


def compatible(a: SpecifierSet, b: SpecifierSet) -> bool:
    """True when some version satisfies both ranges (checked at every boundary they name)."""
    candidates = {Version("0")}
    for spec in [*a, *b]:
        version = Version(spec.version.replace(".*", ""))
        candidates |= {version, Version(f"{version.base_version}.1"), Version(f"{version.base_version}.post1")}
    return any(a.contains(v, prereleases=True) and b.contains(v, prereleases=True) for v in candidates)


def test_compatible_is_a_real_check():
    assert compatible(SpecifierSet(">=4.2,<4.7"), SpecifierSet("==4.6.6"))
    assert compatible(SpecifierSet(">=1.26,<3"), SpecifierSet(">=2"))
    assert not compatible(SpecifierSet(">=4.2,<4.7"), SpecifierSet(">=4.7"))
    assert not compatible(SpecifierSet("<0.9"), SpecifierSet(">=0.9.6,<0.10"))


def environment_files(repo: Path) -> tuple:
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    runtime = _requirements(pyproject["dependencies"])
    extras = {name: _requirements(reqs) for name, reqs in pyproject.get("optional-dependencies", {}).items()}
    binder_lines = (repo / "binder" / "requirements.txt").read_text().splitlines()
    environment = yaml.safe_load((repo / "environment.yml").read_text())
    return pyproject, runtime, extras, binder_lines, environment


@pytest.mark.parametrize("which", ["course repository", "student dist"])
def test_binder_environment_yml_and_pyproject_agree(which, request):
    repo = ROOT if which == "course repository" else request.getfixturevalue("dist")
    pyproject, runtime, extras, binder_lines, environment = environment_files(repo)
    binder = _requirements(binder_lines)
    course = extras["course"]
    declared = {**course, **runtime}

    # binder/requirements.txt: the runtime dependencies and the student tools, nothing pyproject lacks.
    assert set(runtime) <= set(binder), f"binder/requirements.txt lacks {set(runtime) - set(binder)}"
    assert STUDENT_TOOLS <= set(binder), f"binder/requirements.txt lacks {STUDENT_TOOLS - set(binder)}"
    assert STUDENT_TOOLS <= set(course), f"the course extra lacks {STUDENT_TOOLS - set(course)}"
    undeclared = set(binder) - set(declared)
    assert not undeclared, f"binder installs what pyproject.toml does not declare: {undeclared}"
    for name, spec in binder.items():
        assert compatible(spec, declared[name]), f"{name}: binder {spec} vs pyproject {declared[name]}"
    assert "torch" not in binder and not any(l.strip().startswith("torch") for l in binder_lines)

    # environment.yml: Python within requires-python; pip installs this package with the course extra.
    deps = environment["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = [line for d in deps if isinstance(d, dict) for line in d.get("pip", [])]
    python = dict(map(conda_requirement, conda))["python"]
    assert python.contains("3.11.7") and not python.contains("3.12.0"), f"environment.yml: python {python}"
    assert compatible(python, SpecifierSet(pyproject["requires-python"])), python
    local = [line for line in pip if line.startswith(("-e .", "."))]
    assert local, f"environment.yml does not install this repository: {pip}"
    wanted_extras = {extra.strip() for line in local for group in re.findall(r"\[([^\]]*)\]", line)
                     for extra in group.split(",")}
    assert "course" in wanted_extras and wanted_extras <= set(extras), (local, list(extras))
    named = {**_requirements(pip), **{name: spec for name, spec in map(conda_requirement, conda)
                                       if name not in ("python", "pip")}}
    for name, spec in named.items():
        assert name in declared, f"environment.yml installs {name}, which pyproject.toml does not declare"
        assert compatible(spec, declared[name]), f"{name}: environment.yml {spec} vs pyproject {declared[name]}"
    # Conda users get at least what Binder installs.
    assert set(binder) <= set(runtime) | set().union(*(extras[e] for e in wanted_extras))


def test_post_build_is_an_executable_script():
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.read_text().startswith("#!/usr/bin/env bash\n")
    assert post_build.stat().st_mode & stat.S_IXUSR, "repo2docker runs binder/postBuild only if it is executable"
    syntax = subprocess.run(["bash", "-n", str(post_build)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


# ----------------------------------------------------------------------------- the dist
def test_dist_layout(dist):
    assert {p.name for p in dist.iterdir()} == DIST_TOP_LEVEL
    for path in (ROOT / "binder").iterdir():
        copied = dist / "binder" / path.name
        assert copied.read_bytes() == path.read_bytes()
        assert copied.stat().st_mode & stat.S_IXUSR == path.stat().st_mode & stat.S_IXUSR
    assert (dist / "environment.yml").read_bytes() == (ROOT / "environment.yml").read_bytes()

    # The notebook is nbgrader's release: stubs where solutions were, no hidden tests, no outputs.
    release = nbformat.read(ROOT / STUDENT_NB, as_version=4)
    shipped = nbformat.read(dist / STUDENT_NB, as_version=4)
    assert [c.source for c in shipped.cells] == [c.source for c in release.cells]
    solution_cells = [c for c in shipped.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert [c.metadata.nbgrader.grade_id for c in solution_cells] == ["optimizer", "sgd", "adam", "adamw"]
    assert all(STUB.search(c.source) for c in solution_cells)
    assert not any(c.get("outputs") for c in shipped.cells if c.cell_type == "code")

    # The package: everything but the reference build, which is a placeholder.
    shipped_py = sorted(p.relative_to(dist).as_posix() for p in (dist / "tinytorch").rglob("*.py"))
    repo_py = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tinytorch").rglob("*.py"))
    assert shipped_py == repo_py
    placeholder = (dist / "tinytorch" / "core" / "optimizers.py").read_text()
    assert not placeholder.startswith(GENERATED_PREFIX) and "class " not in placeholder
    assert "python -m tinytorch.export modules/07_optimizers/optimizers.ipynb" in placeholder

    # pyproject.toml: tinytorch only, no autograder, no torch.
    pyproject = tomllib.loads((dist / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["include"] == ["tinytorch*"]
    every_requirement = [*pyproject["project"]["dependencies"],
                         *[r for reqs in pyproject["project"]["optional-dependencies"].values() for r in reqs]]
    names = {canonicalize_name(Requirement(r).name) for r in every_requirement}
    assert not names & {"torch", "pytest", "playwright"}, names
    assert "autograder" not in (dist / "pyproject.toml").read_text()

    # README: how to open the notebook, run the tests and export.
    readme = (dist / "README.md").read_text()
    for needed in ("mybinder.org", "pip install -r binder/requirements.txt", "bash binder/postBuild",
                   "jupyter lab modules/07_optimizers/optimizers.ipynb", "all visible tests pass", "Validate",
                   "nbgrader validate modules/07_optimizers/optimizers.ipynb",
                   "python -m tinytorch.export modules/07_optimizers/optimizers.ipynb",
                   "from tinytorch.core.optimizers import SGD"):
        assert needed in readme, needed


def test_dist_holds_no_solution_hidden_test_reference_data_or_instructor_notebook(dist, secrets):
    files = assert_no_leaks(dist, secrets)
    assert files >= 10
    print(f"scanned {files} files against " + ", ".join(f"{len(s['lines'])} {k} lines" for k, s in secrets.items()))


def test_scanner_finds_planted_leaks(dist_copy, secrets):
    """The scan can fail: plant one piece of each kind of secret and every one is reported."""
    solution_line = secrets["solution"]["lines"][len(secrets["solution"]["lines"]) // 2]
    hidden_line = secrets["hidden test"]["lines"][0]
    nb_path = dist_copy / STUDENT_NB
    nb = nbformat.read(nb_path, as_version=4)
    sgd = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "sgd")
    sgd.source = sgd.source.replace("# YOUR CODE HERE", f'# YOUR CODE HERE\n        x = "{solution_line}"', 1)
    nbformat.write(nb, nb_path)  # JSON-escaped inside the notebook
    with (dist_copy / "README.md").open("a") as readme:
        readme.write(f"\n    {hidden_line}\n")
    reference_data = next(iter(secrets["reference data"]["hashes"].values()))
    shutil.copy(reference_data, dist_copy / "tinytorch" / "notes.txt")
    shutil.copy(INSTRUCTOR_NB, dist_copy / "modules" / "copy.ipynb")

    found = {(rel, kind) for rel, kind, _ in scan(dist_copy, secrets)}
    assert (STUDENT_NB.as_posix(), "solution") in found
    assert ("README.md", "hidden test") in found
    assert ("tinytorch/notes.txt", "reference data") in found
    assert ("modules/copy.ipynb", "instructor notebook") in found
    assert ("modules/copy.ipynb", "solution") in found
    with pytest.raises(AssertionError):
        assert_no_leaks(dist_copy, secrets)
    # The tool's own guard refuses such a dist too.
    with pytest.raises(student_dist.DistError):
        student_dist.check_dist(dist_copy)


def test_dest_must_be_empty_unless_forced_and_git_is_kept(dist_copy, tmp_path):
    result = run_python(["-m", "tools.student_dist", str(dist_copy)], cwd=ROOT)
    assert result.returncode == 1 and "not empty" in result.stderr
    (dist_copy / ".git").mkdir()
    (dist_copy / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (dist_copy / "modules" / "stale.txt").write_text("from an older dist")
    result = run_python(["-m", "tools.student_dist", str(dist_copy), "--force"], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert (dist_copy / ".git" / "HEAD").exists() and not (dist_copy / "modules" / "stale.txt").exists()
    # Never into the course repository itself, nor over something that is not a student dist.
    with pytest.raises(student_dist.DistError, match="holds this repository"):
        student_dist.build(ROOT, force=False)  # force=False: even a broken guard could not delete
    lookalike = tmp_path / "not-a-dist"
    (lookalike / "src").mkdir(parents=True)
    (lookalike / "modules").mkdir()
    result = run_python(["-m", "tools.student_dist", str(lookalike), "--force"], cwd=ROOT)
    assert result.returncode == 1 and "does not look like a student dist" in result.stderr
    assert (lookalike / "modules").is_dir() and (lookalike / "src").is_dir()


# ----------------------------------------------------------------------------- export in the dist
def export(dist: Path) -> subprocess.CompletedProcess:
    return run_python(["-m", "tinytorch.export", STUDENT_NB.as_posix()], cwd=dist)


def test_student_export_in_the_dist(dist_copy):
    dist = dist_copy
    target = dist / "tinytorch" / "core" / "optimizers.py"
    placeholder = target.read_text()

    # The dist's own package is the one imported, and it imports without the optimizers.
    result = run_python("import tinytorch, tinytorch.core.tensor, tinytorch.export; print(tinytorch.__file__)", dist)
    assert result.returncode == 0 and result.stdout.strip() == str(dist / "tinytorch" / "__init__.py"), result
    result = run_python("from tinytorch.core.optimizers import SGD", dist)
    assert result.returncode == 1 and "ImportError: tinytorch.core.optimizers is not written yet" in result.stderr
    assert "python -m tinytorch.export modules/07_optimizers/optimizers.ipynb" in result.stderr

    # All stubs: a clear refusal naming every unfinished class, and nothing written.
    result = export(dist)
    assert result.returncode == 1
    assert "Optimizer, SGD, Adam, AdamW still raise NotImplementedError" in result.stderr, result.stderr
    assert "Finish those exercises" in result.stderr
    assert target.read_text() == placeholder

    # Optimizer and SGD done (the instructor's cells, typed in by the "student"): still refused,
    # because the exporter writes the whole module or nothing. It names what is left.
    mark = f"student-{time.time_ns()}"
    fill_in(dist / STUDENT_NB, ["optimizer", "sgd"], extra=f'\n\n\nSGD.written_by = "{mark}"\n')
    result = export(dist)
    assert result.returncode == 1
    assert "Adam, AdamW still raise NotImplementedError" in result.stderr and "SGD" not in result.stderr
    assert target.read_text() == placeholder

    # Everything done: the export writes the student's module, and a fresh process imports their class.
    fill_in(dist / STUDENT_NB, ["adam", "adamw"])
    result = export(dist)
    assert result.returncode == 0, result.stderr
    assert re.search(r"Exported \d+ cells to .*tinytorch/core/optimizers\.py", result.stdout), result.stdout
    exported = target.read_text()
    assert exported.startswith("# Exported from your notebook optimizers.ipynb")
    assert f'SGD.written_by = "{mark}"' in exported
    check = STUDENT_SGD_CHECK
    result = run_python(check, dist)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(target), mark, "0.855"]


# ----------------------------------------------------------------------------- after postBuild
@pytest.mark.slow
def test_post_build_in_a_fresh_binder_venv_keeps_the_dist_clean(dist_copy, secrets, tmp_path, capsys):
    """Build the environment from the dist's binder/ files alone, run its postBuild, scan again."""
    venv = tmp_path / "binder-venv"
    start = time.monotonic()
    times = student_dist.build_binder_venv(dist_copy, venv)
    total = time.monotonic() - start
    with capsys.disabled():
        print(f"\n[binder venv] requirements {times['requirements']:.1f} s, postBuild {times['postBuild']:.1f} s, "
              f"total {total:.1f} s")
    assert "postBuild: tinytorch installed" in times["postBuild_output"]

    files = assert_no_leaks(dist_copy, secrets)
    student_dist.check_dist(dist_copy)
    new = {p.name for p in dist_copy.iterdir()} - DIST_TOP_LEVEL
    assert all(name.endswith(".egg-info") for name in new), new  # pip's editable-install metadata only

    # The venv imports the dist's package from anywhere (editable install), still without solutions.
    python = str(venv / "bin" / "python")
    env = student_dist.binder_env(venv)
    result = run_python("import tinytorch; print(tinytorch.__file__)", tmp_path, python=python, env=env)
    assert result.returncode == 0 and result.stdout.strip() == str(dist_copy / "tinytorch" / "__init__.py"), result
    result = run_python("import tinytorch.core.optimizers", tmp_path, python=python, env=env)
    assert result.returncode == 1 and "is not written yet" in result.stderr
    assert files >= 10
