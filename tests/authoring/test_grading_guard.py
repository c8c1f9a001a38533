"""Under nbgrader (NBGRADER_EXECUTION set) the demonstrations skip their figures, timings, torch and
matplotlib; everyone else sees them all. One notebook run each way, shared by the tests (module-scoped)."""

import copy
import json
import re

import nbformat
import pytest
from conftest import ROOT
from nbconvert import HTMLExporter

from autograder.pages.sanitize import SanitizeSubmission
from tools.run_notebook import run

pytestmark = pytest.mark.slow
INSTRUCTOR = ROOT / "source/07_optimizers/optimizers.ipynb"

# The imports only a demonstration needs, and the ones that cost a grading most: torch about 3 s,
# matplotlib.pyplot about 1 s in a kernel.
DEMONSTRATION_ONLY = ("torch", "matplotlib")
# First cell: records every attempt to import those, even where one is not installed
# (a meta-path finder is asked before the import system looks anywhere).
RECORD_IMPORTS = f"""\
import importlib.abc
import sys


class _ImportRecorder(importlib.abc.MetaPathFinder):
    attempts = []
    names = {DEMONSTRATION_ONLY!r}

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            self.attempts.append(name)
        return None


sys.meta_path.insert(0, _ImportRecorder())
"""
# Last cell: what was attempted and what got imported, as one JSON line.
REPORT_IMPORTS = """\
import json as _json
print(_json.dumps({"attempts": _ImportRecorder.attempts,
                   "modules": sorted(m for m in sys.modules if m.split(".")[0] in _ImportRecorder.names)}))
"""


def _run(tmp_path_factory, grading: bool):
    """(executed notebook without the two probe cells, import report) for one run of the instructor notebook."""
    nb = nbformat.read(INSTRUCTOR, as_version=4)
    nb.cells = [nbformat.v4.new_code_cell(RECORD_IMPORTS), *nb.cells, nbformat.v4.new_code_cell(REPORT_IMPORTS)]
    path = tmp_path_factory.mktemp("grading" if grading else "plain") / INSTRUCTOR.name
    nbformat.write(nb, path)
    with pytest.MonkeyPatch.context() as env:  # the kernel inherits this process's environment
        if grading:
            env.setenv("NBGRADER_EXECUTION", "autograde")
        else:
            env.delenv("NBGRADER_EXECUTION", raising=False)
        executed, _ = run(path)
    report = json.loads(executed.cells[-1].outputs[0]["text"])
    executed.cells = executed.cells[1:-1]
    return executed, report


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return _run(tmp_path_factory, grading=True)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return _run(tmp_path_factory, grading=False)


def errors(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def figure_cells(nb) -> list:
    """The demonstration cells that draw a figure: the notebook gives each one alt text."""
    return [c for c in nb.cells if c.cell_type == "code" and "alt" in c.metadata]


def images(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.outputs)


def text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs)


def cell_defining(nb, name: str):
    return next(c for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source)


def test_neither_torch_nor_matplotlib_is_imported_under_grading(graded):
    nb, report = graded
    assert errors(nb) == []  # every name a later cell uses is still defined
    assert report == {"attempts": [], "modules": []}


def test_no_figure_and_no_timing_under_grading(graded):
    nb, _ = graded
    cells = figure_cells(nb)
    assert len(cells) == 5
    assert [images(c) for c in cells] == [0] * len(cells)
    assert "ms" not in text(cell_defining(nb, "seconds_per_step"))  # no step-time table
    assert text(cell_defining(nb, "ladder")) == ""  # no ladder


def test_outside_grading_every_demonstration_runs_in_full(plain):
    nb, report = plain
    assert errors(nb) == []
    assert [images(c) for c in figure_cells(nb)] == [1] * 5
    assert text(cell_defining(nb, "train_mlp")).count("final loss") == 4
    step_rows = text(cell_defining(nb, "seconds_per_step")).splitlines()
    assert len(step_rows) == 3 and all("1,000,000:" in row for row in step_rows)
    ladder = text(cell_defining(nb, "ladder"))
    for rung in ("naive", "in place, whole arrays", "in place, blocks, 1 core", "cores"):
        assert rung in ladder
    assert "matplotlib.pyplot" in report["modules"]
    if "torch" in report["modules"]:  # torch installed: its rung is there
        assert "torch fused (reference)" in ladder


def test_the_recorder_sees_an_import(plain):
    """The recorder is not blind: outside grading the figures import matplotlib and the ladder tries
    torch, and the recorder saw both."""
    _, report = plain
    assert {"torch", "matplotlib.pyplot"} <= set(report["attempts"])


def test_figures_carry_the_notebooks_alt_text_on_a_sanitized_page(plain):
    """Figures now appear only outside grading; there, a page rendered as feedback is (sanitized, on
    nbconvert's classic template, which nbgrader's feedback template extends) gives each its alt text."""
    nb, _ = plain
    clean, _ = SanitizeSubmission().preprocess(copy.deepcopy(nb), {})
    page, _ = HTMLExporter(template_name="classic").from_notebook_node(clean)
    tags = [tag for tag in re.findall(r"<img\b[^>]*>", page) if 'src="data:image/png' in tag]
    alts = [re.search(r'alt="([^"]*)"', tag).group(1) for tag in tags if "alt=" in tag]
    assert len(tags) == len(alts) == 5 and all(alt.endswith(".") and len(alt) > 40 for alt in alts), alts
