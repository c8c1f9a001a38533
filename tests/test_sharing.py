"""tests/sharing.py: what the pytest-xdist workers of a session build once, and the lock of tests that run alone."""
import fcntl
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sharing import built_once, group_by_fixture, machine, restore


def _build_in_a_process(root: str, start, results) -> None:
    """A worker: waits for the start signal, then asks for the shared folder; reports what it got."""
    def build(folder: Path) -> None:
        with open(Path(root) / "builds.log", "a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(1)              # a slow build: the other processes ask while it runs
        (folder / "made-by").write_text(str(os.getpid()))

    start.wait()
    results.put(str(built_once(Path(root), "shared", build)))


def test_a_folder_asked_for_by_several_processes_at_once_is_built_once(tmp_path):
    context = multiprocessing.get_context("spawn")      # fresh interpreters, as xdist workers are
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=_build_in_a_process, args=(str(tmp_path), start, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    start.set()
    folders = {results.get(timeout=120) for _ in workers}
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert folders == {str(tmp_path / "shared")}
    assert len((tmp_path / "builds.log").read_text().split()) == 1
    assert (tmp_path / "shared" / "made-by").read_text() == (tmp_path / "builds.log").read_text().strip()


def test_a_failed_build_is_not_shared_and_the_next_one_starts_clean(tmp_path):
    def failing(folder: Path) -> None:
        (folder / "half-written").write_text("x")
        raise RuntimeError("the build failed")

    with pytest.raises(RuntimeError, match="the build failed"):
        built_once(tmp_path, "shared", failing)
    seen = []
    folder = built_once(tmp_path, "shared", lambda f: seen.append(sorted(p.name for p in f.iterdir())))
    assert seen == [[]]                                 # rebuilt, from an empty folder
    assert built_once(tmp_path, "shared", lambda f: seen.append("again")) == folder and seen == [[]]


def _try(path: Path, kind: int) -> bool:
    """Whether a new holder could take the lock at ``path`` right now (without waiting)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_tests_share_the_machine_and_an_alone_test_has_it_to_itself(tmp_path):
    lock = tmp_path / "machine"
    with machine(alone=False, path=lock):
        assert _try(lock, fcntl.LOCK_SH)                # the other worker's tests run meanwhile
        assert not _try(lock, fcntl.LOCK_EX)            # an alone test waits for them
    with machine(alone=True, path=lock):
        assert not _try(lock, fcntl.LOCK_SH)            # no other test starts while it runs
    assert _try(lock, fcntl.LOCK_EX)                    # and it is released after


def test_an_alone_test_waiting_holds_the_gate_so_new_tests_wait_behind_it(tmp_path):
    lock = tmp_path / "machine"
    with machine(alone=False, path=lock):
        context = multiprocessing.get_context("spawn")
        waiting = context.Process(target=_hold_alone, args=(str(lock),))
        waiting.start()
        gate = lock.with_suffix(".gate")
        deadline = time.monotonic() + 120               # a hang guard, not a speed check
        while not gate.exists() or _try(gate, fcntl.LOCK_EX):   # until the alone test holds the gate
            assert waiting.is_alive() and time.monotonic() < deadline, "the alone test never held the gate"
            time.sleep(0.05)
        assert not _try(gate, fcntl.LOCK_EX)            # a new shared holder would queue behind it
    waiting.join(timeout=120)                           # it gets the machine once this test lets go
    assert waiting.exitcode == 0


def _hold_alone(path: str) -> None:
    with machine(alone=True, path=Path(path)):
        pass


def test_restore_makes_the_folder_what_the_copy_holds(tmp_path):
    folder = tmp_path / "dist"
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "module.py").write_text("placeholder")
    (folder / "link").symlink_to("pkg/module.py")
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, symlinks=True)
    (folder / "pkg" / "module.py").write_text("a student's export")
    (folder / "pkg" / "new.py").write_text("written by a test")
    (folder / "link").unlink()
    restore(copy, folder)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == ["link", "pkg", "pkg/module.py"]
    assert (folder / "pkg" / "module.py").read_text() == "placeholder"
    assert (folder / "link").is_symlink() and os.readlink(folder / "link") == "pkg/module.py"


class _Item:
    def __init__(self, *fixturenames):
        self.fixturenames, self.markers = list(fixturenames), []

    def add_marker(self, marker):
        self.markers.append(marker.mark)


def test_every_test_using_an_unshareable_fixture_is_put_in_its_group():
    users, other = _Item("tmp_path", "binder_repo"), _Item("tmp_path", "sample_class")
    group_by_fixture([users, other], {"binder_repo": "binder-venv"})
    assert [(m.name, m.args) for m in users.markers] == [("xdist_group", ("binder-venv",))]
    assert other.markers == []


def test_the_binder_venv_tests_are_collected_in_its_group():
    """The conftest applies the groups: collecting with ``-m xdist_group`` lists the tests that use the venv."""
    tests = Path(__file__).resolve().parent
    files = [str(p) for p in sorted(tests.rglob("test_*.py")) if "binder_repo" in p.read_text() and p.name != "test_sharing.py"]
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "-m", "xdist_group", *files], cwd=tests.parent, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    grouped = {line.rpartition("::")[2] for line in result.stdout.splitlines() if "::" in line}
    assert {"test_post_build_in_a_fresh_binder_venv_keeps_the_dist_clean", "test_student_journey_in_jupyterlab"} <= grouped
