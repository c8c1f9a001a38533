"""Module 07's scenario kinds: how the probe drives an optimizer class and what it records.

A probe extension: copied into the sandbox beside the probe package and imported
there by name (the spec's ``extensions``), so it imports only the probe, numpy and
the public tinytorch package; never the solution or the reference data.
"""

from __future__ import annotations

import numpy as np

from autograder.probe.markers import mark
from autograder.probe.record import MEMORY, Recorder, attempt, describe
from autograder.probe.run import register
from autograder.probe.structure import dtype_name, reachable_buffers

_array, _float64, _ndarray, _isinstance, _str, _len, _id = np.array, np.float64, np.ndarray, isinstance, str, len, id
# The methods the probe calls on a student's class, the only method names a marker may carry.
METHODS = ("__init__", "step", "zero_grad", "get_momentum_state", "set_momentum_state", "has_momentum")


def tensor(values, dtype="float32"):
    from tinytorch.core.tensor import Tensor

    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


def as_state(value, dtype):
    if _isinstance(value, list):
        return [None if v is None else np.array(v, dtype=dtype) for v in value]
    return value


def constructor_kwargs(spec: dict) -> dict:
    """The scenario's keyword arguments; those named in ``numpy_scalars`` as ``np.float64`` (JSON has no such type)."""
    scalars = spec.get("numpy_scalars", ())
    return {k: _float64(v) if k in scalars else v for k, v in spec["kwargs"].items()}


def trajectory(ns: dict, spec: dict, rec: Recorder) -> None:
    """Step an optimizer through given gradients; record parameters and state after every step."""
    dtype = spec.get("dtype", "float32")
    params = [tensor(p, dtype) for p in spec["params"]]
    holder = {}
    mark(spec["cls"], "__init__")
    if not attempt(
        rec, "constructing the optimizer", lambda: holder.update(opt=ns[spec["cls"]](params, **spec["kwargs"]))
    ):
        return
    opt = holder["opt"]
    for attr, value in spec.get("initial_state", {}).items():
        setattr(opt, attr, as_state(value, dtype))
    for k, step in enumerate(spec["steps"], 1):
        for attr, value in step.get("set", {}).items():
            setattr(opt, attr, value)
        grads = [None if g is None else np.array(g, dtype=dtype) for g in step["grads"]]
        for p, g in zip(params, grads):
            p.grad = None if g is None else (tensor(g, dtype) if step.get("tensor_grads") else g.copy())
            if p.grad is not None and step.get("tensor_grads"):
                p.grad.requires_grad = False
        mark(spec["cls"], "step", k)
        if not attempt(rec, f"step {k}: step()", opt.step):
            return
        for j, p in enumerate(params):
            rec.value(f"step {k}: params[{j}]", p.data)
        for attr in spec.get("state", ()):
            buffers = getattr(opt, attr, "<missing attribute>")
            if _isinstance(buffers, _str) or not hasattr(buffers, "__len__"):
                rec.text(f"step {k}: {attr}", buffers if _isinstance(buffers, _str) else "<not a list>")
                continue
            for j in range(_len(params)):
                rec.value(f"step {k}: {attr}[{j}]", buffers[j] if j < _len(buffers) else "<missing>")
        if spec.get("record_step_count", True):
            rec.value(f"step {k}: step_count", getattr(opt, "step_count", None))
        if spec.get("record_grads"):
            for j, p in enumerate(params):
                rec.value(f"step {k}: params[{j}].grad after step()", p.grad)


