"""Run untrusted student code in a bubblewrap (bwrap) sandbox.

The sandbox sees only what a Python process needs (read-only /usr, a few /etc
files, the Python installation and the venv, plus ``ro_paths``), can write only
to its scratch directory and a small private /tmp, has no network (its own
network namespace, so not even the host's 127.0.0.1) and lives in its own PID
namespace, so killing bwrap kills every process the student started.

Resource limits are plain rlimits set before bwrap is exec'd; wall time is
enforced by the parent. Memory is also capped for the sandbox's whole process
tree (:mod:`memcap`: a cgroup joined before bwrap is exec'd, or a seccomp filter
that allows no second process), at :func:`memory_budget`. When we run as root, bwrap itself stays root (it needs
to read /root/.pyenv, which is 0700) and the student command is started through
``setpriv`` as its own unprivileged uid/gid, so RLIMIT_NPROC applies per sandbox and the
student owns nothing outside the scratch directory.

Fail closed: ``AUTOGRADER_SANDBOX`` unset, ``auto`` or ``required`` all demand a
working bwrap, and :func:`check` (called by every entry point before any student
code runs) raises :class:`SandboxUnavailable` with the probe's own failure and the
fixes. ``off`` is the only way to run student code unsandboxed (rlimits only), and
:func:`check` announces it on stderr every time.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import resource
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from jupyter_client.manager import AsyncKernelManager
from traitlets import Dict, Instance, Integer, List, Unicode

from . import memcap, tempdirs


#: As root, each sandbox runs as its own unprivileged uid/gid from this range
#: (no passwd entry needed), so RLIMIT_NPROC, which counts per uid, caps every
#: sandbox separately: one fork bomb cannot starve a concurrent grader.
SANDBOX_ID_BASE = 200_000
_ids = itertools.count()
_ids_lock = threading.Lock()


#: Sandboxes one grader process may run at once (it runs a kernel, then four probes).
IDS_PER_PROCESS = 64
#: Linux never hands out a pid at or above this (PID_MAX_LIMIT on 64-bit), whatever pid_max says.
PID_LIMIT = 2**22


def new_sandbox_id() -> int:
    """A uid (also used as gid) not shared with any other live sandbox of this machine's graders.

    Each grader pid owns its own block of IDS_PER_PROCESS uids (no modulo: two live
    pids never share a block) and cycles through it; the largest uid,
    200000 + 2**22 * 64, stays far below the 32-bit uid limit.
    """
    pid = os.getpid()
    if not 0 < pid < PID_LIMIT:
        raise RuntimeError(f"pid {pid} is outside 1..{PID_LIMIT - 1}: cannot give the sandbox its own uid")
    with _ids_lock:
        n = next(_ids)
    return SANDBOX_ID_BASE + pid * IDS_PER_PROCESS + n % IDS_PER_PROCESS

MODES = ("auto", "required", "off")
OFF_WARNING = ("WARNING: AUTOGRADER_SANDBOX=off: student code runs WITHOUT the bubblewrap sandbox "
               "(no filesystem or network isolation, only resource limits); it can read and write "
               "this machine's files.")

# Read-only system files: the dynamic loader cache, time zone, user names (getpass
# fails without a passwd entry), /etc/alternatives (targets of many /usr/bin
# symlinks) and fontconfig (matplotlib runs fc-list). Nothing secret.
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd",
              "group", "nsswitch.conf", "alternatives", "fonts")


class SandboxUnavailable(RuntimeError):
    """Student code may not run: bubblewrap does not work here and AUTOGRADER_SANDBOX is not ``off``."""


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


def memory_announcement(limits: Limits = Limits()) -> str:
    """One line saying which whole-tree memory bound applies here (the default limits' budget)."""
    return memcap.detect().describe(memory_budget(limits))


@dataclass
class Result:
    returncode: int | None  # negative = killed by that signal; None = we killed it for wall time
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None  # "wall time 5.0 s exceeded", "cpu time", "memory", ...
    truncated: bool  # some stdout/stderr was discarded
    sandboxed: bool  # False only with AUTOGRADER_SANDBOX=off (rlimits only)


# --------------------------------------------------------------------------- mode

def _drops_privileges() -> bool:
    """As root we hand the student a real unprivileged uid (RLIMIT_NPROC ignores root)."""
    return os.geteuid() == 0


@functools.cache
def _probe() -> str | None:
    """Run the interpreter through the real sandbox once; return why it failed, or None."""
    if shutil.which("bwrap") is None:
        return "bwrap not found on PATH"
    if _drops_privileges() and shutil.which("setpriv") is None:
        return "setpriv (util-linux) not found; needed to drop root inside the sandbox"
    with tempfile.TemporaryDirectory(prefix="sandbox-probe-", dir=tempdirs.run_dir()) as tmp:
        _prepare_dir(Path(tmp))
        argv = _bwrap_argv([sys.executable, "-c", "import numpy"], Path(tmp))
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=30, env=_BWRAP_ENV)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap probe failed: {exc}"
    if proc.returncode != 0:
        return f"bwrap probe exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}"
    return None


