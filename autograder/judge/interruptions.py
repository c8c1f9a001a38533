"""What a killed probe was doing, and the message its lost check gets.

Before every call into student code the probe writes a marker (``probe.markers.RUNNING``):
``check<TAB>scenario<TAB>class<TAB>method<TAB>defining class<TAB>step``, ``defining<TAB>cell``,
``between checks`` or ``done``. The file is written by the student's process, so it is
hostile data: ``parse_marker`` accepts only names and numbers this grader put in the
spec (its checks, their scenarios and classes, the content's method names: ``methods``), anything else
reads as "unknown". Pure functions: no file or process is touched here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..probe.markers import BETWEEN, DONE

NUMBER = re.compile(r"\d{1,4}")


@dataclass(frozen=True)
class Running:
    """A call into student code the probe announced: the check it belongs to, or the cell being defined."""

    check: str | None = None
    scenario: int = 0
    cls: str = ""
    method: str = ""
    owner: str = ""  # the class whose code runs: a subclass's method may be inherited
    step: int = 0
    cell: int | None = None  # set while the probe defines the notebook's cells


def known_classes(component: str, checks: list) -> set:
    """Class names a marker may carry: the component and every class a scenario of the spec names."""
    return {component} | {s["cls"] for c in checks for s in c["scenarios"] if isinstance(s.get("cls"), str)}


def parse_marker(text: str, component: str, checks: list, cells: int, methods: tuple = ()):
    """``DONE``, ``BETWEEN``, a ``Running``, or None for a marker this grader did not ask for."""
    if text in (DONE, BETWEEN):
        return text
    fields = text.split("\t")
    if len(fields) == 2 and fields[0] == "defining" and NUMBER.fullmatch(fields[1]) and int(fields[1]) < cells:
        return Running(cell=int(fields[1]))
    if len(fields) != 6:
        return None
    check_id, scenario, cls, method, owner, step = fields
    scenarios = next((c["scenarios"] for c in checks if c["id"] == check_id), None)
    classes = known_classes(component, checks)
    if (
        scenarios is None
        or not NUMBER.fullmatch(scenario)
        or not 1 <= int(scenario) <= len(scenarios)
        or cls not in classes
        or method not in methods
        or not NUMBER.fullmatch(step)
    ):
        return None
    return Running(check_id, int(scenario), cls, method, owner if owner in classes else cls, int(step))


def how(
    returncode: int | None,
    timed_out_by_watchdog: bool,
    killed_reason: str | None,
    check_seconds: float,
    budget_seconds: float,
    component: str,
) -> str:
    """What happened to the process, as the end of "your X.step() ..."."""
    if timed_out_by_watchdog:
        return f"did not return within {check_seconds:g} s"
    if killed_reason and killed_reason.startswith("wall time"):
        return f"was still running when the {component} checks' time budget ({budget_seconds:g} s) ran out"
    if killed_reason:
        return f"was stopped by the sandbox: {killed_reason}"
    if returncode is not None and returncode < 0:
        return f"was killed by signal {-returncode}"
    return f"ended the process (exit code {returncode}: os._exit() or a crash of the interpreter)"


def _none_grad_at(scenario: dict, step: int) -> bool:
    steps = scenario.get("steps") if isinstance(scenario.get("steps"), list) else []
    return 1 <= step <= len(steps) and None in steps[step - 1].get("grads", ())


def lost_check_message(running: Running, what: str, scenario: dict) -> str:
    """ "Your Child.step(), inherited from Parent.step(), did not return within 5 s at step 1 ... (scenario 1 of X)"."""
    call = f"{running.cls}.{running.method}()"
    if running.owner != running.cls:
        call += f", inherited from {running.owner}.{running.method}(),"
    at = f" at step {running.step}" if running.step and running.method == "step" else ""
    if at and _none_grad_at(scenario, running.step):
        at += ", when a parameter's grad was None"
    return (
        f"Your {call} {what}{at} (scenario {running.scenario} of {running.check}); "
        "the checks after it ran in a fresh process"
    )


def budget_message(component: str, budget_seconds: float) -> str:
    return (
        f"not run: the {component} checks' time budget ({budget_seconds:g} s) was spent on earlier checks "
        "that did not return"
    )
