"""nbgrader preprocessors that make ``nbgrader autograde`` safe and its scores trustworthy.

Configured in ``nbgrader_config.py`` (``Autograde.sanitize_preprocessors`` and
``Autograde.autograde_preprocessors``), so plain ``nbgrader autograde`` uses them:

sanitize:  ClearOutput, DeduplicateIds, OverwriteKernelspec, ForeignGradeIds,
           OverwriteReleasedCells (+ add_missing_cells), CheckCellMetadata
autograde: ClearHiddenTests, SandboxedExecute (pipeline/execute.py), IgnorePattern, ClearMetadataPreprocessor,
           HiddenChecks, LimitOutput, SanitizeSubmission (sanitize.py), SaveAutoGrades,
           AssignLatePenalties, CheckCellMetadata
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor, OverwriteCells
from traitlets import Unicode

from .checks import COMPONENTS
from .feedback import report_data, score_data
from .hidden import run_hidden_checks, sandbox_mode
from .sanitize import page_digest
from .submission import component_cells, grade_id, grade_points, submitted_files

RESULTS_KEY = "autograder"          # notebook metadata key holding the per-check results


class ForeignGradeIds(NbGraderPreprocessor):
    """Strip nbgrader metadata whose grade id the source notebook does not have.

    A renamed grade id would otherwise smuggle a student-made "test" into the
    gradebook; with the metadata gone, OverwriteCells re-adds the real cell.
    """

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            notebook = gb.find_notebook(info["notebook"], info["assignment"])
            known = {cell.name for cell in notebook.source_cells}
        for cell in nb.cells:
            gid = grade_id(cell)
            if "nbgrader" in cell.get("metadata", {}) and gid not in known:
                self.log.warning("Dropping nbgrader metadata of unknown cell %r", gid)
                del cell.metadata["nbgrader"]
        return nb, resources


class OverwriteReleasedCells(OverwriteCells):
    """nbgrader's OverwriteCells, judging a locked cell against what students were given.

    The gradebook keeps each locked cell as the instructor wrote it, hidden tests
    included, while the released cell lost them (ClearHiddenTests), so the stock
    preprocessor reports every untouched test cell as tampered with ("checksum has
    changed"). A cell equal to its released form gets its full source back before the
    comparison; any other edit is still reported and overwritten by nbgrader.
    Cells it adds back (``add_missing_cells``) get a cell id, which nbgrader omits.
    """

    def preprocess(self, nb, resources):
        nb, resources = super().preprocess(nb, resources)
        taken = {cell.get("id") for cell in nb.cells}
        for cell in nb.cells:
            if not cell.get("id"):
                base = grade_id(cell) or "cell"
                cell.id = next(f"{base}-{n}" if n else base for n in range(len(nb.cells) + 1)
                               if (f"{base}-{n}" if n else base) not in taken)
                taken.add(cell.id)
        return nb, resources

    def preprocess_cell(self, cell, resources, cell_index):
        gid = grade_id(cell)
        if gid is not None:
            try:
                source = self.gradebook.find_source_cell(gid, self.notebook_id, self.assignment_id)
            except MissingEntry:
                source = None                   # nbgrader reports and drops the unknown id
            if (source is not None and source.locked and cell.cell_type == source.cell_type
                    and cell.source == self._released(source.source)):
                cell.source = source.source
        return super().preprocess_cell(cell, resources, cell_index)

    def _released(self, text: str) -> str:
        cell = NotebookNode(source=text, cell_type="code", metadata={})
        ClearHiddenTests(parent=self)._remove_hidden_test_region(cell)
        return cell.source


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
        help="the instructor notebook; {assignment} and {notebook} are filled in").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        path = Path(self.source_notebook.format(assignment=info["assignment"], notebook=info["notebook"]))
        source = nbformat.read(path, as_version=4)
        points = grade_points(source)
        cells = component_cells(source)
        components = [c for c in COMPONENTS if c in cells.values()]
        folder = resources.get("metadata", {}).get("path")
        files = submitted_files(folder) if folder else {}
        results = run_hidden_checks(source, nb, components, files=files)
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
            report = report_data(component, checks, earned, points[gid])
            summary["own_outputs"][gid] = [page_digest(score["text/html"]), page_digest(report["text/html"])]
            cell.outputs = [new_output("execute_result", data=score, execution_count=None),
                            *cell.get("outputs", []),
                            new_output("display_data", data=report)]
        nb.metadata[RESULTS_KEY] = summary
        return nb, resources

