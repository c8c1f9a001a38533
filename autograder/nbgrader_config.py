"""nbgrader configuration: the repository root is an nbgrader course.

source/<assignment>/   instructor notebook (generated from src/)
modules/<assignment>/  student notebook: nbgrader's release directory
submitted/<student>/<assignment>/, autograded/, feedback/: nbgrader's usual folders

Point nbgrader here with ``JUPYTER_CONFIG_PATH=autograder`` (the Makefile does);
``AUTOGRADER_COURSE_ROOT`` moves the course elsewhere. The autograde pipeline is replaced by the hardened one in
autograder/pipeline/ (one preprocessor a file), so plain ``nbgrader autograde`` runs student code
in the sandbox and scores from the hidden checks.
"""

import os
import shutil
import sys

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearHiddenTests,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    OverwriteKernelspec,
    SaveAutoGrades,
)

from autograder.arrival.collectors import (
    CappedExtractor,
    CheckedFileNameCollector,
    RefuseForeignSubmission,
    SafeExchangeCollect,
)
from autograder.pages.export import GradesCsvExport
from autograder.pages.feedback import ReportCSS
from autograder.pages.sanitize import SanitizeSubmission
from autograder.pipeline.execute import SandboxedExecute
from autograder.pipeline.grade_ids import ForeignGradeIds
from autograder.pipeline.hidden_checks import HiddenChecks, StartHiddenChecks
from autograder.pipeline.released_cells import OverwriteReleasedCells

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

# nbgrader runs `alembic` (gradebook migrations) as a command when it creates a gradebook: when
# nbgrader is started as .venv/bin/nbgrader from a shell without the venv on PATH, and only then,
# the interpreter's own folder (which holds alembic) goes at the end of PATH.
if shutil.which("alembic") is None:
    os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), os.path.dirname(sys.executable)])

ROOT = os.environ.get("AUTOGRADER_COURSE_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
c.CourseDirectory.root = ROOT
c.CourseDirectory.course_id = "tinytorch-07"
c.CourseDirectory.release_directory = "modules"
# The gradebook learns the assignment from `nbgrader generate_assignment` (`make autograde` runs it first).
if os.environ.get("AUTOGRADER_DB_URL"):  # e.g. PostgreSQL for many graders at once
    c.CourseDirectory.db_url = os.environ["AUTOGRADER_DB_URL"]

# The exchange (release_assignment -> fetch -> submit -> collect). On a JupyterHub, set
# NBGRADER_EXCHANGE_ROOT to the shared folder every user sees (e.g. /srv/nbgrader/exchange).
# Elsewhere a course-local, git-ignored exchange/ serves, created here with the permissions
# nbgrader itself gives an exchange, so the formgrader never reports it missing.
EXCHANGE = os.environ.get("NBGRADER_EXCHANGE_ROOT") or os.path.join(ROOT, "exchange")
if not os.path.isdir(EXCHANGE):
    os.makedirs(EXCHANGE, exist_ok=True)
    os.chmod(EXCHANGE, 0o777)
c.Exchange.root = EXCHANGE
# Arrival (autograder/collectors.py): collect and zip_collect refuse links, devices, bad student ids
# and archive bombs; autograde refuses them too, whichever way a submission reached submitted/.
c.ExchangeFactory.collect = SafeExchangeCollect
c.ZipCollectApp.extractor_plugin = CappedExtractor
c.ZipCollectApp.collector_plugin = CheckedFileNameCollector

# Students see the class line, signatures and docstrings; only method bodies become stubs.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.enforce_metadata = True

c.Autograde.sanitize_preprocessors = [
    RefuseForeignSubmission,  # first: links, bad ids, instructor text refused before anything runs
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    ForeignGradeIds,
    OverwriteReleasedCells,
    CheckCellMetadata,
]
c.Autograde.autograde_preprocessors = [
    ClearHiddenTests,
    StartHiddenChecks,  # the probes run while the kernel does: they read the submission, not the kernel
    SandboxedExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    HiddenChecks,
    LimitOutput,
    SanitizeSubmission,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
# Nothing active from a submission reaches a page (autograder/sanitize.py). The stored
# autograded notebook is already clean (above); rendering cleans it again, in case a notebook
# reached autograded/ another way: generate_feedback after GetGrades (nbgrader's defaults kept),
# and every HTMLExporter this config reaches, which includes the formgrader's submission view.
c.GenerateFeedback.preprocessors = [GetGrades, SanitizeSubmission, CSSHTMLHeaderPreprocessor, ReportCSS]  # + report CSS
c.HTMLExporter.preprocessors = [SanitizeSubmission]
# Rendering cost linear in a submission's size (autograder/page_render.py): code is highlighted
# within a budget and with the course's lexers only, markdown parsed within a budget; the
# formgrader renders synchronously, so one slow cell would block every request.
c.HTMLExporter.filters = {
    "highlight_code": "autograder.pages.render.highlight_code",
    "markdown2html": "autograder.pages.render.markdown2html",
    "strip_files_prefix": "autograder.pages.render.strip_files_prefix",
}
c.OverwriteCells.add_missing_cells = True  # a deleted test cell comes back (OverwriteReleasedCells too)
c.ClearHiddenTests.enforce_metadata = False  # hidden checks run outside the kernel, never inside it
c.SandboxedExecute.timeout = 60  # seconds per cell
c.SandboxedExecute.total_seconds = 300  # seconds per notebook
c.HiddenChecks.source_notebook = os.path.join(ROOT, "source", "{assignment}", "{notebook}.ipynb")
c.StartHiddenChecks.source_notebook = c.HiddenChecks.source_notebook
# `nbgrader export` (`make grades`): nbgrader's columns through the csv module, no cell a formula
# (nbgrader's own CsvExportPlugin joins fields unquoted, so a comma in a student id forges a score).
c.ExportApp.plugin_class = GradesCsvExport
c.RefuseForeignSubmission.source_notebook = c.HiddenChecks.source_notebook
