"""Reference data: the runs of a module's reference solution and of every catalogued misconception.

A course module's content holds one plain JSON file per component (``REFERENCE_DIR/<component>.json``,
built by its reference build), one observation a line: ``"source|check|index|label": value``,
where source is ``R`` (the reference), ``V<n>:<slug>`` (variant n of the catalog) or ``I<n>:<slug>``
(a variant run through an inheriting component's checks), and a value is a text or
``{"shape": [...], "values": [...]}`` with non-finite floats as ``"nan"``, ``"inf"``, ``"-inf"``.
A grading process loads only the component it judges, once. These files are the grader's own,
never a submission's: ``judge.output`` reads the probe's hostile results.
"""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np

from . import content as contents
from .compare import by_check, first_divergence

NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode(value: np.ndarray):
    """One observation as JSON: its text, or ``{"shape": [...], "values": [...]}`` (float64, exact)."""
    if value.dtype.kind == "U":
        return str(value)
    return {
        "shape": list(value.shape),
        "values": [v if math.isfinite(v) else repr(v) for v in value.astype(np.float64).reshape(-1).tolist()],
    }


def decode(value) -> np.ndarray:
    """``encode``'s inverse for trusted data (the grader's own files)."""
    if isinstance(value, str):
        return np.array(value)
    values = [NON_FINITE[v] if isinstance(v, str) else v for v in value["values"]]
    return np.array(values, dtype=np.float64).reshape(value["shape"])


def render(flat: dict) -> str:
    """A component's file: one observation a line, so a changed value reads as a one-line diff."""
    lines = (f"{json.dumps(key)}: {json.dumps(encode(value), separators=(',', ':'))}" for key, value in flat.items())
    return "{\n" + ",\n".join(lines) + "\n}\n"


def path_of(component: str, module=None):
    return (module or contents.only()).REFERENCE_DIR / f"{component}.json"


@cache
def _component_flat(path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make reference`")
    return {key: decode(value) for key, value in json.loads(path.read_text(encoding="utf-8")).items()}


def load_component_flat(component: str, module=None) -> dict:
    return _component_flat(path_of(component, module))


def load_flat(module=None) -> dict:
    """Every component's runs in one flat mapping (a key two components share holds the same run)."""
    module = module or contents.only()
    return {
        key: value for component in module.COMPONENTS for key, value in load_component_flat(component, module).items()
    }


def load(component: str | None = None, module=None) -> dict:
    """{"expected": {check: runs}, "alternatives": {check: {name: runs}}, "variants": {check: {slug: [runs]}},
    "affects": {check: {slugs whose variants fail it, inherited ones included}}}
    of ``component``'s checks, or of every component's."""
    module = module or contents.only()
    if component is not None:
        return _load_component(component, module)
    merged: dict = {"expected": {}, "alternatives": {}, "variants": {}, "affects": Affects({}, {})}
    for name in module.COMPONENTS:
        for part, table in _load_component(name, module).items():
            merged[part].update(table)
    return merged


@cache
def _load_component(component: str, module) -> dict:
    runs: dict = {}
    for key, value in load_component_flat(component, module).items():
        source, rest = key.split("|", 1)
        runs.setdefault(source, {})[rest] = value
    checks = [c for c in module.catalog() if c.component == component]
    scenarios = {c.id: c.scenarios for c in checks}
    grouped = {source: by_check(flat_run, scenarios) for source, flat_run in runs.items()}
    expected = {c.id: grouped["R"].get(c.id, []) for c in checks}
    alternatives: dict = {}
    variants: dict = {}
    failing: dict = {}
    for source, observed_by_check in grouped.items():
        if source == "R":
            continue
        n, slug = source[1:].split(":", 1)
        variant = module.VARIANTS[int(n)]
        inherited = source[0] == "I"
        for check in expected:
            observed = observed_by_check.get(check, [])
            if variant.accepted:
                alternatives.setdefault(check, {})[slug] = observed
                continue
            if not inherited:
                variants.setdefault(check, {}).setdefault(slug, []).append(observed)
            failing.setdefault(check, []).append((slug, observed))
    return {
        "expected": expected,
        "alternatives": alternatives,
        "variants": variants,
        "affects": Affects(expected, failing),
    }


class Affects:
    """{check: slugs whose variants fail it}, worked out for a check only when a diagnosis asks.

    A correct submission asks for none, so a grading process does not compare every variant
    with the reference on every check (most of the cost of loading the data).
    """

    def __init__(self, expected: dict, candidates: dict):
        self._expected, self._candidates, self._known = expected, candidates, {}

    def get(self, check: str, default=frozenset()) -> frozenset:
        if check not in self._candidates:
            return default
        if check not in self._known:
            self._known[check] = frozenset(
                slug
                for slug, observed in self._candidates[check]
                if first_divergence(observed, self._expected[check]) is not None
            )
        return self._known[check]

    def update(self, other: Affects) -> None:
        """Merged with another component's (``load()`` of every component)."""
        self._expected = {**self._expected, **other._expected}
        self._candidates = {**self._candidates, **other._candidates}
        self._known = {**self._known, **other._known}
