"""Hidden checks for one submission: probe each component in its own sandbox, judge in this process.

The probe sees the student's code and the scenarios; this trusted process alone
holds the reference data, so nothing the student's code does in its sandbox can
reach the expected values or the scores.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from .. import sandbox
from ..arrival.notebook import graded_code, public_package
from ..probe import DONE, PROBLEMS, RUNNING, TIMED_OUT, WATCHDOG
from ..sandbox import tempdirs
from . import content as contents
from . import interruptions, reference
from .checks import failed_component, judge_component, probe_spec
from .output import InvalidOutput, read_regular_file, read_results

PROBE = Path(__file__).resolve().parent.parent / "probe"
# ``wall_seconds`` is a component's time budget: all its sandboxes together (one, unless one is killed).
PROBE_LIMITS = sandbox.Limits(
    memory_bytes=2 * 1024**3,
    cpu_seconds=30,
    wall_seconds=60.0,
    processes=32,
    file_bytes=32 * 1024**2,
    output_bytes=64 * 1024,
    disk_bytes=64 * 1024**2,
)
CHECK_SECONDS = 5.0  # one cell or one check (the reference takes milliseconds) before the probe's watchdog kills it
MIN_ATTEMPT_SECONDS = 1.0  # a fresh sandbox is not started with less of the budget left
# The probe's own files in its scratch folder: a submitted file of one of these names is never put there.
PROBE_FILES = frozenset({"cells.json", "spec.json", "out.json", RUNNING, WATCHDOG})


def runtime_dir(module=None) -> Path:
    return _runtime_dir(module or contents.only())


@cache
def _runtime_dir(module) -> Path:
    """Read-only files sandboxed code may import: the probe package, the content's probe extensions
    (each alone: its package is an empty stub there), and tinytorch without the solution.

    One per process and module, readable by the sandbox's unprivileged user.
    """
    runtime = tempdirs.mkdtemp("autograder-runtime-")  # removed with this process's run folder
    public_package(str(runtime))
    (runtime / "autograder").mkdir()
    (runtime / "autograder" / "__init__.py").write_text("")
    shutil.copytree(PROBE, runtime / "autograder" / "probe", ignore=shutil.ignore_patterns("__pycache__"))
    for name, path in module.PROBE_EXTENSIONS:
        *packages, leaf = name.split(".")
        folder = runtime.joinpath(*packages)
        for depth in range(len(packages)):
            runtime.joinpath(*packages[: depth + 1]).mkdir(exist_ok=True)
            runtime.joinpath(*packages[: depth + 1], "__init__.py").touch()
        shutil.copyfile(path, folder / f"{leaf}.py")
    for path in [runtime, *runtime.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return runtime


@dataclass
class Probed:
    """What one component's probe runs gave: observations, and why each lost check (or the whole probe) failed."""

    flat: dict = field(default_factory=dict)
    lost: dict = field(default_factory=dict)  # check id -> message, for checks a kill or the budget ended
    failure: str | None = None  # the component gets 0 with this reason (no usable results)


def probe_component(
    cells: list,
    component: str,
    limits: sandbox.Limits = PROBE_LIMITS,
    check_seconds: float = CHECK_SECONDS,
    files: dict | None = None,
    module=None,
) -> Probed:
    """Run the component's checks: one sandbox, and a fresh one for the rest after each kill.

    Each attempt ends at least one check (the one running when it was killed) or deals with one
    cell that hung (an added cell runs only its definitions next time; any cell that hangs
    even so is skipped), else the rest fail with the attempt's reason; every attempt's wall time is
    what is left of ``limits.wall_seconds``, so the whole component takes at most that (plus
    one sandbox teardown).
    """
    module = module or contents.only()
    spec_of = probe_spec(component, module)
    checks = spec_of["checks"]
    pending, skip_cells, defs_only, probed = [c["id"] for c in checks], [], [], Probed()
    deadline = time.monotonic() + limits.wall_seconds
    while pending:
        left = deadline - time.monotonic()
        if left < MIN_ATTEMPT_SECONDS:
            probed.lost.update({c: interruptions.budget_message(component, limits.wall_seconds) for c in pending})
            break
        spec = {
            "checks": [c for c in checks if c["id"] in pending],
            "check_seconds": check_seconds,
            "skip_cells": skip_cells,
            "defs_only_cells": defs_only,
            "extensions": spec_of["extensions"],
        }
        run = _attempt(cells, component, spec, replace(limits, wall_seconds=left), files or {}, module)
        if run.invalid or (not run.flat and run.running is None and not probed.flat):
            probed.failure = run.invalid or run.how  # nothing usable at all: the component's old failure
            break
        done = {key.split("|", 1)[0] for key in run.flat} & set(pending)
        probed.flat.update({k: v for k, v in run.flat.items() if k.split("|", 1)[0] in done or k == PROBLEMS})
        pending = [c for c in pending if c not in done]
        running = run.running
        hung = running.cell if isinstance(running, interruptions.Running) else None
        if hung is not None and list(cells[hung][2:]) == ["added"] and hung not in defs_only:
            defs_only.append(hung)  # a demo in an added cell: next time only its definitions
        elif hung is not None and hung not in skip_cells:
            skip_cells.append(hung)  # a hanging cell: the next sandbox defines the others
        elif isinstance(running, interruptions.Running) and running.check in pending:
            scenario = next(c for c in checks if c["id"] == running.check)["scenarios"][running.scenario - 1]
            probed.lost[running.check] = interruptions.lost_check_message(running, run.how, scenario)
            pending.remove(running.check)
        elif running == DONE or not done:  # finished, or no progress: what is left cannot run
            probed.lost.update({c: f"not graded: {run.how}" for c in pending} if running != DONE else {})
            break
    return probed


