"""A crash costs only what it touches; what the kernel ran, the probe runs (issue 15).

Every test runs the real sandboxed probe (bubblewrap required) with a short per-check
cap, so a hang costs a second, not the production five.
"""

import os

import nbformat
import pytest

from autograder import probe, sandbox
from autograder.judge import checks
from autograder.judge.hidden import PROBE_LIMITS, run_hidden_checks
from tools import corpus
from tools.sample_class import SOURCE, STUDENT

pytestmark = pytest.mark.skipif(not sandbox.bwrap_available(), reason="bubblewrap unusable here")

CHECK_SECONDS = 1.0
POINTS = {c.id: c.points for c in checks.catalog()}
FULL = {"Optimizer": 10.0, "SGD": 30.0, "Adam": 30.0, "AdamW": 30.0}


@pytest.fixture(scope="module")
def notebooks():
    return nbformat.read(STUDENT, as_version=4), nbformat.read(SOURCE, as_version=4)


@pytest.fixture(autouse=True)
def required_sandbox(monkeypatch):
    monkeypatch.setenv("AUTOGRADER_SANDBOX", "required")


def grade(notebooks, cells: dict, added=(), components=checks.COMPONENTS, **kw) -> dict:
    student, source = notebooks
    nb = corpus.notebook(corpus.Entry("test", cells, list(added)), student, source)
    return run_hidden_checks(source, nb, components, check_seconds=CHECK_SECONDS, **kw)


def by_id(results: dict) -> dict:
    return {r.id: r for rows in results.values() for r in rows}


def scores(results: dict) -> dict:
    return {component: sum(r.score for r in rows) for component, rows in results.items()}


def failed_only(results: dict, check_id: str) -> None:
    """Every check passed but ``check_id``."""
    assert {r.id for rows in results.values() for r in rows if r.score < r.max_score} == {check_id}


KILL_MESSAGES = {
    "hang": "did not return within 1 s",
    "exit": "ended the process (exit code 3: os._exit() or a crash of the interpreter)",
}
WHERE = {  # the call the probe was in, and where: the scenario of the check
    "Optimizer": "Your Optimizer.zero_grad() {how} (scenario 1 of optimizer-zero-grad)",
    "SGD": "Your SGD.get_momentum_state() {how} (scenario 1 of sgd-checkpoint)",
    "Adam": "Your Adam.step() {how} at step 1, when a parameter's grad was None (scenario 1 of adam-none-grad-untouched)",
    "AdamW": "Your AdamW.step() {how} at step 1, when a parameter's grad was None (scenario 2 of adamw-defaults-rules)",
}
MEMORY_MESSAGES = {  # a MemoryError is an exception the probe records; the rest run in a fresh process
    "Optimizer": "Running the scenario: raised MemoryError: ",
    "SGD": "Running the scenario: raised MemoryError: ",
    "Adam": "Your step() raised MemoryError: ",
    "AdamW": "Your step() raised MemoryError: ",
}


@pytest.mark.parametrize("fault", sorted(corpus.FAULTS))
@pytest.mark.parametrize("component", checks.COMPONENTS)
def test_a_fault_in_one_scenario_costs_only_its_check(notebooks, component, fault):
    cells, added = corpus.style_a(adamw_own=True)
    results = grade(notebooks, corpus.with_fault(cells, component, fault), added)
    check = corpus.FAULT_SITES[component][3]
    assert scores(results) == dict(FULL, **{component: FULL[component] - POINTS[check]})
    failed_only(results, check)
    lost = by_id(results)[check]
    what = next(c.what for c in checks.catalog() if c.id == check)
    if fault == "memory":
        assert lost.message.startswith(f"failed: {what}. {MEMORY_MESSAGES[component]}")
    else:
        assert lost.message == (
            f"failed: {what}. "
            + WHERE[component].format(how=KILL_MESSAGES[fault])
            + "; the checks after it ran in a fresh process"
        )


def test_adam_hanging_on_none_costs_a_self_contained_adamw_nothing(notebooks):
    cells, added = corpus.style_a(adamw_own=True)
    results = grade(notebooks, corpus.with_fault(cells, "Adam", "hang"), added, components=("Adam", "AdamW"))
    assert scores(results) == {"Adam": 26.0, "AdamW": 30.0}
    failed_only(results, "adam-none-grad-untouched")
    assert all(r.message.startswith("passed") for r in results["AdamW"])
    assert by_id(results)["adam-none-grad-untouched"].message.endswith(
        "Your Adam.step() did not return within 1 s at step 1, when a parameter's grad was None "
        "(scenario 1 of adam-none-grad-untouched); the checks after it ran in a fresh process"
    )


