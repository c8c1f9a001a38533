"""Sanitize step: nbgrader metadata with a grade id the source notebook lacks is dropped."""

from __future__ import annotations

from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor

from ..arrival.notebook import grade_id


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
