"""Run untrusted student code in a bubblewrap (bwrap) sandbox.

The sandbox sees only what a Python process needs (read-only /usr, a few /etc
files, the Python installation and the venv, plus ``ro_paths``), can write only
to its scratch directory and a small private /tmp, has no network (its own
network namespace, so not even the host's 127.0.0.1) and lives in its own PID
namespace, so killing bwrap kills every process the student started.

Resource limits are plain rlimits set before bwrap is exec'd; wall time is
enforced by the parent. When we run as root, bwrap itself stays root (it needs
to read /root/.pyenv, which is 0700) and the student command is started through
``setpriv`` as uid/gid 65534 ("nobody"), so RLIMIT_NPROC applies and the
student owns nothing outside the scratch directory.

``AUTOGRADER_SANDBOX`` selects the mode: unset/``auto`` (bwrap if it works,
else a loud warning and rlimits only), ``off`` (always fall back, for tests)
or ``required`` (raise :class:`SandboxUnavailable` if bwrap does not work).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

#: uid/gid the student code runs as when we are root ("nobody"/"nogroup").
#: Every sandbox shares it, so ``Limits.processes`` caps all concurrent sandboxes together.
SANDBOX_UID = 65534
SANDBOX_GID = 65534

FALLBACK_WARNING = (
    "bubblewrap not available: student code runs WITHOUT filesystem/network isolation, "
    "only resource limits"
)

# Read-only system files: the dynamic loader cache, time zone, user names (getpass
# and friends fail without a passwd entry) and /etc/alternatives (targets of many
# /usr/bin symlinks). Nothing secret: no shadow, no ssh, no hosts.
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
              "passwd", "group", "nsswitch.conf", "alternatives")


class SandboxUnavailable(RuntimeError):
    """AUTOGRADER_SANDBOX=required but bubblewrap does not work here."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 2 * 1024**3  # RLIMIT_AS (address space, so numpy allocations count)
    cpu_seconds: int = 60  # RLIMIT_CPU: SIGXCPU, then SIGKILL one second later
    wall_seconds: float = 60.0  # enforced by the parent: the whole tree is killed
    processes: int = 64  # RLIMIT_NPROC, counts threads too; only bites for a non-root uid
    file_bytes: int = 64 * 1024**2  # RLIMIT_FSIZE per file; also the size of /tmp and /dev/shm
    output_bytes: int = 1024**2  # stdout and stderr are each kept up to this; the rest is dropped


@dataclass
class Result:
    returncode: int | None  # negative = killed by that signal; None = we killed it for wall time
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None  # "wall time 5.0 s exceeded", "cpu time", "memory", ...
    truncated: bool  # some stdout/stderr was discarded
    sandboxed: bool  # False in fallback mode (rlimits only)


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
    with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as tmp:
        _prepare_dir(Path(tmp))
        argv = _bwrap_argv([sys.executable, "-c", "pass"], Path(tmp))
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


_fallback_warned = False


def _use_bwrap() -> bool:
    """Decide the mode for one run (reads AUTOGRADER_SANDBOX each time, probes once)."""
    mode = os.environ.get("AUTOGRADER_SANDBOX", "auto").strip().lower()
    if mode != "off":
        problem = _probe()
        if problem is None:
            return True
        if mode == "required":
            raise SandboxUnavailable(f"AUTOGRADER_SANDBOX=required but {problem}")
        log.debug("sandbox probe: %s", problem)
    global _fallback_warned
    if not _fallback_warned:
        _fallback_warned = True
        warnings.warn(FALLBACK_WARNING, RuntimeWarning, stacklevel=3)
        log.warning(FALLBACK_WARNING)
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
        "MPLBACKEND": "Agg",
    }
    base.update({str(k): str(v) for k, v in (env or {}).items()})
    return base


