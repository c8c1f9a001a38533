"""Local grading workers: a process pool in which a dead or hung worker costs only its own task.

The pool is pebble's ``ProcessPool`` (a maintained pool with a per-task timeout): up to
``jobs`` worker processes, each a fresh interpreter (``spawn``), each running one task
at a time. What pebble does not know about grading, the worker's initializer adds:

- an address-space rlimit (soft, so its sandboxes may still set their own);
- its own session, so a terminal's Ctrl-C reaches the CLI, which stops the pool, and not
  a worker half-way through a notebook;
- death with the CLI (``PR_SET_PDEATHSIG``): a SIGKILLed CLI leaves no worker behind;
- its stdout moved to its stderr (so nothing a task prints reaches ``--json``), and that
  stderr kept in a file, whose last line explains a worker that exited with an error.

When a worker dies (out of memory, a signal) or outlives its task's wall time, pebble
fails that task's future and starts a fresh worker for the rest; :func:`death` turns that
into the task's one-line error and the CLI sweeps the dead worker's temporary folders.
Results come back in task order. Each task runs through :func:`heap.run_tidily` (malloc
arenas capped, heap trimmed after), and workers are replaced every ``tasks_per_worker``
tasks, so no worker's memory creeps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import resource
import signal
from collections.abc import Callable
from concurrent.futures import TimeoutError as TaskTimeout
from dataclasses import dataclass, field
from pathlib import Path

from ..sandbox import tempdirs
from .heap import run_tidily

#: Address-space cap of a grading worker (soft limit, so its sandboxes may still set their own).
#: A worker uses about 1 GiB of address space (Python, numpy, nbgrader, zmq threads).
WORKER_MEMORY = 4 * 1024**3
#: Wall time for one task: a notebook's 300 s, its probes and nbgrader's own work, with room to spare.
WORKER_SECONDS = 900.0
_PR_SET_PDEATHSIG = 1
_TAIL = 2000


def death(returncode: int | None, stderr_tail: str, seconds: float | None) -> str:
    """The one-line error for a task whose worker did not answer."""
    if returncode is None:
        return f"grading worker exceeded its {seconds:g} s wall time and was killed"
    if returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        hint = " (out of memory?)" if sig == signal.SIGKILL else ""
        return f"grading worker died: killed by signal {sig} ({name}){hint}"
    last = [line.strip() for line in stderr_tail.splitlines() if line.strip()][-1:] or ["no message"]
    return f"grading worker died: exit code {returncode}: {last[0][:300]}"


def stderr_file(folder: str, pid: int) -> Path:
    return Path(folder) / f"worker-{pid}.stderr"


def worker_setup(memory_bytes: int, stderr_folder: str) -> None:
    """pebble's initializer, run in each new worker before its first task."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the CLI died before the line above took effect
        os._exit(1)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, resource.getrlimit(resource.RLIMIT_AS)[1]))
    os.setsid()
    err = os.open(stderr_file(stderr_folder, os.getpid()), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(err, 2)
    os.dup2(2, 1)  # anything a task prints goes to the log, never into the CLI's output
    os.close(err)


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(os.path.getsize(path) - _TAIL, 0))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Outcome:
    result: object = None  # what the task's function returned
    error: str | None = None  # set when the worker died or hung instead
    extra: dict = field(default_factory=dict)


def _outcome(future, seconds: float, stderr_folder: str) -> Outcome:
    from pebble import ProcessExpired

    try:
        return Outcome(result=future.result())
    except TaskTimeout:
        tempdirs.sweep()  # the killed worker's run folder
        return Outcome(error=death(None, "", seconds))
    except ProcessExpired as err:
        tempdirs.sweep()
        return Outcome(error=death(err.exitcode, _tail(stderr_file(stderr_folder, err.pid)), seconds))


def run_tasks(
    fn: Callable,
    calls: list[list],
    jobs: int = 1,
    on_done: Callable[[], None] | None = None,
    memory_bytes: int = WORKER_MEMORY,
    seconds: float = WORKER_SECONDS,
    tasks_per_worker: int = 50,
) -> list[Outcome]:
    """``fn(*args)`` for each ``args`` of ``calls`` in pool workers; an Outcome per call, in order.

    ``fn`` must be a module-level function (the workers import it by name) that never raises
    for bad input: an exception it raises anyway is the batch's bug and is raised here.
    """
    from pebble import ProcessPool

    folder = str(tempdirs.mkdtemp("workers-"))
    pool = ProcessPool(
        max_workers=max(jobs, 1),
        max_tasks=tasks_per_worker,
        initializer=worker_setup,
        initargs=(memory_bytes, folder),
        context=multiprocessing.get_context("spawn"),
    )
    finished = False
    try:
        futures = [pool.schedule(run_tidily, args=[fn, *args], timeout=seconds) for args in calls]
        if on_done:
            for future in futures:
                future.add_done_callback(lambda _: on_done())
        outcomes = [_outcome(future, seconds, folder) for future in futures]
        finished = True
    finally:
        # Interrupted (Ctrl-C, SIGTERM, a bug): stop the workers now, so none outlives the batch.
        pool.close() if finished else pool.stop()
        pool.join()
        tempdirs.remove(Path(folder))
        # multiprocessing workers end with os._exit (pebble stops them with SIGTERM), never
        # running atexit: their run folders, of pids now dead, are removed here.
        tempdirs.sweep()
    return outcomes
