"""The local pool on its own (no notebooks): each way a worker can fail costs only its task, with a clear reason."""

import os
import resource
import signal
import sys
import time

from autograder.batch import pool


def answer(value):
    return value


def exit_with_a_message():
    print("cannot open the gradebook: disk full", file=sys.stderr, flush=True)
    os._exit(3)


def killed():
    os.kill(os.getpid(), signal.SIGKILL)


def hang():
    time.sleep(600)


def chatty():
    print("this must never reach the CLI's --json output", flush=True)
    return "done"


def limits():
    return resource.getrlimit(resource.RLIMIT_AS)[0], os.getsid(0) == os.getpid()


def test_each_failure_costs_only_its_task_and_says_why(capfd):
    calls = [
        [answer, [1]],
        [exit_with_a_message, []],
        [killed, []],
        [hang, []],
        [chatty, []],
        [limits, []],
        [answer, [2]],
    ]
    done = []
    outcomes = pool.run_tasks(
        lambda_free_call, calls, jobs=2, on_done=lambda: done.append(1), memory_bytes=3 * 1024**3, seconds=20
    )
    assert [o.result for o in outcomes[:1] + outcomes[4:]] == [1, "done", (3 * 1024**3, True), 2]
    assert outcomes[1].error == "grading worker died: exit code 3: cannot open the gradebook: disk full"
    assert outcomes[2].error == "grading worker died: killed by signal 9 (SIGKILL) (out of memory?)"
    assert outcomes[3].error == "grading worker exceeded its 20 s wall time and was killed"
    assert len(done) == len(calls)
    assert "never reach" not in capfd.readouterr().out


def lambda_free_call(fn, args):
    """The pool runs module-level functions (workers import them by name)."""
    return fn(*args)
