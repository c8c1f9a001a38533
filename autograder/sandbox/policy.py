"""Whether student code may run here: the sandbox mode, the probe, the refusal (fail closed).

``AUTOGRADER_SANDBOX`` unset, ``auto`` or ``required`` all demand a working bwrap,
and :func:`check` (called by every entry point before any student code runs)
raises :class:`SandboxUnavailable` with the probe's own failure and the fixes.
``off`` is the only way to run student code unsandboxed (rlimits only), and
:func:`check` announces it on stderr every time.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from . import memcap, tempdirs
from .bwrap import BWRAP_ENV, bwrap_argv
from .limits import Limits, drops_privileges, memory_budget, prepare_dir

MODES = ("auto", "required", "off")
OFF_WARNING = (
    "WARNING: AUTOGRADER_SANDBOX=off: student code runs WITHOUT the bubblewrap sandbox "
    "(no filesystem or network isolation, only resource limits); it can read and write "
    "this machine's files."
)


class SandboxUnavailable(RuntimeError):
    """Student code may not run: bubblewrap does not work here and AUTOGRADER_SANDBOX is not ``off``."""


def memory_announcement(limits: Limits = Limits()) -> str:
    """One line saying which whole-tree memory bound applies here (the default limits' budget)."""
    return memcap.detect().describe(memory_budget(limits))


@functools.cache
def _probe() -> str | None:
    """Run the interpreter through the real sandbox once; return why it failed, or None."""
    if shutil.which("bwrap") is None:
        return "bwrap not found on PATH"
    if drops_privileges() and shutil.which("setpriv") is None:
        return "setpriv (util-linux) not found; needed to drop root inside the sandbox"
    with tempfile.TemporaryDirectory(prefix="sandbox-probe-", dir=tempdirs.run_dir()) as tmp:
        prepare_dir(Path(tmp))
        argv = bwrap_argv([sys.executable, "-c", "import numpy"], Path(tmp))
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=30, env=BWRAP_ENV)
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
        raise SandboxUnavailable(
            f"AUTOGRADER_SANDBOX={value!r} is not one of {', '.join(MODES)}: "
            "refusing to grade (unset it to use the bubblewrap sandbox)"
        )
    return "off" if value == "off" else "required"


def refusal(problem: str) -> str:
    """The one message every entry point prints when it will not run student code."""
    return (
        f"refusing to grade: the bubblewrap sandbox does not work here ({problem.strip()}). "
        "No student code was run. Fix one of: install bubblewrap (apt-get install bubblewrap); "
        f"fix the path so that `bwrap`{' and `setpriv`' if drops_privileges() else ''} are found "
        f"and can run {sys.executable}; or set AUTOGRADER_SANDBOX=off to grade WITHOUT isolation, "
        "knowingly accepting that student code can read and write this machine's files."
    )


def use_bwrap() -> bool:
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
    if use_bwrap():
        try:  # an unknown AUTOGRADER_MEMORY_CAP is refused here, before any student code
            memcap.detect()
        except memcap.MemcapError as err:
            raise SandboxUnavailable(f"refusing to grade: {err}. No student code was run.") from err
        return True
    (announce or (lambda text: print(text, file=sys.stderr, flush=True)))(OFF_WARNING)
    return False


def sandbox_argv(
    command: list[str],
    scratch: Path,
    *,
    ro_paths: Sequence[Path] = (),
    env: dict | None = None,
    rw_paths: Sequence[Path] = (),
    limits: Limits = Limits(),
) -> list[str]:
    """The bwrap command line that runs ``command`` in ``scratch``; with AUTOGRADER_SANDBOX=off, ``command``.

    ``ro_paths`` are bound read-only and ``rw_paths`` read-write, each at its own
    path. ``limits`` only sizes /tmp here. The argv alone is not the whole
    sandbox: :func:`run` also chowns ``scratch`` to SANDBOX_UID and sets the rlimits.
    """
    if not use_bwrap():
        return list(command)
    return bwrap_argv(command, scratch, ro_paths=ro_paths, rw_paths=rw_paths, env=env, limits=limits)
