"""The probe's run: define the cells, run every check's scenarios, save each check as it ends.

    python -m autograder.probe CELLS.json SPEC.json OUT.json

CELLS.json is a list of [name, code] pairs (or [name, code, "added"] for a cell the student
added or a given cell they edited): the given helpers, the student's solution cells, added
cells and edited given cells, in notebook order. SPEC.json holds the checks (scenarios only,
no expected values), the time cap, and ``extensions``: the module names of the content's
probe extensions, imported here; each ``register``s its scenario kinds.

Runs inside the sandbox beside the student's code and holds no expected values: it only
reports observations for the trusted grader to judge.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

import numpy as np

from . import markers, output
from .cells import _SHELL, _notes, define
from .record import MAX_TEXT, Recorder, describe

_array, _exit = np.array, os._exit
KINDS: dict = {}  # scenario kind -> function(ns, scenario, recorder), from the extensions
_NAMESPACES: list = []  # functions giving names a solution cell may rely on, from the extensions


def register(kinds: dict, namespace=None) -> None:
    """A probe extension's scenario kinds (and the names its solution cells rely on)."""
    KINDS.update(kinds)
    if namespace is not None and namespace not in _NAMESPACES:
        _NAMESPACES.append(namespace)


def observe(ns: dict, checks: list) -> dict:
    """Run every check's scenarios; return {check_id: [(label, ndarray), ...]}.

    In the sandbox (``markers.SINK`` set) each check is timed by the watchdog and saved as soon as it
    ends; after a MemoryError the probe stops between checks, so the rest run in a fresh process.
    """
    sink = markers.SINK
    results = {}
    for check in checks:
        if sink is not None:
            sink.check, sink.ns = check["id"], ns
            if sink.watchdog:
                sink.watchdog.arm()
        rec = Recorder()
        for n, scenario in enumerate(check["scenarios"]):
            if sink is not None:
                sink.scenario = n + 1
            sub = Recorder()
            try:
                KINDS[scenario["kind"]](ns, scenario, sub)
            except BaseException as err:
                sub.text("running the scenario", describe(err))
            rec.items.extend((f"[{n + 1}] {label}", obs) for label, obs in sub.items)
        results[check["id"]] = rec.items
        if sink is not None:
            sink.finished(check["id"], rec.items)
            if sink.exhausted:
                break
    return results


def base_namespace() -> dict:
    """What a solution cell may rely on: the notebook's imports and given helpers."""
    import math
    import typing

    ns = {"__name__": "__student__", "np": np, "math": math}
    ns.update({name: getattr(typing, name) for name in ("List", "Optional", "Sequence", "Tuple", "Dict")})
    for namespace in _NAMESPACES:
        ns.update(namespace())
    return ns


def flatten(results: dict) -> dict:
    return {
        f"{check_id}|{i:03d}|{label}": obs
        for check_id, items in results.items()
        for i, (label, obs) in enumerate(items)
    }


def main(argv) -> int:
    code_path, spec_path, out_path = argv
    os.environ["NBGRADER_EXECUTION"] = (
        "autograde"  # as the notebook's kernel under nbgrader: its guarded demos stay off
    )
    with open(spec_path) as f:
        spec = json.load(f)
    with open(code_path) as f:
        cells = json.load(f)
    for name in spec.get("extensions", ()):
        importlib.import_module(name)  # before any student code: it registers its kinds
    folder = os.getcwd()
    sys.path.insert(0, folder)  # as the kernel's folder: helper modules the notebook wrote
    _SHELL.folder = folder
    seconds = spec.get("check_seconds")
    sink = markers.SINK = markers.Sink(
        os.path.abspath(out_path), markers.Watchdog(seconds, folder) if seconds else None, output.append_check
    )
    ns = base_namespace()
    problems = define(cells, ns, set(spec.get("skip_cells", ())), set(spec.get("defs_only_cells", ())))
    problems += [note for name, code, *_ in cells for note in _notes(code, name)]
    output.append_problems(sink.out_path, "\n".join(problems)[:MAX_TEXT])
    observe(ns, spec["checks"])
    if sink.exhausted:
        _exit(markers.MEMORY_EXHAUSTED)
    sink.note(markers.DONE)
    return 0
