"""Run a student's optimizer classes through the hidden scenarios and record what happens.

This file is copied into the sandbox and runs there beside the student's code, so
it imports nothing from ``autograder`` and holds no expected values: it only
reports observations (plain arrays and strings) for the trusted grader to judge.

    python probe.py CELLS.json SPEC.json OUT.npz

CELLS.json is a list of [name, code] pairs (or [name, code, "added"] for a cell the student
added or a given cell they edited): the given helpers, the student's solution cells, added
cells and edited given cells, in notebook order. Cells are parsed as IPython parses them.
"""
from __future__ import annotations

import gc
import json
import sys
import traceback
import types

import numpy as np

# Captured before any student code runs, so a submission that rebinds them
# cannot change how this file records observations.
_array, _float64, _ndarray, _isinstance, _str, _len = np.array, np.float64, np.ndarray, isinstance, str, len
_savez = np.savez
NONE = "<None>"
MAX_TEXT = 1000               # characters of one text observation; the grader accepts no more
PROBLEMS = "__problems__"     # the one key besides observations: why a cell did not define
MEMORY = " (x parameter bytes)"   # a label ending so holds a table of buffers the grader turns into a ratio

# Structure is measured without asking the student's objects: type() cannot be
# faked by a __class__ property, gc.get_referents() reads what an object really
# holds (not a __dict__ property), and ndarray's own descriptors give the real
# dtype and size of a subclass whose properties lie.
_type, _issubclass, _id, _referents = type, issubclass, id, gc.get_referents
_ND = {name: np.ndarray.__dict__[name].__get__ for name in ("base", "dtype", "size", "itemsize")}
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
           types.CodeType, types.FrameType, types.GeneratorType)


class Recorder:
    """Ordered observations: label -> ndarray (float64 values, or a unicode string)."""

    def __init__(self):
        self.items: list = []

    def value(self, label: str, value) -> None:
        if value is None:
            obs = _array(NONE)
        elif _isinstance(value, (bool, int, float, np.number, np.bool_)):
            obs = _array(value, dtype=_float64)
        elif _isinstance(value, _str):
            obs = _array(value)
        else:
            data = getattr(value, "data", value) if not _isinstance(value, _ndarray) else value
            try:
                obs = _array(data, dtype=_float64, copy=True)
            except Exception:  # not numeric: record what it is, the comparison will fail
                obs = _array(f"<{type(value).__name__}>")
        self.items.append((label, obs))

    def text(self, label: str, text: str) -> None:
        self.items.append((label, _array(_str(text)[:MAX_TEXT])))


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


def describe(err: BaseException) -> str:
    return f"raised {type(err).__name__}: {err}"[:300]


def attempt(record: Recorder, label: str, call) -> bool:
    """Run ``call``; on an exception record it under ``label`` and report failure."""
    try:
        call()
        return True
    except BaseException as err:  # the student's exception (even SystemExit) is an observation
        record.text(label, describe(err))
        return False


# -- scenario kinds ---------------------------------------------------------------------------

def trajectory(ns: dict, spec: dict, rec: Recorder) -> None:
    """Step an optimizer through given gradients; record parameters and state after every step."""
    dtype = spec.get("dtype", "float32")
    params = [tensor(p, dtype) for p in spec["params"]]
    holder = {}
    if not attempt(rec, "constructing the optimizer",
                   lambda: holder.update(opt=ns[spec["cls"]](params, **spec["kwargs"]))):
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
    opt = ns["SGD"](params, **spec["kwargs"])
    feed = lambda: [setattr(p, "grad", np.array(g, np.float32)) for p, g in zip(params, spec["grads"])]  # noqa: E731
    for _ in range(spec["steps_before"]):
        feed()
        opt.step()
    saved = opt.get_momentum_state()
    rec.value("saved state is a list", _isinstance(saved, list))
    for j in range(_len(params)):
        rec.value(f"checkpoint[{j}] when saved", saved[j] if saved is not None else None)
    feed()
    opt.step()
    for j in range(_len(params)):
        rec.value(f"checkpoint[{j}] after one more step()", saved[j] if saved is not None else None)
    # restore into a fresh optimizer on fresh parameters, then step both from the same point
    fresh_params = [tensor(p) for p in spec["params"]]
    fresh = ns["SGD"](fresh_params, **spec["kwargs"])
    given = [None if s is None else np.array(s, copy=True) for s in saved]
    fresh.set_momentum_state(given)
    for g in given:
        if g is not None:
            g += 1000.0                      # the caller's arrays change after loading
    for p, g in zip(fresh_params, spec["grads"]):
        p.grad = np.array(g, np.float32)
    fresh.step()
    for j, p in enumerate(fresh_params):
        rec.value(f"params[{j}] after restoring and one step()", p.data)
    for label, bad in (("a state with too few entries", saved[:-1]),
                       ("a state with a wrong shape", [np.zeros((7, 7), np.float32)] + list(saved[1:]))):
        try:
            fresh.set_momentum_state(bad)
            rec.text(f"set_momentum_state({label})", "no error")
        except ValueError:
            rec.text(f"set_momentum_state({label})", "ValueError")
        except Exception as err:
            rec.text(f"set_momentum_state({label})", describe(err))
    plain = ns["SGD"]([tensor(p) for p in spec["params"]], lr=0.1)
    rec.value("has_momentum() without momentum", plain.has_momentum())
    rec.value("has_momentum() with momentum", opt.has_momentum())
    rec.value("get_momentum_state() without momentum", plain.get_momentum_state())