@dataclass
class Attempt:
    """One sandboxed probe run: its observations, the marker it left, how it ended."""

    flat: dict
    running: object = None  # interruptions.parse_marker's answer
    how: str = ""
    invalid: str | None = None


def _attempt(cells: list, component: str, spec: dict, limits: sandbox.Limits, files: dict, module) -> Attempt:
    runtime = runtime_dir(module)
    with tempdirs.capped_dir(f"probe-{component}-", limits.disk_bytes) as scratch:
        for name, data in files.items():  # what the student submitted beside the notebook, as the kernel had it
            if name not in PROBE_FILES:
                (scratch / name).write_bytes(data)
        (scratch / "cells.json").write_text(json.dumps(cells))
        (scratch / "spec.json").write_text(json.dumps(spec))
        # -P: the scratch folder (the student's files) is not put before the runtime on sys.path.
        result = sandbox.run(
            [sys.executable, "-P", "-m", "autograder.probe", "cells.json", "spec.json", "out.json"],
            scratch,
            limits,
            ro_paths=[runtime],
            env={"PYTHONPATH": str(runtime)},
        )
        marker, timed_out = _small_text(scratch, RUNNING), _small_text(scratch, WATCHDOG) == TIMED_OUT
        try:
            flat = read_results(scratch, "out.json", component, module)
        except FileNotFoundError:
            flat = {}
        except InvalidOutput as err:  # written by the student's process: its loss, never a crash
            return Attempt({}, invalid=f"the {component} checks reported an invalid results file ({err})")
    running = interruptions.parse_marker(marker, component, spec["checks"], len(cells), module.METHODS)
    if running == DONE and result.returncode == 0:
        return Attempt(flat, running)
    if running == DONE:
        running = None  # "done" but the process did not end cleanly
    if isinstance(running, interruptions.Running):
        how = interruptions.how(
            result.returncode, timed_out, result.killed_reason, spec["check_seconds"], limits.wall_seconds, component
        )
    elif result.killed_reason:
        how = f"the {component} checks were stopped: {result.killed_reason}"
    else:
        code = "killed" if result.returncode is None else f"exit code {result.returncode}"
        how = f"the {component} checks ended before reporting ({code}): does your code exit the process?"
    return Attempt(flat, running, how)


def _small_text(scratch: Path, name: str) -> str:
    """A marker file's text, or "" when it is absent or not a small regular UTF-8 file (it is hostile data)."""
    try:
        return read_regular_file(scratch, name, 4096).decode("utf-8")
    except (FileNotFoundError, InvalidOutput, UnicodeDecodeError):
        return ""


def run_hidden_checks(source_nb, student_nb, components=None, **options) -> dict:
    """{component: [CheckResult]} for a submission, every component probed in parallel.

    ``options`` are :func:`check_code`'s: ``limits``, ``check_seconds``, ``files`` ({name: bytes},
    ``submission.submitted_files``, put beside the probe's cells as the kernel had them beside
    the notebook) and ``module``.
    """
    return check_code(graded_code(source_nb, student_nb), components, **options)


def check_code(
    cells: list,
    components=None,
    limits: sandbox.Limits = PROBE_LIMITS,
    check_seconds: float = CHECK_SECONDS,
    files: dict | None = None,
    module=None,
) -> dict:
    """:func:`run_hidden_checks` on the submission's graded code (``arrival.notebook.graded_code``)."""
    module = module or contents.only()
    components = module.COMPONENTS if components is None else components
    with ThreadPoolExecutor(max_workers=len(components)) as pool:
        probes = dict(
            zip(
                components,
                pool.map(lambda c: probe_component(cells, c, limits, check_seconds, files, module), components),
            )
        )
    return {
        component: (
            judge_component(component, probed.flat, reference.load(component, module), probed.lost, module)
            if probed.failure is None
            else failed_component(component, probed.failure, module)
        )
        for component, probed in probes.items()
    }


def sandbox_mode() -> str:
    """How student code ran, for the results: the sandbox, or AUTOGRADER_SANDBOX=off."""
    return "bubblewrap" if sandbox.mode() != "off" else "off: NOT isolated (AUTOGRADER_SANDBOX=off)"
