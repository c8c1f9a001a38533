"""The notebook's cells in the probe: parsed as IPython parses them, run one by one.

IPython's magics are handled here: file magics run as the kernel ran them, the others
are made harmless or named as not run. Runs inside the sandbox beside the student's code.
"""

from __future__ import annotations

import os

from . import markers
from .record import describe

_isinstance, _str, _len = isinstance, str, len


_SKIPPED = ("Expr", "For", "While", "AsyncFor", "Raise", "Assert")  # demos and checks: calls, displays, loops
# Cell magics whose body is the cell's Python code, which the kernel ran (timing, output capture).
_BODY_MAGICS = ("time", "timeit", "capture", "prun")
# Magics whose effect later cells can depend on, run as the kernel ran them: files the student's code imports.
_FILE_MAGICS = ("writefile", "file")
_KEPT_LINE_MAGICS = ("run",)
# Magics that would change what later cells see but that the probe does not run: named in the problems.
_NOT_RUN = {
    "cell": ("bash", "sh", "script", "system", "python", "python2", "python3", "pypy", "perl", "ruby"),
    "line": ("load_ext", "cd", "sx", "system"),
}


class MagicNotRun(Exception):
    """A magic the grader cannot run as the kernel did; the message says what to do instead."""


def safe_relative(name: str) -> str:
    """``name`` if it is a plain relative path that stays in the probe's folder; MagicNotRun otherwise."""
    import posixpath

    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not name or "\0" in name or name.startswith(("/", "~")) or ".." in parts or not parts:
        raise MagicNotRun(
            f"'{name[:80]}': the grader writes and runs only files named relative to your "
            "notebook's folder (no absolute path, no '..')"
        )
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
        importlib.invalidate_caches()  # the new module is importable at once, as in the kernel
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
            raise MagicNotRun(
                f"%run {words[0]}: no such file when grading; only files your notebook writes "
                "with %%writefile exist (put the helper in a cell instead)"
            )
        with open(path, encoding="utf-8") as f:
            code = compile(f.read(), words[0], "exec")
        scope = {"__name__": "__main__", "__file__": words[0], "get_ipython": get_ipython}
        exec(code, scope)  # as %run: a fresh namespace, then its names are the notebook's
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
    return [
        f"{name}: the grader does not run %{'%' if kind == 'cell' else ''}{magic} (use %%writefile for "
        "helper files, or put the code in a cell)"
        for kind, magic in filter(None, found)
        if magic in _NOT_RUN[kind]
    ]


def _notes(code: str, name: str) -> list:
    try:
        return not_run(code, name)
    except SyntaxError:  # define() already reported the cell
        return []


def parse(code: str, name: str):
    """A cell's code as the IPython kernel compiles it: the one place magics are handled.

    Code that is not plain Python goes through IPython's own text transform
    (``TransformerManager.transform_cell``), which turns
    ``%magic``, ``!cmd``, ``obj?`` and ``%%magic`` into ``get_ipython()`` calls,
    which the probe's stub ``get_ipython`` runs (file magics) or makes harmless. A
    ``%%time``-like cell magic's body is the student's code, so the body is parsed in
    its place; ``%%writefile``/``%%file`` stay a call (``_Shell.run_cell_magic``); any
    other cell magic (``%%bash``, ``%%html``) holds no Python to run (``not_run`` names it).
    """
    import ast

    try:
        # Plain Python needs no transform: everything IPython rewrites (a line starting with %, !,
        # a prompt or an indent, a trailing ?) is a syntax error in Python. Importing IPython
        # costs a probe more than running every scenario, so only a cell that needs it pays.
        tree = ast.parse(code, f"<{name}>")
    except SyntaxError:
        from IPython.core.inputtransformer2 import TransformerManager

        tree = ast.parse(TransformerManager().transform_cell(code), f"<{name}>")
    call = tree.body[0].value if _len(tree.body) == 1 and type(tree.body[0]).__name__ == "Expr" else None
    if (
        type(call).__name__ == "Call"
        and getattr(call.func, "attr", None) == "run_cell_magic"
        and _len(call.args) == 3
        and all(type(a).__name__ == "Constant" for a in call.args)
    ):
        magic, _line, body = (a.value for a in call.args)
        if magic in _FILE_MAGICS or magic in _NOT_RUN["cell"]:
            return tree
        if magic not in _BODY_MAGICS:
            return ast.Module(body=[], type_ignores=[])
        tree = parse(body, name)
        ast.increment_lineno(tree, 1)  # tracebacks point at the cell's own lines
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
    for n, (name, code, *_mode) in enumerate(cells):
        if n in skip:
            problems.append(f"{name} was not run: it did not finish within the time cap")
            continue
        if markers.SINK is not None:
            markers.SINK.note(f"defining\t{n}")
            if markers.SINK.watchdog:
                markers.SINK.watchdog.arm()
        try:
            exec(definitions(code, name) if n in defs_only else compile(parse(code, name), f"<{name}>", "exec"), ns)
        except BaseException as err:  # SystemExit in a cell must not end the probe
            problems.append(f"{name} {describe(err)}")
    if markers.SINK is not None and markers.SINK.watchdog:
        markers.SINK.watchdog.disarm()
    return problems
