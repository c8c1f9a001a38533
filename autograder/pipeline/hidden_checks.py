"""Autograde steps: each grade cell scored from the hidden checks, which run outside the student's kernel.

The probes read only the submission (its cells' sources and the files beside it), never
what the kernel did, so ``StartHiddenChecks`` starts them before the kernel runs and
``HiddenChecks`` collects them after: a grading takes the longer of the two, not their sum.
``HiddenChecks`` compares what the probes were given with the notebook it is handed, and
probes again if anything a probe reads changed in between.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from ..arrival.notebook import component_cells, grade_id, grade_points, graded_code, submitted_files
from ..judge import content
from ..judge.hidden import check_code, sandbox_mode
from ..pages.feedback import RESULTS_KEY, report_data, score_data
from ..pages.sanitize import page_digest

STARTED = "autograder_hidden_checks"  # the resources key of the probes StartHiddenChecks started


@dataclass
class _Inputs:
    """Everything the probes read: they are run again if any of it differs when the results are collected."""

    source: object
    components: list
    module: object
    cells: list
    files: dict


class _Configured(NbGraderPreprocessor):
    source_notebook = Unicode(
        "source/{assignment}/{notebook}.ipynb",
        help="the instructor notebook; {assignment} and {notebook} are filled in",
    ).tag(config=True)

    def inputs(self, nb, resources) -> _Inputs:
        info = resources["nbgrader"]
        path = Path(self.source_notebook.format(assignment=info["assignment"], notebook=info["notebook"]))
        source = nbformat.read(path, as_version=4)
        cells = component_cells(source)
        module = content.load(info["assignment"])
        folder = resources.get("metadata", {}).get("path")
        return _Inputs(
            source=source,
            components=[c for c in module.COMPONENTS if c in cells.values()],
            module=module,
            cells=graded_code(source, nb),
            files=submitted_files(folder) if folder else {},
        )


def _probe(given: _Inputs) -> dict:
    return check_code(given.cells, given.components, files=given.files, module=given.module)


class StartHiddenChecks(_Configured):
    """Start the hidden checks in the background, before the kernel runs (``HiddenChecks`` collects them)."""

    def preprocess(self, nb, resources):
        given = self.inputs(nb, resources)
        runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hidden-checks")
        resources[STARTED] = (given, runner.submit(_probe, given))
        runner.shutdown(wait=False)  # its one thread ends with the probes
        return nb, resources


class HiddenChecks(_Configured):
    """Score each grade cell from the hidden checks, run outside the student's kernel.

    Writes, first in each grade cell's outputs, the score as an execute_result
    (nbgrader's partial-credit protocol, so SaveAutoGrades records it whatever
    else the cell printed; labelled for people in its text/html), keeps the
    student's visible-test output, and ends with a report of every check and
    the explanation of each misconception named (``feedback.py``); the results
    also go to the notebook's metadata for ``python -m autograder`` and feedback.
    """

    def preprocess(self, nb, resources):
        given = self.inputs(nb, resources)
        started: tuple[_Inputs, Future] | None = resources.pop(STARTED, None)
        if started and (started[0].cells, started[0].files) == (given.cells, given.files):
            results = started[1].result()
        else:  # not started, or started on other code: these probes must see what the kernel ran
            results = _probe(given)
        source, module = given.source, given.module
        points = grade_points(source)
        cells = component_cells(source)
        # own_outputs: what pages may show with the report's classes (sanitize.own_outputs)
        summary = {"sandbox": sandbox_mode(), "components": {}, "tests": [], "own_outputs": {}}
        for cell in nb.cells:
            gid = grade_id(cell)
            if gid not in cells or cell.cell_type != "code":
                continue
            component = cells[gid]
            checks = results[component]
            earned = sum(r.score for r in checks) / sum(r.max_score for r in checks) * points[gid]
            earned = round(earned, 2)
            summary["components"][component] = {"score": earned, "max_score": points[gid], "cell": gid}
            summary["tests"].extend(r.as_dict() for r in checks)
            # The score first (nbgrader reads the first execute_result, before any error the visible
            # tests printed), then the student's visible-test output, then the hidden-check report.
            score = score_data(component, earned, points[gid])
            report = report_data(component, checks, earned, points[gid], module.EXPLANATIONS)
            summary["own_outputs"][gid] = [page_digest(score["text/html"]), page_digest(report["text/html"])]
            cell.outputs = [
                new_output("execute_result", data=score, execution_count=None),
                *cell.get("outputs", []),
                new_output("display_data", data=report),
            ]
        nb.metadata[RESULTS_KEY] = summary
        return nb, resources
