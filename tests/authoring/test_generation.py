"""src/ is the single source: generated files match it, the student notebook leaks nothing."""

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from support import solution_source

from tinytorch.export import ExportRefused, export_student_notebook, read_notebook
from tools import generate

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / generate.SRC
STUDENT = ROOT / generate.STUDENT
INSTRUCTOR = ROOT / generate.INSTRUCTOR


def regions(text: str, begin: str, end: str) -> list:
    """Lines strictly inside every begin/end region."""
    out, inside = [], False
    for line in text.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            out.append(line.strip())
    return out


SOLUTION_LINES = regions(SRC.read_text(), "### BEGIN SOLUTION", "### END SOLUTION")
# Text a student is meant to see: everything outside the solution regions.
GIVEN_TEXT = "\n".join(line for line in SRC.read_text().splitlines() if line.strip() not in SOLUTION_LINES)
HIDDEN_LINES = regions(SRC.read_text(), "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def test_generated_files_match_the_source():
    assert generate.drifted() == [], "run `make generate` and commit the result"


def test_drift_is_detected(tmp_path):
    """The drift check can fail: a hand edit to a generated file is reported."""
    for rel in generate.outputs():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((ROOT / rel).read_text())
    edited = tmp_path / "content/m07_optimizers/solution/optimizers.py"
    edited.write_text(edited.read_text().replace("self.lr = lr", "self.lr = lr * 2", 1))
    starter = tmp_path / "tinytorch/core/optimizers.py"
    starter.write_text(starter.read_text() + "\nclass SGD: pass\n")
    assert sorted(generate.drifted(tmp_path)) == [
        "content/m07_optimizers/solution/optimizers.py",
        "tinytorch/core/optimizers.py",
    ]


def test_reference_header_names_its_source():
    head = (ROOT / "content/m07_optimizers/solution/optimizers.py").read_text().splitlines()[0]
    assert head.startswith("# DO NOT EDIT: generated from src/07_optimizers/07_optimizers.py")


def test_the_package_holds_placeholders_that_say_export_has_not_run():
    """tinytorch/core/optimizers.py is what a student starts from: no solution, a clear error per name."""
    code = (
        "import tinytorch.core.optimizers as m\n"
        "for name in ('Optimizer', 'SGD', 'Adam', 'AdamW', 'state_bytes'):\n"
        "    try:\n"
        "        getattr(m, name)([])\n"
        "    except m.NotExportedError as err:\n"
        "        print(err)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5, result.stdout
    for name, line in zip(("Optimizer", "SGD", "Adam", "AdamW", "state_bytes"), lines):
        assert line.startswith(
            f"tinytorch.core.optimizers.{name} is not exported yet: the export cell of "
            "modules/07_optimizers/optimizers.ipynb has not run"
        ), line
        assert "python -m tinytorch.export modules/07_optimizers/optimizers.ipynb" in line
    starter = (ROOT / "tinytorch/core/optimizers.py").read_text()
    reference = (ROOT / "content/m07_optimizers/solution/optimizers.py").read_text()
    assert "self.lr = lr" in reference and "self.lr" not in starter and "np." not in starter


def test_student_notebook_has_no_solution_line_and_no_hidden_test():
    text = STUDENT.read_text()
    meaningful = [line for line in SOLUTION_LINES if len(line) > 12 and line not in GIVEN_TEXT]
    assert len(meaningful) > 40
    leaked = [line for line in meaningful if json.dumps(line)[1:-1] in text]
    assert leaked == []
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert not any(json.dumps(line)[1:-1] in text for line in HIDDEN_LINES if len(line) > 12)


def test_student_notebook_keeps_class_lines_signatures_and_docstrings():
    nb = nbformat.read(STUDENT, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for signature in (
        "class Optimizer:",
        "class SGD(Optimizer):",
        "class Adam(Optimizer):",
        "class AdamW(Adam):",
        "def set_momentum_state(self, state",
        "def apply_update(self, weights: np.ndarray, update",
        '"""The raw gradient: decoupled decay never enters the moments."""',
    ):
        assert signature in code
    stubs = len(re.findall(r"# YOUR CODE HERE\n\s+raise NotImplementedError\(\)", code))
    instructor = nbformat.read(INSTRUCTOR, as_version=4)
    assert stubs == sum(c.source.count("### BEGIN SOLUTION") for c in instructor.cells if c.cell_type == "code")


def test_each_class_is_in_exactly_one_solution_cell():
    nb = nbformat.read(INSTRUCTOR, as_version=4)
    solution = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"]
    assert [c.metadata.nbgrader.grade_id for c in solution] == ["optimizer", "sgd", "adam", "adamw"]
    for cell, name in zip(solution, ("Optimizer", "SGD", "Adam", "AdamW")):
        assert len(re.findall(r"^class ", cell.source, re.M)) == 1 and f"class {name}" in cell.source
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert all(c.metadata.nbgrader["schema_version"] == 3 for c in nb.cells if "nbgrader" in c.metadata)


def test_export_refuses_unfinished_exercises(tmp_path):
    package = tmp_path / "pkg"
    (package / "core").mkdir(parents=True)
    with pytest.raises(ExportRefused, match="Optimizer, SGD, Adam, AdamW still raise NotImplementedError"):
        export_student_notebook(STUDENT, package_root=package)
    assert not (package / "core/optimizers.py").exists()


def test_export_of_a_finished_notebook_imports(tmp_path):
    package = tmp_path / "tinytorch"
    (package / "core").mkdir(parents=True)
    nb = nbformat.read(STUDENT, as_version=4)
    for cell in nb.cells:  # the student types in the instructor's solutions
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = solution_source(cell.metadata.nbgrader.grade_id)
    finished = tmp_path / "optimizers.ipynb"
    nbformat.write(nb, finished)
    message = export_student_notebook(finished, package_root=package)
    assert message.startswith("Exported")
    written = (package / "core/optimizers.py").read_text()
    assert written.startswith("# Exported from your notebook optimizers.ipynb")
    assert "### BEGIN SOLUTION" not in written and "class AdamW(Adam)" in written


def test_the_instructor_notebook_never_exports_into_the_package(tmp_path):
    """Running the instructor notebook (its last cell exports) must not put the reference into tinytorch."""
    package = tmp_path / "tinytorch"
    (package / "core").mkdir(parents=True)
    message = export_student_notebook(INSTRUCTOR, package_root=package)
    assert message.startswith("Not exporting: optimizers.ipynb is the instructor's notebook")
    assert not (package / "core/optimizers.py").exists()


def test_source_reads_as_a_notebook_in_the_documented_order():
    nb = read_notebook(SRC)
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## ")]
    order = [
        "Foundations",
        "Shared helpers",
        "Exercise: the `Optimizer`",
        "Exercise: `SGD`",
        "Exercise: `Adam`",
        "Exercise: `AdamW`",
        "Integration",
        "Systems analysis",
        "Reflection",
        "Summary",
    ]
    positions = [next(i for i, h in enumerate(headings) if key in h) for key in order]
    assert positions == sorted(positions)


@pytest.mark.slow
def test_reference_notebook_runs_top_to_bottom_without_error():
    from tools.run_notebook import run

    nb, seconds = run(INSTRUCTOR)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Adam          3.00x the parameter bytes" in text
    assert "SGD+momentum  2.00x the parameter bytes" in text
    figures = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert figures >= 4
    print(f"reference notebook: {seconds:.1f} s")


def _nbgrader(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PATH": f"{Path(sys.executable).parent}:{__import__('os').environ['PATH']}"},
    )


@pytest.mark.slow
def test_nbgrader_validate_passes_on_the_reference():
    result = _nbgrader("validate", str(INSTRUCTOR))
    assert "Success! Your notebook passes all the tests." in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
def test_every_visible_test_fails_on_the_student_stubs():
    result = _nbgrader("validate", "--invert", str(STUDENT))
    assert "Success! The notebook does not pass any tests." in result.stdout, result.stdout + result.stderr


def test_a_failing_generation_changes_no_committed_file(monkeypatch):
    """nbgrader deletes its release folder before writing: generation runs in a scratch course and
    writes the course's files only after every output was produced."""
    from nbgrader.apps import NbGraderAPI

    before = {rel: (ROOT / rel).read_bytes() for rel in generate.outputs()}
    monkeypatch.setattr(
        NbGraderAPI,
        "generate_assignment",
        lambda self, *a, **k: {"success": False, "log": "simulated failure", "error": "boom"},
    )
    with pytest.raises(RuntimeError, match="nbgrader generate_assignment failed"):
        generate.main([])
    assert {rel: (ROOT / rel).read_bytes() for rel in before} == before
