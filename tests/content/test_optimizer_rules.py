"""The behaviour the spec implies, made explicit: the edge cases of issue 2, item 2."""

import math
import re

import numpy as np
import pytest

from content.m07_optimizers.solution.optimizers import SGD, Adam, AdamW, Optimizer, parameter_bytes, state_bytes
from tinytorch.core.tensor import Tensor

ALL = [
    lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1),
    lambda p: Adam(p, lr=0.1, weight_decay=0.1),
    lambda p: AdamW(p, lr=0.1, weight_decay=0.1),
]


def params(*shapes, dtype=np.float32):
    rng = np.random.default_rng(0)
    return [Tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]


def state_of(opt, shape) -> list:
    """Copies of the optimizer's state arrays of one shape, in attribute order."""
    return [
        x.copy()
        for v in vars(opt).values()
        if isinstance(v, list)
        for x in v
        if isinstance(x, np.ndarray) and x.shape == shape
    ]


@pytest.mark.parametrize("make", ALL)
def test_none_grad_is_skipped_and_its_state_untouched(make):
    a, b = params((3,), (2, 2))
    opt = make([a, b])
    a.grad, b.grad = np.ones(3, np.float32), np.ones((2, 2), np.float32)
    opt.step()
    b_before, b_state_before = b.data.copy(), state_of(opt, (2, 2))
    b.grad = None
    a.grad = np.ones(3, np.float32)
    opt.step()
    assert np.array_equal(b.data, b_before)
    after = state_of(opt, (2, 2))
    assert len(after) == len(b_state_before) > 0
    assert all(np.array_equal(x, y) for x, y in zip(after, b_state_before))


@pytest.mark.parametrize("make", ALL)
def test_step_never_mutates_the_gradient(make):
    (a,) = params((5,))
    grad = np.linspace(-1, 1, 5).astype(np.float32)
    a.grad = grad.copy()
    opt = make([a])
    for _ in range(3):
        opt.step()
    assert np.array_equal(a.grad, grad)


@pytest.mark.parametrize("make", ALL)
def test_tensor_and_ndarray_gradients_give_the_same_result(make):
    (a,), (b,) = params((4,)), params((4,))
    g = np.array([0.1, -0.2, 0.3, -0.4], np.float32)
    oa, ob = make([a]), make([b])
    a.grad, b.grad = g.copy(), Tensor(g.copy())
    oa.step()
    ob.step()
    assert np.array_equal(a.data, b.data)


