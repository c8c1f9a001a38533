"""The probes start before the kernel runs and are collected after it: a grading takes the longer of the two.

The kernel never changes what a probe reads (the cells' code, the files beside the notebook),
but if anything did change in between, the probes the scores come from must be run again on it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest

from autograder.judge.checks import CheckResult
from autograder.pipeline import hidden_checks
from autograder.pipeline.hidden_checks import HiddenChecks, StartHiddenChecks

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "source" / "07_optimizers" / "optimizers.ipynb"
STUDENT = ROOT / "modules" / "07_optimizers" / "optimizers.ipynb"


@pytest.fixture
def probes(monkeypatch):
    """Stands in for the sandboxed probes: records what each run was given; run k scores k per check."""
    runs = []

    def fake(cells, components, files=None, module=None):
        runs.append({"cells": cells, "files": dict(files or {})})
        return {c: [CheckResult(f"{c.lower()}-check", c, float(len(runs)), 2, None, "")] for c in components}

    monkeypatch.setattr(hidden_checks, "check_code", fake)
    return runs


def graded(nb, folder: Path, between=lambda nb, folder: None):
    resources = {
        "nbgrader": {"assignment": "07_optimizers", "notebook": "optimizers"},
        "metadata": {"path": str(folder)},
    }
    nb, resources = StartHiddenChecks(source_notebook=str(SOURCE)).preprocess(nb, resources)
    resources[hidden_checks.STARTED][1].result()  # the background run is done before the "kernel" changes anything
    between(nb, folder)
    nb, resources = HiddenChecks(source_notebook=str(SOURCE)).preprocess(nb, resources)
    return nb


def scores(nb) -> set:
    return {t["score"] for t in nb.metadata["autograder"]["tests"]}


def test_the_probes_started_before_the_kernel_are_the_ones_scored(probes, tmp_path):
    nb = graded(nbformat.read(STUDENT, as_version=4), tmp_path)
    assert len(probes) == 1 and scores(nb) == {1.0}


def edit_a_solution_cell(nb, folder):
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"))
    cell.source += "\n# changed after the probes started"


def add_a_file(nb, folder):
    (folder / "helper.py").write_text("X = 1\n")


@pytest.mark.parametrize("change", [edit_a_solution_cell, add_a_file])
def test_a_change_after_the_start_is_probed_again(probes, tmp_path, change):
    nb = graded(nbformat.read(STUDENT, as_version=4), tmp_path, change)
    assert len(probes) == 2 and scores(nb) == {2.0}  # the scores come from the second run
    assert probes[0] != probes[1]
    after = copy.deepcopy(nbformat.read(STUDENT, as_version=4))
    change(after, tmp_path)
    assert probes[1]["cells"] == hidden_checks.graded_code(nbformat.read(SOURCE, as_version=4), after)


def test_hidden_checks_alone_still_probes(probes):
    resources = {"nbgrader": {"assignment": "07_optimizers", "notebook": "optimizers"}}
    nb, _ = HiddenChecks(source_notebook=str(SOURCE)).preprocess(nbformat.read(STUDENT, as_version=4), resources)
    assert len(probes) == 1 and scores(nb) == {1.0}


def test_the_course_starts_the_probes_before_the_kernel(tmp_path):
    from autograder.course import course_config
    from autograder.pipeline.execute import SandboxedExecute

    steps = list(course_config(tmp_path).Autograde.autograde_preprocessors)
    assert steps.index(StartHiddenChecks) < steps.index(SandboxedExecute) < steps.index(HiddenChecks)
