"""Judging one component: every check scored from the probe's observations against the reference data.

The checks themselves (scenarios, points, what each says) are the course module's
content (``judge.content``); this module scores them, names the misconceptions that
explain a failure, and builds the spec the sandboxed probe runs (scenarios, no answers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..probe import base_namespace, flatten, observe
from ..probe.record import PROBLEMS
from . import content as contents
from . import reference
from .compare import QUOTED, by_check, first_divergence, memory_ratio, quoted
from .signatures import fired

__all__ = [
    "QUOTED",
    "memory_ratio",
    "Check",
    "CheckResult",
    "assert_component",
    "catalog",
    "checks_for",
    "failed_component",
    "judge",
    "judge_component",
    "lost_check",
    "observations_of",
    "probe_spec",
]
UNEXPECTED = "(an observation the grader did not ask for)"  # what judge.output puts for a forged label


@dataclass(frozen=True)
class Check:
    id: str
    component: str
    points: float
    what: str  # shown to students: what was checked, never the inputs
    scenarios: list = field(repr=False)


def catalog(module=None) -> tuple:
    return (module or contents.only()).catalog()


def checks_for(component: str, module=None) -> list:
    return [c for c in catalog(module) if c.component == component]


def __getattr__(name: str):
    if name == "COMPONENTS":  # the installed module's components, for callers that grade one module
        return contents.only().COMPONENTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scenarios_of(module=None) -> dict:
    return {c.id: c.scenarios for c in catalog(module)}


def observations_of(flat: dict, check_id: str, module=None) -> list:
    """[(label, array)] of one check from a flat ``{check|index|label: array}`` mapping, in order."""
    return by_check(flat, scenarios_of(module)).get(check_id, [])


def probe_spec(component: str, module=None) -> dict:
    """What the sandboxed probe needs for one component: the scenarios, no answers.

    The scored checks, then the signature scenarios that recognise misconceptions (no points),
    and the probe extensions that run them.
    """
    module = module or contents.only()
    runs = sorted(module.signature_runs(component).items(), key=lambda item: item[0][0] != component)
    signatures = [
        {"id": module.signature_check_id(cls, name), "scenarios": [scenario]} for (cls, name), scenario in runs
    ]
    return {
        "checks": [{"id": c.id, "scenarios": c.scenarios} for c in checks_for(component, module)] + signatures,
        "extensions": [name for name, _ in module.PROBE_EXTENSIONS],
    }


# -- judging ------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    id: str
    component: str
    score: float
    max_score: float
    diagnosis: str | None  # the first of ``diagnoses``: kept for readers of the one-slug field
    message: str
    diagnoses: list = field(default_factory=list)  # every misconception named, catalog slugs
    inherited_from: dict = field(default_factory=dict)  # {slug: parent component} for a bug a component inherits

    def as_dict(self) -> dict:
        return asdict(self)


def judge(
    check: Check,
    got: list,
    reference: dict,
    problems: str = "",
    found: dict | None = None,
    forged: bool = False,
    module=None,
) -> CheckResult:
    """Score one check: full points when the run matches the reference (or an accepted alternative).

    A failed check names every misconception that explains it: a catalogued
    variant the run reproduces exactly, and each signature that fired for this
    component (``found``) and whose variants fail this check. ``forged`` output
    (written by the student's code, not the probe) fails and names nothing.
    """
    divergence = first_divergence(got, reference["expected"][check.id])
    if divergence is None:
        return CheckResult(check.id, check.component, check.points, check.points, None, f"passed: {check.what}")
    for name, alternative in reference["alternatives"].get(check.id, {}).items():
        if first_divergence(got, alternative) is None:
            return CheckResult(
                check.id, check.component, check.points, check.points, None, f"passed with {name}: {check.what}"
            )
    named = [] if forged else diagnose_all(check, got, reference, found or {})
    module = module or contents.only()
    crashed = module.crash(got)
    message = f"failed: {check.what}. " + (
        crashed[0].upper() + crashed[1:] if crashed else f"First difference at {divergence}"
    )
    if problems:
        message += f" (while defining your classes: {quoted(problems.splitlines()[0])})"
    if forged:
        message += ". The results file holds observations the grader never asks for: does your code write out.json?"
    elif not named:
        kind = check.scenarios[0]["kind"] if check.scenarios else ""
        message += f". Look at {module.LOOK_AT.get(kind, 'this part of your class')}."
    inherited = {slug: (found or {})[slug] for slug in named if (found or {}).get(slug)}
    return CheckResult(
        check.id, check.component, 0.0, check.points, named[0] if named else None, message, named, inherited
    )


def diagnose(check: Check, got: list, reference: dict) -> list:
    """The catalogued misconceptions whose own runs reproduce this submission's run."""
    return [
        slug
        for slug, runs in reference["variants"].get(check.id, {}).items()
        if any(first_divergence(got, run) is None for run in runs)
    ]


def diagnose_all(check: Check, got: list, reference: dict, found: dict) -> list:
    """Exact variant matches, then fired signatures whose variants fail this check (or any, if none do)."""
    exact = diagnose(check, got, reference)
    relevant = [slug for slug in found if slug in reference["affects"].get(check.id, ())]
    named = list(dict.fromkeys(exact + relevant))
    return named or list(found)


def judge_component(component: str, flat: dict, reference: dict, lost: dict | None = None, module=None) -> list:
    """Every check of ``component`` judged from ``flat``; a check in ``lost`` (check id -> why its
    probe process was killed or never ran it) fails with that reason, the others are judged as usual."""
    module = module or contents.only()
    problems = str(flat.get(PROBLEMS, ""))
    # Output carrying labels the grader never asks for was written by the student's code, not the
    # probe: it still fails its checks, but naming a misconception from it would be a guess.
    forged = any(key.endswith(f"|{UNEXPECTED}") for key in flat)
    found = {} if forged else fired(flat, component, module)
    lost = lost or {}
    observed = by_check(flat, scenarios_of(module))
    return [
        lost_check(c, lost[c.id])
        if c.id in lost
        else judge(c, observed.get(c.id, []), reference, problems, found, forged, module)
        for c in checks_for(component, module)
    ]


def lost_check(check: Check, why: str) -> CheckResult:
    """Zero for a check whose probe process was killed while it ran (or that the time budget left unrun)."""
    return CheckResult(
        check.id, check.component, 0.0, check.points, None, f"failed: {check.what}. {why[0].upper() + why[1:]}"
    )


def failed_component(component: str, reason: str, module=None) -> list:
    """Zero for every check of a component whose probe did not report (crash, timeout, limit)."""
    return [
        CheckResult(c.id, c.component, 0.0, c.points, None, f"not graded: {reason}")
        for c in checks_for(component, module)
    ]


# -- in-process use by the instructor notebook ------------------------------------------------


def assert_component(component: str, namespace: dict, module=None) -> None:
    """Run the hidden checks on classes defined in ``namespace`` (instructor-side, no sandbox)."""
    module = module or contents.only()
    ns = base_namespace()
    ns.update({k: namespace[k] for k in module.NAMESPACE_NAMES if k in namespace})
    flat = flatten(observe(ns, probe_spec(component, module)["checks"]))
    results = judge_component(component, flat, reference.load(component, module), module=module)
    failed = [r for r in results if r.score < r.max_score]
    assert not failed, "\n".join(f"{r.id} [{', '.join(r.diagnoses)}]: {r.message}" for r in failed)
    print(f"{component}: all {len(results)} hidden checks pass")
