"""The student distribution holds no solution, and the environment files agree.

What counts as a leak, and how it is found: tools/leaks.py (the scanner the tool uses too).
``test_scanner_finds_planted_leaks`` plants each kind of secret and proves the scan reports
it, so a broken scanner cannot pass silently.
"""

from __future__ import annotations

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
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from support import STUDENT_SGD_CHECK, solution_source

from tools import leaks, student_dist
from tools.binder_venv import binder_env

ROOT = Path(__file__).resolve().parents[2]
INSTRUCTOR_NB = ROOT / leaks.INSTRUCTOR_NB
STUDENT_NB = Path("modules") / "07_optimizers" / "optimizers.ipynb"
# The tools students need, which Binder must install and the `course` extra must list.
STUDENT_TOOLS = {"jupyterlab", "notebook", "jupytext", "nbgrader", "ipykernel"}
DIST_TOP_LEVEL = {
    "modules",
    "tinytorch",
    "binder",
    "environment.yml",
    "pyproject.toml",
    "README.md",
    ".gitignore",
    "MISCONCEPTIONS.md",
}
STUB = re.compile(r"#\s*YOUR CODE HERE\s*\n\s*raise NotImplementedError\(\)")  # nbgrader's stub, indented


@pytest.fixture(scope="module")
def secrets() -> dict:
    found = leaks.secret_material()
    # Guards against a vacuous scan: the source really has this much to hide.
    assert len(found["solution"]["lines"]) >= 50, found["solution"]["lines"]
    assert len(found["hidden test"]["lines"]) >= 2, found["hidden test"]["lines"]
    assert any(
        str(p).startswith("content/m07_optimizers/solution/") for p in found["reference data"]["hashes"].values()
    )
    assert any(line.startswith('"R|') for line in found["reference data"]["lines"]), "the reference data is not scanned"
    return found


