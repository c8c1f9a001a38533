"""A batch never loses results: a grading worker killed or hung costs only its own notebook; nothing is left in TMPDIR."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from autograder import course, sandbox
from autograder.batch import grade, pool
from tools.sample_class import SOURCE, STUDENT, fill

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sandbox.bwrap_available(), reason="bubblewrap unusable here")]
TOKEN = "victim-5f3a9c"
# Sleeps only in the hidden-check probe (its folder holds cells.json), so the worker is busy with it for a while.
SLOW_PROBE = f"import os, time  # {TOKEN}\nif os.path.exists('cells.json'):\n    time.sleep(60)\n"
# Hangs in the notebook's kernel only (its cell cap is 60 s), so the worker outlives any wall time under that.
SLOW_KERNEL = f"import os, time  # {TOKEN}\nif not os.path.exists('cells.json'):\n    time.sleep(60)\n"


def submission(folder: Path, name: str, prefix: str) -> Path:
    nb = fill(
        nbformat.read(STUDENT, as_version=4), nbformat.read(SOURCE, as_version=4), {"sgd": lambda code: prefix + code}
    )
    path = folder / "submitted" / name / "07_optimizers" / "optimizers.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    return path


def cli(paths, tmpdir: Path, *extra, wait=True):
    env = {**os.environ, "TMPDIR": str(tmpdir), "AUTOGRADER_SANDBOX": "required"}
    args = [sys.executable, "-m", "autograder", "grade", *map(str, paths), "--json", "--no-progress", *extra]
    if not wait:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def worker_grading_victim(root_pid: int) -> psutil.Process | None:
    """The grading worker (under ``root_pid``) whose sandboxed probe runs the victim's code."""
    try:
        tree = psutil.Process(root_pid).children(recursive=True)
    except psutil.Error:
        return None
    for proc in tree:
        try:
            argv = proc.cmdline()
            if "--chdir" not in argv or TOKEN not in (Path(argv[argv.index("--chdir") + 1]) / "cells.json").read_text():
                continue
            for parent in proc.parents():
                if parent.ppid() == root_pid and "--multiprocessing-fork" in parent.cmdline():
                    return parent  # the pool worker: the CLI's child, started by multiprocessing
        except (psutil.Error, OSError, ValueError):
            continue
    return None


def kill_when_grading_victim(root_pid: int, found: dict) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and psutil.pid_exists(root_pid):
        worker = worker_grading_victim(root_pid)
        if worker is not None:
            found["rlimit_as"] = worker.rlimit(psutil.RLIMIT_AS)
            worker.send_signal(signal.SIGKILL)  # what the out-of-memory killer does
            found["killed"] = worker.pid
            return
        time.sleep(0.2)


def leftovers(tmpdir: Path) -> list:
    mounts = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(tmpdir))
    ]
    return sorted(p.name for p in tmpdir.iterdir()) + mounts


def short_tmpdir() -> Path:
    """A private TMPDIR with a short path: kernels' unix socket paths are limited to 107 bytes."""
    return Path(tempfile.mkdtemp(prefix="agt-", dir="/tmp"))


