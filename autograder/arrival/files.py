"""Trust at arrival: what may enter ``submitted/``, under which student id.

Everything here reads student-controlled data (exchange folders, LMS archives,
file names), so it never follows a link, opens files only with ``O_NOFOLLOW``
and judges the descriptor it holds (``fstat``), not a path that may change.

* ``student_id_problem``: the one rule for a student id, used wherever one enters.
* ``copy_regular_tree``: copy a folder of regular files, refusing links and devices.
* ``extract_capped``: unpack zip/tar archives (nested too) within byte, member,
  depth and ratio caps, never outside the target folder.
* ``submission_problem``: a submitted folder that is a link, holds one, or carries
  the instructor's solution or hidden tests.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from dataclasses import dataclass

# A student id becomes a folder name, a CSV cell and a gradebook key: one plain token.
# The first character is never a dot, so '.', '..' and hidden folders are impossible.
STUDENT_ID = re.compile(r"[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,63}")
STUDENT_ID_RULE = "letters, digits and . _ - @, at most 64 characters, not starting with a dot"

CHUNK = 1 << 16
OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO never blocks us
OPEN_DIR = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
CREATE_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# Text that only the instructor's notebook holds (nbgrader's region markers).
INSTRUCTOR_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def printable(text: str) -> str:
    """``text`` with every character a terminal or a log viewer would act on escaped (``\\x1b``, ``\\u202e``).

    Messages name files the student named; printed raw, an escape sequence in a name could clear
    the instructor's terminal or forge a summary line.
    """
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class Refused(ValueError):
    """Student-controlled input that must not arrive; the message says what and why (printable only)."""

    def __init__(self, message: str):
        super().__init__(printable(message))


def student_id_problem(student_id) -> str | None:
    """Why ``student_id`` is not a valid student id, or None when it is."""
    if not isinstance(student_id, str) or not STUDENT_ID.fullmatch(student_id):
        return f"student id {str(student_id)[:80]!r} is not a plain token ({STUDENT_ID_RULE})"
    return None


def _kind(mode: int) -> str:
    return (
        "a symbolic link"
        if stat.S_ISLNK(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )


def regular_fd(name: str, dir_fd: int | None, shown: str) -> tuple[int, os.stat_result]:
    """An open descriptor of ``name`` that is a regular file with one link, else Refused."""
    try:
        fd = os.open(name, OPEN_FILE, dir_fd=dir_fd)
    except OSError as err:  # ELOOP: a symlink; ENXIO: a socket
        raise Refused(f"{shown} is a link or cannot be opened as a plain file ({err.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        why = _kind(info.st_mode) if not stat.S_ISREG(info.st_mode) else f"a hard link ({info.st_nlink} names)"
        raise Refused(f"{shown} is {why}; only regular files are accepted")
    return fd, info


@dataclass
class Budget:
    """What one copy or extraction may still write; charged while writing (declared sizes lie)."""

    bytes: int
    files: int
    what: str = "the submission"

    def charge(self, nbytes: int = 0, files: int = 0) -> None:
        self.bytes -= nbytes
        self.files -= files
        if self.bytes < 0:
            raise Refused(f"{self.what} exceeds its size cap")
        if self.files < 0:
            raise Refused(f"{self.what} exceeds its file-count cap")


def copy_fd(src_fd: int, name: str, dest_dir_fd: int, budget: Budget, mode: int = 0o644) -> None:
    out = os.open(name, CREATE_FILE, mode, dir_fd=dest_dir_fd)
    try:
        while chunk := os.read(src_fd, CHUNK):
            budget.charge(len(chunk))
            os.write(out, chunk)
    finally:
        os.close(out)


def ignored(name: str, info: os.stat_result, exclude=(), include=(), max_file_kb=None) -> bool:
    """nbgrader's ``CourseDirectory.ignore/include/max_file_size`` rules, judged on what we opened."""
    if any(fnmatch.fnmatch(name, glob) for glob in exclude):
        return True
    if stat.S_ISDIR(info.st_mode):
        return False
    too_big = max_file_kb and info.st_size > 1000 * max_file_kb
    return bool((include and not any(fnmatch.fnmatch(name, glob) for glob in include)) or too_big)


def copy_regular_tree(
    src: str, dest: str, budget: Budget, skip=lambda name, info: False, dir_mode: int = 0o755, file_mode: int = 0o644
) -> None:
    """Copy folder ``src`` to new folder ``dest``: regular files and folders only, never through a link.

    ``src`` itself must not be a link. Raises Refused at the first link, FIFO,
    device, socket or hard link (``dest`` is then incomplete: the caller removes it).
    """
    try:
        src_fd = os.open(src, OPEN_DIR)
    except OSError as err:
        raise Refused(f"{src} is a link or not a folder ({err.strerror})") from None
    try:
        os.mkdir(dest, dir_mode)
        dest_fd = os.open(dest, OPEN_DIR)
        try:
            _copy_dir(src_fd, dest_fd, src, budget, skip, dir_mode, file_mode)
        finally:
            os.close(dest_fd)
    finally:
        os.close(src_fd)


