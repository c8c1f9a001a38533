"""The grader's run folder: one per process even when threads ask for it at once, gone at exit."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Four threads (as the four component probes are) ask for the run folder at the same moment;
# the sweep before the first folder is made is slowed down so that they all arrive before it exists.
RACE = textwrap.dedent("""
    import threading, time
    from autograder.sandbox import tempdirs
    real_sweep = tempdirs.sweep
    tempdirs.sweep = lambda *a, **k: (time.sleep(0.05), real_sweep(*a, **k))[1]
    barrier = threading.Barrier(4)
    def probe():
        barrier.wait()
        tempdirs.mkdtemp("probe-")
    threads = [threading.Thread(target=probe) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(len(list(tempdirs.run_dir().parent.glob(tempdirs.PREFIX + "*"))))
""")


def run_script(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter whose temporary folders go under ``tmp_path``."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)},
        timeout=120,
    )


def test_threads_share_one_run_folder_and_exit_quietly(tmp_path):
    result = run_script(RACE, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1", "each thread made a run folder of its own"
    assert result.stderr == "", result.stderr  # no "Exception ignored in atexit callback"
    assert list(tmp_path.iterdir()) == [], "the run folder outlived its process"


# A forked child inherits the exit handler and the parent's entry: at its exit it removes its own
# run folder only, and the parent's survives until the parent exits.
FORK = textwrap.dedent("""
    import os, sys
    from autograder.sandbox import tempdirs
    mine = tempdirs.run_dir()
    child = os.fork()
    if child == 0:
        print(tempdirs.run_dir(), flush=True)
        sys.exit(0)                     # a normal exit: the child runs the inherited exit handlers
    os.waitpid(child, 0)
    print(mine.is_dir(), len(list(mine.parent.glob(tempdirs.PREFIX + "*"))), flush=True)
""")


def test_a_forked_child_removes_only_its_own_run_folder(tmp_path):
    result = run_script(FORK, tmp_path)
    assert result.returncode == 0, result.stderr
    child_folder, parent_state = result.stdout.splitlines()
    assert child_folder.startswith(str(tmp_path))
    assert parent_state == "True 1", "the child's exit removed the parent's run folder or left its own"
    assert result.stderr == "", result.stderr
    assert list(tmp_path.iterdir()) == [], "a run folder outlived its process"