@pytest.fixture(scope="module")
def batch(sample_class, tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    sample, _ = sample_class
    others = [
        sample / "submitted" / name / "07_optimizers/optimizers.ipynb"
        for name in ("correct-reference", "bug-betas-swapped", "broken-empty-file")
    ]
    victim = submission(folder, "victim", SLOW_PROBE)
    paths = [others[0], victim, *others[1:]]
    tmp_parallel, tmp_serial = short_tmpdir(), short_tmpdir()
    proc = cli(paths, tmp_parallel, "--jobs", "2", wait=False)
    found = {}
    killer = threading.Thread(target=kill_when_grading_victim, args=(proc.pid, found))
    killer.start()
    out, err = proc.communicate(timeout=1200)
    killer.join()
    assert proc.returncode == 0, err[-3000:]
    return {
        "entries": json.loads(out),
        "found": found,
        "others": others,
        "victim": victim,
        "serial": cli(others, tmp_serial, "--jobs", "1"),
        "tmp": [tmp_parallel, tmp_serial],
    }


def test_a_killed_worker_costs_only_its_notebook(batch):
    assert "killed" in batch["found"], batch["entries"][1]["error"]
    entries = batch["entries"]
    assert [e["submission"] for e in entries] == [
        str(p) for p in [batch["others"][0], batch["victim"], *batch["others"][1:]]
    ]
    victim = entries[1]
    assert victim["error"] == "grading worker died: killed by signal 9 (SIGKILL) (out of memory?)"
    assert victim["score"] == 0 and victim["tests"] == []
    assert [entries[0], *entries[2:]] == batch["serial"]  # complete, and as a serial run grades them
    assert batch["serial"][0]["score"] == 100


def test_grading_workers_have_a_memory_cap(batch):
    assert batch["found"]["rlimit_as"][0] == pool.WORKER_MEMORY


def test_nothing_is_left_in_the_temp_directory(batch):
    for tmpdir in batch["tmp"]:
        assert leftovers(tmpdir) == []
        tmpdir.rmdir()


def test_a_hung_worker_is_killed_at_its_wall_time(tmp_path):
    victim = submission(tmp_path, "hung", SLOW_KERNEL)
    start = time.monotonic()
    [entry] = grade.grade_many([str(victim)], course.assignment(), jobs=1, progress=False, worker_seconds=15)
    assert entry["error"] == "grading worker exceeded its 15 s wall time and was killed"
    assert entry["score"] == 0
    assert time.monotonic() - start < 60


def test_a_killed_grader_leaves_nothing_after_the_next_run(tmp_path, sample_class):
    """kill -9 the whole `python -m autograder grade` mid-way; the next run removes what it left."""
    tmpdir = short_tmpdir()
    victim = submission(tmp_path, "victim", SLOW_PROBE)
    proc = cli([victim], tmpdir, "--jobs", "1", wait=False)
    deadline = time.monotonic() + 600
    while worker_grading_victim(proc.pid) is None:
        assert time.monotonic() < deadline and proc.poll() is None, "never saw the victim being graded"
        time.sleep(0.2)
    tree = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    gone, alive = psutil.wait_procs(tree, timeout=30)  # workers and sandboxes die with their parent
    assert alive == []
    assert any(name.startswith("autograder-run-") for name in leftovers(tmpdir))  # what SIGKILL leaves
    empty = tmp_path / "empty.ipynb"
    empty.write_text("")
    cli([empty], tmpdir, "--jobs", "1")
    assert leftovers(tmpdir) == []
    tmpdir.rmdir()


# Eight display handles, each then rewritten with 25 MB through update_display_data (which never
# passes through output()); only in the notebook's kernel, not in the hidden-check probes.
DISPLAY_FLOOD = (
    "import sys\n"
    "if 'ipykernel' in sys.modules:\n"
    "    from IPython.display import display\n"
    "    handles = [display('small', display_id=True) for _ in range(8)]\n"
    "    for h in handles:\n"
    "        h.update({'text/plain': 'x' * 25_000_000}, raw=True)\n"
)


def test_display_updates_obey_the_output_caps(tmp_path):
    """update_display_data is charged to the cell's and the notebook's output caps; the score stands."""
    path = submission(tmp_path, "display-flood", DISPLAY_FLOOD)
    feedback = tmp_path / "feedback"
    short = Path(tempfile.mkdtemp(prefix="flood-"))  # kernel socket paths must stay under 107 bytes
    try:
        [entry] = cli([path], short, "--feedback-dir", str(feedback), "--jobs", "1")
    finally:
        shutil.rmtree(short)
    assert entry["error"] is None
    assert entry["score"] == entry["max_score"], [t["message"] for t in entry["tests"] if t["score"] < t["max_score"]][
        :3
    ]
    [page] = feedback.glob("display-flood*.html")
    assert page.stat().st_size < 8 * 1024**2
    assert "output truncated by the autograder" in page.read_text()
