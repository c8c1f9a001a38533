"""The grader's temporary folders: one folder per process, size-capped scratch, nothing left behind.

Every temporary folder of a grading process (the nbgrader runtime copy, probe and
kernel scratch, kernel runtime dirs, scratch courses) lives under that process's
``autograder-run-<pid>-*`` folder in the temp directory. The folder is
removed when the process exits normally; after a SIGKILL, the next grading process
(or the supervisor that saw its worker die) finds the folder of a dead pid and
removes it, and the sandbox memory cgroups named after it (:mod:`memcap`). Writable sandbox folders are size-limited tmpfs mounts when we are root
(:func:`capped_dir`); see ARCHITECTURE.md for the non-root case.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import tempfile
import threading
from pathlib import Path

from . import memcap

PREFIX = "autograder-run-"
_MS_NOSUID, _MS_NODEV = 2, 4
_MNT_DETACH = 2
_mine: dict[int, Path] = {}  # {pid: its run folder}; a forked child makes its own
# The four component probes start on threads at once: without the lock each made a run
# folder (three leaked) and registered an atexit of its own; three of the four raised
# KeyError at exit, the "Exception ignored in atexit callback" make bench printed.
_making = threading.Lock()


def _fresh_lock_in_child() -> None:  # a fork while another thread held it must not deadlock the child
    global _making
    _making = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_in_child)


def run_dir() -> Path:
    """This process's folder for every temporary thing (made on first use, after a sweep)."""
    pid = os.getpid()
    with _making:
        return _mine.get(pid) or _make_run_dir(pid)


def _make_run_dir(pid: int) -> Path:
    sweep()
    # Short: kernels put unix sockets in here, and a socket path has at most 107 bytes.
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{pid}-"))
    path.chmod(0o711)  # sandbox uids must traverse it to reach their own scratch folders
    _mine[pid] = path
    return path


def _remove_own() -> None:
    """At exit: remove this process's run folder, if it made one.

    Registered once, at import, rather than once per folder made: a forked child
    inherits the handler and finds only its own pid's folder (never its parent's),
    and no second registration can find its entry gone.
    """
    path = _mine.pop(os.getpid(), None)
    if path is not None:
        remove(path)


atexit.register(_remove_own)


def mkdtemp(prefix: str) -> Path:
    """A new folder in this process's run folder."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=run_dir()))


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def mount_cap(path: Path, size_bytes: int) -> bool:
    """Mount a ``size_bytes`` tmpfs on the empty folder ``path``; False if we may not (not root)."""
    if os.geteuid() != 0:
        return False
    options = f"size={int(size_bytes)},mode=0711".encode()
    return _libc().mount(b"tmpfs", str(path).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options) == 0


@contextlib.contextmanager
def capped_dir(prefix: str, size_bytes: int):
    """A new folder whose contents can never exceed ``size_bytes`` (as root); removed afterwards."""
    path = mkdtemp(prefix)
    try:
        mount_cap(path, size_bytes)
        yield path
    finally:
        remove(path)


def _mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest first (from /proc/self/mountinfo)."""
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as info:
        for line in info:
            point = Path(line.split()[4].encode().decode("unicode_escape"))  # octal escapes (\040)
            if point == path or path in point.parents:
                found.append(point)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove(path: Path) -> None:
    """Unmount whatever is mounted at or below ``path``, then delete it."""
    path = Path(path)
    libc = None
    for point in _mounts_under(path.resolve() if path.exists() else path):
        libc = libc or _libc()
        libc.umount2(str(point).encode(), _MNT_DETACH)
    shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except (OSError, IndexError):
        return False


def sweep(tmp: Path | None = None) -> list[Path]:
    """Remove the run folders (and sandbox memory cgroups) of processes that no longer exist.

    Pids are those of our PID namespace: graders in containers that share one temp
    directory would remove each other's folders, so give each container its own.
    """
    removed = []
    for path in Path(tmp or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            pid = int(path.name[len(PREFIX) :].split("-")[0])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _alive(pid):
            remove(path)
            removed.append(path)
    return removed + memcap.sweep(_alive)
