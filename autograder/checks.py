"""The hidden checks: what each component is tested on, how many points, and how it is judged.

A check is a list of scenarios (inputs only) that ``probe.py`` runs against a
submission. Judging compares the probe's observations with the reference data
in ``reference/<component>.json`` (made by ``make reference`` from the reference
solution and from each catalogued misconception), so no expected value is ever
written here by hand.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Optional

import numpy as np

from .probe import MEMORY, PROBLEMS

UNEXPECTED = "(an observation the grader did not ask for)"   # what probe_output puts for a forged label

COMPONENTS = ("Optimizer", "SGD", "Adam", "AdamW")
RTOL, ATOL_SCALE = 1e-4, 1e-6          # float32 rounding, with room for reordered arithmetic
DISTINCT = 100                          # a misconception must miss the reference by 100x the tolerance
QUOTED = 160                            # characters of a submission's own text (an exception message) quoted back


def _rng(seed: int):
    return np.random.default_rng(seed)


def _arrays(seed: int, shapes, scale: float = 1.0) -> list:
    rng = _rng(seed)
    return [(rng.standard_normal(s) * scale).astype(np.float32).tolist() for s in shapes]


SHAPES = [(3, 4), (5,), (2, 3, 2)]


def _grads(seed: int, steps: int, scale: float, none_at=()) -> list:
    """Gradients per step; ``none_at`` lists (step, param) pairs whose gradient is None."""
    out = []
    for k in range(steps):
        grads = _arrays(seed + 1000 * (k + 1), SHAPES, scale)
        out.append({"grads": [None if (k + 1, j) in none_at else g for j, g in enumerate(grads)]})
    return out


def _traj(cls, kwargs, seed, steps, scale, state=(), lr_at=None, none_at=(), record_grads=False,
          initial_state=None, tensor_grads_at=()):
    scenario = {"kind": "trajectory", "cls": cls, "kwargs": kwargs, "params": _arrays(seed, SHAPES),
                "steps": _grads(seed, steps, scale, none_at), "state": list(state),
                "record_grads": record_grads}
    if lr_at:
        step, lr = lr_at
        scenario["steps"][step - 1]["set"] = {"lr": lr}
    for step in tensor_grads_at:
        scenario["steps"][step - 1]["tensor_grads"] = True
    if initial_state:
        scenario["initial_state"] = initial_state
    return scenario


def _state_like(seed: int, positive: bool = False, scale: float = 0.1) -> list:
    arrays = _arrays(seed, SHAPES, scale)
    return [np.abs(a).tolist() for a in map(np.array, arrays)] if positive else arrays


def _memory(cls, kwargs, state, before=False):
    return {"kind": "memory", "cls": cls, "kwargs": kwargs, "steps": 3, "state": list(state),
            "params": _arrays(7, [(64, 32), (32,), (10, 3, 2)]), "before_first_step": before}


def _promoting(scenario):
    """The same memory scenario fed float64 gradients and an ``np.float64`` lr: float32 must stay float32."""
    kwargs = {"lr": 0.01, **scenario["kwargs"]}
    return {**scenario, "kwargs": kwargs, "grad_dtype": "float64", "numpy_scalars": ["lr"],
            "before_first_step": False}


def _validation(cls, bad):
    return {"kind": "validation", "cls": cls, "bad": bad}


NAN, INF = float("nan"), float("inf")
BAD_COMMON = [{"lr": -0.01}, {"lr": INF}, {"lr": NAN}, {"weight_decay": -0.1}, {"weight_decay": NAN},
              {"weight_decay": INF}]
BAD_ADAM = BAD_COMMON + [{"betas": [1.0, 0.999]}, {"betas": [0.9, -0.5]}, {"betas": [NAN, 0.999]},
                         {"betas": [0.9, INF]}, {"betas": [0.9]}, {"eps": -1e-8}, {"eps": NAN}, {"eps": INF}]
SGD_STATE = ("momentum_buffers",)
ADAM_STATE = ("m_buffers", "v_buffers")


@dataclass(frozen=True)
class Check:
    id: str
    component: str
    points: float
    what: str                       # shown to students: what was checked, never the inputs
    scenarios: list = field(repr=False)


@lru_cache(maxsize=1)
def catalog() -> tuple:
    """Every hidden check, in grading order. Points add up to 100. Built once: it is pure."""
    return (
        Check("optimizer-interface", "Optimizer", 4, "params kept as a list, step_count starts at 0, "
              "empty parameter lists and the same parameter twice rejected", [{"kind": "interface", "params": _arrays(1, SHAPES)}]),
        Check("optimizer-zero-grad", "Optimizer", 4, "zero_grad() sets every gradient to None and "
              "leaves parameters alone", [{"kind": "zero_grad", "params": _arrays(2, SHAPES),
                                           "grads": _arrays(3, SHAPES)}]),
        Check("optimizer-abstract-step", "Optimizer", 2, "Optimizer.step() raises NotImplementedError",
              [{"kind": "abstract_step", "params": _arrays(4, SHAPES)}]),

        Check("sgd-plain", "SGD", 6, "plain SGD over several steps, several shapes, Tensor and ndarray "
              "gradients, lr changed between steps",
              [_traj("SGD", {"lr": 0.1}, 10, 5, 1.0, lr_at=(3, 0.03), tensor_grads_at=(1,))]),
        Check("sgd-momentum-decay", "SGD", 8, "momentum with weight decay, from zero and from a "
              "non-zero velocity, lr changed between steps",
              [_traj("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}, 11, 6, 1.0,
                     state=SGD_STATE, lr_at=(4, 0.02)),
               _traj("SGD", {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.2}, 12, 4, 0.5,
                     state=SGD_STATE, initial_state={"momentum_buffers": _state_like(13, scale=0.5)})]),
        Check("sgd-none-grad-untouched", "SGD", 4, "parameters without a gradient are skipped, "
              "gradients are not modified by step()",
              [_traj("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}, 14, 3, 1.0,
                     state=SGD_STATE, none_at={(2, 1), (3, 0), (3, 2)}, record_grads=True)]),
        Check("sgd-checkpoint", "SGD", 5, "get_momentum_state() returns copies, set_momentum_state() "
              "copies in and rejects mismatched states",
              [{"kind": "checkpoint", "kwargs": {"lr": 0.1, "momentum": 0.9}, "params": _arrays(15, SHAPES),
                "grads": _arrays(16, SHAPES), "steps_before": 2}]),
        Check("sgd-memory-dtype", "SGD", 4, "memory: 1x without momentum, 2x with (parameters + state), "
              "no state before the first step, float32 kept (also with float64 gradients and a NumPy lr)",
              [_memory("SGD", {"lr": 0.01}, SGD_STATE, before=True),
               _memory("SGD", {"lr": 0.01, "momentum": 0.9}, SGD_STATE, before=True),
               _promoting(_memory("SGD", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1}, SGD_STATE))]),
        # A parameter listed twice is Optimizer.__init__'s to reject (optimizer-interface): one missing
        # line there must not cost every subclass's validation check as well.
        Check("sgd-validation", "SGD", 3, "invalid hyperparameters (negative, NaN, inf) raise ValueError",
              [_validation("SGD", BAD_COMMON + [{"momentum": -0.5}, {"momentum": 1.0}, {"momentum": NAN}])]),

        Check("adam-small-gradients", "Adam", 6, "default betas on gradients near 1e-4, several steps",
              [_traj("Adam", {"lr": 0.01}, 20, 5, 1e-4, state=ADAM_STATE)]),
        Check("adam-betas-decay-lr", "Adam", 8, "non-default betas and eps, L2 weight decay, lr changed "
              "between steps",
              [_traj("Adam", {"lr": 0.02, "betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.1}, 21, 6,
                     0.5, state=ADAM_STATE, lr_at=(4, 0.01))]),
        Check("adam-resume", "Adam", 5, "stepping on from a saved state (m, v and step_count set)",
              [_traj("Adam", {"lr": 0.01, "betas": [0.9, 0.99]}, 22, 3, 0.3, state=ADAM_STATE,
                     initial_state={"m_buffers": _state_like(23, scale=0.05),
                                    "v_buffers": _state_like(24, positive=True, scale=0.01),
                                    "step_count": 7})]),
        Check("adam-none-grad-untouched", "Adam", 4, "parameters without a gradient are skipped, "
              "gradients are not modified by step()",
              [_traj("Adam", {"lr": 0.05, "weight_decay": 0.1}, 25, 3, 1.0, state=ADAM_STATE,
                     none_at={(1, 2), (2, 1), (3, 0)}, record_grads=True)]),
        Check("adam-memory-dtype", "Adam", 4, "memory: 3x (parameters + m + v), float32 kept (also with "
              "float64 gradients and a NumPy lr)",
              [_memory("Adam", {}, ADAM_STATE), _promoting(_memory("Adam", {"weight_decay": 0.1}, ADAM_STATE))]),
        Check("adam-validation", "Adam", 3, "invalid hyperparameters (negative, NaN, inf, betas outside "
              "[0, 1)) raise ValueError",
              [_validation("Adam", BAD_ADAM)]),

        Check("adamw-decoupled-decay", "AdamW", 12, "decoupled weight decay with lr*weight_decay >= 0.05, "
              "non-default betas, lr changed between steps",
              [_traj("AdamW", {"lr": 0.1, "weight_decay": 0.5}, 30, 5, 0.3, state=ADAM_STATE),
               _traj("AdamW", {"lr": 0.2, "betas": [0.85, 0.98], "weight_decay": 0.3}, 31, 4, 1.0,
                     state=ADAM_STATE, lr_at=(3, 0.1))]),
        Check("adamw-resume", "AdamW", 6, "stepping on from a saved state with decay",
              [_traj("AdamW", {"lr": 0.1, "weight_decay": 0.5}, 32, 3, 0.3, state=ADAM_STATE,
                     initial_state={"m_buffers": _state_like(33, scale=0.05),
                                    "v_buffers": _state_like(34, positive=True, scale=0.01),
                                    "step_count": 4})]),
        Check("adamw-defaults-rules", "AdamW", 4, "default weight_decay of 0.01, None gradients skipped, "
              "gradients not modified",
              [{"kind": "defaults", "cls": "AdamW", "attributes": ["lr", "weight_decay", "eps"]},
               _traj("AdamW", {"lr": 0.1, "weight_decay": 0.5}, 35, 3, 1.0, state=ADAM_STATE,
                     none_at={(1, 0), (2, 2)}, record_grads=True)]),
        Check("adamw-memory-dtype", "AdamW", 4, "memory: 3x (parameters + m + v), float32 kept (also with "
              "float64 gradients and a NumPy lr)",
              [_memory("AdamW", {}, ADAM_STATE), _promoting(_memory("AdamW", {}, ADAM_STATE))]),
        Check("adamw-validation", "AdamW", 4, "invalid hyperparameters (negative, NaN, inf, betas outside "
              "[0, 1)) raise ValueError",
              [_validation("AdamW", BAD_ADAM)]),
    )


@lru_cache(maxsize=None)
def _checks_for(component: str) -> tuple:
    return tuple(c for c in catalog() if c.component == component)


def checks_for(component: str) -> list:
    return list(_checks_for(component))


def probe_spec(component: str) -> dict:
    """What the sandboxed probe needs for one component: the scenarios, no answers.

    The scored checks, then the signature scenarios (``signatures.py``) that
    recognise misconceptions; those carry no points.
    """
    from .signatures import probe_checks

    return {"checks": [{"id": c.id, "scenarios": c.scenarios} for c in checks_for(component)]
            + probe_checks(component)}


# -- judging ------------------------------------------------------------------------------------

@dataclass
class CheckResult:
    id: str
    component: str
    score: float
    max_score: float
    diagnosis: Optional[str]          # the first of ``diagnoses``: kept for readers of the one-slug field
    message: str
    diagnoses: list = field(default_factory=list)        # every misconception named, catalog slugs
    inherited_from: dict = field(default_factory=dict)   # {slug: "Adam"} for a bug AdamW inherits

    def as_dict(self) -> dict:
        return asdict(self)


def observations_of(flat: dict, check_id: str) -> list:
    """[(label, array)] of one check from a flat ``{check|index|label: array}`` mapping, in order.

    Memory tables become ratios here, so every run (reference, variants, submission) is measured alike.
    """
    return by_check(flat).get(check_id, [])


def by_check(flat: dict) -> dict:
    """``observations_of`` for every check in ``flat`` at once: {check: [(label, array)]}, one pass."""
    rows: dict = {}
    for key, value in flat.items():
        parts = key.split("|", 2)
        if len(parts) == 3 and parts[1].isdigit():
            rows.setdefault(parts[0], []).append((int(parts[1]), parts[2], np.asarray(value)))
    scenarios = _scenarios()
    return {check: [(label, _measured(label, value, scenarios.get(check, [])))
                    for _, label, value in sorted(found, key=lambda r: r[0])]
            for check, found in rows.items()}


@lru_cache(maxsize=1)
def _scenarios() -> dict:
    return {c.id: c.scenarios for c in catalog()}


MEMORY_TABLE = re.compile(r"\[(\d+)\] .*" + re.escape(MEMORY))


def _measured(label: str, value: np.ndarray, scenarios: list) -> np.ndarray:
    match = MEMORY_TABLE.fullmatch(label)
    if match is None:
        return value
    n = int(match.group(1)) - 1
    if not 0 <= n < len(scenarios) or scenarios[n]["kind"] != "memory":
        return np.array("not a measurement")
    return memory_ratio(value, scenarios[n])


def memory_ratio(table: np.ndarray, scenario: dict) -> np.ndarray:
    """(parameters + state) / parameters, from the probe's ``[[elements, bytes per element], ...]``.

    The counting rule (MISCONCEPTIONS.md, "Memory"): a buffer counts when it has at
    least as many elements as the scenario's smallest parameter. Every per-parameter
    buffer does; hyperparameter arrays and cached scalars never do. The denominator
    is the scenario's own parameters, not anything the submission reports.
    """
    sizes = [np.asarray(p).size for p in scenario["params"]]
    itemsize = np.dtype(scenario.get("dtype", "float32")).itemsize
    table = np.asarray(table)
    if (table.dtype != np.float64 or table.ndim != 2 or table.shape[1] != 2 or not np.isfinite(table).all()
            or (table < 0).any() or (table != np.round(table)).any()):
        return np.array("not a measurement")
    counted = table[table[:, 0] >= min(sizes)]
    return np.array(round(float(np.sum(counted[:, 0] * counted[:, 1])) / (itemsize * sum(sizes)), 3))


def quoted(text, limit: int = QUOTED) -> str:
    """``text`` safe to quote in feedback: one line, printable characters only, at most ``limit`` characters."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _tolerance(expected: np.ndarray) -> float:
    finite = np.abs(expected[np.isfinite(expected)]) if expected.size else np.zeros(1)
    return ATOL_SCALE * (float(finite.max()) if finite.size else 1.0) + 1e-30


