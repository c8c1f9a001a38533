"""Run a student's optimizer classes through the hidden scenarios and record what happens.

This file is copied into the sandbox and runs there beside the student's code, so
it imports nothing from ``autograder`` and holds no expected values: it only
reports observations (plain arrays and strings) for the trusted grader to judge.

    python probe.py CELLS.json SPEC.json OUT.npz

CELLS.json is a list of [name, code] pairs (or [name, code, "added"] for a cell the student
added or a given cell they edited): the given helpers, the student's solution cells, added
cells and edited given cells, in notebook order. Cells are parsed as IPython parses them.

A crash costs only what it touches: each check's observations are appended to OUT.npz as
soon as the check ends, and before every call into student code the probe writes what it
is about to run to ``running.txt`` (``marker``), so when the process is killed the grader
knows which check was lost and runs the rest in a fresh sandbox. A forked watchdog kills
the probe when one cell or one check runs longer than SPEC's ``check_seconds``.
"""
from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import traceback
import types
import zipfile

import numpy as np

# Captured before any student code runs, so a submission that rebinds them
# cannot change how this file records observations.
_array, _float64, _ndarray, _isinstance, _str, _len = np.array, np.float64, np.ndarray, isinstance, str, len
_write_array, _asanyarray, _ZipFile, _replace = np.lib.format.write_array, np.asanyarray, zipfile.ZipFile, os.replace
_os_write, _ftruncate, _exit, _kill = os.pwrite, os.ftruncate, os._exit, os.kill
NONE = "<None>"
MAX_TEXT = 1000               # characters of one text observation; the grader accepts no more
PROBLEMS = "__problems__"     # the one key besides observations: why a cell did not define
MEMORY = " (x parameter bytes)"   # a label ending so holds a table of buffers the grader turns into a ratio
RUNNING = "running.txt"       # what the probe is about to run (``Sink.running``); read by the grader after a kill
WATCHDOG = "watchdog.txt"     # written by the watchdog just before it kills the probe for wall time
TIMED_OUT = "timed out"
DONE, BETWEEN = "done", "between checks"
MEMORY_EXHAUSTED = 75         # exit status: a MemoryError left the process unusable; run the rest afresh
# The methods the probe calls on a student's class, the only method names a marker may carry.
METHODS = ("__init__", "step", "zero_grad", "get_momentum_state", "set_momentum_state", "has_momentum")

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
    if _SINK is not None and _isinstance(err, MemoryError):
        _SINK.exhausted = True
    return f"raised {type(err).__name__}: {err}"[:300]


def attempt(record: Recorder, label: str, call) -> bool:
    """Run ``call``; on an exception record it under ``label`` and report failure."""
    try:
        call()
        return True
    except BaseException as err:  # the student's exception (even SystemExit) is an observation
        record.text(label, describe(err))
        return False


class Watchdog:
    """A forked process that kills the probe when one cell or one check runs past ``seconds``.

    A process, not a thread or an alarm: student code that holds the GIL in a C loop or
    catches every exception still cannot outlast it. ``arm`` starts the clock, ``disarm``
    stops it; the sandbox's own wall time stays the backstop if student code kills it.
    """

    def __init__(self, seconds: float, folder: str):
        read_end, self._pipe = os.pipe()
        if os.fork() == 0:                        # the watchdog: it never runs student code
            os.close(self._pipe)
            self._watch(read_end, os.getppid(), seconds, os.path.join(folder, WATCHDOG))
        os.close(read_end)

    @staticmethod
    def _watch(pipe: int, probe: int, seconds: float, report: str) -> None:
        armed = False
        while True:
            ready, _, _ = select.select([pipe], [], [], seconds if armed else None)
            if not ready:                         # armed and silent for ``seconds``: the check hangs
                with open(report, "w") as f:
                    f.write(TIMED_OUT)
                _kill(probe, signal.SIGKILL)
                _exit(0)
            byte = os.read(pipe, 1)
            if not byte:                          # the probe ended (or died): so does the watchdog
                _exit(0)
            armed = byte == b"a"

    def arm(self) -> None:
        os.write(self._pipe, b"a")

    def disarm(self) -> None:
        os.write(self._pipe, b"d")


