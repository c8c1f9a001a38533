"""What the pytest-xdist workers of one test session share: folders built once, and a lock for tests that run alone.

Each xdist worker is a process of its own, so a session-scoped fixture runs once *per worker*.
The expensive ones (grading the sample class, the scratch nbgrader course) build a folder
instead: the first worker to ask builds it under a file lock in the directory all workers of
the session share, and the others wait for the lock and read what it built. Without xdist the
directory is the session's own base temp, and the lock is uncontended.

A folder counts as built only once its ``NAME.complete`` marker (beside it) exists: a worker that died half-way
(or a build that raised) leaves no marker, and the next one to ask removes the remains and
builds again, so a failure is reported by every test that needed the folder, never hidden.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


def session_root(tmp_path_factory) -> Path:
    """The directory every worker of this test session shares (the session's base temp without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """``root/name``, made by ``build(folder)`` in exactly one of the processes that ask for it."""
    folder = root / name
    complete = root / f"{name}.complete"
    with FileLock(str(root / f"{name}.lock")):
        if not complete.exists():
            if folder.exists():  # the remains of a build that failed or whose worker died
                shutil.rmtree(folder)
            folder.mkdir()
            build(folder)
            complete.touch()
    return folder


def restore(copy: Path, folder: Path) -> None:
    """Make ``folder`` again exactly what ``copy`` holds (a copy taken with ``shutil.copytree(..., symlinks=True)``)."""
    shutil.rmtree(folder)
    shutil.copytree(copy, folder, symlinks=True)


@contextmanager
def used_alone(copy: Path, folder: Path):
    """``folder`` for one test at a time in the whole session, restored from ``copy`` first: for a shared
    thing a test writes into, that cannot be copied elsewhere (a venv's editable install names its path)."""
    with FileLock(str(folder.parent / f"{folder.name}.in-use.lock")):
        restore(copy, folder)
        yield folder


# --------------------------------------------------------------------------- tests that run alone
# A few tests observe the whole machine: no `sleep 617` left by any attack, no process of any
# sandbox uid, the venv itself reinstalled. Another test running at the same time (the other
# xdist worker's) would make them fail falsely, or pull the venv from under it. Every test holds
# this lock while it runs (setup, call and teardown, so the session fixtures built in its setup
# too): shared by default, exclusive for a test marked ``alone``. The lock is the machine's (one
# file per user in the system temp folder), as what those tests observe is. The gate stops new
# shared holders while an exclusive one waits, so the other workers' tests cannot starve it.
MACHINE_LOCK = Path(tempfile.gettempdir()) / f"tinytorch-tests-{os.getuid()}.machine"


def _lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


@contextmanager
def machine(alone: bool, path: Path = MACHINE_LOCK):
    gate, lock = _lock_file(path.with_suffix(".gate")), _lock_file(path)
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield
    finally:
        os.close(lock)  # closing releases the flock
        os.close(gate)
