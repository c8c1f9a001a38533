"""Run untrusted student code in a bubblewrap (bwrap) sandbox.

One job per module (ARCHITECTURE.md, "The sandbox"):

- :mod:`.limits`       what a sandbox may use (:class:`Limits`) and whom it runs as (its uid)
- :mod:`.policy`       fail closed: the mode, the bwrap probe, :func:`check` and the refusal text
- :mod:`.bwrap`        the bwrap command line (what the sandbox sees)
- :mod:`.tree`         the process tree: rlimits, the whole-tree memory cap, killing all of it
- :mod:`.runner`       :func:`run`: one sandboxed command with its caps and wall time
- :mod:`.provisioner`  the sandboxed Jupyter kernel (a jupyter_client kernel provisioner)
- :mod:`.memcap`       the per-sandbox memory group (cgroup v2/v1) or one-process seccomp filter
- :mod:`.tempdirs`     the grader's temporary folders: one per process, size-capped, swept

Callers use the names re-exported here.
"""

from .limits import IDS_PER_PROCESS, PID_LIMIT, SANDBOX_ID_BASE, Limits, memory_budget, new_sandbox_id
from .policy import (
    MODES,
    OFF_WARNING,
    SandboxUnavailable,
    bwrap_available,
    check,
    memory_announcement,
    mode,
    refusal,
    sandbox_argv,
    unavailable_reason,
)
from .provisioner import SandboxedKernelManager, SandboxProvisioner
from .runner import Result, run

__all__ = [
    "IDS_PER_PROCESS",
    "MODES",
    "OFF_WARNING",
    "PID_LIMIT",
    "SANDBOX_ID_BASE",
    "Limits",
    "Result",
    "SandboxProvisioner",
    "SandboxUnavailable",
    "SandboxedKernelManager",
    "bwrap_available",
    "check",
    "memory_announcement",
    "memory_budget",
    "mode",
    "new_sandbox_id",
    "refusal",
    "run",
    "sandbox_argv",
    "unavailable_reason",
]
