"""The reference optimizers against torch.optim, step by step (torch is a test-only dependency)."""

import numpy as np
import pytest

from content.m07_optimizers.solution.optimizers import SGD, Adam, AdamW
from tinytorch.core.tensor import Tensor

torch = pytest.importorskip("torch")

SHAPES = [(4, 3), (7,), (2, 2, 3)]
STEPS = 12


def run_pair(make_ours, make_torch, seed=0, grad_scale=1.0, absolute=False):
    """Max relative (or absolute) error between our parameters and torch's over every step."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ours = [Tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt, topt = make_ours(ours), make_torch(theirs)
    worst = 0.0
    for _ in range(STEPS):
        grads = [(rng.standard_normal(s) * grad_scale).astype(np.float32) for s in SHAPES]
        for p, t, g in zip(ours, theirs, grads):
            p.grad = g.copy()
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        for p, t in zip(ours, theirs):
            expected = t.detach().numpy()
            scale = 1.0 if absolute else np.abs(expected) + 1e-3
            worst = max(worst, float(np.max(np.abs(p.data - expected) / scale)))
            assert p.data.dtype == np.float32
    return worst


CASES = {
    "sgd": (lambda p: SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd-momentum-decay": (
        lambda p: SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
    ),
    "adam": (lambda p: Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01, foreach=False)),
    "adam-l2": (
        lambda p: Adam(p, lr=0.01, betas=(0.8, 0.95), weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.95), weight_decay=0.1, foreach=False),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_matches_torch_within_float32_rounding(name):
    worst = run_pair(*CASES[name])
    assert worst < 1e-5, f"{name}: max relative error {worst:.2e} over {STEPS} steps"


def test_adam_small_gradients_match_torch():
    worst = run_pair(*CASES["adam"], grad_scale=1e-4)
    assert worst < 1e-5


def test_adamw_differs_from_torch_only_by_the_documented_ordering():
    """Ours: (p - lr*u)(1 - lr*wd). Torch: p(1 - lr*wd) - lr*u. The gap is lr^2*wd*u per step."""
    lr, wd = 0.01, 0.1
    worst = run_pair(
        lambda p: AdamW(p, lr=lr, weight_decay=wd),
        lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=wd, foreach=False),
        absolute=True,
    )
    per_step_gap = lr * lr * wd  # |u| is at most about 1 for Adam
    assert worst <= STEPS * per_step_gap * 1.5, f"gap {worst:.2e} exceeds the ordering difference"
    assert worst > STEPS * per_step_gap * 0.05, "the orderings differ, so the gap must show"


def test_adamw_matches_the_spec_formula_exactly():
    """Float64 spec formula, step by step: theta <- (theta - lr*u)(1 - lr*wd)."""
    rng = np.random.default_rng(3)
    lr, wd, b1, b2, eps = 0.05, 0.3, 0.9, 0.999, 1e-8
    theta = rng.standard_normal(50).astype(np.float32)
    p = Tensor(theta.copy(), requires_grad=True)
    opt = AdamW([p], lr=lr, weight_decay=wd)
    ref, m, v = theta.astype(np.float64), np.zeros(50), np.zeros(50)
    for t in range(1, 11):
        g = rng.standard_normal(50).astype(np.float32)
        p.grad = g
        opt.step()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g.astype(np.float64) ** 2
        u = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        ref = (ref - lr * u) * (1 - lr * wd)
        assert np.allclose(p.data, ref, rtol=2e-6, atol=1e-6), f"step {t}"