def _bwrap_argv(command: Sequence[str], scratch: Path, *, ro_paths: Sequence[Path] = (),
                rw_paths: Sequence[Path] = (), env: dict | None = None,
                limits: Limits = Limits()) -> list[str]:
    scratch = Path(scratch).resolve()
    argv = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if _drops_privileges():
        # bwrap runs as real root (it must read /root/.pyenv). Keep only the two
        # capabilities setpriv needs to become nobody; setuid() then clears them.
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user", "--disable-userns"]

    # Directories bwrap would create for mount points come out 0700 root, which
    # nobody cannot traverse (e.g. /root for /root/.pyenv/...): make them 0755 first.
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

    binds = {Path(p).resolve(): "--ro-bind"
             for p in (sys.base_prefix, sys.prefix, *ro_paths)}
    binds.update({Path(p).resolve(): "--bind" for p in (*rw_paths, scratch)})
    done: list[Path] = [Path("/usr")]
    for path in sorted(binds, key=lambda p: len(p.parts)):  # outer mounts first
        if binds[path] == "--ro-bind" and any(path == b or b in path.parents for b in done):
            continue  # already visible read-only through an outer mount
        argv += [*parents(path, done), binds[path], str(path), str(path)]
        done.append(path)

    argv += ["--chdir", str(scratch), "--clearenv"]
    for key, value in _base_env(scratch, env).items():
        argv += ["--setenv", key, value]
    argv.append("--")
    if _drops_privileges():
        argv += [shutil.which("setpriv") or "setpriv", f"--reuid={SANDBOX_UID}",
                 f"--regid={SANDBOX_GID}", "--clear-groups", "--inh-caps=-all",
                 "--no-new-privs", "--"]
    return argv + list(command)


def sandbox_argv(command: list[str], scratch: Path, *, ro_paths: Sequence[Path] = (),
                 env: dict | None = None, rw_paths: Sequence[Path] = (),
                 limits: Limits = Limits()) -> list[str]:
    """The bwrap command line that runs ``command`` in ``scratch``; in fallback, ``command``.

    ``ro_paths`` are bound read-only and ``rw_paths`` read-write, each at its own
    path. ``limits`` only sizes /tmp here; rlimits come from :func:`run`'s preexec.
    """
    if not _use_bwrap():
        return list(command)
    return _bwrap_argv(command, scratch, ro_paths=ro_paths, rw_paths=rw_paths, env=env,
                       limits=limits)


# ------------------------------------------------------------------------ running

def _prepare_dir(path: Path) -> None:
    """Make a directory the sandbox user may write (only the directory itself)."""
    path.mkdir(parents=True, exist_ok=True)
    if _drops_privileges():
        os.chown(path, SANDBOX_UID, SANDBOX_GID)
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


def _has_exited(pid: int) -> bool:
    """Like Popen.poll() but without reaping, so the pid (= our pgid) stays reserved."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _kill_group(pgid: int) -> None:
    """SIGKILL a process group. In the sandbox, bwrap dying tears down its PID namespace."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


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


def _reason(returncode: int | None, stderr: str, timed_out: bool, limits: Limits) -> str | None:
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
    return None


def run(command: list[str], scratch: Path, limits: Limits = Limits(), *,
        ro_paths: Sequence[Path] = (), env: dict | None = None,
        stdin: bytes | None = None) -> Result:
    """Run ``command`` sandboxed in ``scratch`` (created, and chowned to nobody if we are root).

    Nothing it started survives the call: in the sandbox its PID namespace dies
    with bwrap; in fallback we kill its process group (a child that called
    setsid() escapes there - another reason fallback is not safe).
    """
    scratch = Path(scratch).resolve()
    sandboxed = _use_bwrap()
    if sandboxed:
        _prepare_dir(scratch)
        argv = _bwrap_argv(command, scratch, ro_paths=ro_paths, env=env, limits=limits)
        popen_env = _BWRAP_ENV
    else:
        scratch.mkdir(parents=True, exist_ok=True)
        argv, popen_env = list(command), _base_env(scratch, env)

    proc = subprocess.Popen(
        argv, cwd=scratch, env=popen_env, start_new_session=True, close_fds=True,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=functools.partial(_set_rlimits, limits),
    )
    if stdin is not None:
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()

    out, err = _Capped(limits.output_bytes), _Capped(limits.output_bytes)
    deadline = time.monotonic() + limits.wall_seconds
    grace_end = None
    timed_out = False
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while sel.get_map():
            now = time.monotonic()
            if _has_exited(proc.pid):
                # Main process gone; only stragglers (fallback) can still hold the pipes.
                grace_end = grace_end or now + 0.2
                if now >= grace_end:
                    break
            elif now >= deadline:
                timed_out = True
                break
            for key, _ in sel.select(timeout=min(0.1, max(deadline - now, 0))):
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data.add(chunk)  # drained even past the cap, so the child never blocks
                else:
                    sel.unregister(key.fileobj)

    # Kill before reaping: while the leader is unreaped its pgid cannot be reused.
    _kill_group(proc.pid)
    returncode = proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    if sandboxed and returncode > 128:
        returncode = 128 - returncode  # bwrap reports "killed by N" as 128+N, like a shell
    if timed_out:
        returncode = None
    stderr = err.text()
    return Result(
        returncode=returncode, stdout=out.text(), stderr=stderr, timed_out=timed_out,
        killed_reason=_reason(returncode, stderr, timed_out, limits),
        truncated=bool(out.dropped or err.dropped), sandboxed=sandboxed,
    )