def interface(ns: dict, spec: dict, rec: Recorder) -> None:
    """The Optimizer base class: params list, step_count, abstract step, empty params rejected."""
    params = [tensor(p) for p in spec["params"]]
    opt = ns["Optimizer"](iter(params))
    rec.value("params is a list", _isinstance(opt.params, list))
    rec.value("params kept in order", all(a is b for a, b in zip(opt.params, params)) and
              _len(opt.params) == _len(params))
    rec.value("step_count at start", opt.step_count)
    try:
        ns["Optimizer"]([])
        rec.text("Optimizer([])", "no error")
    except ValueError:
        rec.text("Optimizer([])", "ValueError")
    for label, listed in (("the same parameter twice", params + params[:1]),
                          ("equal but distinct parameters", [tensor(spec["params"][0]), tensor(spec["params"][0])])):
        try:
            ns["Optimizer"](listed)
            rec.text(f"Optimizer({label})", "no error")
        except ValueError:
            rec.text(f"Optimizer({label})", "ValueError")


def zero_grad(ns: dict, spec: dict, rec: Recorder) -> None:
    params = [tensor(p) for p in spec["params"]]
    opt = ns["Optimizer"](params)
    for p, g in zip(params, spec["grads"]):
        p.grad = np.array(g, np.float32)
    opt.zero_grad()
    for j, p in enumerate(params):
        rec.value(f"params[{j}].grad after zero_grad()", p.grad)
    for j, p in enumerate(params):
        rec.value(f"params[{j}] after zero_grad()", p.data)


def abstract_step(ns: dict, spec: dict, rec: Recorder) -> None:
    opt = ns["Optimizer"]([tensor(p) for p in spec["params"]])
    try:
        opt.step()
        rec.text("Optimizer.step()", "no error")
    except NotImplementedError:
        rec.text("Optimizer.step()", "NotImplementedError")


def defaults(ns: dict, spec: dict, rec: Recorder) -> None:
    """Hyperparameters a class sets when none are given."""
    opt = ns[spec["cls"]]([tensor([1.0, 2.0])])
    for attr in spec["attributes"]:
        rec.value(f"{spec['cls']}() default {attr}", getattr(opt, attr, None))


def _owner(array):
    """The array that owns ``array``'s memory (a view's ultimate ndarray base), read with ndarray's own descriptors."""
    while True:
        base = _ND["base"](array)
        if base is None or not _issubclass(_type(base), _ndarray):
            return array
        array = base


def _reachable_buffers(root, skip: set) -> list:
    """[[elements, bytes per element]] of every distinct array buffer reachable from ``root``.

    The grader's own ruler: it follows what objects really reference (instance
    attributes and slots, containers, an ndarray subclass's attributes), never
    into classes, modules or functions, and reports sizes; the grader decides
    what counts (``checks.memory_ratio``).
    """
    seen, owners, stack = set(), {}, [root]
    while stack:
        obj = stack.pop()
        if _id(obj) in seen or _id(obj) in skip:
            continue
        seen.add(_id(obj))
        kind = _type(obj)
        if _issubclass(kind, _ndarray):
            owner = _owner(obj)
            owners[_id(owner)] = owner           # keeps it alive, so its id is not reused
            if kind is _ndarray:
                continue
        elif _issubclass(kind, _OPAQUE):
            continue
        stack.extend(_referents(obj))
    return [[_ND["size"](a), _ND["itemsize"](a)] for a in owners.values()]


