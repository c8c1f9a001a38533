"""What runs inside the sandbox, beside the student's code: stdlib, numpy and IPython's parser only.

The package is copied into each probe's read-only runtime folder with the content's probe
extensions, and holds no expected values. Its modules, by job: ``cells`` (the notebook's
cells, IPython magics), ``markers`` (what runs now, the watchdog), ``record`` (observations),
``structure`` (what an object really holds), ``output`` (the JSON results file), ``run``
(checks, scenario kinds registered by extensions, ``main``).

In-process callers (the reference build, the instructor notebook, tests) use the names below.
"""

from .cells import _SHELL, define, definitions, not_run, parse
from .markers import BETWEEN, DONE, RUNNING, TIMED_OUT, WATCHDOG
from .record import MAX_TEXT, MEMORY, NONE, PROBLEMS, Recorder
from .run import KINDS, base_namespace, flatten, observe, register

__all__ = [
    "_SHELL",
    "define",
    "definitions",
    "not_run",
    "parse",
    "BETWEEN",
    "DONE",
    "RUNNING",
    "TIMED_OUT",
    "WATCHDOG",
    "MAX_TEXT",
    "MEMORY",
    "NONE",
    "PROBLEMS",
    "Recorder",
    "KINDS",
    "base_namespace",
    "flatten",
    "observe",
    "register",
]