def assert_no_leaks(dist: Path, secrets: dict) -> int:
    found = leaks.scan(dist, secrets)
    assert not found, leaks.report(found)
    paths = [p.relative_to(dist) for p in dist.rglob("*")]
    forbidden = [p for p in paths if {"src", "source", "autograder", "tests", "tools"} & set(p.parts)]
    assert not forbidden, f"instructor paths in the student dist: {forbidden}"
    return sum(1 for p in paths if (dist / p).is_file())


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("student-dist") / "repo"
    result = subprocess.run(
        [sys.executable, "-m", "tools.student_dist", str(dest)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
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
    assert "torch" not in binder and not any(line.strip().startswith("torch") for line in binder_lines)

    # environment.yml: Python within requires-python; pip installs this package with the course extra.
    deps = environment["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = [line for d in deps if isinstance(d, dict) for line in d.get("pip", [])]
    python = dict(map(conda_requirement, conda))["python"]
    assert python.contains("3.11.7") and not python.contains("3.12.0"), f"environment.yml: python {python}"
    assert compatible(python, SpecifierSet(pyproject["requires-python"])), python
    local = [line for line in pip if line.startswith(("-e .", "."))]
    assert local, f"environment.yml does not install this repository: {pip}"
    wanted_extras = {
        extra.strip() for line in local for group in re.findall(r"\[([^\]]*)\]", line) for extra in group.split(",")
    }
    assert "course" in wanted_extras and wanted_extras <= set(extras), (local, list(extras))
    named = {
        **_requirements(pip),
        **{name: spec for name, spec in map(conda_requirement, conda) if name not in ("python", "pip")},
    }
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
    solution_cells = [
        c for c in shipped.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"
    ]
    assert [c.metadata.nbgrader.grade_id for c in solution_cells] == ["optimizer", "sgd", "adam", "adamw"]
    assert all(STUB.search(c.source) for c in solution_cells)
    assert not any(c.get("outputs") for c in shipped.cells if c.cell_type == "code")

    # The package, copied as it is: it holds the student's starting placeholders, never the reference.
    for path in (ROOT / "tinytorch").rglob("*.py"):
        assert (dist / path.relative_to(ROOT)).read_bytes() == path.read_bytes(), path
    placeholder = (dist / "tinytorch" / "core" / "optimizers.py").read_text()
    assert "NotExportedError" in placeholder and "self." not in placeholder
    assert "python -m tinytorch.export modules/07_optimizers/optimizers.ipynb" in placeholder
    # The misconception catalog, for the names the feedback uses.
    assert (dist / "MISCONCEPTIONS.md").read_bytes() == (
        ROOT / "content" / "m07_optimizers" / "MISCONCEPTIONS.md"
    ).read_bytes()

    # pyproject.toml: tinytorch only, no autograder, no torch.
    pyproject = tomllib.loads((dist / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["include"] == ["tinytorch*"]
    every_requirement = [
        *pyproject["project"]["dependencies"],
        *[r for reqs in pyproject["project"]["optional-dependencies"].values() for r in reqs],
    ]
    names = {canonicalize_name(Requirement(r).name) for r in every_requirement}
    assert not names & {"torch", "pytest", "playwright"}, names
    assert "autograder" not in (dist / "pyproject.toml").read_text()

    # README: how to open the notebook, run the tests and export.
    readme = (dist / "README.md").read_text()
    for needed in (
        "mybinder.org",
        "pip install -r binder/requirements.txt",
        "bash binder/postBuild",
        "jupyter lab modules/07_optimizers/optimizers.ipynb",
        "all visible tests pass",
        "Validate",
        "nbgrader validate modules/07_optimizers/optimizers.ipynb",
        "python -m tinytorch.export modules/07_optimizers/optimizers.ipynb",
        "from tinytorch.core.optimizers import SGD",
    ):
        assert needed in readme, needed


def test_dist_holds_no_solution_hidden_test_reference_data_or_instructor_notebook(dist, secrets):
    files = assert_no_leaks(dist, secrets)
    assert files >= 10
    print(f"scanned {files} files against " + ", ".join(f"{len(s['lines'])} {k} lines" for k, s in secrets.items()))


def test_scanner_finds_planted_leaks(dist_copy, secrets, tmp_path):
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

    found = {(rel, kind) for rel, kind, _ in leaks.scan(dist_copy, secrets)}
    assert (STUDENT_NB.as_posix(), "solution") in found
    assert ("README.md", "hidden test") in found
    assert ("tinytorch/notes.txt", "reference data") in found
    assert ("modules/copy.ipynb", "instructor notebook") in found
    assert ("modules/copy.ipynb", "solution") in found
    with pytest.raises(AssertionError):
        assert_no_leaks(dist_copy, secrets)
    # A planted instructor-only file in the package: the tool itself refuses to finish, and cleans up.
    tool_copy = tmp_path / "course"
    for rel in (
        "modules",
        "tinytorch",
        "binder",
        "environment.yml",
        "pyproject.toml",
        "src",
        "source",
        "content/m07_optimizers/MISCONCEPTIONS.md",
        "content/m07_optimizers/solution",
        "content/m07_optimizers/reference",
    ):
        (tool_copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (ROOT / rel).is_dir() else shutil.copy2)(ROOT / rel, tool_copy / rel)
    shutil.copy(
        ROOT / "content/m07_optimizers/solution/optimizers.py", tool_copy / "tinytorch" / "core" / "reference.py"
    )
    with pytest.raises(student_dist.DistError, match="tinytorch/core/reference.py: reference data"):
        student_dist.build(tmp_path / "out", root=tool_copy)
    assert not (tmp_path / "out" / "tinytorch").exists()


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
    result = run_python("from tinytorch.core.optimizers import SGD; SGD([])", dist)
    assert result.returncode == 1
    assert "NotExportedError: tinytorch.core.optimizers.SGD is not exported yet" in result.stderr, result.stderr
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
def test_post_build_in_a_fresh_binder_venv_keeps_the_dist_clean(binder_repo, secrets, tmp_path, capsys):
    """Build the environment from the dist's binder/ files alone, run its postBuild, scan again."""
    # tests/conftest.py builds it once per session, and hands over the dist as postBuild left it.
    dist_copy, venv, times = binder_repo.dist, binder_repo.venv, binder_repo.times
    total = times["total"]
    with capsys.disabled():
        print(
            f"\n[binder venv] requirements {times['requirements']:.1f} s, postBuild {times['postBuild']:.1f} s, "
            f"total {total:.1f} s"
        )
    assert "postBuild: tinytorch installed" in times["postBuild_output"]

    files = assert_no_leaks(dist_copy, secrets)
    new = {p.name for p in dist_copy.iterdir()} - DIST_TOP_LEVEL
    assert all(name.endswith(".egg-info") for name in new), new  # pip's editable-install metadata only

    # The venv imports the dist's package from anywhere (editable install), still without solutions.
    python = str(venv / "bin" / "python")
    env = binder_env(venv)
    result = run_python("import tinytorch; print(tinytorch.__file__)", tmp_path, python=python, env=env)
    assert result.returncode == 0 and result.stdout.strip() == str(dist_copy / "tinytorch" / "__init__.py"), result
    result = run_python("import tinytorch.core.optimizers as m; m.Adam([])", tmp_path, python=python, env=env)
    assert result.returncode == 1 and "is not exported yet" in result.stderr
    assert files >= 10
