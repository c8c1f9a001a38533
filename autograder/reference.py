"""Reference data: the runs of the reference solution and of every catalogued misconception.

``python -m autograder.reference`` (``make reference``) rebuilds
``autograder/reference/expected.npz`` from ``src/``; ``--check`` reports drift.
Building also proves the catalog is usable: every misconception must miss the
reference by far more than float32 rounding on at least one of its component's
checks, or the build fails.
"""
from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import probe
from .checks import COMPONENTS, DISTINCT, catalog, checks_for, first_divergence, observations_of, probe_spec
from .misconceptions import VARIANTS, apply

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "07_optimizers" / "07_optimizers.py"
DATA = Path(__file__).resolve().parent / "reference" / "expected.npz"


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
    """Flat ``{"R|check|i|label" | "V<n>:<slug>|check|i|label" | "I<n>:<slug>|..." : array}`` of every run.

    ``I`` runs are Adam's variants run through AdamW's checks: what AdamW inherits.
    """
    text = reference_module_text()
    data, reference = {}, {}
    for component in COMPONENTS:
        flat = run_module(text, component, "reference")
        _require_silent(flat, component, "the reference solution")
        for key, value in flat.items():
            data[f"R|{key}"] = value
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
            data[f"V{n}:{variant.slug}|{key}"] = value
        if variant.component == "Adam" and not variant.accepted:
            with np.errstate(divide="ignore", invalid="ignore"):
                inherited = run_module(apply(text, variant), "AdamW", f"variant {variant.slug}")
            for key, value in inherited.items():
                data[f"I{n}:{variant.slug}|{key}"] = value
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


def save(data: dict, path: Path = DATA) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **data)


def load_flat(path: Path = DATA) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make reference`")
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


@lru_cache(maxsize=1)
def load(path: Path = DATA) -> dict:
    """{"expected": {check: runs}, "alternatives": {check: {name: runs}}, "variants": {check: {slug: [runs]}},
    "affects": {check: {slugs whose variants fail it, AdamW's inherited ones included}}}."""
    flat = load_flat(path)
    runs: dict = {}
    for key, value in flat.items():
        source, rest = key.split("|", 1)
        runs.setdefault(source, {})[rest] = value
    expected = {c.id: observations_of(runs["R"], c.id) for c in catalog()}
    alternatives: dict = {}
    variants: dict = {}
    affects: dict = {}
    for source, flat_run in runs.items():
        if source == "R":
            continue
        n, slug = source[1:].split(":", 1)
        variant = VARIANTS[int(n)]
        inherited = source[0] == "I"
        for check in checks_for("AdamW" if inherited else variant.component):
            observed = observations_of(flat_run, check.id)
            if variant.accepted:
                alternatives.setdefault(check.id, {})[slug] = observed
                continue
            if not inherited:
                variants.setdefault(check.id, {}).setdefault(slug, []).append(observed)
            if first_divergence(observed, expected[check.id]) is not None:
                affects.setdefault(check.id, set()).add(slug)
    return {"expected": expected, "alternatives": alternatives, "variants": variants, "affects": affects}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and
        (np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f")) for k in a)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the stored data differs from a rebuild")
    args = parser.parse_args(argv)
    data = build()
    if args.check:
        if not DATA.exists() or not same(data, load_flat()):
            print(f"drift: {DATA.relative_to(ROOT)} differs from what src/ produces; run `make reference`",
                  file=sys.stderr)
            return 1
        return 0
    if DATA.exists() and same(data, load_flat()):
        # np.savez stamps each member with the time: rewriting equal data would dirty the checkout.
        print(f"{DATA.relative_to(ROOT)} is up to date")
        return 0
    save(data)
    print(f"wrote {DATA.relative_to(ROOT)}: {len(data)} observations, {len(VARIANTS)} variants")
    return 0


if __name__ == "__main__":
    sys.exit(main())
