"""Autograde step: each grade cell scored from the hidden checks, which run outside the student's kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from ..arrival.notebook import component_cells, grade_id, grade_points, submitted_files
from ..judge import content
from ..judge.hidden import run_hidden_checks, sandbox_mode
from ..pages.feedback import RESULTS_KEY, report_data, score_data
from ..pages.sanitize import page_digest


class HiddenChecks(NbGraderPreprocessor):
    """Score each grade cell from the hidden checks, run outside the student's kernel.

    Writes, first in each grade cell's outputs, the score as an execute_result
    (nbgrader's partial-credit protocol, so SaveAutoGrades records it whatever
    else the cell printed; labelled for people in its text/html), keeps the
    student's visible-test output, and ends with a report of every check and
    the explanation of each misconception named (``feedback.py``); the results
    also go to the notebook's metadata for ``python -m autograder`` and feedback.
    """

    source_notebook = Unicode(
        "source/{assignment}/{notebook}.ipynb",
        help="the instructor notebook; {assignment} and {notebook} are filled in",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        path = Path(self.source_notebook.format(assignment=info["assignment"], notebook=info["notebook"]))
        source = nbformat.read(path, as_version=4)
        points = grade_points(source)
        cells = component_cells(source)
        module = content.load(info["assignment"])
        components = [c for c in module.COMPONENTS if c in cells.values()]
        folder = resources.get("metadata", {}).get("path")
        files = submitted_files(folder) if folder else {}
        results = run_hidden_checks(source, nb, components, files=files, module=module)
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
