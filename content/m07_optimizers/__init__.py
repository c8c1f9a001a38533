"""Module 07 (optimizers): everything the grading engine knows about this module.

Registered under the ``autograder.modules`` entry point as the nbgrader assignment
``07_optimizers``; the package implements ``autograder.judge.content.ModuleContent``:

* ``catalog.py``: components, the hidden checks (scenarios, points, what each says);
* ``signatures.py``: the behavioural signatures of each misconception;
* ``misconceptions.py`` + ``MISCONCEPTIONS.md``: the misconception catalog and its explanations;
* ``probe_kinds.py``: the probe extension (scenario kinds), copied into the sandbox alone;
* ``reference/``: the reference data (``make reference``), ``solution/``: the reference build
  (``make generate``). Neither is ever copied into a sandbox.
"""

from pathlib import Path

from . import probe_kinds
from .catalog import COMPONENTS, FAILURE_LABEL, LOOK_AT, NAMESPACE_NAMES, catalog, crash
from .misconceptions import EXPLANATIONS, SLUGS, VARIANTS, apply
from .probe_kinds import METHODS
from .signatures import INHERITS, SIGNATURES, signature_check_id, signature_runs

HERE = Path(__file__).resolve().parent
REFERENCE_DIR = HERE / "reference"
# (module name, file): imported by the sandboxed probe, the one file of this package it gets.
PROBE_EXTENSIONS = ((probe_kinds.__name__, Path(probe_kinds.__file__)),)

__all__ = [
    "COMPONENTS",
    "FAILURE_LABEL",
    "LOOK_AT",
    "NAMESPACE_NAMES",
    "catalog",
    "crash",
    "EXPLANATIONS",
    "SLUGS",
    "VARIANTS",
    "apply",
    "METHODS",
    "INHERITS",
    "SIGNATURES",
    "signature_check_id",
    "signature_runs",
    "REFERENCE_DIR",
    "PROBE_EXTENSIONS",
]