def values_match(got: np.ndarray, expected: np.ndarray, slack: float = 1.0) -> bool:
    if expected.dtype.kind == "U" or got.dtype.kind == "U":
        return got.dtype.kind == expected.dtype.kind and str(got) == str(expected)
    if got.shape != expected.shape:
        return False
    return bool(np.allclose(got, expected, rtol=RTOL * slack, atol=_tolerance(expected) * slack, equal_nan=True))


def first_divergence(got: list, expected: list, slack: float = 1.0) -> Optional[str]:
    """None when ``got`` matches ``expected``; otherwise where and how they first differ."""
    for n, (label, exp) in enumerate(expected):
        if n >= len(got):
            return f"{label}: no value recorded"
        got_label, value = got[n]
        if got_label != label:
            return f"{label}: expected a value, but the run went: {quoted(got_label)} = {_show(value)}"
        if not values_match(value, exp, slack):
            return f"{label}: {_where(value, exp)}"
    if len(got) > len(expected):
        label, value = got[len(expected)]
        return f"{quoted(label)}: unexpected {_show(value)}"
    return None


def _show(value: np.ndarray) -> str:
    if value.dtype.kind == "U":
        return quoted(value)
    if value.size == 1:
        return f"{float(value.reshape(-1)[0]):.6g}"
    return f"array of shape {value.shape}"


