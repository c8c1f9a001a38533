"""Misconceptions recognised by what the code does: targeted scenarios and named predicates.

A catalogued variant (``misconceptions.py``) names a bug only when the student's
run reproduces it exactly. The signatures here recognise the same mistake in any
style: each scenario isolates one behaviour (the first Adam update on a known
gradient, a zero gradient with weight decay, a parameter without a gradient, the
state's dtype...), the probe reports what happened (no expected values leave
this process), and small named predicates judge the observations here, in the
trusted grader. ``SIGNATURES`` lists each slug's predicates per component;
``make reference`` proves each fires on its own variants and never on the reference.

Adam's moment code is inherited by AdamW, so AdamW's probe runs Adam's moment
scenarios on both classes: a slug that fires on AdamW and on Adam is named in
AdamW's table as inherited from Adam. Those runs of the other class come last in
the probe (``judge.checks.probe_spec``), after everything AdamW is scored on.
"""

from __future__ import annotations

import numpy as np

from autograder.judge.signatures import Run

NONE = "<None>"
SHAPES = [(4,), (3,), (2,)]
GRADS = [[0.5, -2.0, 0.25, -1.0], [1.0, -1.0, 3.0], [-0.5, 0.5]]
WEIGHTS = [[1.0, -2.0, 0.5, 4.0], [0.75, -0.25, 2.0], [-1.5, 3.0]]
ZEROS = [[0.0] * s[0] for s in SHAPES]
NO_GRAD = [[0.0] * s[0] for s in SHAPES]
BETAS = (0.9, 0.999)
TINY_G, TINY_EPS = 1e-7, 1e-4
NAN_LR = float("nan")
DECAY_LR, DECAY_WD = 0.1, 0.5
ADAM_STATE = ("m_buffers", "v_buffers")
SGD_STATE = ("momentum_buffers",)


def _steps(*grads_per_step, set_at=None):
    steps = [{"grads": g} for g in grads_per_step]
    if set_at:
        step, values = set_at
        steps[step - 1]["set"] = values
    return steps


def _traj(cls, kwargs, params, steps, state, record_grads=False):
    return {
        "kind": "trajectory",
        "cls": cls,
        "kwargs": kwargs,
        "params": params,
        "steps": steps,
        "state": list(state),
        "record_grads": record_grads,
    }


def _dtypes(cls: str, kwargs: dict, state) -> dict:
    """Float32 parameters stepped with float32 gradients ("dtypes"), then with float64 gradients and an
    ``np.float64`` lr ("dtypes-float64"): state or parameters must stay float32 either way."""
    plain = {
        "kind": "dtypes",
        "cls": cls,
        "kwargs": kwargs,
        "params": WEIGHTS,
        "grads": [GRADS, GRADS],
        "state": list(state),
    }
    return {"dtypes": plain, "dtypes-float64": {**plain, "grad_dtype": "float64", "numpy_scalars": ["lr"]}}


def _nan_validation(cls: str) -> dict:
    """lr=NaN next to lr=-1: a range check alone (``lr < 0``) rejects the second and lets NaN through."""
    return {"kind": "validation", "cls": cls, "bad": [{"lr": NAN_LR}, {"lr": -1.0}]}


def _adam_family(cls: str) -> dict:
    """Adam's moment scenarios, run on ``cls`` (Adam, or AdamW without decay: then the two agree)."""
    wd = {"weight_decay": 0.0} if cls == "AdamW" else {}
    return {
        # lr=1 from zero weights: the first update is -u; lr set to 0 for step 2: nothing may move
        "first-step": _traj(
            cls,
            {"lr": 1.0, "betas": list(BETAS), "eps": 1e-8, **wd},
            ZEROS,
            _steps(GRADS, GRADS, set_at=(2, {"lr": 0.0})),
            ADAM_STATE,
        ),
        # g*g far below eps: where eps sits decides the size of the step
        "tiny-v": _traj(
            cls,
            {"lr": 1.0, "eps": TINY_EPS, **wd},
            [[0.0] * 4],
            _steps([[TINY_G, -TINY_G, 2 * TINY_G, -3 * TINY_G]]),
            ADAM_STATE,
        ),
        "none-grad": _traj(
            cls,
            {"lr": 0.1, "weight_decay": 0.1},
            WEIGHTS[:2],
            _steps([GRADS[0], None], [GRADS[0], None]),
            ADAM_STATE,
            record_grads=True,
        ),
        **_dtypes(cls, {"lr": 0.01, **wd}, ADAM_STATE),
        "validation-nan": _nan_validation(cls),
    }


