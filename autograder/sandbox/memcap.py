"""One memory budget for a sandbox's whole process tree, not per process.

RLIMIT_AS caps each process, so a sandbox that forks N children may hold N times
the cap. This module picks, once per grader process, the strongest bound this
machine offers and gives every sandbox its own group in it:

- ``cgroup v2``: the memory controller of the unified hierarchy (memory.max,
  memory.swap.max=0, memory.oom.group=1 so an OOM kills the whole tree, pids.max,
  cgroup.kill). Needs root and a cgroup whose subtree may enable memory.
- ``cgroup v1 memory controller``: memory.limit_in_bytes (and memsw when swap
  accounting exists), plus a group in the v1 pids controller if it is mounted.
  This is the hybrid layout of our CI machines, where the v2 mount has no controllers.
- ``one process``: no usable cgroup (not root, or forced). A seccomp filter lets
  the sandbox create threads but no processes, so its tree is one process and
  1 x RLIMIT_AS stays within the budget; threads share the address space.

Groups are named ``autograder-<grader pid>-<n>`` like the run folders, removed
after their tree is killed, and :func:`sweep` removes those of dead graders.
``AUTOGRADER_MEMORY_CAP=one-process`` forces the fallback (tests); it can only
choose another bound that holds the same budget, never switch the cap off.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import platform
import signal
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "autograder-"
FORCE_ENV = "AUTOGRADER_MEMORY_CAP"
FORCE_VALUES = ("auto", "one-process")
V2, V1, ONE_PROCESS = "cgroup v2", "cgroup v1 memory controller", "one process"
#: Tasks of a sandbox that are not the student's: bwrap and the init of its PID namespace.
SANDBOX_OVERHEAD_TASKS = 3

_names = itertools.count()
_names_lock = threading.Lock()


class MemcapError(RuntimeError):
    """A sandbox's memory group could not be made or joined: no student code may run."""


# ------------------------------------------------------------------ where groups go


def _mounts(mountinfo: str) -> dict[str, tuple[Path, str]]:
    """{"cgroup2" or a v1 controller name: (mount point, mount root)} from /proc/self/mountinfo text."""
    found: dict[str, tuple[Path, str]] = {}
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        point = (Path(fields[4].encode().decode("unicode_escape")), fields[3])
        if tail[0] == "cgroup2":
            found.setdefault("cgroup2", point)
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                found.setdefault(option, point)
    return found


def _own_cgroups(text: str) -> dict[str, str]:
    """{"" (v2) or a v1 controller name: this process's cgroup path} from /proc/self/cgroup text."""
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for name in parts[1].split(",") if parts[1] else [""]:
                paths[name] = parts[2]
    return paths


def _join(mount: tuple[Path, str], path: str) -> Path:
    """The directory of cgroup ``path`` under a mount whose root is ``mount[1]``."""
    point, root = mount
    rel = path[len(root) :] if root != "/" and path.startswith(root) else path
    return point / rel.lstrip("/")