def test_an_inheriting_adamw_loses_the_inherited_check_and_says_so(notebooks):
    cells, added = corpus.style_a()
    results = grade(notebooks, corpus.with_fault(cells, "Adam", "hang"), added, components=("Adam", "AdamW"))
    assert scores(results) == {"Adam": 26.0, "AdamW": 26.0}
    lost = {r.id for rows in results.values() for r in rows if r.score < r.max_score}
    assert lost == {"adam-none-grad-untouched", "adamw-defaults-rules"}
    assert by_id(results)["adamw-defaults-rules"].message.endswith(
        "Your AdamW.step(), inherited from Adam.step(), did not return within 1 s at step 1, when a "
        "parameter's grad was None (scenario 2 of adamw-defaults-rules); the checks after it ran in a fresh process"
    )


def test_the_component_budget_bounds_every_hang(notebooks):
    """Every check hangs: checks run out of the budget fail with a message saying so."""
    cells, added = corpus.style_a(adamw_own=True)
    hanging = dict(
        cells,
        sgd=cells["sgd"].replace(
            "        super().__init__(params)\n",
            "        super().__init__(params)\n        while True:\n            pass\n",
            1,
        ),
    )
    results = grade(
        notebooks,
        hanging,
        added,
        components=("SGD",),
        limits=PROBE_LIMITS.__class__(**{**PROBE_LIMITS.__dict__, "wall_seconds": 3.5}),
    )
    messages = [r.message for r in results["SGD"]]
    assert scores(results) == {"SGD": 0.0}
    assert "Your SGD.__init__() did not return within 1 s (scenario 1 of sgd-plain)" in messages[0]
    assert messages[-1].endswith(
        "Not run: the SGD checks' time budget (3.5 s) was spent on earlier checks that did not return"
    )


HELPER_CELLS = {
    "writefile": ["%%writefile adam_math.py\n" + corpus.ADAM_MATH],
    "file-append": [
        "%%file adam_math.py\ndef bias_correction(beta, t):\n",
        "%%file -a adam_math.py\n    return 1 - beta ** t\n",
    ],
}


@pytest.mark.parametrize("magic", sorted(HELPER_CELLS))
def test_a_helper_module_the_notebook_wrote_is_imported(notebooks, magic):
    cells, _ = corpus.style_a()
    adam = "from adam_math import bias_correction\n" + corpus.fill(
        corpus.ADAM_A, corpus.ADAM_A_OK, corpus.ADAM_WITH_HELPER
    )
    results = grade(notebooks, dict(cells, adam=adam), HELPER_CELLS[magic])
    assert scores(results) == FULL
    assert all(r.message.startswith("passed") for rows in results.values() for r in rows)


def test_a_helper_in_a_separate_cell_and_run_magic_grade_as_the_kernel_ran_them(notebooks):
    cells, _ = corpus.style_a()
    helper = corpus.fill(corpus.ADAM_A, corpus.ADAM_A_OK, corpus.ADAM_WITH_HELPER)
    for adam, added in ((helper, [corpus.ADAM_MATH]), ("%run adam_math.py\n" + helper, HELPER_CELLS["writefile"])):
        assert scores(grade(notebooks, dict(cells, adam=adam), added)) == FULL


