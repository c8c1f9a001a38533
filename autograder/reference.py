"""Reference data: the runs of the reference solution and of every catalogued misconception.

``python -m autograder.reference`` (``make reference``) rebuilds
``autograder/reference/<component>.json`` from ``src/``; ``--check`` reports drift.
One plain JSON file per component, one observation a line: a grading process loads
only the component it judges, in milliseconds (``np.load`` of one archive of ~15,000
tiny arrays took seconds), and a change to the data reads as a diff.
Building also proves the catalog is usable: every misconception must miss the
reference by far more than float32 rounding on at least one of its component's
checks, or the build fails.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import probe
from .checks import COMPONENTS, DISTINCT, by_check, checks_for, first_divergence, observations_of, probe_spec
from .misconceptions import VARIANTS, apply

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "07_optimizers" / "07_optimizers.py"
DATA = Path(__file__).resolve().parent / "reference"
# Non-finite floats, which strict JSON has no token for.
NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def reference_module_text() -> str:
    from tinytorch.export import module_text, read_notebook

    return module_text(read_notebook(SRC), "# reference solution")


def run_module(text: str, component: str, name: str) -> dict:
    ns = probe.base_namespace()
    problems = probe.define([(name, text)], ns)
    if problems:
        raise RuntimeError(f"{name} does not define cleanly: {problems}")
    return probe.flatten(probe.observe(ns, probe_spec(component)["checks"]))


def run_cells(cells: list, component: str) -> dict:
    """A submission's probe cells run in this process, as the probe would (trusted code only: tests, samples)."""
    ns = probe.base_namespace()
    problems = probe.define(cells, ns)
    flat = probe.flatten(probe.observe(ns, probe_spec(component)["checks"]))
    flat["__problems__"] = np.array("\n".join(problems))
    return flat


def build() -> dict:
    """Flat ``{"R|check|i|label" | "V<n>:<slug>|check|i|label" | "I<n>:<slug>|..." : array}`` of every run."""
    return {key: value for flat in build_by_component().values() for key, value in flat.items()}


def build_by_component() -> dict:
    """{component: flat runs} of the reference and every variant, as each component's file holds them.

    ``I`` runs are Adam's variants run through AdamW's checks: what AdamW inherits (AdamW's file).
    """
    text = reference_module_text()
    data, reference = {c: {} for c in COMPONENTS}, {}
    for component in COMPONENTS:
        flat = run_module(text, component, "reference")
        _require_silent(flat, component, "the reference solution")
        for key, value in flat.items():
            data[component][f"R|{key}"] = value
            reference[key] = value
    for n, variant in enumerate(VARIANTS):
        with np.errstate(divide="ignore", invalid="ignore"):    # step-count-off-by-one divides by zero on purpose
            flat = run_module(apply(text, variant), variant.component, f"variant {variant.slug}")
        if not variant.accepted:
            _require_distinct(variant, flat, reference)
            _require_signature(variant, flat, variant.component)
        else:
            _require_silent(flat, variant.component, variant.slug)
        for key, value in flat.items():
            data[variant.component][f"V{n}:{variant.slug}|{key}"] = value
        if variant.component == "Adam" and not variant.accepted:
            with np.errstate(divide="ignore", invalid="ignore"):
                inherited = run_module(apply(text, variant), "AdamW", f"variant {variant.slug}")
            for key, value in inherited.items():
                data["AdamW"][f"I{n}:{variant.slug}|{key}"] = value
    return data


def _require_signature(variant, flat: dict, component: str) -> None:
    from .signatures import fired

    if variant.slug not in fired(flat, component):
        raise RuntimeError(f"misconception {variant.slug!r} ({variant.edits[0][2]!r}...): its signature in "
                           "autograder/signatures.py does not fire on its own variant: fix the predicate")


def _require_silent(flat: dict, component: str, name: str) -> None:
    from .signatures import fired

    if fired(flat, component):
        raise RuntimeError(f"{name} fires the signature(s) {sorted(fired(flat, component))} on {component}: "
                           "a predicate in autograder/signatures.py would blame correct code")


