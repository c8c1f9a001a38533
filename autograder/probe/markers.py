"""The probe's traces for the grader: the marker of what runs, and the watchdog that ends a hung call.

Before every call into student code the probe writes what it is about to run to
``running.txt`` (``Sink.running``), so when the process is killed the grader knows
which check was lost and runs the rest in a fresh sandbox. A forked watchdog kills the
probe when one cell or one check runs longer than the spec's ``check_seconds``.
"""

from __future__ import annotations

import os
import select
import signal

_os_write, _ftruncate, _exit, _kill, _str = os.pwrite, os.ftruncate, os._exit, os.kill, str
_type = type
RUNNING = "running.txt"  # what the probe is about to run (``Sink.running``); read by the grader after a kill
WATCHDOG = "watchdog.txt"  # written by the watchdog just before it kills the probe for wall time
TIMED_OUT = "timed out"
DONE, BETWEEN = "done", "between checks"
MEMORY_EXHAUSTED = 75  # exit status: a MemoryError left the process unusable; run the rest afresh


class Watchdog:
    """A forked process that kills the probe when one cell or one check runs past ``seconds``.

    A process, not a thread or an alarm: student code that holds the GIL in a C loop or
    catches every exception still cannot outlast it. ``arm`` starts the clock, ``disarm``
    stops it; the sandbox's own wall time stays the backstop if student code kills it.
    """

    def __init__(self, seconds: float, folder: str):
        read_end, self._pipe = os.pipe()
        if os.fork() == 0:  # the watchdog: it never runs student code
            os.close(self._pipe)
            self._watch(read_end, os.getppid(), seconds, os.path.join(folder, WATCHDOG))
        os.close(read_end)

    @staticmethod
    def _watch(pipe: int, probe: int, seconds: float, report: str) -> None:
        armed = False
        while True:
            ready, _, _ = select.select([pipe], [], [], seconds if armed else None)
            if not ready:  # armed and silent for ``seconds``: the check hangs
                with open(report, "w") as f:
                    f.write(TIMED_OUT)
                _kill(probe, signal.SIGKILL)
                _exit(0)
            byte = os.read(pipe, 1)
            if not byte:  # the probe ended (or died): so does the watchdog
                _exit(0)
            armed = byte == b"a"

    def arm(self) -> None:
        os.write(self._pipe, b"a")

    def disarm(self) -> None:
        os.write(self._pipe, b"d")


class Sink:
    """Where a sandboxed probe leaves its traces: the marker, each check's results, the watchdog's clock.

    In-process runs (``make reference``, the instructor notebook) use none: ``mark`` is a no-op then.
    """

    def __init__(self, out_path: str, watchdog: Watchdog | None = None, write=None):
        self.out_path, self.watchdog, self._write = out_path, watchdog, write
        self._fd = os.open(RUNNING, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.check, self.scenario, self.ns = "", 0, {}
        self.exhausted = False  # a MemoryError was seen: the process may be unusable

    def note(self, text: str) -> None:
        _ftruncate(self._fd, 0)
        _os_write(self._fd, text.encode("utf-8", "replace"), 0)

    def running(self, cls: str, method: str, step: int = 0) -> None:
        self.note(f"{self.check}\t{self.scenario}\t{cls}\t{method}\t{_defining_class(self.ns, cls, method)}\t{step}")

    def finished(self, check_id: str, items: list) -> None:
        if self.watchdog:
            self.watchdog.disarm()
        self._write(self.out_path, check_id, items)
        self.note(BETWEEN)


SINK = None  # set by ``run.main`` in the sandbox


def mark(cls: str, method: str, step: int = 0) -> None:
    """Say which student method is about to run (the grader names it if the process is killed)."""
    if SINK is not None:
        SINK.running(cls, method, step)


def _defining_class(ns: dict, cls: str, method: str) -> str:
    """The name of the class in ``cls``'s MRO that defines ``method`` (a subclass's method may be its parent's)."""
    try:
        mro = _type.mro(ns[cls])
    except Exception:  # not a class (or missing): the scenario's class stands
        return cls
    return next((_str(_type.__dict__["__name__"].__get__(k))[:40] for k in mro if method in k.__dict__), cls)
