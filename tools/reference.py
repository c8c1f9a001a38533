"""The reference build: the runs of the reference solution and of every catalogued misconception.

``python -m tools.reference`` (``make reference``) rebuilds the content's
``reference/<component>.json`` from ``src/``; ``--check`` reports drift.
One plain JSON file per component, one observation a line (format: ``autograder.judge.reference``):
a grading process loads only the component it judges, in milliseconds (``np.load`` of one archive
of ~15,000 tiny arrays took seconds), and a change to the data reads as a diff.
Building also proves the catalog is usable: every misconception must miss the
reference by far more than float32 rounding on at least one of its component's
checks, or the build fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from autograder import probe
from autograder.judge import content
from autograder.judge.checks import checks_for, observations_of, probe_spec
from autograder.judge.compare import DISTINCT, first_divergence
from autograder.judge.reference import load, load_flat, path_of, render
from autograder.judge.signatures import fired

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "07_optimizers" / "07_optimizers.py"
MODULE = content.load("07_optimizers")
DATA = MODULE.REFERENCE_DIR
__all__ = ["load", "load_flat", "build", "build_by_component", "run_module", "run_cells", "same", "main"]


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

    ``I`` runs are a parent's variants run through an inheriting component's checks (AdamW runs
    Adam's): what it inherits, in its file.
    """
    text = reference_module_text()
    apply, variants = MODULE.apply, MODULE.VARIANTS
    data, reference = {c: {} for c in MODULE.COMPONENTS}, {}
    for component in MODULE.COMPONENTS:
        flat = run_module(text, component, "reference")
        _require_silent(flat, component, "the reference solution")
        for key, value in flat.items():
            data[component][f"R|{key}"] = value
            reference[key] = value
    for n, variant in enumerate(variants):
        with np.errstate(divide="ignore", invalid="ignore"):  # step-count-off-by-one divides by zero on purpose
            flat = run_module(apply(text, variant), variant.component, f"variant {variant.slug}")
        if not variant.accepted:
            _require_distinct(variant, flat, reference)
            _require_signature(variant, flat, variant.component)
        else:
            _require_silent(flat, variant.component, variant.slug)
        for key, value in flat.items():
            data[variant.component][f"V{n}:{variant.slug}|{key}"] = value
        for child, (parent, _) in MODULE.INHERITS.items():
            if variant.component != parent or variant.accepted:
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                inherited = run_module(apply(text, variant), child, f"variant {variant.slug}")
            for key, value in inherited.items():
                data[child][f"I{n}:{variant.slug}|{key}"] = value
    return data


def _require_signature(variant, flat: dict, component: str) -> None:
    if variant.slug not in fired(flat, component, MODULE):
        raise RuntimeError(
            f"misconception {variant.slug!r} ({variant.edits[0][2]!r}...): its signature in "
            "the content's signatures.py does not fire on its own variant: fix the predicate"
        )


def _require_silent(flat: dict, component: str, name: str) -> None:
    if fired(flat, component, MODULE):
        raise RuntimeError(
            f"{name} fires the signature(s) {sorted(fired(flat, component, MODULE))} on {component}: "
            "a predicate in the content's signatures.py would blame correct code"
        )


def _require_distinct(variant, flat: dict, reference: dict) -> None:
    for check in checks_for(variant.component):
        got, expected = observations_of(flat, check.id), observations_of(reference, check.id)
        if first_divergence(got, expected, slack=DISTINCT) is not None:
            return
    raise RuntimeError(
        f"misconception {variant.slug!r} ({variant.edits[0][2]!r}...) is indistinguishable from "
        f"the reference on every {variant.component} check: strengthen a scenario in the content's catalog.py"
    )


def save(by_component: dict) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for component, flat in by_component.items():
        path_of(component, MODULE).write_text(render(flat), encoding="utf-8")


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype
        and a[k].shape == b[k].shape
        and (np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"))
        for k in a
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the stored data differs from a rebuild")
    args = parser.parse_args(argv)
    data = build_by_component()
    stale = [
        c
        for c, flat in data.items()
        if not path_of(c).exists() or path_of(c).read_text(encoding="utf-8") != render(flat)
    ]
    if args.check:
        if stale:
            print(
                f"drift: {', '.join(str(path_of(c).relative_to(ROOT)) for c in stale)} differ(s) from what src/ "
                "produces; run `make reference`",
                file=sys.stderr,
            )
            return 1
        return 0
    if not stale:
        print(f"{DATA.relative_to(ROOT)} is up to date")
        return 0
    save({c: data[c] for c in stale})
    print(
        f"wrote {', '.join(str(path_of(c).relative_to(ROOT)) for c in stale)}: "
        f"{sum(len(f) for f in data.values())} observations, {len(MODULE.VARIANTS)} variants"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
