"""Hidden checks for one submission: probe each component in its own sandbox, judge in this process.

The probe sees the student's code and the scenarios; this trusted process alone
holds the reference data, so nothing the student's code does in its sandbox can
reach the expected values or the scores.
"""
from __future__ import annotations

import json
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from . import reference, sandbox, tempdirs
from .checks import COMPONENTS, failed_component, judge_component, probe_spec
from .probe_output import InvalidOutput, read_results
from .submission import graded_code, public_package

PROBE = Path(__file__).resolve().parent / "probe.py"
PROBE_LIMITS = sandbox.Limits(memory_bytes=2 * 1024**3, cpu_seconds=30, wall_seconds=30.0,
                              processes=32, file_bytes=32 * 1024**2, output_bytes=64 * 1024,
                              disk_bytes=64 * 1024**2)


@lru_cache(maxsize=1)
def runtime_dir() -> Path:
    """Read-only files sandboxed code may import: probe.py and tinytorch without the solution.

    One per process, readable by the sandbox's unprivileged user.
    """
    runtime = tempdirs.mkdtemp("autograder-runtime-")  # removed with this process's run folder
    public_package(str(runtime))
    shutil.copyfile(PROBE, runtime / "probe.py")
    for path in [runtime, *runtime.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return runtime


def probe_component(cells: list, component: str, limits: sandbox.Limits = PROBE_LIMITS) -> tuple:
    """(flat observations, None) or (None, why the probe gave no observations)."""
    runtime = runtime_dir()
    with tempdirs.capped_dir(f"probe-{component}-", limits.disk_bytes) as scratch:
        (scratch / "cells.json").write_text(json.dumps(cells))
        (scratch / "spec.json").write_text(json.dumps(probe_spec(component)))
        result = sandbox.run([sys.executable, str(runtime / "probe.py"), "cells.json", "spec.json", "out.npz"],
                             scratch, limits, ro_paths=[runtime], env={"PYTHONPATH": str(runtime)})
        if result.killed_reason:
            return None, f"the {component} checks were stopped: {result.killed_reason}"
        try:
            return read_results(scratch, "out.npz", component), None
        except FileNotFoundError:
            code = "killed" if result.returncode is None else f"exit code {result.returncode}"
            return None, f"the {component} checks ended before reporting ({code}): does your code exit the process?"
        except InvalidOutput as err:  # written by the student's process: its loss, never a crash
            return None, f"the {component} checks reported an invalid results file ({err})"


def run_hidden_checks(source_nb, student_nb, components=COMPONENTS) -> dict:
    """{component: [CheckResult]} for a submission, every component probed in parallel."""
    cells = graded_code(source_nb, student_nb)
    ref = reference.load()
    with ThreadPoolExecutor(max_workers=len(components)) as pool:
        probes = dict(zip(components, pool.map(lambda c: probe_component(cells, c), components)))
    results = {}
    for component, (flat, reason) in probes.items():
        results[component] = (judge_component(component, flat, ref) if flat is not None
                              else failed_component(component, reason))
    return results


def sandbox_mode() -> str:
    """How student code ran, for the results: the sandbox, or AUTOGRADER_SANDBOX=off."""
    return "bubblewrap" if sandbox.mode() != "off" else "off: NOT isolated (AUTOGRADER_SANDBOX=off)"
