"""Run one command in the sandbox, with its caps, and kill its whole tree afterwards.

Wall time is enforced here, by the parent; stdout and stderr are kept up to a
cap and drained past it, so the child never blocks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .bwrap import BWRAP_ENV, base_env, bwrap_argv
from .limits import Limits, new_sandbox_id, prepare_dir
from .policy import use_bwrap
from .tree import TreeCap, has_exited, kill_group, kill_namespace, pidfd_from_info, set_rlimits


@dataclass
class Result:
    returncode: int | None  # negative = killed by that signal; None = we killed it for wall time
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None  # "wall time 5.0 s exceeded", "cpu time", "memory", ...
    truncated: bool  # some stdout/stderr was discarded
    sandboxed: bool  # False only with AUTOGRADER_SANDBOX=off (rlimits only)


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


def _reason(
    returncode: int | None,
    stderr: str,
    timed_out: bool,
    limits: Limits,
    disk_full: str | None = None,
    tree_oom: str | None = None,
) -> str | None:
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
    """ " (capped at N MiB)" when ``scratch`` is a size-capped mount with no room left, else None."""
    try:
        if not os.path.ismount(scratch):
            return None
        st = os.statvfs(scratch)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize < 64 * 1024:
        return f" (capped at {st.f_blocks * st.f_frsize / 1024**2:g} MiB)"
    return None


def run(
    command: list[str],
    scratch: Path,
    limits: Limits = Limits(),
    *,
    ro_paths: Sequence[Path] = (),
    env: dict | None = None,
    stdin: bytes | None = None,
) -> Result:
    """Run ``command`` sandboxed in ``scratch`` (created, and chowned to a fresh sandbox uid if we are root).

    Nothing it started survives the call: in the sandbox we kill its PID
    namespace; unsandboxed (``off``) its process group (a child that called setsid()
    escapes there - one more reason ``off`` is not safe).
    """
    scratch = Path(scratch).resolve()
    sandboxed = use_bwrap()
    if not sandboxed:
        return _run(command, scratch, limits, None, env=env, stdin=stdin)
    cap = TreeCap.new(limits)
    try:
        return _run(command, scratch, limits, cap, ro_paths=ro_paths, env=env, stdin=stdin)
    finally:
        cap.release()


def _run(
    command: list[str],
    scratch: Path,
    limits: Limits,
    cap: TreeCap | None,
    *,
    ro_paths: Sequence[Path] = (),
    env: dict | None = None,
    stdin: bytes | None = None,
) -> Result:
    """:func:`run` once the tree's memory cap exists (``cap`` None: unsandboxed, rlimits only)."""
    sandboxed = cap is not None
    info_r = info_w = None
    if sandboxed:
        uid = new_sandbox_id()
        prepare_dir(scratch, uid)
        info_r, info_w = os.pipe()
        argv = bwrap_argv(
            command,
            scratch,
            ro_paths=ro_paths,
            env=env,
            limits=limits,
            info_fd=info_w,
            uid=uid,
            seccomp_fd=cap.seccomp_fd,
        )
        popen_env = BWRAP_ENV
    else:
        scratch.mkdir(parents=True, exist_ok=True)
        argv, popen_env = list(command), base_env(scratch, env)

    try:
        proc = subprocess.Popen(
            argv,
            cwd=scratch,
            env=popen_env,
            start_new_session=True,
            close_fds=True,
            pass_fds=() if info_w is None else (info_w, *cap.pass_fds()),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=cap.preexec(limits) if sandboxed else functools.partial(set_rlimits, limits),
        )
    finally:
        if info_w is not None:
            os.close(info_w)
            cap.close_fd()
    pidfd = None if info_r is None else pidfd_from_info(info_r, limits.wall_seconds)
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
            if has_exited(proc.pid):
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

    kill_namespace(pidfd)
    # Kill before reaping: while the leader is unreaped its pgid cannot be reused.
    kill_group(proc.pid)
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
        returncode=returncode,
        stdout=out.text(),
        stderr=stderr,
        timed_out=timed_out,
        killed_reason=_reason(returncode, stderr, timed_out, limits, _full(scratch), tree_oom),
        truncated=bool(out.dropped or err.dropped),
        sandboxed=sandboxed,
    )
