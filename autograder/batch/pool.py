"""Supervised grading workers: a worker that dies or hangs costs only the notebook it was grading.

The supervisor (:func:`run_tasks`, in the CLI process) keeps up to ``jobs`` worker
processes (``python -m autograder.workers``), hands each one task at a time over a pipe
(a JSON line: which function of :mod:`autograder.grade`, its arguments) and reads one
JSON line back. A worker runs with an address-space rlimit, so a runaway worker fails
alone, and under a wall-time cap; it dies with the supervisor (``PR_SET_PDEATHSIG``).
When a worker dies (out of memory, a signal) or outlives its cap, its task gets a
one-line error, the supervisor removes its temporary folders and starts a fresh worker
for the remaining tasks. Results come back in task order.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from . import tempdirs

#: Address-space cap of a grading worker (soft limit, so its sandboxes may still set their own).
#: A worker uses about 1 GiB of address space (Python, numpy, nbgrader, zmq threads).
WORKER_MEMORY = 4 * 1024**3
#: Wall time for one task: a notebook's 300 s, its probes and nbgrader's own work, with room to spare.
WORKER_SECONDS = 900.0
_PR_SET_PDEATHSIG = 1
_TAIL = 2000


def _worker_setup(memory_bytes: int) -> None:
    """preexec_fn of a worker: cap its memory, and make it die with the supervisor."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, resource.getrlimit(resource.RLIMIT_AS)[1]))
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


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


@dataclass
class _Worker:
    proc: subprocess.Popen
    stderr_path: str
    task: int | None = None
    started: float = 0.0
    buffer: bytes = b""
    done: int = 0


@dataclass
class Outcome:
    result: object = None  # what the task's function returned (JSON round-tripped)
    error: str | None = None  # set when the worker died or hung instead
    extra: dict = field(default_factory=dict)


def _spawn(memory_bytes: int) -> _Worker:
    err = tempdirs.mkdtemp("worker-") / "stderr"
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # glibc arenas reserve 64 MB of address space each
    with open(err, "wb") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "autograder.workers"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err_file, env=env, start_new_session=True,
                                preexec_fn=lambda: _worker_setup(memory_bytes))
    return _Worker(proc, str(err))


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(os.path.getsize(path) - _TAIL, 0))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _retire(worker: _Worker, sel: selectors.BaseSelector) -> int | None:
    """Kill a worker's whole process group, reap it; its temp folders go too. Returns its exit code."""
    sel.unregister(worker.proc.stdout)
    try:
        os.killpg(worker.proc.pid, signal.SIGKILL)  # unreaped, so the pgid is still its own
    except (ProcessLookupError, PermissionError):
        pass
    returncode = worker.proc.wait()
    for stream in (worker.proc.stdin, worker.proc.stdout):
        try:
            stream.close()
        except OSError:
            pass
    tempdirs.sweep()
    return returncode


def run_tasks(tasks: list[tuple[str, list]], jobs: int = 1, on_done: Callable[[], None] | None = None,
              memory_bytes: int = WORKER_MEMORY, seconds: float = WORKER_SECONDS,
              tasks_per_worker: int = 50) -> list[Outcome]:
    """Run ``[(function name in autograder.grade, args)]`` in supervised workers; an Outcome per task."""
    outcomes: list[Outcome | None] = [None] * len(tasks)
    pending = list(range(len(tasks)))
    workers: list[_Worker] = []
    with selectors.DefaultSelector() as sel:
        try:
            while pending or any(w.task is not None for w in workers):
                # Hand out tasks: idle workers first, new workers up to `jobs`.
                while pending and (any(w.task is None for w in workers) or len(workers) < jobs):
                    idle = next((w for w in workers if w.task is None), None)
                    if idle is None:
                        idle = _spawn(memory_bytes)
                        workers.append(idle)
                        sel.register(idle.proc.stdout, selectors.EVENT_READ, idle)
                    index = pending.pop(0)
                    name, args = tasks[index]
                    idle.task, idle.started = index, time.monotonic()
                    try:
                        idle.proc.stdin.write(json.dumps([name, args]).encode() + b"\n")
                        idle.proc.stdin.flush()
                    except OSError:
                        pass  # it died before we spoke: noticed below as EOF
                now = time.monotonic()
                busy = [w.started + seconds - now for w in workers if w.task is not None]
                for key, _ in sel.select(timeout=max(min(busy + [1.0]), 0)):
                    worker = key.data
                    chunk = os.read(key.fd, 1 << 20)
                    worker.buffer += chunk
                    if b"\n" in worker.buffer:
                        line, worker.buffer = worker.buffer.split(b"\n", 1)
                        outcomes[worker.task] = Outcome(result=json.loads(line))
                        worker.task, worker.done = None, worker.done + 1
                        if on_done:
                            on_done()
                        if worker.done >= tasks_per_worker:  # a fresh process now and then: no creeping memory
                            _retire(worker, sel)
                            workers.remove(worker)
                    elif not chunk:  # EOF: the worker died
                        returncode = _retire(worker, sel)
                        workers.remove(worker)
                        if worker.task is not None:
                            outcomes[worker.task] = Outcome(error=death(returncode, _tail(worker.stderr_path),
                                                                        seconds))
                            if on_done:
                                on_done()
                now = time.monotonic()
                for worker in [w for w in workers if w.task is not None and now > w.started + seconds]:
                    _retire(worker, sel)
                    workers.remove(worker)
                    outcomes[worker.task] = Outcome(error=death(None, "", seconds))
                    if on_done:
                        on_done()
        finally:
            for worker in workers:
                _retire(worker, sel)
    return outcomes  # type: ignore[return-value]


def main() -> int:
    """A worker: read one task per line on stdin, answer one JSON line each on stdout."""
    from . import grade

    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else that prints goes to stderr, never into the answers
    for line in sys.stdin.buffer:
        name, args = json.loads(line)
        result = getattr(grade, name)(*args)
        answers.write(json.dumps(result).encode() + b"\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
