"""A sandbox's process tree: its rlimits, its whole-tree memory cap, and killing all of it.

Resource limits are plain rlimits set before bwrap is exec'd. Memory is also
capped for the sandbox's whole process tree (:mod:`memcap`: a cgroup joined
before bwrap is exec'd, or a seccomp filter that allows no second process), at
:func:`~.limits.memory_budget`. Nothing outlives the sandbox: its PID 1 is
killed through a pidfd (so never a recycled pid), bwrap's process group and the
memory group too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import select
import signal
from dataclasses import dataclass

from . import memcap
from .limits import Limits, memory_budget


def set_rlimits(limits: Limits) -> None:
    """preexec_fn: runs in the child between fork and exec, so limits bind bwrap and all below."""
    for res, soft, hard in (
        (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
        (resource.RLIMIT_NPROC, limits.processes, limits.processes),
        (resource.RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
        (resource.RLIMIT_CORE, 0, 0),  # a 2 GB core dump is not a useful artefact
    ):
        resource.setrlimit(res, (soft, hard))


def _enter_sandbox(limits: Limits, group: memcap.Group | None) -> None:
    """preexec_fn: join the sandbox's memory group, then set the rlimits, before bwrap is exec'd."""
    if group is not None:
        group.join()
    set_rlimits(limits)


@dataclass
class TreeCap:
    """One sandbox's whole-tree memory bound: its cgroup, or else the one-process seccomp filter."""

    group: memcap.Group | None
    seccomp_fd: int | None
    budget: int

    @classmethod
    def new(cls, limits: Limits, extra_bytes: int = 0) -> TreeCap:
        budget = memory_budget(limits, extra_bytes)
        tasks = limits.processes + memcap.SANDBOX_OVERHEAD_TASKS
        group = memcap.new_group(memcap.detect(), budget, tasks)
        return cls(group, None if group is not None else memcap.filter_fd(), budget)

    def preexec(self, limits: Limits):
        return functools.partial(_enter_sandbox, limits, self.group)

    def pass_fds(self) -> tuple[int, ...]:
        return () if self.seccomp_fd is None else (self.seccomp_fd,)

    def close_fd(self) -> None:
        """Once bwrap has been started: it has read (or inherited) the filter."""
        if self.seccomp_fd is not None:
            os.close(self.seccomp_fd)
            self.seccomp_fd = None

    def oom_killed(self) -> bool:
        return self.group is not None and self.group.oom_killed()

    def reason(self) -> str:
        return f"out of memory (its processes together used more than {self.budget / 1024**3:.1f} GiB)"

    def kill(self) -> None:
        if self.group is not None:
            self.group.kill()

    def release(self) -> None:
        """After the tree is gone: kill any straggler and remove the group (the sweep retries a busy one)."""
        self.close_fd()
        if self.group is not None:
            self.group.remove()
            self.group = None


def has_exited(pid: int) -> bool:
    """Like Popen.poll() but without reaping, so the pid (= our pgid) stays reserved."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def kill_group(pgid: int) -> None:
    """SIGKILL a process group (bwrap itself, or the whole command when unsandboxed)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def pidfd_from_info(fd: int, timeout: float) -> int | None:
    """Read bwrap's --info-fd JSON (and close fd); return a pidfd for the sandbox's PID 1.

    bwrap exits as soon as it knows the exit status, before that PID 1 has torn
    down the namespace, and PID 1 runs in a session of its own. Holding a pidfd
    lets us kill PID 1 (and with it the namespace) without ever hitting a
    recycled pid.
    """
    data = b""
    try:
        while select.select([fd], [], [], timeout)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    try:
        return os.pidfd_open(json.loads(data)["child-pid"])
    except (ValueError, KeyError, OSError):
        return None  # bwrap failed early, or PID 1 (so its namespace) is already gone


def kill_namespace(pidfd: int | None, timeout: float = 5.0) -> None:
    """Kill the sandbox's PID 1 and wait until its pidfd is readable: the kernel only
    reports PID 1 as exited once every other process in the namespace is gone."""
    if pidfd is None:
        return
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    select.select([pidfd], [], [], timeout)
    os.close(pidfd)