def signature_runs(component: str) -> dict:
    """{(class run, name): scenario} for one component's probe."""
    if component == "Optimizer":
        return {("Optimizer", "zero-grad"): {"kind": "zero_grad", "params": WEIGHTS, "grads": GRADS}}
    if component == "SGD":
        runs = {
            "first-step": _traj(
                "SGD", {"lr": 1.0, "momentum": 0.9}, ZEROS, _steps(GRADS, GRADS, set_at=(2, {"lr": 0.0})), SGD_STATE
            ),
            "decay": _traj(
                "SGD",
                {"lr": DECAY_LR, "momentum": 0.9, "weight_decay": DECAY_WD},
                WEIGHTS,
                _steps(NO_GRAD),
                SGD_STATE,
                record_grads=True,
            ),
            "none-grad": _traj(
                "SGD",
                {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1},
                WEIGHTS[:2],
                _steps([GRADS[0], None], [GRADS[0], None]),
                SGD_STATE,
                record_grads=True,
            ),
            "aliasing": {"kind": "aliasing", "kwargs": {"lr": 0.1, "momentum": 0.9}, "params": WEIGHTS, "grads": GRADS},
            **_dtypes("SGD", {"lr": 0.01, "momentum": 0.9}, SGD_STATE),
            "validation-nan": _nan_validation("SGD"),
        }
        return {("SGD", k): v for k, v in runs.items()}

    def decay(cls):
        return _traj(
            cls, {"lr": DECAY_LR, "weight_decay": DECAY_WD}, WEIGHTS, _steps(NO_GRAD), ADAM_STATE, record_grads=True
        )

    runs = {("Adam", k): v for k, v in _adam_family("Adam").items()}
    runs[("Adam", "decay")] = decay("Adam")
    if component == "AdamW":
        runs.update({("AdamW", k): v for k, v in _adam_family("AdamW").items()})
        runs[("AdamW", "decay")] = decay("AdamW")
    return runs


def signature_check_id(cls: str, name: str) -> str:
    return f"sig-{cls.lower()}-{name}"  # judge.output accepts check ids matching [a-z0-9-]+


# -- reading observations ------------------------------------------------------------------------


def _close(got, want, rtol=2e-3) -> bool:
    if got is None:
        return False
    want = np.asarray(want, np.float64)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rtol, atol=1e-12 + rtol * 1e-6))


def _first_updates(run: Run, name="first-step") -> list:
    """u per parameter from a lr=1 step on zero weights: params after step 1 are -u."""
    out = []
    for j in range(len(SHAPES)):
        value = run.get(name, f"step 1: params[{j}]")
        out.append(None if value is None else -value)
    return out


def _adam_u(g, t=1, b1=BETAS[0], b2=BETAS[1], eps=1e-8, m_scale=None, v_scale=None, correct=True):
    g = np.asarray(g, np.float64)
    m = (1 - b1 if m_scale is None else m_scale) * g
    v = (1 - b2 if v_scale is None else v_scale) * g * g
    c1, c2 = (1 - b1**t, 1 - b2**t) if correct else (1.0, 1.0)
    return (m / c1) / (np.sqrt(v / c2) + eps)


# -- predicates: each says one thing the code does ------------------------------------------------


def grads_kept_after_zero_grad(run: Run) -> bool:
    """zero_grad() left a gradient that is not None."""
    labels = [f"params[{j}].grad after zero_grad()" for j in range(len(SHAPES))]
    return any(run.text("zero-grad", label) != NONE for label in labels if label in run.runs.get("zero-grad", {}))


def velocity_is_damped(run: Run) -> bool:
    """The first velocity is (1 - momentum) * g instead of g."""
    return _close(run.get("first-step", "step 1: momentum_buffers[0]"), 0.1 * np.array(GRADS[0]))


def steps_along_g_plus_mu_v(run: Run) -> bool:
    """The first SGD step moves by lr * (g + momentum * v) (Nesterov)."""
    return _close(run.get("first-step", "step 1: params[0]"), -1.9 * np.array(GRADS[0]))


def lr_change_ignored(run: Run) -> bool:
    """Parameters moved in a step after lr was set to 0."""
    first, second = run.get("first-step", "step 1: params[0]"), run.get("first-step", "step 2: params[0]")
    return (
        first is not None
        and second is not None
        and first.shape == second.shape
        and not np.allclose(first, second, rtol=1e-6, atol=1e-9)
    )