def _require_distinct(variant, flat: dict, reference: dict) -> None:
    for check in checks_for(variant.component):
        got, expected = observations_of(flat, check.id), observations_of(reference, check.id)
        if first_divergence(got, expected, slack=DISTINCT) is not None:
            return
    raise RuntimeError(f"misconception {variant.slug!r} ({variant.edits[0][2]!r}...) is indistinguishable from "
                       f"the reference on every {variant.component} check: strengthen a scenario in checks.py")


def encode(value: np.ndarray):
    """One observation as JSON: its text, or ``{"shape": [...], "values": [...]}`` (float64, exact)."""
    if value.dtype.kind == "U":
        return str(value)
    return {"shape": list(value.shape),
            "values": [v if math.isfinite(v) else repr(v) for v in value.astype(np.float64).reshape(-1).tolist()]}


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


def path_of(component: str, folder: Path = DATA) -> Path:
    return folder / f"{component}.json"


def save(by_component: dict, folder: Path = DATA) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for component, flat in by_component.items():
        path_of(component, folder).write_text(render(flat), encoding="utf-8")


@lru_cache(maxsize=None)
def load_component_flat(component: str, folder: Path = DATA) -> dict:
    path = path_of(component, folder)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make reference`")
    return {key: decode(value) for key, value in json.loads(path.read_text(encoding="utf-8")).items()}


def load_flat(folder: Path = DATA) -> dict:
    """Every component's runs in one flat mapping (a key two components share holds the same run)."""
    return {key: value for component in COMPONENTS for key, value in load_component_flat(component, folder).items()}


def load(component: str | None = None, folder: Path = DATA) -> dict:
    """{"expected": {check: runs}, "alternatives": {check: {name: runs}}, "variants": {check: {slug: [runs]}},
    "affects": {check: {slugs whose variants fail it, AdamW's inherited ones included}}}
    of ``component``'s checks, or of every component's."""
    if component is not None:
        return _load_component(component, folder)
    merged: dict = {"expected": {}, "alternatives": {}, "variants": {}, "affects": {}}
    for name in COMPONENTS:
        for part, table in _load_component(name, folder).items():
            merged[part].update(table)
    return merged


@lru_cache(maxsize=None)
def _load_component(component: str, folder: Path = DATA) -> dict:
    runs: dict = {}
    for key, value in load_component_flat(component, folder).items():
        source, rest = key.split("|", 1)
        runs.setdefault(source, {})[rest] = value
    ids = [c.id for c in checks_for(component)]
    grouped = {source: by_check(flat_run) for source, flat_run in runs.items()}
    expected = {check: grouped["R"].get(check, []) for check in ids}
    alternatives: dict = {}
    variants: dict = {}
    affects: dict = {}
    for source, observed_by_check in grouped.items():
        if source == "R":
            continue
        n, slug = source[1:].split(":", 1)
        variant = VARIANTS[int(n)]
        inherited = source[0] == "I"
        for check in ids:
            observed = observed_by_check.get(check, [])
            if variant.accepted:
                alternatives.setdefault(check, {})[slug] = observed
                continue
            if not inherited:
                variants.setdefault(check, {}).setdefault(slug, []).append(observed)
            if first_divergence(observed, expected[check]) is not None:
                affects.setdefault(check, set()).add(slug)
    return {"expected": expected, "alternatives": alternatives, "variants": variants, "affects": affects}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and
        (np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f")) for k in a)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the stored data differs from a rebuild")
    args = parser.parse_args(argv)
    data = build_by_component()
    stale = [c for c, flat in data.items()
             if not path_of(c).exists() or path_of(c).read_text(encoding="utf-8") != render(flat)]
    if args.check:
        if stale:
            print(f"drift: {', '.join(str(path_of(c).relative_to(ROOT)) for c in stale)} differ(s) from what src/ "
                  "produces; run `make reference`", file=sys.stderr)
            return 1
        return 0
    if not stale:
        print(f"{DATA.relative_to(ROOT)} is up to date")
        return 0
    save({c: data[c] for c in stale})
    print(f"wrote {', '.join(str(path_of(c).relative_to(ROOT)) for c in stale)}: "
          f"{sum(len(f) for f in data.values())} observations, {len(VARIANTS)} variants")
    return 0


if __name__ == "__main__":
    sys.exit(main())
