"""What the probe runs: the student's solution cells and the cells they added, never tests or demos."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from autograder import probe
from autograder.arrival.notebook import graded_code
from tinytorch.export import cell_code
from tools.sample_class import SOURCE, STUDENT, fill

HELPER = "import numpy as np\n\ndef forget(p):\n    p.grad = None\n\nprint('helper ready')\n"
ZERO_GRAD = (
    "class Optimizer:\n    def __init__(self, params):\n        self.params = list(params)\n"
    "        if not self.params:\n            raise ValueError('empty')\n"
    "        if len(set(map(id, self.params))) < len(self.params):\n            raise ValueError('params: twice')\n"
    "        self.step_count = 0\n\n"
    "    def zero_grad(self):\n        for p in self.params:\n            forget(p)\n\n"
    "    def step(self):\n        raise NotImplementedError\n"
)


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


def test_added_cells_run_in_notebook_order_and_tests_and_demos_do_not(notebooks, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # as probe.main sets it: guarded demos stay off
    student, source = notebooks
    nb = helper_student(notebooks)
    nb.cells[-1].source += "\nraise SystemExit('a demo cell of the instructor must not run')"
    cells = graded_code(source, nb)
    names = [name for name, *_ in cells]
    added = [n for n, (name, *_) in enumerate(cells) if name.startswith("your added cell")]
    assert len(added) == 1 and cells[added[0]][2:] == ("added",)
    assert names[added[0] + 1] == "your cell 'optimizer'"  # right before the cell it preceded
    assert not any("def test_" in code for _, code, *_ in cells)
    # The instructor's demos as given never run; the edited one runs whole, as the kernel ran it, so
    # its raise is reported (as a problem of that cell: no score depends on it) and nothing else is.
    assert probe.define(cells, probe.base_namespace()) == [
        f"{names[-1]} raised SystemExit: a demo cell of the instructor must not run"
    ]


def test_a_helper_cell_used_by_zero_grad_gets_full_marks(notebooks):
    student, source = notebooks
    cells = graded_code(source, helper_student(notebooks))
    ns = probe.base_namespace()
    assert probe.define(cells, ns) == []
    assert "forget" in ns


def test_an_added_cell_that_ran_past_the_cap_runs_only_its_definitions():
    """The fallback for a demo in an added cell (tests/judge/test_fairness.py: after the watchdog stopped it)."""
    code = (
        "%matplotlib inline\n!ls\nimport math\nLIMIT = 3\n"
        "def helper():\n    return LIMIT\n"
        "for _ in range(10**12):\n    pass\n"
        "print(undefined_name)\nhelper()\n"
    )
    ns = {}
    assert probe.define([("added", code, "added")], ns, defs_only={0}) == []
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
    from autograder.judge.hidden import run_hidden_checks

    monkeypatch.setenv("AUTOGRADER_SANDBOX", "required")
    student, source = notebooks
    results = run_hidden_checks(source, helper_student(notebooks), ("Optimizer",))
    assert [(r.id, r.score) for r in results["Optimizer"]] == [(r.id, r.max_score) for r in results["Optimizer"]]


# -- IPython syntax, edited given cells, duplicate grade ids: correct code loses no point ---------------

FULL = {"Optimizer": 10.0, "SGD": 30.0, "Adam": 30.0, "AdamW": 30.0}


def scores(nb, source) -> dict:
    from tools.sample_class import expected_scores

    return {c: s["score"] for c, s in expected_scores(nb, source).items()}


@pytest.mark.parametrize(
    "magic",
    [
        "%config InlineBackend.figure_format = 'retina'\n",
        "%matplotlib inline\n",
        "!pip install --quiet numpy\n",
        "np.zeros?\n",
        "%%time\n",
        "%%capture out\n",
        "\n%%timeit -n1\n",
    ],
)
def test_ipython_syntax_in_a_solution_cell_keeps_every_point(magic, notebooks):
    student, source = notebooks
    nb = fill(student, source, {"optimizer": lambda code: magic + code})
    assert scores(nb, source) == FULL


def test_magics_are_harmless_and_a_cell_magic_body_runs_as_the_kernel_ran_it():
    ns = {}
    cells = [
        ("line", "%config X.y = 1\nx = !ls\nprint?\nA = 1\n"),
        ("timed", "%%time\nB = A + 1\n"),
        ("shell", "%%bash\nexit 1\n"),
        ("added", "%%capture c\nimport math\nC = 3\nprint('demo')\n", "added"),
    ]
    assert probe.define(cells, ns) == []
    assert (ns["x"], ns["B"], ns["C"], "math" in ns) == (None, 2, 3, True)
    assert probe.define([("broken", "%%time\nclass A(\n")], ns)[0].startswith("broken raised SyntaxError")


def test_an_import_added_to_the_given_import_cell_is_run(notebooks):
    student, source = notebooks
    nb = fill(
        student,
        source,
        {
            "sgd": lambda code: code.replace(
                "def get_momentum_state(self)",
                "def get_momentum_state(self):\n        return copy.deepcopy("
                "self.momentum_buffers) if self.has_momentum() else None\n\n    def _unused(self)",
                1,
            )
        },
    )
    assert "copy.deepcopy" in next(c.source for c in nb.cells if c.get("id") == "sgd")
    assert scores(nb, source)["SGD"] < 30  # without the import: NameError
    given = next(c for c in nb.cells if c.get("id") == "cell-02")
    given.source += "\nimport copy\n"
    cells = graded_code(source, nb)
    at = [name for name, *_ in cells].index("given code")
    assert cells[at + 1][0].startswith("your edited cell") and cells[at + 1][2:] == ("added",)
    assert scores(nb, source) == FULL


def test_unedited_given_cells_add_no_demo_run_and_an_edited_one_runs_whole(notebooks):
    student, source = notebooks
    nb = fill(student, source, {})
    assert not any(name.startswith("your edited cell") for name, *_ in graded_code(source, nb))
    demo = next(c for c in nb.cells if c.get("id") == "cell-04")
    demo.source += "\nraise SystemExit('as in the kernel')\n"
    ns = probe.base_namespace()
    edited = [name for name, *_ in graded_code(source, nb) if name.startswith("your edited cell")]
    assert len(edited) == 1  # only the edited demo is added, and it runs whole, as the kernel ran it
    assert probe.define(graded_code(source, nb), ns) == [f"{edited[0]} raised SystemExit: as in the kernel"]


def test_the_graded_solution_cell_is_the_one_nbgrader_keeps(notebooks):
    """nbgrader's DeduplicateIds keeps the last flagged cell of an id; a cell with the id but no flag is not graded."""
    import copy

    from nbgrader.preprocessors import DeduplicateIds

    student, source = notebooks
    nb = fill(student, source, {})
    at = next(n for n, c in enumerate(nb.cells) if c.get("id") == "sgd")
    real = nb.cells[at]
    stray = new_code_cell("class SGD:\n    pass  # stray\n", metadata={"nbgrader": {"grade_id": "sgd"}})
    nb.cells.insert(at + 1, stray)
    assert [code for name, code, *_ in graded_code(source, nb) if name == "your cell 'sgd'"] == [cell_code(real)]
    assert scores(nb, source) == FULL
    pasted = copy.deepcopy(real)  # a copied exercise cell keeps its metadata
    pasted.id, pasted.source = "pasted1", real.source.replace("class SGD", "class SGD  # the copy", 1)
    nb.cells.insert(at + 2, pasted)
    kept, _ = DeduplicateIds().preprocess(copy.deepcopy(nb), {})
    graded = [
        cell_code(c)
        for c in kept.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "sgd" and c.metadata["nbgrader"].get("solution")
    ]
    mine = [code for name, code, *_ in graded_code(source, nb) if name == "your cell 'sgd'"]
    assert graded == mine == [cell_code(pasted)]