def _dtype_name(value) -> str:
    """The real dtype of an array, or of the array a Tensor holds; never what the object says about itself."""
    if _issubclass(_type(value), (list, tuple, dict, set, frozenset)):
        return "not an array"
    if not _issubclass(_type(value), _ndarray):
        held = [v for r in _referents(value) for v in ((r.get("data"),) if _type(r) is dict else (r,))]
        arrays = [v for v in held if _issubclass(_type(v), _ndarray)]
        if not arrays:
            return "not an array"
        value = arrays[0]
    return _str(_ND["dtype"](value))


def memory(ns: dict, spec: dict, rec: Recorder) -> None:
    """The buffers an optimizer holds before the first step and after some; the real dtypes of its state."""
    dtype = spec.get("dtype", "float32")
    grad_dtype = spec.get("grad_dtype", dtype)
    params = [tensor(p, dtype) for p in spec["params"]]
    opt = ns[spec["cls"]](params, **constructor_kwargs(spec))
    grads = []

    def buffers():
        skip = {_id(g) for g in grads}
        for p in params:
            grad = p.__dict__.get("grad")
            skip |= {_id(grad), _id(getattr(grad, "data", None))}
        return _array(_reachable_buffers(opt, skip), dtype=_float64).reshape(-1, 2)

    if spec.get("before_first_step"):
        rec.value("memory before the first step" + MEMORY, buffers())
    for _ in range(spec["steps"]):
        grads[:] = [np.full(p.data.shape, 0.01, grad_dtype) for p in params]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
    rec.value(f"memory after {spec['steps']} steps" + MEMORY, buffers())
    for j, p in enumerate(params):
        rec.text(f"params[{j}] dtype", _dtype_name(p.__dict__.get("data")))
    for attr in spec.get("state", ()):
        held = getattr(opt, attr, [])
        for j in range(_len(params)):
            rec.text(f"{attr}[{j}] dtype", _dtype_name(held[j]) if j < _len(held) else "<missing>")


def validation(ns: dict, spec: dict, rec: Recorder) -> None:
    """Invalid hyperparameters (or a parameter listed twice: ``params`` gives the order) raise ValueError."""
    order = spec.get("params", [0])
    for kwargs in spec["bad"]:
        label = ", ".join(([f"params=[{', '.join(f'p{i}' for i in order)}]"] if "params" in spec else [])
                          + [f"{k}={v!r}" for k, v in kwargs.items()])
        kwargs = {k: tuple(v) if _isinstance(v, list) else v for k, v in kwargs.items()}
        distinct = [tensor([1.0, 2.0]) for _ in range(max(order) + 1)]
        try:
            ns[spec["cls"]]([distinct[i] for i in order], **kwargs)
            rec.text(f"{spec['cls']}({label})", "no error")
        except ValueError:
            rec.text(f"{spec['cls']}({label})", "ValueError")
        except Exception as err:
            rec.text(f"{spec['cls']}({label})", describe(err))


def dtypes(ns: dict, spec: dict, rec: Recorder) -> None:
    """The dtypes of float32 parameters and state after steps (gradients of ``grad_dtype``, float32 unless given)."""
    params = [tensor(p) for p in spec["params"]]
    opt = ns[spec["cls"]](params, **constructor_kwargs(spec))
    for grads in spec["grads"]:
        for p, g in zip(params, grads):
            p.grad = np.array(g, spec.get("grad_dtype", "float32"))
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
    opt = ns["SGD"](params, **spec["kwargs"])
    for p, g in zip(params, spec["grads"]):
        p.grad = np.array(g, np.float32)
    if not attempt(rec, "step()", opt.step):
        return
    arr = lambda b: b if _isinstance(b, _ndarray) else getattr(b, "data", b)  # a Tensor's array  # noqa: E731
    live = lambda: [arr(b) for b in (getattr(opt, "momentum_buffers", None) or [])]  # noqa: E731
    shares = lambda a, bs: any(_isinstance(a, _ndarray) and _isinstance(b, _ndarray) and  # noqa: E731
                               np.shares_memory(a, b) for b in bs)
    saved = opt.get_momentum_state()
    rec.value("saved state shares memory with the buffers",
              any(shares(arr(s), live()) for s in (saved or [])))
    given = [np.array(g, np.float32) for g in spec["grads"]]
    opt.set_momentum_state(given)
    rec.value("loaded state shares memory with the caller's arrays", any(shares(g, live()) for g in given))


KINDS = {f.__name__: f for f in (trajectory, checkpoint, interface, zero_grad, abstract_step, defaults, memory,
                                     validation, dtypes, aliasing)}