@pytest.mark.parametrize("make", ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parameters_and_state_keep_the_parameter_dtype(make, dtype):
    (a,) = params((6,), dtype=dtype)
    opt = make([a])
    a.grad = np.full(6, 0.5, np.float64)  # a float64 gradient must not upcast a float32 model
    opt.step()
    assert a.data.dtype == dtype
    buffers = [x for v in vars(opt).values() if isinstance(v, list) for x in v if isinstance(x, np.ndarray)]
    assert buffers and all(x.dtype == dtype for x in buffers)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_learning_rate_is_read_at_every_step(cls):
    (a,) = params((3,))
    opt = cls([a], lr=0.1)
    a.grad = np.ones(3, np.float32)
    opt.step()
    opt.lr = 0.0
    before = a.data.copy()
    if cls is AdamW:
        opt.weight_decay = 0.0
    opt.step()
    assert np.array_equal(a.data, before), "with lr set to 0 the next step must not move the parameter"


@pytest.mark.parametrize(
    "cls,kwargs,word",
    [
        (SGD, {"lr": -0.1}, "lr"),
        (SGD, {"lr": math.nan}, "lr"),
        (SGD, {"lr": math.inf}, "lr"),
        (SGD, {"momentum": 1.0}, "momentum"),
        (SGD, {"momentum": -0.1}, "momentum"),
        (SGD, {"weight_decay": -1e-3}, "weight_decay"),
        (Adam, {"betas": (1.0, 0.999)}, "betas[0]"),
        (Adam, {"betas": (0.9, 1.5)}, "betas[1]"),
        (Adam, {"betas": (0.9,)}, "pair"),
        (Adam, {"eps": -1e-8}, "eps"),
        (Adam, {"lr": "fast"}, "number"),
        (AdamW, {"weight_decay": -0.01}, "weight_decay"),
    ],
)
def test_invalid_hyperparameters_say_which_and_why(cls, kwargs, word):
    with pytest.raises(ValueError, match=re.escape(word)) as info:
        cls(params((2,)), **kwargs)
    assert "got" in str(info.value)


def test_empty_parameter_list_is_rejected_with_advice():
    with pytest.raises(ValueError, match="model.parameters"):
        Optimizer([])


def test_zero_grad_sets_none_and_step_count_counts_calls():
    a, b = params((2,), (3,))
    opt = SGD([a, b], lr=0.1)
    a.grad, b.grad = np.ones(2, np.float32), None
    opt.step()
    opt.step()
    assert opt.step_count == 2
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_momentum_state_is_copied_out_and_in():
    a, b = params((2,), (3,))
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    a.grad, b.grad = np.ones(2, np.float32), None
    opt.step()
    saved = opt.get_momentum_state()
    assert saved[1] is None and saved[0] is not opt.momentum_buffers[0]
    opt.step()
    assert np.array_equal(saved[0], [1.0, 1.0])  # the checkpoint did not move
    fresh = SGD([a, b], lr=0.1, momentum=0.9)
    fresh.set_momentum_state(saved)
    saved[0] += 100  # the caller's arrays change afterwards
    assert np.array_equal(fresh.momentum_buffers[0], [1.0, 1.0])
    assert fresh.momentum_buffers[0].dtype == np.float32
    fresh.set_momentum_state(None)
    assert fresh.momentum_buffers == [None, None]
    with pytest.raises(ValueError, match="entries"):
        fresh.set_momentum_state([np.zeros(2)])
    with pytest.raises(ValueError, match="shape"):
        fresh.set_momentum_state([np.zeros(2), np.zeros(4)])
    assert SGD([a], lr=0.1).get_momentum_state() is None


def test_memory_convention_params_plus_state():
    for make, expected in (
        (lambda p: SGD(p, lr=0.1), 1),
        (lambda p: SGD(p, lr=0.1, momentum=0.9), 2),
        (lambda p: Adam(p), 3),
        (lambda p: AdamW(p), 3),
    ):
        ps = params((100, 10), (10,))
        opt = make(ps)
        assert state_bytes(opt) == parameter_bytes(ps)  # nothing allocated before the first step
        for p in ps:
            p.grad = np.ones_like(p.data)
        opt.step()
        assert state_bytes(opt) == expected * parameter_bytes(ps)


# -- issue 15: NaN/inf, betas, duplicate parameters, float64 inputs --------------------------------

NON_FINITE = [math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf")]


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
@pytest.mark.parametrize(
    "cls,name",
    [
        (SGD, "lr"),
        (SGD, "momentum"),
        (SGD, "weight_decay"),
        (Adam, "lr"),
        (Adam, "eps"),
        (Adam, "weight_decay"),
        (AdamW, "lr"),
        (AdamW, "eps"),
        (AdamW, "weight_decay"),
    ],
)
def test_nan_and_inf_hyperparameters_are_rejected_naming_the_argument(cls, name, value):
    """`lr < 0` is False for NaN (and for +inf): the range check alone would let them through."""
    with pytest.raises(ValueError, match=rf"^{name} must be finite"):
        cls(params((2,)), **{name: value})


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize(
    "betas",
    [
        (math.nan, 0.999),
        (0.9, math.nan),
        (math.inf, 0.999),
        (0.9, -math.inf),
        (1.0, 0.999),
        (0.9, 1.0),
        (-0.1, 0.9),
        (0.9,),
        (0.9, 0.99, 0.999),
        0.9,
        "ab",
    ],
    ids=repr,
)
def test_betas_must_be_two_finite_numbers_in_0_1(cls, betas):
    with pytest.raises(ValueError, match=r"^betas"):
        cls(params((2,)), betas=betas)


@pytest.mark.parametrize("make", [Optimizer, *ALL])
def test_the_same_parameter_twice_is_rejected_naming_params(make):
    a, b = params((2,), (3,))
    with pytest.raises(ValueError, match=r"^params\[2\] is a parameter already in params"):
        make([a, b, a])


def test_equal_but_distinct_parameters_are_two_parameters_each_stepped_once():
    a, b = (Tensor(np.ones(2, np.float32), requires_grad=True) for _ in range(2))
    opt = SGD([a, b], lr=0.1)
    a.grad, b.grad = np.ones(2, np.float32), np.ones(2, np.float32)
    opt.step()
    assert np.allclose(a.data, 0.9) and np.allclose(b.data, 0.9)


MAKERS_WITH_LR = [
    lambda p, lr: SGD(p, lr=lr, momentum=0.9, weight_decay=0.1),
    lambda p, lr: SGD(p, lr=lr),
    lambda p, lr: Adam(p, lr=lr, weight_decay=0.1),
    lambda p, lr: AdamW(p, lr=lr, weight_decay=0.1),
]


@pytest.mark.parametrize("make", MAKERS_WITH_LR)
def test_float64_gradients_and_a_numpy_lr_keep_float32_and_the_values(make):
    (a,), (b,) = params((2, 3)), params((2, 3))
    fast, plain = make([a], np.float64(0.05)), make([b], 0.05)
    g = np.linspace(-1, 1, 6).reshape(2, 3)  # float64
    for _ in range(3):
        a.grad, b.grad = g.copy(), g.astype(np.float32)
        fast.step()
        plain.step()
    assert a.data.dtype == np.float32
    buffers = [x for v in vars(fast).values() if isinstance(v, list) for x in v if isinstance(x, np.ndarray)]
    assert all(x.dtype == np.float32 for x in buffers)
    assert np.allclose(a.data, b.data, rtol=1e-5, atol=1e-7)
