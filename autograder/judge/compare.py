"""Comparing a run's observations with a known run: pure functions on plain arrays.

An observation is a float64 array or one piece of text (a 0-d unicode array).
Float observations match within float32 rounding (``RTOL``, and ``ATOL_SCALE`` of the
largest expected magnitude), so reordered arithmetic in a correct submission passes.
"""

from __future__ import annotations

import re

import numpy as np

from ..probe.record import MEMORY

RTOL, ATOL_SCALE = 1e-4, 1e-6  # float32 rounding, with room for reordered arithmetic
DISTINCT = 100  # a misconception must miss the reference by 100x the tolerance
QUOTED = 160  # characters of a submission's own text (an exception message) quoted back


def by_check(flat: dict, scenarios: dict) -> dict:
    """{check: [(label, array)]} of a flat ``{check|index|label: array}`` mapping, in index order, one pass.

    Memory tables become ratios here (``scenarios``: check id -> its scenarios), so every run
    (reference, variants, submission) is measured alike.
    """
    rows: dict = {}
    for key, value in flat.items():
        parts = key.split("|", 2)
        if len(parts) == 3 and parts[1].isdigit():
            rows.setdefault(parts[0], []).append((int(parts[1]), parts[2], np.asarray(value)))
    return {
        check: [
            (label, _measured(label, value, scenarios.get(check, [])))
            for _, label, value in sorted(found, key=lambda r: r[0])
        ]
        for check, found in rows.items()
    }


MEMORY_TABLE = re.compile(r"\[(\d+)\] .*" + re.escape(MEMORY))


def _measured(label: str, value: np.ndarray, scenarios: list) -> np.ndarray:
    match = MEMORY_TABLE.fullmatch(label)
    if match is None:
        return value
    n = int(match.group(1)) - 1
    if not 0 <= n < len(scenarios) or scenarios[n]["kind"] != "memory":
        return np.array("not a measurement")
    return memory_ratio(value, scenarios[n])


def memory_ratio(table: np.ndarray, scenario: dict) -> np.ndarray:
    """(parameters + state) / parameters, from the probe's ``[[elements, bytes per element], ...]``.

    The counting rule (MISCONCEPTIONS.md, "Memory"): a buffer counts when it has at
    least as many elements as the scenario's smallest parameter. Every per-parameter
    buffer does; hyperparameter arrays and cached scalars never do. The denominator
    is the scenario's own parameters, not anything the submission reports.
    """
    sizes = [np.asarray(p).size for p in scenario["params"]]
    itemsize = np.dtype(scenario.get("dtype", "float32")).itemsize
    table = np.asarray(table)
    if (
        table.dtype != np.float64
        or table.ndim != 2
        or table.shape[1] != 2
        or not np.isfinite(table).all()
        or (table < 0).any()
        or (table != np.round(table)).any()
    ):
        return np.array("not a measurement")
    counted = table[table[:, 0] >= min(sizes)]
    return np.array(round(float(np.sum(counted[:, 0] * counted[:, 1])) / (itemsize * sum(sizes)), 3))


def quoted(text, limit: int = QUOTED) -> str:
    """``text`` safe to quote in feedback: one line, printable characters only, at most ``limit`` characters."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _tolerance(expected: np.ndarray) -> float:
    finite = np.abs(expected[np.isfinite(expected)]) if expected.size else np.zeros(1)
    return ATOL_SCALE * (float(finite.max()) if finite.size else 1.0) + 1e-30


def values_match(got: np.ndarray, expected: np.ndarray, slack: float = 1.0) -> bool:
    if expected.dtype.kind == "U" or got.dtype.kind == "U":
        return got.dtype.kind == expected.dtype.kind and str(got) == str(expected)
    if got.shape != expected.shape:
        return False
    return bool(np.allclose(got, expected, rtol=RTOL * slack, atol=_tolerance(expected) * slack, equal_nan=True))


def first_divergence(got: list, expected: list, slack: float = 1.0) -> str | None:
    """None when ``got`` matches ``expected``; otherwise where and how they first differ."""
    for n, (label, exp) in enumerate(expected):
        if n >= len(got):
            return f"{label}: no value recorded"
        got_label, value = got[n]
        if got_label != label:
            return f"{label}: expected a value, but the run went: {quoted(got_label)} = {_show(value)}"
        if not values_match(value, exp, slack):
            return f"{label}: {_where(value, exp)}"
    if len(got) > len(expected):
        label, value = got[len(expected)]
        return f"{quoted(label)}: unexpected {_show(value)}"
    return None


def _show(value: np.ndarray) -> str:
    if value.dtype.kind == "U":
        return quoted(value)
    if value.size == 1:
        return f"{float(value.reshape(-1)[0]):.6g}"
    return f"array of shape {value.shape}"


def _where(got: np.ndarray, expected: np.ndarray) -> str:
    if expected.dtype.kind == "U" or got.dtype.kind == "U" or got.shape != expected.shape:
        return f"expected {_show(expected)}, got {_show(got)}"
    bad = ~np.isclose(got, expected, rtol=RTOL, atol=_tolerance(expected), equal_nan=True)
    index = tuple(int(i) for i in np.argwhere(bad)[0]) if got.ndim else ()
    at = f" element {index}" if index else ""
    return f"first differs at{at}: expected {float(expected[index]):.6g}, got {float(got[index]):.6g}"