def checkpoint(ns: dict, spec: dict, rec: Recorder) -> None:
    """get_momentum_state / set_momentum_state: copies out, copies in, rejects bad shapes."""
    params = [tensor(p) for p in spec["params"]]
    mark("SGD", "__init__")
    opt = ns["SGD"](params, **spec["kwargs"])
    feed = lambda: [setattr(p, "grad", np.array(g, np.float32)) for p, g in zip(params, spec["grads"])]  # noqa: E731
    for k in range(spec["steps_before"]):
        feed()
        mark("SGD", "step", k + 1)
        opt.step()
    mark("SGD", "get_momentum_state")
    saved = opt.get_momentum_state()
    rec.value("saved state is a list", _isinstance(saved, list))
    for j in range(_len(params)):
        rec.value(f"checkpoint[{j}] when saved", saved[j] if saved is not None else None)
    feed()
    mark("SGD", "step", spec["steps_before"] + 1)
    opt.step()
    for j in range(_len(params)):
        rec.value(f"checkpoint[{j}] after one more step()", saved[j] if saved is not None else None)
    # restore into a fresh optimizer on fresh parameters, then step both from the same point
    fresh_params = [tensor(p) for p in spec["params"]]
    mark("SGD", "__init__")
    fresh = ns["SGD"](fresh_params, **spec["kwargs"])
    given = [None if s is None else np.array(s, copy=True) for s in saved]
    mark("SGD", "set_momentum_state")
    fresh.set_momentum_state(given)
    for g in given:
        if g is not None:
            g += 1000.0  # the caller's arrays change after loading
    for p, g in zip(fresh_params, spec["grads"]):
        p.grad = np.array(g, np.float32)
    mark("SGD", "step", 1)
    fresh.step()
    for j, p in enumerate(fresh_params):
        rec.value(f"params[{j}] after restoring and one step()", p.data)
    for label, bad in (
        ("a state with too few entries", saved[:-1]),
        ("a state with a wrong shape", [np.zeros((7, 7), np.float32)] + list(saved[1:])),
    ):
        try:
            mark("SGD", "set_momentum_state")
            fresh.set_momentum_state(bad)
            rec.text(f"set_momentum_state({label})", "no error")
        except ValueError:
            rec.text(f"set_momentum_state({label})", "ValueError")
        except Exception as err:
            rec.text(f"set_momentum_state({label})", describe(err))
    mark("SGD", "__init__")
    plain = ns["SGD"]([tensor(p) for p in spec["params"]], lr=0.1)
    mark("SGD", "has_momentum")
    rec.value("has_momentum() without momentum", plain.has_momentum())
    rec.value("has_momentum() with momentum", opt.has_momentum())
    mark("SGD", "get_momentum_state")
    rec.value("get_momentum_state() without momentum", plain.get_momentum_state())


def interface(ns: dict, spec: dict, rec: Recorder) -> None:
    """The Optimizer base class: params list, step_count, abstract step, empty params rejected."""
    params = [tensor(p) for p in spec["params"]]
    mark("Optimizer", "__init__")
    opt = ns["Optimizer"](iter(params))
    rec.value("params is a list", _isinstance(opt.params, list))
    rec.value(
        "params kept in order", all(a is b for a, b in zip(opt.params, params)) and _len(opt.params) == _len(params)
    )
    rec.value("step_count at start", opt.step_count)
    try:
        ns["Optimizer"]([])
        rec.text("Optimizer([])", "no error")
    except ValueError:
        rec.text("Optimizer([])", "ValueError")
    for label, listed in (
        ("the same parameter twice", params + params[:1]),
        ("equal but distinct parameters", [tensor(spec["params"][0]), tensor(spec["params"][0])]),
    ):
        try:
            ns["Optimizer"](listed)
            rec.text(f"Optimizer({label})", "no error")
        except ValueError:
            rec.text(f"Optimizer({label})", "ValueError")


def zero_grad(ns: dict, spec: dict, rec: Recorder) -> None:
    params = [tensor(p) for p in spec["params"]]
    mark("Optimizer", "__init__")
    opt = ns["Optimizer"](params)
    for p, g in zip(params, spec["grads"]):
        p.grad = np.array(g, np.float32)
    mark("Optimizer", "zero_grad")
    opt.zero_grad()
    for j, p in enumerate(params):
        rec.value(f"params[{j}].grad after zero_grad()", p.grad)
    for j, p in enumerate(params):
        rec.value(f"params[{j}] after zero_grad()", p.data)


def abstract_step(ns: dict, spec: dict, rec: Recorder) -> None:
    mark("Optimizer", "__init__")
    opt = ns["Optimizer"]([tensor(p) for p in spec["params"]])
    try:
        mark("Optimizer", "step", 1)
        opt.step()
        rec.text("Optimizer.step()", "no error")
    except NotImplementedError:
        rec.text("Optimizer.step()", "NotImplementedError")


def defaults(ns: dict, spec: dict, rec: Recorder) -> None:
    """Hyperparameters a class sets when none are given."""
    mark(spec["cls"], "__init__")
    opt = ns[spec["cls"]]([tensor([1.0, 2.0])])
    for attr in spec["attributes"]:
        rec.value(f"{spec['cls']}() default {attr}", getattr(opt, attr, None))