# ------------------------------------------------------------------------- kernel

from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from traitlets import Instance, List, Unicode  # noqa: E402


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs inside the sandbox, for nbclient and nbgrader.

    The kernel has its own network namespace, so it talks to us over unix
    sockets (transport "ipc") in a private runtime directory bound into the
    sandbox. The ``cwd`` given to ``start_kernel`` (nbclient passes the
    notebook's directory) becomes the writable scratch dir. Interrupts go as
    messages because signals to bwrap's process group would kill it, not
    interrupt the kernel. The whole kernel tree is killed after
    ``limits.wall_seconds`` (a lifetime limit for the notebook) and on shutdown.
    """

    limits = Instance(Limits, kw={}, help="rlimits and kernel lifetime").tag(config=True)
    scratch_dir = Unicode("", help="writable dir when start_kernel gets no cwd").tag(config=True)
    ro_paths = List(Unicode(), help="extra paths visible read-only").tag(config=True)

    _runtime: Path | None = None
    _own_scratch: Path | None = None
    _watchdog: threading.Timer | None = None

    async def _async_pre_start_kernel(self, **kw):
        self._sandboxed = _use_bwrap()
        scratch = kw.get("cwd") or self.scratch_dir
        if not scratch:
            scratch = self._own_scratch = Path(tempfile.mkdtemp(prefix="sandbox-kernel-cwd-"))
        scratch = Path(scratch).resolve()
        kw["cwd"] = str(scratch)
        if self._runtime is None:  # reused on restart
            self._runtime = Path(tempfile.mkdtemp(prefix="sandbox-kernel-"))
            self.transport = "ipc"
            self.ip = str(self._runtime / "ipc")  # sockets are <ip>-<port>
            self.connection_file = str(self._runtime / "kernel.json")
        self.kernel_spec.interrupt_mode = "message"

        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)

        env = {"IPYTHONDIR": "/tmp/.ipython",  # keep profile dirs out of the student's dir
               "MPLBACKEND": "module://matplotlib_inline.backend_inline"}  # figures in outputs
        if self._sandboxed:
            for path in (self._runtime, Path(self.connection_file), scratch):
                if _drops_privileges():  # the kernel (nobody) binds sockets and reads the key
                    os.chown(path, SANDBOX_UID, SANDBOX_GID)
            kernel_cmd = _bwrap_argv(kernel_cmd, scratch, ro_paths=self.ro_paths,
                                     rw_paths=[self._runtime], env=env, limits=self.limits)
            kw["env"] = dict(_BWRAP_ENV)
        else:
            kw["env"] = _base_env(scratch, {**env, "IPYTHONDIR": str(self._runtime / "ipython")})
        # The kernel talks over zmq; its raw stdout/stderr only go to a capped log.
        self._log_file = open(self._runtime / "kernel.log", "ab")  # noqa: SIM115
        kw.update(stdout=subprocess.DEVNULL, stderr=self._log_file,
                  preexec_fn=functools.partial(_set_rlimits, self.limits))
        return kernel_cmd, kw

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        await super()._async_launch_kernel(kernel_cmd, **kw)
        self._log_file.close()  # the child has its own copy
        self._watchdog = threading.Timer(self.limits.wall_seconds, self._wall_time_exceeded)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _wall_time_exceeded(self) -> None:
        self.log.warning("kernel wall time %s s exceeded: killing it", self.limits.wall_seconds)
        self._kill_tree()

    def _kill_tree(self) -> None:
        proc = getattr(self.provisioner, "process", None)
        if proc is not None and proc.poll() is None:  # unreaped, so its pgid is still ours
            _kill_group(proc.pid)

    async def _async_kill_kernel(self, restart: bool = False) -> None:
        self._kill_tree()
        await super()._async_kill_kernel(restart=restart)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._kill_tree()
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self._runtime is not None:
            with contextlib.suppress(OSError):
                tail = (self._runtime / "kernel.log").read_bytes()[-2000:]
                if tail.strip():
                    self.log.debug("kernel stderr (tail):\n%s", tail.decode(errors="replace"))
            shutil.rmtree(self._runtime, ignore_errors=True)
            self._runtime = None
            if self._own_scratch is not None:
                shutil.rmtree(self._own_scratch, ignore_errors=True)
                self._own_scratch = None