def _decayed(run: Run) -> np.ndarray | None:
    return run.get("decay", "step 1: params[0]")


def sgd_decay_has_no_effect(run: Run) -> bool:
    """With a zero gradient and weight decay, the weights did not move."""
    return _close(_decayed(run), WEIGHTS[0], rtol=1e-6)


def decay_skips_velocity(run: Run) -> bool:
    """The weights decayed but the velocity stayed zero: decay added after the momentum update."""
    velocity = run.get("decay", "step 1: momentum_buffers[0]")
    return (
        velocity is not None
        and velocity.shape == (4,)
        and np.allclose(velocity, 0)
        and not _close(_decayed(run), WEIGHTS[0], rtol=1e-6)
    )


def gradient_changed_by_step(run: Run) -> bool:
    """step() wrote into param.grad (the zero gradient came back non-zero)."""
    grad = run.get("decay", "step 1: params[0].grad after step()")
    return grad is not None and grad.shape == (4,) and not np.allclose(grad, 0)


def none_grad_used(run: Run) -> bool:
    """A parameter whose grad is None moved, got state or a gradient, or made step() crash."""
    if run.raised("none-grad") and not run.raised("first-step"):
        return True
    moved = run.get("none-grad", "step 1: params[1]")
    if moved is not None and moved.shape == (3,) and not np.allclose(moved, WEIGHTS[1], rtol=1e-7, atol=0):
        return True
    grad_text = run.text("none-grad", "step 1: params[1].grad after step()")
    state = [run.runs.get("none-grad", {}).get(f"step 1: {attr}[1]") for attr in ("momentum_buffers", "m_buffers")]
    return (grad_text is None and "step 1: params[1].grad after step()" in run.runs.get("none-grad", {})) or any(
        s is not None and s.dtype.kind != "U" for s in state
    )


def dtype_changed(run: Run) -> bool:
    """State or parameters are not float32 after steps on float32 data, or on float64 gradients with an np.float64 lr."""
    texts = [
        str(v)
        for name in ("dtypes", "dtypes-float64")
        for k, v in run.runs.get(name, {}).items()
        if k.endswith(" dtype")
    ]
    return any(t != "float32" for t in texts)


def nan_passes_range_check(run: Run) -> bool:
    """lr=-1 raised ValueError but lr=NaN constructed: the check compares (``lr < 0``) and NaN compares False."""
    return (
        run.text("validation-nan", f"{run.cls}(lr=-1.0)") == "ValueError"
        and run.text("validation-nan", f"{run.cls}(lr=nan)") == "no error"
    )


def state_shared(run: Run) -> bool:
    """get_momentum_state() hands out, or set_momentum_state() keeps, the live arrays."""
    return any(
        run.get("aliasing", label) is not None and bool(run.get("aliasing", label).reshape(-1)[0])
        for label in (
            "saved state shares memory with the buffers",
            "loaded state shares memory with the caller's arrays",
        )
    )


def first_update_without_correction(run: Run) -> bool:
    """The first Adam update is (1-b1)g / sqrt((1-b2)g^2): m and v used without bias correction."""
    return _close(_first_updates(run)[0], _adam_u(GRADS[0], correct=False))


def corrections_off_by_one(run: Run) -> bool:
    """The first update uses corrections for step 0 (a division by zero) or step 2."""
    u = _first_updates(run)[0]
    if u is None:
        return "ZeroDivision" in (run.raised("first-step") or "")
    return not np.all(np.isfinite(u)) or _close(u, _adam_u(GRADS[0], t=2))


def step_counted_per_parameter(run: Run) -> bool:
    """One step() on three parameters left step_count at 3, or later parameters used t = 2, 3."""
    count = run.get("first-step", "step 1: step_count")
    if count is not None and count.size == 1 and float(count.reshape(-1)[0]) == len(SHAPES):
        return True
    u = _first_updates(run)
    return _close(u[0], _adam_u(GRADS[0])) and _close(u[1], _adam_u(GRADS[1], t=2))


def eps_inside_root(run: Run) -> bool:
    """With g*g far below eps, the step is g / sqrt(eps) in size, not g / eps: eps sits inside the root."""
    u = run.get("tiny-v", "step 1: params[0]")
    if u is None or u.shape != (4,) or not np.all(np.isfinite(u)):
        return False
    scale = float(np.max(np.abs(u))) * TINY_EPS / (3 * TINY_G)  # ~1 outside the root, ~sqrt(eps) inside
    return 0 < scale < 0.03  # 0.1 if bias correction is also missing