def _where(got: np.ndarray, expected: np.ndarray) -> str:
    if expected.dtype.kind == "U" or got.dtype.kind == "U" or got.shape != expected.shape:
        return f"expected {_show(expected)}, got {_show(got)}"
    bad = ~np.isclose(got, expected, rtol=RTOL, atol=_tolerance(expected), equal_nan=True)
    index = tuple(int(i) for i in np.argwhere(bad)[0]) if got.ndim else ()
    at = f" element {index}" if index else ""
    return f"first differs at{at}: expected {float(expected[index]):.6g}, got {float(got[index]):.6g}"


LOOK_AT = {   # what to look at when a check fails and no misconception fits, by the kind of check
    "interface": "the constructor: keep params as a list, start step_count at 0, reject an empty list and "
                 "a parameter listed twice (the same object, not equal values)",
    "zero_grad": "zero_grad(): every param.grad becomes None, param.data untouched",
    "abstract_step": "Optimizer.step(): it must raise NotImplementedError",
    "trajectory": "the update rule in step(), step by step against the formula in the notebook",
    "checkpoint": "get_momentum_state()/set_momentum_state(): copies out, copies in, ValueError on a mismatch",
    "memory": "which arrays your optimizer keeps, and their dtype (float32 like the parameters)",
    "validation": "__init__: raise ValueError for each invalid hyperparameter (NaN and inf too: NaN < 0 is "
                  "False)",
    "defaults": "the default hyperparameters in __init__'s signature",
}
_CRASH = re.compile(r"^\[(\d+)\] (?:step (\d+): (step\(\))|(constructing the optimizer|running the scenario))$")