@pytest.mark.parametrize("name", ["/tmp/evil.py", "../evil.py", "a/../../evil.py", "~/evil.py"])
def test_writefile_outside_the_probe_folder_is_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(probe._SHELL, "folder", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    problems = probe.define([("your added cell 3", f"%%writefile {name}\nx = 1\n", "added")], {})
    assert problems == [
        f"your added cell 3 raised MagicNotRun: '{name}': the grader writes and runs only "
        "files named relative to your notebook's folder (no absolute path, no '..')"
    ]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["scratch"]


def test_magics_the_probe_does_not_run_are_named(notebooks):
    student, source = notebooks
    cells = [
        ("your added cell 4", "%%bash\necho 'X = 1' > helper.py\n", "added"),
        ("your added cell 5", "%load_ext autoreload\n", "added"),
    ]
    assert [n for name, code, *_ in cells for n in probe.not_run(code, name)] == [
        "your added cell 4: the grader does not run %%bash (use %%writefile for helper files, or put the code in a cell)",
        "your added cell 5: the grader does not run %load_ext (use %%writefile for helper files, or put the code in a cell)",
    ]


def test_a_forged_marker_names_nothing(notebooks):
    """The marker is hostile: a name the grader did not ask for is not shown; the check still fails."""
    cells, added = corpus.style_a(adamw_own=True)
    forged = (
        "            if p.grad is None:\n                open('running.txt', 'w').write("
        "'adam-none-grad-untouched\\t1\\t<script>\\tstep\\tX\\t1')\n                import os\n"
        "                os._exit(3)\n"
    )
    adam = cells["adam"].replace("            if p.grad is None:\n", forged, 1)
    results = grade(notebooks, dict(cells, adam=adam), added, components=("Adam",))
    unattributed = ["adam-none-grad-untouched", "adam-memory-dtype", "adam-validation"]  # the rest of the run
    assert scores(results) == {"Adam": 30.0 - sum(POINTS[c] for c in unattributed)}
    for check in unattributed:
        message = by_id(results)[check].message
        assert "<script>" not in message
        assert message.endswith(
            "Not graded: the Adam checks ended before reporting (exit code 3): does your code exit the process?"
        )


def test_adamws_runs_of_adam_come_after_everything_adamw_is_scored_on():
    """The probe saves each check as it ends: Adam's code, run for the "inherited" diagnosis, runs last."""
    ids = [c["id"] for c in checks.probe_spec("AdamW")["checks"]]
    scored = [c.id for c in checks.checks_for("AdamW")]
    first_adam = next(n for n, i in enumerate(ids) if i.startswith("sig-adam-"))
    assert ids[: len(scored)] == scored
    assert all(i.startswith("sig-adam-") for i in ids[first_adam:])
    assert any(i.startswith("sig-adamw-") for i in ids[len(scored) : first_adam])


# -- what the kernel ran, the probe runs: added cells whole, files beside the notebook ------------

WITH_HELPER = "from adam_math import bias_correction\n"
SIDE_EFFECTS = {  # an added cell whose statements (not definitions) make what the Adam cell imports
    "open-write": [f"open('adam_math.py', 'w').write({corpus.ADAM_MATH!r})\n"],
    "package": [
        "import os\nos.makedirs('mathlib', exist_ok=True)\n",
        "%%writefile mathlib/__init__.py\n" + corpus.ADAM_MATH,
    ],
    "setattr": [
        corpus.ADAM_MATH.replace("bias_correction", "_bc"),
        "import builtins\nsetattr(builtins, 'bias_correction', _bc)\n",
    ],
}


@pytest.mark.parametrize("how", sorted(SIDE_EFFECTS))
def test_an_added_cells_statements_run_as_in_the_kernel(notebooks, how):
    cells, _ = corpus.style_a()
    imports = {"open-write": WITH_HELPER, "package": "from mathlib import bias_correction\n", "setattr": ""}[how]
    adam = imports + corpus.fill(corpus.ADAM_A, corpus.ADAM_A_OK, corpus.ADAM_WITH_HELPER)
    results = grade(notebooks, dict(cells, adam=adam), SIDE_EFFECTS[how])
    assert scores(results) == FULL, [r.message for rows in results.values() for r in rows if r.score < r.max_score]


def test_an_added_demo_that_runs_long_falls_back_to_its_definitions(notebooks):
    """A slow demo in an added cell costs one cap per component, never the names the cell defines."""
    cells, _ = corpus.style_a()
    demo = corpus.ADAM_MATH + "import time\ntime.sleep(30)   # a long training demo\n"
    adam = corpus.fill(corpus.ADAM_A, corpus.ADAM_A_OK, corpus.ADAM_WITH_HELPER)
    results = grade(notebooks, dict(cells, adam=adam), [demo], components=("Adam",))
    assert scores(results) == {"Adam": 30.0}


def test_files_submitted_beside_the_notebook_reach_the_probe(notebooks):
    cells, _ = corpus.style_a()
    adam = WITH_HELPER + corpus.fill(corpus.ADAM_A, corpus.ADAM_A_OK, corpus.ADAM_WITH_HELPER)
    assert scores(grade(notebooks, dict(cells, adam=adam), components=("Adam",))) == {"Adam": 0.0}
    files = {
        "adam_math.py": corpus.ADAM_MATH.encode(),
        "out.json": b"not the probe's results",
        "spec.json": b"{}",
    }  # the probe's own names are never taken from a submission
    assert scores(grade(notebooks, dict(cells, adam=adam), components=("Adam",), files=files)) == {"Adam": 30.0}


def test_submitted_files_are_small_plain_regular_files(tmp_path):
    from autograder.arrival.notebook import MAX_SUBMITTED_FILE, submitted_files

    (tmp_path / "helper.py").write_text("X = 1\n")
    (tmp_path / "optimizers.ipynb").write_text("{}")
    (tmp_path / "big.bin").write_bytes(b"x" * (MAX_SUBMITTED_FILE + 1))
    (tmp_path / ".hidden.py").write_text("X = 2\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "link.py").symlink_to(tmp_path / "helper.py")
    os.link(tmp_path / "helper.py", tmp_path / "hard.py")  # helper.py now has two links: refused too
    (tmp_path / "data.txt").write_text("1 2 3\n")
    assert submitted_files(tmp_path) == {"data.txt": b"1 2 3\n"}