def moment_without_one_minus_beta(run: Run) -> bool:
    """After one step m == g (not (1-b1) g) or v == g^2 (not (1-b2) g^2)."""
    g = np.array(GRADS[0])
    return _close(run.get("first-step", "step 1: m_buffers[0]"), g) or _close(
        run.get("first-step", "step 1: v_buffers[0]"), g * g
    )


def betas_used_the_other_way(run: Run) -> bool:
    """After one step m == (1-b2) g and v == (1-b1) g^2."""
    g = np.array(GRADS[0])
    return _close(run.get("first-step", "step 1: m_buffers[0]"), (1 - BETAS[1]) * g) and _close(
        run.get("first-step", "step 1: v_buffers[0]"), (1 - BETAS[0]) * g * g
    )


def shrinks_weights(run: Run) -> bool:
    """With a zero gradient, the weights shrank by exactly 1 - lr*weight_decay (decoupled decay)."""
    return _close(_decayed(run), np.array(WEIGHTS[0]) * (1 - DECAY_LR * DECAY_WD), rtol=1e-5)


def adam_decay_has_no_effect(run: Run) -> bool:
    """With a zero gradient and weight decay, Adam's (or AdamW's) weights did not move."""
    return _close(_decayed(run), WEIGHTS[0], rtol=1e-6)


def decay_through_gradient(run: Run) -> bool:
    """With a zero gradient, AdamW still took a full adaptive step: the decay went through the moments."""
    return _close(_decayed(run), np.array(WEIGHTS[0]) - DECAY_LR * np.sign(WEIGHTS[0]), rtol=1e-3)


def shrinks_without_lr(run: Run) -> bool:
    """With a zero gradient, AdamW shrank the weights by 1 - weight_decay."""
    return _close(_decayed(run), np.array(WEIGHTS[0]) * (1 - DECAY_WD), rtol=1e-5)


ADAM_MOMENTS = (
    "no-bias-correction",
    "step-count-off-by-one",
    "step-count-per-param",
    "eps-inside-sqrt",
    "missing-one-minus-beta",
    "betas-swapped",
    "none-grad-not-skipped",
    "lr-cached",
    "state-dtype",
    "nan-accepted",
)

# slug -> {component: predicates}; any predicate firing names the slug.
SIGNATURES: dict = {
    "zero-grad": {"Optimizer": (grads_kept_after_zero_grad,)},
    "momentum-dampening": {"SGD": (velocity_is_damped,)},
    "nesterov": {"SGD": (steps_along_g_plus_mu_v,)},
    "weight-decay-ignored": {
        "SGD": (sgd_decay_has_no_effect,),
        "Adam": (adam_decay_has_no_effect,),
        "AdamW": (adam_decay_has_no_effect,),
    },
    "weight-decay-after-momentum": {"SGD": (decay_skips_velocity,)},
    "gradient-mutated": {"SGD": (gradient_changed_by_step,), "Adam": (gradient_changed_by_step,)},
    "none-grad-not-skipped": {"SGD": (none_grad_used,), "Adam": (none_grad_used,)},
    "state-aliasing": {"SGD": (state_shared,)},
    "lr-cached": {"SGD": (lr_change_ignored,), "Adam": (lr_change_ignored,)},
    "state-dtype": {"SGD": (dtype_changed,), "Adam": (dtype_changed,)},
    "nan-accepted": {"SGD": (nan_passes_range_check,), "Adam": (nan_passes_range_check,)},
    "no-bias-correction": {"Adam": (first_update_without_correction,)},
    "step-count-off-by-one": {"Adam": (corrections_off_by_one,)},
    "step-count-per-param": {"Adam": (step_counted_per_parameter,)},
    "eps-inside-sqrt": {"Adam": (eps_inside_root,)},
    "missing-one-minus-beta": {"Adam": (moment_without_one_minus_beta,)},
    "betas-swapped": {"Adam": (betas_used_the_other_way,)},
    "decoupled-decay-in-adam": {"Adam": (shrinks_weights,)},
    "coupled-decay": {"AdamW": (decay_through_gradient,)},
    "decay-missing-lr": {"AdamW": (shrinks_without_lr,)},
}

# AdamW's probe also runs Adam's moment scenarios on Adam: a slug firing on both is inherited.
INHERITS = {"AdamW": ("Adam", ADAM_MOMENTS)}