def bwrap_available() -> bool:
    """bwrap exists and really runs Python in the sandbox here (probed once per process)."""
    return _probe() is None


def unavailable_reason() -> str | None:
    """Why bwrap cannot run Python here (the probe's own words), or None if it can."""
    return _probe()


def mode() -> str:
    """``AUTOGRADER_SANDBOX`` (read each time): "off", or "required" for unset/auto/required."""
    value = os.environ.get("AUTOGRADER_SANDBOX", "").strip().lower() or "auto"
    if value not in MODES:
        raise SandboxUnavailable(f"AUTOGRADER_SANDBOX={value!r} is not one of {', '.join(MODES)}: "
                                 "refusing to grade (unset it to use the bubblewrap sandbox)")
    return "off" if value == "off" else "required"


def refusal(problem: str) -> str:
    """The one message every entry point prints when it will not run student code."""
    return (f"refusing to grade: the bubblewrap sandbox does not work here ({problem.strip()}). "
            "No student code was run. Fix one of: install bubblewrap (apt-get install bubblewrap); "
            f"fix the path so that `bwrap`{' and `setpriv`' if _drops_privileges() else ''} are found "
            f"and can run {sys.executable}; or set AUTOGRADER_SANDBOX=off to grade WITHOUT isolation, "
            "knowingly accepting that student code can read and write this machine's files.")


def _use_bwrap() -> bool:
    """True: sandbox this run. False only for AUTOGRADER_SANDBOX=off. Never falls back silently."""
    if mode() == "off":
        return False
    problem = _probe()
    if problem is not None:
        raise SandboxUnavailable(refusal(problem))
    return True


def check(announce=None) -> bool:
    """Call before any student code runs: True if sandboxed; False for ``off``, after announcing it.

    Raises :class:`SandboxUnavailable` (its message says why and how to fix it)
    when the sandbox is required but does not work. ``announce`` writes the
    ``off`` warning (default: a line on stderr).
    """
    if _use_bwrap():
        try:  # an unknown AUTOGRADER_MEMORY_CAP is refused here, before any student code
            memcap.detect()
        except memcap.MemcapError as err:
            raise SandboxUnavailable(f"refusing to grade: {err}. No student code was run.") from err
        return True
    (announce or (lambda text: print(text, file=sys.stderr, flush=True)))(OFF_WARNING)
    return False


# ------------------------------------------------------------------- command line

# bwrap itself gets no secrets from our environment either.
_BWRAP_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def _base_env(scratch: Path, env: dict | None) -> dict[str, str]:
    base = {
        "PATH": f"{sys.prefix}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch),
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        # One BLAS/OpenMP thread: threads count against RLIMIT_NPROC and 2 GB of address space.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        # glibc reserves 64 MB of address space per thread arena and RLIMIT_AS counts
        # reservations: an idle kernel (11 threads) would take 850 MB instead of 330 MB.
        "MALLOC_ARENA_MAX": "2",
        "MPLBACKEND": "Agg",
    }
    base.update({str(k): str(v) for k, v in (env or {}).items()})
    return base


