"""The bubblewrap (bwrap) command line: what a sandbox sees.

The sandbox sees only what a Python process needs (read-only /usr, a few /etc
files, the Python installation and the venv, plus ``ro_paths``), can write only
to its scratch directory, ``rw_paths`` and a small private /tmp, has no network
(its own network namespace, so not even the host's 127.0.0.1) and lives in its
own PID namespace, so killing its PID 1 kills every process the student started.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .limits import SANDBOX_ID_BASE, Limits, drops_privileges

# Read-only system files: the dynamic loader cache, time zone, user names (getpass
# fails without a passwd entry), /etc/alternatives (targets of many /usr/bin
# symlinks) and fontconfig (matplotlib runs fc-list). Nothing secret.
_ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "passwd",
    "group",
    "nsswitch.conf",
    "alternatives",
    "fonts",
)


# ------------------------------------------------------------------- command line

# bwrap itself gets no secrets from our environment either.
BWRAP_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def base_env(scratch: Path, env: dict | None) -> dict[str, str]:
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


def bwrap_argv(
    command: Sequence[str],
    scratch: Path,
    *,
    ro_paths: Sequence[Path] = (),
    rw_paths: Sequence[Path] = (),
    env: dict | None = None,
    limits: Limits = Limits(),
    info_fd: int | None = None,
    uid: int | None = None,
    seccomp_fd: int | None = None,
) -> list[str]:
    scratch = Path(scratch).resolve()
    uid = SANDBOX_ID_BASE if uid is None else uid
    argv = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
    ]
    if info_fd is not None:  # bwrap reports the host pid of the sandbox's PID 1 there
        argv += ["--info-fd", str(info_fd)]
    if seccomp_fd is not None:  # memcap's one-process filter, applied to the student command
        argv += ["--seccomp", str(seccomp_fd)]
    if drops_privileges():
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
    for option, paths in (("--ro-bind", (sys.base_prefix, sys.prefix, *ro_paths)), ("--bind", (*rw_paths, scratch))):
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
    for key, value in base_env(scratch, env).items():
        argv += ["--setenv", key, value]
    argv.append("--")
    if drops_privileges():
        argv += [
            shutil.which("setpriv") or "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--no-new-privs",
            "--",
        ]
    return argv + list(command)