def crash(got: list) -> Optional[str]:
    """"your step() raised X at step k" for the first call the probe saw raise, if any (student text quoted)."""
    for label, value in got:
        match = _CRASH.match(label)
        if match and value.dtype.kind == "U" and str(value).startswith("raised "):
            scenario, step, _, other = match.groups()
            what = f"your step() {quoted(value)} at step {step}" if step else f"{other}: {quoted(value)}"
            return f"{what} (scenario {scenario})"
    return None


def judge(check: Check, got: list, reference: dict, problems: str = "", found: Optional[dict] = None,
          forged: bool = False) -> CheckResult:
    """Score one check: full points when the run matches the reference (or an accepted alternative).

    A failed check names every misconception that explains it: a catalogued
    variant the run reproduces exactly, and each signature that fired for this
    component (``found``) and whose variants fail this check. ``forged`` output
    (written by the student's code, not the probe) fails and names nothing.
    """
    divergence = first_divergence(got, reference["expected"][check.id])
    if divergence is None:
        return CheckResult(check.id, check.component, check.points, check.points, None,
                           f"passed: {check.what}")
    for name, alternative in reference["alternatives"].get(check.id, {}).items():
        if first_divergence(got, alternative) is None:
            return CheckResult(check.id, check.component, check.points, check.points, None,
                               f"passed with {name}: {check.what}")
    named = [] if forged else diagnose_all(check, got, reference, found or {})
    crashed = crash(got)
    message = f"failed: {check.what}. " + (crashed[0].upper() + crashed[1:] if crashed else
                                            f"First difference at {divergence}")
    if problems:
        message += f" (while defining your classes: {quoted(problems.splitlines()[0])})"
    if forged:
        message += ". The results file holds observations the grader never asks for: does your code write out.npz?"
    elif not named:
        kind = check.scenarios[0]["kind"] if check.scenarios else ""
        message += f". Look at {LOOK_AT.get(kind, 'this part of your class')}."
    inherited = {slug: (found or {})[slug] for slug in named if (found or {}).get(slug)}
    return CheckResult(check.id, check.component, 0.0, check.points, named[0] if named else None, message,
                       named, inherited)


