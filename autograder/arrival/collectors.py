"""nbgrader's ways into ``submitted/``, made safe at their documented extension points.

* ``SafeExchangeCollect`` (``c.ExchangeFactory.collect``): ``nbgrader collect``
  skips inbound folders whose student id is no plain token or that hold anything
  but regular files, and copies the rest without following a link.
* ``CappedExtractor`` (``c.ZipCollectApp.extractor_plugin``): ``nbgrader zip_collect``
  unpacks within caps (autograder/archives.py) and copies loose files safely.
* ``CheckedFileNameCollector`` (``c.ZipCollectApp.collector_plugin``): the named
  regexp's student id must be a plain token.
* ``RefuseForeignSubmission``: the first autograde preprocessor; a submission that
  arrived another way is judged by the same rules before any student code runs.
"""

from __future__ import annotations

import os
import shutil
import stat

import nbformat
from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.plugins import ExtractorPlugin, FileNameCollectorPlugin
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Int, Unicode

from . import archives
from .files import (
    Budget,
    Refused,
    copy_regular_file,
    copy_regular_tree,
    ignored,
    instructor_text,
    student_id_problem,
    tree_problem,
)
from .notebook import instructor_content, source_size_problem

MAX_SUBMISSION_FILES = 1000


class SafeExchangeCollect(ExchangeCollect):
    """nbgrader's collect, refusing hostile inbound folders and never following a link."""

    def init_src(self):
        super().init_src()
        self.src_records = [record for record in self.src_records if self.admissible(record)]

    def admissible(self, record: dict) -> bool:
        """Whether an inbound record may be collected; logs why not (nothing of it is copied)."""
        folder = os.path.join(self.inbound_path, record["filename"])
        problem = student_id_problem(record["username"]) or tree_problem(folder)
        if problem:
            self.log.error(
                "Refused inbound submission %r: %s. Nothing of it was collected.", record["filename"], problem
            )
        return problem is None

    def do_copy(self, src, dest, log=None):
        """Copy regular files only, from descriptors opened without following links, within nbgrader's caps."""
        course = self.coursedir
        budget = Budget(1000 * course.max_dir_size, MAX_SUBMISSION_FILES, what=src)
        dir_mode, file_mode = (0o2775, 0o664) if course.groupshared else (0o755, 0o644)

        def skip(name, info):
            return ignored(name, info, course.ignore, course.include, course.max_file_size)

        try:
            copy_regular_tree(src, dest, budget, skip, dir_mode, file_mode)
        except Refused as err:
            shutil.rmtree(dest, ignore_errors=True)
            _remove_if_empty(os.path.dirname(dest))
            self.log.error(
                "Refused inbound submission %r: %s. Nothing of it was collected.", os.path.basename(src), err
            )


def _remove_if_empty(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:  # not empty: the student's other assignments
        pass


class CappedExtractor(ExtractorPlugin):
    """nbgrader's extractor layout (each archive into a folder named after it), with caps and no links."""

    total_bytes = Int(archives.Caps.total_bytes, help="Bytes all archives together may inflate to.").tag(config=True)
    members = Int(archives.Caps.members, help="Files and folders all archives together may hold.").tag(config=True)
    depth = Int(archives.Caps.depth, help="How deep archives may nest (an archive of archives is 2).").tag(config=True)
    ratio = Int(archives.Caps.ratio, help="Largest uncompressed/compressed ratio of an archive.").tag(config=True)

    def extract(self, archive_path: str, extracted_path: str) -> None:
        caps = archives.Caps(self.total_bytes, self.members, self.depth, self.ratio)
        budget = Budget(caps.total_bytes, caps.members, what=f"the archives in {archive_path}")
        for root, dirs, files in os.walk(archive_path):
            dirs.sort()
            target = os.path.normpath(os.path.join(extracted_path, os.path.relpath(root, archive_path)))
            os.makedirs(target, exist_ok=True)
            for name in sorted(files):
                try:
                    self.extract_one(os.path.join(root, name), target, caps, budget)
                except Refused as err:
                    self.log.error("Refused %s: %s", os.path.join(root, name), err)

    def extract_one(self, path: str, target: str, caps, budget: Budget) -> None:
        """Unpack one downloaded archive into ``target``, or copy a loose downloaded file there."""
        stem = archives.archive_stem(os.path.basename(path), self.zip_ext)
        if stem is None:
            self.log.info("Copying %s to %s", path, target)
            copy_regular_file(path, target, budget)
            return
        self.log.info("Extracting %s to %s", path, os.path.join(target, stem))
        archives.extract_capped(
            path,
            os.path.join(target, stem),
            self.zip_ext,
            caps,
            budget,
            refused=lambda why: self.log.error("Refused %s", why),
        )


class CheckedFileNameCollector(FileNameCollectorPlugin):
    """nbgrader's file-name collector; a student id that is no plain token skips the file."""

    def collect(self, submitted_file: str):
        info = super().collect(submitted_file)
        if not info:
            return info
        problem = student_id_problem(info.get("student_id"))
        file_id = info.get("file_id")
        if (
            problem is None
            and isinstance(file_id, str)
            and (file_id.startswith("/") or {".", ".."} & set(file_id.split("/")))
        ):
            problem = f"file id {file_id[:80]!r} would be written outside the student's folder"
        if problem is None and not stat.S_ISREG(os.lstat(submitted_file).st_mode):
            problem = "it is not a regular file"
        if problem:
            self.log.error("Refused %s: %s. It was not collected.", submitted_file, problem)
            return None
        return info


class RefuseForeignSubmission(NbGraderPreprocessor):  # enabled wherever listed (nbconvert's are not)
    """Fail a submission before anything of it runs or renders, whichever way it reached ``submitted/``.

    Refused: a student id that is no plain token; a submission folder holding a link,
    FIFO, device or hard link; a notebook carrying the instructor's solution or hidden
    tests. nbgrader then records the notebook as failed and removes its autograded copy.
    """

    source_notebook = Unicode("", help="The instructor's notebook, {assignment}/{notebook} filled in.").tag(config=True)

    def preprocess(self, nb, resources):
        meta = resources.get("nbgrader", {})
        folder = resources.get("metadata", {}).get("path") or "."
        problem = (
            student_id_problem(meta.get("student"))
            or tree_problem(os.path.dirname(os.path.abspath(folder)))
            or source_size_problem(nb)
        )
        if problem is None and self.source_notebook:
            source = self.source_notebook.format(assignment=meta.get("assignment"), notebook=meta.get("notebook"))
            problem = instructor_content(nb, nbformat.read(source, as_version=4))
        elif problem is None:
            problem = instructor_text(cell.source for cell in nb.cells)
        if problem:
            raise Refused(f"submission refused: {problem}")
        return nb, resources