def _bwrap_argv(command: Sequence[str], scratch: Path, *, ro_paths: Sequence[Path] = (),
                rw_paths: Sequence[Path] = (), env: dict | None = None,
                limits: Limits = Limits(), info_fd: int | None = None, uid: int | None = None,
                seccomp_fd: int | None = None) -> list[str]:
    scratch = Path(scratch).resolve()
    uid = SANDBOX_ID_BASE if uid is None else uid
    argv = [shutil.which("bwrap") or "bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if info_fd is not None:  # bwrap reports the host pid of the sandbox's PID 1 there
        argv += ["--info-fd", str(info_fd)]
    if seccomp_fd is not None:  # memcap's one-process filter, applied to the student command
        argv += ["--seccomp", str(seccomp_fd)]
    if _drops_privileges():
        # bwrap runs as real root (it must read /root/.pyenv). Keep only the two
        # capabilities setpriv needs to drop to the sandbox uid; setuid() then clears them.
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user", "--disable-userns"]

    # Directories bwrap would create for mount points come out 0700 root, which
    # the sandbox uid cannot traverse (e.g. /root for /root/.pyenv/...): make them 0755 first.
    made: set[Path] = set()

    def parents(p: Path, binds: Sequence[Path] = ()) -> list[str]:
        out = []
        for d in reversed(p.parents):
            inside_bind = any(d == b or b in d.parents for b in binds)
            if d != Path("/") and d not in made and not inside_bind:
                out += ["--perms", "0755", "--dir", str(d)]
                made.add(d)
        return out

    argv += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():  # merged /usr (Debian 12): keep the symlink
            argv += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), str(host)]
    argv += parents(Path("/etc/x"))
    for name in _ETC_FILES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    argv += ["--dev", "/dev", "--proc", "/proc"]
    # Private, size-capped tmpfs (its pages are not charged to RLIMIT_AS), mounted
    # before the binds so that a scratch dir under /tmp is not hidden by it.
    for tmp in ("/tmp", "/dev/shm"):
        argv += ["--perms", "1777", "--size", str(limits.file_bytes), "--tmpfs", tmp]
        made.add(Path(tmp))

    # {path inside: (bind option, host source)}. A path reached through a symlink (a venv
    # at /tmp/v -> /work/.venv, sys.executable /tmp/v/bin/python) is bound at both its
    # resolved and its literal location, so commands and files name either one.
    binds: dict[Path, tuple[str, Path]] = {}
    for option, paths in (("--ro-bind", (sys.base_prefix, sys.prefix, *ro_paths)),
                          ("--bind", (*rw_paths, scratch))):
        for p in paths:
            real = Path(p).resolve()
            for inside in (real, Path(os.path.abspath(p))):
                binds[inside] = (option, real)
    done: list[Path] = [Path("/usr")]
    for path in sorted(binds, key=lambda p: len(p.parts)):  # outer mounts first
        option, source = binds[path]
        if option == "--ro-bind" and any(path == b or b in path.parents for b in done):
            continue  # already visible read-only through an outer mount
        argv += [*parents(path, done), option, str(source), str(path)]
        done.append(path)

    argv += ["--chdir", str(scratch), "--clearenv"]
    for key, value in _base_env(scratch, env).items():
        argv += ["--setenv", key, value]
    argv.append("--")
    if _drops_privileges():
        argv += [shutil.which("setpriv") or "setpriv", f"--reuid={uid}",
                 f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                 "--no-new-privs", "--"]
    return argv + list(command)


def sandbox_argv(command: list[str], scratch: Path, *, ro_paths: Sequence[Path] = (),
                 env: dict | None = None, rw_paths: Sequence[Path] = (),
                 limits: Limits = Limits()) -> list[str]:
    """The bwrap command line that runs ``command`` in ``scratch``; with AUTOGRADER_SANDBOX=off, ``command``.

    ``ro_paths`` are bound read-only and ``rw_paths`` read-write, each at its own
    path. ``limits`` only sizes /tmp here. The argv alone is not the whole
    sandbox: :func:`run` also chowns ``scratch`` to SANDBOX_UID and sets the rlimits.
    """
    if not _use_bwrap():
        return list(command)
    return _bwrap_argv(command, scratch, ro_paths=ro_paths, rw_paths=rw_paths, env=env,
                       limits=limits)