def diagnose(check: Check, got: list, reference: dict) -> list:
    """The catalogued misconceptions whose own runs reproduce this submission's run."""
    return [slug for slug, runs in reference["variants"].get(check.id, {}).items()
            if any(first_divergence(got, run) is None for run in runs)]


def diagnose_all(check: Check, got: list, reference: dict, found: dict) -> list:
    """Exact variant matches, then fired signatures whose variants fail this check (or any, if none do)."""
    exact = diagnose(check, got, reference)
    relevant = [slug for slug in found if slug in reference["affects"].get(check.id, ())]
    named = list(dict.fromkeys(exact + relevant))
    return named or list(found)


def judge_component(component: str, flat: dict, reference: dict, lost: Optional[dict] = None) -> list:
    """Every check of ``component`` judged from ``flat``; a check in ``lost`` (check id -> why its
    probe process was killed or never ran it) fails with that reason, the others are judged as usual."""
    from .signatures import fired

    problems = str(flat.get(PROBLEMS, ""))
    # Output carrying labels the grader never asks for was written by the student's code, not the
    # probe: it still fails its checks, but naming a misconception from it would be a guess.
    forged = any(key.endswith(f"|{UNEXPECTED}") for key in flat)
    found = {} if forged else fired(flat, component)
    lost = lost or {}
    return [lost_check(c, lost[c.id]) if c.id in lost else
            judge(c, observations_of(flat, c.id), reference, problems, found, forged) for c in checks_for(component)]