def _read(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text()
    return ""


def _v2_parent(mounts, own) -> Path | None:
    """Our v2 cgroup if new children of it get memory and pids controllers (enabling them if we may)."""
    if "cgroup2" not in mounts or "" not in own:
        return None
    parent = _join(mounts["cgroup2"], own[""])
    if "memory" not in _read(parent / "cgroup.controllers").split():
        return None
    enabled = _read(parent / "cgroup.subtree_control").split()
    if "memory" not in enabled:
        try:  # refused (EBUSY) in a non-root cgroup that holds processes, such as ours
            (parent / "cgroup.subtree_control").write_text("+memory")
        except OSError:
            return None
    if "pids" not in enabled and "pids" in _read(parent / "cgroup.controllers").split():
        with contextlib.suppress(OSError):
            (parent / "cgroup.subtree_control").write_text("+pids")
    return parent


def _v1_parents(mounts, own) -> tuple[Path | None, Path | None]:
    """Our v1 memory cgroup (if writable) and our v1 pids cgroup (if mounted)."""

    def parent(name):
        if name in mounts and name in own:
            path = _join(mounts[name], own[name])
            if os.access(path, os.W_OK):
                return path
        return None

    return parent("memory"), parent("pids")


@dataclass(frozen=True)
class Backend:
    """The bound that applies on this machine and where its groups are made."""

    kind: str  # V2, V1 or ONE_PROCESS
    memory_parent: Path | None = None  # v2: the one parent; v1: the memory controller's
    pids_parent: Path | None = None  # v1 only: the pids controller's (None: not mounted)
    why: str = ""  # for ONE_PROCESS: why no cgroup is used

    def describe(self, budget: int) -> str:
        """The announcement line: which bound applies."""
        how = {
            V2: "cgroup v2 memory controller",
            V1: V1,
            ONE_PROCESS: f"no cgroup ({self.why}): a seccomp filter allows threads but no "
            "second process, so one process's RLIMIT_AS is the whole tree's",
        }[self.kind]
        return f"memory: each sandbox's process tree capped at {budget / 1024**3:.1f} GiB ({how})"


def forced() -> str:
    """``AUTOGRADER_MEMORY_CAP`` (read each time); an unknown value is refused, never ignored."""
    value = os.environ.get(FORCE_ENV, "").strip().lower() or "auto"
    if value not in FORCE_VALUES:
        raise MemcapError(
            f"{FORCE_ENV}={value!r} is not one of {', '.join(FORCE_VALUES)}: "
            "unset it to let the grader pick the memory bound"
        )
    return value


def detect() -> Backend:
    """The strongest bound available now (the forced fallback, or a cgroup we really can use)."""
    if forced() == "one-process":
        return Backend(ONE_PROCESS, why=f"{FORCE_ENV}=one-process")
    return _detect_cgroup()


_detect_lock = threading.Lock()  # a worker's four probe threads may ask at once


def _detect_cgroup() -> Backend:
    with _detect_lock:
        return _detect_cgroup_once()


@functools.cache
def _detect_cgroup_once() -> Backend:
    if os.geteuid() != 0:
        return Backend(ONE_PROCESS, why="not root, so no cgroup of our own")
    mounts = _mounts(_read(Path("/proc/self/mountinfo")))
    own = _own_cgroups(_read(Path("/proc/self/cgroup")))
    v2 = _v2_parent(mounts, own)
    if v2 is not None and _can_make_group(v2):
        return Backend(V2, v2)
    memory, pids = _v1_parents(mounts, own)
    if memory is not None and _can_make_group(memory):
        return Backend(V1, memory, pids if pids is not None and _can_make_group(pids) else None)
    return Backend(ONE_PROCESS, why="no writable cgroup memory controller")


def _can_make_group(parent: Path) -> bool:
    probe = parent / f"{PREFIX}{os.getpid()}-probe"
    try:
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------ groups


@dataclass
class Group:
    """One sandbox's cgroup (one directory per hierarchy it spans)."""

    kind: str
    dirs: list[Path]  # memory (or v2) first, then v1 pids
    budget: int
    joined: list[int] = field(default_factory=list)

    @property
    def memory_dir(self) -> Path:
        return self.dirs[0]

    def join(self) -> None:
        """Move the calling process into the group: call in the child before it execs (preexec_fn)."""
        for path in self.dirs:
            with open(path / "cgroup.procs", "w") as procs:  # one write(2); fails loudly
                procs.write(str(os.getpid()))

    def oom_killed(self) -> bool:
        """True once the kernel has killed a process of this group for exceeding the budget."""
        if self.kind == V2:
            text = _read(self.memory_dir / "memory.events")
        else:  # v1: oom_control has an oom_kill counter (Linux >= 4.13); failcnt counts hits
            text = _read(self.memory_dir / "memory.oom_control")
        counters = dict(line.split()[:2] for line in text.splitlines() if len(line.split()) >= 2)
        return int(counters.get("oom_kill", "0") or 0) > 0 or int(counters.get("oom_group_kill", "0") or 0) > 0

    def members(self) -> list[int]:
        pids = set()
        for path in self.dirs:
            pids.update(int(p) for p in _read(path / "cgroup.procs").split() if p.isdigit())
        return sorted(pids)

    def kill(self) -> None:
        """SIGKILL every process in the group (a fork racing the loop is caught by the next round)."""
        if self.kind == V2 and (self.memory_dir / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                (self.memory_dir / "cgroup.kill").write_text("1")
            return
        for _ in range(100):
            members = self.members()
            if not members:
                return
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self, timeout: float = 5.0) -> bool:
        """Kill the tree, then delete the group's directories; False if one is still busy."""
        self.kill()
        deadline = time.monotonic() + timeout
        left = list(self.dirs)
        while left:
            for path in list(left):
                try:
                    path.rmdir()
                    left.remove(path)
                except FileNotFoundError:
                    left.remove(path)
                except OSError as err:
                    if err.errno != errno.EBUSY or time.monotonic() > deadline:
                        return False  # the next sweep retries
            if left:
                self.kill()
                time.sleep(0.02)
        return True


def _write(path: Path, value: str, *, required: bool = True) -> None:
    try:
        path.write_text(value)
    except OSError as err:
        if required or err.errno != errno.ENOENT:
            raise MemcapError(f"cannot set {path} to {value}: {err}") from err


def new_group(backend: Backend, budget: int, tasks: int) -> Group | None:
    """A fresh group capped at ``budget`` bytes and ``tasks`` tasks; None for ONE_PROCESS."""
    if backend.kind == ONE_PROCESS:
        return None
    with _names_lock:
        name = f"{PREFIX}{os.getpid()}-{next(_names)}"
    dirs = [backend.memory_parent / name]
    if backend.pids_parent is not None:
        dirs.append(backend.pids_parent / name)
    group = Group(backend.kind, [], budget)
    try:
        for path in dirs:
            path.mkdir()
            group.dirs.append(path)
        mem = group.memory_dir
        if backend.kind == V2:
            _write(mem / "memory.max", str(budget))
            _write(mem / "memory.swap.max", "0", required=False)  # absent without swap accounting
            _write(mem / "memory.oom.group", "1")
            _write(mem / "pids.max", str(tasks), required=False)  # absent if pids is not enabled
        else:
            _write(mem / "memory.limit_in_bytes", str(budget))
            if (mem / "memory.memsw.limit_in_bytes").exists():  # must follow limit_in_bytes
                _write(mem / "memory.memsw.limit_in_bytes", str(budget))
            if len(dirs) > 1:
                _write(dirs[1] / "pids.max", str(tasks))
    except (OSError, MemcapError) as err:
        group.remove()
        raise MemcapError(f"could not make the sandbox's memory group {name}: {err}") from err
    return group


def sweep(alive, backend: Backend | None = None) -> list[Path]:
    """Kill and remove the groups of graders that no longer run (after a SIGKILL).

    ``alive(pid)`` says whether a grader still runs (tempdirs passes the test it
    uses for run folders, so both agree).
    """
    backend = backend or (_detect_cgroup() if os.geteuid() == 0 else None)
    removed = []
    if backend is None or backend.kind == ONE_PROCESS:
        return removed
    parents = [p for p in (backend.memory_parent, backend.pids_parent) if p is not None]
    for parent in parents:
        for path in parent.glob(f"{PREFIX}*-*"):
            owner = path.name[len(PREFIX) :].split("-")[0]
            if owner.isdigit() and int(owner) != os.getpid() and not alive(int(owner)):
                if Group(backend.kind, [path], 0).remove():
                    removed.append(path)
    return removed


# ----------------------------------------------------------------- one process

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
#: {arch: (clone, clone3, syscalls that only make processes)}
_SYSCALLS = {"x86_64": (56, 435, (57, 58)), "aarch64": (220, 435, ())}
_CLONE_THREAD = 0x00010000
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _ERRNO, _KILL = 0x7FFF0000, 0x00050000, 0x80000000


def no_process_filter(machine: str | None = None) -> bytes:
    """A seccomp BPF program (bwrap ``--seccomp``): threads yes, new processes EPERM.

    clone3 passes its flags in memory, out of a filter's reach: it gets ENOSYS,
    so libc falls back to clone, whose flags the filter sees. Other ABIs (32-bit
    x86 syscalls from a 64-bit process) are killed: they would bypass the numbers.
    """
    machine = machine or platform.machine()
    if machine not in _SYSCALLS:
        raise MemcapError(f"no seccomp filter for {machine}: the one-process memory bound is unavailable")
    clone, clone3, forks = _SYSCALLS[machine]
    # (code, true target, false target, k); targets are labels or 0 (next instruction)
    program = [(_LD_ABS, 0, 0, 4), (_JEQ, 0, "kill", _AUDIT_ARCH[machine]), (_LD_ABS, 0, 0, 0)]
    if machine == "x86_64":
        program.append((_JGE, "kill", 0, 0x40000000))  # the x32 ABI
    program.append((_JEQ, "enosys", 0, clone3))
    program += [(_JEQ, "eperm", 0, nr) for nr in forks]
    program += [(_JEQ, 0, "allow", clone), (_LD_ABS, 0, 0, 16), (_JSET, "allow", "eperm", _CLONE_THREAD)]
    labels = {
        "allow": (_RET, _ALLOW),
        "eperm": (_RET, _ERRNO | errno.EPERM),
        "enosys": (_RET, _ERRNO | errno.ENOSYS),
        "kill": (_RET, _KILL),
    }
    at = {name: len(program) + i for i, name in enumerate(labels)}

    def offset(target, index):
        return 0 if target == 0 else at[target] - index - 1

    code = b"".join(
        struct.pack("=HBBI", op, offset(jt, i), offset(jf, i), k) for i, (op, jt, jf, k) in enumerate(program)
    )
    return code + b"".join(struct.pack("=HBBI", op, 0, 0, k) for op, k in labels.values())


def filter_fd() -> int:
    """A readable fd (at offset 0) holding :func:`no_process_filter`, for bwrap's ``--seccomp``."""
    fd = os.memfd_create("autograder-seccomp", 0)
    os.write(fd, no_process_filter())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