_SKIPPED = ("Expr", "For", "While", "AsyncFor", "Raise", "Assert")  # demos and checks: calls, displays, loops
# Cell magics whose body is the cell's Python code, which the kernel ran (timing, output capture).
_BODY_MAGICS = ("time", "timeit", "capture", "prun")


class _Shell:
    """``get_ipython()`` in the probe: every magic, shell line (``!cmd``) and help request (``obj?``)
    does nothing and returns None. Display settings and installs have no effect on the classes."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


_SHELL = _Shell()


def get_ipython():
    return _SHELL


def parse(code: str, name: str):
    """A cell's code as the IPython kernel compiles it: the one place magics are handled.

    IPython's own text transform (``TransformerManager.transform_cell``) turns
    ``%magic``, ``!cmd``, ``obj?`` and ``%%magic`` into ``get_ipython()`` calls,
    which the probe's stub ``get_ipython`` makes harmless. A ``%%time``-like cell
    magic's body is the student's code, so the body is parsed in its place; any
    other cell magic (``%%bash``, ``%%writefile``, ``%%html``) holds no Python to run.
    """
    import ast

    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(code), f"<{name}>")
    call = tree.body[0].value if _len(tree.body) == 1 and type(tree.body[0]).__name__ == "Expr" else None
    if (type(call).__name__ == "Call" and getattr(call.func, "attr", None) == "run_cell_magic"
            and _len(call.args) == 3 and all(type(a).__name__ == "Constant" for a in call.args)):
        magic, _line, body = (a.value for a in call.args)
        if magic not in _BODY_MAGICS:
            return ast.Module(body=[], type_ignores=[])
        tree = parse(body, name)
        ast.increment_lineno(tree, 1)            # tracebacks point at the cell's own lines
    return tree


def definitions(code: str, name: str):
    """A cell the student added or edited, compiled without its demos: imports, defs, classes, assignments.

    Top-level expressions (calls, displays, magics), loops, ``raise`` and ``assert`` are dropped, so a
    plotting or training demo cannot eat the probe's time. Everything that
    defines a name is kept, as the kernel ran it.
    """
    tree = parse(code, name)
    tree.body = [node for node in tree.body if type(node).__name__ not in _SKIPPED]
    return compile(tree, f"<{name}>", "exec")


def define(cells: list, ns: dict) -> list:
    """Execute each cell on its own, so one broken class leaves the others defined.

    ``cells`` holds [name, code] pairs, or [name, code, "added"] for a cell the
    student added or a given cell they edited (run through ``definitions``).
    """
    ns.setdefault("get_ipython", get_ipython)
    problems = []
    for name, code, *mode in cells:
        try:
            exec(definitions(code, name) if mode == ["added"] else compile(parse(code, name), f"<{name}>", "exec"), ns)
        except BaseException as err:  # SystemExit in a cell must not end the probe
            problems.append(f"{name} {describe(err)}")
    return problems


def observe(ns: dict, checks: list) -> dict:
    """Run every check's scenarios; return {check_id: [(label, ndarray), ...]}."""
    results = {}
    for check in checks:
        rec = Recorder()
        for n, scenario in enumerate(check["scenarios"]):
            sub = Recorder()
            try:
                KINDS[scenario["kind"]](ns, scenario, sub)
            except BaseException as err:
                sub.text("running the scenario", describe(err))
            rec.items.extend((f"[{n + 1}] {label}", obs) for label, obs in sub.items)
        results[check["id"]] = rec.items
    return results


def base_namespace() -> dict:
    """What a solution cell may rely on: the notebook's imports and given helpers."""
    import math
    import typing

    from tinytorch.core.tensor import Tensor

    ns = {"__name__": "__student__", "np": np, "math": math, "Tensor": Tensor}
    ns.update({name: getattr(typing, name) for name in ("List", "Optional", "Sequence", "Tuple", "Dict")})
    return ns


def flatten(results: dict) -> dict:
    return {f"{check_id}|{i:03d}|{label}": obs
            for check_id, items in results.items() for i, (label, obs) in enumerate(items)}


def main(argv) -> int:
    import os

    code_path, spec_path, out_path = argv
    os.environ["NBGRADER_EXECUTION"] = "autograde"    # as the notebook's kernel under nbgrader: its guarded demos stay off
    with open(spec_path) as f:
        spec = json.load(f)
    with open(code_path) as f:
        cells = json.load(f)
    ns = base_namespace()
    problems = define(cells, ns)
    results = observe(ns, spec["checks"])
    flat = flatten(results)
    flat[PROBLEMS] = _array("\n".join(problems)[:MAX_TEXT])
    _savez(out_path, **flat)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception:
        traceback.print_exc()
        sys.exit(2)
