"""Behavioural signatures, engine part: reading a class's signature runs and asking the predicates.

A course module's content lists, per misconception slug and component, small named
predicates on the observations of targeted scenarios (``ModuleContent.SIGNATURES``,
``signature_runs``). The probe only reports what happened; the predicates judge it
here, in the trusted grader. A component may inherit code from another
(``ModuleContent.INHERITS``): its probe also runs the parent's scenarios on the parent
class, and a slug that fires on both is named as inherited.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import content as contents
from .compare import by_check

Predicate = Callable[["Run"], bool]


class Run:
    """The signature observations of one class: ``run.get("first-step", "step 1: params[0]")``."""

    def __init__(self, flat: dict, cls: str, component: str, module):
        self.cls = cls
        names = {
            module.signature_check_id(c, name): name
            for (c, name), scenario in module.signature_runs(component).items()
            if c == cls
        }
        observed = by_check({k: v for k, v in flat.items() if k.split("|", 1)[0] in names}, {})
        self.runs = {
            name: {label.split("] ", 1)[-1]: value for label, value in observed.get(check, [])}
            for check, name in names.items()
        }

    def get(self, name: str, label: str) -> np.ndarray | None:
        value = self.runs.get(name, {}).get(label)
        if value is None or value.dtype.kind == "U":
            return None
        return value.astype(np.float64)

    def text(self, name: str, label: str) -> str | None:
        value = self.runs.get(name, {}).get(label)
        return str(value) if value is not None and value.dtype.kind == "U" else None

    def raised(self, name: str) -> str | None:
        """The first exception a scenario recorded, if any."""
        for value in self.runs.get(name, {}).values():
            if value.dtype.kind == "U" and str(value).startswith("raised "):
                return str(value)
        return None


def _holds(predicate: Predicate, run: Run) -> bool:
    """A predicate on observations from the student's process: malformed data means "not shown", never a crash."""
    try:
        return bool(predicate(run))
    except Exception:  # the observations are hostile data; a predicate that cannot read them does not fire
        return False


def fired(flat: dict, component: str, module=None) -> dict:
    """{slug: None, or the parent component a component inherits it from} for every signature shown."""
    module = module or contents.only()
    found = {}
    run = Run(flat, component, component, module)
    for slug, per_component in module.SIGNATURES.items():
        if any(_holds(p, run) for p in per_component.get(component, ())):
            found[slug] = None
    if component in module.INHERITS:
        parent, slugs = module.INHERITS[component]
        parent_run = Run(flat, parent, component, module)
        for slug in slugs:
            predicates = module.SIGNATURES[slug][parent]
            if slug not in found and any(_holds(p, run) for p in predicates):
                found[slug] = parent if any(_holds(p, parent_run) for p in predicates) else None
    return found
