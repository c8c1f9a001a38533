"""nbgrader preprocessors that make ``nbgrader autograde`` safe and its scores trustworthy.

Configured in ``nbgrader_config.py`` (``Autograde.sanitize_preprocessors`` and
``Autograde.autograde_preprocessors``), so plain ``nbgrader autograde`` uses them:

sanitize:  ClearOutput, DeduplicateIds, OverwriteKernelspec, ForeignGradeIds,
           OverwriteReleasedCells (+ add_missing_cells), CheckCellMetadata
autograde: ClearHiddenTests, SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor,
           HiddenChecks, LimitOutput, SanitizeSubmission (sanitize.py), SaveAutoGrades,
           AssignLatePenalties, CheckCellMetadata
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, Execute, NbGraderPreprocessor, OverwriteCells
from traitlets import Float, Integer, Unicode

from . import sandbox, tempdirs
from .judge.content import COMPONENTS
from .feedback import report_data, score_data
from .judge.hidden import run_hidden_checks, runtime_dir, sandbox_mode
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


class SandboxedExecute(Execute):
    """nbgrader's Execute, with the kernel in the sandbox and no way to end the batch.

    The kernel runs on a scratch copy of the notebook's folder. A cell that
    kills the kernel or outlives its timeout stops execution: that cell gets
    an error output, later cells a note, and grading goes on (scores come from
    HiddenChecks, not from this kernel).
    """

    total_seconds = Float(300.0, help="wall time for the whole notebook").tag(config=True)
    max_output_bytes = Integer(256 * 1024, help="output kept per cell (every kind)").tag(config=True)
    max_notebook_output_bytes = Integer(4 * 1024**2, help="output kept for the whole notebook").tag(config=True)
    memory_bytes = Integer(2 * 1024**3, help="address-space limit of the kernel").tag(config=True)
    disk_bytes = Integer(256 * 1024**2, help="size cap of the kernel's writable folder (as root)").tag(config=True)

    def __init__(self, **kw):
        kw.setdefault("kernel_manager_class", sandbox.SandboxedKernelManager)
        super().__init__(**kw)
        self.interrupt_on_timeout = False       # an interrupt-proof loop must not stall us

    def preprocess(self, nb, resources=None, km=None):
        # Fail closed before the kernel starts: nbgrader records this notebook as failed.
        sandbox.check(announce=self.log.warning)
        metadata = resources.setdefault("metadata", {})
        submitted = metadata.get("path")
        try:
            with tempdirs.capped_dir("autograde-kernel-", self.disk_bytes) as scratch:
                return self._in_scratch(scratch, nb, resources, km)
        finally:   # the kernel's scratch is gone: later steps (HiddenChecks) read the submission's folder
            metadata["path"] = submitted

    def _in_scratch(self, scratch: Path, nb, resources, km):
        source_dir = Path(resources.get("metadata", {}).get("path") or ".")
        for item in sorted(source_dir.iterdir()) if source_dir.is_dir() else ():
            # Submitted regular files (no symlinks) while they fit, leaving half the cap to the kernel.
            room = min(64 * 1024**2, shutil.disk_usage(scratch).free - self.disk_bytes // 2)
            if item.is_file() and not item.is_symlink() and item.stat().st_size < room:
                shutil.copy2(item, scratch / item.name)
        resources.setdefault("metadata", {})["path"] = str(scratch)
        runtime = runtime_dir()
        self.kernel_manager_class = sandbox.SandboxedKernelManager   # no config may swap in a plain kernel
        limits = sandbox.Limits(memory_bytes=self.memory_bytes, cpu_seconds=int(self.total_seconds),
                                wall_seconds=self.total_seconds + 30, processes=64,
                                disk_bytes=self.disk_bytes)   # the tree's memory budget counts this tmpfs
        self._km_config = dict(limits=limits, ro_paths=[str(runtime)],
                               extra_env={"PYTHONPATH": str(runtime), "NBGRADER_EXECUTION": "autograde"})
        return self._run_cells(nb, resources, km)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        for name, value in self._km_config.items():
            setattr(km, name, value)
        return km

    def _run_cells(self, nb, resources, km):
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._notebook_bytes = 0
        self._check_assign_resources(resources)
        deadline = time.monotonic() + self.total_seconds
        stopped = None
        with self.setup_kernel():
            info = self.wait_for_reply(self.kc.kernel_info())
            self.nb.metadata["language_info"] = info["content"]["language_info"]
            for index, cell in enumerate(self.nb.cells):
                if cell.cell_type != "code":
                    continue
                if stopped is None and time.monotonic() > deadline:
                    stopped = f"the notebook used up its {self.total_seconds:.0f} s"
                if stopped is not None:
                    cell.outputs = [new_output("stream", name="stdout",
                                               text=f"[not run by the autograder: {stopped}]\n")]
                    continue
                self._cell_bytes = 0
                try:
                    self.preprocess_cell(cell, resources, index)
                except (DeadKernelError, CellTimeoutError, RuntimeError) as err:
                    reason = ((self.km.killed_reason() or "the kernel died (os._exit, a crash or a resource limit)")
                              if isinstance(err, DeadKernelError) else
                              f"cell {index} ran longer than {self.timeout} s" if isinstance(err, CellTimeoutError)
                              else f"the kernel stopped responding ({type(err).__name__})")
                    cell.outputs.append(new_output("error", ename="AutograderStopped", evalue=reason,
                                                   traceback=[f"AutograderStopped: {reason}"]))
                    stopped = f"{reason} in an earlier cell"
        return self.nb, self.resources

    # Kernel messages that change the notebook. update_display_data and comm messages
    # never reach output(): nbclient rewrites earlier outputs (display ids) or stores
    # widget state itself, so the caps are applied here, before nbclient sees a message.
    _GROWS = frozenset({"stream", "display_data", "execute_result", "error", "update_display_data",
                        "comm_open", "comm_msg"})

    def process_message(self, msg, cell, cell_index):
        """Charge every notebook-changing message to the cell's and the notebook's caps; drop the excess."""
        if msg.get("msg_type") in self._GROWS:
            size = self._message_bytes(msg)
            self._cell_bytes = getattr(self, "_cell_bytes", 0) + size
            self._notebook_bytes = getattr(self, "_notebook_bytes", 0) + size
            over = [(spent, cap, what) for spent, cap, what in
                    ((self._cell_bytes, self.max_output_bytes, "for this cell"),
                     (self._notebook_bytes, self.max_notebook_output_bytes, "for the whole notebook"))
                    if spent > cap]
            if over:
                spent, cap, what = over[0]
                if spent - size <= cap:         # the first message past this cap: say so once
                    cell.outputs.append(new_output("stream", name="stdout",
                                                   text=f"\n[output truncated by the autograder after "
                                                        f"{cap // 1024} KiB {what}]\n"))
                return None
        return super().process_message(msg, cell, cell_index)

    def _message_bytes(self, msg) -> int:
        """What a message may add to the notebook: an update rewrites every output of its display id."""
        size = len(json.dumps(msg.get("content", {}), default=str))
        size += sum(len(buf) for buf in msg.get("buffers") or ())
        if msg.get("msg_type") in {"update_display_data", "display_data", "execute_result"}:
            transient = msg.get("content", {}).get("transient")
            display_id = transient.get("display_id") if isinstance(transient, dict) else None
            targets = self._display_id_map.get(display_id, {}) if isinstance(display_id, str) else {}
            size *= max(1, sum(len(indices) for indices in targets.values()))
        return size


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