def memory(ns: dict, spec: dict, rec: Recorder) -> None:
    """The buffers an optimizer holds before the first step and after some; the real dtypes of its state."""
    dtype = spec.get("dtype", "float32")
    grad_dtype = spec.get("grad_dtype", dtype)
    params = [tensor(p, dtype) for p in spec["params"]]
    mark(spec["cls"], "__init__")
    opt = ns[spec["cls"]](params, **constructor_kwargs(spec))
    grads = []

    def buffers():
        skip = {_id(g) for g in grads}
        for p in params:
            grad = p.__dict__.get("grad")
            skip |= {_id(grad), _id(getattr(grad, "data", None))}
        return _array(reachable_buffers(opt, skip), dtype=_float64).reshape(-1, 2)

    if spec.get("before_first_step"):
        rec.value("memory before the first step" + MEMORY, buffers())
    for k in range(spec["steps"]):
        grads[:] = [np.full(p.data.shape, 0.01, grad_dtype) for p in params]
        for p, g in zip(params, grads):
            p.grad = g
        mark(spec["cls"], "step", k + 1)
        opt.step()
    rec.value(f"memory after {spec['steps']} steps" + MEMORY, buffers())
    for j, p in enumerate(params):
        rec.text(f"params[{j}] dtype", dtype_name(p.__dict__.get("data")))
    for attr in spec.get("state", ()):
        held = getattr(opt, attr, [])
        for j in range(_len(params)):
            rec.text(f"{attr}[{j}] dtype", dtype_name(held[j]) if j < _len(held) else "<missing>")


def validation(ns: dict, spec: dict, rec: Recorder) -> None:
    """Invalid hyperparameters raise ValueError (a parameter listed twice: ``interface``)."""
    for kwargs in spec["bad"]:
        label = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        kwargs = {k: tuple(v) if _isinstance(v, list) else v for k, v in kwargs.items()}
        try:
            mark(spec["cls"], "__init__")
            ns[spec["cls"]]([tensor([1.0, 2.0])], **kwargs)
            rec.text(f"{spec['cls']}({label})", "no error")
        except ValueError:
            rec.text(f"{spec['cls']}({label})", "ValueError")
        except Exception as err:
            rec.text(f"{spec['cls']}({label})", describe(err))


def dtypes(ns: dict, spec: dict, rec: Recorder) -> None:
    """The dtypes of float32 parameters and state after steps (gradients of ``grad_dtype``, float32 unless given)."""
    params = [tensor(p) for p in spec["params"]]
    mark(spec["cls"], "__init__")
    opt = ns[spec["cls"]](params, **constructor_kwargs(spec))
    for k, grads in enumerate(spec["grads"], 1):
        for p, g in zip(params, grads):
            p.grad = np.array(g, spec.get("grad_dtype", "float32"))
        mark(spec["cls"], "step", k)
        if not attempt(rec, "step()", opt.step):
            return
    for j, p in enumerate(params):
        rec.text(f"params[{j}] dtype", _str(getattr(p.data, "dtype", type(p.data).__name__)))
    for attr in spec.get("state", ()):
        buffers = getattr(opt, attr, None)
        for j, buf in enumerate(buffers if _isinstance(buffers, (list, tuple)) else []):
            rec.text(f"{attr}[{j}] dtype", _str(getattr(buf, "dtype", type(buf).__name__)))


def aliasing(ns: dict, spec: dict, rec: Recorder) -> None:
    """Whether saved momentum state shares memory with the live buffers, out and in."""
    params = [tensor(p) for p in spec["params"]]
    mark("SGD", "__init__")
    opt = ns["SGD"](params, **spec["kwargs"])
    for p, g in zip(params, spec["grads"]):
        p.grad = np.array(g, np.float32)
    mark("SGD", "step", 1)
    if not attempt(rec, "step()", opt.step):
        return
    arr = lambda b: b if _isinstance(b, _ndarray) else getattr(b, "data", b)  # a Tensor's array  # noqa: E731
    live = lambda: [arr(b) for b in (getattr(opt, "momentum_buffers", None) or [])]  # noqa: E731

    def shares(a, bs):
        return any(_isinstance(a, _ndarray) and _isinstance(b, _ndarray) and np.shares_memory(a, b) for b in bs)

    mark("SGD", "get_momentum_state")
    saved = opt.get_momentum_state()
    rec.value("saved state shares memory with the buffers", any(shares(arr(s), live()) for s in (saved or [])))
    given = [np.array(g, np.float32) for g in spec["grads"]]
    mark("SGD", "set_momentum_state")
    opt.set_momentum_state(given)
    rec.value("loaded state shares memory with the caller's arrays", any(shares(g, live()) for g in given))


def namespace() -> dict:
    """What a solution cell may rely on besides numpy: the notebook's Tensor."""
    from tinytorch.core.tensor import Tensor

    return {"Tensor": Tensor}


KINDS = {
    f.__name__: f
    for f in (
        trajectory,
        checkpoint,
        interface,
        zero_grad,
        abstract_step,
        defaults,
        memory,
        validation,
        dtypes,
        aliasing,
    )
}
register(KINDS, namespace)
