"""A course module's content, found through the ``autograder.modules`` entry point group.

The engine names no module: each installed content package registers itself under its
nbgrader assignment name (``[project.entry-points."autograder.modules"]``) and implements
``ModuleContent``: its components, checks, signatures, misconception catalog, reference data
and probe extensions. ``load(assignment)`` is the one place the engine turns a name into
content; ``only()`` serves callers that grade the single module a course installs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from re import Pattern
from typing import Protocol, runtime_checkable

GROUP = "autograder.modules"


@runtime_checkable
class ModuleContent(Protocol):
    """What the engine relies on in a content package (attributes and functions of the package)."""

    COMPONENTS: tuple  # graded parts, in order; each has its own probe sandbox and points
    METHODS: tuple  # method names a probe marker may carry (the probe extension's calls)
    VARIANTS: tuple  # the misconception catalog: .slug, .component, .accepted
    EXPLANATIONS: dict  # slug -> the explanation feedback shows
    SIGNATURES: dict  # slug -> {component: predicates on a judge.signatures.Run}
    INHERITS: dict  # component -> (parent component, slugs whose code it may inherit)
    LOOK_AT: dict  # scenario kind -> what to look at when no misconception fits
    FAILURE_LABEL: Pattern  # labels the probe extension records when a call raised (shown though unknown)
    NAMESPACE_NAMES: tuple  # names assert_component takes from the notebook's namespace
    REFERENCE_DIR: Path  # <component>.json reference data, built by the module's reference build
    PROBE_EXTENSIONS: tuple  # (module name, file) imported by the sandboxed probe; see probe.run
    catalog: Callable  # () -> tuple of judge.checks.Check, in grading order
    signature_runs: Callable  # (component) -> {(class, name): scenario} behind the signatures
    signature_check_id: Callable  # (class, name) -> the probe check id of a signature scenario
    crash: Callable  # (observations) -> "your step() raised ..." or None


class ContentError(LookupError):
    """No content, or not the content asked for; the message says what to install or pass."""


def assignments() -> list:
    """The assignment names with installed content."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


@cache
def load(assignment: str) -> ModuleContent:
    found = [ep for ep in entry_points(group=GROUP) if ep.name == assignment]
    if not found:
        raise ContentError(
            f"no content for assignment {assignment!r}: install its content package (registered "
            f"under the {GROUP!r} entry points); installed: {assignments() or 'none'}"
        )
    module = import_module(found[0].value)
    if not isinstance(module, ModuleContent):
        missing = [name for name in ModuleContent.__annotations__ if not hasattr(module, name)]
        raise ContentError(f"{found[0].value} does not implement the module content protocol: missing {missing}")
    return module


def only(assignment: str | None = None) -> ModuleContent:
    """The content of ``assignment``, or of the one module installed when none is named."""
    if assignment is not None:
        return load(assignment)
    names = assignments()
    if len(names) != 1:
        raise ContentError(f"{len(names)} course modules are installed ({names}): name the assignment to grade")
    return load(names[0])
