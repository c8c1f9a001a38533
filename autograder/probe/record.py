"""Recording observations: what the probe saw, as plain float64 arrays or short text.

Runs inside the sandbox beside the student's code (stdlib + numpy only). The
builtins and numpy functions it uses are bound at import, before any student code
runs, so a submission that rebinds them cannot change how observations are recorded.
"""

from __future__ import annotations

import numpy as np

from . import markers

_array, _float64, _ndarray, _isinstance, _str = np.array, np.float64, np.ndarray, isinstance, str
NONE = "<None>"
MAX_TEXT = 1000  # characters of one text observation; the grader accepts no more
PROBLEMS = "__problems__"  # the one key besides observations: why a cell did not define
MEMORY = " (x parameter bytes)"  # a label ending so holds a table of buffers the grader turns into a ratio


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


def describe(err: BaseException) -> str:
    if markers.SINK is not None and _isinstance(err, MemoryError):
        markers.SINK.exhausted = True
    return f"raised {type(err).__name__}: {err}"[:300]


def attempt(record: Recorder, label: str, call) -> bool:
    """Run ``call``; on an exception record it under ``label`` and report failure."""
    try:
        call()
        return True
    except BaseException as err:  # the student's exception (even SystemExit) is an observation
        record.text(label, describe(err))
        return False
