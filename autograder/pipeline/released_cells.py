"""Sanitize step: a locked cell is judged against what students were given, not the instructor's copy."""

from __future__ import annotations

from nbformat import NotebookNode
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells

from ..arrival.notebook import grade_id


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
                cell.id = next(
                    f"{base}-{n}" if n else base
                    for n in range(len(nb.cells) + 1)
                    if (f"{base}-{n}" if n else base) not in taken
                )
                taken.add(cell.id)
        return nb, resources

    def preprocess_cell(self, cell, resources, cell_index):
        gid = grade_id(cell)
        if gid is not None:
            try:
                source = self.gradebook.find_source_cell(gid, self.notebook_id, self.assignment_id)
            except MissingEntry:
                source = None  # nbgrader reports and drops the unknown id
            if (
                source is not None
                and source.locked
                and cell.cell_type == source.cell_type
                and cell.source == self._released(source.source)
            ):
                cell.source = source.source
        return super().preprocess_cell(cell, resources, cell_index)

    def _released(self, text: str) -> str:
        cell = NotebookNode(source=text, cell_type="code", metadata={})
        cell, _ = ClearHiddenTests(parent=self, enforce_metadata=False).preprocess_cell(cell, {}, 0)
        return cell.source