# ------------------------------------------------------------------------ running

def _prepare_dir(path: Path, uid: int = SANDBOX_ID_BASE) -> None:
    """Make a directory the sandbox user may write (only the directory itself)."""
    path.mkdir(parents=True, exist_ok=True)
    if _drops_privileges():
        os.chown(path, uid, uid)
        # bwrap's --chdir runs as root without CAP_DAC_OVERRIDE: it needs o+x.
        os.chmod(path, path.stat().st_mode & 0o7777 | 0o711)


def _set_rlimits(limits: Limits) -> None:
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
    _set_rlimits(limits)


@dataclass
class _TreeCap:
    """One sandbox's whole-tree memory bound: its cgroup, or else the one-process seccomp filter."""
    group: memcap.Group | None
    seccomp_fd: int | None
    budget: int

    @classmethod
    def new(cls, limits: Limits, extra_bytes: int = 0) -> _TreeCap:
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


def _has_exited(pid: int) -> bool:
    """Like Popen.poll() but without reaping, so the pid (= our pgid) stays reserved."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _kill_group(pgid: int) -> None:
    """SIGKILL a process group (bwrap itself, or the whole command when unsandboxed)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _pidfd_from_info(fd: int, timeout: float) -> int | None:
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


def _kill_namespace(pidfd: int | None, timeout: float = 5.0) -> None:
    """Kill the sandbox's PID 1 and wait until its pidfd is readable: the kernel only
    reports PID 1 as exited once every other process in the namespace is gone."""
    if pidfd is None:
        return
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    select.select([pidfd], [], [], timeout)
    os.close(pidfd)