class Sink:
    """Where a sandboxed probe leaves its traces: the marker, each check's results, the watchdog's clock.

    In-process runs (``make reference``, the instructor notebook) use none: ``mark`` is a no-op then.
    """

    def __init__(self, out_path: str, watchdog: Watchdog | None = None):
        self.out_path, self.watchdog = out_path, watchdog
        self._fd = os.open(RUNNING, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.check, self.scenario, self.ns = "", 0, {}
        self.exhausted = False                    # a MemoryError was seen: the process may be unusable

    def note(self, text: str) -> None:
        _ftruncate(self._fd, 0)
        _os_write(self._fd, text.encode("utf-8", "replace"), 0)

    def running(self, cls: str, method: str, step: int = 0) -> None:
        self.note(f"{self.check}\t{self.scenario}\t{cls}\t{method}\t{_defining_class(self.ns, cls, method)}\t{step}")

    def finished(self, check_id: str, items: list) -> None:
        if self.watchdog:
            self.watchdog.disarm()
        append_results(self.out_path, {f"{check_id}|{i:03d}|{label}": obs for i, (label, obs) in enumerate(items)})
        self.note(BETWEEN)


_SINK = None      # set by ``main`` in the sandbox


def mark(cls: str, method: str, step: int = 0) -> None:
    """Say which student method is about to run (the grader names it if the process is killed)."""
    if _SINK is not None:
        _SINK.running(cls, method, step)


def _defining_class(ns: dict, cls: str, method: str) -> str:
    """The name of the class in ``cls``'s MRO that defines ``method`` (AdamW.step may be Adam's)."""
    try:
        mro = _type.mro(ns[cls])
    except Exception:  # not a class (or missing): the scenario's class stands
        return cls
    return next((_str(_type.__dict__["__name__"].__get__(k))[:40] for k in mro if method in k.__dict__), cls)


def append_results(path: str, flat: dict) -> None:
    """Add members to the results zip (as ``np.savez`` writes them), with functions bound before student code ran."""
    with _ZipFile(path, "a", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, value in flat.items():
            with archive.open(key + ".npy", "w", force_zip64=True) as f:
                _write_array(f, _asanyarray(value), allow_pickle=False)


# -- scenario kinds ---------------------------------------------------------------------------

def trajectory(ns: dict, spec: dict, rec: Recorder) -> None:
    """Step an optimizer through given gradients; record parameters and state after every step."""
    dtype = spec.get("dtype", "float32")
    params = [tensor(p, dtype) for p in spec["params"]]
    holder = {}
    mark(spec["cls"], "__init__")
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
            g += 1000.0                      # the caller's arrays change after loading
    for p, g in zip(fresh_params, spec["grads"]):
        p.grad = np.array(g, np.float32)
    mark("SGD", "step", 1)
    fresh.step()
    for j, p in enumerate(fresh_params):
        rec.value(f"params[{j}] after restoring and one step()", p.data)
    for label, bad in (("a state with too few entries", saved[:-1]),
                       ("a state with a wrong shape", [np.zeros((7, 7), np.float32)] + list(saved[1:]))):
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
    mark(spec["cls"], "__init__")
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
    for k in range(spec["steps"]):
        grads[:] = [np.full(p.data.shape, 0.01, grad_dtype) for p in params]
        for p, g in zip(params, grads):
            p.grad = g
        mark(spec["cls"], "step", k + 1)
        opt.step()
    rec.value(f"memory after {spec['steps']} steps" + MEMORY, buffers())
    for j, p in enumerate(params):
        rec.text(f"params[{j}] dtype", _dtype_name(p.__dict__.get("data")))
    for attr in spec.get("state", ()):
        held = getattr(opt, attr, [])
        for j in range(_len(params)):
            rec.text(f"{attr}[{j}] dtype", _dtype_name(held[j]) if j < _len(held) else "<missing>")


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
    shares = lambda a, bs: any(_isinstance(a, _ndarray) and _isinstance(b, _ndarray) and  # noqa: E731
                               np.shares_memory(a, b) for b in bs)
    mark("SGD", "get_momentum_state")
    saved = opt.get_momentum_state()
    rec.value("saved state shares memory with the buffers",
              any(shares(arr(s), live()) for s in (saved or [])))
    given = [np.array(g, np.float32) for g in spec["grads"]]
    mark("SGD", "set_momentum_state")
    opt.set_momentum_state(given)
    rec.value("loaded state shares memory with the caller's arrays", any(shares(g, live()) for g in given))


KINDS = {f.__name__: f for f in (trajectory, checkpoint, interface, zero_grad, abstract_step, defaults, memory,
                                     validation, dtypes, aliasing)}


_SKIPPED = ("Expr", "For", "While", "AsyncFor", "Raise", "Assert")  # demos and checks: calls, displays, loops
# Cell magics whose body is the cell's Python code, which the kernel ran (timing, output capture).
_BODY_MAGICS = ("time", "timeit", "capture", "prun")
# Magics whose effect later cells can depend on, run as the kernel ran them: files the student's code imports.
_FILE_MAGICS = ("writefile", "file")
_KEPT_LINE_MAGICS = ("run",)
# Magics that would change what later cells see but that the probe does not run: named in the problems.
_NOT_RUN = {"cell": ("bash", "sh", "script", "system", "python", "python2", "python3", "pypy", "perl", "ruby"),
            "line": ("load_ext", "cd", "sx", "system")}


class MagicNotRun(Exception):
    """A magic the grader cannot run as the kernel did; the message says what to do instead."""


def safe_relative(name: str) -> str:
    """``name`` if it is a plain relative path that stays in the probe's folder; MagicNotRun otherwise."""
    import posixpath

    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not name or "\0" in name or name.startswith(("/", "~")) or ".." in parts or not parts:
        raise MagicNotRun(f"'{name[:80]}': the grader writes and runs only files named relative to your "
                          "notebook's folder (no absolute path, no '..')")
    return posixpath.join(*parts)


class _Shell:
    """``get_ipython()`` in the probe. ``%%writefile``/``%%file`` (``-a`` appends) write their body
    under ``folder`` (the probe's scratch, on ``sys.path`` as the kernel's folder is) and ``%run f.py``
    runs such a file, because later cells import or use what they made. Every other magic, shell
    line (``!cmd``) and help request (``obj?``) does nothing and returns None: display settings and
    installs have no effect on the classes. In-process runs (no ``folder``) write no file."""

    def __init__(self):
        self.folder, self.ns = None, {}

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def _path(self, name: str) -> str:
        if self.folder is None:
            raise MagicNotRun("files are written only in the sandboxed probe")
        return os.path.join(self.folder, safe_relative(name))

    def run_cell_magic(self, magic, line, body):
        if magic not in _FILE_MAGICS:
            return None
        import importlib
        import shlex

        args = shlex.split(line)
        append = any(a in ("-a", "--append") for a in args)
        names = [a for a in args if not a.startswith("-")]
        if _len(names) != 1:
            raise MagicNotRun(f"%%{magic} {line[:80]}: name exactly one file")
        with open(self._path(names[0]), "a" if append else "w", encoding="utf-8") as f:
            f.write(body)
        importlib.invalidate_caches()             # the new module is importable at once, as in the kernel
        return None

    def run_line_magic(self, magic, line, *args):
        if magic not in _KEPT_LINE_MAGICS:
            return None
        import shlex

        words = shlex.split(line)
        if _len(words) != 1 or not words[0].endswith(".py"):
            raise MagicNotRun(f"%run {line[:80]}: the grader runs only '%run file.py', no options or arguments")
        path = self._path(words[0])
        if not os.path.isfile(path):
            raise MagicNotRun(f"%run {words[0]}: no such file when grading; only files your notebook writes "
                              "with %%writefile exist (put the helper in a cell instead)")
        with open(path, encoding="utf-8") as f:
            code = compile(f.read(), words[0], "exec")
        scope = {"__name__": "__main__", "__file__": words[0], "get_ipython": get_ipython}
        exec(code, scope)                          # as %run: a fresh namespace, then its names are the notebook's
        self.ns.update({k: v for k, v in scope.items() if not k.startswith("__")})
        return None


_SHELL = _Shell()


def get_ipython():
    return _SHELL


def _magic_call(node):
    """(kind, magic name) of a top-level ``get_ipython().run_cell_magic/run_line_magic('name', ...)``, else None."""
    call = getattr(node, "value", None) if type(node).__name__ == "Expr" else None
    method = getattr(getattr(call, "func", None), "attr", None)
    if type(call).__name__ != "Call" or method not in ("run_cell_magic", "run_line_magic") or not call.args:
        return None
    first = call.args[0]
    if type(first).__name__ != "Constant" or not _isinstance(first.value, _str):
        return None
    return ("cell" if method == "run_cell_magic" else "line"), first.value


def _kept(node) -> bool:
    """Whether ``definitions`` keeps a top-level expression: a magic whose files later cells use."""
    found = _magic_call(node)
    return found is not None and found[1] in (_FILE_MAGICS if found[0] == "cell" else _KEPT_LINE_MAGICS)


def not_run(code: str, name: str) -> list:
    """Problems naming the magics of a cell the probe does not run though later cells may depend on them."""
    found = [_magic_call(node) for node in parse(code, name).body]
    return [f"{name}: the grader does not run %{'%' if kind == 'cell' else ''}{magic} (use %%writefile for "
            "helper files, or put the code in a cell)" for kind, magic in filter(None, found)
            if magic in _NOT_RUN[kind]]


def _notes(code: str, name: str) -> list:
    try:
        return not_run(code, name)
    except SyntaxError:              # define() already reported the cell
        return []


def parse(code: str, name: str):
    """A cell's code as the IPython kernel compiles it: the one place magics are handled.

    IPython's own text transform (``TransformerManager.transform_cell``) turns
    ``%magic``, ``!cmd``, ``obj?`` and ``%%magic`` into ``get_ipython()`` calls,
    which the probe's stub ``get_ipython`` runs (file magics) or makes harmless. A
    ``%%time``-like cell magic's body is the student's code, so the body is parsed in
    its place; ``%%writefile``/``%%file`` stay a call (``_Shell.run_cell_magic``); any
    other cell magic (``%%bash``, ``%%html``) holds no Python to run (``not_run`` names it).
    """
    import ast

    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(code), f"<{name}>")
    call = tree.body[0].value if _len(tree.body) == 1 and type(tree.body[0]).__name__ == "Expr" else None
    if (type(call).__name__ == "Call" and getattr(call.func, "attr", None) == "run_cell_magic"
            and _len(call.args) == 3 and all(type(a).__name__ == "Constant" for a in call.args)):
        magic, _line, body = (a.value for a in call.args)
        if magic in _FILE_MAGICS or magic in _NOT_RUN["cell"]:
            return tree
        if magic not in _BODY_MAGICS:
            return ast.Module(body=[], type_ignores=[])
        tree = parse(body, name)
        ast.increment_lineno(tree, 1)            # tracebacks point at the cell's own lines
    return tree


def definitions(code: str, name: str):
    """A cell the student added or edited, compiled without its demos: imports, defs, classes, assignments.

    Top-level expressions (calls, displays, magics), loops, ``raise`` and ``assert`` are dropped, so a
    plotting or training demo cannot eat the probe's time; file magics stay (``_kept``). Everything
    that defines a name is kept, as the kernel ran it.
    """
    tree = parse(code, name)
    tree.body = [node for node in tree.body if type(node).__name__ not in _SKIPPED or _kept(node)]
    return compile(tree, f"<{name}>", "exec")


def define(cells: list, ns: dict, skip=(), defs_only=()) -> list:
    """Execute each cell on its own, so one broken class leaves the others defined.

    ``cells`` holds [name, code] pairs, or [name, code, "added"] for a cell the
    student added or a given cell they edited. Every cell runs whole, as the kernel ran
    it (a helper written with ``open()``, a ``setattr``, a ``reload`` take effect); an
    added cell that an earlier sandbox saw run past the time cap (a demo, a training loop)
    is listed in ``defs_only`` and runs through ``definitions``; ``skip`` lists cells
    that ran past the cap even so. In the sandbox the watchdog times each cell, and the
    marker names the cell running.
    """
    ns.setdefault("get_ipython", get_ipython)
    _SHELL.ns = ns
    problems = []
    for n, (name, code, *mode) in enumerate(cells):
        if n in skip:
            problems.append(f"{name} was not run: it did not finish within the time cap")
            continue
        if _SINK is not None:
            _SINK.note(f"defining\t{n}")
            if _SINK.watchdog:
                _SINK.watchdog.arm()
        try:
            exec(definitions(code, name) if n in defs_only else compile(parse(code, name), f"<{name}>", "exec"), ns)
        except BaseException as err:  # SystemExit in a cell must not end the probe
            problems.append(f"{name} {describe(err)}")
    if _SINK is not None and _SINK.watchdog:
        _SINK.watchdog.disarm()
    return problems


def observe(ns: dict, checks: list) -> dict:
    """Run every check's scenarios; return {check_id: [(label, ndarray), ...]}.

    In the sandbox (``_SINK`` set) each check is timed by the watchdog and saved as soon as it
    ends; after a MemoryError the probe stops between checks, so the rest run in a fresh process.
    """
    results = {}
    for check in checks:
        if _SINK is not None:
            _SINK.check, _SINK.ns = check["id"], ns
            if _SINK.watchdog:
                _SINK.watchdog.arm()
        rec = Recorder()
        for n, scenario in enumerate(check["scenarios"]):
            if _SINK is not None:
                _SINK.scenario = n + 1
            sub = Recorder()
            try:
                KINDS[scenario["kind"]](ns, scenario, sub)
            except BaseException as err:
                sub.text("running the scenario", describe(err))
            rec.items.extend((f"[{n + 1}] {label}", obs) for label, obs in sub.items)
        results[check["id"]] = rec.items
        if _SINK is not None:
            _SINK.finished(check["id"], rec.items)
            if _SINK.exhausted:
                break
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
    global _SINK

    code_path, spec_path, out_path = argv
    os.environ["NBGRADER_EXECUTION"] = "autograde"    # as the notebook's kernel under nbgrader: its guarded demos stay off
    with open(spec_path) as f:
        spec = json.load(f)
    with open(code_path) as f:
        cells = json.load(f)
    folder = os.getcwd()
    sys.path.insert(0, folder)                        # as the kernel's folder: helper modules the notebook wrote
    _SHELL.folder = folder
    seconds = spec.get("check_seconds")
    _SINK = Sink(os.path.abspath(out_path), Watchdog(seconds, folder) if seconds else None)
    ns = base_namespace()
    problems = define(cells, ns, set(spec.get("skip_cells", ())), set(spec.get("defs_only_cells", ())))
    problems += [note for name, code, *_ in cells for note in _notes(code, name)]
    append_results(_SINK.out_path, {PROBLEMS: _array("\n".join(problems)[:MAX_TEXT])})
    observe(ns, spec["checks"])
    if _SINK.exhausted:
        _exit(MEMORY_EXHAUSTED)
    _SINK.note(DONE)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception:
        traceback.print_exc()
        sys.exit(2)