def _copy_dir(src_fd, dest_fd, shown, budget, skip, dir_mode, file_mode) -> None:
    for name in sorted(os.listdir(src_fd)):
        path = f"{shown}/{name}"
        info = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            if skip(name, info):
                continue
            try:
                child = os.open(name, OPEN_DIR, dir_fd=src_fd)
            except OSError as err:  # swapped for a link since the stat
                raise Refused(f"{path} is a link or not a folder ({err.strerror})") from None
            try:
                os.mkdir(name, dir_mode, dir_fd=dest_fd)
                out = os.open(name, OPEN_DIR, dir_fd=dest_fd)
                try:
                    budget.charge(files=1)
                    _copy_dir(child, out, path, budget, skip, dir_mode, file_mode)
                finally:
                    os.close(out)
            finally:
                os.close(child)
            continue
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{path} is {_kind(info.st_mode)}; only regular files are accepted")
        fd, opened = regular_fd(name, src_fd, path)
        try:
            if not skip(name, opened):
                budget.charge(files=1)
                copy_fd(fd, name, dest_fd, budget, file_mode)
        finally:
            os.close(fd)


def tree_problem(folder: str) -> str | None:
    """Why ``folder`` is not a plain folder of regular files (a link anywhere), or None (printable only)."""
    try:
        fd = os.open(folder, OPEN_DIR)
    except OSError as err:
        return printable(f"{folder} is a link or not a folder ({err.strerror})")
    try:
        problem = _scan(fd, folder)
    finally:
        os.close(fd)
    return problem and printable(problem)


def _scan(dir_fd: int, shown: str) -> str | None:
    for name in sorted(os.listdir(dir_fd)):
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        path = f"{shown}/{name}"
        if stat.S_ISDIR(info.st_mode):
            try:
                child = os.open(name, OPEN_DIR, dir_fd=dir_fd)
            except OSError as err:
                return f"{path} is a link or not a folder ({err.strerror})"
            try:
                problem = _scan(child, path)
            finally:
                os.close(child)
            if problem:
                return problem
        elif not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            why = _kind(info.st_mode) if not stat.S_ISREG(info.st_mode) else f"a hard link ({info.st_nlink} names)"
            return f"{path} is {why}; only regular files are accepted"
    return None


def open_regular(path: str) -> tuple[int, os.stat_result]:
    """``regular_fd`` for a path: its folders may be links (the instructor's), the file itself may not."""
    folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return regular_fd(os.path.basename(path), folder, str(path))
    finally:
        os.close(folder)


def copy_regular_file(path: str, target: str, budget: Budget) -> None:
    """Copy the regular file ``path`` into folder ``target`` under its own name (never through a link)."""
    fd, _ = open_regular(path)
    try:
        dest = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            budget.charge(files=1)
            copy_fd(fd, os.path.basename(path), dest, budget)
        finally:
            os.close(dest)
    finally:
        os.close(fd)


def read_regular(path: str, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular, singly linked file of at most ``max_bytes`` (never a link)."""
    fd, info = open_regular(path)
    try:
        if info.st_size > max_bytes:
            raise Refused(f"{path} is {info.st_size} bytes, over the {max_bytes}-byte cap")
        chunks, total = [], 0
        while total <= max_bytes and (chunk := os.read(fd, CHUNK)):
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise Refused(f"{path} grew past the {max_bytes}-byte cap while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _regions(text: str, begin: str, end: str) -> list:
    return re.findall(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S)


def instructor_secrets(source_nb) -> tuple:
    """Lines only the instructor's notebook holds, to recognise it inside a submission.

    Every line (12+ characters) of a hidden-test region that does not also occur
    outside the regions: students never receive those. Solution text is no evidence
    (a correct student may write the reference's very lines, and the sample class
    does); the region markers around it are (``INSTRUCTOR_MARKERS``).
    """
    secrets, public = set(), []
    for cell in source_nb.cells:
        text = cell.source
        public.append(re.sub(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n.*?### END \1", "", text, flags=re.S))
        for block in _regions(text, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"):
            secrets.update(line.strip() for line in block.splitlines() if len(line.strip()) >= 12)
    given = "\n".join(public)
    return tuple(sorted(line for line in secrets if line not in given))


def instructor_text(sources, secrets=()) -> str | None:
    """The first instructor-only text (a region marker or one of ``secrets``) in ``sources``, or None."""
    for text in sources:
        for marker in INSTRUCTOR_MARKERS:
            if marker in text:
                return marker
        for secret in secrets:
            if secret in text:
                return secret[:60]
    return None
