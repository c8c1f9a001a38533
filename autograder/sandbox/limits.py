"""What one sandbox may use (:class:`Limits`, its memory budget) and whom it runs as (its uid).

When we run as root, bwrap itself stays root (it needs to read /root/.pyenv, which
is 0700) and the student command is started through ``setpriv`` as its own
unprivileged uid/gid, so RLIMIT_NPROC applies per sandbox and the student owns
nothing outside the scratch directory.
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

#: As root, each sandbox runs as its own unprivileged uid/gid from this range
#: (no passwd entry needed), so RLIMIT_NPROC, which counts per uid, caps every
#: sandbox separately: one fork bomb cannot starve a concurrent grader.
SANDBOX_ID_BASE = 200_000
_ids = itertools.count()
_ids_lock = threading.Lock()
_held: set[int] = set()  # the uids of this process's live kernels (a batch's spare waits a while)


#: Sandboxes one grader process may run at once (it runs a kernel, then four probes).
IDS_PER_PROCESS = 64
#: Linux never hands out a pid at or above this (PID_MAX_LIMIT on 64-bit), whatever pid_max says.
PID_LIMIT = 2**22


def new_sandbox_id(hold: bool = False) -> int:
    """A uid (also used as gid) not shared with any other live sandbox of this machine's graders.

    Each grader pid owns its own block of IDS_PER_PROCESS uids (no modulo: two live
    pids never share a block) and cycles through it; the largest uid,
    200000 + 2**22 * 64, stays far below the 32-bit uid limit. A kernel holds its uid
    (``hold``) until :func:`release_sandbox_id`: a spare kernel waiting for the next
    student must not share it with the many short probe sandboxes of this one.
    """
    pid = os.getpid()
    if not 0 < pid < PID_LIMIT:
        raise RuntimeError(f"pid {pid} is outside 1..{PID_LIMIT - 1}: cannot give the sandbox its own uid")
    with _ids_lock:
        for _ in range(IDS_PER_PROCESS):
            uid = SANDBOX_ID_BASE + pid * IDS_PER_PROCESS + next(_ids) % IDS_PER_PROCESS
            if uid not in _held:
                break
        else:
            raise RuntimeError(f"all {IDS_PER_PROCESS} sandbox uids of this grader are held by live kernels")
        if hold:
            _held.add(uid)
    return uid


def release_sandbox_id(uid: int) -> None:
    with _ids_lock:
        _held.discard(uid)


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 2 * 1024**3  # RLIMIT_AS (address space, so numpy allocations count)
    cpu_seconds: int = 60  # RLIMIT_CPU: SIGXCPU, then SIGKILL one second later
    wall_seconds: float = 60.0  # enforced by the parent: the whole tree is killed
    processes: int = 64  # RLIMIT_NPROC, counts threads too; only bites for a non-root uid
    file_bytes: int = 64 * 1024**2  # RLIMIT_FSIZE per file; also the size of /tmp and /dev/shm
    disk_bytes: int = 256 * 1024**2  # size of a writable host folder made by tempdirs.capped_dir (as root)
    output_bytes: int = 1024**2  # stdout and stderr are each kept up to this; the rest is dropped


def memory_budget(limits: Limits, extra_bytes: int = 0) -> int:
    """Bytes the sandbox's whole tree may hold: one process's RLIMIT_AS plus its tmpfs pages.

    Pages written to /tmp, /dev/shm and the size-capped writable folder are charged
    to the sandbox's cgroup but not to RLIMIT_AS, so a correct notebook that uses
    its full address space and fills every folder still fits (no false fail).
    """
    return limits.memory_bytes + 2 * limits.file_bytes + limits.disk_bytes + extra_bytes


def drops_privileges() -> bool:
    """As root we hand the student a real unprivileged uid (RLIMIT_NPROC ignores root)."""
    return os.geteuid() == 0


def prepare_dir(path: Path, uid: int = SANDBOX_ID_BASE) -> None:
    """Make a directory the sandbox user may write (only the directory itself)."""
    path.mkdir(parents=True, exist_ok=True)
    if drops_privileges():
        os.chown(path, uid, uid)
        # bwrap's --chdir runs as root without CAP_DAC_OVERRIDE: it needs o+x.
        os.chmod(path, path.stat().st_mode & 0o7777 | 0o711)
