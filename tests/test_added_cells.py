"""What the probe runs: the student's solution cells and the cells they added, never tests or demos."""
import nbformat
import pytest
from nbformat.v4 import new_code_cell

from autograder import probe
from autograder.sample_class import SOURCE, STUDENT, fill
from autograder.submission import graded_code

HELPER = "import numpy as np\n\ndef forget(p):\n    p.grad = None\n\nprint('helper ready')\n"
ZERO_GRAD = ("class Optimizer:\n    def __init__(self, params):\n        self.params = list(params)\n"
             "        if not self.params:\n            raise ValueError('empty')\n        self.step_count = 0\n\n"
             "    def zero_grad(self):\n        for p in self.params:\n            forget(p)\n\n"
             "    def step(self):\n        raise NotImplementedError\n")


@pytest.fixture(scope="module")
def notebooks():
    return nbformat.read(STUDENT, as_version=4), nbformat.read(SOURCE, as_version=4)


def with_cell(nb, code: str, before: str, cell_id: str = "a1b2c3d4"):
    cell = new_code_cell(code)
    cell.id = cell_id
    at = next(n for n, c in enumerate(nb.cells) if c.get("id") == before)
    nb.cells.insert(at, cell)
    return nb


def helper_student(notebooks):
    student, source = notebooks
    nb = fill(student, source, {"optimizer": lambda _: ZERO_GRAD})
    return with_cell(nb, HELPER, "optimizer")


def test_added_cells_run_in_notebook_order_and_tests_and_demos_do_not(notebooks):
    student, source = notebooks
    nb = helper_student(notebooks)
    nb.cells[-1].source += "\nraise SystemExit('a demo cell of the instructor must not run')"
    cells = graded_code(source, nb)
    names = [name for name, *_ in cells]
    added = [n for n, (name, *_) in enumerate(cells) if name.startswith("your added cell")]
    assert len(added) == 1 and cells[added[0]][2:] == ("added",)
    assert names[added[0] + 1] == "your cell 'optimizer'"          # right before the cell it preceded
    assert not any("demo cell" in code or "def test_" in code for _, code, *_ in cells)


def test_a_helper_cell_used_by_zero_grad_gets_full_marks(notebooks):
    student, source = notebooks
    cells = graded_code(source, helper_student(notebooks))
    ns = probe.base_namespace()
    assert probe.define(cells, ns) == []
    assert "forget" in ns


def test_demos_in_an_added_cell_do_not_run_but_definitions_do():
    code = ("%matplotlib inline\n!ls\nimport math\nLIMIT = 3\n"
            "def helper():\n    return LIMIT\n"
            "for _ in range(10**12):\n    pass\n"
            "print(undefined_name)\nhelper()\n")
    ns = {}
    assert probe.define([("added", code, "added")], ns) == []
    assert ns["helper"]() == 3 and "math" in ns


def test_an_edited_copy_of_a_test_cell_is_not_run(notebooks):
    student, source = notebooks
    nb = fill(student, source, {})
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test_sgd":
            cell.source = "raise SystemExit('tests never run in the probe')"
    assert all("SystemExit" not in code for _, code, *_ in graded_code(source, nb))


@pytest.mark.slow
def test_helper_cell_student_passes_the_sandboxed_probe(notebooks, monkeypatch):
    from autograder.hidden import run_hidden_checks

    monkeypatch.setenv("AUTOGRADER_SANDBOX", "required")
    student, source = notebooks
    results = run_hidden_checks(source, helper_student(notebooks), ("Optimizer",))
    assert [(r.id, r.score) for r in results["Optimizer"]] == [(r.id, r.max_score) for r in results["Optimizer"]]