def lost_check(check: Check, why: str) -> CheckResult:
    """Zero for a check whose probe process was killed while it ran (or that the time budget left unrun)."""
    return CheckResult(check.id, check.component, 0.0, check.points, None,
                       f"failed: {check.what}. {why[0].upper() + why[1:]}")


def failed_component(component: str, reason: str) -> list:
    """Zero for every check of a component whose probe did not report (crash, timeout, limit)."""
    return [CheckResult(c.id, c.component, 0.0, c.points, None, f"not graded: {reason}")
            for c in checks_for(component)]


# -- in-process use by the instructor notebook ------------------------------------------------

def assert_component(component: str, namespace: dict) -> None:
    """Run the hidden checks on classes defined in ``namespace`` (instructor-side, no sandbox)."""
    from . import probe, reference as ref

    ns = probe.base_namespace()
    ns.update({k: namespace[k] for k in ("Optimizer", "SGD", "Adam", "AdamW", "gradient_array",
                                          "check_hyperparameters") if k in namespace})
    flat = probe.flatten(probe.observe(ns, probe_spec(component)["checks"]))
    results = judge_component(component, flat, ref.load(component))
    failed = [r for r in results if r.score < r.max_score]
    assert not failed, "\n".join(f"{r.id} [{', '.join(r.diagnoses)}]: {r.message}" for r in failed)
    print(f"{component}: all {len(results)} hidden checks pass")