class _Capped:
    """Keeps the first ``cap`` bytes of a stream and counts what it drops."""

    def __init__(self, cap: int):
        self.cap, self.data, self.dropped = cap, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        room = max(self.cap - len(self.data), 0)
        self.data += chunk[:room]
        self.dropped += max(len(chunk) - room, 0)

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _feed(pipe, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.close()


def _reason(returncode: int | None, stderr: str, timed_out: bool, limits: Limits,
            disk_full: str | None = None, tree_oom: str | None = None) -> str | None:
    if tree_oom:  # the memory group's OOM kill (it may also show as SIGKILL or a timeout)
        return tree_oom
    if timed_out:
        return f"wall time {limits.wall_seconds} s exceeded"
    if returncode == -signal.SIGXCPU:
        return "cpu time"
    if returncode == -signal.SIGXFSZ:
        return "file size"
    if returncode == -signal.SIGKILL:
        return "killed (cpu hard limit or out of memory)"
    if returncode and "MemoryError" in stderr[-2000:]:
        return "memory"  # a heuristic: Python reports RLIMIT_AS as MemoryError
    if returncode and (disk_full or "No space left on device" in stderr[-2000:]):
        return f"disk space: its writable folder{disk_full or 's'} filled up"
    return None


def _full(scratch: Path) -> str | None:
    """" (capped at N MiB)" when ``scratch`` is a size-capped mount with no room left, else None."""
    try:
        if not os.path.ismount(scratch):
            return None
        st = os.statvfs(scratch)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize < 64 * 1024:
        return f" (capped at {st.f_blocks * st.f_frsize / 1024**2:g} MiB)"
    return None


def run(command: list[str], scratch: Path, limits: Limits = Limits(), *,
        ro_paths: Sequence[Path] = (), env: dict | None = None,
        stdin: bytes | None = None) -> Result:
    """Run ``command`` sandboxed in ``scratch`` (created, and chowned to a fresh sandbox uid if we are root).

    Nothing it started survives the call: in the sandbox we kill its PID
    namespace; unsandboxed (``off``) its process group (a child that called setsid()
    escapes there - one more reason ``off`` is not safe).
    """
    scratch = Path(scratch).resolve()
    sandboxed = _use_bwrap()
    if not sandboxed:
        return _run(command, scratch, limits, None, env=env, stdin=stdin)
    cap = _TreeCap.new(limits)
    try:
        return _run(command, scratch, limits, cap, ro_paths=ro_paths, env=env, stdin=stdin)
    finally:
        cap.release()


def _run(command: list[str], scratch: Path, limits: Limits, cap: _TreeCap | None, *,
         ro_paths: Sequence[Path] = (), env: dict | None = None, stdin: bytes | None = None) -> Result:
    """:func:`run` once the tree's memory cap exists (``cap`` None: unsandboxed, rlimits only)."""
    sandboxed = cap is not None
    info_r = info_w = None
    if sandboxed:
        uid = new_sandbox_id()
        _prepare_dir(scratch, uid)
        info_r, info_w = os.pipe()
        argv = _bwrap_argv(command, scratch, ro_paths=ro_paths, env=env, limits=limits,
                           info_fd=info_w, uid=uid, seccomp_fd=cap.seccomp_fd)
        popen_env = _BWRAP_ENV
    else:
        scratch.mkdir(parents=True, exist_ok=True)
        argv, popen_env = list(command), _base_env(scratch, env)

    try:
        proc = subprocess.Popen(
            argv, cwd=scratch, env=popen_env, start_new_session=True, close_fds=True,
            pass_fds=() if info_w is None else (info_w, *cap.pass_fds()),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=cap.preexec(limits) if sandboxed else functools.partial(_set_rlimits, limits),
        )
    finally:
        if info_w is not None:
            os.close(info_w)
            cap.close_fd()
    pidfd = None if info_r is None else _pidfd_from_info(info_r, limits.wall_seconds)
    if stdin is not None:
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()

    out, err = _Capped(limits.output_bytes), _Capped(limits.output_bytes)
    deadline = time.monotonic() + limits.wall_seconds
    grace_end = None
    timed_out = False
    tree_oom = None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while sel.get_map():
            now = time.monotonic()
            if _has_exited(proc.pid):
                # Main process gone; only stragglers (``off``) can still hold the pipes.
                grace_end = grace_end or now + 0.2
                if now >= grace_end:
                    break
            elif now >= deadline:
                timed_out = True
                break
            if sandboxed and cap.oom_killed():  # v1 kills one process: the rest of the tree goes too
                tree_oom = cap.reason()
                break
            for key, _ in sel.select(timeout=min(0.1, max(deadline - now, 0))):
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data.add(chunk)  # drained even past the cap, so the child never blocks
                else:
                    sel.unregister(key.fileobj)

    _kill_namespace(pidfd)
    # Kill before reaping: while the leader is unreaped its pgid cannot be reused.
    _kill_group(proc.pid)
    if sandboxed:
        cap.kill()
    returncode = proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    if sandboxed and returncode > 128:
        returncode = 128 - returncode  # bwrap reports "killed by N" as 128+N, like a shell
    if timed_out:
        returncode = None
    stderr = err.text()
    if sandboxed and tree_oom is None and cap.oom_killed():
        tree_oom = cap.reason()
    return Result(
        returncode=returncode, stdout=out.text(), stderr=stderr, timed_out=timed_out,
        killed_reason=_reason(returncode, stderr, timed_out, limits, _full(scratch), tree_oom),
        truncated=bool(out.dropped or err.dropped), sandboxed=sandboxed,
    )


# ------------------------------------------------------------------------- kernel


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs inside the sandbox, for nbclient and nbgrader.

    The kernel has its own network namespace, so it talks to us over unix
    sockets (transport "ipc") in a private runtime directory bound into the
    sandbox. The ``cwd`` given to ``start_kernel`` (nbclient passes the
    notebook's directory) becomes the writable scratch dir. Interrupts go as
    messages: a SIGINT to bwrap's process group would kill bwrap, and the
    kernel sits in a session of its own anyway. The whole sandbox is killed on
    shutdown and after ``limits.wall_seconds``, a lifetime limit for the kernel.
    """

    limits = Instance(Limits, kw={}, help="rlimits and kernel lifetime").tag(config=True)
    scratch_dir = Unicode("", help="writable dir when start_kernel gets no cwd").tag(config=True)
    ro_paths = List(Unicode(), help="extra paths visible read-only").tag(config=True)
    extra_env = Dict(value_trait=Unicode(), help="extra environment variables").tag(config=True)
    runtime_bytes = Integer(16 * 1024**2, help="size cap of the runtime dir (as root)").tag(config=True)

    _runtime: Path | None = None  # connection file and sockets (the kernel can write here)
    _own_scratch: Path | None = None  # a temp cwd we created, removed on cleanup
    _info_fds: tuple[int, int] | None = None
    _pidfd: int | None = None
    _watchdog: threading.Timer | None = None
    _cap: _TreeCap | None = None  # the kernel tree's memory group or seccomp filter
    _memory_watch: tuple[threading.Event, threading.Thread] | None = None  # the OOM watcher, its stop

    async def _async_pre_start_kernel(self, **kw):
        sandboxed = _use_bwrap()
        scratch = kw.get("cwd") or self.scratch_dir
        if not scratch:
            scratch = self._own_scratch = tempdirs.mkdtemp("sandbox-kernel-cwd-")
            tempdirs.mount_cap(scratch, self.limits.disk_bytes)
        scratch = Path(scratch).resolve()
        kw["cwd"] = str(scratch)
        if self._runtime is None:  # kept across restarts, like the connection file
            self._runtime = tempdirs.mkdtemp("sandbox-kernel-")
            tempdirs.mount_cap(self._runtime, self.runtime_bytes)  # sockets, key
            self.transport = "ipc"
            self.ip = str(self._runtime / "s")  # sockets are <ip>-<port>; unix socket paths are short
            self.connection_file = str(self._runtime / "kernel.json")
        self.kernel_spec.interrupt_mode = "message"

        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)

        # HOME in the private /tmp keeps .ipython/.cache/.config out of the student's
        # directory; the inline backend puts figures into the notebook's outputs.
        env = {"HOME": "/tmp", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
               **self.extra_env}
        if sandboxed:
            self._uid = new_sandbox_id()
            _prepare_dir(scratch, self._uid)
            if _drops_privileges():  # the kernel's own uid binds sockets and reads the key
                # No symlink followed: on a restart the old kernel had write access here.
                os.chown(self._runtime, self._uid, self._uid, follow_symlinks=False)
                os.chown(self.connection_file, self._uid, self._uid, follow_symlinks=False)
            self._info_fds = os.pipe()
            self._release_cap()  # a restart's old tree is gone: its group goes too
            # The runtime dir is a tmpfs the kernel writes: its budget covers it too.
            self._cap = _TreeCap.new(self.limits, extra_bytes=self.runtime_bytes)
            kernel_cmd = _bwrap_argv(kernel_cmd, scratch, ro_paths=self.ro_paths,
                                     rw_paths=[self._runtime], env=env, limits=self.limits,
                                     info_fd=self._info_fds[1], uid=self._uid,
                                     seccomp_fd=self._cap.seccomp_fd)
            kw.update(env=dict(_BWRAP_ENV), pass_fds=(self._info_fds[1], *self._cap.pass_fds()))
        else:
            kw["env"] = _base_env(scratch, {**env, "HOME": str(self._runtime)})
        # Kernel messages travel over zmq; raw fd 1/2 output only goes to a log
        # (which RLIMIT_FSIZE caps), never to the grader's terminal. The log is an
        # unnamed file outside every folder the sandbox can write: the kernel can
        # neither swap it for a FIFO or a symlink nor make us read anything but it.
        self._close_log()
        self._log_file = tempfile.TemporaryFile(dir=tempdirs.run_dir())  # noqa: SIM115
        preexec = self._cap.preexec(self.limits) if sandboxed else functools.partial(_set_rlimits, self.limits)
        kw.update(stdout=subprocess.DEVNULL, stderr=self._log_file, preexec_fn=preexec)
        return kernel_cmd, kw

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            if self._info_fds is not None:
                info_r, info_w = self._info_fds
                self._info_fds = None
                os.close(info_w)
                if self._cap is not None:
                    self._cap.close_fd()
                self._pidfd = _pidfd_from_info(info_r, timeout=30)
        self._watchdog = threading.Timer(self.limits.wall_seconds, self._wall_time_exceeded)
        self._watchdog.daemon = True
        self._watchdog.start()
        if self._cap is not None and self._cap.group is not None:
            stop = threading.Event()
            watcher = threading.Thread(target=self._watch_memory, args=(self._cap, stop), daemon=True)
            self._memory_watch = (stop, watcher)
            watcher.start()

    def _watch_memory(self, cap: _TreeCap, stop: threading.Event) -> None:
        """Kill the whole kernel tree once its group had an OOM kill (cgroup v1 kills only one process)."""
        while not stop.wait(0.25):
            if cap.oom_killed():
                self.log.warning("kernel sandbox %s: killing the kernel", cap.reason())
                self._kill_sandbox()
                cap.kill()
                return

    def _wall_time_exceeded(self) -> None:
        self.log.warning("kernel wall time %s s exceeded: killing it", self.limits.wall_seconds)
        self._wall_time_hit = True
        self._kill_sandbox()

    _wall_time_hit = False

    def killed_reason(self) -> str | None:
        """Why we killed the kernel (its tree's memory, its wall time), or None if we did not."""
        if self._cap is not None and self._cap.oom_killed():
            return self._cap.reason()
        if self._wall_time_hit:
            return f"wall time {self.limits.wall_seconds:.0f} s exceeded"
        return None

    def _kill_sandbox(self) -> None:
        """SIGKILL the sandbox's PID 1 (so its namespace) and bwrap; the pidfd stays open for _kill_tree."""
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        self._kill_launcher()

    def _kill_launcher(self) -> None:
        """SIGKILL bwrap's (with ``off``: the kernel's) process group, if not yet reaped."""
        proc = getattr(self.provisioner, "process", None)
        if proc is not None and proc.poll() is None:  # unreaped, so the pgid is still ours
            _kill_group(proc.pid)

    def _kill_tree(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog.join()  # it must not race us for the pidfd
            self._watchdog = None
        if self._memory_watch is not None:
            stop, watcher = self._memory_watch
            stop.set()
            watcher.join()  # like the watchdog: it must not race us for the pidfd
            self._memory_watch = None
        _kill_namespace(self._pidfd)
        self._pidfd = None
        self._kill_launcher()
        if self._cap is not None:
            self._cap.kill()

    def _release_cap(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    async def _async_kill_kernel(self, restart: bool = False) -> None:
        self._kill_tree()
        await super()._async_kill_kernel(restart=restart)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        self._kill_tree()  # also after a polite shutdown: the kernel may have left children
        await super()._async_cleanup_resources(restart=restart)
        self._release_cap()
        if not restart and self._runtime is not None:
            tail = self._log_tail()
            self._close_log()
            # "bwrap:" lines mean the sandbox itself could not be set up (e.g. a missing
            # ro_path): the only clue to a bare "Kernel died before replying".
            level = logging.WARNING if "bwrap:" in tail else logging.DEBUG
            if tail.strip():
                self.log.log(level, "sandboxed kernel stderr (tail):\n%s", tail)
            tempdirs.remove(self._runtime)
            self._runtime = None
            if self._own_scratch is not None:
                tempdirs.remove(self._own_scratch)
                self._own_scratch = None

    _log_file = None  # the kernel's stderr: an unnamed file only this process can reach

    def _log_tail(self, size: int = 2000) -> str:
        """The last ``size`` bytes of the kernel's stderr, read from our own descriptor."""
        if self._log_file is None:
            return ""
        with contextlib.suppress(OSError):
            fd = self._log_file.fileno()
            end = os.fstat(fd).st_size
            return os.pread(fd, size, max(end - size, 0)).decode(errors="replace")
        return ""

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # AsyncKernelManager binds its public names to the base class's functions, so
    # callers such as nbclient (cleanup_resources after a dead kernel) would skip
    # the overrides above without these.
    pre_start_kernel = _async_pre_start_kernel
    _launch_kernel = _async_launch_kernel
    _kill_kernel = _async_kill_kernel
    cleanup_resources = _async_cleanup_resources
