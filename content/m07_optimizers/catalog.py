"""Module 07's hidden checks: what each component is tested on, and how many points.

A check is a list of scenarios (inputs only) that the probe's scenario kinds
(``probe_kinds.py``) run against a submission. Judging compares the probe's
observations with the reference data in ``reference/<component>.json`` (made by
``make reference`` from the reference solution and from each catalogued
misconception), so no expected value is ever written here by hand.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from autograder.judge.checks import Check
from autograder.judge.compare import quoted

COMPONENTS = ("Optimizer", "SGD", "Adam", "AdamW")
# Labels the probe writes when a call raised (probe_kinds.attempt, the probe's observe): judge.output
# shows them, though no known run has them.
FAILURE_LABEL = re.compile(r"\[\d{1,3}\] (constructing the optimizer|running the scenario|step \d{1,3}: step\(\))")
# The names the instructor notebook's hidden-test cells hand to assert_component.
NAMESPACE_NAMES = ("Optimizer", "SGD", "Adam", "AdamW", "gradient_array", "check_hyperparameters")


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


def _traj(
    cls,
    kwargs,
    seed,
    steps,
    scale,
    state=(),
    lr_at=None,
    none_at=(),
    record_grads=False,
    initial_state=None,
    tensor_grads_at=(),
):
    scenario = {
        "kind": "trajectory",
        "cls": cls,
        "kwargs": kwargs,
        "params": _arrays(seed, SHAPES),
        "steps": _grads(seed, steps, scale, none_at),
        "state": list(state),
        "record_grads": record_grads,
    }
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
    return {
        "kind": "memory",
        "cls": cls,
        "kwargs": kwargs,
        "steps": 3,
        "state": list(state),
        "params": _arrays(7, [(64, 32), (32,), (10, 3, 2)]),
        "before_first_step": before,
    }


def _promoting(scenario):
    """The same memory scenario fed float64 gradients and an ``np.float64`` lr: float32 must stay float32."""
    kwargs = {"lr": 0.01, **scenario["kwargs"]}
    return {**scenario, "kwargs": kwargs, "grad_dtype": "float64", "numpy_scalars": ["lr"], "before_first_step": False}


def _validation(cls, bad):
    return {"kind": "validation", "cls": cls, "bad": bad}


NAN, INF = float("nan"), float("inf")
BAD_COMMON = [
    {"lr": -0.01},
    {"lr": INF},
    {"lr": NAN},
    {"weight_decay": -0.1},
    {"weight_decay": NAN},
    {"weight_decay": INF},
]
BAD_ADAM = BAD_COMMON + [
    {"betas": [1.0, 0.999]},
    {"betas": [0.9, -0.5]},
    {"betas": [NAN, 0.999]},
    {"betas": [0.9, INF]},
    {"betas": [0.9]},
    {"eps": -1e-8},
    {"eps": NAN},
    {"eps": INF},
]
SGD_STATE = ("momentum_buffers",)
ADAM_STATE = ("m_buffers", "v_buffers")


@lru_cache(maxsize=1)
def catalog() -> tuple:
    """Every hidden check, in grading order. Points add up to 100. Built once: it is pure."""
    return (
        Check(
            "optimizer-interface",
            "Optimizer",
            4,
            "params kept as a list, step_count starts at 0, "
            "empty parameter lists and the same parameter twice rejected",
            [{"kind": "interface", "params": _arrays(1, SHAPES)}],
        ),
        Check(
            "optimizer-zero-grad",
            "Optimizer",
            4,
            "zero_grad() sets every gradient to None and leaves parameters alone",
            [{"kind": "zero_grad", "params": _arrays(2, SHAPES), "grads": _arrays(3, SHAPES)}],
        ),
        Check(
            "optimizer-abstract-step",
            "Optimizer",
            2,
            "Optimizer.step() raises NotImplementedError",
            [{"kind": "abstract_step", "params": _arrays(4, SHAPES)}],
        ),
        Check(
            "sgd-plain",
            "SGD",
            6,
            "plain SGD over several steps, several shapes, Tensor and ndarray gradients, lr changed between steps",
            [_traj("SGD", {"lr": 0.1}, 10, 5, 1.0, lr_at=(3, 0.03), tensor_grads_at=(1,))],
        ),
        Check(
            "sgd-momentum-decay",
            "SGD",
            8,
            "momentum with weight decay, from zero and from a non-zero velocity, lr changed between steps",
            [
                _traj(
                    "SGD",
                    {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1},
                    11,
                    6,
                    1.0,
                    state=SGD_STATE,
                    lr_at=(4, 0.02),
                ),
                _traj(
                    "SGD",
                    {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.2},
                    12,
                    4,
                    0.5,
                    state=SGD_STATE,
                    initial_state={"momentum_buffers": _state_like(13, scale=0.5)},
                ),
            ],
        ),
        Check(
            "sgd-none-grad-untouched",
            "SGD",
            4,
            "parameters without a gradient are skipped, gradients are not modified by step()",
            [
                _traj(
                    "SGD",
                    {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1},
                    14,
                    3,
                    1.0,
                    state=SGD_STATE,
                    none_at={(2, 1), (3, 0), (3, 2)},
                    record_grads=True,
                )
            ],
        ),
        Check(
            "sgd-checkpoint",
            "SGD",
            5,
            "get_momentum_state() returns copies, set_momentum_state() copies in and rejects mismatched states",
            [
                {
                    "kind": "checkpoint",
                    "kwargs": {"lr": 0.1, "momentum": 0.9},
                    "params": _arrays(15, SHAPES),
                    "grads": _arrays(16, SHAPES),
                    "steps_before": 2,
                }
            ],
        ),
        Check(
            "sgd-memory-dtype",
            "SGD",
            4,
            "memory: 1x without momentum, 2x with (parameters + state), "
            "no state before the first step, float32 kept (also with float64 gradients and a NumPy lr)",
            [
                _memory("SGD", {"lr": 0.01}, SGD_STATE, before=True),
                _memory("SGD", {"lr": 0.01, "momentum": 0.9}, SGD_STATE, before=True),
                _promoting(_memory("SGD", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1}, SGD_STATE)),
            ],
        ),
        # A parameter listed twice is Optimizer.__init__'s to reject (optimizer-interface): one missing
        # line there must not cost every subclass's validation check as well.
        Check(
            "sgd-validation",
            "SGD",
            3,
            "invalid hyperparameters (negative, NaN, inf) raise ValueError",
            [_validation("SGD", BAD_COMMON + [{"momentum": -0.5}, {"momentum": 1.0}, {"momentum": NAN}])],
        ),
        Check(
            "adam-small-gradients",
            "Adam",
            6,
            "default betas on gradients near 1e-4, several steps",
            [_traj("Adam", {"lr": 0.01}, 20, 5, 1e-4, state=ADAM_STATE)],
        ),
        Check(
            "adam-betas-decay-lr",
            "Adam",
            8,
            "non-default betas and eps, L2 weight decay, lr changed between steps",
            [
                _traj(
                    "Adam",
                    {"lr": 0.02, "betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.1},
                    21,
                    6,
                    0.5,
                    state=ADAM_STATE,
                    lr_at=(4, 0.01),
                )
            ],
        ),
        Check(
            "adam-resume",
            "Adam",
            5,
            "stepping on from a saved state (m, v and step_count set)",
            [
                _traj(
                    "Adam",
                    {"lr": 0.01, "betas": [0.9, 0.99]},
                    22,
                    3,
                    0.3,
                    state=ADAM_STATE,
                    initial_state={
                        "m_buffers": _state_like(23, scale=0.05),
                        "v_buffers": _state_like(24, positive=True, scale=0.01),
                        "step_count": 7,
                    },
                )
            ],
        ),
        Check(
            "adam-none-grad-untouched",
            "Adam",
            4,
            "parameters without a gradient are skipped, gradients are not modified by step()",
            [
                _traj(
                    "Adam",
                    {"lr": 0.05, "weight_decay": 0.1},
                    25,
                    3,
                    1.0,
                    state=ADAM_STATE,
                    none_at={(1, 2), (2, 1), (3, 0)},
                    record_grads=True,
                )
            ],
        ),
        Check(
            "adam-memory-dtype",
            "Adam",
            4,
            "memory: 3x (parameters + m + v), float32 kept (also with float64 gradients and a NumPy lr)",
            [_memory("Adam", {}, ADAM_STATE), _promoting(_memory("Adam", {"weight_decay": 0.1}, ADAM_STATE))],
        ),
        Check(
            "adam-validation",
            "Adam",
            3,
            "invalid hyperparameters (negative, NaN, inf, betas outside [0, 1)) raise ValueError",
            [_validation("Adam", BAD_ADAM)],
        ),
        Check(
            "adamw-decoupled-decay",
            "AdamW",
            12,
            "decoupled weight decay with lr*weight_decay >= 0.05, non-default betas, lr changed between steps",
            [
                _traj("AdamW", {"lr": 0.1, "weight_decay": 0.5}, 30, 5, 0.3, state=ADAM_STATE),
                _traj(
                    "AdamW",
                    {"lr": 0.2, "betas": [0.85, 0.98], "weight_decay": 0.3},
                    31,
                    4,
                    1.0,
                    state=ADAM_STATE,
                    lr_at=(3, 0.1),
                ),
            ],
        ),
        Check(
            "adamw-resume",
            "AdamW",
            6,
            "stepping on from a saved state with decay",
            [
                _traj(
                    "AdamW",
                    {"lr": 0.1, "weight_decay": 0.5},
                    32,
                    3,
                    0.3,
                    state=ADAM_STATE,
                    initial_state={
                        "m_buffers": _state_like(33, scale=0.05),
                        "v_buffers": _state_like(34, positive=True, scale=0.01),
                        "step_count": 4,
                    },
                )
            ],
        ),
        Check(
            "adamw-defaults-rules",
            "AdamW",
            4,
            "default weight_decay of 0.01, None gradients skipped, gradients not modified",
            [
                {"kind": "defaults", "cls": "AdamW", "attributes": ["lr", "weight_decay", "eps"]},
                _traj(
                    "AdamW",
                    {"lr": 0.1, "weight_decay": 0.5},
                    35,
                    3,
                    1.0,
                    state=ADAM_STATE,
                    none_at={(1, 0), (2, 2)},
                    record_grads=True,
                ),
            ],
        ),
        Check(
            "adamw-memory-dtype",
            "AdamW",
            4,
            "memory: 3x (parameters + m + v), float32 kept (also with float64 gradients and a NumPy lr)",
            [_memory("AdamW", {}, ADAM_STATE), _promoting(_memory("AdamW", {}, ADAM_STATE))],
        ),
        Check(
            "adamw-validation",
            "AdamW",
            4,
            "invalid hyperparameters (negative, NaN, inf, betas outside [0, 1)) raise ValueError",
            [_validation("AdamW", BAD_ADAM)],
        ),
    )


LOOK_AT = {  # what to look at when a check fails and no misconception fits, by the kind of check
    "interface": "the constructor: keep params as a list, start step_count at 0, reject an empty list and "
    "a parameter listed twice (the same object, not equal values)",
    "zero_grad": "zero_grad(): every param.grad becomes None, param.data untouched",
    "abstract_step": "Optimizer.step(): it must raise NotImplementedError",
    "trajectory": "the update rule in step(), step by step against the formula in the notebook",
    "checkpoint": "get_momentum_state()/set_momentum_state(): copies out, copies in, ValueError on a mismatch",
    "memory": "which arrays your optimizer keeps, and their dtype (float32 like the parameters)",
    "validation": "__init__: raise ValueError for each invalid hyperparameter (NaN and inf too: NaN < 0 is False)",
    "defaults": "the default hyperparameters in __init__'s signature",
}
_CRASH = re.compile(r"^\[(\d+)\] (?:step (\d+): (step\(\))|(constructing the optimizer|running the scenario))$")


def crash(got: list) -> str | None:
    """ "your step() raised X at step k" for the first call the probe saw raise, if any (student text quoted)."""
    for label, value in got:
        match = _CRASH.match(label)
        if match and value.dtype.kind == "U" and str(value).startswith("raised "):
            scenario, step, _, other = match.groups()
            what = f"your step() {quoted(value)} at step {step}" if step else f"{other}: {quoted(value)}"
            return f"{what} (scenario {scenario})"
    return None
